"""Giving memory back to the system after traffic.

A call, a fax or a burst of texts leaves freed memory inside the process: Python's own
pools and glibc's heaps keep it for the next allocation, so the resident size stays near
its peak although nothing holds it. `trim()` runs a full garbage collection and then glibc's
`malloc_trim(0)`, which returns every free page of the heaps to the kernel (the pages in
the middle of a heap too, with MADV_DONTNEED). `Trimmer` calls it once traffic has settled:
at most once a `every` seconds, only after something was recorded since the last time, so
an idle daemon never wakes for it. ctypes loads with the first trim, not at start.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_malloc_trim: Any = None
_lock = threading.Lock()


def rss_kb() -> int:
    """This process's resident set (VmRSS) in kB; 0 where /proc cannot tell."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _libc_trim() -> Any:
    """glibc's malloc_trim, or False where there is none (musl, another libc)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            _malloc_trim = libc.malloc_trim
            _malloc_trim.argtypes = [ctypes.c_size_t]
            _malloc_trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            _malloc_trim = False
    return _malloc_trim


def trim() -> dict[str, int]:
    """Collect garbage and hand free heap pages back: RSS in kB before and after."""
    with _lock:
        before = rss_kb()
        gc.collect()
        fn = _libc_trim()
        if fn:
            fn(0)
        return {"rss_before_kb": before, "rss_after_kb": rss_kb()}


class Trimmer:
    """`trim()` once traffic has settled: `note()` for each thing recorded, `tick()` from a
    periodic job; a tick trims when something was noted and nothing for `quiet` seconds."""

    def __init__(
        self,
        *,
        quiet: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet = quiet
        self._clock = clock
        self._last: float | None = None  # when the last thing was noted, if not trimmed since
        self._mutex = threading.Lock()
        self.trims = 0

    def note(self, _event: object = None) -> None:
        with self._mutex:
            self._last = self._clock()

    def tick(self) -> dict[str, int] | None:
        with self._mutex:
            last = self._last
            if last is None or self._clock() - last < self.quiet:
                return None
            self._last = None
        result = trim()
        self.trims += 1
        log.debug(
            "memory trimmed after traffic: %.1f -> %.1f MB resident",
            result["rss_before_kb"] / 1024,
            result["rss_after_kb"] / 1024,
        )
        return result
