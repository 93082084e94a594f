"""Writes numbered records (some with a media file) and prints each one once it is stored.

Run by test_powercut.py, which kills it with SIGKILL at random moments. It prints `started`
before opening the store (so a kill can land in the start-up recovery: temp files removed,
torn journal lines truncated, journals replayed), `ready N` once open, `ack N` after each
stored record and `done` at the end. Snapshots are rewritten every 2 kB of journal per month
(in small chunks, a few records at a time), so many kills land while the snapshot thread is
at work: renaming the journal, writing, renaming the snapshot, deleting the old segment.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime

from firmware_app.store import Store, durable

MONTHS = [datetime(2026, m, 15, tzinfo=UTC) for m in (1, 2, 3)]


def payload(seq: int) -> str:
    return hashlib.sha256(str(seq).encode()).hexdigest() * 3


def media_bytes(seq: int) -> bytes:
    return hashlib.sha256(b"media" + str(seq).encode()).digest() * 500


def main() -> None:
    data_dir, total = sys.argv[1], int(sys.argv[2])
    durable.COMPACT_MIN_BYTES = 2048
    durable.COMPACT_RATIO = 0.0  # however large the snapshot
    durable.SNAPSHOT_BATCH = 2
    durable.WRITE_CHUNK = 512
    print("started", flush=True)
    store = Store(data_dir)
    start = sum(1 for _ in store.history.newest(total + 10))
    print("ready", start, flush=True)
    for seq in range(start, total):
        record = {"seq": seq, "payload": payload(seq)}
        if seq % 10 == 0:
            record["media"] = store.media.write(media_bytes(seq), "bin")
        store.history.add(record, MONTHS[seq % 3])
        print("ack", seq, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
