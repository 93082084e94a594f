"""The durable database: journal, snapshot, recovery, threads, media, lock."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tinydb import where

from firmware_app.errors import StoreError, StoreLockedError
from firmware_app.store import History, Store, durable
from firmware_app.store.durable import Database


def test_insert_update_remove_survive_reopen(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.json")
    t = db.table("items")
    ids = [t.insert({"n": i, "tags": ["a"]}) for i in range(5)]
    assert t.update(ids[1], {"n": 10})
    assert t.remove(ids[2])
    assert not t.update(999, {"n": 1})
    assert not t.remove(999)
    db.close()
    t2 = Database(tmp_path / "x.json").table("items")
    assert [d["n"] for d in t2.all()] == [0, 10, 3, 4]
    assert t2.get(ids[1]) == {"n": 10, "tags": ["a"]}
    assert t2.get(ids[2]) is None
    assert [d["n"] for d in t2.search(where("n") > 3)] == [10, 4]


def test_returned_documents_are_copies(tmp_path: Path) -> None:
    t = Database(tmp_path / "x.json").table("items")
    doc_id = t.insert({"tags": ["a"]})
    got = t.get(doc_id)
    assert got is not None
    got["tags"].append("changed")
    assert t.get(doc_id) == {"tags": ["a"]}


def test_an_insert_writes_one_line_not_the_file(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.json")
    t = db.table("items")
    for i in range(200):
        t.insert({"n": i, "text": "x" * 100})
    before = db.storage.bytes_written
    t.insert({"n": 200, "text": "x" * 100})
    assert db.storage.bytes_written - before < 200
    assert not (tmp_path / "x.json").exists()  # no snapshot needed yet


def test_torn_last_line_is_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = Database(tmp_path / "x.json")
    db.table("t").insert({"n": 1})
    db.close()
    journal = tmp_path / "x.json.journal"
    with journal.open("ab") as fh:
        fh.write(b'{"t":"t","set":{"2":{"n"')
    with caplog.at_level(logging.WARNING):
        t = Database(tmp_path / "x.json").table("t")
    assert [d["n"] for d in t.all()] == [1]
    assert journal.read_bytes().endswith(b"}}}\n")
    assert "unfinished write" in caplog.text
    assert t.insert({"n": 2}) == 2


def test_damaged_middle_line_keeps_the_rest_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "x.json.journal"
    journal.write_bytes(b'{"t":"t","set":{"1":{"n":1}}}\nGARBAGE\n{"t":"t","set":{"2":{"n":2}}}\n')
    with caplog.at_level(logging.ERROR):
        t = Database(tmp_path / "x.json").table("t")
    assert [d["n"] for d in t.all()] == [1]
    assert "damaged journal line" in caplog.text
    aside = list(tmp_path.glob("x.json.journal.damaged-*"))
    assert len(aside) == 1 and b"GARBAGE" in aside[0].read_bytes()


def test_unreadable_snapshot_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "x.json").write_text("{not json")
    with caplog.at_level(logging.ERROR):
        t = Database(tmp_path / "x.json").table("t")
    assert len(t) == 0
    assert "moved aside" in caplog.text
    assert len(list(tmp_path.glob("x.json.unreadable-*"))) == 1
    t.insert({"ok": True})


def test_copies_kept_aside_never_overwrite_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable.time, "strftime", lambda fmt: "20261204T120000")  # one second
    for n in range(3):
        (tmp_path / "x.json").write_text(f"{{not json {n}")
        Database(tmp_path / "x.json").close()
        (tmp_path / "x.json").unlink(missing_ok=True)
        (tmp_path / "x.json.journal").write_bytes(
            b'{"t":"t","set":{"1":{"n":1}}}\nGARBAGE %d\n{"t":"t"}\n' % n
        )
        Database(tmp_path / "x.json").close()
        (tmp_path / "x.json.journal").unlink()
    unreadable = sorted(p.name for p in tmp_path.glob("x.json.unreadable-*"))
    assert unreadable == [
        "x.json.unreadable-20261204T120000",
        "x.json.unreadable-20261204T120000-2",
        "x.json.unreadable-20261204T120000-3",
    ]
    assert {(tmp_path / name).read_text() for name in unreadable} == {
        "{not json 0",
        "{not json 1",
        "{not json 2",
    }
    damaged = sorted(tmp_path.glob("x.json.journal.damaged-*"))
    assert {p.read_bytes() for p in damaged} == {b'GARBAGE %d\n{"t":"t"}\n' % n for n in range(3)}
    assert not list(tmp_path.glob(".*tmp-*"))  # written whole, through atomic_write


def test_damaged_tail_is_on_disk_before_the_journal_is_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "x.json.journal"
    journal.write_bytes(b'{"t":"t","set":{"1":{"n":1}}}\nGARBAGE\n{"t":"t"}\n')
    order: list[str] = []
    real_write, real_open = durable.atomic_write, open

    def write(path: Path, data: bytes, mode: int = 0o640) -> int:
        order.append(f"copy {path.name.split('-')[0]}")
        return real_write(path, data, mode)

    def open_(file: object, mode: str = "r", *args: object, **kw: object) -> object:
        if str(file) == str(journal) and "+" in mode:
            order.append("cut journal")
        return real_open(file, mode, *args, **kw)

    monkeypatch.setattr(durable, "atomic_write", write)
    monkeypatch.setattr(durable, "open", open_, raising=False)
    Database(tmp_path / "x.json").close()
    assert order == ["copy x.json.journal.damaged", "cut journal"]


def test_an_io_error_on_a_history_month_moves_it_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(tmp_path) as store:
        first = store.history.add({"n": 1}, datetime(2026, 1, 5, tzinfo=UTC))
        store.history.add({"n": 2}, datetime(2026, 2, 5, tzinfo=UTC))
    # The kernel refuses to read January's snapshot (a real OSError, EISDIR, standing in
    # for EIO from a worn SD card).
    (tmp_path / "history" / "2026-01.json").mkdir()
    with caplog.at_level(logging.ERROR), Store(tmp_path) as store:
        assert [r["n"] for r in store.history.newest(10)] == [2]
        assert store.history.get(first) is None
        store.history.add({"n": 3}, datetime(2026, 1, 6, tzinfo=UTC))
        assert [r["n"] for r in store.history.newest(10)] == [2, 3]
    assert "2026-01.json" in caplog.text and "moved aside" in caplog.text
    assert "SD card may be failing" in caplog.text
    kept = list((tmp_path / "history").glob("2026-01.json*.unreadable-*"))
    assert len(kept) == 2  # the snapshot (here a folder) and the journal with record 1
    (journal,) = [p for p in kept if p.name.startswith("2026-01.json.journal")]
    assert b'"n":1' in journal.read_bytes()


def test_an_io_error_on_a_core_database_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from firmware_app.errors import StoreFileError

    with Store(tmp_path) as store:
        store.put_document("settings", "current", {"x": 1})
    real = Path.read_bytes

    def failing(self: Path) -> bytes:
        if self.name.startswith("settings.json"):
            raise OSError(errno.EIO, "Input/output error", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with Store(tmp_path) as store, pytest.raises(StoreFileError) as exc:
        store.database("settings")
    message = str(exc.value)
    assert "settings.json" in message and "Input/output error" in message
    assert "SD card may be failing" in message
    assert exc.value.errno == errno.EIO
    assert not list(tmp_path.glob("settings.json*.unreadable-*"))  # never started empty


def test_compaction_keeps_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable, "COMPACT_MIN_BYTES", 2000)
    db = Database(tmp_path / "x.json")
    t = db.table("t")
    for i in range(300):
        t.insert({"n": i})
    t.remove(5)
    assert db.storage.wait_snapshot(60)  # written on a thread of its own
    assert (tmp_path / "x.json").exists()
    assert (tmp_path / "x.json.journal").stat().st_size < 4000
    db.close()
    t2 = Database(tmp_path / "x.json").table("t")
    assert len(t2) == 299 and t2.get(300) == {"n": 299}


def test_replaying_a_journal_over_its_own_snapshot_is_harmless(tmp_path: Path) -> None:
    # A power cut between writing the snapshot and emptying the journal.
    db = Database(tmp_path / "x.json")
    t = db.table("t")
    for i in range(5):
        t.insert({"n": i})
    t.remove(2)
    journal = (tmp_path / "x.json.journal").read_bytes()
    db.storage.compact()
    db.close()
    (tmp_path / "x.json.journal").write_bytes(journal)
    assert [d["n"] for d in Database(tmp_path / "x.json").table("t").all()] == [0, 2, 3, 4]


def test_threads_insert_without_losing_anything(tmp_path: Path) -> None:
    t = Database(tmp_path / "x.json").table("t")

    def work(k: int) -> None:
        for i in range(100):
            t.insert({"k": k, "i": i})
            t.newest(5)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    docs = Database(tmp_path / "x.json").table("t").all()
    assert sorted((d["k"], d["i"]) for d in docs) == [(k, i) for k in range(4) for i in range(100)]


def test_newest_pages_backwards(tmp_path: Path) -> None:
    t = Database(tmp_path / "x.json").table("t")
    for i in range(10):
        t.insert({"n": i})
    assert [d["n"] for d in t.newest(3)] == [9, 8, 7]
    assert [d["n"] for d in t.newest(3, before=8)] == [6, 5, 4]
    assert [d["n"] for d in t.newest(2, where=lambda d: d["n"] % 2 == 0)] == [8, 6]


def test_leftover_temp_files_are_removed(data_dir: Path) -> None:
    (data_dir / "media" / "2026" / "01").mkdir(parents=True)
    leftovers = [data_dir / ".settings.json.tmp-1-2", data_dir / "media/2026/01/.a.wav.tmp-3-4"]
    for p in leftovers:
        p.write_bytes(b"half")
    Store(data_dir).close()
    assert not any(p.exists() for p in leftovers)


def test_history_partitions_by_month_and_pages_across(store: Store) -> None:
    jan = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
    feb = datetime(2026, 2, 1, 1, 0, tzinfo=UTC)
    a = store.history.add({"n": 1}, jan)
    b = store.history.add({"n": 2}, feb)
    c = store.history.add({"n": 3}, feb)
    assert (a, b, c) == ("2026-01:1", "2026-02:1", "2026-02:2")
    assert store.history.months() == ["2026-02", "2026-01"]
    assert [r["id"] for r in store.history.newest(10)] == [c, b, a]
    assert [r["id"] for r in store.history.newest(10, before=b)] == [a]
    assert store.history.update(a, {"outcome": "missed", "id": "ignored"})
    assert store.history.get(a) == {"n": 1, "outcome": "missed", "id": a}
    assert store.history.get("2020-01:1") is None
    with pytest.raises(StoreError):
        store.history.get("../../etc:1")
    assert (store.data_dir / "history" / "2026-01.json.journal").exists()


def test_history_keeps_few_months_open(store: Store) -> None:
    for month in range(1, 13):
        store.history.add({"m": month}, datetime(2025, month, 1, tzinfo=UTC))
    assert len(store.history.open_months()) <= 1  # all older than the current month
    assert [r["m"] for r in store.history.newest(12)] == list(range(12, 0, -1))
    assert len(store.history.open_months()) <= 1


def test_history_holds_the_current_month_and_one_older(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 20, tzinfo=UTC)]
    history = History(tmp_path / "history", old_months=1, idle_seconds=3600, clock=lambda: now[0])
    try:
        ids = {m: history.add({"m": m}, datetime(2026, m, 2, tzinfo=UTC)) for m in (8, 9, 10, 11)}
        assert history.open_months() == ["2026-10", "2026-11"]
        assert history.get(ids[8]) == {"m": 8, "id": ids[8]}  # read on demand
        assert history.open_months() == ["2026-11", "2026-08"]  # the current month stays
        assert history.update(ids[9], {"seen": True})
        assert history.open_months() == ["2026-11", "2026-09"]
        # An older month nobody used for `idle_seconds` goes at the next access.
        history._used["2026-09"] -= 3601
        history.get(ids[11])
        assert history.open_months() == ["2026-11"]
        history.get(ids[10])
        history._used["2026-10"] -= 3601
        history.trim()
        assert history.open_months() == ["2026-11"]
        # A new month: the one before is an older month like the rest.
        now[0] = datetime(2026, 12, 1, tzinfo=UTC)
        history.add({"m": 12})
        history.get(ids[9])
        assert set(history.open_months()) == {"2026-12", "2026-09"}
        assert history.get(ids[9]) == {"m": 9, "seen": True, "id": ids[9]}
    finally:
        history.close()


def test_history_reads_a_month_without_keeping_it(tmp_path: Path) -> None:
    folder = tmp_path / "history"
    history = History(folder, clock=lambda: datetime(2026, 11, 20, tzinfo=UTC))
    old = [history.add({"k": k}, datetime(2026, 5, 1, tzinfo=UTC)) for k in range(3)]
    history.update(old[1], {"k": 10})
    history.add({"k": 99})
    history.close()
    history = History(folder, clock=lambda: datetime(2026, 11, 20, tzinfo=UTC))
    try:
        assert history.read_month("2026-05") == [(1, {"k": 0}), (2, {"k": 10}), (3, {"k": 2})]
        assert history.open_months() == []  # read from its files (journal too), let go
        assert history.read_month("2026-11") == [(1, {"k": 99})]
        assert history.read_month("2026-04") == [] and history.months() == ["2026-11", "2026-05"]
        history.get("2026-11:1")
        assert history.read_month("2026-11") == [(1, {"k": 99})]  # an open one is copied
        assert history.open_months() == ["2026-11"]
    finally:
        history.close()


def test_history_scans_newest_first_without_keeping_older_months(tmp_path: Path) -> None:
    folder = tmp_path / "history"
    history = History(folder, clock=lambda: datetime(2026, 11, 20, tzinfo=UTC))
    ids = [history.add({"k": k}, datetime(2026, 9 + k // 600, 1, tzinfo=UTC)) for k in range(1800)]
    history.close()
    history = History(folder, clock=lambda: datetime(2026, 11, 20, tzinfo=UTC))
    try:
        assert [r["id"] for r in history.scan()] == ids[::-1]
        assert history.open_months() == ["2026-11"]  # the current month only
        rest = [r["k"] for r in history.scan(before=ids[1200])]
        assert rest == list(range(1199, -1, -1))
        assert [r["k"] for r in history.scan(before=ids[1500])][:2] == [1499, 1498]
        assert history.open_months() == ["2026-11"]
        history.get(ids[0])
        assert [r["id"] for r in history.scan(before=ids[2])] == [ids[1], ids[0]]
    finally:
        history.close()


def test_media_written_atomically_and_confined(store: Store) -> None:
    ref = store.media.write(b"RIFF....", "wav", datetime(2026, 3, 1, tzinfo=UTC))
    assert ref.startswith("media/2026/03/") and ref.endswith(".wav")
    assert store.media.read(ref) == b"RIFF...."
    chunks = store.media.write(iter([b"a", b"b"]), "pdf")
    assert store.media.read(chunks) == b"ab"
    for bad in ["media/../settings.json", "/etc/passwd", "media/2026/03/../../x.wav", "x", ""]:
        with pytest.raises(StoreError):
            store.media.path(bad)
    with pytest.raises(StoreError):
        store.media.write(b"x", "../sh")
    with pytest.raises(StoreError):
        store.media.read("media/2026/03/AAAAAAAAAAAA.wav")


def test_one_process_owns_the_data_dir(store: Store, data_dir: Path) -> None:
    assert Store.is_locked(data_dir)
    with pytest.raises(StoreLockedError, match="in use"):
        Store(data_dir)
    store.close()
    assert not Store.is_locked(data_dir)
    Store(data_dir).close()


def test_named_documents(store: Store) -> None:
    assert store.get_document("settings", "settings") is None
    store.put_document("settings", "settings", {"a": 1})
    store.put_document("settings", "settings", {"a": 2})
    assert store.get_document("settings", "settings") == {"a": 2}
    assert len(store.table("settings", "docs")) == 1
    with pytest.raises(StoreError):
        store.database("../etc")


def test_journal_lines_are_json(tmp_path: Path) -> None:
    t = Database(tmp_path / "x.json").table("t")
    t.insert({"name": "Zoë \n <b>"})
    lines = (tmp_path / "x.json.journal").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"t": "t", "set": {"1": {"name": "Zoë \n <b>"}}}
