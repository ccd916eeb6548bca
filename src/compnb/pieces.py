"""Train a chapter's GPU pipeline in time-boxed pieces, and keep a record of each piece.

A GPU lent for a few minutes at a time (a batch queue's time limit, a shared machine) cannot train a whole
profile in one go. The runs are cached and resume from their last whole checkpoint, so the same pipeline
command can simply be run again until it finishes. `python -m compnb.pieces --deadline 540 -- <command>`
runs one such piece: the command in its own process group, stopped at the deadline (SIGTERM to the group, on
which each training process saves a checkpoint of its current step, `compnb.preemption`; SIGKILL to what is left
`GRACE_S` later). Each piece, finished or cut short, is appended (atomically) to
`results/<profile>/<chapter>/pieces.json`: command, start, wall time, whether it was cut short, and the runs
it finished. The book adds a chapter's pieces up to state its GPU time (`compnb.chapters.reliability`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from compnb import atomicio, invocations
from compnb.paths import project_root
from compnb.provenance import git_state

FILE = "pieces.json"
GRACE_S = 15.0  # the most between SIGTERM and SIGKILL: a step and a checkpoint take a few seconds
# the pipeline module of each chapter that trains on a GPU
CHAPTERS = {"compnb.chapters.baseline": "02-baseline-finetune", "compnb.chapters.competency": "03-modified-loss",
            "compnb.chapters.adversarial_eval": "04-adversarial-eval",
            "compnb.chapters.ig_variance_eval": "05-ig-variance"}


def pipeline_of(command: list[str]) -> tuple[str, str]:
    """(profile, chapter) of a pipeline command `python -m <module> [--profile P] ...` (profile default
    'full', as in the pipelines); a ValueError naming the command otherwise."""
    try:
        module = command[command.index("-m") + 1]
    except (ValueError, IndexError):
        module = None
    if module not in CHAPTERS:
        raise ValueError(f"not a chapter pipeline: {' '.join(command)!r}; run one of "
                         + ", ".join(f"python -m {m}" for m in CHAPTERS))
    profile = "full"
    for i, arg in enumerate(command):
        if arg == "--profile" and i + 1 < len(command):
            profile = command[i + 1]
        elif arg.startswith("--profile="):
            profile = arg.split("=", 1)[1]
    return profile, CHAPTERS[module]


def path(profile: str, chapter: str) -> Path:
    """The chapter's pieces log at `profile` (not created)."""
    return project_root() / "results" / profile / chapter / FILE


def read(profile: str, chapter: str) -> list[dict]:
    """The chapter's recorded pieces at `profile`, oldest first ([] without a log)."""
    log = path(profile, chapter)
    return json.loads(log.read_text()) if log.is_file() else []


def append(profile: str, chapter: str, piece: dict) -> Path:
    """Append `piece` to the chapter's log, rewriting it atomically while holding a lock on its folder (pieces
    of one chapter may end at once, on two GPUs)."""
    log = path(profile, chapter)
    log.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(log.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        return atomicio.write_json(log, [*read(profile, chapter), piece])
    finally:
        os.close(folder)


def _alive(group: int) -> bool:
    """Whether a process of process group `group` is left that has not exited: on Linux, one whose state in
    /proc is not zombie (an exited process that only waits to be reaped, which signal 0 would still find)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").is_file():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if int(pgrp) == group and state != "Z":
            return True
    return False


def _stop(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the process's group (training processes save a checkpoint of their step, `compnb.preemption`)
    unless its leader has ended, then SIGKILL to what is left of the group after at most `grace_s` seconds."""
    group = process.pid
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while time.monotonic() < end and (process.poll() is None or _alive(group)):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
    process.wait()


class _Terminated(Exception):
    """SIGTERM reached the piece runner itself (a batch job's time limit, say)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def exit_status(returncode: int | None) -> int:
    """A child's return code as a shell reports it: 128 + the signal for one ended by a signal."""
    return 128 - returncode if returncode is not None and returncode < 0 else int(returncode or 0)


def run_piece(command: list[str], deadline_s: float, grace_s: float = GRACE_S) -> dict:
    """Run the pipeline `command` until it ends, `deadline_s` seconds pass or this process is told to stop
    (SIGTERM, Ctrl-C), record the piece and return its record (keys: id, command, started, wall_time_s,
    cut_short, cut_by, exit_code, runs_finished, devices, git). The pipeline sees the piece's id in
    `invocations.PIECE_ENV`, so that the record it writes on finishing names its piece."""
    profile, chapter = pipeline_of(command)
    piece_id = uuid.uuid4().hex[:12]
    before = invocations.finished_runs(profile)
    started, start = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = ((signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, _raise_terminated))
                if main_thread else None)
    cut_by = None
    try:
        process = subprocess.Popen(command, start_new_session=True,
                                   env=os.environ | {invocations.PIECE_ENV: piece_id})
        try:
            process.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            cut_by = "deadline"
        except (KeyboardInterrupt, _Terminated):
            cut_by = "signal"
        finally:
            if main_thread:  # a second signal while stopping does not interrupt the stop and the record
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                _stop(process, grace_s)
            finally:
                if main_thread:
                    signal.signal(signal.SIGINT, previous[0])
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous[1])
    wall = time.perf_counter() - start
    after = invocations.finished_runs(profile)
    finished = sorted(name for name, mtime in after.items() if before.get(name) != mtime)
    devices = invocations.devices([project_root() / "results" / profile / "runs" / n for n in finished])
    piece = {"id": piece_id, "command": shlex.join(command), "started": started, "wall_time_s": wall,
             "cut_short": cut_by is not None, "cut_by": cut_by, "exit_code": process.returncode,
             "runs_finished": finished, "devices": devices, "git": git_state()}
    append(profile, chapter, piece)
    return piece


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="run a chapter's GPU pipeline for at most --deadline seconds and record the piece; run the "
                    "same command again to go on where it stopped",
        usage="python -m compnb.pieces --deadline SECONDS -- python -m compnb.chapters.<pipeline> [options]")
    parser.add_argument("--deadline", type=float, required=True, help="seconds after which the pipeline is stopped")
    parser.add_argument("--grace", type=float, default=GRACE_S,
                        help=f"seconds its processes get to save their checkpoints before SIGKILL (default "
                             f"{GRACE_S:g}; a large backbone's optimizer state needs more)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the pipeline command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    for name, value in (("deadline", args.deadline), ("grace", args.grace)):
        if not value > 0:
            parser.exit(2, f"--{name} must be a positive number of seconds, got {value:g}\n")
    try:
        pipeline_of(command)
    except ValueError as error:
        parser.exit(2, f"{error}\n")
    try:
        piece = run_piece(command, args.deadline, args.grace)
    except OSError as error:  # the command cannot start: a missing interpreter, say
        parser.exit(2, f"cannot run {shlex.join(command)!r}: {error}\n")
    state = (f"ended with exit status {exit_status(piece['exit_code'])}" if not piece["cut_short"]
             else "cut short at the deadline" if piece["cut_by"] == "deadline" else "stopped by a signal")
    print(f"piece {state} after {piece['wall_time_s']:.0f} s; {len(piece['runs_finished'])} run(s) finished"
          + ("; run the same command again to go on" if piece["cut_short"] else ""))
    return 0 if piece["cut_short"] else exit_status(piece["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
