"""Audio helpers for media files: for now, turning a voicemail recording into a small MP3.

Uses soundfile (libsndfile 1.1+ writes MP3 through LAME). Pure functions on bytes: no store,
no ALSA. Later audio work (u-law, A-law, resampling, greetings) extends this module.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf  # type: ignore[import-untyped]


def encode_mp3(data: bytes) -> bytes:
    """Any file libsndfile reads (WAV, FLAC, ...) as mono MP3 at its own sample rate.

    Raises `soundfile.LibsndfileError` (a RuntimeError) when the input cannot be read or
    the library has no MP3 encoder.
    """
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    out = io.BytesIO()
    sf.write(out, np.ascontiguousarray(mono), rate, format="MP3")
    return out.getvalue()
