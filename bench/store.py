"""Store benchmark: insert latency and bytes written with 1k, 10k and 100k records stored.

Worst case on purpose: all records in the current month's partition. Prefill is written as
a snapshot file (fast); the measured inserts go through the real store with fsync.
Targets (2-core x86): p50 at 100k <= 2x p50 at 1k; newest-50 read <= 5 ms; <= 100 KB
written per insert. Also a month's snapshot rewrite (compaction: the insert that finds the
journal grown past the snapshot renames the journal and starts a thread that writes the whole
month again) at 10k, 50k and 100k records: that insert's time, the thread's, and the longest
wait of a reader and of a writer meanwhile; and how many rewrites a month of 100k inserts
makes. Prints figures; asserts nothing about them.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_app.store import Store
from firmware_app.store.durable import COMPACT_MIN_BYTES

INSERTS = 1000
READS = 200


def record(i: int) -> dict:
    return {
        "channel": "call",
        "direction": "in",
        "number": f"+1555{i:07d}",
        "name": "JOHN SMITH",
        "contact": None,
        "start": "2026-11-25T14:03:11+00:00",
        "end": "2026-11-25T14:04:02+00:00",
        "answered": False,
        "duration": 51,
        "outcome": "voicemail",
        "plan": [{"kind": "greet", "greeting": "closed"}, {"kind": "voicemail", "box": "main"}],
        "explanation": "Closed: opens Monday 09:00. Playing the closed greeting, then voicemail.",
        "media": [f"media/2026/11/{i:016d}.mp3"],
    }


def wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def prefill(path: Path, n: int) -> None:
    """A month of n records as a snapshot, on disk (fsync'd, as the store leaves one)."""
    with path.open("w") as fh:
        json.dump({"records": {str(i + 1): record(i) for i in range(n)}}, fh)
        fh.flush()
        os.fsync(fh.fileno())


def run(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        month = f"{datetime.now(UTC):%Y-%m}"
        hist = Path(tmp) / "history"
        hist.mkdir()
        prefill(hist / f"{month}.json", n)
        t0 = time.perf_counter()
        store = Store(tmp)
        store.history.newest(1)
        open_s = time.perf_counter() - t0
        db = store.history._db(month)
        lat = []
        w0, b0 = wchar(), db.storage.bytes_written
        for i in range(INSERTS):
            t = time.perf_counter()
            store.history.add(record(n + i))
            lat.append(time.perf_counter() - t)
        per_insert_wchar = (wchar() - w0) / INSERTS
        per_insert_store = (db.storage.bytes_written - b0) / INSERTS
        reads = []
        for _ in range(READS):
            t = time.perf_counter()
            got = store.history.newest(50)
            reads.append(time.perf_counter() - t)
        assert len(got) == 50
        store.close()
    return {
        "n": n,
        "p50": statistics.median(lat) * 1e3,
        "p99": pct(lat, 0.99) * 1e3,
        "read50": statistics.median(reads) * 1e3,
        "read99": pct(reads, 0.99) * 1e3,
        "bytes": per_insert_wchar,
        "store_bytes": per_insert_store,
        "open": open_s,
    }


def prefilled(tmp: str, n: int) -> tuple[Store, str]:
    month = f"{datetime.now(UTC):%Y-%m}"
    hist = Path(tmp) / "history"
    hist.mkdir()
    prefill(hist / f"{month}.json", n)
    store = Store(tmp)
    store.history.newest(1)
    gc.collect()  # the prefill's garbage is not the store's: not collected during a timing
    return store, month


class Load:
    """A reader asking for the newest 50 and a writer adding records, each on a thread of
    its own, noting how long each call took: what a page and a call's record see."""

    def __init__(self, store: Store, n: int) -> None:
        self.store, self.n = store, n
        self.reads: list[float] = []
        self.writes: list[float] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._read), threading.Thread(target=self._write)]

    def _read(self) -> None:
        while not self.stop.is_set():
            t = time.perf_counter()
            self.store.history.newest(50)
            self.reads.append(time.perf_counter() - t)

    def _write(self) -> None:
        while not self.stop.is_set():
            t = time.perf_counter()
            self.store.history.add(record(self.n + len(self.writes)))
            self.writes.append(time.perf_counter() - t)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def compaction(n: int) -> dict[str, float]:
    """A snapshot rewrite with n records stored. The journal is taken to its threshold by
    its byte counter rather than by n more inserts (which would take minutes and the memory
    of a second month); the rewrite itself is the real one. Timed: the insert that starts
    it (it renames the journal and starts the snapshot thread), how long the thread takes
    (encode, write, fsync, rename, delete the old segment), and the longest wait of a
    reader and of a writer (`Load`) meanwhile; then the same load as long again without a
    rewrite, for comparison (a reader waits for a writer's fsync either way)."""
    with tempfile.TemporaryDirectory() as tmp:
        store, month = prefilled(tmp, n)
        storage = store.history._db(month).storage
        snapshot = storage._snapshot_size
        store.history.add(record(n))  # the first insert after opening finds the next id
        storage._journal_size = max(COMPACT_MIN_BYTES, snapshot)  # one line more passes it
        t = time.perf_counter()
        store.history.add(record(n + 1))
        pause = time.perf_counter() - t
        assert not storage.wait_snapshot(0), "the insert did not start a snapshot"
        with Load(store, n + 2) as during:
            storage.wait_snapshot()
            rewrite = time.perf_counter() - t
        assert not storage.old_path.exists(), "the old journal segment is still there"
        written = storage._snapshot_size
        with Load(store, n + 2 + len(during.writes)) as quiet:
            time.sleep(rewrite)
        store.close()
    return {
        "n": n,
        "pause": pause * 1e3,
        "rewrite": rewrite,
        "read_p99": pct(during.reads, 0.99) * 1e3,
        "read_wait": max(during.reads) * 1e3,
        "write_p99": pct(during.writes, 0.99) * 1e3,
        "write_wait": max(during.writes) * 1e3,
        "writes": len(during.writes),
        "quiet_read_p99": pct(quiet.reads, 0.99) * 1e3,
        "quiet_read_wait": max(quiet.reads) * 1e3,
        "quiet_write_p99": pct(quiet.writes, 0.99) * 1e3,
        "quiet_write_wait": max(quiet.writes) * 1e3,
        "written": written,
        "snapshot": snapshot,
    }


def rewrites_in_a_month(inserts: int, record_bytes: int) -> int:
    """How many snapshot rewrites a month of `inserts` makes: one each time the journal
    outgrows max(1 MB, the snapshot), which doubles the snapshot each time."""
    journal = snapshot = count = 0
    for _ in range(inserts):
        journal += record_bytes
        if journal > max(COMPACT_MIN_BYTES, snapshot):
            snapshot += journal
            journal = 0
            count += 1
    return count


def amortized(n: int, inserts: int) -> float:
    """Bytes per insert over a run long enough to include snapshot rewrites."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        for i in range(n):
            store.history.add(record(i))
        db = store.history._db(f"{datetime.now(UTC):%Y-%m}")
        b0 = db.storage.bytes_written
        for i in range(inserts):
            store.history.add(record(n + i))
        result = (db.storage.bytes_written - b0) / inserts
        store.close()
        return result


def main() -> None:
    rows = [run(n) for n in (1_000, 10_000, 100_000)]
    print(
        f"{'stored':>8} {'insert p50':>11} {'p99':>8} {'newest-50 p50':>14} {'p99':>8} "
        f"{'bytes/insert':>13} {'open':>7}"
    )
    for r in rows:
        print(
            f"{r['n']:>8,} {r['p50']:>9.3f}ms {r['p99']:>6.3f}ms {r['read50']:>12.3f}ms "
            f"{r['read99']:>6.3f}ms {r['bytes']:>13,.0f} {r['open']:>6.2f}s"
        )
    ratio = rows[2]["p50"] / rows[0]["p50"]
    print(f"insert p50 at 100k / at 1k: {ratio:.2f}x (target <= 2x)")
    print(f"newest-50 read at 100k: {rows[2]['read50']:.3f} ms (target <= 5 ms)")
    print(f"bytes written per insert at 100k: {rows[2]['bytes']:,.0f} (target <= 100,000)")
    print(f"FIGURE\tstore insert p50, 100k / 1k\t{ratio:.2f}\tx\t2\t<=")
    print(f"FIGURE\tstore newest-50 read at 100k\t{rows[2]['read50']:.3f}\tms\t5\t<=")
    print(f"FIGURE\tstore bytes per insert at 100k\t{rows[2]['bytes']:.0f}\tB\t100000\t<=")
    print(
        "with snapshot rewrites included (1k stored, 6k inserts): "
        f"{amortized(1000, 6000):,.0f} bytes/insert"
    )
    print()
    print(
        "snapshot rewrite: the insert that starts it, the snapshot thread's time, and "
        "meanwhile a reader's and a writer's calls (p99 / longest), then the same load "
        "as long again without a rewrite"
    )
    print(
        f"{'stored':>8} {'insert':>8} {'thread':>7} {'written':>8} "
        f"{'reader during':>16} {'writer during':>16} {'reader without':>16} "
        f"{'writer without':>16}"
    )
    pauses = [compaction(n) for n in (10_000, 50_000, 100_000)]
    for c in pauses:
        print(
            f"{c['n']:>8,} {c['pause']:>6.1f}ms {c['rewrite']:>6.2f}s "
            f"{c['written'] / 1e6:>6.1f}MB "
            f"{c['read_p99']:>6.1f} / {c['read_wait']:>5.1f}ms "
            f"{c['write_p99']:>6.1f} / {c['write_wait']:>5.1f}ms "
            f"{c['quiet_read_p99']:>6.1f} / {c['quiet_read_wait']:>5.1f}ms "
            f"{c['quiet_write_p99']:>6.1f} / {c['quiet_write_wait']:>5.1f}ms"
        )
    line = int(rows[2]["bytes"]) or 470
    print(
        f"snapshot rewrites in a month of 100k inserts: {rewrites_in_a_month(100_000, line)}"
        " (each time the journal outgrows the snapshot: the last one with about half the"
        " month stored)"
    )
    worst = pauses[-1]
    print(f"FIGURE\tstore snapshot rewrite pause at 100k\t{worst['pause']:.1f}\tms\t\t")
    print(f"FIGURE\tstore reader wait during it at 100k\t{worst['read_wait']:.1f}\tms\t\t")
    print(f"FIGURE\tstore writer wait during it at 100k\t{worst['write_wait']:.1f}\tms\t\t")


if __name__ == "__main__":
    main()
