"""The appliance's own health: version, uptime, disk, recent log lines, clock sync.

The Pi has no real-time clock, so business-hours decisions are only right once NTP has set the
clock; `clock_sync()` asks the kernel (adjtimex), systemd-timesyncd's flag file, and, where the
service's sandbox blocks adjtimex, systemd-timedated over D-Bus or chrony. Probes are
injectable for tests and cached briefly so every page can show a warning cheaply. Read-only:
changes nothing.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..logs import LogLine, RingBufferHandler
from ..store import Store

log = logging.getLogger(__name__)

LOW_DISK_FRACTION = 0.10
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
PROBE_TIMEOUT = 3.0  # seconds for timedatectl or chronyc to answer
# adjtimex(2): the kernel's clock state
TIME_ERROR = 5
STA_UNSYNC = 0x0040


@dataclass(frozen=True, slots=True)
class ClockSync:
    """Whether the system clock is NTP-synchronised. `synchronized` None: cannot tell."""

    synchronized: bool | None
    # how we know: "kernel", "systemd-timesyncd", "systemd-timedated", "chrony", "unknown"
    source: str
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


@functools.cache
def _timex() -> Any:
    """struct timex's leading fields (<sys/timex.h>); the rest is room for the kernel to
    write. ctypes (and libffi) load with the first clock check, not at start."""
    import ctypes

    class Timex(ctypes.Structure):
        _fields_ = [
            ("modes", ctypes.c_uint),
            ("offset", ctypes.c_long),
            ("freq", ctypes.c_long),
            ("maxerror", ctypes.c_long),
            ("esterror", ctypes.c_long),
            ("status", ctypes.c_int),
            ("_rest", ctypes.c_byte * 512),
        ]

    return Timex


def kernel_clock_sync() -> ClockSync:
    """Ask the Linux kernel (adjtimex with modes=0 reads, never changes) whether NTP sync holds."""
    if not sys.platform.startswith("linux"):
        return ClockSync(None, "unknown", "not Linux")
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        tx = _timex()()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError) as exc:
        return ClockSync(None, "unknown", f"adjtimex unavailable: {exc}")
    if state < 0:
        return ClockSync(None, "unknown", f"adjtimex failed (errno {ctypes.get_errno()})")
    if state == TIME_ERROR or tx.status & STA_UNSYNC:
        return ClockSync(False, "kernel", "the kernel reports the clock as not synchronised")
    return ClockSync(True, "kernel", f"estimated error {tx.esterror} µs")


def _run_probe(argv: list[str]) -> tuple[int, str, str] | str:
    """Run a read-only status command; (exit code, stdout, stderr), or why it could not run."""
    exe = shutil.which(argv[0])
    if exe is None:
        return f"{argv[0]} is not installed"
    try:
        done = subprocess.run(  # a fixed argv, no shell
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "SYSTEMD_PAGER": ""},
        )
    except subprocess.TimeoutExpired:
        return f"{argv[0]} did not answer within {PROBE_TIMEOUT:.0f} s"
    except OSError as exc:
        return f"{argv[0]}: {exc.strerror or exc}"
    return done.returncode, done.stdout.strip(), done.stderr.strip()


def timedated_clock_sync() -> ClockSync:
    """Ask systemd-timedated over D-Bus (`timedatectl show`): its NTPSynchronized is the
    kernel's state read from outside this service's sandbox, which blocks adjtimex
    (ProtectClock=, SystemCallFilter=). Works unprivileged; timedated starts on demand."""
    result = _run_probe(["timedatectl", "show", "--property=NTPSynchronized", "--value"])
    if isinstance(result, str):
        return ClockSync(None, "unknown", result)
    code, out, err = result
    if code == 0 and out in ("yes", "no"):
        return ClockSync(out == "yes", "systemd-timedated", f"NTPSynchronized={out}")
    why = (err or out or f"exit code {code}").splitlines()[-1][:200]
    return ClockSync(None, "unknown", f"timedatectl: {why}")


def chrony_clock_sync() -> ClockSync:
    """Ask chronyd (`chronyc -c tracking`, read-only): leap status "Not synchronised" or not."""
    result = _run_probe(["chronyc", "-n", "-c", "tracking"])
    if isinstance(result, str):
        return ClockSync(None, "unknown", result)
    code, out, err = result
    fields = out.splitlines()[-1].split(",") if out else []
    if code == 0 and len(fields) >= 14:
        leap = fields[13]
        return ClockSync(leap != "Not synchronised", "chrony", f"leap status {leap}")
    why = (err or out or f"exit code {code}").splitlines()[-1][:200]
    return ClockSync(None, "unknown", f"chronyc: {why}")


def default_clock_sync() -> ClockSync:
    """The kernel's own answer where the process may ask (adjtimex); systemd-timesyncd's flag
    file also counts as synchronised. Under the hardened service adjtimex is refused, so then
    systemd-timedated and chrony are asked. None only when nothing could tell."""
    kernel = kernel_clock_sync()
    if kernel.synchronized:
        return kernel
    if TIMESYNCD_FLAG.exists():
        return ClockSync(True, "systemd-timesyncd", "synchronised since boot")
    if kernel.synchronized is False:
        return kernel
    unknown = [kernel.detail]
    for probe in (timedated_clock_sync, chrony_clock_sync):
        state = probe()
        if state.synchronized is not None:
            return state
        unknown.append(state.detail)
    return ClockSync(None, "unknown", "; ".join(d for d in unknown if d))


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

    CLOCK_CACHE = 15.0  # while not synchronised (or unknown): the warning goes soon after
    CLOCK_CACHE_SYNCED = 300.0  # once synchronised, ask less often (a probe may be a process)
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
            if self._clock_cache:
                at, cached = self._clock_cache
                keep = self.CLOCK_CACHE_SYNCED if cached.synchronized else self.CLOCK_CACHE
                if now - at < keep:
                    return cached
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
