"""The scheduler thread: jobs at set times of day or every N minutes (the `schedule` package).

Any service may add a job; jobs run one at a time on this thread and must be quick (queue
an email, check the disk); slow work goes to its own worker. Time comes from an injected
clock; the thread sleeps until the next job is due and never polls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import schedule

from ..workers import Worker

log = logging.getLogger(__name__)

MAX_SLEEP = 60.0  # re-read the clock at least this often: the wall clock may jump (NTP)
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Job(schedule.Job):
    """A `schedule.Job` that reads the scheduler's clock and keeps times aware (UTC).

    `at(time, tz)` takes an IANA zone name (zoneinfo, no pytz): "18:00" in Europe/London
    stays 18:00 local across summer time.
    """

    scheduler: Scheduler

    def __init__(self, interval: int, scheduler: Scheduler) -> None:
        super().__init__(interval, scheduler)
        self.zone: ZoneInfo | None = None
        self.name = ""

    def at(self, time_str: str, tz: str | None = None) -> Job:
        super().at(time_str)
        if tz:
            try:
                self.zone = ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise schedule.ScheduleValueError(f"{tz!r} is not a timezone") from None
        return self

    def named(self, name: str) -> Job:
        """A name for the log and the job list."""
        self.name = name
        return self

    def do(self, job_func: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
        super().do(job_func, *args, **kwargs)
        if not self.name:
            self.name = getattr(job_func, "__qualname__", repr(job_func))
        self.scheduler.wake()
        return self

    @property
    def should_run(self) -> bool:
        return self.next_run is not None and self.scheduler.now() >= self.next_run

    def run(self) -> Any:
        now = self.scheduler.now()
        if self.cancel_after is not None and now > self.cancel_after:
            return schedule.CancelJob
        result = self.job_func()  # type: ignore[misc]
        self.last_run = self.scheduler.now()
        self._schedule_next_run()
        return result

    def _schedule_next_run(self) -> None:
        if self.unit not in ("seconds", "minutes", "hours", "days", "weeks"):
            raise schedule.ScheduleValueError(f"{self.unit!r} is not a unit")
        now = self.scheduler.now()
        zone = self.zone or UTC
        local = now.astimezone(zone)
        period = timedelta(**{self.unit: self.interval})
        if self.at_time is None and self.start_day is None:
            self.next_run = now + period
            return
        # Wall-clock arithmetic in the job's zone (aware datetimes add as wall time).
        nxt = local
        if self.start_day is not None:
            ahead = (_DAYS.index(self.start_day) - local.weekday()) % 7
            nxt = nxt + timedelta(days=ahead)
        if self.at_time is not None:
            hour, minute = nxt.hour, nxt.minute
            if self.unit == "days" or self.start_day is not None:
                hour = self.at_time.hour
            if self.unit in ("days", "hours") or self.start_day is not None:
                minute = self.at_time.minute
            nxt = nxt.replace(hour=hour, minute=minute, second=self.at_time.second, microsecond=0)
        if self.interval != 1:
            nxt = nxt + period
        while _utc(nxt) <= now:
            nxt = nxt + period
        self.next_run = _utc(nxt)


def _utc(moment: datetime) -> datetime:
    # A wall time in a spring-forward gap maps to the hour after it, as people expect.
    return moment.astimezone(UTC)


class Scheduler(schedule.Scheduler):
    """Jobs on one thread; `every(...)` returns a `Job` like `schedule.every`.

    ```python
    scheduler.every().day.at("18:00", "Europe/London").named("digest").do(send_digest)
    scheduler.every(5).minutes.do(check_disk)
    ```
    """

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__()
        self._clock = clock
        self._lock = threading.RLock()
        self.worker = SchedulerWorker(self)
        self.failures = 0

    def now(self) -> datetime:
        return self._clock()

    def every(self, interval: int = 1) -> Job:
        return Job(interval, self)

    def wake(self) -> None:
        """Jobs changed: the thread recomputes how long to sleep."""
        self.worker.wake()

    def run_pending(self) -> None:
        """Run every job that is due (the thread calls this; tests may call it directly)."""
        with self._lock:
            due = sorted(job for job in self.jobs if job.should_run)
        for job in due:
            self._run_job(job)

    def _run_job(self, job: schedule.Job) -> None:
        name = getattr(job, "name", "") or str(job)
        try:
            result = job.run()  # type: ignore[no-untyped-call]
        except Exception:
            self.failures += 1
            log.exception("scheduled job %s failed; it runs again at its next time", name)
            job._schedule_next_run()
            return
        if isinstance(result, schedule.CancelJob) or result is schedule.CancelJob:
            self.cancel_job(job)

    def cancel(self, tag: Hashable) -> None:
        """Remove the jobs with this tag (to schedule them again at another time)."""
        with self._lock:
            self.clear(tag)
        self.wake()

    @property
    def next_run(self) -> datetime | None:
        with self._lock:
            times = [j.next_run for j in self.jobs if j.next_run is not None]
        return min(times) if times else None

    @property
    def idle_seconds(self) -> float | None:
        nxt = self.next_run
        return None if nxt is None else (nxt - self.now()).total_seconds()

    def start(self) -> None:
        self.worker.start()

    def stop(self, timeout: float = 2.0) -> bool:
        self.worker.stop()
        return self.worker.join(timeout)

    def describe(self) -> list[tuple[str, datetime | None]]:
        """(name, next run) of each job, soonest first."""
        with self._lock:
            jobs = sorted(self.jobs)
        return [(getattr(j, "name", "") or str(j), j.next_run) for j in jobs]


class SchedulerWorker(Worker):
    """Sleeps until the next job is due (or `MAX_SLEEP`), runs what is due, repeats."""

    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__("scheduler", liveness=MAX_SLEEP * 3)
        self._scheduler = scheduler
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        super().stop()
        self._wake.set()

    def run(self) -> None:
        s = self._scheduler
        while not self.stopping.is_set():
            self._wake.clear()
            self.beat()
            s.run_pending()
            idle = s.idle_seconds
            pause = MAX_SLEEP if idle is None else min(max(idle, 0.0), MAX_SLEEP)
            if self.stopping.is_set():
                break
            self.beat()
            self._wake.wait(max(pause, 0.001))


__all__ = ["Job", "Scheduler", "SchedulerWorker"]
