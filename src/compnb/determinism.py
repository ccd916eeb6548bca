"""The `COMPNB_DETERMINISTIC` switch: repeatable GPU runs where PyTorch allows them.

Two things make a GPU rerun differ. Kernels that add in a varying order (atomics, e.g. the embedding
backward): `enable()` asks PyTorch for deterministic algorithms only. And work whose *shape* depends on the
machine's state: mask saliency and integrated gradients put their rows through the model in chunks sized by a
memory budget (`compnb.saliency`), by default a share of the GPU memory free at that moment, which other
processes change; another chunk size is another matrix shape and another rounding. With the switch on, that
budget is the fixed `FIXED_BUDGET` (or `COMPNB_MEMORY_BUDGET` in bytes), so chunks depend on the batch alone.
"""

from __future__ import annotations

import os

import torch

ENV = "COMPNB_DETERMINISTIC"
FIXED_BUDGET = 4 * 2**30  # bytes: the chunk budget on a GPU while the switch is on


def requested() -> bool:
    """Whether `COMPNB_DETERMINISTIC` is set to anything but '' or '0'."""
    return os.environ.get(ENV, "") not in ("", "0")


def enable() -> bool:
    """With the switch on, make GPU training repeatable where PyTorch allows it: deterministic algorithms only
    (an op without one raises, naming itself), cuBLAS's fixed workspace, no cuDNN autotuning. Data order is
    fixed by the seed either way. Returns whether the switch is on; CPU runs repeat without it."""
    on = requested()
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    return on
