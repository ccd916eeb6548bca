"""Invocation records: which runs an invocation trained, and when the book's GPU cost may be stated."""

import json

import pandas as pd

from compnb import invocations, run_cache
from compnb.chapters import reliability


def test_a_run_counts_as_trained_when_its_finished_marker_is_new_or_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(invocations, "results_dir", lambda profile, chapter: tmp_path / chapter)
    runs = [tmp_path / "runs" / name for name in ("a", "b", "c")]
    for folder in runs[:2]:
        folder.mkdir(parents=True)
        (folder / run_cache.FINISHED).write_text(json.dumps({"device": "CPU"}))
    before = {f.name: (f / run_cache.FINISHED).stat().st_mtime_ns for f in runs[:2]}
    runs[2].mkdir(parents=True)
    (runs[2] / run_cache.FINISHED).write_text(json.dumps({"device": "GPU"}))  # new since `before`
    rec = invocations.record("smoke", "02-baseline-finetune", "cmd", runs, before, 12.0)
    assert (rec["params"]["runs"], rec["params"]["runs_trained"], rec["params"]["devices"]) == (3, 1, ["GPU"])
    assert invocations.read("smoke", "02-baseline-finetune")["params"]["wall_time_s"] == 12.0


def _row(chapter, trained, runs, minutes):
    return {"chapter": chapter, "command": "c", "runs trained": trained, "runs": runs, "wall time (min)": minutes,
            "device": "H100", "commit": "abc"}


def test_the_total_is_stated_only_when_every_chapter_trained_every_run():
    full = pd.DataFrame([_row(c, 3, 3, 2.0) for c in reliability.PIPELINES])
    assert "took 8.0 minutes" in reliability.cost_sentence(full)
    cached = full.copy()
    cached.loc[1, "runs trained"] = 1
    assert "not timed from scratch" in reliability.cost_sentence(cached)
    assert "no recorded invocation" in reliability.cost_sentence(full.iloc[:2])


def test_recorded_commands_show_the_module_path_of_today():
    assert (reliability.current_command("python -m compnb.competency --profile full --workers 5")
            == "python -m compnb.chapters.competency --profile full --workers 5")
    assert reliability.current_command("python -m compnb.chapters.baseline --profile full") == \
        "python -m compnb.chapters.baseline --profile full"


def test_every_chapter_case_of_the_cli_check_watches_what_the_chapter_would_write(tmp_path):
    for case in reliability.bad_inputs(str(tmp_path)):
        if case.args[0] in ("chapter", "train"):
            assert case.writes, f"{case.what}: watches nothing the command could write"
        if case.args[:2] == ("chapter", "03"):
            assert {"results/smoke/03-modified-loss", "results/smoke/runs"} <= set(case.writes)


def test_the_write_watch_sees_files_and_folders_and_ignores_the_rest(tmp_path):
    watched, other = tmp_path / "watched", tmp_path / "other"
    (watched / "deep").mkdir(parents=True)
    other.mkdir()
    single = tmp_path / "one.ipynb"
    single.write_text("{}")
    before = reliability._files([watched, single])
    (other / "unrelated.json").write_text("{}")
    assert reliability._files([watched, single]) == before
    (watched / "deep" / "new.json").write_text("{}")
    assert set(reliability._files([watched, single])) - set(before) == {str(watched / "deep" / "new.json")}
