"""Missed-call text-back: once per number per 24 hours, remembered across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from firmware_app.calls.runner import CallRunner
from firmware_app.config import MachineConfig
from firmware_app.services import Services
from firmware_app.store import Store

T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


class FakeSms:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, number: str, text: str) -> None:
        self.sent.append((number, text))


def build(data: Path, now: list[datetime], sms: FakeSms) -> tuple[Services, CallRunner]:
    services = Services.build(MachineConfig(), Store(data))
    services.clock = lambda: now[0]
    services.sms = sms  # type: ignore[attr-defined]
    services.settings.save_section("calls", {"text_back": True})
    return services, CallRunner(services)


def test_once_per_number_per_day_even_across_a_restart(tmp_path: Path) -> None:
    now, sms = [T0], FakeSms()
    services, runner = build(tmp_path, now, sms)
    assert runner.text_back("+15551234567")
    assert not runner.text_back("+15551234567")
    assert runner.text_back("+15559876543")
    assert len(sms.sent) == 2 and "Sorry we missed your call" in sms.sent[0][1]
    services.store.close()
    # A restart remembers who was texted.
    now[0] = T0 + timedelta(hours=23)
    services, runner = build(tmp_path, now, sms)
    assert not runner.text_back("+15551234567")
    now[0] = T0 + timedelta(hours=24, minutes=1)
    assert runner.text_back("+15551234567")
    # Old entries are pruned: the table holds only the last day.
    assert len(services.store.table("calls", "text_back")) == 1
    services.store.close()


def test_off_by_default_and_never_to_a_withheld_number(tmp_path: Path) -> None:
    now, sms = [T0], FakeSms()
    services, runner = build(tmp_path, now, sms)
    assert not runner.text_back("")
    services.settings.save_section("calls", {"text_back": False})
    assert not runner.text_back("+15551234567")
    assert sms.sent == []
    services.store.close()
