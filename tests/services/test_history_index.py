"""The history index: filters, search, the inbox and `since` over a long history (rare matches
months back), paging with cursors and totals, and the index's files: snapshot, copies
written after it, an unclean stop, damage, rewriting, rebuilding, and the scan it falls back
to while it is built. Checked against a brute-force reading of every record."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from firmware_app.events import EventBus
from firmware_app.services.history import (
    ALL,
    OPEN,
    HistoryService,
    Interaction,
    channel_key,
    day_keys,
    number_key,
    outcome_key,
)
from firmware_app.services.history_index import SNAPSHOT, decode, encode
from firmware_app.store import Store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MONTHS = ("2026-09", "2026-10", "2026-11")


def rec(start: datetime, **kw: Any) -> dict[str, Any]:
    base = Interaction(
        channel=kw.pop("channel", "call"),
        direction=kw.pop("direction", "in"),
        outcome=kw.pop("outcome", "answered"),
        start=start,
        number=kw.pop("number", "+15550001111"),
        line=kw.pop("line", "line1"),
        handled_at=kw.pop("handled_at", start + timedelta(hours=1)),
        handled_by="Maria",
        **kw,
    )
    return base.to_record()


def write_history(data_dir: Path, per_month: int, extra: dict[str, list[dict[str, Any]]]) -> None:
    """Month files as the store writes them (snapshot + empty journal): `per_month` answered
    calls in each month, then the month's `extra` records (the rare ones) at the start."""
    folder = data_dir / "history"
    folder.mkdir(parents=True)
    for month in MONTHS:
        first = datetime.fromisoformat(f"{month}-01T00:00:00+00:00")
        docs = [*extra.get(month, [])]
        docs += [
            rec(first + timedelta(minutes=5 * k), number=f"+1555{k % 700:07d}")
            for k in range(per_month)
        ]
        body = {"records": {str(i + 1): d for i, d in enumerate(docs)}}
        (folder / f"{month}.json").write_text(json.dumps(body))
        (folder / f"{month}.json.journal").write_bytes(b"")


@pytest.fixture
def long_history(data_dir: Path) -> dict[str, str]:
    """12,000 records over three months; the interesting ones are in the oldest month."""
    sept = datetime(2026, 9, 3, 10, 15, tzinfo=UTC)
    rare = [
        rec(sept, outcome="blocked", number="+447700900999"),
        rec(
            sept + timedelta(minutes=1),
            outcome="voicemail",
            number="+447700900123",
            media=("media/2026/09/aaaaaaaaaaaaaaaa.mp3",),
            handled_at=None,
        ),
        rec(
            sept + timedelta(minutes=2),
            channel="sms",
            outcome="received",
            number="+447700900123",
            text="The boiler is leaking again",
        ),
        rec(sept + timedelta(minutes=3), name="ZOË Ångström"),
    ]
    write_history(data_dir, 4000, {"2026-09": rare})
    return {
        "blocked": "2026-09:1",
        "voicemail": "2026-09:2",
        "sms": "2026-09:3",
        "name": "2026-09:4",
    }


def service(data_dir: Path) -> tuple[Store, HistoryService]:
    store = Store(data_dir)
    history = HistoryService(store, EventBus(), clock=lambda: NOW)
    history.start_index()
    return store, history


def test_rare_records_months_back_are_found(data_dir: Path, long_history: dict[str, str]) -> None:
    store, history = service(data_dir)
    try:
        assert history.index.ready
        page = history.query([[outcome_key("call", "blocked")]], 50)
        assert [i.id for i in page.items] == [long_history["blocked"]] and page.total == 1
        page = history.query([[channel_key("call")], [number_key("+447700900999")]], 50)
        assert [i.id for i in page.items] == [long_history["blocked"]]
        keys, _, _ = day_keys(date(2026, 9, 3), ZoneInfo("Europe/London"))
        page = history.query([[channel_key("call")], keys], 1000)
        assert long_history["blocked"] in [i.id for i in page.items]
        assert page.total == len(page.items) == 288 + 3  # every 5 minutes, and 3 rare calls
        # The one open voicemail, behind 12,000 newer records.
        page = history.query([[OPEN], [outcome_key("call", "voicemail")]], 10)
        assert [i.id for i in page.items] == [long_history["voicemail"]]
        # Search: a word of the text, a word it starts, the name with or without accents.
        for words in (["boiler"], ["leak"], ["boil", "again"]):
            clauses = [history.index.expand(w)[0] for w in words]
            assert [i.id for i in history.query(clauses).items] == [long_history["sms"]]
        for word in ("zoe", "angstrom"):
            keys, whole = history.index.expand(word)
            assert whole and [i.id for i in history.query([keys]).items] == [long_history["name"]]
        assert history.index.expand("bo")[0] == []  # two letters match whole words only
        assert history.for_number("+447700900123")[0].id == long_history["sms"]
    finally:
        store.close()


def test_pages_follow_the_cursor_to_the_end(data_dir: Path, long_history: dict[str, str]) -> None:
    store, history = service(data_dir)
    try:
        wanted = [[number_key("+15550000007")]]
        seen: list[str] = []
        before = None
        while True:
            page = history.query(wanted, 7, before=before)
            assert page.total == 18 and page.exact  # 6000 numbers a month, 700 of them
            seen += [i.id for i in page.items]
            before = page.next_before
            if before is None:
                break
        codes = [encode(r) for r in seen]
        assert len(seen) == 18 and codes == sorted(codes, reverse=True)
        assert len(set(seen)) == 18
        oldest = history.query(wanted, 5, oldest_first=True)
        assert [i.id for i in oldest.items] == seen[::-1][:5]
    finally:
        store.close()


def test_since_pages_oldest_first_and_counts(data_dir: Path, long_history: dict[str, str]) -> None:
    store, history = service(data_dir)
    try:
        everything = history.newest(20000, max_scan=20000)
        for at in (
            datetime(2026, 11, 10, 3, 7, 30, tzinfo=UTC),  # inside the last month's records
            datetime(2026, 9, 3, 10, 16, 30, tzinfo=UTC),  # between two rare records
        ):
            every = sorted((i.id for i in everything if i.start >= at), key=encode)
            got: list[str] = []
            after = None
            while True:
                page = history.since(at, 500, after=after)
                assert page.total == len(every)
                got += [i.id for i in page.items]
                after = page.next_after
                if after is None:
                    break
            assert got == every and len(got) > 500
        assert got[:3] == [long_history["sms"], long_history["name"], "2026-09:705"]
    finally:
        store.close()


def test_inbox_filters_see_past_a_backlog(store: Store) -> None:
    history = HistoryService(store, EventBus(), clock=lambda: NOW)
    vm = history.record(
        Interaction(
            channel="call",
            direction="in",
            outcome="voicemail",
            start=NOW,
            number="+15550000001",
            line="line2",
        )
    )
    for k in range(300):  # newer open missed calls
        history.record(
            Interaction(
                channel="call",
                direction="in",
                outcome="missed",
                start=NOW + timedelta(minutes=k + 1),
                line="line2",
            )
        )
    page = history.inbox(100, channel="voicemail", line="line2")
    assert [i.id for i in page.items] == [vm.id] and page.total == 1
    page = history.inbox(100, channel="missed")
    assert len(page.items) == 100 and page.total == 300 and page.next_before
    rest = history.inbox(500, channel="missed", before=page.next_before)
    assert len(rest.items) == 200 and rest.next_before is None
    history.mark_handled([vm.id], by="Anna")
    assert history.inbox(100, channel="voicemail").total == 0
    assert history.open_count() == 300 == history.inbox(1).total


def brute(history: HistoryService, store: Store) -> dict[str, set[str]]:
    """Every key of every stored record, read from the store itself."""
    from firmware_app.services.history import needs_attention
    from firmware_app.services.history_index import record_keys

    out: dict[str, set[str]] = {}
    for doc in store.history.newest(100000):
        for key in record_keys(doc, needs_attention):
            out.setdefault(key, set()).add(str(doc["id"]))
    return out


def check_against_store(history: HistoryService, store: Store) -> None:
    truth = brute(history, store)
    for key, ids in truth.items():
        page = history.query([[key]], 100000)
        assert {i.id for i in page.items} == ids, key
        assert page.total == len(ids)
    for key in ("open", "ch:call", "o:call:missed", "o:sms:received", "l:line2"):
        if key not in truth:
            assert history.query([[key]], 10).total == 0
    for i in history.query([ALL], 100000).items:  # the copies hold what the store holds
        stored = store.history.get(i.id)
        assert stored is not None and Interaction.from_record(stored) == i


def random_writes(history: HistoryService, rnd: random.Random, n: int, t0: datetime) -> None:
    made: list[str] = []
    for k in range(n):
        roll = rnd.random()
        if made and roll < 0.3:
            rid = rnd.choice(made)
            change = rnd.choice(["outcome", "handled", "reopen", "text"])
            item = history.get(rid)
            assert item is not None
            if change == "outcome" and item.channel == "call":
                history.update(rid, outcome=rnd.choice(["missed", "voicemail", "answered"]))
            elif change == "handled":
                history.mark_handled([rid], by="Anna")
            elif change == "reopen" and item.needs_attention:
                history.reopen(rid)
            else:
                history.update(rid, name=rnd.choice(["Bob Smith", "Zoë", ""]))
            continue
        channel = rnd.choice(["call", "call", "sms", "fax"])
        outcome = {
            "call": rnd.choice(["answered", "missed", "voicemail", "blocked"]),
            "sms": rnd.choice(["received", "sent"]),
            "fax": "received",
        }[channel]
        item = history.record(
            Interaction(
                channel=channel,  # type: ignore[arg-type]
                direction="out" if outcome == "sent" else "in",
                outcome=outcome,
                start=t0 + timedelta(days=rnd.randrange(90), minutes=k),
                number=rnd.choice(["+15550000001", "+15550000002", "+447700900123", ""]),
                line=rnd.choice(["line1", "line2"]),
                text=rnd.choice(["boiler leak", "thanks", "quote for the oven"]),
                contact_id=rnd.choice([None, 1, 2]),
            )
        )
        made.append(item.id)


def test_index_matches_the_store_after_random_writes_and_restarts(data_dir: Path) -> None:
    rnd = random.Random(11)
    t0 = datetime(2026, 8, 1, tzinfo=UTC)
    store, history = service(data_dir)
    random_writes(history, rnd, 400, t0)
    check_against_store(history, store)
    history.close()  # a clean stop: the snapshot says the store is as it is
    store.close()
    store, history = service(data_dir)
    try:
        check_against_store(history, store)
        random_writes(history, rnd, 200, t0)  # no close: as if the power went
    finally:
        store.close()
    store, history = service(data_dir)
    try:
        check_against_store(history, store)
    finally:
        history.close()
        store.close()


def test_a_clean_restart_reads_no_month_of_the_store(data_dir: Path) -> None:
    store, history = service(data_dir)
    for k in range(30):
        history.record(
            Interaction(
                channel="call",
                direction="in",
                outcome="missed",
                start=NOW - timedelta(days=40 * (k % 3)),
            )
        )
    history.close()
    store.close()
    store = Store(data_dir)
    try:
        again = HistoryService(store, EventBus())
        assert again.index.open() == []  # nothing to compare with the store
        assert again.index.ready and again.query([[OPEN]], 100).total == 30
    finally:
        store.close()


def test_damage_to_the_index_files_is_repaired_from_the_store(data_dir: Path) -> None:
    store, history = service(data_dir)
    ids = [
        history.record(
            Interaction(
                channel="sms",
                direction="in",
                outcome="received",
                start=NOW + timedelta(minutes=k),
                text=f"word{k}",
            )
        ).id
        for k in range(50)
    ]
    history.close()
    store.close()
    copy = data_dir / "index" / "2026-11.jsonl"
    raw = copy.read_bytes()
    copy.write_bytes(raw[: len(raw) // 2])  # cut mid-line
    store, history = service(data_dir)
    try:
        assert history.query([["w:word49"]]).items[0].id == ids[49]
        check_against_store(history, store)
    finally:
        history.close()
        store.close()
    snap = data_dir / "index" / SNAPSHOT
    raw = bytearray(snap.read_bytes())
    raw[-3] ^= 0xFF  # the checksum no longer matches
    snap.write_bytes(bytes(raw))
    store, history = service(data_dir)
    try:
        assert history.query([["w:word7"]]).items[0].id == ids[7]
        check_against_store(history, store)
    finally:
        store.close()


def test_old_versions_are_dropped_from_a_months_copy(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import firmware_app.services.history_index as hx

    monkeypatch.setattr(hx, "COMPACT_MIN", 20)
    store, history = service(data_dir)
    item = history.record(Interaction(channel="call", direction="in", outcome="missed", start=NOW))
    copy = data_dir / "index" / "2026-11.jsonl"
    for k in range(60):
        history.update(item.id, duration=float(k))
    assert len(copy.read_bytes().splitlines()) < 30
    history.close()
    store.close()
    store, history = service(data_dir)
    try:
        got = history.get(item.id)
        assert got is not None and got.duration == 59.0
        check_against_store(history, store)
    finally:
        store.close()


def test_queries_scan_the_newest_records_while_the_index_is_built(
    data_dir: Path, long_history: dict[str, str]
) -> None:
    (data_dir / "timeline.json").write_text('{"refs": {}}')  # the number index it replaces
    store = Store(data_dir)
    try:
        history = HistoryService(store, EventBus())
        months = history.index.open()
        history._index_opened = True
        assert months == list(MONTHS) and not history.index.ready
        page = history.query([[outcome_key("call", "answered")]], 10)
        assert not page.complete and page.searched == 5000 and len(page.items) == 10
        assert history.query([[outcome_key("call", "blocked")]], 10).items == []
        history.index.catch_up(months)
        assert history.index.ready and not (data_dir / "timeline.json").exists()
        page = history.query([[outcome_key("call", "blocked")]], 10)
        assert page.complete and [i.id for i in page.items] == [long_history["blocked"]]
    finally:
        store.close()


def test_a_rebuild_reads_each_month_once_and_keeps_writes_made_meanwhile(
    data_dir: Path, long_history: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first start after an upgrade: each month is read from its files and let go (the
    store keeps none of them), and a record changed or added while its month is compared
    shows as it is now, not as it was read."""
    store = Store(data_dir)
    try:
        history = HistoryService(store, EventBus())
        months = history.index.open()
        history._index_opened = True
        read = store.history.read_month
        held: list[tuple[str, list[str]]] = []
        added: list[str] = []

        def read_then_write(month: str) -> list[tuple[int, dict[str, Any]]]:
            records = read(month)
            held.append((month, store.history.open_months()))
            if month == "2026-09":  # what was read is now out of date
                history.update(long_history["sms"], text="The boiler is fixed now")
                item = history.record(
                    Interaction(
                        channel="call",
                        direction="in",
                        outcome="voicemail",
                        start=datetime(2026, 9, 30, 9, 0, tzinfo=UTC),
                        number="+447700900777",
                    )
                )
                added.append(item.id)
            return records

        monkeypatch.setattr(store.history, "read_month", read_then_write)
        history.index.catch_up(months)
        assert history.index.ready
        # no month kept by the store once read (2026-09 opens for the writes, not the read)
        assert held == [("2026-09", []), ("2026-10", ["2026-09"]), ("2026-11", ["2026-09"])]
        words = history.index.expand("fixed")[0]
        assert [i.id for i in history.query([words], 10).items] == [long_history["sms"]]
        assert history.query([history.index.expand("leaking")[0] or ["w:leaking"]], 10).total == 0
        page = history.query([[number_key("+447700900777")]], 10)
        assert [i.id for i in page.items] == added
        check_against_store(history, store)
    finally:
        store.close()


def test_a_rebuild_stopped_midway_is_not_replayed_at_start_but_read_again(
    data_dir: Path, long_history: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop during the first rebuild: the snapshot written at the stop marks the month
    being read as unfinished, so the next start reads it whole again (not `ready` before);
    a copy whose tail is longer than REPLAY_MAX is not replayed at start (seconds on a Pi at
    100,000 records) but deleted and its month read again from the store on the thread."""
    import threading

    import firmware_app.services.history_index as hx

    store = Store(data_dir)
    history = HistoryService(store, EventBus())
    append = history.index._append
    stop_after = threading.Event()

    def append_then_stop(month: str, num: int, line: bytes) -> None:
        append(month, num, line)
        if month == "2026-11" and num == 1000:
            stop_after.set()
            history.stop_indexing()  # the daemon's stop, while this month is read

    monkeypatch.setattr(history.index, "_append", append_then_stop)
    monkeypatch.setattr(hx, "CATCH_UP_CHUNK", 100)
    history.start_index(background=True, hold=True)
    assert history.indexing()  # held: not started, but not ready either
    history.release_index()
    assert history.wait_indexed(60) is False or stop_after.is_set()
    history.close()  # the snapshot: 2026-09 and 2026-10 done, 2026-11 unfinished
    store.close()
    assert stop_after.is_set()
    partial = data_dir / "index" / "2026-11.jsonl"
    assert partial.stat().st_size > 0

    store = Store(data_dir)
    try:
        again = HistoryService(store, EventBus())
        months = again.index.open()
        assert months == ["2026-11"] and not again.index.ready  # read whole again
        again.index.close()
    finally:
        store.close()

    (data_dir / "index" / SNAPSHOT).unlink()  # a stop that could not write it in time
    monkeypatch.setattr(hx, "REPLAY_MAX", partial.stat().st_size // 2)
    store = Store(data_dir)
    try:
        again = HistoryService(store, EventBus())
        replayed: list[str] = []
        replay = again.index._replay
        monkeypatch.setattr(again.index, "_replay", lambda m, s: replayed.append(m) or replay(m, s))
        months = again.index.open()
        assert months == list(MONTHS) and not again.index.ready
        assert replayed == [] and not partial.exists()  # too long: read again instead
        again._index_opened = True
        again.index.catch_up(months)
        assert again.index.ready
        page = again.query([[outcome_key("call", "blocked")]], 10)
        assert [i.id for i in page.items] == [long_history["blocked"]]
        check_against_store(again, store)
    finally:
        store.close()


def test_a_held_rebuild_that_is_stopped_before_it_starts_never_runs(data_dir: Path) -> None:
    write_history(data_dir, 10, {})
    store = Store(data_dir)
    try:
        history = HistoryService(store, EventBus())
        history.start_index(background=True, hold=True)
        assert history.indexing() and not history.wait_indexed(0.01)
        history.stop_indexing()
        history.release_index()  # too late: the daemon is stopping
        assert history._index_thread is not None and history._index_thread.ident is None
        assert history.wait_indexed(0) and not history.index.ready and history.stopping
        history.close()
    finally:
        store.close()


def test_numbers_are_found_by_any_digits_they_contain(data_dir: Path) -> None:
    store, history = service(data_dir)
    try:
        for number in ("+447700900123", "+15551230000", "0800 123 4567", "12345", "+4411349"):
            history.record(
                Interaction(
                    channel="call", direction="in", outcome="missed", start=NOW, number=number
                )
            )
        want = ["+15551230000", "+447700900123", "0800 123 4567", "12345"]
        assert history.index.numbers_containing("123") == want
        assert history.index.numbers_containing("08001234") == ["0800 123 4567"]
        assert history.index.numbers_containing("4411") == ["+4411349"]
        assert history.index.numbers_containing("9999") == []
        history.close()
        store.close()
        store, history = service(data_dir)  # from the snapshot
        assert history.index.numbers_containing("123") == want
        assert history.index.numbers_containing("08001234") == ["0800 123 4567"]
        assert len(history.index.numbers()) == 5
    finally:
        store.close()


def test_ids_encode_in_the_stores_order() -> None:
    ids = ["2025-12:9", "2026-01:1", "2026-01:2", "2026-01:10", "2026-02:1"]
    assert sorted(ids, key=encode) == ids
    assert [decode(encode(i)) for i in ids] == ids
    with pytest.raises(ValueError):
        encode("../etc:1")
