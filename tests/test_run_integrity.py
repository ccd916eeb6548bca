"""A finished run records the size and SHA-256 of each file it wrote (`compnb.run_integrity`); reuse, `load_run`,
`evaluate` and the chapters' readers stop at a damaged file with one line naming it and the two ways on, while a
run without its weights (committed) or without a record (older runs) is accepted as it is."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import tiny_runs

from compnb import cli, run_integrity
from compnb.chapters import faults
from compnb.run_cache import run_dir
from compnb.run_integrity import DamagedRunError
from compnb.training import evaluate, load_run, train

WAYS_ON = "retrain run {name} with `compnb train --force` (force=True), or restore the file"
COMMITTED = Path(__file__).resolve().parents[1] / "results" / "full" / "runs"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tiny_runs.trained_world(tmp_path_factory.mktemp("integrity-world"))


@pytest.fixture(autouse=True)
def _data_env(world, monkeypatch):
    monkeypatch.setenv("COMPNB_DATA_DIR", str(world.data))


@pytest.fixture
def run(world, tmp_path) -> Path:
    """A copy of the finished run, to damage."""
    return Path(shutil.copytree(world.finished, run_dir(faults.tiny_config(world, epochs=1), tmp_path / "runs")))


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _line(run: Path, name: str, detail: str) -> str:
    return f"{run / name} is damaged ({detail}); " + WAYS_ON.format(name=run.name)


def _cli_error(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_a_finished_run_records_each_file_it_wrote(world):
    record = json.loads((world.finished / "run.json").read_text())[run_integrity.KEY]
    assert {"config.json", "model.safetensors", "val_probs.npy", "metrics.json", "backbone/config.json",
            "backbone/tokenizer.json"} <= set(record)
    for name, entry in record.items():
        data = (world.finished / name).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_truncated_weights_stop_reuse_load_run_and_evaluate_with_one_line(world, run, tmp_path, capsys):
    size = (run / "model.safetensors").stat().st_size
    _truncate(run / "model.safetensors", 1000)
    line = _line(run, "model.safetensors", f"1,000 bytes where run.json records {size:,}")
    for attempt in (lambda: train(faults.tiny_config(world, epochs=1), runs_root=run.parent),
                    lambda: load_run(run), lambda: evaluate(run, "sst2")):
        with pytest.raises(DamagedRunError) as caught:
            attempt()
        assert str(caught.value) == line
    config = tiny_runs.write_config(faults.tiny_config(world, epochs=1), tmp_path / "c.json")
    assert _cli_error(capsys, ["train", "--config", str(config), "--runs-root", str(run.parent)]) == \
        f"compnb train: error: {line}\n"
    assert _cli_error(capsys, ["evaluate", "--run", str(run), "--dataset", "sst2"]) == f"compnb evaluate: error: {line}\n"
    assert cli.main(["train", "--config", str(config), "--runs-root", str(run.parent), "--force"]) == 0
    assert capsys.readouterr().out == f"{run}\n"
    run_integrity.require_intact(run, verify=True)


def test_truncated_metrics_stop_reuse_and_the_chapters_readers(world, run):
    text = (run / "metrics.json").read_text()
    _truncate(run / "metrics.json", 100)
    line = _line(run, "metrics.json", f"100 bytes where run.json records {len(text):,}")
    for attempt in (lambda: train(faults.tiny_config(world, epochs=1), runs_root=run.parent),
                    lambda: load_run(run), lambda: run_integrity.read_json(run)):
        with pytest.raises(DamagedRunError) as caught:
            attempt()
        assert str(caught.value) == line


def test_same_size_damage_is_caught_by_the_hash_where_cheap_or_when_asked(world, run, monkeypatch, capsys):
    _flip_last_byte(run / "val_probs.npy")
    with pytest.raises(DamagedRunError, match=r"val_probs.npy is damaged \(SHA-256 [0-9a-f]{12}… where run.json "
                                              r"records [0-9a-f]{12}…\); retrain run "):
        run_integrity.load_probs(run)
    shutil.copy2(world.finished / "val_probs.npy", run / "val_probs.npy")
    monkeypatch.setattr(run_integrity, "HASH_BYTES", 1000)  # the weights are now too large to hash unasked
    _flip_last_byte(run / "model.safetensors")
    assert train(faults.tiny_config(world, epochs=1), runs_root=run.parent) == run
    with pytest.raises(DamagedRunError, match="model.safetensors is damaged \\(SHA-256 "):
        train(faults.tiny_config(world, epochs=1), runs_root=run.parent, verify=True)
    err = _cli_error(capsys, ["evaluate", "--run", str(run), "--dataset", "sst2", "--verify"])
    assert err.startswith(f"compnb evaluate: error: {run / 'model.safetensors'} is damaged (SHA-256 ")


def test_a_run_without_its_weights_is_reused_and_load_run_says_how_to_get_them(world, run, capsys):
    (run / "model.safetensors").unlink()
    assert train(faults.tiny_config(world, epochs=1), runs_root=run.parent) == run
    assert _cli_error(capsys, ["evaluate", "--run", str(run), "--dataset", "sst2"]) == (
        f"compnb evaluate: error: run {run.name} has no weights ({run / 'model.safetensors'} was not kept: only "
        "the run's small files were); retrain it with `compnb train --force` (force=True)\n")


def test_a_run_without_a_record_is_checked_for_what_can_be_checked(world, run):
    record = json.loads((run / "run.json").read_text())
    del record[run_integrity.KEY]
    (run / "run.json").write_text(json.dumps(record))
    assert train(faults.tiny_config(world, epochs=1), runs_root=run.parent) == run
    _truncate(run / "model.safetensors", 1000)
    with pytest.raises(DamagedRunError) as caught:
        load_run(run)
    assert str(caught.value) == _line(run, "model.safetensors", "not a whole safetensors file: Error while "
                                      "deserializing header: invalid header length")
    shutil.copy2(world.finished / "model.safetensors", run / "model.safetensors")
    _truncate(run / "metrics.json", 100)
    with pytest.raises(DamagedRunError, match=r"metrics.json is damaged \(not valid JSON: .*\); retrain run "):
        run_integrity.read_json(run)
    _truncate(run / "val_probs.npy", 100)
    with pytest.raises(DamagedRunError, match=r"val_probs.npy is damaged \(not a whole NumPy array: "):
        run_integrity.load_probs(run)
    (run / "run.json").write_text("{")
    with pytest.raises(DamagedRunError, match=r"run.json is damaged \(not valid JSON: "):
        train(faults.tiny_config(world, epochs=1), runs_root=run.parent)


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="no committed runs in this checkout")
def test_the_committed_runs_are_intact_as_they_are():
    folders = sorted(p.parent for p in COMMITTED.glob("*/metrics.json"))
    assert folders
    for folder in folders:
        run_integrity.require_intact(folder)
        assert run_integrity.read_json(folder)["run_id"] == folder.name.rsplit("-", 1)[1]
        assert np.isfinite(run_integrity.load_probs(folder)).all()
