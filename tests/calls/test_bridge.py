"""Two simulated GSM lines: a caller on one, staff called on the other; accepted (press 1,
audio joined both ways, recorded), declined, not answered, busy; the hook-flash command
sequence against the simulated analog modem."""

# ruff: noqa: F811 - fixtures shared with tests/modem

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from firmware_app.calls.bridge import Waiting, bridge_call, hook_flash_transfer
from firmware_app.calls.gsm_voice import GsmSerialPcmChannel
from firmware_app.events import EventBus
from firmware_app.media import codecs, tones
from firmware_app.media.dsp import goertzel_power
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
        ringback=tones.ringback(plan="eu"),
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
    assert tone_blocks(heard_by_caller(a_in), (425.0,)).any()  # ringback while staff were rung
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


@pytest.mark.parametrize(
    ("number", "country", "prefix", "dialled"),
    [
        ("+447700900001", "GB", "", "07700900001"),  # national form, trunk prefix 0
        ("+442079460123", "GB", "9,", "9,02079460123"),  # a PBX's outside line and a pause
        ("+15550109999", "US", "", "15550109999"),  # NANP: 1 and ten digits
        ("+14165550123", "US", "9", "914165550123"),  # Canada from the US: still 1 + ten
        ("+447700900001", "US", "9", "9011447700900001"),  # abroad: 011 from NANP
        ("+15550109999", "GB", "", "0015550109999"),  # abroad: 00 from GB
        ("+493012345678", "DE", "0", "003012345678"),  # German PBX: 0 for the outside line
        ("204", "GB", "9", "204"),  # an extension: dialled as written
        ("+44", "GB", "9", ""),  # no phone number: nothing to dial
    ],
)
def test_dial_digits(number: str, country: str, prefix: str, dialled: str) -> None:
    from firmware_app.calls.bridge import dial_digits

    assert dial_digits(number, country, prefix) == dialled


def test_hook_flash_sequence(tmp_path: Any, bus: EventBus, recorder: Recorder) -> None:
    modem = create("usr5637", tmp_path / "dev")
    line = Line("line1", str(modem.path), bus=bus, options=FAST, pin_file=tmp_path / "p.json")
    line.start()
    try:
        recorder.wait(ev.LineUp, timeout=10)
        modem.ring(CallerId(number="5551234"), rings=6, interval=0.3)
        recorder.wait(ev.IncomingCall, timeout=10)
        assert isinstance(line.answer().result(5), Response)
        waits: list[float] = []
        result = hook_flash_transfer(line, "9,07700900001", flash_ms=300, sleep=waits.append)
        assert result.ok, result
        assert result.commands == (
            "AT+VTS={!,30}",
            "AT+VTS=9",  # the outside line, then a pause for its dial tone
            "AT+VTS=0,7,7,0,0,9,0,0,0,0,1",
            "hang up",
        )
        assert waits == [1.5, 2.0, 1.5]  # dial tone after the flash, the comma, the last digit
        assert modem.extras.flashes == [300]
        assert "".join(modem.extras.tones_sent) == "907700900001"
        assert modem.call_state == "idle"
        assert not hook_flash_transfer(line, "abc").ok
        assert not hook_flash_transfer(line, "9,").ok  # a prefix alone is no number
    finally:
        line.stop()
        line.join(2.0)
        line.close()
        modem.close()


@pytest.mark.parametrize(
    ("personality", "plan", "dle_d"),
    [
        ("usr5637", "na", False),  # recall dial tone: stutter, then 350+440 Hz
        ("cx93010", "uk", False),  # 350+450 Hz; the Conexant's tripled DLE !
        ("usr5637", "eu", True),  # 425 Hz, and the modem reports DLE d as well
    ],
)
def test_dial_tone_after_a_hook_flash_is_heard_before_dialling(
    tmp_path: Any, bus: EventBus, recorder: Recorder, personality: str, plan: str, dle_d: bool
) -> None:
    from firmware_app.calls.analog_voice import AnalogVoiceChannel, Pacing

    modem = create(personality, tmp_path / "dev")
    modem.voice.speed = 10.0
    modem.extras.flash_dial_tone = plan
    modem.extras.flash_reports_dle_d = dle_d
    line = Line("line1", str(modem.path), bus=bus, options=FAST, pin_file=tmp_path / "p.json")
    line.start()
    try:
        recorder.wait(ev.LineUp, timeout=10)
        modem.ring(CallerId(number="5551234"), rings=6, interval=0.3)
        recorder.wait(ev.IncomingCall, timeout=10)
        assert isinstance(line.answer().result(5), Response)
        call = recorder.wait(ev.CallAnswered, timeout=5)
        channel = AnalogVoiceChannel(line, bus=bus, call_id=call.call_id, pacing=Pacing(10.0))
        waits: list[float] = []
        result = hook_flash_transfer(
            line, "9,204", flash_ms=300, listen=channel.wait_for_dial_tone, sleep=waits.append
        )
        assert result.ok, result
        assert result.commands == (
            "AT+VTS={!,30}",
            "dial tone",
            "AT+VTS=9",
            "AT+VTS=2,0,4",
            "hang up",
        )
        assert waits == [2.0, 1.5]  # the comma and the last digit: no fixed wait for the tone
        # It listened (AT+VRX, after AT+VLS=5 on the USR) and left with DLE ! before dialling.
        assert modem.voice.recorded[0].ended == "stopped"
        heard = codecs.decode(bytes(modem.voice.recorded[0].data), modem.voice.recorded[0].codec)
        assert heard.size / 8000 < 2.0  # dial tone confirmed in about half a second
        assert modem.extras.flashes == [300]
        assert "".join(modem.extras.tones_sent) == "9204"
        channel.close()
    finally:
        line.stop()
        line.join(2.0)
        line.close()
        modem.close()


def test_no_dial_tone_after_a_hook_flash_takes_the_caller_back(
    tmp_path: Any, bus: EventBus, recorder: Recorder
) -> None:
    """A plain line ignores the flash: no dial tone, so nothing is dialled, a second flash
    takes the caller back from hold and the call is still ours."""
    from firmware_app.calls.analog_voice import AnalogVoiceChannel, Pacing

    modem = create("usr5637", tmp_path / "dev")
    modem.voice.speed = 10.0
    modem.extras.flash_transfers = False
    line = Line("line1", str(modem.path), bus=bus, options=FAST, pin_file=tmp_path / "p.json")
    line.start()
    try:
        recorder.wait(ev.LineUp, timeout=10)
        modem.ring(CallerId(number="5551234"), rings=6, interval=0.3)
        recorder.wait(ev.IncomingCall, timeout=10)
        assert isinstance(line.answer().result(5), Response)
        call = recorder.wait(ev.CallAnswered, timeout=5)
        channel = AnalogVoiceChannel(line, bus=bus, call_id=call.call_id, pacing=Pacing(10.0))
        result = hook_flash_transfer(line, "204", flash_ms=500, listen=channel.wait_for_dial_tone)
        assert not result.ok
        assert result.commands == ("AT+VTS={!,50}", "no dial tone", "AT+VTS={!,50}")
        assert "no dial tone within 4 s" in result.detail and "caller back" in result.detail
        assert modem.extras.flashes == [500, 500] and modem.extras.tones_sent == []
        heard = codecs.decode(bytes(modem.voice.recorded[0].data), modem.voice.recorded[0].codec)
        assert 3.9 <= heard.size / 8000 <= 5.0  # listened for the whole 4 s, then gave up
        assert modem.call_state == "active" and not channel.caller_gone
        channel.close()
    finally:
        line.stop()
        line.join(2.0)
        line.close()
        modem.close()


@pytest.mark.parametrize(
    ("country", "mobile", "prefix", "dialled"),
    [("GB", "+447700900001", "9,", "9,07700900001"), ("US", "+15550001111", "", "15550001111")],
    ids=["uk_office_pbx", "us_office_centrex"],
)
def test_e2e_hook_flash_transfer_dials_as_the_office_exchange_wants(
    world: Callable[..., World], country: str, mobile: str, prefix: str, dialled: str
) -> None:
    """An analog line the owner marked as on a phone system, open hours: greeted, then
    transferred by hook flash to the staff member on duty, in the national form of the
    office's country and after the PBX's outside-line prefix."""
    from firmware_app.calls.analog_voice import Pacing
    from firmware_app.modem.simulator import VoiceCaller

    def settings(s: Any) -> Any:
        s = open_with_staff(transfer_prefix=prefix, flash_ms=200)(s)
        s.business.country = country
        s.staff.members[0].mobile = mobile
        s.lines.transfer_lines = ["line1"]
        return s

    w = world(("usr5637",), now=WEDNESDAY_MORNING, settings=settings)
    analog = w.modems[0]
    analog.voice.speed = 10.0
    assert w.calls.runner is not None
    w.calls.runner.pacing = Pacing(speed=10.0)
    analog.voice.caller = VoiceCaller()
    item = w.call()
    assert item.details["plan"]["steps"] == ["greet", "forward_to", "take_voicemail"]
    assert "hook flash" in item.details["plan"]["explanation"]
    assert item.outcome == "forwarded", item.text
    # The open greeting, then "connecting" just before the flash.
    assert w.greetings.asked[:2] == ["open", "connecting"]
    assert bytes(analog.voice.played[1].data) == codecs.encode(
        w.greetings.audio("connecting"), "ulaw"
    )
    assert f"dialled {dialled} " in item.text
    assert analog.extras.flashes == [200]
    # The number went out once the exchange's dial tone was heard (AT+VRX after the flash).
    assert len(analog.voice.recorded) == 1 and analog.voice.recorded[0].ended == "stopped"
    assert "".join(analog.extras.tones_sent) == dialled.replace(",", "")
    assert analog.call_state == "idle"
    assert w.mails(0, timeout=0.5) == []  # passed on: no email


def test_e2e_hook_flash_without_dial_tone_takes_a_voicemail(world: Callable[..., World]) -> None:
    """A line marked as on a phone system whose exchange does not take the flash: no dial
    tone, so nothing is dialled, the caller is taken back and leaves a voicemail."""
    from firmware_app.calls.analog_voice import Pacing
    from firmware_app.modem.simulator import VoiceCaller

    def settings(s: Any) -> Any:
        s = open_with_staff(flash_ms=200)(s)
        s.lines.transfer_lines = ["line1"]
        return s

    w = world(("usr5637",), now=WEDNESDAY_MORNING, settings=settings)
    analog = w.modems[0]
    analog.voice.speed = 10.0
    analog.extras.flash_transfers = False
    assert w.calls.runner is not None
    w.calls.runner.pacing = Pacing(speed=10.0)
    message = speech(2.0)
    # The first AT+VRX listens for dial tone after the flash; the second is the message.
    analog.voice.caller = (
        VoiceCaller().say(message, at=0.3, after="record:2").hang_up(at=2.6, after="record:2")
    )
    item = w.call()
    assert item.outcome == "voicemail", item.text
    forward = next(s for s in item.details["steps"] if s["step"] == "forward_to")
    assert "no dial tone" in forward["result"], forward
    assert analog.extras.flashes == [200, 200] and analog.extras.tones_sent == []
    stored = wav_samples(w.services.store, item.media[0])
    _, alike = best_match(stored, message[:8000])
    assert alike > 0.95
    check_voicemail_email(w, item)


def tone_blocks(pcm: np.ndarray, freqs: tuple[float, ...], block: int = 400) -> np.ndarray:
    """Per 50 ms block: whether `freqs` (each of them) carry most of the block's energy,
    by Goertzel power."""
    n = pcm.size // block
    if n == 0:
        return np.zeros(0, dtype=bool)
    blocks = pcm[: n * block].astype(np.float64).reshape(n, block) / 32768
    power = goertzel_power(blocks, freqs, 8000)
    energy = np.mean(blocks * blocks, axis=1)
    return (
        (power.sum(axis=1) >= 0.6 * energy) & (power.min(axis=1) >= 0.15 * energy) & (energy > 1e-5)
    )


def played_pcm(played: Any) -> np.ndarray:
    return codecs.decode(bytes(played.data), played.codec)


def hang_up_when(modem: SimulatedModem, ready: Callable[[], bool]) -> threading.Thread:
    """The caller hangs up once `ready()` (what the test waits for has happened)."""

    def run() -> None:
        end = time.monotonic() + 30.0
        while not ready() and time.monotonic() < end:
            time.sleep(0.02)
        modem.caller_hangs_up()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def hears(audio: GsmAudio, freq: float, seconds: float = 0.5) -> Callable[[], bool]:
    """True once the far end has sent `audio` `seconds` of `freq` (50 ms blocks, Goertzel)."""
    return lambda: tone_blocks(audio.heard_pcm(), (freq,)).sum() * 0.05 >= seconds


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


def test_analog_caller_hears_ringback_then_is_joined_both_ways_and_recorded(
    analog_and_gsm: tuple[SimulatedModem, SimulatedModem, Any, Line, GsmAudio], bus: EventBus
) -> None:
    from firmware_app.modem.simulator import VoiceCaller

    caller_modem, staff_modem, caller, line2, staff_audio = analog_and_gsm
    open_channel, opened = channels(bus)
    # The caller speaks 600 Hz throughout and hangs up (DLE l) once staff have heard them;
    # staff speak 1000 Hz.
    caller_modem.voice.caller = VoiceCaller().say(tone(90.0, 600.0), at=0.0, after="duplex")
    staff_modem.extras.callee = Callee(
        answer_after=0.3,
        press="1",
        press_after=0.3,
        say=tones.silence(0.1),
        say_after_press=tone(60.0, 1000.0),
    )
    stored: list[np.ndarray] = []

    def keep(pcm: np.ndarray) -> str:
        stored.append(pcm)
        return "media/2026/03/recording0002.wav"

    hanging_up = hang_up_when(caller_modem, hears(staff_audio, 600.0, 2.0))
    result = bridge_call(
        caller,
        line2,
        "+447700900001",
        ring_seconds=10,
        greetings=Greetings(),
        open_channel=open_channel,
        recorder=keep,
        ringback=tones.ringback(plan="uk"),
        poll=0.05,
    )
    hanging_up.join(5.0)
    assert result.outcome == "bridged", result
    assert result.ended_by == "caller"
    assert result.recordings == ("media/2026/03/recording0002.wav",)
    heard_by_staff = staff_audio.heard_pcm()
    assert energy_at(heard_by_staff, 700.0) > 0.05  # "press 1 to accept"
    assert energy_at(heard_by_staff, 600.0) > 0.05  # the analog caller, through AT+VTR
    # One duplex state from before the dialling to the end: ringback (UK 400+450 Hz), then
    # the recording notice (900 Hz), then staff (1000 Hz), in that order and never mixed up.
    assert caller_modem.commands.count("AT+VTR") == 1
    (duplex,) = caller_modem.voice.played
    heard_by_caller = played_pcm(duplex)
    ringing = np.flatnonzero(tone_blocks(heard_by_caller, (400.0, 450.0)))
    notice = np.flatnonzero(tone_blocks(heard_by_caller, (900.0,)))
    staff = np.flatnonzero(tone_blocks(heard_by_caller, (1000.0,)))
    assert ringing.size >= 4 and notice.size >= 2 and staff.size >= 10
    assert ringing[-1] < notice[0] and notice[-1] < staff[0]  # ringback stopped on accept
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
        ringback=tones.ringback(plan="eu"),
        poll=0.05,
    )
    assert (result.outcome, result.detail) == ("declined", "pressed 3")
    staff_modem.extras.callee = Callee(answer_after=None)
    result = bridge_call(
        caller,
        line2,
        "+447700900002",
        1.0,
        greetings=Greetings(),
        open_channel=open_channel,
        ringback=tones.ringback(plan="eu"),
        poll=0.05,
    )
    assert result.outcome == "no_answer"
    assert staff_modem.call_state == "idle"
    # Each attempt: ringback (CEPT 425 Hz) in voice duplex, left with DLE ^ when it failed.
    assert caller_modem.commands.count("AT+VTR") == 2
    for duplex in caller_modem.voice.played:
        assert tone_blocks(played_pcm(duplex), (425.0,)).any()
        assert duplex.ended == "duplex_end"
    # The line is back in command mode: the caller's channel still plays (the voicemail).
    assert caller.play(tones.beep(), stop_digits="").reason == "done"
    for ch in opened:
        ch.close()


def test_analog_caller_hanging_up_while_staff_are_rung_ends_the_staff_call(
    analog_and_gsm: tuple[SimulatedModem, SimulatedModem, Any, Line, GsmAudio], bus: EventBus
) -> None:
    from firmware_app.modem.simulator import VoiceCaller

    caller_modem, staff_modem, caller, line2, _ = analog_and_gsm
    open_channel, opened = channels(bus)
    caller_modem.voice.caller = VoiceCaller().hang_up(at=2.0, after="duplex")  # DLE l
    staff_modem.extras.callee = Callee(answer_after=None)  # staff's phone rings on
    result = bridge_call(
        caller,
        line2,
        "+447700900001",
        ring_seconds=120,
        greetings=Greetings(),
        open_channel=open_channel,
        ringback=tones.ringback(plan="eu"),
        poll=0.05,
    )
    assert result.outcome == "caller_gone", result
    assert any(c.upper() in ("AT+CHUP", "ATH") for c in staff_modem.commands)
    assert staff_modem.call_state == "idle"
    assert not opened  # nobody answered: no staff audio
    (duplex,) = caller_modem.voice.played
    assert tone_blocks(played_pcm(duplex), (425.0,)).any()  # the caller heard ringback
    assert duplex.ended == "duplex_end"
    assert caller.caller_gone and "DLE l" in caller._gone_why


def test_analog_caller_hanging_up_while_staff_hear_press_1(
    analog_and_gsm: tuple[SimulatedModem, SimulatedModem, Any, Line, GsmAudio], bus: EventBus
) -> None:
    caller_modem, staff_modem, caller, line2, staff_audio = analog_and_gsm
    open_channel, opened = channels(bus)
    staff_modem.extras.callee = Callee(answer_after=0.2)  # answers, never presses a key
    hanging_up = hang_up_when(caller_modem, hears(staff_audio, 700.0, 0.2))  # "press 1" heard
    result = bridge_call(
        caller,
        line2,
        "+447700900001",
        ring_seconds=10,
        greetings=Greetings(),
        open_channel=open_channel,
        accept_seconds=120.0,
        ringback=tones.ringback(plan="na"),
        poll=0.05,
    )
    hanging_up.join(5.0)
    assert result.outcome == "caller_gone", result
    assert staff_modem.call_state == "idle"  # staff were hung up on, not kept waiting
    assert any(c.upper() in ("AT+CHUP", "ATH") for c in staff_modem.commands)
    (duplex,) = caller_modem.voice.played
    assert tone_blocks(played_pcm(duplex), (440.0, 480.0)).any()  # NA ringback
    for ch in opened:
        ch.close()


def test_ringback_stops_with_a_fade_not_a_cut(
    analog_and_gsm: tuple[SimulatedModem, SimulatedModem, Any, Line, GsmAudio],
) -> None:
    caller_modem, _, caller, _, _ = analog_and_gsm
    assert caller.start_duplex()
    level = 0.1 * 32767
    waiting = Waiting(caller, tones.tone((440.0,), 1.0, level_dbfs=-20.0)).start()
    end = time.monotonic() + 30.0
    while waiting.frames < 10 and time.monotonic() < end:
        time.sleep(0.01)
    waiting.stop()
    caller.stop_duplex()
    pcm = played_pcm(caller_modem.voice.played[-1]).astype(np.float64)
    assert pcm.size >= 11 * 160
    assert np.abs(pcm[-320:-160]).max() > 0.8 * level  # still ringing the frame before
    assert np.abs(pcm[-16:]).max() < 0.15 * level  # faded to (almost) nothing
    steepest = 2 * np.pi * 440.0 / 8000 * level  # the sine's own largest step
    assert np.abs(np.diff(pcm)).max() < 1.25 * steepest  # no step beyond it: no click
    assert not waiting.gone.is_set()


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
    analog.voice.caller = VoiceCaller().say(tone(90.0, 600.0), at=0.0, after="duplex")
    staff.extras.callee = Callee(
        answer_after=0.3,
        press="1",
        press_after=0.3,
        say=tones.silence(0.1),
        say_after_press=tone(60.0, 1000.0),
    )
    hanging_up = hang_up_when(analog, hears(staff_audio, 600.0, 2.0))  # mid-call: DLE l
    item = w.call()
    hanging_up.join(5.0)
    assert item.details["plan"]["steps"] == ["greet", "forward_to", "take_voicemail"]
    assert item.outcome == "forwarded", item.text
    assert "Anna" in item.text and "ended by caller" in item.text
    assert staff.extras.dialled == ["+15550001111"]
    assert energy_at(staff_audio.heard_pcm(), 600.0) > 0.05  # the analog caller, heard
    duplex = analog.voice.played[-1]
    heard = played_pcm(duplex)
    assert energy_at(heard, 1000.0) > 0.05  # staff, heard on the analog line
    ringing = np.flatnonzero(tone_blocks(heard, (440.0, 480.0)))  # the office is in the US
    staff_voice = np.flatnonzero(tone_blocks(heard, (1000.0,)))
    assert ringing.size and staff_voice.size and ringing[-1] < staff_voice[0]
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


def test_e2e_analog_caller_hanging_up_while_staff_are_rung_is_a_missed_call(
    world: Callable[..., World],
) -> None:
    from firmware_app.calls.analog_voice import Pacing
    from firmware_app.calls.events import CallFinished
    from firmware_app.modem.simulator import VoiceCaller

    def settings(s: Any) -> Any:
        s = open_with_staff()(s)
        s.rules.ring_seconds = 60  # far longer than the test: the hang-up must end it
        return s

    w = world(("usr5637", "ec25"), now=WEDNESDAY_MORNING, speed=5.0, settings=settings)
    analog, staff = w.modems
    analog.voice.speed = 5.0
    assert w.calls.runner is not None
    w.calls.runner.pacing = Pacing(speed=5.0)
    analog.voice.caller = VoiceCaller().hang_up(at=2.0, after="duplex")  # 2 s into the ring
    staff.extras.callee = Callee(answer_after=None)
    item = w.call()
    assert item.outcome == "missed", item.text
    assert "hung up during forwarding" in item.text
    assert staff.extras.dialled == ["+15550001111"]
    assert any(c.upper() in ("AT+CHUP", "ATH") for c in staff.commands)  # staff call ended
    assert staff.call_state == "idle" and analog.call_state == "idle"
    assert tone_blocks(played_pcm(analog.voice.played[-1]), (440.0, 480.0)).any()
    assert w.calls.runner.wait_idle(10)
    assert len(w.recorder.of(CallFinished)) == 1
    (mail,) = w.mails(1)
    assert "missed" in mail["Subject"].lower()
    assert len(w.mails(2, timeout=1.0)) == 1  # one email, no second one


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
    # The caller heard ringback in voice duplex, left (DLE ^) before the voicemail prompt.
    duplex = next(p for p in analog.voice.played if p.ended == "duplex_end")
    assert tone_blocks(played_pcm(duplex), (440.0, 480.0)).any()
    assert analog.commands.index("AT+VTR") < analog.commands.index("AT+VRX")
    assert staff.call_state == "idle"
    stored = wav_samples(w.services.store, item.media[0])
    _, alike = best_match(stored, message[:6000])
    assert alike > 0.95
    check_voicemail_email(w, item)
