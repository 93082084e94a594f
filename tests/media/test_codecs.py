"""Codecs: G.711 against reference values (and the whole tables against the stdlib's
deprecated audioop where it still exists), 8-bit linear, soxr resampling, WAV files."""

from __future__ import annotations

import importlib
import io
import warnings
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf  # type: ignore[import-untyped]

from firmware_app.media import codecs, tones
from firmware_app.media.audio import encode_mp3

ALL_CODES = bytes(range(256))
ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)


def _audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:  # Python 3.13+
            return None


# G.711 reference points (ITU-T G.711 tables 1a/2a, in 16-bit units as Sun g711.c gives).
@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0x00, -32124),
        (0x80, 32124),
        (0xFF, 0),
        (0x7F, 0),
        (0xFE, 8),
        (0x7E, -8),
        (0xF0, 120),
        (0x70, -120),
        (0xEF, 132),
        (0x8F, 16764),
        (0x0F, -16764),
    ],
)
def test_ulaw_decode_reference(code: int, value: int) -> None:
    assert int(codecs.ulaw_decode(bytes([code]))[0]) == value


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0xD5, 8),
        (0x55, -8),
        (0xAA, 32256),
        (0x2A, -32256),
        (0xD4, 24),
        (0xC5, 264),
        (0xFA, 1008),
        (0x80, 5504),
    ],
)
def test_alaw_decode_reference(code: int, value: int) -> None:
    assert int(codecs.alaw_decode(bytes([code]))[0]) == value


@pytest.mark.parametrize(
    ("pcm", "ulaw", "alaw"),
    [
        (0, 0xFF, 0xD5),
        (-1, 0x7E, 0x55),
        (32767, 0x80, 0xAA),
        (-32768, 0x00, 0x2A),
        (8, 0xFE, 0xD5),
        (1000, 0xCE, 0xFA),
    ],
)
def test_encode_reference(pcm: int, ulaw: int, alaw: int) -> None:
    assert codecs.ulaw_encode(np.array([pcm], dtype=np.int16)) == bytes([ulaw])
    assert codecs.alaw_encode(np.array([pcm], dtype=np.int16)) == bytes([alaw])


def test_g711_whole_tables_match_reference() -> None:
    ref = _audioop()
    if ref is None:
        pytest.skip("audioop is gone from this Python")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        u_dec = np.frombuffer(ref.ulaw2lin(ALL_CODES, 2), dtype="<i2")
        a_dec = np.frombuffer(ref.alaw2lin(ALL_CODES, 2), dtype="<i2")
        u_enc = ref.lin2ulaw(ALL_PCM.tobytes(), 2)
        a_enc = ref.lin2alaw(ALL_PCM.tobytes(), 2)
    assert np.array_equal(codecs.ulaw_decode(ALL_CODES), u_dec)
    assert np.array_equal(codecs.alaw_decode(ALL_CODES), a_dec)
    assert codecs.ulaw_encode(ALL_PCM) == u_enc
    assert codecs.alaw_encode(ALL_PCM) == a_enc


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_g711_round_trips(codec: codecs.Codec) -> None:
    decoded = codecs.decode(ALL_CODES, codec)
    again = codecs.encode(decoded, codec)
    # Every code survives, except u-law's negative zero (0x7F) which encodes as 0xFF.
    diff = [c for c in range(256) if again[c] != c]
    assert diff == ([0x7F] if codec == "ulaw" else [])
    # A -10 dBFS sine keeps G.711's ~38 dB signal-to-distortion ratio.
    x = tones.tone((1004.0,), 1.0, level_dbfs=-10.0)
    y = codecs.decode(codecs.encode(x, codec), codec)
    err = (y.astype(np.float64) - x) ** 2
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(err))
    assert snr > 33


def test_linear_8bit_and_16bit() -> None:
    pcm = np.array([-32768, -256, -129, -128, 0, 127, 128, 256, 32767], dtype=np.int16)
    assert list(codecs.encode(pcm, "u8")) == [0, 127, 127, 128, 128, 128, 129, 129, 255]
    assert list(codecs.decode(bytes([0, 128, 255]), "u8")) == [-32768, 0, 32512]
    assert list(codecs.decode(bytes([0x80, 0, 0x7F]), "s8")) == [-32768, 0, 32512]
    assert list(np.frombuffer(codecs.encode(pcm[:3], "s8"), dtype=np.int8)) == [-128, -1, -1]
    assert codecs.decode(codecs.encode(pcm, "s16le"), "s16le").tolist() == pcm.tolist()
    assert codecs.decode(b"\x01\x00\x02", "s16le").tolist() == [1]  # odd byte dropped
    floats = np.array([0.0, 0.5, -1.0, 2.0])
    assert codecs.decode(codecs.encode(floats, "s16le"), "s16le").tolist() == [
        0,
        16384,
        -32768,
        32767,
    ]
    with pytest.raises(ValueError, match="unknown codec"):
        codecs.decode(b"", "gsm")  # type: ignore[arg-type]


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (44100, 8000),
        (48000, 8000),
        (22050, 8000),
        (16000, 8000),
        (8000, 16000),
        (8000, 44100),
        (8000, 48000),
    ],
)
def test_resample_keeps_a_1khz_tone(src: int, dst: int) -> None:
    x = tones.tone((1000.0,), 1.0, level_dbfs=-6.0, rate=src)
    y = codecs.resample(x, src, dst)
    assert y.dtype == np.int16
    assert abs(y.size - dst) <= 2
    assert abs(_peak_hz(y, dst) - 1000.0) <= 2.0
    level = 20 * np.log10(np.sqrt(np.mean((y[200:-200] / 32768.0) ** 2)) * np.sqrt(2))
    assert level == pytest.approx(-6.0, abs=0.3)


def test_resample_same_rate_and_empty() -> None:
    x = np.array([1, 2, 3], dtype=np.int16)
    assert codecs.resample(x, 8000, 8000).tolist() == [1, 2, 3]
    assert codecs.resample(np.zeros(0, dtype=np.int16), 44100, 8000).size == 0


def test_wav_round_trip_and_greeting_upload() -> None:
    x = tones.dtmf("123", level_dbfs=-12)
    data = codecs.write_wav(x, 8000)
    back, rate = codecs.read_wav(data)
    assert rate == 8000 and np.array_equal(back, x)
    info = sf.info(io.BytesIO(data))
    assert (info.channels, info.subtype) == (1, "PCM_16")
    # A stereo 44.1 kHz upload becomes 8 kHz mono with the tone where it was.
    t = tones.tone((440.0,), 2.0, level_dbfs=-6.0, rate=44100)
    stereo = np.stack([t, t], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo, 44100, format="WAV", subtype="PCM_16")
    line = codecs.to_telephone(buf.getvalue())
    assert abs(line.size - 16000) <= 2
    assert abs(_peak_hz(line, 8000) - 440.0) <= 2.0


def test_mp3_helper_still_works() -> None:
    mp3 = encode_mp3(codecs.write_wav(tones.beep(), 8000))
    assert len(mp3) > 100
