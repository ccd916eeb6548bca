"""A tiny training world for the tests of the run cache's faults (locks, damaged files, divergence): a one-layer
BERT with the default backbone's tokenizer and a keyword rule in SST-2's shape, so that a run trains in about a
second on a CPU, in this process or in others started by a test."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from compnb import cli, models
from compnb.training import TrainConfig, train

WORDS = "the a movie film plot actors story scenes it was is very quite rather".split()


def sentences(n: int, seed: int) -> pd.DataFrame:
    """Label 1 iff the sentence says 'great' (else 'awful'), among 2-6 random filler words."""
    rng, rows = random.Random(seed), []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
        words.insert(rng.randint(0, len(words)), "great" if i % 2 else "awful")
        rows.append({"idx": i, "sentence": " ".join(words), "label": i % 2})
    return pd.DataFrame(rows)


def build(root: Path) -> SimpleNamespace:
    """The backbone folder and the data folder (`COMPNB_DATA_DIR`) under `root`."""
    tokenizer = AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE))
    backbone, data = root / "tiny-bert", root / "data"
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=32)).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    (data / "sst2").mkdir(parents=True)
    sentences(96, 0).to_parquet(data / "sst2" / "train.parquet")
    sentences(32, 1).to_parquet(data / "sst2" / "validation.parquet")
    return SimpleNamespace(root=root, backbone=backbone, data=data)


def config(world: SimpleNamespace, **overrides) -> TrainConfig:
    """6 steps per epoch, 2 epochs; the loss logged every 2 steps, a checkpoint every 2."""
    values = dict(model=str(world.backbone), epochs=2, batch_size=16, lr=3e-3, max_length=24, log_every=2,
                  checkpoint_every=2, patience=None, profile="smoke")
    return TrainConfig(**(values | overrides))


def write_config(config: TrainConfig, path: Path) -> Path:
    path.write_text(json.dumps(config.to_dict()))
    return path


def env(world: SimpleNamespace) -> dict[str, str]:
    """What a process started by a test sets in its environment: the world's data, one CPU thread."""
    return {"COMPNB_DATA_DIR": str(world.data), "OMP_NUM_THREADS": "1"}


def processes():
    """A multiprocessing context whose processes fork from a server that imported `compnb.training` once, so that
    each starts in a fraction of a second (a fresh interpreter takes seconds to import torch)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["compnb.training", "compnb.cli", "tiny_runs"])
    return context


def run_cli(args: list[str], log: Path, env: dict[str, str]) -> None:
    """A process's target: `compnb <args>` with `env` set, stdout to `log`.out and stderr to `log`; its exit status
    is the command's."""
    _enter(env, log)
    sys.exit(cli.main(args))


def train_paused(config: Path, runs_root: Path, marker: Path, step: int, env: dict[str, str]) -> None:
    """A process's target: train `config` and, at `step`, create `marker` and sleep (to be killed while it holds the
    run's lock); stderr to `marker`.log."""
    def pause(state):
        if state.step == step:
            marker.write_text("")
            time.sleep(600)

    _enter(env, marker.with_suffix(".log"))
    train(TrainConfig.from_json(config), runs_root=runs_root, callback=pause)


def _enter(env: dict[str, str], log: Path) -> None:
    """Set up a started process: `env`, one CPU thread, stdout to `log`.out and stderr to `log`."""
    os.environ.update(env)
    torch.set_num_threads(1)
    for fd, path in ((1, log.with_suffix(".out")), (2, log)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
