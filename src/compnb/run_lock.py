"""One process trains a run at a time: `hold(folder)` takes the run folder's `train.lock` and waits while
another live process holds it.

The lock is a file created atomically (`os.open` with `O_CREAT | O_EXCL`) holding its holder's host, process
id, that process's start tick (Linux, so that a reused pid is not mistaken for the holder) and the time it was
taken. While held, a thread touches the file every `HEARTBEAT_S` seconds. A waiting process polls every
`POLL_S` seconds and says so at once and then every `SAY_EVERY_S` seconds. A lock is stale, and is taken over
with a message, when its holder is on this host and gone, or on another host and silent (no heartbeat) for
more than `stale_after_s()` seconds (`COMPNB_LOCK_STALE_S`, default `STALE_AFTER_S`). Takeovers go through a
second file, `train.lock.takeover`, created the same way, so two waiters cannot both remove a stale lock and
each take their own. Released, the lock file goes, and so do the folders `hold` created if nothing else came
into them.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

LOCK = "train.lock"
STALE_ENV = "COMPNB_LOCK_STALE_S"
STALE_AFTER_S = 600.0  # another host's lock without a heartbeat for this long is stale
HEARTBEAT_S = 30.0
POLL_S = 1.0
SAY_EVERY_S = 60.0
UNWRITTEN_S = 30.0  # a lock file still empty after this long was left by a process that died creating it


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: host name, process id, the process's start tick (None off Linux), when it took it."""

    host: str
    pid: int
    pid_start: int | None
    since: float

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"

    def taken(self) -> str:
        """When the lock was taken, in UTC."""
        return datetime.fromtimestamp(self.since, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def stale_after_s() -> float:
    """How long another host's lock may go without a heartbeat before it is taken over (`COMPNB_LOCK_STALE_S`)."""
    text = os.environ.get(STALE_ENV, "").strip()
    if not text:
        return STALE_AFTER_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{STALE_ENV} must be a number of seconds > 0, got {text!r}")
    return value


def me() -> Holder:
    """This process as a lock holder."""
    return Holder(socket.gethostname(), os.getpid(), _start_tick(os.getpid()), time.time())


@contextmanager
def hold(folder: Path, say: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold `folder`'s training lock for the block, waiting while another live process holds it; yields whether
    it waited. `say` (default: a line on stderr) gets the waiting and takeover messages."""
    say = say or _stderr
    created = _make_folders(folder)
    path = folder / LOCK
    started = said = None  # monotonic times: the wait's start, the last message
    while not _create(path, holder := me(), created, folder):
        other = _read(path)
        if other is None:
            continue  # released meanwhile
        reason = _stale(path, other)
        if reason is not None:
            whose = (f"the training lock of {other} (taken {other.taken()})" if other.pid
                     else "an empty training lock")
            _take_over(path, other, f"{folder.name}: taking over {whose}: {reason}", say)
            continue
        now = time.monotonic()
        started = started or now
        if other.pid and (said is None or now - said >= SAY_EVERY_S):  # pid 0: being written, a moment
            so_far = "" if said is None else f", still ({now - started:.0f} s so far)"
            say(f"{folder.name}: waiting for {other}, which has been training this run since {other.taken()}{so_far}")
            said = now
        time.sleep(POLL_S)
    beat = _Heartbeat(path)
    try:
        yield started is not None
    finally:
        beat.stop()
        if _read(path) == holder:
            path.unlink(missing_ok=True)
        for made in reversed(created):
            try:
                made.rmdir()
            except OSError:  # something else is in it now
                break


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _create(path: Path, holder: Holder, created: list[Path], folder: Path) -> bool:
    """Create the lock holding `holder` atomically; False when it exists. A folder removed meanwhile (by another
    process's clean-up) is made again."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except FileNotFoundError:
        created[:] = [*created, *(p for p in _make_folders(folder) if p not in created)]
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(asdict(holder)))
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _read(path: Path) -> Holder | None:
    """The lock's holder; None when there is no lock; a holder with pid 0 while the file is still empty or
    unreadable (being written)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return Holder(**json.loads(text))
    except (ValueError, TypeError):
        return Holder("", 0, None, 0.0)


def _stale(path: Path, holder: Holder) -> str | None:
    """Why the lock at `path` held by `holder` is stale, or None while its holder may be alive."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    if holder.pid == 0:
        return f"it has named no holder for {age:.0f} s" if age > UNWRITTEN_S else None
    if holder.host == socket.gethostname():
        return None if _alive(holder) else "that process is gone"
    limit = stale_after_s()
    if age > limit:
        return (f"no sign of life from that host for {age:.0f} s, more than the limit of {limit:.0f} s "
                f"({STALE_ENV})")
    return None


def _take_over(path: Path, stale: Holder, message: str, say: Callable[[str], None]) -> None:
    """Remove the lock at `path` if it still holds `stale`, one process at a time (the takeover file)."""
    guard = path.with_name(f"{LOCK}.takeover")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:  # another process is taking over; its guard outlives it only if it died in these few lines
            if time.time() - guard.stat().st_mtime > UNWRITTEN_S:
                guard.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        time.sleep(POLL_S / 10)
        return
    os.close(fd)
    try:
        if _read(path) == stale:
            say(message)
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


def _alive(holder: Holder) -> bool:
    """Whether the process that took the lock still runs on this host: its pid exists, is not a zombie and, where
    the start tick is known, started when the holder did (not a later process given the same pid)."""
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    state, tick = _proc_stat(holder.pid)
    return state not in ("Z", "X") and (holder.pid_start is None or tick in (None, holder.pid_start))


def _start_tick(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux); None where that is not known."""
    return _proc_stat(pid)[1]


def _proc_stat(pid: int) -> tuple[str | None, int | None]:
    """(state letter, start tick) of process `pid` from Linux's /proc/<pid>/stat; (None, None) elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None, None
    return fields[0], int(fields[19])


class _Heartbeat:
    """Touches the lock file every `HEARTBEAT_S` seconds from a daemon thread, until `stop`."""

    def __init__(self, path: Path):
        self.path, self.done = path, threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"lock heartbeat {path}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
