"""Worker threads with stop events, heartbeats and a supervisor that restarts dead ones.

A worker's `run()` loops until `self.stopping` is set, calling `self.beat()` at least every
`liveness` seconds. The supervisor restarts a worker whose thread died (with backoff) and
tells the daemon whether all are alive and beating: that is the systemd watchdog's check.
`OnDemandExecutor` runs occasional jobs on a thread that exists only while there are some.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

ON_DEMAND_IDLE = 15.0  # seconds an OnDemandExecutor's thread waits for another job

log = logging.getLogger(__name__)


class Worker:
    """Subclass and implement `run()`; or pass `target(worker)` for a small loop."""

    liveness: float = 60.0  # seconds without a beat before the worker counts as stuck

    def __init__(
        self,
        name: str,
        target: Callable[[Worker], None] | None = None,
        *,
        liveness: float | None = None,
        restart: bool = True,
    ) -> None:
        self.name = name
        self._target = target
        if liveness is not None:
            self.liveness = liveness
        self.restart = restart
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = time.monotonic()
        self.failures = 0
        self.last_error: str = ""

    def run(self) -> None:
        if self._target is None:
            raise NotImplementedError("give a target or override run()")
        self._target(self)

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on stop. Returns True when stopping."""
        self.beat()
        return self.stopping.wait(seconds)

    def _main(self) -> None:
        try:
            self.run()
        except Exception as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("worker %s died", self.name)

    def start(self) -> None:
        self.stopping.clear()
        self.beat()
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def join(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def healthy(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.alive and now - self._last_beat <= self.liveness


class Supervisor:
    def __init__(self, max_backoff: float = 60.0) -> None:
        self.workers: list[Worker] = []
        self._next_restart: dict[str, float] = {}
        self.max_backoff = max_backoff

    def add(self, worker: Worker) -> Worker:
        self.workers.append(worker)
        return worker

    def start_all(self) -> None:
        for w in self.workers:
            w.start()

    def check(self, now: float | None = None) -> None:
        """Restart workers that died (not those that were asked to stop)."""
        now = time.monotonic() if now is None else now
        for w in self.workers:
            if w.alive or w.stopping.is_set() or not w.restart or w._thread is None:
                continue
            due = self._next_restart.get(w.name)
            if due is None:
                delay = min(self.max_backoff, 2.0 ** min(w.failures, 6) / 2)
                self._next_restart[w.name] = now + delay
                log.warning("worker %s stopped; restarting in %.0f s", w.name, delay)
            elif now >= due:
                del self._next_restart[w.name]
                log.info("restarting worker %s", w.name)
                w.start()

    def healthy(self) -> bool:
        now = time.monotonic()
        return all(w.healthy(now) for w in self.workers if not w.stopping.is_set())

    def unhealthy(self) -> list[str]:
        now = time.monotonic()
        return [w.name for w in self.workers if not w.stopping.is_set() and not w.healthy(now)]

    def stop_all(self, timeout: float = 1.5) -> list[str]:
        """Ask every worker to stop, wait at most `timeout` in all; returns those still running.

        Joined newest first (the web server, added last, drains its requests in its join), so
        a slow worker added early cannot use up the others' time."""
        for w in self.workers:
            w.stop()
        deadline = time.monotonic() + timeout
        late = []
        for w in reversed(self.workers):
            if not w.join(max(0.0, deadline - time.monotonic())):
                late.append(w.name)
        if late:
            log.warning("workers still running at shutdown: %s", ", ".join(late))
        return late


class OnDemandExecutor:
    """Jobs run one at a time, in order, on a thread that a submit starts and that ends after
    `idle` seconds without a job: work that comes now and then (a call's record, greetings
    being spoken, the forwarding checks) holds no thread while there is nothing to do. The
    part of `concurrent.futures.Executor` Frontdesk uses: `submit` (RuntimeError once shut
    down) and `shutdown(wait, cancel_futures)`."""

    def __init__(self, name: str, *, idle: float = ON_DEMAND_IDLE) -> None:
        self.name = name
        self.idle = idle
        self._jobs: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._shutdown = False

    @property
    def running(self) -> bool:
        """A thread is there (a job runs, or it waits for the next one until `idle` is up)."""
        with self._cond:
            return self._thread is not None

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._cond:
            if self._shutdown:
                raise RuntimeError(f"{self.name}: cannot take a job after shutdown")
            self._jobs.append((future, fn, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            else:
                self._cond.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._jobs and not self._shutdown:
                    self._cond.wait(self.idle)
                if not self._jobs:  # idle long enough, or shut down: the thread ends
                    self._thread = None
                    return
                future, fn, args = self._jobs.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # the job's caller sees it, as with any executor
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more jobs; queued ones still run unless `cancel_futures`; `wait` joins the
        thread (never from the thread itself)."""
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                while self._jobs:
                    self._jobs.popleft()[0].cancel()
            thread = self._thread
            self._cond.notify_all()
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()
