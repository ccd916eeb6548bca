"""Training runs spread over machines with Dask (`pip install compnb[cluster]`).

`run_distributed(configs, scheduler_address)` submits each config to a Dask cluster as one task, which runs
`compnb train --config` in a fresh Python process on whichever worker takes it (so each run starts with clean
CUDA and accelerate state, exactly as a Slurm job of the same plan would). Workers need compnb installed and the
project folder at the same path (its `results/` is where finished runs are cached, so a run already finished is
not trained again). Start a cluster with `dask scheduler` on one node and `dask worker tcp://<node>:8786
--nworkers 1 --nthreads 1 --resources GPU=1` once per GPU elsewhere (CUDA_VISIBLE_DEVICES set per worker), then
pass `resources={"GPU": 1}`. One host is better served by the process pool of `compnb.parallel`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compnb.paths import project_root

if TYPE_CHECKING:
    from compnb.training import TrainConfig


def train_task(config: Mapping[str, Any], root: str, runs_root: str | None = None, gpus: int = 0) -> str:
    """Run `compnb train --config` on `config` (a `TrainConfig.to_dict()`) in a fresh Python process, in `root`
    when that folder exists on this worker, with as many CPU threads as the worker has (Dask sets its workers'
    OMP_NUM_THREADS to 1); with `gpus` > 0, pinned to GPU (worker name mod gpus) of a local cluster. Returns the
    run folder the command printed; a RuntimeError carries the end of its stderr. (This module imports no torch
    at the top, so a worker unpickling the task does not load it twice.)"""
    from distributed import get_worker

    worker = get_worker()
    env = dict(os.environ) | {"OMP_NUM_THREADS": str(worker.state.nthreads)}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(int(worker.name) % gpus)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(dict(config)))
        command = [sys.executable, "-m", "compnb.cli", "train", "--config", str(path)]
        if runs_root is not None:
            command += ["--runs-root", runs_root]
        done = subprocess.run(command, cwd=root if Path(root).is_dir() else None, env=env, capture_output=True,
                              text=True)
    if done.returncode != 0:
        raise RuntimeError(f"compnb train exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def run_distributed(configs: Sequence[TrainConfig], scheduler_address: str | None = None, *,
                    runs_root: str | Path | None = None, resources: Mapping[str, float] | None = None) -> list[Path]:
    """Train every config as one task on the Dask cluster at `scheduler_address` ('tcp://host:8786'), or, when
    None, on a local cluster of one single-threaded worker process per GPU (one without GPUs); return the run
    folders in the order of `configs`. `runs_root` defaults to each run's `results/<profile>/runs`; `resources`
    (e.g. {"GPU": 1}) are reserved on a worker for each task. A failed run does not stop the others: the
    failures are raised together at the end, named by run."""
    import torch
    from distributed import Client, LocalCluster, as_completed

    from compnb.run_cache import run_dir

    names = [run_dir(c, runs_root).name for c in configs]
    root, target = str(project_root()), None if runs_root is None else str(Path(runs_root).resolve())
    gpus = 0 if scheduler_address is not None else torch.cuda.device_count()
    cluster = None if scheduler_address is not None else LocalCluster(
        n_workers=max(gpus, 1), threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        with Client(scheduler_address or cluster) as client:
            futures = {client.submit(train_task, c.to_dict(), root, target, gpus, key=f"train-{name}", pure=False,
                                     resources=dict(resources) if resources else None): i
                       for i, (c, name) in enumerate(zip(configs, names))}
            results, failures = [None] * len(configs), []
            for future in as_completed(futures):
                i = futures[future]
                if future.status == "error":
                    failures.append(f"{names[i]}: {future.exception()!r}")
                else:
                    results[i] = Path(future.result())
    finally:
        if cluster is not None:
            cluster.close()
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(configs)} runs failed:\n" + "\n".join(failures))
    return results
