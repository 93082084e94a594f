"""memory.py: free heap pages go back to the system once traffic has settled."""

from __future__ import annotations

import ctypes
import gc
import threading

from firmware_app import memory
from firmware_app.memory import Trimmer

M_TRIM_THRESHOLD = -1  # mallopt parameter (malloc.h)


def test_trim_gives_freed_heap_pages_back() -> None:
    """64 MB in 64 kB blocks (below glibc's mmap threshold: from a heap), each followed by
    a small block that stays, so the freed ones are holes a heap's top cannot give back:
    only malloc_trim returns their pages. Allocated on a new thread, whose heap (a new
    arena) is not fragmented by what ran before, so the blocks and pins interleave; glibc's
    own trimming at free() is held off meanwhile (M_TRIM_THRESHOLD), so what trim() gives
    back is what it is there for."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    pins: list[int] = []

    def churn() -> None:
        blocks = []
        for _ in range(1024):
            blocks.append(libc.malloc(64 * 1024))
            pins.append(libc.malloc(64))
        for block in blocks:
            ctypes.memset(block, 1, 64 * 1024)
        for block in blocks:
            libc.free(block)

    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    try:
        worker = threading.Thread(target=churn)
        worker.start()
        worker.join()
        held = memory.rss_kb()
        result = memory.trim()
    finally:
        libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)  # glibc's default
    assert result["rss_before_kb"] >= held - 1024
    assert result["rss_after_kb"] < result["rss_before_kb"] - 32 * 1024  # most of 64 MB back
    for pin in pins:
        libc.free(pin)


def test_the_trimmer_trims_once_after_traffic_and_never_when_idle(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    calls: list[int] = []
    monkeypatch.setattr(
        memory, "trim", lambda: calls.append(1) or {"rss_before_kb": 2, "rss_after_kb": 1}
    )
    trimmer = Trimmer(quiet=30.0, clock=lambda: now[0])
    assert trimmer.tick() is None  # nothing recorded yet: an idle daemon never trims
    trimmer.note()
    now[0] += 10
    assert trimmer.tick() is None  # traffic not settled yet
    trimmer.note()
    now[0] += 29
    assert trimmer.tick() is None
    now[0] += 2
    assert trimmer.tick() == {"rss_before_kb": 2, "rss_after_kb": 1}
    now[0] += 300
    assert trimmer.tick() is None  # once: nothing recorded since
    assert calls == [1] and trimmer.trims == 1
    gc.collect()
