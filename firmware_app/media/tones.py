"""Telephone tones as int16 numpy arrays: DTMF, dial, busy, ringback, fax CNG, the voicemail
beep.

Frequencies from ITU-T Q.23 (DTMF), ITU-T E.180 supplement 2 (call-progress tones per
country), ETSI TR 101 041-2 (European ringing tone) and T.30 5.2.1 (CNG 1100 Hz, 0.5 s on /
3 s off). Levels are dBFS (0 dBFS: a full-scale sine). Used by tests, for the beep before
voicemail and for the ringback a caller hears while staff are rung; no I/O.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DIAL_FREQUENCIES",
    "DTMF_FREQUENCIES",
    "RATE",
    "beep",
    "busy_tone",
    "cng",
    "dial_tone",
    "dtmf",
    "noise",
    "ringback",
    "ringback_plan",
    "silence",
    "tone",
]

RATE: Final = 8000
Samples = npt.NDArray[np.int16]
Plan = Literal["na", "eu", "uk"]

# Q.23: rows 697/770/852/941 Hz, columns 1209/1336/1477/1633 Hz.
_ROWS: Final = (697.0, 770.0, 852.0, 941.0)
_COLS: Final = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD: Final = ("123A", "456B", "789C", "*0#D")
DTMF_FREQUENCIES: Final[dict[str, tuple[float, float]]] = {
    key: (_ROWS[r], _COLS[c]) for r, row in enumerate(_KEYPAD) for c, key in enumerate(row)
}

# E.180 supp. 2: North America dial 350+440, busy 480+620 0.5/0.5; most of Europe dial
# 425 continuous, busy 425 0.5/0.5 (CEPT); UK dial 350+450, busy 400 0.375/0.375.
_DIAL: Final[dict[str, tuple[float, ...]]] = {
    "na": (350.0, 440.0),
    "eu": (425.0,),
    "uk": (350.0, 450.0),
}
DIAL_FREQUENCIES: Final = _DIAL  # by tone plan
_BUSY: Final[dict[str, tuple[tuple[float, ...], float, float]]] = {
    "na": ((480.0, 620.0), 0.5, 0.5),
    "eu": ((425.0,), 0.5, 0.5),
    "uk": ((400.0,), 0.375, 0.375),
}

# Ringing tone ("ringback"), what a caller hears while the called phone rings:
# North America 440+480 Hz, 2 s on, 4 s off (E.180 supp. 2; the Bell System's precise tone
# plan); CEPT/ETSI 425 Hz, 1 s on, 4 s off (ETSI TR 101 041-2, E.180 supp. 2: most of
# Europe and many countries elsewhere); UK 400+450 Hz, 0.4 on 0.2 off 0.4 on 2.0 off (BT SIN
# 350, E.180 supp. 2; Ireland uses the same). Bursts as (on, off) pairs.
_RINGBACK: Final[dict[str, tuple[tuple[float, ...], tuple[tuple[float, float], ...]]]] = {
    "na": ((440.0, 480.0), ((2.0, 4.0),)),
    "eu": ((425.0,), ((1.0, 4.0),)),
    "uk": ((400.0, 450.0), ((0.4, 0.2), (0.4, 2.0))),
}
# ISO 3166 countries of the North American Numbering Plan (one tone plan) and those that
# use the UK's; every other country gets the CEPT tone.
_NANP: Final = frozenset(
    [
        "US",
        "CA",
        "PR",
        "VI",
        "GU",
        "AS",
        "MP",
        "AG",
        "AI",
        "BB",
        "BM",
        "BS",
        "DM",
        "DO",
        "GD",
        "JM",
        "KN",
        "KY",
        "LC",
        "MS",
        "SX",
        "TC",
        "TT",
        "VC",
        "VG",
    ]
)
_UK: Final = frozenset(["GB", "IE", "IM", "JE", "GG"])


def _amplitude(level_dbfs: float) -> float:
    return float(10.0 ** (level_dbfs / 20.0))


def _n(seconds: float, rate: int) -> int:
    return round(seconds * rate)


def _pcm(x: npt.NDArray[np.float64]) -> Samples:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def tone(
    freqs: tuple[float, ...],
    seconds: float,
    *,
    level_dbfs: float = -10.0,
    rate: int = RATE,
    phase: float = 0.0,
) -> Samples:
    """Sum of sines, each at `level_dbfs`."""
    t = np.arange(_n(seconds, rate)) / rate
    x = np.zeros_like(t)
    for f in freqs:
        x += _amplitude(level_dbfs) * np.sin(2 * np.pi * f * t + phase)
    return _pcm(x)


def silence(seconds: float, *, rate: int = RATE) -> Samples:
    return np.zeros(_n(seconds, rate), dtype=np.int16)


def noise(seconds: float, *, level_dbfs: float = -50.0, rate: int = RATE, seed: int = 0) -> Samples:
    """White noise with RMS `level_dbfs` (relative to a full-scale sine's RMS)."""
    rng = np.random.default_rng(seed)
    rms = _amplitude(level_dbfs) / np.sqrt(2.0)
    return _pcm(rng.normal(0.0, rms, _n(seconds, rate)))


def dtmf(
    digits: str,
    *,
    on_ms: int = 100,
    off_ms: int = 100,
    level_dbfs: float = -10.0,
    twist_db: float = 0.0,
    rate: int = RATE,
) -> Samples:
    """Digits as DTMF bursts, each followed by `off_ms` of silence.

    `twist_db`: how much louder the column (high) tone is than the row tone.
    """
    parts: list[Samples] = []
    t = np.arange(_n(on_ms / 1000, rate)) / rate
    for d in digits:
        if d not in DTMF_FREQUENCIES:
            raise ValueError(f"not a DTMF digit: {d!r} (use 0-9, *, #, A-D)")
        low, high = DTMF_FREQUENCIES[d]
        x = _amplitude(level_dbfs) * np.sin(2 * np.pi * low * t)
        x += _amplitude(level_dbfs + twist_db) * np.sin(2 * np.pi * high * t)
        parts.append(_pcm(x))
        parts.append(silence(off_ms / 1000, rate=rate))
    return np.concatenate(parts) if parts else silence(0.0)


def dial_tone(
    seconds: float, *, plan: Plan = "na", level_dbfs: float = -13.0, rate: int = RATE
) -> Samples:
    return tone(_DIAL[plan], seconds, level_dbfs=level_dbfs, rate=rate)


def _cadence(
    freqs: tuple[float, ...],
    on: float,
    off: float,
    seconds: float,
    level_dbfs: float,
    rate: int,
) -> Samples:
    period = np.concatenate(
        [tone(freqs, on, level_dbfs=level_dbfs, rate=rate), silence(off, rate=rate)]
    )
    reps = int(np.ceil(seconds / (on + off))) if seconds > 0 else 0
    return np.tile(period, max(reps, 0))[: _n(seconds, rate)]


def busy_tone(
    seconds: float, *, plan: Plan = "na", level_dbfs: float = -20.0, rate: int = RATE
) -> Samples:
    freqs, on, off = _BUSY[plan]
    return _cadence(freqs, on, off, seconds, level_dbfs, rate)


def ringback_plan(country: str) -> Plan:
    """The ringing tone plan of a country (ISO 3166 alpha-2, e.g. the business's country)."""
    code = country.strip().upper()
    if code in _NANP:
        return "na"
    if code in _UK:
        return "uk"
    return "eu"


def ringback(
    seconds: float | None = None,
    *,
    plan: Plan = "eu",
    level_dbfs: float = -20.0,
    rate: int = RATE,
) -> Samples:
    """The ringing tone of `plan`: one whole cadence when `seconds` is None (repeat it to go
    on), else that long. Each burst has 5 ms ramps, so it starts and stops without a click."""
    freqs, bursts = _RINGBACK[plan]
    ramp = _n(0.005, rate)
    parts: list[Samples] = []
    for on, off in bursts:
        x = tone(freqs, on, level_dbfs=level_dbfs, rate=rate).astype(np.float64)
        env = np.linspace(0.0, 1.0, ramp)
        x[:ramp] *= env
        x[-ramp:] *= env[::-1]
        parts.append(np.round(x).astype(np.int16))
        parts.append(silence(off, rate=rate))
    period = np.concatenate(parts)
    if seconds is None:
        return period
    reps = int(np.ceil(_n(seconds, rate) / period.size)) if seconds > 0 else 0
    return np.tile(period, reps)[: _n(seconds, rate)]


def cng(seconds: float, *, level_dbfs: float = -15.0, rate: int = RATE) -> Samples:
    """Fax calling tone: 1100 Hz, 0.5 s on, 3 s off (T.30 5.2.1)."""
    return _cadence((1100.0,), 0.5, 3.0, seconds, level_dbfs, rate)


def beep(
    *, freq: float = 1000.0, ms: int = 400, level_dbfs: float = -12.0, rate: int = RATE
) -> Samples:
    """The beep before voicemail, with 5 ms ramps so it does not click."""
    x = tone((freq,), ms / 1000, level_dbfs=level_dbfs, rate=rate).astype(np.float64)
    ramp = min(_n(0.005, rate), x.size // 2)
    if ramp:
        env = np.linspace(0.0, 1.0, ramp)
        x[:ramp] *= env
        x[-ramp:] *= env[::-1]
    return np.round(x).astype(np.int16)
