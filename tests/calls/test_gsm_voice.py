"""GSM call audio: the sound-card channel through real pyalsaaudio calls on ALSA's file plugin
(playback lands in a file, capture reads one), Goertzel keys and +DTMF URCs, hang-up from the
line; the serial PCM channel against the simulated SIM7600's PCM port."""

# ruff: noqa: F811 - fixtures shared with tests/modem

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_app.calls.gsm_voice import (
    GsmSerialPcmChannel,
    GsmSoundCardChannel,
    GsmVoiceChannel,
)
from firmware_app.calls.voice import VoiceChannel
from firmware_app.events import EventBus
from firmware_app.media import tones
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line
from firmware_app.modem.simulator import CallerId, SimulatedModem
from firmware_app.protocol.at import Response
from tests.modem.conftest import Recorder, bus, make_line, make_modem, recorder  # noqa: F401

alsaaudio = pytest.importorskip("alsaaudio")


class FakeLine:
    """Answers every command OK; records them."""

    name = "line1"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def command(self, command: Any, timeout: float = 5.0) -> Future[Any]:
        self.sent.append(getattr(command, "text", command))
        fut: Future[Any] = Future()
        fut.set_result(Response(result="OK", lines=()))
        return fut

    def hangup(self, after: float = 0.0) -> Future[Any]:
        return self.command("AT+CHUP")


def tone(seconds: float, freq: float = 440.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return np.round(level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def caller_says(infile: Path, *parts: np.ndarray) -> None:
    infile.write_bytes(np.concatenate(parts).astype("<i2").tobytes())


@pytest.fixture
def sound_card(
    alsa_files: tuple[Path, Path],
) -> Iterator[Callable[..., GsmSoundCardChannel]]:
    made: list[GsmVoiceChannel] = []

    def factory(line: Any = None, bus_: EventBus | None = None, **kw: Any) -> GsmSoundCardChannel:
        out, _ = alsa_files
        out.write_bytes(b"")
        channel = GsmSoundCardChannel(
            line or FakeLine(),
            "tofile",
            capture_device="fromfile",
            bus=bus_ or EventBus(),
            realtime=False,
            **kw,
        )
        made.append(channel)
        return channel

    yield factory
    for channel in made:
        channel.close()


def played(out: Path) -> np.ndarray:
    return np.frombuffer(out.read_bytes(), dtype="<i2").astype(np.int16)


def test_play_lands_in_the_file(
    sound_card: Callable[..., GsmSoundCardChannel], alsa_files: tuple[Path, Path]
) -> None:
    out, infile = alsa_files
    caller_says(infile, tones.silence(5.0))
    channel = sound_card().start()
    assert isinstance(channel, VoiceChannel)
    assert channel.description == "GSM sound card tofile"
    greeting = tone(1.0)
    result = channel.play(greeting)
    assert (result.reason, result.digits) == ("done", "")
    assert abs(result.seconds - 1.0) < 0.05
    channel.close()
    pcm = played(out)
    loud = np.flatnonzero(pcm)
    assert loud.size > 0
    start = loud[0]
    assert np.array_equal(pcm[start : start + greeting.size - 1], greeting[1:])


def test_record_ends_on_silence_and_is_trimmed(
    sound_card: Callable[..., GsmSoundCardChannel], alsa_files: tuple[Path, Path]
) -> None:
    _, infile = alsa_files
    speech = tone(1.5, 300.0, 0.2)
    caller_says(infile, speech, tones.silence(10.0))
    channel = sound_card().start()
    result = channel.record(30.0, silence_seconds=2.0)
    assert result.reason == "silence"
    assert 1.4 <= result.seconds <= 1.6
    assert np.array_equal(result.audio[: speech.size // 2], speech[: speech.size // 2])


def test_goertzel_key_stops_playback_and_collects_digits(
    sound_card: Callable[..., GsmSoundCardChannel], alsa_files: tuple[Path, Path]
) -> None:
    _, infile = alsa_files
    caller_says(
        infile,
        tones.silence(0.5),
        tones.dtmf("5", level_dbfs=-10.0),
        tones.silence(0.5),
        tones.dtmf("12#", level_dbfs=-10.0),
        tones.silence(5.0),
    )
    channel = sound_card().start()
    result = channel.play(tone(4.0))
    assert (result.reason, result.digits) == ("digit", "5")
    assert result.seconds < 1.2
    digits = channel.collect_digits(4, 5.0)
    assert (digits.reason, digits.digits) == ("done", "12")
    nothing = channel.collect_digits(1, 1.0)
    assert (nothing.reason, nothing.digits) == ("silence", "")


def up(recorder: Recorder, line: Line) -> None:
    recorder.wait(ev.LineUp, lambda e: e.line == line.name, timeout=10)


def answered_call(modem: SimulatedModem, line: Line, recorder: Recorder) -> None:
    up(recorder, line)
    modem.ring(CallerId(number="+420123456789"), rings=5, interval=0.2)
    recorder.wait(ev.IncomingCall)
    assert isinstance(line.answer().result(5), Response)


def test_dtmf_urcs_and_hang_up_from_the_line(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
    sound_card: Callable[..., GsmSoundCardChannel],
    alsa_files: tuple[Path, Path],
) -> None:
    _, infile = alsa_files
    caller_says(infile, tones.silence(30.0))
    modem = make_modem("sim800")
    line = make_line(modem.path)
    answered_call(modem, line, recorder)
    channel = sound_card(line, bus, vendor="simcom").start()
    modem.send_urc("+DTMF: 7")
    recorder.wait(ev.KeyPressed)
    digits = channel.collect_digits(1, 60.0)
    assert (digits.reason, digits.digits) == ("done", "7")
    assert "AT+DDET=1" in modem.commands  # asked the SIM800 to report keys
    modem.caller_hangs_up()
    recorder.wait(ev.CallerHungUp)
    assert channel.caller_gone
    result = channel.record(60.0)
    assert result.reason == "hangup"
    channel.hang_up()
    channel.hang_up()  # safe twice


def test_keys_from_the_audio_until_the_modem_reports_one(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
    sound_card: Callable[..., GsmSoundCardChannel],
    alsa_files: tuple[Path, Path],
) -> None:
    """A SIM800 that says OK to AT+DDET=1 but reports nothing (or whose sound card wiring
    keeps far-end tones from it): keys heard in the audio count. Once a +DTMF report came,
    the modem's reports are the keys and the audio detector is no longer used."""
    _, infile = alsa_files
    caller_says(
        infile,
        tones.silence(0.5),
        tones.dtmf("12", level_dbfs=-10.0),  # in the audio only: no +DTMF for these
        tones.silence(3.0),
        tones.dtmf("4", level_dbfs=-10.0),  # after the modem reported a key: its job now
        tones.silence(30.0),
    )
    modem = make_modem("sim800")
    line = make_line(modem.path)
    answered_call(modem, line, recorder)
    channel = sound_card(line, bus, vendor="simcom").start()
    assert "AT+DDET=1" in modem.commands  # accepted: the modem may report keys
    digits = channel.collect_digits(2, 10.0)
    assert (digits.reason, digits.digits) == ("done", "12")
    modem.send_urc("+DTMF: 9")
    recorder.wait(ev.KeyPressed)
    digits = channel.collect_digits(1, 10.0)
    assert (digits.reason, digits.digits) == ("done", "9")
    later = channel.collect_digits(1, 4.0)  # the audio's "4" passes by: not counted twice
    assert (later.reason, later.digits) == ("silence", "")
    channel.hang_up()


def test_serial_pcm_against_the_simulator(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    modem = make_modem("sim7600")
    audio = modem.pcm_audio(speed=10.0)
    line = make_line(modem.path)
    answered_call(modem, line, recorder)
    channel = GsmSerialPcmChannel(line, str(audio.link), bus=bus, vendor="simcom").start()
    assert "AT+CPCMREG=1" in modem.commands
    greeting = tone(0.5, 500.0)
    assert channel.play(greeting).reason == "done"
    heard = audio.heard_pcm()
    loud = np.flatnonzero(heard)
    assert loud.size and np.array_equal(heard[loud[0] : loud[0] + 99], greeting[1:100])

    audio.press("42", urc=True)
    digits = channel.collect_digits(2, 20.0)
    assert (digits.reason, digits.digits) == ("done", "42")  # +RXDTMF, each key once

    speech = tone(1.5, 300.0, 0.2)
    audio.say(speech).pause(5.0)
    result = channel.record(20.0, silence_seconds=2.0)
    assert result.reason == "silence" and 1.3 <= result.seconds <= 1.8

    audio.say(tone(0.3)).hang_up()
    result = channel.record(20.0)
    assert result.reason == "hangup"
    channel.hang_up()
    assert "AT+CPCMREG=0" in modem.commands


def test_serial_pcm_refuses_unknown_vendor() -> None:
    with pytest.raises(ValueError, match="PCM over USB serial"):
        GsmSerialPcmChannel(FakeLine(), "/dev/null", bus=EventBus(), vendor="acme")
