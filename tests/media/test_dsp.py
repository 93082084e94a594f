"""Detectors on generated tones and espeak-ng speech: DTMF (all digits, levels, noise,
twist, held keys, Q.24 timing), silence, dial tone, busy tone, fax CNG, hang-up."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from firmware_app.media import codecs, dsp, tones
from firmware_app.protocol.voice import HangupDetector

ALL = "0123456789*#ABCD"


def mix(*parts: np.ndarray) -> np.ndarray:
    """Parts one after the other."""
    return np.concatenate(parts)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = min(a.size, b.size)
    return np.clip(a[:n].astype(np.int32) + b[:n], -32768, 32767).astype(np.int16)


def run(det: object, x: np.ndarray, chunk: int = 160) -> list[object]:
    out: list[object] = []
    for i in range(0, x.size, chunk):
        out += det.feed(x[i : i + chunk])  # type: ignore[attr-defined]
    return out


def digits(events: Sequence[object]) -> str:
    return "".join(e.digit for e in events if isinstance(e, dsp.DtmfDigit))


# --- DTMF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [-6.0, -12.0, -20.0, -28.0, -33.0])
@pytest.mark.parametrize("snr_db", [None, 15.0])
def test_all_digits_at_levels_and_with_noise(level: float, snr_db: float | None) -> None:
    x = mix(tones.silence(0.1), tones.dtmf(ALL, level_dbfs=level, on_ms=60, off_ms=60))
    if snr_db is not None:
        # both tones together are 3 dB above one tone
        x = add(x, tones.noise(x.size / 8000, level_dbfs=level + 3 - snr_db, seed=7))
    assert digits(run(dsp.DtmfDetector(), x)) == ALL


def test_too_quiet_is_ignored() -> None:
    x = tones.dtmf("123", level_dbfs=-45.0)
    assert digits(run(dsp.DtmfDetector(), x)) == ""


@pytest.mark.parametrize(
    ("twist", "found"), [(4.0, True), (-6.0, True), (10.0, False), (-12.0, False)]
)
def test_twist(twist: float, found: bool) -> None:
    x = tones.dtmf("58", level_dbfs=-18.0, twist_db=twist)
    assert digits(run(dsp.DtmfDetector(), x)) == ("58" if found else "")


def test_q24_timing_and_detection_delay() -> None:
    # 40 ms tones with 40 ms pauses are accepted (Q.24), each once.
    x = tones.dtmf("1234567890", on_ms=40, off_ms=40, level_dbfs=-15.0)
    events = run(dsp.DtmfDetector(), x)
    assert digits(events) == "1234567890"
    for i, e in enumerate(events):
        assert isinstance(e, dsp.DtmfDigit)
        tone_start = i * 0.08
        assert e.at - tone_start <= 0.040  # recognised within 40 ms of the tone starting
    # 15 ms blips are not presses.
    assert digits(run(dsp.DtmfDetector(), tones.dtmf("1234", on_ms=15, off_ms=60))) == ""


def test_held_key_counts_once_and_survives_a_dropout() -> None:
    held = tones.dtmf("5", on_ms=1000, off_ms=200)
    assert digits(run(dsp.DtmfDetector(), held)) == "5"
    a = tones.dtmf("9", on_ms=400, off_ms=0)
    dropout = mix(a, tones.silence(0.01), a, tones.silence(0.2))
    assert digits(run(dsp.DtmfDetector(), dropout)) == "9"
    twice = tones.dtmf("55", on_ms=100, off_ms=60)
    assert digits(run(dsp.DtmfDetector(), twice)) == "55"


@pytest.mark.parametrize("chunk", [1, 37, 160, 8000])
def test_chunking_does_not_matter(chunk: int) -> None:
    x = tones.dtmf("#0*", level_dbfs=-20.0)
    events = run(dsp.DtmfDetector(), x, chunk=chunk)
    ref = run(dsp.DtmfDetector(), x, chunk=x.size)
    assert events == ref and digits(events) == "#0*"


def test_other_tones_are_not_digits() -> None:
    x = mix(
        tones.dial_tone(2.0),
        tones.busy_tone(2.0),
        tones.cng(1.0),
        tones.beep(),
        tones.tone((1000.0, 1300.0), 1.0),
    )
    assert digits(run(dsp.DtmfDetector(), x)) == ""


SPEECH = [
    (
        "en",
        "Hello, you have reached Smith and partners. Please leave a message after the "
        "tone. One two three four five six seven eight nine zero. Goodbye.",
    ),
    (
        "en-us",
        "We are open Monday to Friday from nine to five. Press one for sales, two "
        "for service, or stay on the line.",
    ),
    (
        "de",
        "Guten Tag, Sie sind verbunden mit der Praxis Doktor Weber. Bitte sprechen Sie "
        "nach dem Signalton.",
    ),
    ("fr", "Bonjour, vous etes bien chez Martin. Laissez un message apres le bip."),
]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed")
    out: list[np.ndarray] = []
    folder = tmp_path_factory.mktemp("speech")
    for i, (voice, text) in enumerate(SPEECH):
        wav = Path(folder) / f"s{i}.wav"
        subprocess.run([exe, "-v", voice, "-w", str(wav), text], check=True, timeout=30)
        out.append(codecs.to_telephone(wav))
    pitched = Path(folder) / "high.wav"
    subprocess.run(
        [
            exe,
            "-p",
            "95",
            "-s",
            "110",
            "-w",
            str(pitched),
            "Aaaah, eeeeh, ooooh, mmmm, yes yes yes",
        ],
        check=True,
        timeout=30,
    )
    out.append(codecs.to_telephone(pitched))
    return out


@pytest.mark.parametrize("gain", [0.3, 1.0, 3.0])
def test_speech_gives_no_digits_or_tones(speech: list[np.ndarray], gain: float) -> None:
    for x in speech:
        loud = np.clip(x.astype(np.float64) * gain, -32768, 32767).astype(np.int16)
        events = run(dsp.LineMonitor(), loud)
        found = [e for e in events if not isinstance(e, dsp.Silence | dsp.SoundResumed)]
        assert found == []


def test_digits_over_speech(speech: list[np.ndarray]) -> None:
    # Barge-in: a caller presses keys while the greeting is heard on the line.
    x = speech[0][: 8000 * 3]
    keys = mix(tones.silence(0.5), tones.dtmf("42", level_dbfs=-8.0), tones.silence(1.0))
    assert digits(run(dsp.DtmfDetector(), add(x, np.pad(keys, (0, x.size))))) == "42"


# --- silence --------------------------------------------------------------------------------


def test_silence_after_speech_and_resume() -> None:
    x = mix(
        tones.dtmf("1", on_ms=500, off_ms=0),
        tones.noise(6.0, level_dbfs=-60.0),
        tones.tone((300.0,), 0.2, level_dbfs=-20.0),
    )
    events = run(dsp.SilenceDetector(seconds=4.0), x)
    assert len(events) == 2
    silence, resumed = events
    assert isinstance(silence, dsp.Silence) and isinstance(resumed, dsp.SoundResumed)
    assert silence.start == pytest.approx(0.5, abs=0.021)
    assert silence.at - silence.start == pytest.approx(4.0, abs=0.021)
    assert resumed.at == pytest.approx(6.52, abs=0.021)


def test_line_hiss_is_silence_but_quiet_speech_is_not() -> None:
    assert run(dsp.SilenceDetector(seconds=1.0), tones.noise(1.5, level_dbfs=-52.0))
    quiet_voice = tones.tone((220.0, 440.0, 660.0), 2.0, level_dbfs=-38.0)
    assert run(dsp.SilenceDetector(seconds=1.0), quiet_voice) == []


def test_dbfs() -> None:
    assert dsp.dbfs(tones.tone((1000.0,), 1.0, level_dbfs=-10.0)) == pytest.approx(-10, abs=0.05)
    assert dsp.dbfs(np.zeros(10, dtype=np.int16)) == -120.0
    assert dsp.dbfs(np.zeros(0, dtype=np.int16)) == -120.0


# --- dial, busy, CNG ------------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "name"), [("na", "350+440"), ("eu", "425"), ("uk", "350+450")])
def test_dial_tone(plan: tones.Plan, name: str) -> None:
    x = mix(
        tones.noise(1.0, level_dbfs=-55.0),
        add(tones.dial_tone(10.0, plan=plan), tones.noise(10.0, level_dbfs=-45.0)),
    )
    (ev,) = run(dsp.DialToneDetector(), x)
    assert isinstance(ev, dsp.DialTone) and ev.tone == name
    assert ev.start == pytest.approx(1.0, abs=0.06)
    assert 1.4 <= ev.at - 1.0 <= 1.7


@pytest.mark.parametrize("plan", ["na", "eu", "uk"])
def test_busy_tone(plan: tones.Plan) -> None:
    x = mix(tones.silence(1.0), tones.busy_tone(6.0, plan=plan))
    events = run(dsp.BusyToneDetector(), x)
    assert len(events) == 1 and isinstance(events[0], dsp.BusyTone)
    assert events[0].at - 1.0 <= 2.1
    assert run(dsp.DialToneDetector(), x) == []


def test_reorder_is_busy_and_ringback_is_neither() -> None:
    reorder = tones.tone((480.0, 620.0), 0.25, level_dbfs=-20.0)
    fast = np.tile(mix(reorder, tones.silence(0.25)), 8)
    (ev,) = run(dsp.BusyToneDetector(), fast)
    assert ev.at <= 1.1  # type: ignore[attr-defined]
    # North American ringback 440+480 2 s on 4 s off; CEPT ringback 425 1 s on 4 s off.
    na_ring = np.tile(mix(tones.tone((440.0, 480.0), 2.0, level_dbfs=-19.0), tones.silence(4)), 2)
    eu_ring = np.tile(mix(tones.tone((425.0,), 1.0, level_dbfs=-19.0), tones.silence(4)), 2)
    for ring in (na_ring, eu_ring):
        assert run(dsp.BusyToneDetector(), ring) == []
        assert run(dsp.DialToneDetector(), ring) == []


def test_cng() -> None:
    x = mix(tones.silence(0.7), add(tones.cng(7.0), tones.noise(7.0, level_dbfs=-40.0)))
    events = run(dsp.CngDetector(), x)
    assert len(events) == 2
    first = events[0]
    assert isinstance(first, dsp.FaxCalling)
    assert first.start == pytest.approx(0.7, abs=0.06)
    assert first.at - first.start <= 0.65
    # A steady 1100 Hz tone (not cadenced) and a 1000 Hz beep are not CNG.
    assert run(dsp.CngDetector(), tones.tone((1100.0,), 3.0)) == []
    assert run(dsp.CngDetector(), tones.beep(ms=500)) == []


# --- hang-up, end to end --------------------------------------------------------------------


def test_recording_stops_soon_after_dial_tone() -> None:
    caller = tones.tone((200.0, 400.0, 800.0), 3.0, level_dbfs=-20.0)
    x = mix(caller, tones.silence(0.3), tones.dial_tone(120.0))
    monitor = dsp.LineMonitor(hangup=HangupDetector(start=0.0, silence_seconds=6.0))
    fed = 0
    while monitor.caller_gone is None and fed < x.size:
        monitor.feed(x[fed : fed + 160])
        fed += 160
    gone = monitor.caller_gone
    assert gone is not None and gone.reason == "dial_tone_audio"
    assert gone.since == pytest.approx(3.3, abs=0.06)
    assert fed / 8000 - 3.3 <= 2.0  # never minutes of dial tone


def test_recording_stops_on_silence_and_busy() -> None:
    quiet = mix(tones.tone((300.0,), 1.0, level_dbfs=-20.0), tones.noise(10.0, level_dbfs=-60))
    monitor = dsp.LineMonitor(hangup=HangupDetector(start=0.0, silence_seconds=5.0))
    run(monitor, quiet)
    gone = monitor.caller_gone
    assert gone is not None and gone.reason == "silence"
    assert gone.at == pytest.approx(6.0, abs=0.05)
    busy = dsp.LineMonitor(hangup=HangupDetector(start=0.0))
    run(busy, mix(tones.silence(0.2), tones.busy_tone(5.0)))
    assert busy.caller_gone is not None and busy.caller_gone.reason == "busy_tone_audio"
    assert busy.caller_gone.at <= 2.3
