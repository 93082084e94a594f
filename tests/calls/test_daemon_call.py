"""Through the daemon: a simulated USR5637 on a pty as the configured modem device, a
voicemail after hours in real time, the email at a local aiosmtpd server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from firmware_app.calls.events import CallFinished
from firmware_app.config import AudioConfig, MachineConfig, ModemConfig, StoreConfig
from firmware_app.daemon import Daemon
from firmware_app.media import codecs
from firmware_app.modem.simulator import VoiceCaller, create
from firmware_app.sdnotify import Notifier
from tests.modem.conftest import Recorder
from tests.services.test_notify_delivery import Server

from .conftest import ToneGreetings
from .test_analog_voice import speech
from .test_calls_e2e import closed_settings

pytestmark = pytest.mark.timeout(60)


def test_daemon_takes_a_voicemail_and_emails_it(tmp_path: Path) -> None:
    smtp = Server("none", None).start()
    modem = create("usr5637", tmp_path / "dev")  # real time: speed 1
    config = MachineConfig(
        modem=ModemConfig(devices=[str(modem.path)]),
        store=StoreConfig(data_dir=str(tmp_path / "data")),
    )
    daemon = Daemon(config, notifier=Notifier(None), web=False)
    try:
        services = daemon.start()
        recorder = Recorder(services.bus)
        settings = closed_settings(smtp.port)
        for day in ("mon", "tue", "wed", "thu", "fri"):
            setattr(settings.hours, day, [])  # closed all week: the closed greeting
        services.settings.save(settings)
        greetings = ToneGreetings(seconds=0.4)
        services.greetings = greetings  # type: ignore[assignment]
        deadline = time.monotonic() + 15
        while any(s.state != "idle" for s in services.extra["lines"].statuses()):
            assert time.monotonic() < deadline, services.extra["lines"].statuses()
            time.sleep(0.05)
        modem.voice.caller = (
            VoiceCaller()
            .say(speech(1.0), at=0.2)
            .hang_up(at=1.4, after="record", how=("dial_tone",))
        )
        started = time.monotonic()
        modem.ring("+15551234567", rings=4, interval=0.5)
        done = recorder.wait(CallFinished, timeout=30)
        item = services.history.get(done.record_id)
        assert item is not None and item.outcome == "voicemail"
        assert bytes(modem.voice.played[0].data) == codecs.encode(greetings.audio("closed"), "ulaw")
        assert 1.0 <= item.duration <= 1.6
        while not smtp.inbox.received and time.monotonic() - started < 30:
            time.sleep(0.05)
        (mail,) = [r.msg for r in smtp.inbox.received]
        assert "audio/mpeg" in [p.get_content_type() for p in mail.walk()]
    finally:
        daemon.shutdown()
        modem.close()
        smtp.stop()


def test_daemon_answers_a_gsm_call_with_serial_pcm(tmp_path: Path) -> None:
    """A simulated SIM7600 as the configured modem, its PCM port named by `audio.pcm_port`."""
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
        assert services.call_audio is not None and services.forwarding is not None
        recorder = Recorder(services.bus)
        settings = closed_settings(smtp.port)
        for day in ("mon", "tue", "wed", "thu", "fri"):
            setattr(settings.hours, day, [])
        services.settings.save(settings)
        greetings = ToneGreetings(seconds=0.4)
        services.greetings = greetings  # type: ignore[assignment]
        deadline = time.monotonic() + 15
        while any(s.state != "idle" for s in services.extra["lines"].statuses()):
            assert time.monotonic() < deadline, services.extra["lines"].statuses()
            time.sleep(0.05)
        audio.pause(1.6).say(speech(1.5)).pause(0.3).hang_up()
        started = time.monotonic()
        modem.ring("+15551234567", rings=4, interval=0.5)
        done = recorder.wait(CallFinished, timeout=30)
        item = services.history.get(done.record_id)
        assert item is not None and item.outcome == "voicemail", item
        assert item.details["audio"] == f"GSM PCM over USB serial {audio.link}"
        assert "AT+CPCMREG=1" in modem.commands
        while not smtp.inbox.received and time.monotonic() - started < 30:
            time.sleep(0.05)
        (mail,) = [r.msg for r in smtp.inbox.received]
        assert "audio/mpeg" in [p.get_content_type() for p in mail.walk()]
    finally:
        daemon.shutdown()
        modem.close()
        smtp.stop()
