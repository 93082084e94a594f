"""The appliance's own health: version, uptime, disk, recent log lines, clock sync.

The Pi has no real-time clock, so business-hours decisions are only right once NTP has set the
clock; `clock_sync()` asks the kernel (adjtimex) and systemd-timesyncd. Probes are injectable
for tests and cached briefly so every page can show a warning cheaply. Read-only: changes nothing.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..logs import LogLine, RingBufferHandler
from ..store import Store

log = logging.getLogger(__name__)

LOW_DISK_FRACTION = 0.10
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
# adjtimex(2): the kernel's clock state
TIME_ERROR = 5
STA_UNSYNC = 0x0040


@dataclass(frozen=True, slots=True)
class ClockSync:
    """Whether the system clock is NTP-synchronised. `synchronized` None: cannot tell."""

    synchronized: bool | None
    source: str  # how we know: "kernel", "systemd-timesyncd", "unknown"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DiskUsage:
    total: int
    free: int

    @property
    def free_fraction(self) -> float:
        return self.free / self.total if self.total else 0.0

    @property
    def low(self) -> bool:
        return self.free_fraction < LOW_DISK_FRACTION


class _Timex(ctypes.Structure):
    # The leading fields of struct timex (<sys/timex.h>); the rest is room for the kernel to write.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 512),
    ]


def kernel_clock_sync() -> ClockSync:
    """Ask the Linux kernel (adjtimex with modes=0 reads, never changes) whether NTP sync holds."""
    if not sys.platform.startswith("linux"):
        return ClockSync(None, "unknown", "not Linux")
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError) as exc:
        return ClockSync(None, "unknown", f"adjtimex unavailable: {exc}")
    if state < 0:
        return ClockSync(None, "unknown", f"adjtimex failed (errno {ctypes.get_errno()})")
    if state == TIME_ERROR or tx.status & STA_UNSYNC:
        return ClockSync(False, "kernel", "the kernel reports the clock as not synchronised")
    return ClockSync(True, "kernel", f"estimated error {tx.esterror} µs")


def default_clock_sync() -> ClockSync:
    """Kernel state first; systemd-timesyncd's flag file also counts as synchronised."""
    kernel = kernel_clock_sync()
    if kernel.synchronized:
        return kernel
    if TIMESYNCD_FLAG.exists():
        return ClockSync(True, "systemd-timesyncd", "synchronised since boot")
    return kernel


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def human_duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{s} s"


class SystemService:
    """Read-only facts about the machine for the system page, the dashboard and the API."""

    CLOCK_CACHE = 15.0
    SIZE_CACHE = 60.0

    def __init__(
        self,
        store: Store,
        log_ring: RingBufferHandler,
        started_monotonic: float,
        clock_sync: Callable[[], ClockSync] = default_clock_sync,
        disk_usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ring = log_ring
        self._started = started_monotonic
        self.clock_probe = clock_sync
        self.disk_probe = disk_usage
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._clock_cache: tuple[float, ClockSync] | None = None
        self._size_cache: tuple[float, int] | None = None

    @property
    def version(self) -> str:
        return __version__

    @property
    def data_dir(self) -> Path:
        return self._store.data_dir

    def uptime(self) -> float:
        return self._monotonic() - self._started

    def clock_sync(self) -> ClockSync:
        now = self._monotonic()
        with self._lock:
            if self._clock_cache and now - self._clock_cache[0] < self.CLOCK_CACHE:
                return self._clock_cache[1]
        try:
            state = self.clock_probe()
        except Exception as exc:  # a probe must never break a page
            log.warning("clock sync probe failed: %s", exc)
            state = ClockSync(None, "unknown", str(exc))
        with self._lock:
            self._clock_cache = (now, state)
        return state

    def disk(self) -> DiskUsage | None:
        try:
            total, _used, free = self.disk_probe(self.data_dir)
        except OSError as exc:
            log.warning("cannot read free disk space of %s: %s", self.data_dir, exc)
            return None
        return DiskUsage(total=total, free=free)

    def data_size(self) -> int:
        """Bytes used by the data dir (cached for a minute: it walks every file)."""
        now = self._monotonic()
        with self._lock:
            if self._size_cache and now - self._size_cache[0] < self.SIZE_CACHE:
                return self._size_cache[1]
        try:
            size = self._store.size_bytes()
        except OSError as exc:
            log.warning("cannot measure %s: %s", self.data_dir, exc)
            size = 0
        with self._lock:
            self._size_cache = (now, size)
        return size

    def recent_logs(self, n: int = 100, min_level: int = logging.INFO) -> list[LogLine]:
        """Newest log lines, newest first."""
        return list(reversed(self._ring.lines(n, min_level)))
