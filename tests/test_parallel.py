"""Parallel jobs: results in job order, failures gathered and named, bad worker counts refused."""

import math
import operator

import pytest

from compnb import parallel
from compnb.parallel import run_jobs


def test_jobs_run_in_spawned_workers_and_come_back_in_order():
    assert run_jobs(operator.add, [(1, 2), (3, 4), (5, 6)], 2, "add") == [3, 7, 11]
    assert run_jobs(operator.add, [(1, 2)], 1, "add") == [3]


def test_failures_do_not_stop_the_others_and_are_raised_together():
    with pytest.raises(RuntimeError, match=r"1 of 3 jobs failed:\nminus: ValueError"):
        run_jobs(math.sqrt, [(4.0,), (-1.0,), (9.0,)], 2, "sqrt", names=["four", "minus", "nine"])
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        run_jobs(math.sqrt, [(4.0,)], 0, "sqrt")


def test_the_default_is_five_workers_per_gpu_and_one_on_a_cpu(monkeypatch):
    monkeypatch.setattr(parallel.torch.cuda, "device_count", lambda: 0)
    assert parallel.default_workers() == 1
    monkeypatch.setattr(parallel.torch.cuda, "device_count", lambda: 2)
    assert parallel.default_workers() == 2 * parallel.GPU_WORKERS == 10 and parallel.default_workers(per_gpu=2) == 4
