"""Missed-call text-back: once per number per 24 hours, remembered across restarts; only to
numbers that can take texts; a send that fails is tried again at the next missed call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware_app.calls.runner import CallRunner, can_take_texts
from firmware_app.config import MachineConfig
from firmware_app.services import Services
from firmware_app.store import Store

T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
UK_MOBILE = "+447400123456"
UK_MOBILE_2 = "+447400123457"
US_NUMBER = "+12015550123"  # NANP: fixed line or mobile, the plan cannot tell


class FakeSms:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail = False

    def send(self, number: str, text: str) -> None:
        if self.fail:
            raise RuntimeError("there is no GSM line to send texts")
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
    assert runner.text_back(UK_MOBILE)
    assert not runner.text_back(UK_MOBILE)
    assert runner.text_back(US_NUMBER)
    assert len(sms.sent) == 2 and "Sorry we missed your call" in sms.sent[0][1]
    services.store.close()
    # A restart remembers who was texted.
    now[0] = T0 + timedelta(hours=23)
    services, runner = build(tmp_path, now, sms)
    assert not runner.text_back(UK_MOBILE)
    now[0] = T0 + timedelta(hours=24, minutes=1)
    assert runner.text_back(UK_MOBILE)
    # Old entries are pruned: the table holds only the last day.
    assert len(services.store.table("calls", "text_back")) == 1
    services.store.close()


def test_a_failed_send_is_tried_again_at_the_next_missed_call(tmp_path: Path) -> None:
    now, sms = [T0], FakeSms()
    services, runner = build(tmp_path, now, sms)
    sms.fail = True  # no GSM line up, say
    assert not runner.text_back(UK_MOBILE)
    assert len(services.store.table("calls", "text_back")) == 0  # not noted as texted
    sms.fail = False
    now[0] = T0 + timedelta(minutes=10)
    assert runner.text_back(UK_MOBILE)
    assert sms.sent == [(UK_MOBILE, sms.sent[0][1])]
    assert not runner.text_back(UK_MOBILE)  # now it counts
    services.store.close()


@pytest.mark.parametrize(
    ("number", "textable"),
    [
        (UK_MOBILE, True),
        ("+4915123456789", True),  # German mobile
        (US_NUMBER, True),
        ("+441212345678", False),  # a UK landline
        ("+448001234567", False),  # UK free phone
        ("+15551234567", False),  # 555: not a number the plan knows
        ("garbage", False),
    ],
)
def test_only_numbers_that_can_take_texts(tmp_path: Path, number: str, textable: bool) -> None:
    assert can_take_texts(number) is textable
    now, sms = [T0], FakeSms()
    services, runner = build(tmp_path, now, sms)
    assert runner.text_back(number) is textable
    assert bool(sms.sent) is textable
    services.store.close()


def test_off_by_default_and_never_to_a_withheld_number(tmp_path: Path) -> None:
    now, sms = [T0], FakeSms()
    services, runner = build(tmp_path, now, sms)
    assert not runner.text_back("")
    services.settings.save_section("calls", {"text_back": False})
    assert not runner.text_back(UK_MOBILE)
    assert sms.sent == []
    services.store.close()
