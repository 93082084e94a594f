"""Two simulated GSM lines: a caller on one, staff called on the other; accepted (press 1,
audio joined both ways, recorded), declined, not answered, busy; the hook-flash command
sequence against the simulated analog modem."""

# ruff: noqa: F811 - fixtures shared with tests/modem

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from firmware_app.calls.bridge import bridge_call, hook_flash_transfer
from firmware_app.calls.gsm_voice import GsmSerialPcmChannel
from firmware_app.events import EventBus
from firmware_app.media import tones
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line
from firmware_app.modem.simulator import CallerId, SimulatedModem, create
from firmware_app.modem.simulator.gsm_audio import Callee, GsmAudio
from firmware_app.protocol.at import Response
from tests.modem.conftest import FAST, Recorder, bus, recorder  # noqa: F401


def tone(seconds: float, freq: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return np.round(level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


class Greetings:
    def audio(self, key: str) -> np.ndarray:
        return tone(0.3, 700.0) if key == "accept_call" else tone(0.2, 900.0)


def energy_at(pcm: np.ndarray, freq: float) -> float:
    if pcm.size < 800:
        return 0.0
    x = pcm.astype(np.float64) / 32768
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(x.size, 1 / 8000)
    band = (freqs > freq - 20) & (freqs < freq + 20)
    return float(spectrum[band].sum() / spectrum.sum())


@pytest.fixture
def two_lines(
    tmp_path: Any, bus: EventBus, recorder: Recorder
) -> Iterator[tuple[SimulatedModem, SimulatedModem, Line, Line, GsmAudio, GsmAudio]]:
    caller_modem = create("sim7600", tmp_path / "dev", link_name="tty-in")
    staff_modem = create("ec25", tmp_path / "dev", link_name="tty-out")
    a_in, a_out = caller_modem.pcm_audio(speed=10.0), staff_modem.pcm_audio(speed=10.0)
    lines = [
        Line(name, str(m.path), bus=bus, options=FAST, pin_file=tmp_path / f"{name}.json")
        for name, m in (("line1", caller_modem), ("line2", staff_modem))
    ]
    for line in lines:
        line.start()
    for line in lines:
        recorder.wait(ev.LineUp, lambda e, n=line.name: e.line == n, timeout=10)
    caller_modem.ring(CallerId(number="+447700900123"), rings=5, interval=0.2)
    recorder.wait(ev.IncomingCall)
    assert isinstance(lines[0].answer().result(5), Response)
    yield caller_modem, staff_modem, lines[0], lines[1], a_in, a_out
    for line in lines:
        line.stop()
    for line in lines:
        line.join(2.0)
        line.close()
    caller_modem.close()
    staff_modem.close()


def channels(bus: EventBus) -> tuple[Callable[..., Any], list[Any]]:
    opened: list[Any] = []

    def open_channel(line: Line, vendor: str = "quectel") -> GsmSerialPcmChannel:
        link = f"{line.port}-pcm"
        ch = GsmSerialPcmChannel(line, link, bus=bus, vendor=vendor).start()
        opened.append(ch)
        return ch

    return open_channel, opened


def test_accepted_call_is_joined_and_recorded(
    two_lines: tuple[SimulatedModem, SimulatedModem, Line, Line, GsmAudio, GsmAudio],
    bus: EventBus,
) -> None:
    _, staff_modem, line1, line2, a_in, a_out = two_lines
    open_channel, opened = channels(bus)
    caller = open_channel(line1, "simcom")
    staff_modem.extras.callee = Callee(
        answer_after=0.3, press="1", press_after=0.4, say=tones.silence(0.1)
    )
    stored: list[np.ndarray] = []

    def recorder_(pcm: np.ndarray) -> str:
        stored.append(pcm)
        return "media/2026/03/recording0001.wav"

    # The caller speaks (600 Hz) once joined, then hangs up; staff speak 1000 Hz.
    a_in.pause(20.0).say(tone(1.0, 600.0)).pause(0.5).hang_up()
    staff_modem.extras.callee.say = tones.silence(0.1)
    a_out.reset_script()
    result = bridge_call(
        caller,
        line2,
        "+447700900001",
        ring_seconds=10,
        greetings=Greetings(),
        open_channel=open_channel,
        recorder=recorder_,
        poll=0.05,
    )
    assert result.outcome == "bridged", result
    assert result.ended_by == "caller"
    assert result.recordings == ("media/2026/03/recording0001.wav",)
    assert staff_modem.extras.dialled == ["+447700900001"]
    heard_by_staff = a_out.heard_pcm()
    assert energy_at(heard_by_staff, 700.0) > 0.05  # "press 1 to accept"
    assert energy_at(heard_by_staff, 600.0) > 0.05  # the caller's voice, through the bridge
    assert energy_at(heard_by_caller(a_in), 900.0) > 0.01  # the recording notice
    assert stored and energy_at(stored[0], 600.0) > 0.05
    assert staff_modem.call_state == "idle"  # we hung up the staff side
    for ch in opened:
        ch.close()


def heard_by_caller(audio: GsmAudio) -> np.ndarray:
    return audio.heard_pcm()


def test_declined_when_staff_press_another_key(
    two_lines: tuple[SimulatedModem, SimulatedModem, Line, Line, GsmAudio, GsmAudio],
    bus: EventBus,
) -> None:
    _, staff_modem, line1, line2, _, _ = two_lines
    open_channel, opened = channels(bus)
    caller = open_channel(line1, "simcom")
    staff_modem.extras.callee = Callee(answer_after=0.2, press="2", press_after=0.2)
    result = bridge_call(
        caller,
        line2,
        "+447700900001",
        10,
        greetings=Greetings(),
        open_channel=open_channel,
        poll=0.05,
    )
    assert (result.outcome, result.detail) == ("declined", "pressed 2")
    assert staff_modem.call_state == "idle"
    for ch in opened:
        ch.close()


def test_voicemail_of_a_mobile_does_not_accept(
    two_lines: tuple[SimulatedModem, SimulatedModem, Line, Line, GsmAudio, GsmAudio],
    bus: EventBus,
) -> None:
    _, staff_modem, line1, line2, _, _ = two_lines
    open_channel, opened = channels(bus)
    caller = open_channel(line1, "simcom")
    staff_modem.extras.callee = Callee(answer_after=0.2)  # answers, presses nothing
    result = bridge_call(
        caller,
        line2,
        "+447700900001",
        10,
        greetings=Greetings(),
        open_channel=open_channel,
        accept_seconds=2.0,
        poll=0.05,
    )
    assert (result.outcome, result.detail) == ("declined", "no key pressed")
    for ch in opened:
        ch.close()


def test_no_answer_and_busy(
    two_lines: tuple[SimulatedModem, SimulatedModem, Line, Line, GsmAudio, GsmAudio],
    bus: EventBus,
) -> None:
    _, staff_modem, line1, line2, _, _ = two_lines
    open_channel, opened = channels(bus)
    caller = open_channel(line1, "simcom")
    staff_modem.extras.callee = Callee(answer_after=None)
    result = bridge_call(
        caller,
        line2,
        "+447700900001",
        0.5,
        greetings=Greetings(),
        open_channel=open_channel,
        poll=0.05,
    )
    assert result.outcome == "no_answer"
    assert staff_modem.call_state == "idle"
    assert any(c.upper() in ("AT+CHUP", "ATH") for c in staff_modem.commands)
    staff_modem.extras.callee = Callee(busy=True)
    result = bridge_call(
        caller,
        line2,
        "+447700900002",
        5,
        greetings=Greetings(),
        open_channel=open_channel,
        poll=0.05,
    )
    assert result.outcome == "busy"
    assert not opened[1:]  # no channel opened for calls nobody took
    for ch in opened:
        ch.close()


def test_unsupported_channel() -> None:
    class Analog:
        description = "analog V.253 u-law"

    result = bridge_call(
        Analog(), None, "+1", 5, greetings=Greetings(), open_channel=lambda line: None
    )  # type: ignore[arg-type]
    assert result.outcome == "unsupported"


def test_hook_flash_sequence(tmp_path: Any, bus: EventBus, recorder: Recorder) -> None:
    modem = create("usr5637", tmp_path / "dev")
    line = Line("line1", str(modem.path), bus=bus, options=FAST, pin_file=tmp_path / "p.json")
    line.start()
    try:
        recorder.wait(ev.LineUp, timeout=10)
        modem.ring(CallerId(number="5551234"), rings=6, interval=0.3)
        recorder.wait(ev.IncomingCall, timeout=10)
        assert isinstance(line.answer().result(5), Response)
        result = hook_flash_transfer(line, "+1 (555) 010-9999", flash_ms=300, sleep=lambda s: None)
        assert result.ok, result
        assert result.commands == ("AT+VTS={!,30}", "AT+VTS=1,5,5,5,0,1,0,9,9,9,9", "hang up")
        assert modem.extras.flashes == [300]
        assert "".join(modem.extras.tones_sent) == "15550109999"
        assert modem.call_state == "idle"
        assert not hook_flash_transfer(line, "abc").ok
    finally:
        line.stop()
        line.join(2.0)
        line.close()
        modem.close()
