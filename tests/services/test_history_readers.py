"""Every service that reads the history reaches all of it through the history index, and
none of them loads a history month into memory: text conversations and their counts, the
fax lists, texts and faxes still queued, the record of a call, fax or text left in progress
at a stop, and the daily summary's day. Old records sit behind thousands of newer ones
(more than any scan limit the services used to have)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.fax.service import INDEXING_WAIT, FaxService
from firmware_app.services import Services
from firmware_app.services.history import Interaction
from firmware_app.services.sms import UNKNOWN, SmsService
from firmware_app.store import Store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SEPT = datetime(2026, 9, 3, 10, 0, tzinfo=UTC)
PER_MONTH = 4000  # newer calls in each month: 12,000 in all, behind the old records
BUSY_DAY = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
BUSY = 10_050  # calls on one day: more than the summary's scan of the store read (100 x 100)


class FakeStatus:
    kind = "gsm"
    state = "idle"


class FakeLine:
    name = "gsm1"

    def status(self) -> FakeStatus:
        return FakeStatus()


class FakeLines:
    def lines(self) -> list[Any]:
        return [FakeLine()]


def rec(start: datetime, **kw: Any) -> dict[str, Any]:
    kw.setdefault("handled_at", start + timedelta(hours=1))
    item = Interaction(
        channel=kw.pop("channel", "call"),
        direction=kw.pop("direction", "in"),
        outcome=kw.pop("outcome", "answered"),
        start=start,
        number=kw.pop("number", "+15550001111"),
        line=kw.pop("line", "line1"),
        **kw,
    )
    return item.to_record()


def old_records() -> list[dict[str, Any]]:
    """September's records: texts in four conversations, a queued text and fax, a fax
    received, a call and a fax whose markers a stop left, a text found by fingerprint."""
    at = [SEPT + timedelta(minutes=k) for k in range(20)]
    return [
        rec(
            at[0],
            channel="sms",
            outcome="received",
            number="+447700900001",
            contact_id=7,
            name="Ada Lovelace",
            text="Is the boiler fixed?",
            handled_at=None,
        ),
        rec(
            at[1],
            channel="sms",
            direction="out",
            outcome="sent",
            number="+447700900001",
            contact_id=7,
            text="Yes, Tuesday",
        ),
        rec(
            at[2],
            channel="sms",
            outcome="received",
            number="+447700900002",
            contact_id=7,
            text="From my other phone",
            handled_at=None,
        ),
        rec(
            at[3],
            channel="sms",
            outcome="received",
            number="+447700900003",
            text="Who is this?",
            handled_at=None,
        ),
        rec(
            at[4],
            channel="sms",
            outcome="received",
            number="",
            name="VODAFONE",
            text="Your bill is ready",
        ),
        rec(
            at[5],
            channel="sms",
            outcome="received",
            number="",
            name="",
            text="A text message arrived that Frontdesk could not read.",
        ),
        rec(
            at[6],
            channel="sms",
            direction="out",
            outcome="queued",
            number="+447700900004",
            text="Still waiting for a line",
        ),
        rec(
            at[7],
            channel="fax",
            direction="out",
            outcome="queued",
            number="+441134960000",
            details={"pages": 1},
        ),
        rec(
            at[8],
            channel="fax",
            outcome="received",
            number="+441134960001",
            details={"fax_key": "fax-key-1"},
            handled_at=None,
        ),
        rec(at[9], outcome="missed", number="+447700900005", details={"call_key": "call-key-1"}),
        rec(
            at[10],
            channel="sms",
            outcome="received",
            number="+447700900003",
            text="Hello again",
            details={"fingerprint": "fp-1"},
            handled_at=None,
        ),
        # A text from +447700900003 filed under a contact it belonged to then: the number's
        # own conversation does not count it, the contact's does.
        rec(
            at[11],
            channel="sms",
            outcome="received",
            number="+447700900003",
            contact_id=9,
            name="Old Owner",
            text="Filed under a contact",
        ),
    ]


def write_history(data_dir: Path) -> None:
    folder = data_dir / "history"
    folder.mkdir(parents=True)
    for month in ("2026-09", "2026-10", "2026-11"):
        first = datetime.fromisoformat(f"{month}-01T00:00:00+00:00")
        docs = old_records() if month == "2026-09" else []
        docs += [
            rec(first + timedelta(days=4, minutes=5 * k), number=f"+1555{k % 700:07d}")
            for k in range(PER_MONTH)
        ]
        if month == "2026-11":
            docs += [
                rec(BUSY_DAY + timedelta(seconds=8 * k), number=f"+1666{k:07d}")
                for k in range(BUSY)
            ]
        body = {"records": {str(i + 1): d for i, d in enumerate(docs)}}
        (folder / f"{month}.json").write_text(json.dumps(body))
        (folder / f"{month}.json.journal").write_bytes(b"")


@pytest.fixture
def services(data_dir: Path) -> Any:
    write_history(data_dir)
    store = Store(data_dir)
    svc = Services.build(MachineConfig(store=StoreConfig(data_dir=str(data_dir))), store)
    svc.clock = lambda: NOW
    svc.history.start_index()
    assert svc.history.index.ready
    yield svc
    svc.history.close()
    store.close()


def sms_service(services: Services) -> SmsService:
    return SmsService(
        services.store,
        services.bus,
        services.settings.get,
        services.history,
        FakeLines(),
        contacts=services.contacts,
        clock=lambda: NOW,
    )


def fax_service(services: Services) -> FaxService:
    return FaxService(
        services.store,
        services.bus,
        services.settings.get,
        services.history,
        FakeLines(),
        clock=lambda: NOW,
    )


def test_text_conversations_reach_the_whole_history(services: Services) -> None:
    sms = sms_service(services)
    convs = {c.key: c for c in sms.conversations(50)}
    assert set(convs) == {
        "contact:7",
        "contact:9",
        "+447700900003",
        "+447700900004",
        "VODAFONE",
        UNKNOWN,
    }
    ada = convs["contact:7"]
    assert (ada.count, ada.unread, ada.name) == (3, 2, "Ada Lovelace")
    assert ada.last.text == "From my other phone"
    stranger = convs["+447700900003"]
    assert (stranger.count, stranger.unread) == (2, 2)  # not the text filed under contact 9
    assert stranger.last.text == "Hello again"
    assert convs["contact:9"].count == 1
    assert (convs["VODAFONE"].count, convs[UNKNOWN].count) == (1, 1)
    # Newest conversation first; n cuts the list, not the counts.
    assert [c.key for c in sms.conversations(2)] == ["contact:9", "+447700900003"]
    assert sms.conversations(2)[1].count == 2

    texts = [i.text for i in sms.conversation("contact:7")]
    assert texts == ["Is the boiler fixed?", "Yes, Tuesday", "From my other phone"]
    # A bare number also finds what was filed under the contact who had it.
    assert [i.text for i in sms.conversation("+447700900003")] == [
        "Who is this?",
        "Hello again",
        "Filed under a contact",
    ]
    assert [i.text for i in sms.conversation("VODAFONE")] == ["Your bill is ready"]
    assert len(sms.conversation(UNKNOWN)) == 1
    assert [i.text for i in sms.conversation("contact:7", n=1)] == ["From my other phone"]
    assert len(sms.texts(50)) == 9 and sms.texts(1)[0].text == "Filed under a contact"
    assert services.store.history.open_months() == []  # read from the index alone


def test_queued_texts_are_found_at_start(services: Services) -> None:
    sms = sms_service(services)
    sms._recover()
    assert list(sms._due) == ["2026-09:7"]
    assert sms._find_recorded("fp-1", (SEPT + timedelta(minutes=10)).timestamp()) == "2026-09:11"
    assert sms._find_recorded("fp-1") == "2026-09:11"
    assert sms._find_recorded("fp-2", SEPT.timestamp()) is None


def test_fax_lists_and_markers_reach_the_whole_history(services: Services) -> None:
    fax = fax_service(services)
    assert [i.id for i in fax.queued()] == ["2026-09:8"]
    assert [i.id for i in fax.faxes(50)] == ["2026-09:9", "2026-09:8"]
    assert [i.id for i in fax.faxes(1, before="2026-09:9")] == ["2026-09:8"]
    at = SEPT + timedelta(minutes=8)
    assert fax._find("fax-key-1", at) is not None
    assert fax._find("fax-key-1") is not None
    assert fax._find("fax-key-2", at) is None
    assert services.store.history.open_months() == []


def test_a_call_left_in_progress_is_found_months_back(services: Services) -> None:
    history = services.history
    at = SEPT + timedelta(minutes=9)
    found = history.find_call("call-key-1", at)
    assert found is not None and found.id == "2026-09:10"
    assert history.find_call("call-key-1") == found  # no start: every call is looked at
    assert history.find_call("call-key-2", at) is None
    assert history.find_call("", at) is None
    assert services.store.history.open_months() == []


def test_the_daily_summary_counts_every_record_of_a_busy_day(services: Services) -> None:
    records = services.notify.history_between(BUSY_DAY, BUSY_DAY + timedelta(days=1))
    assert len(records) == BUSY
    assert records[0]["start"] > records[-1]["start"]  # newest first
    assert {r["id"] for r in records} == {f"2026-11:{PER_MONTH + k + 1}" for k in range(BUSY)}
    assert services.notify.history_between(BUSY_DAY - timedelta(days=1), BUSY_DAY) == []
    assert services.store.history.open_months() == []


def test_lists_that_must_be_whole_are_whole_while_the_index_is_built(data_dir: Path) -> None:
    """The first start after an upgrade: the index is still being built, and the queued
    texts and faxes and the summary's day are read from the store in full (a month at a
    time, none kept), not from the newest few thousand records."""
    write_history(data_dir)
    store = Store(data_dir)
    try:
        services = Services.build(MachineConfig(store=StoreConfig(data_dir=str(data_dir))), store)
        services.clock = lambda: NOW
        months = services.history.index.open()
        services.history._index_opened = True  # as the daemon's thread has not caught up
        assert months and not services.history.index.ready
        assert [i.id for i in fax_service(services).queued()] == ["2026-09:8"]
        sms = sms_service(services)
        sms._recover()
        assert list(sms._due) == ["2026-09:7"]
        records = services.notify.history_between(BUSY_DAY, BUSY_DAY + timedelta(days=1))
        assert len(records) == BUSY and records[0]["start"] > records[-1]["start"]
        assert services.store.history.open_months() == []
    finally:
        store.close()


def test_queues_wait_for_the_index_while_it_is_built(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's start after an upgrade: the index is built on its thread. The fax queue
    and the texts left queued wait for it (no whole-store reads every few seconds), then
    find every queued one."""
    write_history(data_dir)
    store = Store(data_dir)
    try:
        services = Services.build(MachineConfig(store=StoreConfig(data_dir=str(data_dir))), store)
        services.clock = lambda: NOW
        held = threading.Event()
        read = store.history.read_month

        def slow_read(month: str) -> list[tuple[int, dict[str, Any]]]:
            assert held.wait(60)
            return read(month)

        monkeypatch.setattr(store.history, "read_month", slow_read)
        scans: list[str | None] = []
        scan = store.history.scan
        monkeypatch.setattr(
            store.history, "scan", lambda before=None: scans.append(before) or scan(before)
        )
        services.history.start_index(background=True)
        assert services.history.indexing()
        fax = fax_service(services)
        assert fax.run_due() == INDEXING_WAIT
        sms = sms_service(services)
        sms._recover()
        assert sms._queued_later and not sms._due
        sms._requeue_when_indexed()
        assert not sms._due and scans == []  # nothing read the whole store meanwhile
        held.set()
        assert services.history.wait_indexed(60)
        sms._requeue_when_indexed()
        assert list(sms._due) == ["2026-09:7"] and not sms._queued_later
        assert [i.id for i in fax.queued()] == ["2026-09:8"]
        assert scans == []
    finally:
        services.history.close()
        store.close()
