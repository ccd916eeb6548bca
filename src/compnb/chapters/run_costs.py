"""What one training run costs, as the committed runs measured it: per device, engine, kind of loss and dataset,
the training throughput, the training time and the peak GPU memory of a run, and so how many runs a GPU of a
given memory holds at once. The appendix sets these beside the pipelines' invocation records, to say what a
machine other than the one that trained the book should expect.

Every number is read from the runs' own `metrics.json` and `config.json` (`results/<profile>/runs/*/`); a run
records its peak memory as PyTorch's largest allocated amount (`peak_memory_kind`), which leaves out the CUDA
context and the allocator's cache, so a GPU needs some room beside it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from compnb import announce, captured
from compnb import formatting as fmt

GIB = 2 ** 30
GROUP = ["device", "engine", "kind", "dataset", "max length"]


def measured(runs: Path) -> pd.DataFrame:
    """One row per finished run under `runs` (a profile's `runs/` folder) that recorded its training speed:
    run, device, engine, kind (`announce.kind`), dataset, max length, epochs run, training examples per epoch,
    training time (s), training examples/s and peak memory (GiB, NaN where not recorded). A run does not record
    how many runs shared its device, so neither does the table."""
    rows = []
    for folder, m, config in announce.timed_runs(runs, "*/metrics.json"):
        peak = m.get("peak_memory_mb")
        rows.append({"run": folder.name, "device": m.get("device", ""), "engine": captured.recorded_engine(m),
                     "kind": announce.kind(config), "dataset": config.dataset, "max length": config.max_length,
                     "epochs run": float(m.get("epochs_run", config.epochs)), "examples": int(m["train_examples"]),
                     "training time (s)": float(m["train_time_s"]),
                     "examples/s": float(m["train_examples_per_s"]),
                     "peak memory (GiB)": peak * 2 ** 20 / GIB if peak is not None else math.nan})
    return pd.DataFrame(rows)


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per device, engine, kind, dataset and max length (GPU runs only): how many runs, their median training
    examples/s and training time (s), and their largest peak memory (GiB)."""
    gpu = runs[runs["device"].map(announce.device_class).ne("CPU") & runs["device"].ne("")] if len(runs) else runs
    if gpu.empty:
        return pd.DataFrame(columns=[*GROUP, "runs", "median examples/s", "median training time (s)",
                                     "largest peak memory (GiB)"])
    grouped = gpu.groupby(GROUP, sort=True)
    return pd.DataFrame({"runs": grouped.size(), "median examples/s": grouped["examples/s"].median(),
                         "median training time (s)": grouped["training time (s)"].median(),
                         "largest peak memory (GiB)": grouped["peak memory (GiB)"].max()}).reset_index()


def runs_at_once(peak_gib: float, memory_gib: float, headroom_gib: float = 1.0) -> int:
    """How many runs of peak allocated memory `peak_gib` fit at once on a GPU of `memory_gib`, leaving
    `headroom_gib` per run for its CUDA context and the allocator's cache (at least 0)."""
    if not peak_gib > 0 or not memory_gib > 0:
        raise ValueError(f"peak and GPU memory must be positive numbers of GiB, got {peak_gib!r} and {memory_gib!r}")
    return max(0, math.floor(memory_gib / (peak_gib + headroom_gib)))


def smaller_machine_sentence(table: pd.DataFrame, sizes_gib: tuple[int, ...] = (80, 24, 16),
                             headroom_gib: float = 1.0) -> str:
    """What a GPU of each size in `sizes_gib` holds at once, per engine, from the largest peak memory of any run
    kind in `summary`'s table, and how the time then scales: the runs' training time shared among the runs a GPU
    holds, at its speed on these small, launch-bound steps, which no run here measured on a smaller GPU."""
    known = table.dropna(subset=["largest peak memory (GiB)"])
    if known.empty:
        return "No GPU run recorded its peak memory at this profile, so what a smaller GPU holds is not measured."
    parts = []
    for engine, rows in known.groupby("engine", sort=True):
        worst = rows.loc[rows["largest peak memory (GiB)"].idxmax()]
        peak = float(worst["largest peak memory (GiB)"])
        held = [f"{fmt.article(size)} {size} GiB GPU {runs_at_once(peak, size, headroom_gib)}" for size in sizes_gib]
        held[0] = held[0].replace(" GPU ", " GPU holds ", 1) + " such runs at once"
        fits = fmt.listing(held)
        parts.append(f"with the {engine} engine the most any run took is {peak:.1f} GiB ({worst['kind']} on "
                     f"{worst['dataset']}, {worst['max length']} tokens, {worst['device']}), so {fits}")
    return ("Peak memory is PyTorch's largest allocated amount; with " + f"{headroom_gib:g} GiB beside each run "
            "for its CUDA context and cache, " + "; ".join(parts) + ". The time then follows the sum of the runs' "
            "training times, shared among the runs a GPU holds at once, at that GPU's own speed on these small, "
            "launch-bound steps: no run here was measured on a GPU smaller than those in the table, so that speed "
            "is yours to measure (`compnb plan` lists the runs, and a chapter estimates its training time from any "
            "run timed on your device before it starts).")
