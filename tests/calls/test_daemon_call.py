"""Through the daemon (`Daemon`, as `frontdesk run` builds it): simulated modems on ptys as
the configured devices, emails at a local aiosmtpd server. A voicemail after hours in real
time; greetings spoken by espeak-ng and uploaded, as the caller hears them; a VIP put
through after hours on two GSM lines, recorded."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from firmware_app.calls.analog_voice import Pacing
from firmware_app.calls.events import CallFinished
from firmware_app.config import AudioConfig, MachineConfig, ModemConfig, StoreConfig
from firmware_app.daemon import Daemon
from firmware_app.media import codecs
from firmware_app.modem.simulator import VoiceCaller, create
from firmware_app.modem.simulator.gsm_audio import Callee
from firmware_app.sdnotify import Notifier
from firmware_app.services import Services
from tests.modem.conftest import Recorder
from tests.services.test_notify_delivery import Server

from .conftest import ToneGreetings
from .test_analog_voice import speech
from .test_calls_e2e import closed_settings
from .test_gsm_calls_e2e import best_match, energy_at, wav_samples

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


def lines_idle(services: Services) -> None:
    deadline = time.monotonic() + 15
    while any(s.state != "idle" for s in services.extra["lines"].statuses()):
        assert time.monotonic() < deadline, services.extra["lines"].statuses()
        time.sleep(0.05)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_daemon_plays_a_spoken_greeting_and_an_uploaded_one(tmp_path: Path) -> None:
    """The daemon's own GreetingsService: the closed greeting is its default words spoken
    by espeak-ng, the voicemail prompt a recording the owner uploaded (44.1 kHz stereo WAV);
    the line gets exactly that audio, u-law encoded."""
    smtp = Server("none", None).start()
    modem = create("usr5637", tmp_path / "dev")
    modem.voice.speed = 8.0
    config = MachineConfig(
        modem=ModemConfig(devices=[str(modem.path)]),
        store=StoreConfig(data_dir=str(tmp_path / "data")),
    )
    daemon = Daemon(config, notifier=Notifier(None), web=False)
    try:
        services = daemon.start()
        services.extra["call_runner"].pacing = Pacing(speed=8.0)
        recorder = Recorder(services.bus)
        settings = closed_settings(smtp.port)
        settings.business.name = "Acme"
        for day in ("mon", "tue", "wed", "thu", "fri"):
            setattr(settings.hours, day, [])  # closed all week
        services.settings.save(settings)
        t = np.arange(int(1.2 * 44100)) / 44100
        prompt = (0.3 * np.sin(2 * np.pi * 523.0 * t) * np.minimum(1.0, t * 20)).astype(np.float32)
        upload = io.BytesIO()
        sf.write(upload, np.stack([prompt, prompt], axis=1), 44100, format="WAV")
        services.greetings.upload("voicemail", upload.getvalue())
        greetings = services.greetings
        assert greetings.info("closed").mode == "default"
        assert greetings.info("voicemail").mode == "recording"
        lines_idle(services)
        modem.voice.caller = (
            VoiceCaller()
            .say(speech(1.2), at=0.2)
            .hang_up(at=1.6, after="record", how=("dial_tone",))
        )
        modem.ring("+15551234567", rings=4, interval=0.5)
        done = recorder.wait(CallFinished, timeout=45)
        item = services.history.get(done.record_id)
        assert item is not None and item.outcome == "voicemail", item
        closed, voicemail = greetings.audio("closed"), greetings.audio("voicemail")
        played = modem.voice.played
        assert bytes(played[0].data) == codecs.encode(closed, "ulaw")
        assert bytes(played[1].data) == codecs.encode(voicemail, "ulaw")
        assert closed.size / 8000 > 2.0  # words, not the half-second fallback tone
        assert energy_at(closed, 440.0) < 0.2
        converted = codecs.resample(codecs.read_wav(upload.getvalue())[0], 44100, 8000)
        _, alike = best_match(voicemail, converted[2000:6000])
        assert alike > 0.99  # the upload, at 8 kHz and normalised
        deadline = time.monotonic() + 30
        while not smtp.inbox.received and time.monotonic() < deadline:
            time.sleep(0.05)
        (mail,) = [r.msg for r in smtp.inbox.received]
        assert "audio/mpeg" in [p.get_content_type() for p in mail.walk()]
    finally:
        daemon.shutdown()
        modem.close()
        smtp.stop()


def test_daemon_puts_a_vip_through_after_hours_on_two_gsm_lines(tmp_path: Path) -> None:
    """Two GSM modems as the daemon's lines (SIM7600 answers, EC25 calls staff), call
    recording on: a VIP calling on Saturday night is put through to Anna (she presses 1),
    both hear each other, the recording is on the call's record, no email."""
    smtp = Server("none", None).start()
    caller_modem = create("sim7600", tmp_path / "dev", link_name="tty-in")
    staff_modem = create("ec25", tmp_path / "dev", link_name="tty-out")
    caller_audio = caller_modem.pcm_audio(speed=4.0)
    staff_audio = staff_modem.pcm_audio(speed=4.0)
    config = MachineConfig(
        modem=ModemConfig(devices=[str(caller_modem.path), str(staff_modem.path)]),
        audio=AudioConfig(pcm_port=[str(caller_audio.link), str(staff_audio.link)]),
        store=StoreConfig(data_dir=str(tmp_path / "data")),
    )
    daemon = Daemon(config, notifier=Notifier(None), web=False)
    try:
        services = daemon.start()
        recorder = Recorder(services.bus)
        settings = closed_settings(smtp.port, allow=["+15557770000"], ring_seconds=20)
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            setattr(settings.hours, day, [])  # closed: after hours whenever the test runs
        settings.forwarding.record_calls = True
        services.settings.save(settings)
        lines_idle(services)
        caller_audio.pause(15.0).say(_tone(1.5, 600.0)).pause(0.3).hang_up()
        staff_modem.extras.callee = Callee(
            answer_after=0.3,
            press="1",
            press_after=0.3,
            say=np.zeros(800, dtype=np.int16),
            say_after_press=_tone(30.0, 1000.0),
        )
        caller_modem.ring("+15557770000", rings=4, interval=0.5)
        done = recorder.wait(CallFinished, timeout=50)
        item = services.history.get(done.record_id)
        assert item is not None
        assert item.details["plan"]["rule"] == "allow"
        assert item.details["plan"]["mode"] != "open"  # after hours
        assert item.details["plan"]["steps"] == ["greet", "forward_to", "take_voicemail"]
        assert item.outcome == "forwarded" and "Anna" in item.text, item.text
        assert staff_modem.extras.dialled == ["+15550001111"]
        assert energy_at(staff_audio.heard_pcm(), 600.0) > 0.05  # the VIP, heard by Anna
        assert energy_at(caller_audio.heard_pcm(), 1000.0) > 0.02  # Anna, heard by the VIP
        (ref,) = item.details["recordings"]
        recording = wav_samples(services.store, ref)
        assert energy_at(recording, 600.0) > 0.02 and energy_at(recording, 1000.0) > 0.02
        index = services.store.get_document("recordings", "index") or {}
        assert [i.get("record") for i in index.get("items", [])] == [item.id]
        deadline = time.monotonic() + 1.0  # a call put through sends no email
        while not smtp.inbox.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not smtp.inbox.received
    finally:
        daemon.shutdown()
        caller_modem.close()
        staff_modem.close()
        smtp.stop()


def _tone(seconds: float, freq: float) -> Any:
    t = np.arange(int(seconds * 8000)) / 8000
    return np.round(0.25 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_daemon_takes_the_call_when_the_network_refuses_forwarding(tmp_path: Path) -> None:
    """Network forwarding on, open hours, but the SIM's network refuses AT+CCFC (+CME ERROR:
    30): the daemon's forwarding service says so, and the call is answered and ends in a
    voicemail instead of ringing out unanswered."""
    smtp = Server("none", None).start()
    modem = create("sim7600", tmp_path / "dev")
    modem.extras.ccfc_refused = True
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
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            setattr(settings.hours, day, ["00:00-24:00"])  # open whenever the test runs
        settings.forwarding.network = True
        services.settings.save(settings)
        lines_idle(services)
        forwarding = services.extra["forwarding"]
        deadline = time.monotonic() + 20
        while not any(s.wanted and s.error for s in forwarding.states()):
            assert time.monotonic() < deadline, forwarding.states()
            time.sleep(0.05)
        (state,) = forwarding.states()
        assert state.words.startswith("Not set:") and not state.verified
        greetings = ToneGreetings(seconds=0.4)
        services.greetings = greetings  # type: ignore[assignment]
        audio.pause(1.8).say(speech(1.5)).pause(0.3).hang_up()
        modem.ring("+15551234567", rings=6, interval=0.5)
        done = recorder.wait(CallFinished, timeout=30)
        item = services.history.get(done.record_id)
        assert item is not None and item.outcome == "voicemail", item
        assert item.details["plan"]["steps"] == ["greet", "take_voicemail", "notify_staff"]
        assert greetings.asked[:2] == ["open", "voicemail"]
        assert "ATA" in modem.commands and not modem.extras.diverted
        deadline = time.monotonic() + 30
        while not smtp.inbox.received and time.monotonic() < deadline:
            time.sleep(0.05)
        (mail,) = [r.msg for r in smtp.inbox.received]
        assert "audio/mpeg" in [p.get_content_type() for p in mail.walk()]
    finally:
        daemon.shutdown()
        modem.close()
        smtp.stop()
