"""Interactions and the shared inbox: shape, events, open/handled, paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firmware_app.events import EventBus
from firmware_app.services.history import (
    HistoryError,
    HistoryService,
    InboxChanged,
    Interaction,
    InteractionRecorded,
)
from firmware_app.store import Store

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def call(outcome: str, minutes: int = 0, number: str = "+15551234567", **kw: object) -> Interaction:
    return Interaction(
        channel="call",
        direction="in",
        outcome=outcome,
        start=T0 + timedelta(minutes=minutes),
        number=number,
        **kw,
    )  # type: ignore[arg-type]


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def history(store: Store, bus: EventBus) -> HistoryService:
    return HistoryService(store, bus, clock=lambda: T0 + timedelta(hours=1))


def test_record_round_trips_and_announces(history: HistoryService, bus: EventBus) -> None:
    seen: list[object] = []
    bus.subscribe(InteractionRecorded, seen.append)
    bus.subscribe(InboxChanged, seen.append)
    item = history.record(
        call(
            "voicemail",
            media=("media/2026/11/abcdefghij.mp3",),
            duration=12.5,
            details={"explanation": "Closed"},
            name="Zoë <b>",
        )
    )
    assert item.id == "2026-11:1"
    assert history.get(item.id) == item
    assert [type(e).__name__ for e in seen] == ["InteractionRecorded", "InboxChanged"]


def test_inbox_holds_what_needs_a_person(history: HistoryService) -> None:
    answered = history.record(call("answered", 0))
    vm = history.record(call("voicemail", 1))
    missed = history.record(call("missed", 2))
    sms = history.record(
        Interaction(
            channel="sms",
            direction="in",
            outcome="received",
            start=T0,
            number="+15550000000",
            text="hi",
        )
    )
    sent = history.record(
        Interaction(
            channel="sms",
            direction="out",
            outcome="sent",
            start=T0,
            number="+15550000000",
            text="hello",
        )
    )
    assert history.open_count() == 3
    assert [i.id for i in history.open_items()] == [sms.id, missed.id, vm.id]
    assert [i.id for i in history.open_items(channel="call")] == [missed.id, vm.id]
    # Any record can be marked handled (an answered call, a text sent); only open ones
    # leave the inbox.
    assert history.mark_handled([vm.id, answered.id, sent.id], by="Anna") == 3
    assert history.mark_handled([vm.id, answered.id], by="Bob") == 0  # already handled
    assert history.open_count() == 2
    done = history.get(sent.id)
    assert done is not None and done.handled_by == "Anna" and done.handled_at is not None
    assert not done.open
    handled = history.get(vm.id)
    assert handled is not None and handled.handled_by == "Anna" and not handled.open
    history.reopen(vm.id)
    assert history.open_count() == 3


def test_an_update_that_changes_the_outcome_opens_the_item(history: HistoryService) -> None:
    item = history.record(call("answered"))
    assert history.open_count() == 0
    history.update(item.id, outcome="voicemail", media=("media/2026/11/abcdefghij.mp3",))
    assert history.open_count() == 1
    with pytest.raises(HistoryError):
        history.update("2026-11:999", outcome="missed")


def test_newest_pages_and_filters(history: HistoryService) -> None:
    ids = [history.record(call("missed", i, number=f"+1555000{i:04d}")).id for i in range(30)]
    assert [i.id for i in history.newest(5)] == ids[::-1][:5]
    assert [i.id for i in history.newest(3, before=ids[10])] == [ids[9], ids[8], ids[7]]
    assert [i.id for i in history.for_number("+15550000007")] == [ids[7]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channel": "pager"}, "channel"),
        ({"outcome": "delivered"}, "call outcome"),
        ({"direction": "sideways"}, "direction"),
        ({"start": datetime(2026, 1, 1)}, "aware"),
    ],
)
def test_bad_shapes_are_refused(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "channel": "call",
        "direction": "in",
        "outcome": "missed",
        "start": T0,
    }
    with pytest.raises(HistoryError, match=message):
        Interaction(**{**base, **kwargs})  # type: ignore[arg-type]
