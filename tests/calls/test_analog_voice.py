"""AnalogVoiceChannel against the simulated USR5637 and Conexant modems over a pty: format
choice, DLE doubling, paced playback, held keys, quirks, hang-up and fax tone detection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_app.calls.analog_voice import AnalogVoiceChannel, Pacing, trim
from firmware_app.calls.voice import VoiceChannel
from firmware_app.events import EventBus
from firmware_app.media import codecs, tones
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line, LineOptions
from firmware_app.modem.simulator import SimulatedModem, VoiceCaller
from firmware_app.settings.lines import Lines
from tests.modem.conftest import Recorder

from .conftest import SPEED

pytestmark = pytest.mark.timeout(40)


def answered(
    modem: SimulatedModem, line: Line, recorder: Recorder, bus: EventBus
) -> AnalogVoiceChannel:
    modem.ring("+15551234567", rings=3, interval=0.3)
    recorder.wait(ev.IncomingCall, timeout=5)
    assert "OK" in str(line.answer(at_ring=2).result(5))
    call = recorder.wait(ev.CallAnswered, timeout=5)
    return AnalogVoiceChannel(line, bus=bus, call_id=call.call_id, pacing=Pacing(speed=SPEED))


def speech(seconds: float = 2.0) -> np.ndarray:
    """Voice-like test audio: two tones with a slow level change (not DTMF, not a dial tone)."""
    t = np.arange(int(seconds * 8000)) / 8000
    x = 0.2 * np.sin(2 * np.pi * 310 * t) + 0.15 * np.sin(2 * np.pi * 1230 * t)
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    return np.round(x * 32767).astype(np.int16)


def similarity(heard: np.ndarray, sent: np.ndarray, at: int) -> float:
    """Correlation of `sent` with `heard` from sample `at`, allowing a 2-sample misalignment
    (stream positions are rounded to whole samples)."""
    best = -1.0
    for lag in range(-2, 3):
        part = heard[at + lag : at + lag + sent.size].astype(float)
        if part.size < sent.size // 2:
            continue
        best = max(best, float(np.corrcoef(part, sent[: part.size].astype(float))[0, 1]))
    return best


@pytest.mark.parametrize(
    ("personality", "codec", "command", "ending"),
    [
        ("usr5637", "ulaw", "AT+VSM=131,8000", "etx"),
        ("cx93010", "ulaw", "AT+VSM=131,8000", "triple_etx"),
        ("mt9234mu", "ulaw", "AT+VSM=131,8000", "etx"),  # +VSM=? in the short form
    ],
)
def test_play_chooses_format_doubles_dle_and_ends_per_quirk(
    personality: str,
    codec: str,
    command: str,
    ending: str,
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    modem = make_modem(personality)
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    assert isinstance(channel, VoiceChannel)
    # A greeting full of 0x10 bytes once encoded: every one must arrive doubled and undoubled.
    greeting = np.tile(codecs.decode(b"\x10\x10\x80\x10", codec), 2000)  # 1 s
    result = channel.play(greeting, stop_digits="")
    assert result.reason == "done" and result.seconds == pytest.approx(1.0)
    assert command in modem.commands
    played = modem.voice.played[-1]
    assert played.codec == codec and played.ended == ending
    assert bytes(played.data) == codecs.encode(greeting, codec)
    assert played.overruns == 0  # paced: never more than the modem's buffer ahead
    # Paced to (sped-up) real time: 1 s of audio takes about 1/SPEED s, not an instant.
    assert played.seconds_real >= 0.8 / SPEED
    assert "u-law" in channel.description or "ULAW" in channel.description
    channel.close()


def test_usr_needs_vls5_before_vrx_and_a_held_key_counts_once(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    modem = make_modem("usr5637")
    modem.voice.caller = (
        VoiceCaller()
        .press("7", at=0.3, after="record", hold=0.5, inband=False)  # ~7 DLE repeats
        .press("2", at=1.2, after="record", hold=0.2)  # DLE and in-band: one press
    )
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    got = channel.collect_digits(2, timeout=5.0)
    assert got.reason == "done" and got.digits == "72"
    sent = modem.commands
    assert sent.index("AT+VLS=5") == sent.index("AT+VRX") - 1
    channel.close()


def test_usr_without_vls5_quirk_workaround_errors(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    """The simulator keeps the quirk honest: AT+VRX without AT+VLS=5 is refused."""
    modem = make_modem("usr5637")
    line = make_line(modem.path)
    answered(modem, line, recorder, bus)
    assert "ERROR" in str(line.command("AT+VRX").result(5))
    assert "OK" in str(line.command("AT+VLS=5").result(5))


def test_conexant_framed_keys_and_triple_dle_record_ending(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    modem = make_modem("cx93010")
    message = speech(1.5)
    modem.voice.caller = (
        VoiceCaller().say(message, at=0.2).press("#", at=2.0, after="record", hold=0.4)
    )
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    got = channel.record(20.0, stop_digits="#")
    assert got.reason == "digit" and got.digits == "#"
    assert "AT+VLS=5" not in modem.commands
    assert modem.voice.recorded[-1].ended == "stopped"
    # The message survives the codec round trip: compare with tolerance.
    assert 1.5 <= got.seconds <= 2.1
    assert similarity(got.audio, message, int(0.2 * 8000)) > 0.98
    # After the triple-DLE ending the line is back in command mode.
    assert "OK" in str(line.command("AT").result(5))
    channel.close()


@pytest.mark.parametrize(
    ("personality", "how", "detail"),
    [
        ("usr5637", ("dial_tone",), "dial tone"),
        ("usr5637", ("loop_break",), "modem: DLE l"),
        ("usr5637", ("busy",), "busy tone"),
        # The MT9234MU sends no DLE l: the dial tone after the loop break tells.
        ("mt9234mu", ("loop_break", "dial_tone"), "dial tone"),
    ],
)
def test_caller_leaving_ends_and_trims_the_recording(
    personality: str,
    how: tuple[str, ...],
    detail: str,
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    modem = make_modem(personality)
    modem.voice.caller = (
        VoiceCaller().say(speech(2.0), at=0.3).hang_up(at=2.5, after="record", how=how)  # type: ignore[arg-type]
    )
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    got = channel.record(120.0, silence_seconds=6.0)
    assert got.reason == "hangup" and detail in got.detail
    # Never minutes of tone: the recording ends where the caller's voice ended.
    assert 2.2 <= got.seconds <= 2.7, got.seconds
    assert channel.caller_gone
    channel.close()


def test_16_bit_audio_split_between_reads_stays_in_step(
    monkeypatch: pytest.MonkeyPatch,
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    """16-bit linear (a modem offering no 8-bit format): a sample whose first byte ends one
    read, or is an escaped 0x10 the DLE decoder holds back to see what follows, is joined
    with its second byte, never decoded a byte out of step."""
    import firmware_app.calls.analog_voice as analog_voice
    from firmware_app.protocol.voice import VoiceFormat

    sixteen = VoiceFormat(
        cmid=129, name="16-BIT LINEAR", codec="s16le", rate=8000, command="AT+VSM=129,8000"
    )
    monkeypatch.setattr(analog_voice, "choose_format", lambda lines, **kw: sixteen)
    # Every sample's high byte is 0x10 (4096-4351), so every 20 ms the simulator sends ends
    # in an escaped DLE that the decoder holds back: the reads carry odd byte counts.
    said = (4224 + np.round(100 * np.sin(2 * np.pi * 440 * np.arange(16000) / 8000))).astype(
        np.int16
    )
    modem = make_modem("usr5637")
    modem.voice.caller = VoiceCaller().say(said, at=0.2).hang_up(at=2.2, after="record")
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    got = channel.record(30.0, silence_seconds=6.0)
    assert "AT+VSM=129,8000" in modem.commands
    assert got.reason == "hangup" and 1.8 <= got.seconds <= 2.5, (got.reason, got.seconds)
    heard = got.audio[int(0.3 * 8000) : int(1.9 * 8000)]
    assert heard.min() > 3900 and heard.max() < 4550  # in step: no byte-swapped samples
    channel.close()

    # The decoder alone, fed a byte at a time.
    decode = analog_voice._AudioDecoder(sixteen)
    data = said[:400].astype("<i2").tobytes()
    out = np.concatenate([decode(data[i : i + 1]) for i in range(len(data))])
    assert np.array_equal(out, said[:400])


def test_recording_ends_at_once_when_the_ok_comes_with_dle_etx(
    tmp_path: Path,
    make_modem: Callable[..., SimulatedModem],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    """The modem answers DLE ! with DLE ETX and OK in one write, then says nothing more: the
    recording still ends then, not when the line's next timer or the command's time limit
    happens to wake it (here: caller ID 15 s after a ring, health checks every 2 minutes, a
    60 s limit)."""
    import threading

    modem = make_modem("usr5637")
    quiet = LineOptions(health_interval=120.0, idle_after=120.0, probe_timeout=1.5)
    line = Line(
        "line1",
        str(modem.path),
        bus=bus,
        settings=lambda: Lines(caller_id_timeout=15.0),  # its timer: 15 s after a ring
        options=quiet,
        pin_file=tmp_path / "p.json",
    )
    line.start()
    try:
        recorder.wait(ev.LineUp, timeout=10)
        modem.ring("+15551234567", rings=3, interval=0.3)
        recorder.wait(ev.IncomingCall, timeout=5)
        assert "OK" in str(line.answer(at_ring=2).result(5))
        call = recorder.wait(ev.CallAnswered, timeout=5)
        channel = AnalogVoiceChannel(
            line, bus=bus, call_id=call.call_id, pacing=Pacing(speed=SPEED), command_timeout=60
        )
        modem.voice.caller = VoiceCaller().say(speech(1.0), at=0.2).hang_up(at=1.4)
        done: list[Any] = []
        worker = threading.Thread(target=lambda: done.append(channel.record(60.0)))
        worker.start()
        worker.join(10.0)  # ends within moments; waiting for a wake-up took 15 s or more
        assert done and done[0].reason == "hangup", done
        channel.hang_up()
    finally:
        line.stop()
        line.join(3)
        line.close()


def test_a_slow_modem_stops_playback_with_xoff_and_loses_nothing(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    """The Conexant offers software flow control (+IFC (0-2),(0-2), set to 2,2): while we
    play, it is switched to XON/XOFF towards us and put back after. A modem whose audio clock
    runs 15 % slow fills its 4 KiB buffer; its XOFF holds our audio until its XON, so all of
    an 8 s greeting arrives and nothing overruns."""
    modem = make_modem("cx93010")
    modem.voice.drain_rate = 0.85
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    greeting = speech(8.0)
    result = channel.play(greeting, stop_digits="")
    assert result.reason == "done"
    played = modem.voice.played[-1]
    assert modem.voice.xoffs >= 1  # the buffer filled: the modem said stop
    assert played.overruns == 0
    assert bytes(played.data) == codecs.encode(greeting, "ulaw")
    commands = modem.commands
    assert commands.index("AT+IFC=2,1") < commands.index("AT+VTX") < commands.index("AT+IFC=2,2")
    assert "XON/XOFF" in channel.flow_control
    channel.hang_up()


def test_silence_ends_the_recording_and_keys_stop_playback(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    modem = make_modem("usr5637")
    modem.voice.caller = (
        VoiceCaller().press("3", at=0.4, after="play", inband=False).say(speech(1.0), at=0.1)
    )
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    played = channel.play(tones.tone((600.0,), 3.0), stop_digits="3")
    assert played.reason == "digit" and played.digits == "3"
    assert played.seconds < 1.0
    assert modem.voice.played[-1].ended == "abort"
    got = channel.record(60.0, silence_seconds=2.0)
    assert got.reason == "silence"
    assert 1.0 <= got.seconds <= 1.5


@pytest.mark.parametrize(("dle", "inband"), [(True, False), (False, True)])
def test_fax_calling_tone_ends_the_step(
    dle: bool,
    inband: bool,
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    modem = make_modem("usr5637")
    modem.voice.caller = VoiceCaller().send_fax_tone(at=0.2, after="record", dle=dle, inband=inband)
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    got = channel.record(30.0)
    assert got.reason == "fax"
    channel.close()


def test_hang_up_from_another_thread_is_safe_twice(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    import threading

    modem = make_modem("usr5637")
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    threading.Timer(0.3, channel.hang_up).start()
    got = channel.record(300.0)
    assert got.reason == "hangup"
    channel.hang_up()
    recorder.wait(ev.CallEnded, timeout=5)
    assert modem.commands.count("ATH") == 1
    assert channel.play(tones.beep()).reason == "hangup"


def test_trim_cuts_at_the_caller_leaving_and_drops_quiet() -> None:
    voice = speech(1.0)
    audio = np.concatenate([voice, tones.silence(3.0), tones.dial_tone(5.0)])
    assert trim(audio, 1.0 + 3.0).size == pytest.approx(1.3 * 8000, abs=200)
    assert trim(tones.silence(2.0), None).size == 0


# -- voice duplex (AT+VTR): what a bridge to another call uses -------------------------------


def tone_power(pcm: np.ndarray, freq: float) -> float:
    """Share of the signal's power at `freq` (Goertzel over the whole piece): 0..1."""
    x = pcm.astype(np.float64)
    if x.size < 400:
        return 0.0
    n = np.arange(x.size)
    re = float(np.dot(x, np.cos(2 * np.pi * freq * n / 8000)))
    im = float(np.dot(x, np.sin(2 * np.pi * freq * n / 8000)))
    return 2 * (re * re + im * im) / (x.size * max(float(np.dot(x, x)), 1e-9))


@pytest.mark.parametrize("personality", ["usr5637", "cx93010"])
def test_duplex_carries_audio_both_ways_with_keys_and_ends_cleanly(
    personality: str,
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    import threading

    modem = make_modem(personality)
    caller_voice = tones.tone((600.0,), 1.0, level_dbfs=-12.0)
    modem.voice.caller = (
        VoiceCaller()
        .say(caller_voice, at=0.2, after="duplex")
        .press("5", at=1.5, after="duplex", hold=0.2)
    )
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    assert channel.start_duplex()
    ours = tones.tone((1000.0,), 1.0, level_dbfs=-12.0)
    # Full of 0x10 once encoded as well: doubled on the way out, undoubled by the modem.
    ours[::7] = codecs.decode(b"\x10", "ulaw")[0]

    def speak() -> None:
        for i in range(0, ours.size, 160):
            assert channel.send(ours[i : i + 160], timeout=2.0)

    sender = threading.Thread(target=speak)
    sender.start()
    heard: list[np.ndarray] = []
    while sum(f.size for f in heard) < 2.5 * 8000:
        frame = channel.receive(5.0)
        assert frame is not None and frame.size == 160
        heard.append(frame)
    sender.join(10)
    channel.stop_duplex()
    sent = modem.commands
    assert "AT+VTR" in sent
    if personality == "usr5637":
        assert sent.index("AT+VLS=5") < sent.index("AT+VTR")
    played = modem.voice.played[-1]
    assert played.ended == "duplex_end" and played.overruns == 0
    got = codecs.decode(bytes(played.data), played.codec)  # type: ignore[arg-type]
    assert got.size == ours.size
    assert np.corrcoef(got.astype(float), ours.astype(float))[0, 1] > 0.98
    pcm = np.concatenate(heard)
    assert similarity(pcm, caller_voice, int(0.2 * 8000)) > 0.98
    assert tone_power(pcm[int(0.3 * 8000) : int(1.1 * 8000)], 600.0) > 0.5
    assert channel.take_digit() == "5" and channel.take_digit() is None
    assert modem.voice.recorded[-1].ended == "stopped"
    # Back in command mode: the ordinary states work again.
    assert channel.play(tones.beep(), stop_digits="").reason == "done"
    assert not channel.caller_gone
    channel.close()
    assert modem.call_state == "idle"


def test_duplex_caller_hanging_up_is_seen_and_hang_up_leaves_duplex_first(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    modem = make_modem("cx93010")
    modem.voice.caller = (
        VoiceCaller().say(speech(1.0), at=0.1, after="duplex").hang_up(at=1.2, after="duplex")
    )
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    frames = 0
    while channel.receive(5.0) is not None:
        frames += 1
    assert channel.caller_gone
    assert 1.0 <= frames * 0.02 <= 1.4, frames
    assert not channel.send(tones.silence(0.02))
    channel.hang_up()
    recorder.wait(ev.CallEnded, timeout=5)
    assert modem.voice.played[-1].ended == "duplex_end"  # DLE DLE DLE ^ before ATH
    assert modem.commands.index("ATH") > modem.commands.index("AT+VTR")
    assert modem.call_state == "idle"
    channel.close()


def test_duplex_hang_up_from_another_thread_while_joined(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
) -> None:
    import threading

    modem = make_modem("usr5637")
    line = make_line(modem.path)
    channel = answered(modem, line, recorder, bus)
    assert channel.start_duplex()
    threading.Timer(0.3, channel.hang_up).start()
    while channel.receive(5.0) is not None:
        pass
    recorder.wait(ev.CallEnded, timeout=5)
    assert modem.voice.played[-1].ended == "duplex_end"
    assert modem.commands.count("ATH") == 1
    assert not channel.start_duplex()
    assert channel.play(tones.beep()).reason == "hangup"
