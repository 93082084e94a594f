"""Store benchmark: insert latency and bytes written with 1k, 10k and 100k records stored.

Worst case on purpose: all records in the current month's partition. Prefill is written as
a snapshot file (fast); the measured inserts go through the real store with fsync.
Targets (2-core x86): p50 at 100k <= 2x p50 at 1k; newest-50 read <= 5 ms; <= 100 KB
written per insert. Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_app.store import Store

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


def run(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        month = f"{datetime.now(UTC):%Y-%m}"
        hist = Path(tmp) / "history"
        hist.mkdir()
        (hist / f"{month}.json").write_text(
            json.dumps({"records": {str(i + 1): record(i) for i in range(n)}})
        )
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


if __name__ == "__main__":
    main()
