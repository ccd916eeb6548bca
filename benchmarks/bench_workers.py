"""Benchmark: chapter 3's training jobs from scratch with 1, 2 and 5 worker processes sharing one GPU, all in one
run, to choose the chapters' default worker count for the engine that trains them.

    python benchmarks/bench_workers.py [--profile full] [--workers 1 2 5] \\
        [--json results/full/paper-scale/workers-benchmark.json]

The jobs are the chapter's own (`competency.train_and_measure`: train, score AdvGLUE and the saliency entropies,
and chapter 2's analysis, as the selection seed's runs get it) for a fixed part of chapter 3's grid on SST-2 at
the selection seed: gradient saliency with the inverse and subtract forms at every λ (6 runs at the full
profile) and mask saliency with the subtract form at the grid's smallest λ. Each worker count starts from an empty run cache in its own
scratch project (`_config.yml` and a link to `src/`, so that `compnb.paths.project_root` resolves there and the
project's own runs are never touched). Records the wall time of the whole set and, per run, the engine, training
time and examples per second. Needs the chapter's data and backbone; meant for a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from compnb import atomicio, parallel
from compnb.chapters import competency
from compnb.paths import project_root
from compnb.provenance import git_state

GRADIENT_FORMS = ("inverse", "subtract")  # gradient-saliency runs: these forms at every λ of the grid
MASK_LAMS = 1  # mask-saliency runs: the subtract form at this many of the grid's smallest λ


def subset(profile: str) -> list:
    """The benchmark's configs: chapter 3's SST-2 grid at the selection seed, gradient saliency with
    `GRADIENT_FORMS` at every λ, mask saliency with the subtract form at the `MASK_LAMS` smallest λ."""
    stage1, _ = competency.plan(profile, datasets=("sst2",))
    runs = [c for c in stage1 if c.loss == "competency"]
    gradient = [c for c in runs if c.loss_kwargs["method"] == "gradient" and c.loss_kwargs["form"] in GRADIENT_FORMS]
    mask = sorted((c for c in runs if c.loss_kwargs["method"] == "mask" and c.loss_kwargs["form"] == "subtract"),
                  key=lambda c: c.loss_kwargs["lam"])[:MASK_LAMS]
    return gradient + mask


@contextmanager
def scratch_project(folder: Path):
    """Work inside a fresh project at `folder` (its `_config.yml`, a link to this project's `src/` and, when
    present, `data/`), so that runs and caches land there; the cwd comes back afterwards."""
    root, here = project_root(), Path.cwd()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy2(root / "_config.yml", folder / "_config.yml")
    for name in ("src", "data"):
        if (root / name).exists():
            (folder / name).symlink_to(root / name)
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(here)


def run_set(configs: list, workers: int, folder: Path) -> dict:
    """Train and measure `configs` from scratch with `workers` processes; the wall time and each run's record."""
    with scratch_project(folder):
        start = time.perf_counter()
        folders = parallel.run_jobs(competency.train_and_measure, [(c, 5, True) for c in configs], workers,
                                    f"{workers} worker(s)")
        wall = time.perf_counter() - start
        runs = []
        for path in folders:
            metrics = json.loads((Path(path) / "metrics.json").read_text())
            config = json.loads((Path(path) / "config.json").read_text())
            runs.append({"run": Path(path).name, "method": config["loss_params"]["method"],
                         "form": config["loss_params"]["form"], "lam": config["loss_params"]["lam"],
                         "engine": metrics.get("engine"), "train_time_s": metrics["train_time_s"],
                         "wall_time_s": metrics["wall_time_s"],
                         "train_examples_per_s": metrics["train_examples_per_s"]})
    return {"workers": workers, "wall_s": wall, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "compnb-bench-workers")
    args = parser.parse_args()
    configs = subset(args.profile)
    rows = []
    for workers in args.workers:
        rows.append(run_set(configs, parallel.check_workers(workers), args.scratch / f"workers-{workers}"))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "runs"}), flush=True)
    fastest = min(rows, key=lambda r: r["wall_s"])
    record = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__, "git": git_state(), "profile": args.profile,
              "engine_switch": os.environ.get("COMPNB_CUDA_GRAPHS", "1"), "runs": len(configs),
              "rows": rows, "fastest": fastest["workers"]}
    if args.json:
        atomicio.write_json(args.json, record)


if __name__ == "__main__":
    main()
