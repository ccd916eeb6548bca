"""A training step on a batch split over two gloo CPU processes gives the gradient of one model on the whole batch
(float64, every twin: OPT, Llama, ELECTRA), whatever the loss's form; `tests/sharded_worker.py` is the rank.

- Data parallel (each rank a full copy, the gradients averaged as DDP does), as `training._Run._eager_step` runs
  it (`compnb.batch_stats`): every competency form (inverse, exp_subtract, subtract) × saliency method
  (gradient, mask), and the IG-variance loss in both variants, with halves, with halves as two micro-batches
  each, and with 1 + 3 rows, to 1e-10 relative; without `batch_stats` (each part's loss at its own means) the
  non-linear forms and the IG-variance loss are off with halves, and every one of these losses with 1 + 3 rows.
- Sharded (FSDP2): two AdamW steps of cross-entropy and of the competency loss with gradient saliency in each
  form and mask saliency with exp_subtract give the gradients and weights of the unsharded model; with each
  rank's half as two micro-batches, gradient·inverse, gradient·exp_subtract and mask·subtract give its gradient.
- The IG-variance loss refuses sharding with a clear message; a full state dict loads into the sharded model.

Split over `grad_accum` micro-batches in one process: tests/test_split_batches.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import twins
from sharded_worker import FSDP_ACCUM_CASES, FSDP_CASES, LAYOUTS, NAIVE_LAYOUTS, SPLIT_CASES
from test_training import _free_port

from compnb import sharding

WORKER = Path(__file__).parent / "sharded_worker.py"
NAMES = (twins.LLAMA, twins.OPT, twins.ELECTRA)
TOLERANCE = 1e-10  # relative: max |Δ gradient| over the largest gradient entry


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
@pytest.mark.parametrize("case", SPLIT_CASES)
def test_data_parallel_steps_give_the_whole_batchs_gradient(ranks, name, case):
    for rank in ranks:
        result = rank[name]["split"][case]
        assert result.keys() == LAYOUTS.keys()
        for layout, found in result.items():
            assert found["exact"] < TOLERANCE, (layout, found)
            if layout in NAIVE_LAYOUTS and (layout == "uneven" or not case.endswith("-subtract")):
                assert found["naive"] > 1e-9, (layout, found)  # the test can tell the loss from another


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n.split("/")[1])
@pytest.mark.parametrize("case", FSDP_CASES)
def test_sharded_steps_equal_one_unsharded_model_on_the_whole_batch(ranks, name, case):
    for rank in ranks:
        result = rank[name]["fsdp"][case]
        assert result["units"] == 2, "every transformer layer is its own FSDP unit"
        assert result["grad_max_abs_diff"] < 1e-12, result
        assert result["weight_max_abs_diff"] < 1e-11, result


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n.split("/")[1])
def test_sharded_micro_batches_give_the_whole_batchs_gradient(ranks, name):
    for rank in ranks:
        found = rank[name]["fsdp_accum"]
        assert found.keys() == set(FSDP_ACCUM_CASES) and max(found.values()) < TOLERANCE, found


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
