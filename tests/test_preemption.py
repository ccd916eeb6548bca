"""SIGTERM while training (`compnb.preemption`): a request is acted on by the loop, or passed on when nobody did;
parallel jobs stop starting and end with `Preempted`. The loop's checkpoint is tested in test_training.py."""

import os
import re
import signal
import threading
import time

import pytest

from compnb import preemption
from compnb.parallel import run_jobs


@pytest.fixture
def recorded():
    """SIGTERM recorded by a handler instead of ending pytest."""
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    yield seen
    signal.signal(signal.SIGTERM, previous)


def test_a_request_nobody_acted_on_reaches_the_earlier_handler_on_exit(recorded):
    with preemption.on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        assert preemption.requested() and recorded == []
    assert recorded == [signal.SIGTERM] and not preemption.requested()


def test_a_request_acted_on_by_an_exception_is_not_passed_on(recorded):
    with pytest.raises(preemption.Preempted), preemption.on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        raise preemption.Preempted("stopped")
    assert recorded == [] and not preemption.requested()


def test_outside_the_main_thread_sigterm_keeps_its_handler(recorded):
    handlers = []

    def in_a_thread():
        with preemption.on_sigterm():
            handlers.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert handlers == [signal.getsignal(signal.SIGTERM)] and handlers[0] is not preemption._note


def test_parallel_jobs_stop_starting_on_sigterm_and_raise_preempted():
    handler = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))  # to this process only, not the workers
    timer.start()
    with pytest.raises(preemption.Preempted, match=r"SIGTERM after \d of 8 jobs") as stop:
        run_jobs(time.sleep, [(3.0,)] * 8, 2, "sleep")
    assert int(re.search(r"after (\d) of", str(stop.value)).group(1)) < 8
    assert signal.getsignal(signal.SIGTERM) is handler
