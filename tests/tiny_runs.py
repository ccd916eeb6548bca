"""What the tests of the run cache's faults (locks, damaged files, divergence) and of the stored example maps add to
chapter 7's tiny training world (`compnb.chapters.faults`: `tiny_world`, `tiny_config`, and the process targets
`run_cli`, `train_paused` started from `processes()`): the world with one finished run, a config written to a file,
and the environment of a started process."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from compnb.chapters import faults
from compnb.training import TrainConfig, train


def write_config(config: TrainConfig, path: Path) -> Path:
    path.write_text(json.dumps(config.to_dict()))
    return path


def trained_world(root: Path) -> SimpleNamespace:
    """Chapter 7's tiny world under `root`, with one finished one-epoch run (`world.finished`, its folder) trained
    with the world's data."""
    world = faults.tiny_world(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COMPNB_DATA_DIR", str(world.data))
        world.finished = train(faults.tiny_config(world, epochs=1), runs_root=world.root / "runs")
    return world


def env(world: SimpleNamespace) -> dict[str, str]:
    """What a process started by a test sets in its environment: the world's data, one CPU thread."""
    return {"COMPNB_DATA_DIR": str(world.data), "OMP_NUM_THREADS": "1"}
