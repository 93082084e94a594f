"""Power-cut safety: SIGKILL a writer at random moments; every acknowledged write survives."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from firmware_app.store import Store
from tests.store.powercut_child import media_bytes, payload

TOTAL = 500
MIN_KILLS = 20


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = Path(__file__).with_name("powercut_child.py")
    rng = random.Random(20261125)
    acked: set[int] = set()
    kills = 0
    done = False
    runs = 0
    while not done or kills < MIN_KILLS:
        runs += 1
        assert runs < 400, "the writer made no progress"
        proc = subprocess.Popen(
            [sys.executable, str(child), str(data), str(TOTAL)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"ready")
        time.sleep(rng.uniform(0.0, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        out, _ = proc.communicate(timeout=30)
        for line in out.decode().splitlines():
            if line.startswith("ack "):
                acked.add(int(line.split()[1]))
            elif line == "done":
                done = True
        if done and kills < MIN_KILLS:
            # Everything is written: keep killing writers that only open and check the store.
            continue
        # After each kill the store opens and holds every acknowledged record, intact.
        with Store(data) as store:
            records = store.history.newest(TOTAL + 10)
            by_seq = {r["seq"]: r for r in records}
            assert len(by_seq) == len(records), "a record was stored twice"
            missing = acked - by_seq.keys()
            assert not missing, f"acknowledged but lost after kill {kills}: {sorted(missing)[:10]}"
            assert sorted(by_seq) == list(range(len(by_seq))), "a gap in the records"
            for seq, rec in by_seq.items():
                assert rec["payload"] == payload(seq)
                if seq % 10 == 0:
                    assert store.media.read(rec["media"]) == media_bytes(seq)
    assert kills >= MIN_KILLS
    with Store(data) as store:
        stored = sorted(r["seq"] for r in store.history.newest(TOTAL + 10))
    # Stored exactly once each; a write can be stored but killed before its "ack" line.
    assert stored == list(range(TOTAL))
    assert acked <= set(stored)
