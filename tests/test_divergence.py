"""A diverging run stops at the step where its loss or gradient norm first went non-finite, with one line naming
the run and the step, nothing marked finished and its last good checkpoint kept (`compnb.divergence`)."""

import json

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

import tiny_runs

from compnb import cli, divergence, run_lock, training
from compnb.chapters import faults
from compnb.run_cache import CHECKPOINT, FINISHED, STATE_FILE, run_dir

CALLS = {"n": 0}  # loss calls in this process: one per optimizer step here (eager, no gradient accumulation)


@training.register_loss("test_nan_loss_at", params=("at",))
def nan_loss_at(model, batch, params):
    """Cross-entropy, NaN at call `at`."""
    loss, logits, logs = training.cross_entropy(model, batch, {})
    CALLS["n"] += 1
    return (loss * float("nan") if CALLS["n"] == params["at"] else loss), logits, logs


@training.register_loss("test_nan_gradient_at", params=("at",))
def nan_gradient_at(model, batch, params):
    """Cross-entropy, plus at call `at` a term whose value is 0 and whose gradient is NaN (0 · d√x at x = 0)."""
    loss, logits, logs = training.cross_entropy(model, batch, {})
    CALLS["n"] += 1
    if CALLS["n"] == params["at"]:
        first = next(p for p in model.parameters() if p.requires_grad)
        loss = loss + 0.0 * torch.sqrt(first.sum() * 0.0)
    return loss, logits, logs


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return faults.tiny_world(tmp_path_factory.mktemp("divergence-world"))


@pytest.fixture(autouse=True)
def _fresh(world, monkeypatch):
    monkeypatch.setenv("COMPNB_DATA_DIR", str(world.data))
    CALLS["n"] = 0


def _stopped_cleanly(folder, checkpoint_step: int) -> None:
    """Nothing finished, the lock let go, the checkpoint of `checkpoint_step` kept with finite weights."""
    assert not (folder / FINISHED).exists() and not (folder / run_lock.LOCK).exists()
    assert json.loads((folder / CHECKPOINT / STATE_FILE).read_text())["step"] == checkpoint_step
    weights = load_file(folder / CHECKPOINT / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert [p.name for p in folder.glob("best-*")] == []  # no validation ran after step 4 (epoch end: step 6)


@pytest.mark.parametrize("loss, what", [("test_nan_loss_at", "loss"), ("test_nan_gradient_at", "gradient norm")])
def test_a_non_finite_value_stops_training_at_its_step(world, tmp_path, loss, what):
    """Steps 1-4 are finite (checkpoints at 2 and 4), step 5's loss or gradient is NaN; the loop reads the watch at
    step 6 (a log point), before the checkpoint it would write there."""
    cfg = faults.tiny_config(world, loss=loss, loss_params={"at": 5})
    folder = run_dir(cfg, tmp_path)
    with pytest.raises(divergence.DivergedError) as caught:
        training.train(cfg, runs_root=tmp_path)
    assert str(caught.value) == (
        f"run {folder.name} diverged: its {what} was not finite at step 5; training stopped, nothing is marked "
        "finished and its checkpoint of step 4 is kept; lower lr (now 0.003) or clip gradients with max_grad_norm "
        "(now 1) in its config")
    _stopped_cleanly(folder, 4)


def test_a_huge_learning_rate_without_clipping_stops_compnb_train_with_one_line(world, tmp_path, capsys):
    cfg = faults.tiny_config(world, lr=1e8, max_grad_norm=None, warmup_ratio=0.0)
    config = tiny_runs.write_config(cfg, tmp_path / "c.json")
    assert cli.main(["train", "--config", str(config), "--runs-root", str(tmp_path / "runs")]) == 2
    folder = run_dir(cfg, tmp_path / "runs")
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"compnb train: error: run {folder.name} diverged: its loss was not finite at step ")
    assert err[-1].endswith("lower lr (now 1e+08) or clip gradients with max_grad_norm (now null) in its config")
    assert not any("Traceback" in line for line in err)
    assert not (folder / FINISHED).exists() and not (folder / run_lock.LOCK).exists()


def test_the_watch_reads_the_earliest_step_and_checks_the_weights():
    accelerator, model = Accelerator(cpu=True), torch.nn.Linear(2, 2)
    watch = divergence.Watch(accelerator.device, step=10)
    assert watch.read(accelerator, model) is None
    for step, kind, value in ((11, 1, float("inf")), (12, 0, float("nan")), (13, 1, float("nan"))):
        watch.step = step
        watch.see(kind, torch.tensor([1.0, value]))
    assert watch.read(accelerator) == ("gradient norm", 11)
    watch.step = 12
    watch.see(0, torch.tensor(1.0))
    assert watch.read(accelerator) == ("gradient norm", 11)
    fresh = divergence.Watch(accelerator.device, step=7)
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    assert fresh.read(accelerator) is None and fresh.read(accelerator, model) == ("weights", 7)
