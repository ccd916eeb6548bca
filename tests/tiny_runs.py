"""What the tests of the run cache's faults (locks, damaged files, divergence) add to chapter 7's tiny training
world (`compnb.chapters.faults`: `tiny_world`, `tiny_config`, and the process targets `run_cli`, `train_paused`
started from `processes()`): a config written to a file, and the environment of a started process."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from compnb.training import TrainConfig


def write_config(config: TrainConfig, path: Path) -> Path:
    path.write_text(json.dumps(config.to_dict()))
    return path


def env(world: SimpleNamespace) -> dict[str, str]:
    """What a process started by a test sets in its environment: the world's data, one CPU thread."""
    return {"COMPNB_DATA_DIR": str(world.data), "OMP_NUM_THREADS": "1"}
