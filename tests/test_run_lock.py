"""One process trains a run at a time (`compnb.run_lock`): the lock's rules on their own (a live holder is waited
for, a gone or silent one is taken over, the lock and the folders it made go on release), then real `compnb train`
processes of one config: two and four at once, and a waiting one whose lock holder is killed."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import tiny_runs

from compnb import run_lock
from compnb.chapters import faults
from compnb.run_cache import run_dir


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return faults.tiny_world(tmp_path_factory.mktemp("lock-world"))


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(run_lock, "POLL_S", 0.02)


def _plant(folder: Path, **holder) -> Path:
    """A lock file in `folder` as another process would have left it."""
    folder.mkdir(parents=True, exist_ok=True)
    values = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": None, "since": time.time()} | holder
    path = folder / run_lock.LOCK
    path.write_text(json.dumps(values))
    return path


def _gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_lock_whose_process_is_gone_is_taken_over_with_a_message(tmp_path, fast):
    pid = _gone_pid()
    _plant(tmp_path / "run", pid=pid)
    said = []
    with run_lock.hold(tmp_path / "run", say=said.append) as waited:
        assert run_lock._read(tmp_path / "run" / run_lock.LOCK).pid == os.getpid()
    assert not waited and len(said) == 1
    assert said[0].startswith(f"run: taking over the training lock of process {pid} on {socket.gethostname()} (taken ")
    assert said[0].endswith(": that process is gone")
    assert not (tmp_path / "run" / run_lock.LOCK).exists()


def test_a_reused_pid_does_not_keep_a_dead_holders_lock(tmp_path, fast):
    """The lock names this (live) pid but another start tick: the pid was reused, the holder is gone."""
    _plant(tmp_path / "run", pid_start=run_lock._start_tick(os.getpid()) - 1)
    said = []
    with run_lock.hold(tmp_path / "run", say=said.append):
        pass
    assert said and said[0].endswith("that process is gone")


def test_a_live_holder_is_waited_for_with_a_message_until_it_lets_go(tmp_path, fast):
    folder, said, holding = tmp_path / "run", [], threading.Event()

    def other() -> None:
        with run_lock.hold(folder, say=said.append):
            holding.set()
            time.sleep(0.5)
            (folder / "done").write_text("")

    thread = threading.Thread(target=other)
    thread.start()
    holding.wait()
    with run_lock.hold(folder, say=said.append) as waited:
        assert (folder / "done").is_file()  # the other holder finished first
    thread.join()
    assert waited and len(said) == 1
    assert said[0].startswith(f"run: waiting for process {os.getpid()} on {socket.gethostname()}, which has been "
                              "training this run since ")


def test_another_hosts_lock_is_stale_only_when_silent_past_the_limit(tmp_path, fast, monkeypatch):
    path = _plant(tmp_path / "run", host="elsewhere", pid=1)
    assert run_lock._stale(path, run_lock._read(path)) is None  # alive as far as this host can tell
    monkeypatch.setenv(run_lock.STALE_ENV, "100")
    old = time.time() - 150
    os.utime(path, (old, old))
    said = []
    with run_lock.hold(tmp_path / "run", say=said.append):
        pass
    assert said[0].startswith("run: taking over the training lock of process 1 on elsewhere (taken ")
    assert said[0].endswith("no sign of life from that host for 150 s, more than the limit of 100 s "
                            "(COMPNB_LOCK_STALE_S)")
    monkeypatch.setenv(run_lock.STALE_ENV, "soon")
    with pytest.raises(ValueError, match="COMPNB_LOCK_STALE_S must be a number of seconds > 0, got 'soon'"):
        run_lock.stale_after_s()


def test_the_holder_keeps_its_lock_alive_and_an_empty_lock_goes_after_a_while(tmp_path, fast, monkeypatch):
    monkeypatch.setattr(run_lock, "HEARTBEAT_S", 0.02)
    with run_lock.hold(tmp_path / "run"):
        path = tmp_path / "run" / run_lock.LOCK
        os.utime(path, (0, 0))
        time.sleep(0.3)
        assert time.time() - path.stat().st_mtime < 5
    path.parent.mkdir()
    path.write_text("")  # a process died between creating the file and writing its name
    os.utime(path, (time.time() - 60,) * 2)
    said = []
    with run_lock.hold(tmp_path / "run", say=said.append):
        pass
    assert said == ["run: taking over an empty training lock: it has named no holder for 60 s"]


def test_release_removes_the_lock_and_the_folders_it_made_only(tmp_path, fast):
    with run_lock.hold(tmp_path / "runs" / "run"):
        assert (tmp_path / "runs" / "run" / run_lock.LOCK).is_file()
    assert list(tmp_path.iterdir()) == []
    with run_lock.hold(tmp_path / "runs" / "run"):
        (tmp_path / "runs" / "run" / "config.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "runs" / "run").iterdir()) == ["config.json"]


def _wait_for(condition, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_training_data_is_refused_at_once_even_while_its_run_is_locked(world, tmp_path):
    """`compnb train` on a training file with a label outside the task, while another live process holds the run's
    lock: it is refused with the data's error line at once, without waiting for the lock or touching the run
    folder (chapter 7 checks bad inputs side by side, and its three bad-data cases share one run folder)."""
    data = tmp_path / "data"
    (data / "sst2").mkdir(parents=True)
    pd.DataFrame({"sentence": ["a fine film", "dull"], "label": [1, 7]}).to_parquet(data / "sst2" / "train.parquet")
    shutil.copy2(world.data / "sst2" / "validation.parquet", data / "sst2" / "validation.parquet")
    cfg = faults.tiny_config(world)
    lock = _plant(run_dir(cfg, tmp_path / "runs"))  # held by this test's process, which stays alive
    before = {p: p.read_bytes() for p in lock.parent.iterdir()}
    args = ["train", "--config", str(tiny_runs.write_config(cfg, tmp_path / "c.json")), "--runs-root",
            str(tmp_path / "runs")]
    done = subprocess.run([sys.executable, "-m", "compnb.cli", *args], capture_output=True, text=True, timeout=60,
                          env=os.environ | tiny_runs.env(world) | {"COMPNB_DATA_DIR": str(data)})
    assert done.returncode != 0 and "waiting for" not in done.stderr and "Traceback" not in done.stderr
    assert "column 'label' has values [7]; allowed for sst2: 0..1" in done.stderr.strip().splitlines()[-1]
    assert {p: p.read_bytes() for p in lock.parent.iterdir()} == before


@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_trainings_of_one_config_train_it_once(world, tmp_path, processes):
    """`compnb train --config c.json` started in `processes` processes while the run's lock is held here: each
    waits with a message; once the lock is let go one trains and the others return its finished folder, with no
    traceback anywhere."""
    cfg = faults.tiny_config(world)
    config = tiny_runs.write_config(cfg, tmp_path / "c.json")
    folder = run_dir(cfg, tmp_path / "runs")
    waiting = f"{folder.name}: waiting for process {os.getpid()} on "
    logs = [tmp_path / f"stderr-{i}" for i in range(processes)]
    args = ["train", "--config", str(config), "--runs-root", str(tmp_path / "runs")]
    with run_lock.hold(folder):
        children = [faults.processes().Process(target=faults.run_cli, args=(args, log, tiny_runs.env(world)))
                    for log in logs]
        for child in children:
            child.start()
        _wait_for(lambda: all(log.is_file() and waiting in log.read_text() for log in logs), "every process to wait")
    for child in children:
        child.join(180)
    errors = [log.read_text() for log in logs]
    assert [child.exitcode for child in children] == [0] * processes, errors
    assert [log.with_suffix(".out").read_text() for log in logs] == [f"{folder}\n"] * processes
    assert not any("Traceback" in text for text in errors)
    assert sum(f"{folder.name}: 100%|" in text for text in errors) == 1  # one progress bar: trained once
    assert (folder / "metrics.json").is_file() and not (folder / run_lock.LOCK).exists()


def test_a_killed_lock_holder_is_taken_over_by_the_waiting_process(world, tmp_path):
    cfg = faults.tiny_config(world)
    config = tiny_runs.write_config(cfg, tmp_path / "c.json")
    folder, paused, log = run_dir(cfg, tmp_path / "runs"), tmp_path / "paused", tmp_path / "stderr"
    context, env = faults.processes(), tiny_runs.env(world)
    holder = context.Process(target=faults.train_paused, args=(config, tmp_path / "runs", paused, 3, env))
    holder.start()
    _wait_for(paused.is_file, "the first process to reach step 3")
    args = ["train", "--config", str(config), "--runs-root", str(tmp_path / "runs")]
    waiter = context.Process(target=faults.run_cli, args=(args, log, env))
    waiter.start()
    _wait_for(lambda: log.is_file() and f"waiting for process {holder.pid} on" in log.read_text(),
              "the second process to wait")
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    waiter.join(180)
    text = log.read_text()
    assert waiter.exitcode == 0, text
    assert log.with_suffix(".out").read_text() == f"{folder}\n" and "Traceback" not in text
    assert (f"{folder.name}: taking over the training lock of process {holder.pid} on {socket.gethostname()} "
            "(taken " in text) and "): that process is gone" in text
    assert (folder / "metrics.json").is_file() and not (folder / run_lock.LOCK).exists()
    assert json.loads((folder / "metrics.json").read_text())["steps"] == 12
