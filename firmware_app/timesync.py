"""Whether the clock can be trusted for business-hours decisions: the `clock_ok()` hook.

With `clock.require_time_sync = true` the answer is the system service's clock-sync check
(kernel adjtimex, systemd-timesyncd, systemd-timedated, chrony); once synchronised it stays
so. Without it the answer is always yes and the web page warns instead. Read-only: never
sets the clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .services.system import ClockSync, default_clock_sync

log = logging.getLogger(__name__)


class TimeSync:
    """`clock_ok()` for the routing and call code; `wait(timeout)` for those who may block."""

    def __init__(
        self,
        required: bool,
        probe: Callable[[], ClockSync] = default_clock_sync,
        *,
        recheck: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.required = required
        self._probe = probe
        self._recheck = recheck
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._checked_at: float | None = None
        self._warned = False

    def clock_ok(self) -> bool:
        """True when business-hours decisions may use the clock now."""
        if not self.required or self._synced.is_set():
            return True
        now = self._monotonic()
        with self._lock:
            if self._checked_at is not None and now - self._checked_at < self._recheck:
                return False
            self._checked_at = now
        try:
            state = self._probe()
        except Exception as exc:  # a probe must never break a call
            log.warning("clock sync probe failed: %s", exc)
            return False
        if state.synchronized:
            log.info("clock synchronised (%s): business hours apply", state.source)
            self._synced.set()
            return True
        if not self._warned:
            self._warned = True
            log.warning(
                "clock not synchronised (%s%s): business-hours decisions wait for it",
                state.source,
                f": {state.detail}" if state.detail else "",
            )
        return False

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for `clock_ok()`; returns its last answer."""
        deadline = self._monotonic() + timeout
        while not self.clock_ok():
            left = deadline - self._monotonic()
            if left <= 0:
                return False
            self._synced.wait(min(left, max(self._recheck, 0.01)))
        return True
