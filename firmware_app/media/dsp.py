"""Streaming detectors for 8 kHz telephone audio: DTMF, silence, dial tone, busy tone, fax CNG.

Feed int16 frames of any length, get events stamped with stream time (samples / rate);
nothing reads a clock or a device. DTMF follows ITU-T Q.24 (Goertzel filters at the Q.23
frequencies, twist and energy checks, a held key reported once); tones follow ITU-T E.180
supp. 2 and T.30 5.2.1. Thresholds and why: docs/voice.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from firmware_app.protocol.voice import Hangup, HangupDetector

__all__ = [
    "BusyTone",
    "BusyToneDetector",
    "CngDetector",
    "DialTone",
    "DialToneDetector",
    "DtmfDetector",
    "DtmfDigit",
    "FaxCalling",
    "LineMonitor",
    "Silence",
    "SilenceDetector",
    "SoundResumed",
    "dbfs",
    "goertzel_power",
]

Samples = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]

_FLOOR_DB: Final = -120.0


# --- building blocks ------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _basis(n: int, freqs: tuple[float, ...], rate: int) -> tuple[Floats, Floats]:
    k = np.arange(n, dtype=np.float64)[:, None]
    w = 2.0 * np.pi * np.asarray(freqs, dtype=np.float64)[None, :] / rate
    return np.cos(w * k), np.sin(w * k)


def goertzel_power(blocks: Floats, freqs: tuple[float, ...], rate: int) -> Floats:
    """Goertzel filter output |X(f)|**2 for each block (rows) and frequency (columns).

    Computed as the single-bin DFT the Goertzel recursion evaluates (same value, any f, not
    only bin centres), as one matrix product so a block costs no Python loop. Scaled so a
    sine of amplitude A at f gives A**2 / 2, its mean power, which compares directly with a
    block's mean power `mean(x**2)`.
    """
    n = blocks.shape[1]
    cos, sin = _basis(n, tuple(freqs), rate)
    re = blocks @ cos
    im = blocks @ sin
    return np.asarray(2.0 * (re * re + im * im) / (n * n), dtype=np.float64)


def _to_float(samples: npt.ArrayLike) -> Floats:
    arr = np.asarray(samples)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64)
    return arr.astype(np.float64) / 32768.0


def dbfs(samples: npt.ArrayLike) -> float:
    """RMS level in dBFS, 0 dBFS being a full-scale sine (AES17); -120 for digital silence."""
    x = _to_float(samples)
    if x.size == 0:
        return _FLOOR_DB
    p = float(np.mean(x * x))
    return _power_db(p)


def _power_db(p: float) -> float:
    return 10.0 * math.log10(p / 0.5) if p > 0.5e-12 else _FLOOR_DB


class _Blocks:
    """Cuts a stream into fixed blocks, keeping the remainder for the next feed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rest = np.zeros(0, dtype=np.float64)
        self.samples_done = 0  # samples in blocks already handed out

    def take(self, samples: npt.ArrayLike) -> Floats:
        data = np.concatenate([self._rest, _to_float(samples).ravel()])
        count = data.size // self.size
        used = count * self.size
        self._rest = data[used:]
        return data[:used].reshape(count, self.size)


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfDigit:
    """A key press; `start` when the tone began, `at` when it was recognised (seconds)."""

    digit: str
    start: float
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    """No frame above the threshold since `start`; reported once per quiet spell at `at`."""

    start: float
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SoundResumed:
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DialTone:
    """Continuous dial tone; `tone` names the frequencies (`350+440`, `425`, ...)."""

    tone: str
    start: float
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BusyTone:
    """A cadenced busy / reorder tone."""

    tone: str
    start: float
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FaxCalling:
    """T.30 CNG (1100 Hz burst): a fax machine is calling."""

    start: float
    at: float


Detection = DtmfDigit | Silence | SoundResumed | DialTone | BusyTone | FaxCalling


# --- DTMF -----------------------------------------------------------------------------------

_ROWS: Final = (697.0, 770.0, 852.0, 941.0)
_COLS: Final = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYS: Final = ("123A", "456B", "789C", "*0#D")


def _db(ratio_db: float) -> float:
    return float(10.0 ** (ratio_db / 10.0))


class DtmfDetector:
    """Goertzel DTMF receiver (Q.23 frequencies, Q.24 acceptance).

    Blocks of 102 samples (12.75 ms at 8 kHz, the block SpanDSP's `dtmf.c` uses: short
    enough for 40 ms tones; rows 73-89 Hz apart are told apart by the relative-peak check).
    A block holds a digit when:
    each tone is above `min_level_dbfs`; the louder row beats the other rows and the
    louder column the other columns by `peak_db`; the column is at most
    `reverse_twist_db` louder and at most `normal_twist_db` softer than the row (Q.24:
    lines lose more at high frequency); and the two tones carry `min_ratio` of the block's
    energy (speech spreads it). `min_blocks` agreeing blocks in a row make a press
    (2 = 25.5 ms: any 40 ms tone contains two whole blocks); it ends after `release_blocks`
    blocks without it, so a held key is one digit and a one-block dropout is not a new press.
    """

    def __init__(
        self,
        *,
        rate: int = 8000,
        block: int = 102,
        min_level_dbfs: float = -36.0,
        peak_db: float = 6.0,
        normal_twist_db: float = 8.0,
        reverse_twist_db: float = 6.0,
        min_ratio: float = 0.7,
        min_blocks: int = 2,
        release_blocks: int = 2,
    ) -> None:
        self.rate = rate
        self._blocks = _Blocks(block if rate == 8000 else round(block * rate / 8000))
        self._min_power = 0.5 * 10.0 ** (min_level_dbfs / 10.0)
        self._peak = _db(peak_db)
        self._normal = _db(normal_twist_db)
        self._reverse = _db(reverse_twist_db)
        self._min_ratio = min_ratio
        self._min_blocks = min_blocks
        self._release_blocks = release_blocks
        self._candidate: str | None = None
        self._candidate_count = 0
        self._candidate_start = 0.0
        self._current: str | None = None
        self._misses = 0

    def classify(self, blocks: Floats) -> list[str | None]:
        """The digit each block holds, or None."""
        if blocks.shape[0] == 0:
            return []
        p = goertzel_power(blocks, _ROWS + _COLS, self.rate)
        energy = np.mean(blocks * blocks, axis=1)
        rows, cols = p[:, :4], p[:, 4:]
        r = np.argmax(rows, axis=1)
        c = np.argmax(cols, axis=1)
        idx = np.arange(blocks.shape[0])
        rp, cp = rows[idx, r], cols[idx, c]
        # Second-strongest of each group, for the relative peak check.
        rows2 = np.sort(rows, axis=1)[:, -2]
        cols2 = np.sort(cols, axis=1)[:, -2]
        ok = (
            (rp >= self._min_power)
            & (cp >= self._min_power)
            & (cp <= rp * self._reverse)
            & (rp <= cp * self._normal)
            & (rows2 * self._peak <= rp)
            & (cols2 * self._peak <= cp)
            & (rp + cp >= self._min_ratio * energy)
        )
        return [_KEYS[r[i]][c[i]] if ok[i] else None for i in range(blocks.shape[0])]

    def feed(self, samples: npt.ArrayLike) -> list[DtmfDigit]:
        blocks = self._blocks.take(samples)
        size = self._blocks.size
        events: list[DtmfDigit] = []
        for label in self.classify(blocks):
            start_pos = self._blocks.samples_done
            self._blocks.samples_done += size
            now = self._blocks.samples_done / self.rate
            if label is not None and label == self._candidate:
                self._candidate_count += 1
            else:
                self._candidate = label
                self._candidate_count = 1 if label is not None else 0
                self._candidate_start = start_pos / self.rate
            if self._current is not None:
                if label == self._current:
                    self._misses = 0
                    continue
                self._misses += 1
                if self._misses < self._release_blocks and label is None:
                    continue
                self._current = None
                self._misses = 0
            if label is not None and self._candidate_count >= self._min_blocks:
                self._current = label
                self._misses = 0
                events.append(DtmfDigit(digit=label, start=self._candidate_start, at=now))
        return events


# --- silence --------------------------------------------------------------------------------


class SilenceDetector:
    """Reports `Silence` once no 20 ms frame has been above `threshold_dbfs` for `seconds`,
    and `SoundResumed` when a loud frame follows. Default -45 dBFS: meant to sit above line
    hiss and below quiet speech (about -35 dBFS); check it against real line recordings."""

    def __init__(
        self,
        *,
        rate: int = 8000,
        threshold_dbfs: float = -45.0,
        seconds: float = 5.0,
        frame_ms: int = 20,
    ) -> None:
        self.rate = rate
        self.threshold_dbfs = threshold_dbfs
        self.seconds = seconds
        self._blocks = _Blocks(max(1, rate * frame_ms // 1000))
        self._quiet_since = 0.0
        self._reported = False
        self.levels: list[tuple[float, float]] = []  # (frame end, dBFS) of the last feed

    def feed(self, samples: npt.ArrayLike) -> list[Silence | SoundResumed]:
        blocks = self._blocks.take(samples)
        energy = np.mean(blocks * blocks, axis=1) if blocks.size else np.zeros(0)
        events: list[Silence | SoundResumed] = []
        self.levels = []
        for p in energy:
            self._blocks.samples_done += self._blocks.size
            now = self._blocks.samples_done / self.rate
            level = _power_db(float(p))
            self.levels.append((now, level))
            if level > self.threshold_dbfs:
                if self._reported:
                    events.append(SoundResumed(at=now))
                self._reported = False
                self._quiet_since = now
            elif not self._reported and now - self._quiet_since >= self.seconds:
                self._reported = True
                events.append(Silence(start=self._quiet_since, at=now))
        return events


# --- call-progress tones --------------------------------------------------------------------

# E.180 supp. 2: dial 350+440 (North America), 350+450 (UK), 425 (CEPT), 400/440 (some);
# busy/reorder 480+620 (NA), 425 (CEPT), 400 (UK), 440 (FR).
_DIAL_SETS: Final[tuple[tuple[float, ...], ...]] = (
    (350.0, 440.0),
    (350.0, 450.0),
    (425.0,),
    (400.0,),
    (440.0,),
)
_BUSY_SETS: Final[tuple[tuple[float, ...], ...]] = (
    (480.0, 620.0),
    (425.0,),
    (400.0,),
    (440.0,),
)


def _name(freqs: tuple[float, ...]) -> str:
    return "+".join(str(int(f)) for f in freqs)


class _ToneFrames:
    """Per 50 ms frame: which of `sets` is on (its tones hold `min_ratio` of the energy, each
    tone at least `min_share`, the frame above `min_level_dbfs`), else None. 50 ms gives
    20 Hz resolution: 425 Hz is told from 440 Hz, and busy cadences (>= 250 ms) are resolved."""

    def __init__(
        self,
        sets: tuple[tuple[float, ...], ...],
        *,
        rate: int,
        frame_ms: int = 50,
        min_level_dbfs: float = -40.0,
        min_ratio: float = 0.7,
        min_share: float = 0.15,
    ) -> None:
        self.rate = rate
        self.sets = sets
        self.freqs = tuple(sorted({f for s in sets for f in s}))
        self._index = [tuple(self.freqs.index(f) for f in s) for s in sets]
        self.blocks = _Blocks(max(1, rate * frame_ms // 1000))
        self.frame_seconds = self.blocks.size / rate
        self._min_power = 0.5 * 10.0 ** (min_level_dbfs / 10.0)
        self._min_ratio = min_ratio
        self._min_share = min_share

    def frames(self, samples: npt.ArrayLike) -> list[tuple[float, int | None]]:
        blocks = self.blocks.take(samples)
        if blocks.shape[0] == 0:
            return []
        p = goertzel_power(blocks, self.freqs, self.rate)
        energy = np.mean(blocks * blocks, axis=1)
        out: list[tuple[float, int | None]] = []
        for i in range(blocks.shape[0]):
            self.blocks.samples_done += self.blocks.size
            now = self.blocks.samples_done / self.rate
            found: int | None = None
            e = energy[i]
            if e >= self._min_power:
                best = 0.0
                for k, idx in enumerate(self._index):
                    parts = [p[i, j] for j in idx]
                    total = sum(parts)
                    if (
                        total >= self._min_ratio * e
                        and min(parts) >= self._min_share * e
                        and total > best
                    ):
                        best, found = total, k
            out.append((now, found))
        return out


class DialToneDetector:
    """Dial tone: one tone set on without a break for `seconds` (default 1.5 s: longer
    than any busy/ringback burst, short enough that a recording ends within about 2 s of
    the tone starting). One 50 ms dropout is bridged. Reported once per tone."""

    def __init__(self, *, rate: int = 8000, seconds: float = 1.5, min_level_dbfs: float = -40.0):
        self._frames = _ToneFrames(_DIAL_SETS, rate=rate, min_level_dbfs=min_level_dbfs)
        self.seconds = seconds
        self._set: int | None = None
        self._start = 0.0
        self._gap = 0
        self._reported = False

    def feed(self, samples: npt.ArrayLike) -> list[DialTone]:
        events: list[DialTone] = []
        step = self._frames.frame_seconds
        for now, found in self._frames.frames(samples):
            if found is not None and found == self._set:
                self._gap = 0
            elif found is None and self._set is not None and self._gap == 0:
                self._gap = 1  # bridge one frame
                continue
            else:
                self._set = found
                self._start = now - step
                self._gap = 0
                self._reported = False
            if self._set is not None and not self._reported and now - self._start >= self.seconds:
                self._reported = True
                tone = _name(_DIAL_SETS[self._set])
                events.append(DialTone(tone=tone, start=self._start, at=now))
        return events


class BusyToneDetector:
    """Busy / reorder: `cycles` bursts of one tone set, each `on` within `on_range` seconds,
    separated by gaps within `off_range` (NA busy 0.5/0.5, reorder 0.25/0.25, CEPT 425 Hz
    0.5/0.5, UK 0.375/0.375; E.180 supp. 2). A burst is judged when it ends, so NA busy is
    reported about 1.5 s after it starts. Ringback (1-2 s on) does not match."""

    def __init__(
        self,
        *,
        rate: int = 8000,
        cycles: int = 2,
        on_range: tuple[float, float] = (0.18, 0.7),
        off_range: tuple[float, float] = (0.18, 0.7),
        min_level_dbfs: float = -40.0,
    ) -> None:
        self._frames = _ToneFrames(_BUSY_SETS, rate=rate, min_level_dbfs=min_level_dbfs)
        self.cycles = cycles
        self.on_range = on_range
        self.off_range = off_range
        self._state: int | None = None  # the set currently on
        self._run_start = 0.0
        self._bursts: list[tuple[int, float, float]] = []  # (set, start, end)
        self._reported = False

    def feed(self, samples: npt.ArrayLike) -> list[BusyTone]:
        events: list[BusyTone] = []
        step = self._frames.frame_seconds
        for now, found in self._frames.frames(samples):
            frame_start = now - step
            if found == self._state:
                if found is None and self._bursts:
                    gap = now - self._bursts[-1][2]
                    if gap > self.off_range[1]:
                        self._bursts.clear()
                        self._reported = False
                continue
            if self._state is not None:  # a burst ended at frame_start
                burst = (self._state, self._run_start, frame_start)
                self._burst_ended(burst, events, frame_start)
            self._state = found
            self._run_start = frame_start
        return events

    def _burst_ended(
        self, burst: tuple[int, float, float], events: list[BusyTone], now: float
    ) -> None:
        kind, start, end = burst
        length = end - start
        lo, hi = self.on_range
        if not lo <= length <= hi:
            self._bursts.clear()
            self._reported = False
            return
        if self._bursts:
            prev_kind, _, prev_end = self._bursts[-1]
            gap = start - prev_end
            if prev_kind != kind or not self.off_range[0] <= gap <= self.off_range[1]:
                self._bursts.clear()
        self._bursts.append(burst)
        if len(self._bursts) >= self.cycles and not self._reported:
            self._reported = True
            tone = _name(_BUSY_SETS[kind])
            events.append(BusyTone(tone=tone, start=self._bursts[0][1], at=now))


class CngDetector:
    """Fax calling tone: an 1100 Hz burst of `on_range` seconds (T.30: 0.5 s on, 3 s off),
    reported when the burst ends (about 0.55 s after it starts). Reported once per burst."""

    def __init__(
        self,
        *,
        rate: int = 8000,
        on_range: tuple[float, float] = (0.35, 0.8),
        min_level_dbfs: float = -43.0,
    ) -> None:
        self._frames = _ToneFrames(((1100.0,),), rate=rate, min_level_dbfs=min_level_dbfs)
        self.on_range = on_range
        self._on = False
        self._start = 0.0

    def feed(self, samples: npt.ArrayLike) -> list[FaxCalling]:
        events: list[FaxCalling] = []
        step = self._frames.frame_seconds
        for now, found in self._frames.frames(samples):
            on = found is not None
            if on and not self._on:
                self._start = now - step
            elif self._on and not on:
                end = now - step
                if self.on_range[0] <= end - self._start <= self.on_range[1]:
                    events.append(FaxCalling(start=self._start, at=now))
            self._on = on
        return events


# --- all of them ----------------------------------------------------------------------------


class LineMonitor:
    """Runs every detector over one call's audio and feeds an optional `HangupDetector`
    (levels per 20 ms frame, dial/busy tone found in the audio) in stream time: create the
    detector with `start=0.0`. `feed` returns the detections in time order."""

    def __init__(
        self,
        *,
        rate: int = 8000,
        hangup: HangupDetector | None = None,
        silence_dbfs: float = -45.0,
        silence_seconds: float = 5.0,
    ) -> None:
        self.rate = rate
        self.hangup = hangup
        self.dtmf = DtmfDetector(rate=rate)
        self.silence = SilenceDetector(
            rate=rate, threshold_dbfs=silence_dbfs, seconds=silence_seconds
        )
        self.dial = DialToneDetector(rate=rate)
        self.busy = BusyToneDetector(rate=rate)
        self.cng = CngDetector(rate=rate)

    def feed(self, samples: npt.ArrayLike) -> list[Detection]:
        pcm = np.asarray(samples)
        found: list[Detection] = []
        found += self.dtmf.feed(pcm)
        found += self.silence.feed(pcm)
        dial = self.dial.feed(pcm)
        busy = self.busy.feed(pcm)
        found += dial
        found += busy
        found += self.cng.feed(pcm)
        found.sort(key=lambda ev: ev.at)
        if self.hangup is not None:
            for at, level in self.silence.levels:
                self.hangup.level(level, at)
            for d in dial:
                self.hangup.tone("dial_tone", d.at, d.start)
            for b in busy:
                self.hangup.tone("busy", b.at, b.start)
        return found

    @property
    def caller_gone(self) -> Hangup | None:
        return self.hangup.result if self.hangup is not None else None
