"""Sample codecs for modem audio: G.711 u-law/A-law, 8-bit linear, resampling, WAV files.

G.711 (ITU-T G.711, 1988, tables 1a/2a) as 256/65536-entry numpy tables built from the
segment rules (the same rules as the public-domain Sun `g711.c`); no `audioop` (deprecated
in Python 3.11, gone in 3.13). Resampling with soxr, WAV through soundfile. Pure functions
on bytes and arrays: no device I/O.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import soundfile as sf  # type: ignore[import-untyped]
import soxr  # type: ignore[import-untyped]

__all__ = [
    "CODECS",
    "Codec",
    "Samples",
    "alaw_decode",
    "alaw_encode",
    "decode",
    "encode",
    "read_wav",
    "resample",
    "to_telephone",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]

Codec = Literal["ulaw", "alaw", "u8", "s8", "s16le"]
CODECS: Final[tuple[Codec, ...]] = ("ulaw", "alaw", "u8", "s8", "s16le")
Samples = npt.NDArray[np.int16]

# G.711 u-law: 14-bit magnitude, bias 33 (132 in 16-bit units), 8 segments; A-law: 13-bit,
# 8 segments with segment 0 and 1 of equal step. Both codes are sent with bits inverted
# (u-law: all bits; A-law: even bits, XOR 0x55), G.711 clauses 3 and 4.
_ULAW_BIAS: Final = 0x84
_ULAW_CLIP: Final = 8159  # 14-bit magnitude limit


@functools.cache
def _ulaw_decode_table() -> Samples:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = code & 0x80
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


@functools.cache
def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # to 14 bits
    negative = pcm < 0
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(np.where(negative, -pcm, pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    # Segment: number of bits above the 6-bit first segment (0x3F, 0x7F, ... 0x1FFF ends).
    # Magnitudes at the clip level land past the last segment: the top code 0x7F.
    segment = np.clip(np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 5, 0, 8)
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


@functools.cache
def _alaw_decode_table() -> Samples:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    t = (code & 0x0F) << 4
    t = np.where(segment == 0, t + 8, t + 0x108)
    t = np.where(segment > 1, t << np.maximum(segment - 1, 0), t)
    return np.where(code & 0x80, t, -t).astype(np.int16)


@functools.cache
def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # to 13 bits
    positive = pcm >= 0
    mask = np.where(positive, 0xD5, 0x55)
    magnitude = np.where(positive, pcm, -pcm - 1)
    # Segment ends 0x1F, 0x3F, ... 0xFFF: segment = bits above 5, capped at 7 (clip above).
    bits = np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) + 1
    segment = np.clip(bits - 5, 0, 8)
    shift = np.where(segment < 2, 1, segment)
    code = (segment << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _as_int16(samples: npt.ArrayLike) -> Samples:
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        return arr.astype(np.int16, copy=False)
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.round(arr * 32768.0)
    out: Samples = np.clip(arr, -32768, 32767).astype(np.int16)
    return out


def ulaw_decode(data: bytes) -> Samples:
    return _ulaw_decode_table()[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(samples: npt.ArrayLike) -> bytes:
    pcm = _as_int16(samples).astype(np.int32) + 32768
    return _ulaw_encode_table()[pcm].tobytes()


def alaw_decode(data: bytes) -> Samples:
    return _alaw_decode_table()[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    pcm = _as_int16(samples).astype(np.int32) + 32768
    return _alaw_encode_table()[pcm].tobytes()


def decode(data: bytes, codec: Codec) -> Samples:
    """Modem bytes (format from `protocol.voice.VoiceFormat.codec`) as 16-bit samples.

    `u8`: unsigned 8-bit, 0x80 is zero (USR 5637 `8-BIT LINEAR`, CX93001 `UNSIGNED PCM`);
    `s8`: two's complement 8-bit; `s16le`: little-endian 16-bit (an odd last byte is dropped).
    """
    if codec == "ulaw":
        return ulaw_decode(data)
    if codec == "alaw":
        return alaw_decode(data)
    if codec == "u8":
        return ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if codec == "s8":
        return (np.frombuffer(data, dtype=np.int8).astype(np.int16) << 8).astype(np.int16)
    if codec == "s16le":
        return np.frombuffer(data[: len(data) & ~1], dtype="<i2").astype(np.int16)
    raise ValueError(f"unknown codec {codec!r}: use one of {', '.join(CODECS)}")


def encode(samples: npt.ArrayLike, codec: Codec) -> bytes:
    """16-bit samples (or floats in -1..1) as modem bytes; 8-bit linear rounds to nearest."""
    pcm = _as_int16(samples)
    if codec == "ulaw":
        return ulaw_encode(pcm)
    if codec == "alaw":
        return alaw_encode(pcm)
    if codec in ("u8", "s8"):
        wide: npt.NDArray[np.int32] = np.clip((pcm.astype(np.int32) + 128) >> 8, -128, 127)
        if codec == "u8":
            return bytes((wide + 128).astype(np.uint8).tobytes())
        return bytes(wide.astype(np.int8).tobytes())
    if codec == "s16le":
        return bytes(pcm.astype("<i2").tobytes())
    raise ValueError(f"unknown codec {codec!r}: use one of {', '.join(CODECS)}")


def resample(samples: npt.ArrayLike, from_rate: int, to_rate: int) -> Samples:
    """Mono samples from one rate to another (soxr, high quality); int16 in and out."""
    pcm = _as_int16(samples)
    if from_rate == to_rate or pcm.size == 0:
        return pcm.copy()
    out = soxr.resample(pcm.astype(np.float32) / 32768.0, from_rate, to_rate, quality="HQ")
    return _as_int16(np.asarray(out, dtype=np.float32))


def read_wav(source: bytes | str | Path) -> tuple[Samples, int]:
    """Any file libsndfile reads (WAV, FLAC, OGG, MP3) as mono int16 samples and its rate."""
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    data, rate = sf.read(handle, dtype="float32", always_2d=True)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return _as_int16(mono), int(rate)


def write_wav(samples: npt.ArrayLike, rate: int) -> bytes:
    """Mono 16-bit PCM WAV bytes."""
    out = io.BytesIO()
    sf.write(out, _as_int16(samples), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def to_telephone(source: bytes | str | Path, rate: int = 8000) -> Samples:
    """An uploaded greeting (any rate, mono or stereo) as int16 mono at the line's rate."""
    samples, file_rate = read_wav(source)
    return resample(samples, file_rate, rate)
