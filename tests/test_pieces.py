"""Time-boxed pieces of a pipeline (`compnb.pieces`) and how the book adds them up (`reliability.pieced`)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from compnb import invocations, pieces
from compnb.chapters import reliability

# a stand-in pipeline: `python -c CODE -m compnb.chapters.baseline --profile smoke` parses as chapter 2's
# pipeline, finishes run r1 under the project root given in its environment, then sleeps or exits
FAKE = """
import json, os, pathlib, signal, sys, time
run = pathlib.Path(os.environ["FAKE_ROOT"]) / "results" / "smoke" / "runs" / "r1"
run.mkdir(parents=True, exist_ok=True)
(run / "metrics.json").write_text(json.dumps({"device": "CPU"}))
if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(float(os.environ["FAKE_SLEEP"]))
"""


def command() -> list[str]:
    return [sys.executable, "-c", FAKE, "-m", "compnb.chapters.baseline", "--profile", "smoke"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setattr(pieces, "project_root", lambda: tmp_path)
    monkeypatch.setattr(invocations, "project_root", lambda: tmp_path)
    monkeypatch.setenv("FAKE_ROOT", str(tmp_path))
    return tmp_path


def test_a_pipeline_command_names_its_profile_and_chapter():
    assert pieces.pipeline_of(["python", "-m", "compnb.chapters.competency", "--profile", "smoke",
                               "--datasets", "snli"]) == ("smoke", "03-modified-loss")
    assert pieces.pipeline_of(["python", "-m", "compnb.chapters.ig_variance_eval"]) == ("full", "05-ig-variance")
    assert pieces.pipeline_of(["python", "-m", "compnb.chapters.baseline", "--profile=smoke"]) == (
        "smoke", "02-baseline-finetune")
    with pytest.raises(ValueError, match="not a chapter pipeline: 'python -m compnb.cli chapter 03'"):
        pieces.pipeline_of(["python", "-m", "compnb.cli", "chapter", "03"])


def test_a_piece_cut_at_its_deadline_records_the_runs_it_finished(project, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "60")
    piece = pieces.run_piece(command(), deadline_s=3.0)
    assert piece["cut_short"] and piece["cut_by"] == "deadline" and piece["exit_code"] == -15
    assert pieces.exit_status(piece["exit_code"]) == 143
    assert piece["runs_finished"] == ["r1"] and piece["devices"] == ["CPU"]
    assert 3.0 <= piece["wall_time_s"] < 30.0
    assert pieces.read("smoke", "02-baseline-finetune") == [json.loads(json.dumps(piece))]


def test_a_pipeline_deaf_to_sigterm_is_killed_after_the_grace(project, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "60")
    monkeypatch.setenv("FAKE_IGNORE_TERM", "1")
    piece = pieces.run_piece(command(), deadline_s=3.0, grace_s=1.0)
    assert piece["cut_short"] and piece["exit_code"] == -9 and piece["wall_time_s"] < 30.0


def test_pieces_append_and_a_finished_piece_is_not_cut_short(project, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "0")
    first = pieces.run_piece(command(), deadline_s=60.0)
    second = pieces.run_piece(command(), deadline_s=60.0)
    assert (first["cut_short"], first["exit_code"], first["runs_finished"]) == (False, 0, ["r1"])
    assert second["runs_finished"] == ["r1"]  # written again: its finished marker changed
    assert [p["started"] for p in pieces.read("smoke", "02-baseline-finetune")] == [first["started"],
                                                                                   second["started"]]


@pytest.mark.parametrize("argv, line", [
    (["--deadline", "0", "--", "python", "-m", "compnb.chapters.baseline"], "--deadline must be a positive"),
    (["--deadline", "5", "--grace", "nan", "--", "python", "-m", "compnb.chapters.baseline"],
     "--grace must be a positive"),
    (["--deadline", "5", "--", "python", "-m", "compnb.cli", "chapter", "02"], "not a chapter pipeline"),
])
def test_bad_arguments_get_one_line_and_record_nothing(project, capsys, argv, line):
    with pytest.raises(SystemExit) as stop:
        pieces.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and line in err and len(err.strip().splitlines()) == 1
    assert not list(project.rglob(pieces.FILE))


def piece(started: str, wall: float, finished: list[str], cut: bool = True, id: str = "") -> dict:
    return {"id": id, "command": "python -m compnb.competency --profile full", "started": started,
            "wall_time_s": wall, "cut_short": cut, "exit_code": -15 if cut else 0, "runs_finished": finished,
            "devices": ["H200"]}


def params(names: list[str], trained: list[str], wall: float, piece: str | None = None) -> dict:
    return {"run_names": names, "trained": trained, "wall_time_s": wall, "devices": ["H200"], "runs": len(names),
            "runs_trained": len(trained), "piece": piece}


def test_a_record_made_inside_its_last_piece_counts_the_pieces_alone():
    logged = [piece("2026-12-01T10:00:00+00:00", 100.0, ["old"]),  # an older plan's run: not one of the record's
              piece("2026-12-05T10:00:00+00:00", 500.0, ["r1", "r2"]),
              piece("2026-12-05T10:10:00+00:00", 500.0, []),  # cut short before finishing anything: counted
              piece("2026-12-05T10:15:00+00:00", 100.0, ["other"]),  # another dataset's piece in between: not
              piece("2026-12-05T10:17:00+00:00", 100.0, [], cut=True) | {"command": "another command"},
              piece("2026-12-05T10:20:00+00:00", 200.0, ["r3"], cut=False, id="p4")]
    # the record is written a second after the piece's rounded start + wall time: still its own piece
    got = reliability.pieced(params(["r1", "r2", "r3"], ["r3"], 190.0, piece="p4"), "2026-12-05T10:23:21+00:00",
                             logged)
    assert got["runs trained"] == 3 and got["pieces"] == 3
    assert got["wall time (min)"] == pytest.approx(1200.0 / 60)
    assert got["command"] == "python -m compnb.chapters.competency --profile full"


def test_a_record_made_after_its_pieces_adds_its_own_time_and_runs():
    logged = [piece("2026-12-05T10:00:00+00:00", 500.0, ["r1"])]
    got = reliability.pieced(params(["r1", "r2"], ["r2"], 60.0), "2026-12-05T11:00:00+00:00", logged)
    assert (got["runs trained"], got["pieces"], got["wall time (min)"]) == (2, 2, pytest.approx(560.0 / 60))


def test_an_earlier_campaign_over_the_same_runs_is_not_added():
    logged = [piece("2026-12-01T10:00:00+00:00", 500.0, ["r1"]),
              piece("2026-12-01T10:09:00+00:00", 300.0, ["r2"], cut=False, id="old"),  # it completed the pipeline
              piece("2026-12-05T10:00:00+00:00", 400.0, ["r1"]),  # the runs deleted and trained again
              piece("2026-12-05T10:07:00+00:00", 100.0, ["r2"], cut=False, id="new")]
    got = reliability.pieced(params(["r1", "r2"], ["r2"], 90.0, piece="new"), "2026-12-05T10:08:41+00:00", logged)
    assert (got["runs trained"], got["pieces"], got["wall time (min)"]) == (2, 2, pytest.approx(500.0 / 60))


def test_a_piece_that_only_measured_still_ends_its_record():
    logged = [piece("2026-12-05T10:00:00+00:00", 500.0, ["r1", "r2"]),
              piece("2026-12-05T10:09:00+00:00", 40.0, [], cut=False, id="last")]  # measured, trained nothing
    got = reliability.pieced(params(["r1", "r2"], [], 35.0, piece="last"), "2026-12-05T10:09:40+00:00", logged)
    assert (got["runs trained"], got["pieces"], got["wall time (min)"]) == (2, 2, pytest.approx(540.0 / 60))


def test_a_record_without_pieces_or_names_is_left_as_it_is():
    logged = [piece("2026-12-05T10:00:00+00:00", 500.0, ["other"])]
    assert reliability.pieced(params(["r1"], ["r1"], 60.0), "2026-12-05T11:00:00+00:00", logged) == {}
    assert reliability.pieced({"wall_time_s": 1.0}, "2026-12-05T11:00:00+00:00", logged) == {}


def test_the_cost_table_shows_a_pieced_chapter_with_its_pieces(monkeypatch):
    record = {"params": params(["r1", "r2"], ["r2"], 60.0, piece="p2")
              | {"command": "python -m compnb.chapters.baseline", "profile": "full"},
              "git": {"commit": "abcdef123"}, "created": "2026-12-05T10:09:00+00:00"}
    logged = [piece("2026-12-05T10:00:00+00:00", 300.0, ["r1"]),
              piece("2026-12-05T10:06:00+00:00", 200.0, ["r2"], cut=False, id="p2")]
    monkeypatch.setattr(reliability.invocations, "read",
                        lambda profile, chapter: record if chapter == "02-baseline-finetune" else None)
    monkeypatch.setattr(reliability.competency, "sweep_summary", lambda profile: {})
    monkeypatch.setattr(reliability.pieces, "read",
                        lambda profile, chapter: logged if chapter == "02-baseline-finetune" else [])
    table = reliability.book_cost("full")
    assert table[["runs trained", "runs", "pieces"]].values.tolist() == [[2, 2, 2]]
    assert table["wall time (min)"].iloc[0] == pytest.approx(500.0 / 60)


# a pipeline that trains chapter 7's tiny run under the project root in its environment; after step 2 it writes a
# marker and waits until it is told to stop
TRAINING = """
import json, os, pathlib, time
from compnb import preemption
from compnb.training import TrainConfig, train
root = pathlib.Path(os.environ["FAKE_ROOT"])
config = TrainConfig.from_dict(json.loads((root / "config.json").read_text()))

def wait_at_step_2(state):
    if state.step == 2:
        (root / "at-step-2").write_text("")
    while state.step == 2 and not preemption.requested():
        time.sleep(0.05)

preemption.run_main(lambda: train(config, runs_root=root / "results" / "smoke" / "runs", callback=wait_at_step_2))
"""


def test_a_training_piece_cut_at_its_deadline_keeps_a_checkpoint_of_its_step(project, monkeypatch):
    from compnb.chapters import faults
    from compnb.run_cache import run_dir

    world = faults.tiny_world(project / "world")
    config = faults.tiny_config(world, checkpoint_every=None)  # else checkpoints at epoch ends only (step 6)
    (project / "config.json").write_text(json.dumps(config.to_dict()))
    monkeypatch.setenv("COMPNB_DATA_DIR", str(world.data))
    marker = project / "at-step-2"

    class DeadlineAtStep2(subprocess.Popen):
        """The deadline comes once the child has reached step 2, however long its start took."""

        def wait(self, timeout=None):
            if timeout is not None and not marker.exists():
                end = time.monotonic() + 300.0
                while not marker.exists() and self.poll() is None and time.monotonic() < end:
                    time.sleep(0.05)
                raise subprocess.TimeoutExpired(self.args, timeout)
            return super().wait(timeout)

    monkeypatch.setattr(pieces.subprocess, "Popen", DeadlineAtStep2)
    piece = pieces.run_piece([sys.executable, "-c", TRAINING, "-m", "compnb.chapters.baseline", "--profile", "smoke"],
                             deadline_s=1.0)
    assert piece["cut_short"] and piece["exit_code"] == 143 and piece["runs_finished"] == []
    saved = json.loads((run_dir(config, project / "results" / "smoke" / "runs") / "checkpoint"
                        / "trainer_state.json").read_text())
    assert saved["step"] == 2


def test_sigterm_to_the_piece_runner_stops_the_pipeline_and_still_records_the_piece(project, monkeypatch):
    import threading

    monkeypatch.setenv("FAKE_SLEEP", "60")
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))  # a batch job's limit, say
    timer.start()
    piece = pieces.run_piece(command(), deadline_s=120.0)
    assert piece["cut_short"] and piece["cut_by"] == "signal" and piece["wall_time_s"] < 60.0
    assert pieces.read("smoke", "02-baseline-finetune")[-1]["id"] == piece["id"]


def test_a_command_that_cannot_start_gets_one_line(project, capsys):
    missing = str(project / "no-such-python")
    with pytest.raises(SystemExit) as stop:
        pieces.main(["--deadline", "5", "--", missing, "-m", "compnb.chapters.baseline"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"cannot run '{missing} -m compnb.chapters.baseline'")
    assert len(err.strip().splitlines()) == 1


def test_the_pipeline_sees_its_piece_id(project, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "0")
    code = FAKE + "\n(pathlib.Path(os.environ['FAKE_ROOT']) / 'id').write_text(os.environ['COMPNB_PIECE'])\n"
    piece = pieces.run_piece([sys.executable, "-c", code, "-m", "compnb.chapters.baseline", "--profile", "smoke"],
                             deadline_s=60.0)
    assert (project / "id").read_text() == piece["id"] and len(piece["id"]) == 12


def test_a_process_that_exited_counts_as_gone_before_it_is_reaped():
    leader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    assert pieces._alive(leader.pid)
    os.kill(leader.pid, signal.SIGKILL)
    end = time.monotonic() + 10.0
    while pieces._alive(leader.pid) and time.monotonic() < end:  # a zombie until reaped: signal 0 still finds it
        time.sleep(0.05)
    assert not pieces._alive(leader.pid)
    assert leader.poll() == -9  # reaped only now
