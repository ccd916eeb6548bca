"""Run independent jobs in parallel worker processes, each pinned to a GPU (round-robin) when there are any.

A small model on a big GPU is bound by kernel launches, so several training processes sharing one GPU
fill it; with several GPUs the workers spread over them. Workers are spawned (CUDA-safe), share the CPU
threads, and write their own output to `<tmp>/compnb-worker-<pid>.log` so the parent's bar stays readable.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from compnb import preemption


def _init_worker(devices: "multiprocessing.Queue", threads: int) -> None:
    device = devices.get()
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
    torch.set_num_threads(threads)
    log = os.open(Path(tempfile.gettempdir()) / f"compnb-worker-{os.getpid()}.log",
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


GPU_WORKERS = 5  # per GPU: the fastest of 1, 2 and 5 for chapter 3's jobs, captured engine (benchmarks/bench_workers.py)


def default_workers(per_gpu: int = GPU_WORKERS) -> int:
    """`per_gpu` processes per visible GPU; 1 on a CPU, where one process already uses every core."""
    gpus = torch.cuda.device_count()
    return per_gpu * gpus if gpus else 1


def check_workers(workers: int) -> int:
    """`workers` itself, or a ValueError unless it is an integer >= 1."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    return workers


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int, desc: str,
             names: Sequence[str] | None = None) -> list[Any]:
    """`fn(*job)` for every job, in order of `jobs`: in this process when `workers` is 1, else in `workers`
    spawned processes (`fn` must be importable). A failed job does not stop the others; the failures are
    raised together at the end, named by `names` (default: the job's index). On SIGTERM (which reaches the
    workers too, `compnb.preemption`) no further job starts, the running ones end, and `Preempted` is raised."""
    check_workers(workers)
    names = list(names) if names is not None else [str(i) for i in range(len(jobs))]
    if workers == 1:
        return [fn(*job) for job in tqdm(jobs, desc=desc)]
    context = multiprocessing.get_context("spawn")
    gpus = torch.cuda.device_count()
    devices = context.Queue()
    for i in range(workers):
        devices.put(i % gpus if gpus else None)
    threads = max(1, (os.cpu_count() or 1) // workers)
    results, failures, done = [None] * len(jobs), [], 0
    with preemption.on_sigterm(), ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                                      initargs=(devices, threads)) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc):
            i = futures[future]
            if future.exception() is not None:
                failures.append(f"{names[i]}: {future.exception()!r}")
            else:
                results[i], done = future.result(), done + 1
            if preemption.requested():  # the workers got it too: those training save a checkpoint and stop
                pool.shutdown(wait=True, cancel_futures=True)
                break
        if preemption.requested():
            raise preemption.Preempted(f"SIGTERM after {done} of {len(jobs)} jobs; each run in training saved a "
                                       "checkpoint of its step: the same command goes on from there")
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(jobs)} jobs failed:\n" + "\n".join(failures))
    return results
