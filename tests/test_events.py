"""The event bus: typed dispatch, isolation of failing handlers."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from firmware_app.events import DaemonStarted, Event, EventBus, SettingsChanged


def test_dispatch_by_type_and_base_type() -> None:
    bus = EventBus()
    got: list[str] = []
    bus.subscribe(SettingsChanged, lambda e: got.append("settings"))
    bus.subscribe(Event, lambda e: got.append("any"))
    bus.publish(SettingsChanged(sections=("business",)))
    bus.publish(DaemonStarted(version="1"))
    assert got == ["settings", "any", "any"]


def test_a_failing_handler_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    got: list[Event] = []

    def broken(e: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe(SettingsChanged, broken)
    bus.subscribe(SettingsChanged, got.append)
    with caplog.at_level(logging.ERROR):
        bus.publish(SettingsChanged(sections=()))
    assert len(got) == 1 and bus.handler_errors == 1
    assert "boom" in caplog.text


def test_unsubscribe_and_frozen_events() -> None:
    bus = EventBus()
    got: list[Event] = []
    unsubscribe = bus.subscribe(SettingsChanged, got.append)
    unsubscribe()
    unsubscribe()
    bus.publish(SettingsChanged(sections=()))
    assert got == []
    e = SettingsChanged(sections=("x",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.sections = ()  # type: ignore[misc]
    assert e.at.tzinfo is not None
