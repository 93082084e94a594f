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
from firmware_app.media import codecs, tones
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line
from firmware_app.modem.simulator import CallerId, SimulatedModem, create
from firmware_app.modem.simulator.gsm_audio import Callee, GsmAudio
from firmware_app.protocol.at import Response
from tests.modem.conftest import FAST, Recorder, bus, recorder  # noqa: F401

from .test_analog_voice import speech
from .test_gsm_calls_e2e import (  # noqa: F401
    WEDNESDAY_MORNING,
    World,
    best_match,
    check_voicemail_email,
    open_with_staff,
    wav_samples,
    world,
)


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


# -- an analog caller (V.253 voice duplex, AT+VTR) put through on a GSM line ------------------

ANALOG_SPEED = 10.0


@pytest.fixture(params=["usr5637", "cx93010"])
def analog_and_gsm(
    request: pytest.FixtureRequest, tmp_path: Any, bus: EventBus, recorder: Recorder
) -> Iterator[tuple[SimulatedModem, SimulatedModem, Any, Line, GsmAudio]]:
    from firmware_app.calls.analog_voice import AnalogVoiceChannel, Pacing

    caller_modem = create(request.param, tmp_path / "dev", link_name="tty-analog")
    caller_modem.voice.speed = ANALOG_SPEED
    staff_modem = create("ec25", tmp_path / "dev", link_name="tty-gsm")
    staff_audio = staff_modem.pcm_audio(speed=ANALOG_SPEED)
    lines = [
        Line(name, str(m.path), bus=bus, options=FAST, pin_file=tmp_path / f"{name}.json")
        for name, m in (("line1", caller_modem), ("line2", staff_modem))
    ]
    for line in lines:
        line.start()
    for line in lines:
        recorder.wait(ev.LineUp, lambda e, n=line.name: e.line == n, timeout=10)
    caller_modem.ring("+15551234567", rings=3, interval=0.3)
    recorder.wait(ev.IncomingCall)
    assert "OK" in str(lines[0].answer(at_ring=2).result(5))
    call = recorder.wait(ev.CallAnswered, timeout=5)
    caller = AnalogVoiceChannel(
        lines[0], bus=bus, call_id=call.call_id, pacing=Pacing(speed=ANALOG_SPEED)
    )
    yield caller_modem, staff_modem, caller, lines[1], staff_audio
    caller.close()
    for line in lines:
        line.stop()
    for line in lines:
        line.join(2.0)
        line.close()
    caller_modem.close()
    staff_modem.close()


def test_analog_caller_joined_to_staff_both_ways_and_recorded(
    analog_and_gsm: tuple[SimulatedModem, SimulatedModem, Any, Line, GsmAudio], bus: EventBus
) -> None:
    from firmware_app.modem.simulator import VoiceCaller

    caller_modem, staff_modem, caller, line2, staff_audio = analog_and_gsm
    open_channel, opened = channels(bus)
    # The caller speaks 600 Hz once joined, then hangs up (DLE l); staff speak 1000 Hz.
    caller_modem.voice.caller = (
        VoiceCaller().say(tone(1.0, 600.0), at=0.3, after="duplex").hang_up(at=2.0, after="duplex")
    )
    staff_modem.extras.callee = Callee(
        answer_after=0.3,
        press="1",
        press_after=0.3,
        say=tones.silence(0.1),
        say_after_press=tone(30.0, 1000.0),
    )
    stored: list[np.ndarray] = []

    def keep(pcm: np.ndarray) -> str:
        stored.append(pcm)
        return "media/2026/03/recording0002.wav"

    result = bridge_call(
        caller,
        line2,
        "+447700900001",
        ring_seconds=10,
        greetings=Greetings(),
        open_channel=open_channel,
        recorder=keep,
        poll=0.05,
    )
    assert result.outcome == "bridged", result
    assert result.ended_by == "caller"
    assert result.recordings == ("media/2026/03/recording0002.wav",)
    heard_by_staff = staff_audio.heard_pcm()
    assert energy_at(heard_by_staff, 700.0) > 0.05  # "press 1 to accept"
    assert energy_at(heard_by_staff, 600.0) > 0.05  # the analog caller, through AT+VTR
    notice, duplex = caller_modem.voice.played[-2:]
    assert energy_at(codecs.decode(bytes(notice.data), notice.codec), 900.0) > 0.05  # type: ignore[arg-type]
    heard_by_caller = codecs.decode(bytes(duplex.data), duplex.codec)  # type: ignore[arg-type]
    assert energy_at(heard_by_caller, 1000.0) > 0.05  # staff, into the analog line
    assert duplex.ended == "duplex_end"  # left duplex (DLE ^) before anything else
    assert stored and energy_at(stored[0], 600.0) > 0.02 and energy_at(stored[0], 1000.0) > 0.02
    assert caller.caller_gone and "DLE l" in caller._gone_why
    assert staff_modem.call_state == "idle"  # the staff side was hung up
    caller.hang_up()
    assert caller_modem.call_state == "idle"
    for ch in opened:
        ch.close()


def test_analog_caller_declined_and_not_answered(
    analog_and_gsm: tuple[SimulatedModem, SimulatedModem, Any, Line, GsmAudio], bus: EventBus
) -> None:
    caller_modem, staff_modem, caller, line2, _ = analog_and_gsm
    open_channel, opened = channels(bus)
    staff_modem.extras.callee = Callee(answer_after=0.2, press="3", press_after=0.2)
    result = bridge_call(
        caller,
        line2,
        "+447700900001",
        10,
        greetings=Greetings(),
        open_channel=open_channel,
        poll=0.05,
    )
    assert (result.outcome, result.detail) == ("declined", "pressed 3")
    staff_modem.extras.callee = Callee(answer_after=None)
    result = bridge_call(
        caller,
        line2,
        "+447700900002",
        0.5,
        greetings=Greetings(),
        open_channel=open_channel,
        poll=0.05,
    )
    assert result.outcome == "no_answer"
    assert "AT+VTR" not in caller_modem.commands  # never joined: the line stays as it was
    assert staff_modem.call_state == "idle"
    # The caller's channel still plays (the voicemail that follows).
    assert caller.play(tones.beep(), stop_digits="").reason == "done"
    for ch in opened:
        ch.close()


# -- the whole path: CallService, runner, routing, ForwardingService, analog caller + GSM staff


def test_e2e_analog_caller_put_through_recorded_and_hanging_up_mid_call(
    world: Callable[..., World],
) -> None:
    from firmware_app.calls.analog_voice import Pacing
    from firmware_app.calls.events import CallFinished
    from firmware_app.modem.simulator import VoiceCaller

    w = world(
        ("usr5637", "ec25"),
        now=WEDNESDAY_MORNING,
        speed=5.0,
        settings=open_with_staff(record_calls=True),
    )
    analog, staff = w.modems
    analog.voice.speed = 5.0
    assert w.calls.runner is not None
    w.calls.runner.pacing = Pacing(speed=5.0)
    staff_audio = w.audios[1]
    assert staff_audio is not None
    analog.voice.caller = (
        VoiceCaller()
        .say(tone(1.5, 600.0), at=0.3, after="duplex")
        .hang_up(at=2.5, after="duplex")  # mid-call: DLE l in the duplex stream
    )
    staff.extras.callee = Callee(
        answer_after=0.3,
        press="1",
        press_after=0.3,
        say=tones.silence(0.1),
        say_after_press=tone(30.0, 1000.0),
    )
    item = w.call()
    assert item.details["plan"]["steps"] == ["greet", "forward_to", "take_voicemail"]
    assert item.outcome == "forwarded", item.text
    assert "Anna" in item.text and "ended by caller" in item.text
    assert staff.extras.dialled == ["+15550001111"]
    assert energy_at(staff_audio.heard_pcm(), 600.0) > 0.05  # the analog caller, heard
    duplex = analog.voice.played[-1]
    heard = codecs.decode(bytes(duplex.data), duplex.codec)  # type: ignore[arg-type]
    assert energy_at(heard, 1000.0) > 0.05  # staff, heard on the analog line
    (ref,) = item.details["recordings"]
    recording = wav_samples(w.services.store, ref)
    assert energy_at(recording, 600.0) > 0.02 and energy_at(recording, 1000.0) > 0.02
    # Both ended: DLE ^ then the hang-up on the analog line, the staff call hung up.
    assert duplex.ended == "duplex_end"
    assert analog.call_state == "idle" and staff.call_state == "idle"
    assert analog.commands.index("ATH") > analog.commands.index("AT+VTR")
    assert w.services.store.media.path(ref).exists()
    assert w.calls.runner.wait_idle(10)
    assert len(w.recorder.of(CallFinished)) == 1  # one record for the call


@pytest.mark.parametrize(
    ("callee", "words"),
    [
        (Callee(answer_after=0.2, press="2", press_after=0.2), "did not press 1"),
        (Callee(answer_after=None), "no answer"),
    ],
    ids=["declined", "no_answer"],
)
def test_e2e_analog_caller_not_taken_leaves_a_voicemail(
    world: Callable[..., World], callee: Callee, words: str
) -> None:
    from firmware_app.calls.analog_voice import Pacing
    from firmware_app.modem.simulator import VoiceCaller

    w = world(("usr5637", "ec25"), now=WEDNESDAY_MORNING, speed=5.0, settings=open_with_staff())
    analog, staff = w.modems
    analog.voice.speed = 5.0
    assert w.calls.runner is not None
    w.calls.runner.pacing = Pacing(speed=5.0)
    message = speech(1.5)
    analog.voice.caller = (
        VoiceCaller().say(message, at=0.5, after="record").hang_up(at=2.5, after="record")
    )
    staff.extras.callee = callee
    item = w.call()
    assert item.outcome == "voicemail", item.text
    forward = next(s for s in item.details["steps"] if s["do"].startswith("call Anna"))
    assert words in forward["result"]
    assert "AT+VTR" not in analog.commands  # never joined
    assert staff.call_state == "idle"
    stored = wav_samples(w.services.store, item.media[0])
    _, alike = best_match(stored, message[:6000])
    assert alike > 0.95
    check_voicemail_email(w, item)
