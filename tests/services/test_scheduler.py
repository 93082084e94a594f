"""The scheduler: jobs fire at the right wall-clock time (summer time too) on a fake clock,
and the thread sleeps until the next job instead of polling."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from firmware_app.services import scheduler as scheduler_module
from firmware_app.services.scheduler import Scheduler

pytestmark = pytest.mark.timeout(20)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "at", "tz", "expected"),
    [
        # London in winter (UTC+0) and in summer (UTC+1)
        (utc(2026, 1, 10, 12, 0), "18:00", "Europe/London", utc(2026, 1, 10, 18, 0)),
        (utc(2026, 7, 10, 12, 0), "18:00", "Europe/London", utc(2026, 7, 10, 17, 0)),
        # already past today: tomorrow
        (utc(2026, 7, 10, 18, 30), "18:00", "Europe/London", utc(2026, 7, 11, 17, 0)),
        # New York, a time that is the next UTC day
        (utc(2026, 1, 10, 12, 0), "21:30", "America/New_York", utc(2026, 1, 11, 2, 30)),
        # spring forward: 02:30 does not exist on 29 March 2026 in Berlin; runs at 03:30
        (utc(2026, 3, 28, 23, 0), "02:30", "Europe/Berlin", utc(2026, 3, 29, 1, 30)),
        # no zone: UTC
        (utc(2026, 1, 10, 12, 0), "06:15", None, utc(2026, 1, 11, 6, 15)),
    ],
)
def test_daily_job_first_run(start: datetime, at: str, tz: str | None, expected: datetime) -> None:
    s = Scheduler(Clock(start))
    job = s.every().day.at(at, tz).do(lambda: None)
    assert job.next_run == expected


def test_daily_job_keeps_local_time_across_the_summer_time_change() -> None:
    clock = Clock(utc(2026, 3, 27, 12, 0))
    s = Scheduler(clock)
    runs: list[datetime] = []
    s.every().day.at("18:00", "Europe/London").do(lambda: runs.append(clock.now))
    for _ in range(4):
        nxt = s.next_run
        assert nxt is not None
        clock.set(nxt - timedelta(seconds=1))
        s.run_pending()  # one second early: nothing
        clock.set(nxt)
        s.run_pending()
    # 27 and 28 March are GMT (18:00 UTC), from 29 March BST (17:00 UTC)
    assert runs == [
        utc(2026, 3, 27, 18, 0),
        utc(2026, 3, 28, 18, 0),
        utc(2026, 3, 29, 17, 0),
        utc(2026, 3, 30, 17, 0),
    ]


def test_interval_jobs_and_cancel_by_tag() -> None:
    clock = Clock(utc(2026, 5, 1, 9, 0))
    s = Scheduler(clock)
    ticks: list[datetime] = []
    s.every(5).minutes.tag("check").do(lambda: ticks.append(clock.now))
    assert s.idle_seconds == 300
    clock.set(utc(2026, 5, 1, 9, 5))
    s.run_pending()
    clock.set(utc(2026, 5, 1, 9, 9))
    s.run_pending()
    assert ticks == [utc(2026, 5, 1, 9, 5)]
    assert s.next_run == utc(2026, 5, 1, 9, 10)
    s.cancel("check")
    assert s.next_run is None and s.idle_seconds is None


def test_a_failing_job_is_logged_and_runs_again_next_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(utc(2026, 5, 1, 9, 0))
    s = Scheduler(clock)
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    s.every(1).minutes.named("broken job").do(broken)
    clock.set(utc(2026, 5, 1, 9, 1))
    s.run_pending()
    assert s.failures == 1 and "broken job" in caplog.text
    assert s.next_run == utc(2026, 5, 1, 9, 2)
    clock.set(utc(2026, 5, 1, 9, 2))
    s.run_pending()
    assert len(calls) == 2


def test_thread_sleeps_until_the_next_job_and_wakes_for_new_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    real_wait = threading.Event.wait

    clock = Clock(utc(2026, 5, 1, 9, 0))
    s = Scheduler(clock)
    fired = threading.Event()
    s.every(30).seconds.do(lambda: None)

    def spy(self: threading.Event, timeout: float | None = None) -> bool:
        if self is s.worker._wake:
            waits.append(timeout if timeout is not None else -1)
            return real_wait(self, 0.05)  # do not really sleep 30 s in a test
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Event, "wait", spy)
    s.start()
    try:
        deadline = time.monotonic() + 5
        while not waits and time.monotonic() < deadline:
            time.sleep(0.01)
        assert waits and waits[0] == pytest.approx(30)  # until the job, not a poll interval
        # A job due now wakes the thread, which runs it.
        s.every().day.at("09:00", "UTC").do(fired.set)
        clock.set(utc(2026, 5, 2, 9, 0))
        s.wake()
        assert fired.wait(5)
    finally:
        assert s.stop(timeout=2)
    assert all(w <= scheduler_module.MAX_SLEEP for w in waits)
