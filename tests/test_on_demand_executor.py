"""OnDemandExecutor: occasional jobs in order on a thread that exists only while there are some."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from firmware_app.workers import OnDemandExecutor

pytestmark = pytest.mark.timeout(30)


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def wait_until(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_jobs_run_in_order_and_the_thread_ends_when_idle() -> None:
    pool = OnDemandExecutor("t-order", idle=0.2)
    assert not pool.running and threads_named("t-order") == []
    done: list[int] = []
    futures = [pool.submit(done.append, i) for i in range(50)]
    assert [f.result(5) for f in futures] == [None] * 50
    assert done == list(range(50))
    assert len(threads_named("t-order")) <= 1
    wait_until(lambda: not pool.running and threads_named("t-order") == [])

    # The next job starts a thread again.
    assert pool.submit(lambda x: x * 2, 21).result(5) == 42
    pool.shutdown(wait=True)
    assert threads_named("t-order") == []


def test_a_job_that_raises_reaches_its_caller_and_the_next_job_still_runs() -> None:
    pool = OnDemandExecutor("t-raise", idle=5.0)

    def fail() -> None:
        raise ValueError("broken job")

    with pytest.raises(ValueError, match="broken job"):
        pool.submit(fail).result(5)
    assert pool.submit(lambda: "after").result(5) == "after"
    pool.shutdown(wait=True)
    assert not pool.running


def test_shutdown_runs_queued_jobs_or_cancels_them_and_refuses_new_ones() -> None:
    gate = threading.Event()
    pool = OnDemandExecutor("t-stop", idle=5.0)
    first = pool.submit(gate.wait, 5)
    queued = pool.submit(lambda: "queued")
    gate.set()
    pool.shutdown(wait=True)  # queued jobs still run
    assert first.result(0) is True and queued.result(0) == "queued"
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)

    gate.clear()
    pool = OnDemandExecutor("t-cancel", idle=5.0)
    running = pool.submit(gate.wait, 5)
    wait_until(running.running)
    dropped = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert dropped.cancelled()
    with pytest.raises(CancelledError):
        dropped.result(0)
    gate.set()
    assert running.result(5) is True
    wait_until(lambda: threads_named("t-cancel") == [])


def test_shutdown_from_a_job_does_not_wait_for_itself() -> None:
    pool = OnDemandExecutor("t-self", idle=5.0)
    assert pool.submit(lambda: pool.shutdown(wait=True)).result(5) is None
    wait_until(lambda: threads_named("t-self") == [])


def test_submits_racing_the_idle_end_all_run() -> None:
    """A job submitted just as the thread gives up waiting still runs (on a new thread)."""
    pool = OnDemandExecutor("t-race", idle=0.001)
    done: list[int] = []
    for i in range(200):
        pool.submit(done.append, i)
        time.sleep(0.0005 * (i % 3))
    pool.shutdown(wait=True)
    wait_until(lambda: len(done) == 200)
    assert sorted(done) == list(range(200))
