"""Rewriting a snapshot on a thread of its own: what every step leaves for the next start,
readers and writers going on meanwhile, a rewrite that fails, a whole-database write in the
middle of one, and the chunked encoder."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from firmware_app.store import History, Store, durable
from firmware_app.store.durable import Database, encode_tables, remove_leftover_temps

DEADLINE = 60.0  # generous: these tests wait for behaviour, they never time it
Expected = dict[int, dict[str, Any]]


class Steps:
    """Runs one database's snapshot rewrite step by step. At every step the database's
    folder is copied as it is at that moment (hard links kept): each copy is what a power
    cut there would leave, and `expected` says what it must hold then. Between steps the
    test may park the snapshot thread (`park_before_write`, `park_mid_write`, `park_commit`)
    and write meanwhile."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.folder = tmp_path / "live"
        self.folder.mkdir()
        self.states: list[tuple[str, Path, Expected]] = []
        self.expected: Expected = {}
        self.parked = {name: threading.Event() for name in ("write", "mid", "commit")}
        self.go = {name: threading.Event() for name in ("write", "mid", "commit")}
        self.parking: set[str] = set()  # where the snapshot thread waits for `let_go`
        self.lock = threading.RLock()  # a write and its `expected` go together
        self.inflight: dict[str, Any] | None = None  # an insert not returned yet
        self.last_id = 0
        monkeypatch.setattr(durable, "COMPACT_MIN_BYTES", 600)
        monkeypatch.setattr(durable, "SNAPSHOT_BATCH", 2)
        monkeypatch.setattr(durable, "WRITE_CHUNK", 64)
        real_link, real_replace = os.link, os.replace
        real_write_temp, real_commit = durable.write_temp, durable.commit
        real_retire = durable.JournalStorage._retire_old

        def link(src: Any, dst: Any, *args: Any, **kw: Any) -> None:
            self.freeze(f"link {Path(dst).name}: before")
            real_link(src, dst, *args, **kw)
            self.freeze(f"link {Path(dst).name}: after")

        def replace(src: Any, dst: Any, *args: Any, **kw: Any) -> None:
            what = f"rename {Path(src).name.split('.tmp-')[0]} to {Path(dst).name}"
            self.freeze(f"{what}: before")
            real_replace(src, dst, *args, **kw)
            self.freeze(f"{what}: after")

        def chunks(it: Iterator[bytes]) -> Iterator[bytes]:
            for n, chunk in enumerate(it):
                yield chunk
                if n == 0:  # written (not yet fsync'd): the temp file is half there
                    self.freeze("snapshot half written")
                    self.park("mid")

        def write_temp(path: Path, data: Iterator[bytes], mode: int = 0o640) -> Any:
            self.freeze("snapshot thread started")
            self.park("write")
            return real_write_temp(path, chunks(data), mode)

        def commit(tmp: Path, path: Path) -> None:
            self.park("commit")
            real_commit(tmp, path)

        def retire(storage: durable.JournalStorage) -> None:
            real_retire(storage)
            self.freeze("old segment deleted")

        monkeypatch.setattr(durable.os, "link", link)
        monkeypatch.setattr(durable.os, "replace", replace)
        monkeypatch.setattr(durable, "write_temp", write_temp)
        monkeypatch.setattr(durable, "commit", commit)
        monkeypatch.setattr(durable.JournalStorage, "_retire_old", retire)
        self.db = Database(self.folder / "x.json")
        self.table = self.db.table("t")

    def freeze(self, label: str) -> None:
        """Copy the folder now. Called inside an insert (the journal is renamed after its
        line is on disk), that insert's record must be there too."""
        with self.lock:
            dest = self.tmp / f"state-{len(self.states):02d}"
            subprocess.run(["cp", "-a", str(self.folder), str(dest)], check=True)
            expected = {k: dict(v) for k, v in self.expected.items()}
            if self.inflight is not None:
                expected[self.last_id + 1] = dict(self.inflight)
            self.states.append((label, dest, expected))

    def park(self, name: str) -> None:
        if name in self.parking and threading.current_thread().name.startswith("snapshot"):
            self.parked[name].set()
            assert self.go[name].wait(DEADLINE), f"never let go at {name}"

    def wait_parked(self, name: str) -> None:
        assert self.parked[name].wait(DEADLINE), f"the snapshot thread never reached {name}"

    def let_go(self, name: str) -> None:
        self.go[name].set()

    def insert(self, doc: dict[str, Any]) -> int:
        with self.lock:
            self.inflight = doc
            num = self.table.insert(doc)
            self.inflight = None
            assert num == self.last_id + 1
            self.last_id = num
            self.expected[num] = dict(doc)
            return num

    def update(self, num: int, fields: dict[str, Any]) -> None:
        with self.lock:
            assert self.table.update(num, fields)
            self.expected[num].update(fields)

    def remove(self, num: int) -> None:
        with self.lock:
            assert self.table.remove(num)
            del self.expected[num]

    def fill_until(self, where: str) -> None:
        """Insert until the snapshot thread an insert started is parked at `where`."""
        self.parking.add(where)
        n = 0
        while self.db.storage.wait_snapshot(0):  # none started yet
            self.insert({"n": n, "text": f"record {n}"})
            n += 1
            assert n < 1000, "no rewrite started"
        self.wait_parked(where)


def open_as_after_a_cut(folder: Path) -> Database:
    """The database in `folder` opened as a start after a power cut opens it."""
    remove_leftover_temps(folder)
    return Database(folder / "x.json")


def contents(db: Database) -> Expected:
    return {d.doc_id: dict(d) for d in db.table("t").all()}


def check_state(label: str, folder: Path, expected: Expected) -> None:
    """A copy opens with exactly what was acknowledged, goes on taking writes, and its next
    rewrite leaves the usual two files."""
    db = open_as_after_a_cut(folder)
    assert contents(db) == expected, label
    num = db.table("t").insert({"after": label})
    db.storage.compact()
    db.close()
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["x.json", "x.json.journal"], label
    db = Database(folder / "x.json")
    assert contents(db) == {**expected, num: {"after": label}}, label
    db.close()


def test_a_cut_at_any_step_of_a_rewrite_keeps_every_acknowledged_write_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = Steps(tmp_path, monkeypatch)
    steps.parking.add("mid")
    steps.fill_until("write")  # the first rewrite: no snapshot before it
    first = steps.states[-1][1]
    assert not (first / "x.json").exists()
    # Writes after the journal was renamed, before the snapshot thread read anything: the
    # snapshot will hold them (record 3 changed, 4 gone, two new) and so will the journal.
    steps.update(3, {"text": "changed before the snapshot read it"})
    steps.remove(4)
    steps.insert({"n": 100})
    steps.insert({"n": 101})
    steps.freeze("writes while the thread waits to write")
    steps.let_go("write")
    steps.wait_parked("mid")
    # Records 1 and 2 are in the half written snapshot already: there as they were, and
    # changed or gone in the journal.
    steps.update(1, {"text": "changed after the snapshot read it"})
    steps.remove(2)
    steps.insert({"n": 102})
    steps.freeze("writes while the snapshot is half written")
    steps.let_go("mid")
    assert steps.db.storage.wait_snapshot(DEADLINE)
    steps.insert({"n": 103})
    steps.freeze("a write after the rewrite")
    steps.db.close()
    monkeypatch.undo()

    labels = [label for label, _, _ in steps.states]
    assert labels == [
        "link x.json.journal.old: before",
        "link x.json.journal.old: after",  # the journal has a second name
        "rename .x.json.journal to x.json.journal: before",  # a new empty journal, as temp
        "rename .x.json.journal to x.json.journal: after",
        "snapshot thread started",
        "writes while the thread waits to write",
        "snapshot half written",
        "writes while the snapshot is half written",
        "rename .x.json to x.json: before",  # written and fsync'd, not in place
        "rename .x.json to x.json: after",  # in place, the old segment still there
        "old segment deleted",
        "a write after the rewrite",
    ]
    by_label = {label: folder for label, folder, _ in steps.states}
    assert os.path.samefile(
        by_label["link x.json.journal.old: after"] / "x.json.journal.old",
        by_label["link x.json.journal.old: after"] / "x.json.journal",
    )
    assert (by_label["rename .x.json to x.json: after"] / "x.json.journal.old").exists()
    assert not (by_label["old segment deleted"] / "x.json.journal.old").exists()
    half = by_label["snapshot half written"]
    assert any(p.name.startswith(".x.json.tmp-") for p in half.iterdir())
    for label, folder, expected in steps.states:
        check_state(label, folder, expected)


def test_a_rewrite_after_one_that_was_cut_short_covers_both_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = Steps(tmp_path, monkeypatch)
    steps.fill_until("write")
    steps.update(2, {"text": "in the new journal"})
    steps.freeze("cut while the thread waits to write")
    steps.let_go("write")
    assert steps.db.storage.wait_snapshot(DEADLINE)
    steps.db.close()
    monkeypatch.undo()

    # The start after that cut: the old segment and the journal are both read, and the
    # next rewrite (no new rotation: the old segment is still there) retires it.
    ((folder, expected),) = [
        (f, e) for label, f, e in steps.states if label == "cut while the thread waits to write"
    ]
    monkeypatch.setattr(durable, "COMPACT_MIN_BYTES", 600)
    db = open_as_after_a_cut(folder)
    assert contents(db) == expected
    assert (folder / "x.json.journal.old").exists()
    t = db.table("t")
    n = 0
    while (folder / "x.json.journal.old").exists():
        assert db.storage.wait_snapshot(DEADLINE)
        expected[t.insert({"more": n})] = {"more": n}
        n += 1
        assert n < 1000, "the old segment was never retired"
    assert db.storage.wait_snapshot(DEADLINE)
    db.close()
    assert sorted(p.name for p in folder.iterdir()) == ["x.json", "x.json.journal"]
    db = Database(folder / "x.json")
    assert contents(db) == expected
    db.close()


def test_a_cut_during_a_rotation_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system without hard links the journal is renamed to the old segment and
    the new one renamed into place: a cut between the two leaves no journal at all."""
    steps = Steps(tmp_path, monkeypatch)

    def no_links(src: Any, dst: Any, *args: Any, **kw: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(durable.os, "link", no_links)
    steps.fill_until("write")
    steps.let_go("write")
    assert steps.db.storage.wait_snapshot(DEADLINE)
    steps.db.close()
    monkeypatch.undo()
    labels = [label for label, _, _ in steps.states]
    assert labels[:4] == [
        "rename x.json.journal to x.json.journal.old: before",
        "rename x.json.journal to x.json.journal.old: after",
        "rename .x.json.journal to x.json.journal: before",
        "rename .x.json.journal to x.json.journal: after",
    ]
    between = steps.states[1][1]
    assert not (between / "x.json.journal").exists()
    for label, folder, expected in steps.states:
        check_state(label, folder, expected)


def test_readers_and_writers_go_on_while_a_snapshot_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = Steps(tmp_path, monkeypatch)
    steps.parking.add("commit")
    steps.fill_until("mid")

    def work(where: str, done: threading.Event, seen: list[Any]) -> None:
        for i in range(20):
            num = steps.insert({"during": where, "i": i})
            seen.append(steps.table.get(num))
            steps.update(num, {"i": -i})
            seen.append(steps.table.newest(5))
        done.set()

    for where in ("mid", "commit"):
        steps.wait_parked(where)
        done = threading.Event()
        seen: list[Any] = []
        worker = threading.Thread(target=work, args=(where, done, seen))
        worker.start()
        # The snapshot thread stays parked until the work is done: had the work to wait
        # for it (a lock held while writing), it would never finish.
        assert done.wait(DEADLINE), f"reads and writes waited for the snapshot ({where})"
        worker.join()
        assert not steps.db.storage.wait_snapshot(0)  # still parked
        assert all(seen)
        steps.let_go(where)
    assert steps.db.storage.wait_snapshot(DEADLINE)
    assert contents(steps.db) == steps.expected
    steps.db.close()
    db = Database(steps.folder / "x.json")
    assert contents(db) == steps.expected
    db.close()


def test_history_writes_and_reads_go_on_while_a_month_is_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable, "COMPACT_MIN_BYTES", 2000)
    monkeypatch.setattr(durable, "WRITE_CHUNK", 64)
    parked, go = threading.Event(), threading.Event()
    real = durable.encode_tables

    def slow(tables: Any) -> Iterator[bytes]:
        for chunk in real(tables):
            yield chunk
            parked.set()
            assert go.wait(DEADLINE)

    monkeypatch.setattr(durable, "encode_tables", slow)
    when = datetime(2026, 11, 5, tzinfo=UTC)
    with Store(tmp_path) as store:
        ids = []
        while not parked.is_set():
            ids.append(store.history.add({"n": len(ids), "text": "x" * 40}, when))
            assert len(ids) < 1000
        done = threading.Event()

        got: list[Any] = []

        def work() -> None:
            ids.append(store.history.add({"n": len(ids)}, when))
            got.append(store.history.get(ids[0]))
            got.append(store.history.update(ids[1], {"handled": True}))
            got.append(store.history.newest(1)[0]["id"])
            done.set()

        worker = threading.Thread(target=work)
        worker.start()
        assert done.wait(DEADLINE), "the history waited for the month's snapshot"
        worker.join()
        assert got == [{"n": 0, "text": "x" * 40, "id": ids[0]}, True, ids[-1]]
        assert not store.history._db("2026-11").storage.wait_snapshot(0)  # still parked
        go.set()
    with Store(tmp_path) as store:
        records = store.history.newest(2000)
        assert [r["id"] for r in records] == ids[::-1]
        assert store.history.get(ids[1])["handled"] is True  # type: ignore[index]
    folder = tmp_path / "history"
    assert sorted(p.name for p in folder.iterdir()) == ["2026-11.json", "2026-11.json.journal"]


def test_a_history_month_is_let_go_only_once_its_snapshot_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable, "COMPACT_MIN_BYTES", 600)
    parked, go = threading.Event(), threading.Event()
    real = durable.encode_tables

    def slow(tables: Any) -> Iterator[bytes]:
        parked.set()
        assert go.wait(DEADLINE)
        yield from real(tables)

    monkeypatch.setattr(durable, "encode_tables", slow)
    history = History(
        tmp_path / "history",
        old_months=1,
        idle_seconds=3600,
        clock=lambda: datetime(2026, 11, 20, tzinfo=UTC),
    )
    may = datetime(2026, 5, 1, tzinfo=UTC)
    ids = []
    while not parked.is_set():
        ids.append(history.add({"n": len(ids)}, may))
        assert len(ids) < 1000
    # Two other older months: May would be let go (one older month is kept), but closing
    # it would wait for its snapshot, so it stays until that is written.
    history.add({"n": 1}, datetime(2026, 9, 1, tzinfo=UTC))
    history.add({"n": 1}, datetime(2026, 8, 1, tzinfo=UTC))
    assert history.open_months() == ["2026-05", "2026-08"]
    go.set()
    assert history._open["2026-05"].storage.wait_snapshot(DEADLINE)
    history.add({"n": 2}, datetime(2026, 8, 1, tzinfo=UTC))
    assert history.open_months() == ["2026-08"]
    assert [n for n, _ in history.read_month("2026-05")] == list(range(1, len(ids) + 1))
    history.close()


def test_a_snapshot_that_cannot_be_written_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(durable, "COMPACT_MIN_BYTES", 600)
    monkeypatch.setattr(durable, "RETRY_SECONDS", 0.0)
    real = durable.write_temp
    fail = [True]
    links: list[str] = []
    real_link = os.link

    def full_disk(path: Path, data: Any, mode: int = 0o640) -> Any:
        if fail[0]:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, mode)

    def link(src: Any, dst: Any) -> None:
        links.append(str(dst))
        real_link(src, dst)

    monkeypatch.setattr(durable, "write_temp", full_disk)
    monkeypatch.setattr(durable.os, "link", link)
    folder = tmp_path / "db"
    folder.mkdir()
    db = Database(folder / "x.json")
    t = db.table("t")
    expected: Expected = {}
    with caplog.at_level(logging.ERROR):
        while not caplog.records:
            expected[t.insert({"n": len(expected)})] = {"n": len(expected)}
            db.storage.wait_snapshot(DEADLINE)
            assert len(expected) < 1000
    assert "the snapshot could not be written" in caplog.text
    assert "No space left on device" in caplog.text
    assert (folder / "x.json.journal.old").exists() and not (folder / "x.json").exists()
    # Everything is still there for a start now.
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(folder), str(copy)], check=True)
    assert contents(open_as_after_a_cut(copy)) == expected
    # Room again: the next insert tries again, covering both segments, without renaming
    # the journal again.
    fail[0] = False
    expected[t.insert({"n": -1})] = {"n": -1}
    assert db.storage.wait_snapshot(DEADLINE)
    assert links == [str(folder / "x.json.journal.old")]
    assert not (folder / "x.json.journal.old").exists() and (folder / "x.json").exists()
    db.close()
    assert contents(Database(folder / "x.json")) == expected


def test_a_whole_database_write_during_a_rewrite_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = Steps(tmp_path, monkeypatch)
    steps.fill_until("write")
    other = steps.db.table("other")
    other.insert({"keep": True})
    steps.db._db.drop_table("t")  # a whole-database write: a snapshot on this thread
    steps.let_go("write")
    assert steps.db.storage.wait_snapshot(DEADLINE)
    steps.db.close()
    names = sorted(p.name for p in steps.folder.iterdir())
    assert names == ["x.json", "x.json.journal"]  # the thread's older snapshot is dropped
    assert json.loads((steps.folder / "x.json").read_bytes()) == {"other": {"1": {"keep": True}}}
    db = Database(steps.folder / "x.json")
    assert len(db.table("t")) == 0 and [dict(d) for d in db.table("other").all()] == [
        {"keep": True}
    ]
    db.close()


def test_opening_again_waits_for_the_snapshot_of_the_closed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    steps = Steps(tmp_path, monkeypatch)
    monkeypatch.setattr(durable, "CLOSE_WAIT_SECONDS", 0.0)
    steps.fill_until("write")
    with caplog.at_level(logging.WARNING):
        steps.db.close()  # does not wait (here): the thread is still parked
    assert "still being written" in caplog.text
    path = steps.folder / "x.json"
    assert not durable.wait_for_snapshot(path, 0)
    real_wait = durable.wait_for_snapshot
    waiting = threading.Event()

    def wait(path: Path, timeout: float | None = None) -> bool:
        waiting.set()
        return real_wait(path, timeout)

    monkeypatch.setattr(durable, "wait_for_snapshot", wait)
    opened: list[tuple[Database, bool]] = []

    def reopen() -> None:
        db = Database(path)
        opened.append((db, real_wait(path, 0)))

    opening = threading.Thread(target=reopen)
    opening.start()
    assert waiting.wait(DEADLINE)
    steps.let_go("write")
    opening.join(DEADLINE)
    ((db, snapshot_done),) = opened
    assert snapshot_done  # it opened only once the snapshot was written
    assert contents(db) == steps.expected
    assert sorted(p.name for p in steps.folder.iterdir()) == ["x.json", "x.json.journal"]
    db.close()


def test_close_waits_for_the_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(tmp_path, monkeypatch)
    steps.fill_until("commit")
    order: list[str] = []
    waiting = threading.Event()
    real_wait, real_retire = (
        durable.JournalStorage.wait_snapshot,
        durable.JournalStorage._retire_old,
    )

    def wait(storage: durable.JournalStorage, timeout: float | None = None) -> bool:
        waiting.set()
        return real_wait(storage, timeout)

    def retire(storage: durable.JournalStorage) -> None:
        real_retire(storage)
        order.append("old segment deleted")

    monkeypatch.setattr(durable.JournalStorage, "wait_snapshot", wait)
    monkeypatch.setattr(durable.JournalStorage, "_retire_old", retire)

    def close() -> None:
        steps.db.close()
        order.append("closed")

    closing = threading.Thread(target=close)
    closing.start()
    assert waiting.wait(DEADLINE)
    steps.let_go("commit")
    closing.join(DEADLINE)
    assert order == ["old segment deleted", "closed"]
    assert sorted(p.name for p in steps.folder.iterdir()) == ["x.json", "x.json.journal"]


def test_old_segment_lines_are_checked_like_the_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    line = b'{"t":"t","set":{"%d":{"n":%d}}}\n'
    old, journal = tmp_path / "x.json.journal.old", tmp_path / "x.json.journal"
    # A torn last line in the old segment: dropped, the journal still read.
    old.write_bytes(line % (1, 1) + b'{"t":"t","se')
    journal.write_bytes(line % (2, 2))
    with caplog.at_level(logging.WARNING):
        db = Database(tmp_path / "x.json")
    assert contents(db) == {1: {"n": 1}, 2: {"n": 2}}
    assert "unfinished write" in caplog.text
    assert old.read_bytes() == line % (1, 1)
    db.close()
    # A damaged line in the middle of the old segment: the replay stops there; the rest of
    # it and the whole journal are kept aside before either is cut.
    old.write_bytes(line % (1, 1) + b"GARBAGE\n" + line % (3, 3))
    journal.write_bytes(line % (2, 2))
    with caplog.at_level(logging.ERROR):
        db = Database(tmp_path / "x.json")
    assert contents(db) == {1: {"n": 1}}
    (aside,) = tmp_path.glob("x.json.journal.damaged-*")
    assert aside.read_bytes() == b"GARBAGE\n" + line % (3, 3) + line % (2, 2)
    assert old.read_bytes() == line % (1, 1) and journal.read_bytes() == b""
    db.close()


def test_a_history_month_moved_aside_takes_its_old_segment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(tmp_path) as store:
        store.history.add({"n": 1}, datetime(2026, 1, 5, tzinfo=UTC))
    folder = tmp_path / "history"
    (folder / "2026-01.json.journal.old").write_bytes(b'{"t":"records","set":{"9":{"n":9}}}\n')
    (folder / "2026-01.json").mkdir()  # the kernel refuses to read it (EISDIR for EIO)
    with caplog.at_level(logging.ERROR), Store(tmp_path) as store:
        assert store.history.newest(5) == []
    assert len(list(folder.glob("2026-01.json*.unreadable-*"))) == 3  # snapshot, segments
    assert len(list(folder.glob("2026-01.json.journal.old.unreadable-*"))) == 1


def test_updates_never_change_a_stored_document_in_place(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.json")
    t = db.table("t")
    doc = {"tags": ["a"], "n": 1}
    num = t.insert(doc)
    doc["tags"].append("caller's own list")  # the store kept a copy
    stored = db.storage.read()["t"][str(num)]
    t.update(num, {"n": 2})
    assert stored == {"tags": ["a"], "n": 1}  # what a snapshot thread may be reading
    assert db.storage.read()["t"][str(num)] == {"tags": ["a"], "n": 2}
    fields = {"tags": ["b"]}
    t.update(num, fields)
    fields["tags"].append("x")
    assert t.get(num) == {"tags": ["b"], "n": 2}
    db.close()
    assert Database(tmp_path / "x.json").table("t").get(num) == {"tags": ["b"], "n": 2}


@pytest.mark.parametrize("batch", [1, 2, 100])
@pytest.mark.parametrize("chunk", [1, 50, 1 << 18])
def test_the_chunked_snapshot_is_the_same_json(
    batch: int, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable, "SNAPSHOT_BATCH", batch)
    monkeypatch.setattr(durable, "WRITE_CHUNK", chunk)
    tables: dict[str, dict[str, Any]] = {
        "records": {
            str(i): {"n": i, "name": 'Zoë \u00e9\u4e2d "q" \\ \n', "list": [1, None, True]}
            for i in range(1, 8)
        },
        "empty": {},
        "docs": {"1": {"_key": "current", "nested": {"a": [{"b": 1.5}]}}},
    }
    body = b"".join(encode_tables(tables))
    assert body == json.dumps(tables, ensure_ascii=False, separators=(",", ":")).encode()
    assert json.loads(b"".join(encode_tables({}))) == {}
