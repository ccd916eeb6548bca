"""The paper profile: the papers' settings per chapter, and, offline, one message at the door naming every missing
backbone and dataset split, with nothing run or written; the SNLI sample never stands in for the corpus."""

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from compnb import cli, data, models, profiles
from compnb.chapters import adversarial_eval, baseline, competency, ig_variance_eval
from compnb.paths import project_root
from conftest import needs_data

ELECTRA, OPT, LLAMA = profiles.ELECTRA, profiles.OPT, profiles.LLAMA


def _tree() -> dict[str, int]:
    """Every path under results/ and build/ with its modification time."""
    root = project_root()
    return {str(p): p.stat().st_mtime_ns for top in ("results", "build") for p in (root / top).rglob("*")}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No hub, empty model and data folders (the shared offline data still found after them)."""
    for name in ("models", "data"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    monkeypatch.setenv("COMPNB_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("COMPNB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COMPNB_COMPLETE_DATA", "0")  # restored afterwards, whatever the door sets
    return tmp_path


@pytest.fixture
def supplied(offline, monkeypatch):
    """Every paper backbone as a folder with a config, and small 'complete' SNLI splits (COMPLETE_ROWS lowered)."""
    for name in {b for backbones in profiles.PAPER_BACKBONES.values() for b in backbones}:
        folder = offline / "models" / name.replace("/", "__")
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    (offline / "data" / "snli").mkdir()
    for split in ("train", "validation", "test"):
        pd.DataFrame({"premise": ["a man sleeps"] * 3, "hypothesis": ["he sleeps", "he runs", "he may"],
                      "label": [0, 2, 1]}).to_parquet(offline / "data" / "snli" / f"{split}.parquet")
    monkeypatch.setattr(data, "COMPLETE_ROWS", {key: 3 for key in data.COMPLETE_ROWS} | {("sst2", "train"): 1,
                                                                                           ("sst2", "validation"): 1})
    return offline


def test_every_chapter_has_every_profile_and_the_paper_profile_uses_the_full_keys():
    for chapter, by_profile in profiles.CHAPTER_SETTINGS.items():
        assert set(by_profile) == set(profiles.PROFILES), chapter
        assert set(by_profile["paper"]) == set(by_profile["full"]), chapter
    assert {b for bs in profiles.PAPER_BACKBONES.values() for b in bs} == set(models.PAPER_BACKBONES)
    assert set(profiles.PAPER_BACKBONES) < set(profiles.PAPER_DATA) == set(profiles.CHAPTER_SETTINGS)


def test_the_paper_profile_states_the_papers_settings():
    paper = {chapter: settings["paper"] for chapter, settings in profiles.CHAPTER_SETTINGS.items()}
    ig = paper["05-ig-variance"]
    assert (ig["lr"], ig["batch_size"], ig["patience"], ig["lam"], ig["alpha"], ig["n_steps"]) == (5e-5, 16, 1, 0.1,
                                                                                                    10.0, 10)
    assert paper["03-modified-loss"]["lams"] == (0.1, 0.5, 1.0) and len(paper["03-modified-loss"]["forms"]) == 3
    assert paper["04-adversarial-eval"]["per_class"] == 5000
    assert all(s.get("max_train_examples", None) is None and s.get("max_eval_examples") is None
               for c, s in paper.items() if c != "01-artifact-mining")
    assert profiles.paper_backbones("03-modified-loss") == (OPT, LLAMA)
    assert profiles.paper_backbones("05-ig-variance") == (ELECTRA,) and profiles.paper_backbones("06-claims") == ()


@needs_data
def test_offline_chapter_at_paper_stops_at_the_door_with_one_message_and_writes_nothing(offline, capsys):
    before = _tree()
    assert cli.main(["chapter", "03", "--profile", "paper"]) == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and message.startswith("compnb chapter: error: chapter 03-modified-loss")
    for needed in (OPT, LLAMA, "snli/train", "snli/validation", "only the offline SNLI sample",
                   "HF_HUB_OFFLINE=1 disables the hub", "COMPNB_MODELS_DIR=<dir>", "<dir>/facebook__opt-1.3b/",
                   "COMPNB_DATA_DIR=<dir>", "<dir>/snli/train.parquet", "network access", "Nothing was run or written"):
        assert needed in message, needed
    assert "sst2" not in message.split("passed over")[0]  # the shared SST-2 copy is complete
    assert _tree() == before


@needs_data
@pytest.mark.parametrize("argv", [["chapter", "05", "--profile", "paper"], ["plan", "--chapter", "05", "--profile",
                                                                             "paper", "--out", "PLAN"]])
def test_cli_commands_at_paper_stop_offline(offline, capsys, argv):
    before = _tree()
    argv = [str(offline / "plan") if a == "PLAN" else a for a in argv]
    assert cli.main(argv) == 2
    message = capsys.readouterr().err
    assert ELECTRA in message and "snli/test" in message
    assert _tree() == before and not (offline / "plan").exists()


@needs_data
@pytest.mark.parametrize("pipeline", [baseline.main, competency.main, adversarial_eval.main, ig_variance_eval.main])
def test_pipelines_at_paper_stop_before_training(offline, monkeypatch, pipeline):
    argv = ["--profile", "paper", "--model", ELECTRA]
    monkeypatch.setattr(sys, "argv", ["pipeline", *argv])  # baseline.main reads sys.argv
    before = _tree()
    with pytest.raises(profiles.MissingInputsError, match="at profile 'paper' cannot start"):
        pipeline() if pipeline is baseline.main else pipeline(argv)
    assert _tree() == before


@needs_data
def test_train_at_paper_names_its_backbone_and_data_before_writing(offline, capsys):
    path = offline / "run.json"
    path.write_text(json.dumps({"model": ELECTRA, "dataset": "snli", "profile": "paper"}))
    before = _tree()
    assert cli.main(["train", "--config", str(path)]) == 2
    message = capsys.readouterr().err
    assert ELECTRA in message and "snli/train, snli/validation" in message and _tree() == before


def test_supplied_inputs_open_the_door_inject_the_backbone_and_forbid_samples(supplied, monkeypatch):
    seen = {}
    monkeypatch.setattr("compnb.bookbuild.run_chapter",
                        lambda chapter, profile, params, prepare_only: seen.update(params=params) or Path("x"))
    assert cli.main(["chapter", "05", "--profile", "paper"]) == 0
    assert seen["params"]["model"] == ELECTRA and os.environ["COMPNB_COMPLETE_DATA"] == "1"
    assert cli.main(["chapter", "03", "--profile", "paper", "-p", "model", LLAMA]) == 0
    assert seen["params"]["model"] == LLAMA
    assert profiles.settings("05-ig-variance", "paper")["lr"] == 5e-5
    assert data.source_of(data.load("snli", "train"))["location"].startswith(str(supplied / "data"))


@needs_data
def test_the_snli_sample_never_stands_in_for_the_complete_corpus(offline, monkeypatch):
    assert data.source_of(data.load("snli", "train", complete=False))["sample"]
    with pytest.raises(data.DataNotFoundError, match="only the offline SNLI sample") as err:
        data.load("snli", "train", complete=True)
    assert "no complete local copy of snli/train" in str(err.value)
    monkeypatch.setenv("COMPNB_COMPLETE_DATA", "1")
    with pytest.raises(data.DataNotFoundError, match="only the offline SNLI sample"):
        data.load("snli", "validation")
    assert data.locate("snli", "test", complete=True)[0] is None
    assert data.locate("sst2", "train", complete=True)[0].endswith("sst2/train.parquet")


def test_a_local_subset_is_passed_over_when_the_complete_split_is_required(tmp_path):
    (tmp_path / "snli").mkdir()
    pd.DataFrame({"premise": ["p"] * 4, "hypothesis": ["h"] * 4, "label": [0, 1, 2, -1]}).to_parquet(
        tmp_path / "snli" / "validation.parquet")
    assert len(data.load("snli", "validation", search_paths=[tmp_path], hub=False)) == 3
    with pytest.raises(data.DataNotFoundError, match="holds 3 labelled rows of snli/validation, not the complete"):
        data.load("snli", "validation", search_paths=[tmp_path], hub=False, complete=True)
    where, passed = data.locate("snli", "validation", complete=True, search_paths=[tmp_path])
    assert where is None and "3 labelled rows" in passed[0]
