"""Power-cut safety: SIGKILL a writer at random moments; every acknowledged write survives.

A kill counts as a write kill only when it landed while the child was writing (after `ready`,
before `done`), and as a recovery kill when it landed while the store was opening (after
`started`, before `ready`). A write kill also counts as a snapshot kill when it left a
snapshot rewrite unfinished: an old journal segment that was not there before the run, or a
temp file (the snapshot being written, or the new journal before its rename). The test goes
on, with a fresh data dir whenever all records are written, until there were at least
MIN_WRITE_KILLS, MIN_RECOVERY_KILLS and MIN_SNAPSHOT_KILLS of them.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from firmware_app.store import Store, durable
from tests.store.powercut_child import media_bytes, payload

TOTAL = 500
MIN_WRITE_KILLS = 20
MIN_RECOVERY_KILLS = 5
MIN_SNAPSHOT_KILLS = 10
MAX_RUNS = 1000
ROOT = Path(__file__).parents[2]
CHILD = Path(__file__).with_name("powercut_child.py")


@dataclass
class Run:
    acked: set[int]
    started: bool
    ready: bool
    done: bool
    killed: bool
    open_seconds: float


def run_child(data: Path, delay: float, during_recovery: bool) -> Run:
    """One writer: killed `delay` seconds after `started` (recovery) or `ready` (writing)."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(data), str(TOTAL)], stdout=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith(b"started"), first
    t0 = time.monotonic()
    lines = [first]
    open_seconds = 0.0
    if not during_recovery:
        ready = proc.stdout.readline()
        open_seconds = time.monotonic() - t0
        lines.append(ready)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    text = b"".join(lines).decode() + out.decode()
    whole = text.split("\n")[:-1]  # a line the kill cut short is no acknowledgement
    acked = {int(x[4:]) for x in whole if re.fullmatch(r"ack \d+", x)}
    names = {x.split()[0] for x in whole if x.split()}
    return Run(acked, "started" in names, "ready" in names, "done" in names, killed, open_seconds)


def rewrite_marks(data: Path) -> set[tuple[str, int]]:
    """What an unfinished snapshot rewrite leaves in the history folder: old journal
    segments (with their inodes: one renamed again is a new one) and temp files."""
    folder = data / "history"
    if not folder.is_dir():
        return set()
    return {
        (p.name, p.stat().st_ino)
        for p in folder.iterdir()
        if p.name.endswith(".journal.old") or durable.TEMP_MARK in p.name
    }


def check_store(data: Path, acked: set[int]) -> int:
    """The store opens and holds every acknowledged record, intact and once; returns how many."""
    with Store(data) as store:
        records = store.history.newest(TOTAL + 10)
        by_seq = {r["seq"]: r for r in records}
        assert len(by_seq) == len(records), "a record was stored twice"
        missing = acked - by_seq.keys()
        assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"
        assert sorted(by_seq) == list(range(len(by_seq))), "a gap in the records"
        for seq, rec in by_seq.items():
            assert rec["payload"] == payload(seq)
            if seq % 10 == 0:
                assert store.media.read(rec["media"]) == media_bytes(seq)
    return len(by_seq)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    write_kills = recovery_kills = snapshot_kills = runs = rounds = 0
    open_seconds = 0.01  # how long opening the store takes: the recovery window, measured

    def enough() -> bool:
        return (
            write_kills >= MIN_WRITE_KILLS
            and recovery_kills >= MIN_RECOVERY_KILLS
            and snapshot_kills >= MIN_SNAPSHOT_KILLS
        )

    while not enough():
        rounds += 1
        data = tmp_path / f"data-{rounds}"
        acked: set[int] = set()
        done = False
        while not done and not enough():
            runs += 1
            assert runs < MAX_RUNS, (
                f"only {write_kills} write kills ({snapshot_kills} in a snapshot rewrite) and "
                f"{recovery_kills} recovery kills in {runs} runs"
            )
            before = rewrite_marks(data)
            # Every third run aims at the store opening, once there is something to recover.
            aim_recovery = bool(acked) and runs % 3 == 0
            if aim_recovery:
                run = run_child(data, rng.uniform(0.0, open_seconds * 1.5), True)
            else:
                run = run_child(data, rng.uniform(0.0, 0.03), False)
                open_seconds = 0.8 * open_seconds + 0.2 * run.open_seconds
            acked |= run.acked
            done = run.done
            if run.killed and not run.ready:
                recovery_kills += 1
            elif run.killed and run.ready and not run.done:
                write_kills += 1
                if rewrite_marks(data) - before:
                    snapshot_kills += 1
            # After each run, killed or not, the store opens with every acknowledged write.
            stored = check_store(data, acked)
        if done:
            assert stored == TOTAL  # every record stored exactly once
    assert enough()
