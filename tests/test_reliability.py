"""Chapter 7's fault cases (`compnb.chapters.faults`), split-batch rows (`compnb.chapters.split_exactness`) and its
tally (`compnb.chapters.reliability`): every case ends in its line and loses nothing today, and each check fails
when what it checks breaks."""

import json
import socket

import pandas as pd
import pytest

from compnb import batch_stats, run_cache, run_lock
from compnb.chapters import faults, reliability, split_exactness


@pytest.fixture(scope="module")
def fault_rows(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    return faults.try_faults(work), str(work)


def test_every_fault_case_ends_in_its_line_and_loses_nothing(fault_rows):
    rows, work = fault_rows
    assert len(rows) == len(faults.FAULTS) >= 13
    failed = rows[~rows["as expected"] | ~rows["nothing lost or half-written"]]
    assert failed.empty, failed.to_dict("records")
    by_fault = rows.set_index("fault")["observed"]
    assert by_fault["the process training a run killed (SIGKILL) while another waits for it"] == (
        "RUN: taking over the training lock of process <pid> on <host> (taken <time>): that process is gone")
    assert by_fault["a finished run's weights cut to 1,000 bytes, then evaluated"].startswith(
        "compnb evaluate: error: OUT/weights-evaluate/runs/RUN/model.safetensors is damaged (1,000 bytes where "
        "run.json records ")
    assert "diverged: its loss was not finite at step 4;" in by_fault["a weight turned NaN in memory before step 4"]
    assert "trained 1 time" in rows["facts"][1] and "4 of 4 waited" in rows["facts"][1]
    text = rows.to_csv()
    assert work not in text and socket.gethostname() not in text  # what changes from build to build is replaced


def test_a_case_that_breaks_gives_a_failing_row(tmp_path):
    def broken(trial):
        """A case that breaks. More."""
        raise TimeoutError(f"timed out waiting for {trial.work / 'x'}")

    faults.write_faults(tmp_path / "work", tmp_path / "rows.json", cases=(broken,))
    (row,) = json.loads((tmp_path / "rows.json").read_text())
    assert row["fault"] == "A case that breaks" and row["observed"] == "TimeoutError: timed out waiting for OUT/x"
    assert not row["as expected"] and not row["nothing lost or half-written"]


def test_expected_lines_match_with_steps_free_and_nothing_else():
    line = "run RUN diverged: its loss was not finite at step <step>; its checkpoint of step <step> is kept"
    assert faults.matches(line, line.replace("<step>", "4", 1).replace("<step>", "2"))
    assert not faults.matches(line, line.replace("<step>", "4", 1).replace("<step>", "two"))
    assert not faults.matches("a (b).", "a (b)!")


def test_plain_replaces_what_changes_from_build_to_build(tmp_path):
    host = socket.gethostname()
    text = (f"{tmp_path}/runs/sst2-ce-0123456789ab: waiting for process 77 on {host}, since 2026-12-04 21:37:34 UTC; "
            "SHA-256 0123456789ab… where run.json records abcdefabcdef…; process 4321 on another-host")
    assert faults.plain(text, tmp_path) == (
        "OUT/runs/RUN: waiting for process <pid> on <host>, since <time>; SHA-256 <sha256>… where run.json records "
        "<sha256>…; process 4321 on another-host")


def test_leftovers_and_intact_see_what_a_cut_short_writer_leaves(tmp_path):
    folder = tmp_path / "runs" / "run"
    (folder / f"{run_cache.CHECKPOINT}.tmp").mkdir(parents=True)
    (folder / run_lock.LOCK).write_text("")
    (folder / ".metrics.json.abc.tmp").write_text("")
    assert faults.leftovers(tmp_path / "runs") == ["run/.metrics.json.abc.tmp", "run/checkpoint.tmp",
                                                   "run/train.lock"]
    assert faults.intact(folder) == "no finished marker"
    (folder / run_cache.FINISHED).write_text("{}")
    assert faults.intact(folder).startswith("left over: run/.metrics.json.abc.tmp")


def test_a_stopped_run_with_a_finished_marker_or_another_checkpoint_lost_something(tmp_path):
    folder = tmp_path / "runs" / "run"
    (folder / run_cache.CHECKPOINT).mkdir(parents=True)
    (folder / run_cache.CHECKPOINT / run_cache.STATE_FILE).write_text(json.dumps({"step": 2}))
    line = "run run diverged: its loss was not finite at step 4; ... its checkpoint of step 2 is kept; ..."
    assert faults._stopped(folder, line)[0]
    assert not faults._stopped(folder, line.replace("step 2 is", "step 4 is"))[0]
    (folder / run_cache.FINISHED).write_text("{}")
    whole, facts = faults._stopped(folder, line)
    assert not whole and "a finished marker (metrics.json)" in facts


def test_split_batches_step_as_the_whole_batch_and_the_old_way_did_not():
    table = split_exactness.split_table()
    assert len(table) == len(split_exactness.losses.FORMS) * len(split_exactness.losses.METHODS) + 2
    assert table["within tolerance"].all(), table.to_dict("records")
    before = table["own means averaged (before): relative gradient difference"]
    linear = table["form or variant"] == "subtract"
    assert (before[~linear] > 1e-6).all() and (before[linear] < 1e-12).all()


def test_the_split_check_fails_when_parts_take_their_own_means(monkeypatch):
    """Without the statistics pass a non-linear loss's parts use their own means: the rows must say so."""
    monkeypatch.setattr(batch_stats, "needs_statistics", lambda loss_fn, params: False)
    table = split_exactness.split_table()
    linear = table["form or variant"] == "subtract"
    assert not table.loc[~linear, "within tolerance"].any() and table.loc[linear, "within tolerance"].all()


def test_tally_counts_every_case_and_says_which_did_not_behave():
    resume = {"finished marker": False, "max |Δ probability|": 0.0, "loss curves equal": True,
              "validation curves equal": True}
    checks = pd.DataFrame({"exit code": [2, 2], "names the problem": [True, True], "traceback": [False, False],
                           "files written": [False, True]})
    rows = pd.DataFrame({"as expected": [True, True, True], "nothing lost or half-written": [True, False, True]})
    split = pd.DataFrame({"within tolerance": [True] * 4})
    counts = reliability.tally(resume, checks, rows, split)
    assert counts["tried"].tolist() == [1, 2, 3, 4] and counts["as expected"].tolist() == [1, 1, 2, 4]
    assert reliability.tally_sentence(counts) == (
        "**10 bad inputs and faults were tried in this build, and 8 of 10 behaved as expected** (1 killed-and-resumed "
        "run, 2 bad CLI inputs, 3 faults during training, 4 split batches): 1 of the bad CLI inputs did not; 1 of "
        "the faults during training did not (see the tables above).")
    assert not reliability.resumed_as_expected(resume | {"finished marker": True})
    whole = reliability.tally(resume, checks.iloc[:1], rows.iloc[:1], split)
    assert reliability.tally_sentence(whole).endswith("and 7 of 7 behaved as expected** (1 killed-and-resumed run, "
                                                      "1 bad CLI inputs, 1 faults during training, 4 split batches).")


def test_tables_show_booleans_as_yes_and_no():
    shown = reliability.yes_no(pd.DataFrame({"ok": [True, False], "code": [0, 2], "text": ["True", "x"]}))
    assert shown.to_dict("list") == {"ok": ["yes", "no"], "code": [0, 2], "text": ["True", "x"]}
    partial = reliability.yes_no(pd.DataFrame({"identical": [True, None], "line": ["RUN: <step>", None]}))
    assert partial["identical"].tolist()[0] == "yes" and pd.isna(partial["identical"].tolist()[1])
    escape = reliability.escaped(partial)
    assert set(escape) == {"identical", "line"} and escape["line"]("RUN: <step>") == "RUN: &lt;step&gt;"
    table = reliability.resume_table({"finished marker": False, "loss curves equal": True, "exit signal": 9,
                                      "max |Δ probability|": 0.0, "curves": {}})
    assert table["value"].tolist() == ["no", "yes", "9", "0.0000"]


def test_the_cost_sentence_says_which_chapters_reused_cached_runs():
    cost = pd.DataFrame({"chapter": ["02-baseline-finetune", "03-modified-loss"], "runs trained": [2, 80],
                         "runs": [6, 80], "wall time (min)": [1.0, 3.0], "device": ["H100", "H100"]})
    assert reliability.cost_sentence(cost) == (
        "The whole book is not timed from scratch at this profile. Chapter 4 has no recorded invocation. "
        "Chapter 5 has no recorded invocation. The last recorded invocations reused cached runs (chapter 2 "
        "trained 2 of its 6; the others came from the run cache).")
