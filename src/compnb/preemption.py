"""Stop a training run at a step boundary on SIGTERM, with a checkpoint of that step.

A batch queue's time limit and `compnb.pieces`'s deadline end a process with SIGTERM. Killed outright, a run
falls back to its last checkpoint (an epoch's end, or `checkpoint_every` steps) and repeats the steps since. While
`on_sigterm` is active, SIGTERM only sets a flag; the training loop reads it after each step (a Python bool, no
device synchronisation), saves a checkpoint of that step and raises `Preempted`, so a resumed run repeats nothing.
Outside the loop, and in a run of several processes (whose ranks could stop at different steps), SIGTERM keeps its
usual effect.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM

_requested = False


class Preempted(Exception):
    """A run stopped on SIGTERM after a step, its checkpoint of that step saved."""


def requested() -> bool:
    """Whether SIGTERM arrived while `on_sigterm` was active."""
    return _requested


def _note(signum: int, frame: object) -> None:
    global _requested
    _requested = True


@contextmanager
def on_sigterm(enabled: bool = True) -> Iterator[None]:
    """While active (and `enabled`, in the main thread), SIGTERM sets `requested()` instead of ending the
    process. On exit the earlier handler is restored; a request nobody acted on (it came after the loop's last
    check, and no exception is leaving) is then passed to that handler, as if it had come just now."""
    global _requested
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested = False
    previous = signal.signal(signal.SIGTERM, _note)
    try:
        yield
    except BaseException:
        signal.signal(signal.SIGTERM, previous)
        _requested = False
        raise
    pending, _requested = _requested, False
    signal.signal(signal.SIGTERM, previous)
    if pending:
        signal.raise_signal(signal.SIGTERM)


def run_main(main: Callable[[], object]) -> None:
    """Call a pipeline's `main`: a run of it stopped by SIGTERM (`Preempted`) ends the process with its one line
    and `EXIT_CODE` instead of a traceback."""
    try:
        main()
    except Preempted as stop:
        print(stop, file=sys.stderr)
        sys.exit(EXIT_CODE)
