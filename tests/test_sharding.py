"""Sharded training (FSDP2) of the second-order losses, on two gloo CPU processes: gradients and weights
after two AdamW steps on each rank's half of a batch equal those of one unsharded model on the whole batch
(float64), for cross-entropy and for the competency loss with gradient and mask saliency, on the decoder and
encoder twins; the IG-variance loss refuses with a clear message. `tests/sharded_worker.py` is the rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import twins
from test_training import _free_port

from compnb import sharding

WORKER = Path(__file__).parent / "sharded_worker.py"
NAMES = (twins.LLAMA, twins.OPT, twins.ELECTRA)


@pytest.fixture(scope="module")
def ranks(twins_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(_free_port()), str(WORKER), str(out), *NAMES]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)})
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(2)]


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n.split("/")[1])
@pytest.mark.parametrize("case", ["ce", "competency-gradient", "competency-mask"])
def test_sharded_steps_equal_one_unsharded_model_on_the_whole_batch(ranks, name, case):
    for rank in ranks:
        result = rank[name][case]
        assert result["units"] == 2, "every transformer layer is its own FSDP unit"
        assert result["grad_max_abs_diff"] < 1e-12, result
        assert result["weight_max_abs_diff"] < 1e-11, result


def test_a_full_state_dict_loads_into_the_sharded_model(ranks):
    for rank in ranks:
        for name in NAMES:
            assert rank[name]["loaded_max_abs_diff"] == 0.0


def test_ig_variance_refuses_sharding_with_the_way_out(ranks):
    for rank in ranks:
        for name in NAMES:
            message = rank[name]["ig_refused"]
            assert message is not None and "--use_fsdp" in message and "data parallel" in message


def test_evaluation_shares_run_equal_counts_only_when_sharded():
    batches = [[0, 1], [2, 3], [4, 5], [6]]
    assert sharding.rank_batches(batches, 1, 3, sharded=False) == ([[2, 3]], 1)
    assert sharding.rank_batches(batches, 2, 3, sharded=True) == ([[4, 5], [0, 1]], 1)
    assert sharding.rank_batches(batches[:1], 1, 2, sharded=True) == ([[0, 1]], 0)
    shares = [sharding.rank_batches(batches, r, 3, sharded=True) for r in range(3)]
    assert {len(mine) for mine, _ in shares} == {2}
    assert sorted(i for mine, own in shares for b in mine[:own] for i in b) == list(range(7))
