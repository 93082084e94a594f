"""Missed-call text-back: once per number per 24 hours, remembered across restarts; only to
numbers that can take texts; a send that fails is tried again at the next missed call."""

from __future__ import annotations

import time
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

    def send(self, number: str, text: str, *, auto_reply: bool = False) -> None:
        assert auto_reply  # an automatic text: the Texts page says so
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


@pytest.mark.timeout(90)
def test_text_back_goes_out_through_the_sms_service_on_a_simulated_gsm_line(
    tmp_path: Path,
) -> None:
    """Through the daemon as `frontdesk run` builds it: a SIM7600 (serial PCM) with the
    owner's text-back on; a caller who hangs up during the closed greeting gets one text,
    sent with AT+CMGS by the real SMS service, stored as an automatic outgoing text; a
    second missed call from the same number that day gets none."""
    from firmware_app.calls.events import CallFinished
    from firmware_app.config import AudioConfig, ModemConfig, StoreConfig
    from firmware_app.daemon import Daemon
    from firmware_app.modem.simulator import create
    from firmware_app.modem.simulator.sms import (
        deliver_from_submit,
        pdu_bytes,
        submit_destination,
    )
    from firmware_app.protocol.sms_pdu import SmsDeliver, decode_pdu
    from firmware_app.sdnotify import Notifier
    from tests.modem.conftest import Recorder
    from tests.services.test_notify_delivery import Server

    from .conftest import ToneGreetings
    from .test_calls_e2e import closed_settings
    from .test_daemon_call import lines_idle

    smtp = Server("none", None).start()
    modem = create("sim7600", tmp_path / "dev")
    audio = modem.pcm_audio(speed=4.0)
    config = MachineConfig(
        modem=ModemConfig(devices=[str(modem.path)]),
        audio=AudioConfig(pcm_port=[str(audio.link)]),
        store=StoreConfig(data_dir=str(tmp_path / "data")),
    )
    daemon = Daemon(config, notifier=Notifier(None), web=False)
    try:
        services = daemon.start()
        recorder = Recorder(services.bus)
        settings = closed_settings(smtp.port)
        for day in ("mon", "tue", "wed", "thu", "fri"):
            setattr(settings.hours, day, [])  # closed all week
        settings.calls.text_back = True
        services.settings.save(settings)
        services.greetings = ToneGreetings(seconds=2.0)  # type: ignore[assignment]
        lines_idle(services)

        def missed_call() -> None:
            mark = recorder.mark()
            audio.reset_script()
            audio.pause(0.4).hang_up()  # gone during the greeting
            modem.ring(US_NUMBER, rings=4, interval=0.5)
            done = recorder.wait(CallFinished, timeout=30, since=mark)
            item = services.history.get(done.record_id)
            assert item is not None and item.outcome == "missed", item
            lines_idle(services)

        missed_call()
        deadline = time.monotonic() + 30
        while not modem.sent_sms and time.monotonic() < deadline:
            time.sleep(0.05)
        (pdu,) = modem.sent_sms
        submit = pdu_bytes(pdu)
        assert submit_destination(submit).lstrip("+") == US_NUMBER.lstrip("+")
        deliver = decode_pdu(deliver_from_submit(submit, "+15550100", T0))
        assert isinstance(deliver, SmsDeliver)
        text = deliver.text
        assert text.startswith("Sorry we missed your call")
        (sent,) = [i for i in services.history.newest(10) if i.channel == "sms"]
        assert sent.direction == "out" and sent.number == US_NUMBER and sent.text == text
        assert sent.details["auto_reply"] is True  # the page says it was automatic
        deadline = time.monotonic() + 15
        while sent.outcome == "queued" and time.monotonic() < deadline:
            time.sleep(0.05)
            sent = services.history.get(sent.id) or sent
        assert sent.outcome == "sent", sent.outcome
        # The same caller misses us again that day: no second text.
        missed_call()
        assert len(modem.sent_sms) == 1
        assert len(services.store.table("calls", "text_back")) == 1
    finally:
        daemon.shutdown()
        modem.close()
        smtp.stop()
