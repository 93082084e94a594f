"""Analog voice modem audio (ITU-T V.253 / IS-101): format choice, DLE stream, hang-up decision.

`choose_format` reads the `AT+VSM=?` answer; `DleDecoder` turns what the modem sends in the
voice receive/transmit/duplex states into `Audio`, `Dtmf`, `Tone`, `End` events; `escape`/`chunks`
build what we send; `HangupDetector` decides when the caller is gone. Pure: no I/O, no
clock (time is passed in), no numpy; nothing the modem sends raises here.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from firmware_app.protocol.at import NEED_DATA, _NeedData, unquote
from firmware_app.protocol.errors import LocalProtocolError

__all__ = [
    "CAN",
    "DLE",
    "ETX",
    "NEED_DATA",
    "QUIRKS",
    "Audio",
    "Chunk",
    "DleDecoder",
    "Dtmf",
    "End",
    "Flow",
    "Hangup",
    "HangupDetector",
    "Tone",
    "UnknownDle",
    "VoiceEvent",
    "VoiceFormat",
    "VoiceQuirks",
    "VsmOption",
    "abort_play",
    "choose_format",
    "chunks",
    "duplex_commands",
    "end_duplex",
    "end_play",
    "escape",
    "ifc_offers",
    "parse_dtmf_urc",
    "parse_ifc",
    "parse_vsm_options",
    "quirks_for",
    "record_commands",
    "stop_record",
    "unescape",
]

DLE: Final = 0x10
ETX: Final = 0x03
CAN: Final = 0x18
SUB: Final = 0x1A

Codec = Literal["ulaw", "alaw", "u8", "s8", "s16le"]

# --- format choice (V.253 10.1.8 +VSM) ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class VsmOption:
    """One line of the `AT+VSM=?` answer: `<cmid>,"<name>",<bps>,<tm>,(<rates>),...`.

    `codec` is what we make of the name (None: a format we do not decode, e.g. ADPCM);
    `rates` are the sampling rates offered, ranges kept as (low, high) pairs.
    """

    cmid: int
    name: str
    bits: int | None
    codec: Codec | None
    rates: tuple[tuple[int, int], ...]
    line: str

    def supports(self, rate: int) -> bool:
        return any(lo <= rate <= hi for lo, hi in self.rates)


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceFormat:
    """The format we ask for: send `command` (`AT+VSM=131,8000`), decode with `codec`."""

    cmid: int
    name: str
    codec: Codec
    rate: int
    command: str

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.codec == "s16le" else 1

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.bytes_per_sample


# Preference: G.711 u-law first (what the telephone network carries: no conversion loss),
# then A-law, 8-bit unsigned linear, 16-bit linear (twice the serial bandwidth), 8-bit signed.
_PREFERENCE: Final[tuple[Codec, ...]] = ("ulaw", "alaw", "u8", "s16le", "s8")

_NAME_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"(?:\bU|MU|\u00b5|\u03bc)[- ]?LAW|ULAW|G\.?711U|PCMU"), "ulaw"),
    (re.compile(r"\bA[- ]?LAW|ALAW|G\.?711A|PCMA"), "alaw"),
    (re.compile(r"ADPCM|CELP|GSM|G\.?72"), "skip"),
    (re.compile(r"UNSIGNED"), "u8"),
    (re.compile(r"SIGNED"), "s8"),
    (re.compile(r"16[- ]?BIT"), "s16le"),
    (re.compile(r"8[- ]?BIT|LINEAR|PCM"), "u8"),
)
_CODECS: Final[dict[str, Codec]] = {c: c for c in _PREFERENCE}


def _codec_for(name: str, bits: int | None) -> Codec | None:
    """Codec from a +VSM name: CX93001 `SIGNED PCM`/`UNSIGNED PCM`/`ULAW`/`ALAW`, USR5637
    `8-BIT LINEAR`/`16-BIT LINEAR`/`8-BIT ALAW`/`8-BIT ULAW` (REFERENCE.md 1). 8-bit linear
    without a sign word is unsigned (offset 128), as the USR 5637 records it."""
    upper = name.upper()
    for pattern, found in _NAME_RULES:
        if not pattern.search(upper):
            continue
        codec = _CODECS.get(found)
        if codec in ("u8", "s8") and bits == 16:
            return "s16le"
        if codec == "s16le" and bits is not None and bits != 16:
            return None
        return codec
    return None


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


def _rates(field: str) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for part in field.strip().strip("()").split(","):
        m = _RANGE.match(part)
        if m:
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) else lo
            out.append((min(lo, hi), max(lo, hi)))
    return tuple(out)


def _split_top(text: str) -> list[str]:
    """Split at commas outside quotes and parentheses."""
    fields: list[str] = []
    depth = 0
    quoted = False
    cur: list[str] = []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and ch == ",":
            fields.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    fields.append("".join(cur).strip())
    return fields


def parse_vsm_options(lines: Iterable[str]) -> list[VsmOption]:
    """The `AT+VSM=?` answer lines as options; lines that are not options are skipped.

    V.253 10.1.8 form: `<cmid>,<name>,<bps>,<tm>,<vsr>,<sds>,<sel>` with `<vsr>` a list or
    range in parentheses, e.g. `131,"8-BIT ULAW",8,0,(8000),(0),(0)`. Seen variations: a
    `+VSM:` prefix, bare rates (`8000`), ranges (`(7200-11025)`), and the short IS-101 form
    `<cmid>,"<name>",(<rates>)` (vgetty `voice/libvoice` notes). A line without any rate
    is taken as offering 8000 Hz only (the V.253 default rate).
    """
    out: list[VsmOption] = []
    for raw in lines:
        line = raw.strip()
        if line.upper().startswith("+VSM:"):
            line = line[5:].strip()
        fields = _split_top(line)
        if len(fields) < 2 or not fields[0].isdigit():
            continue
        name = unquote(fields[1]).strip()
        bits: int | None = None
        if len(fields) >= 3 and fields[2].isdigit():
            bits = int(fields[2])
        rates: tuple[tuple[int, int], ...] = ()
        if len(fields) >= 5:
            rates = _rates(fields[4])
        if not rates:
            for f in fields[2:]:
                cand = _rates(f)
                if cand and all(lo >= 1000 for lo, _ in cand):
                    rates = cand
                    break
        if not rates:
            rates = ((8000, 8000),)
        out.append(
            VsmOption(
                cmid=int(fields[0]),
                name=name,
                bits=bits,
                codec=_codec_for(name, bits),
                rates=rates,
                line=raw,
            )
        )
    return out


def choose_format(lines: Iterable[str], *, rate: int = 8000) -> VoiceFormat | None:
    """Pick u-law, then A-law, 8-bit unsigned linear, 16-bit linear, 8-bit signed at `rate`.

    When no decodable format offers `rate`, the decodable one nearest to it is taken (in the
    same preference order). None when the modem offers nothing we decode (ADPCM only).
    The command sets only method and rate (`AT+VSM=<cmid>,<rate>`): accepted by USR5637
    (callattendant sends `AT+VSM=128,8000`) and by V.253 modems alike.
    """
    options = [o for o in parse_vsm_options(lines) if o.codec is not None]
    if not options:
        return None

    def rank(o: VsmOption) -> int:
        assert o.codec is not None
        return _PREFERENCE.index(o.codec)

    exact = sorted((o for o in options if o.supports(rate)), key=rank)
    if exact:
        best, chosen_rate = exact[0], rate
    else:

        def distance(o: VsmOption) -> tuple[int, int]:
            near = min(
                (abs(lo - rate), lo) if lo > rate else (abs(hi - rate), hi) for lo, hi in o.rates
            )
            return near[0], rank(o)

        best = min(options, key=distance)
        chosen_rate = min(
            (lo if lo > rate else min(hi, rate) for lo, hi in best.rates),
            key=lambda r: abs(r - rate),
        )
    assert best.codec is not None
    return VoiceFormat(
        cmid=best.cmid,
        name=best.name,
        codec=best.codec,
        rate=chosen_rate,
        command=f"AT+VSM={best.cmid},{chosen_rate}",
    )


# --- quirks per modem -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceQuirks:
    """What differs between modems in the voice data states.

    `dle_repeat`: how many DLEs we put before the codes we send (ETX, CAN, !). USR5637
    takes one; Zoom 3095 / Conexant CX93010 sticks answer only to three (callattendant #94).
    Three is safe on any modem while transmitting: `DLE DLE` is an escaped 0x10 sample.
    `stop_record_code`: `!` (V.253 receive abort); Zoom documents `^` as well.
    `line_select_before_record`: USR5637 firmware 1.2.23+ wants `AT+VLS=5` before `AT+VRX`
    (REFERENCE.md 1, callattendant). `modem_silence_works`: False where `+VSD` silence
    detection does nothing (Conexant, pycallblock): silence must be found in software.
    """

    name: str = "generic"
    dle_repeat: int = 1
    stop_record_code: bytes = b"!"
    line_select_before_record: str | None = None
    modem_silence_works: bool = True


QUIRKS: Final[dict[str, VoiceQuirks]] = {
    "generic": VoiceQuirks(),
    "usr": VoiceQuirks(name="usr", line_select_before_record="AT+VLS=5"),
    "conexant": VoiceQuirks(name="conexant", dle_repeat=3, modem_silence_works=False),
}


def quirks_for(ati0: str = "", model: str = "") -> VoiceQuirks:
    """Quirks from the `ATI0` product code (`5601` USR5637, `56000` Conexant, REFERENCE.md 1)
    or the `AT+GMM` text."""
    code = ati0.strip()
    text = f"{code} {model}".upper()
    if code == "5601" or "U.S. ROBOTICS" in text or "USR" in text or "USROBOTICS" in text:
        return QUIRKS["usr"]
    if code == "56000" or "CONEXANT" in text or "CX930" in text or "ZOOM" in text:
        return QUIRKS["conexant"]
    return QUIRKS["generic"]


def record_commands(quirks: VoiceQuirks) -> tuple[str, ...]:
    """Commands that start recording: `AT+VRX`, after `AT+VLS=5` on USR5637."""
    if quirks.line_select_before_record:
        return (quirks.line_select_before_record, "AT+VRX")
    return ("AT+VRX",)


def duplex_commands(quirks: VoiceQuirks) -> tuple[str, ...]:
    """Commands that start voice duplex (`AT+VTR`: audio both ways at once).

    The USR 56K command reference and the Conexant CX930xx AT command reference (102752B,
    5-6) describe `+VTR` the same way and name no line selection for it; the USR5637's wish
    for `AT+VLS=5` is known only before `AT+VRX`. Duplex receives as well, so the same line
    selection is sent first on that modem (it selects the line as `AT+VLS=1` did, adding
    the speaker): harmless when not needed, and the known cause of an `ERROR` otherwise.
    """
    if quirks.line_select_before_record:
        return (quirks.line_select_before_record, "AT+VTR")
    return ("AT+VTR",)


# --- what we send ---------------------------------------------------------------------------


def escape(audio: bytes) -> bytes:
    """Audio for `AT+VTX`: every 0x10 byte doubled (V.253 10.2.1.1 `<DLE><DLE>`)."""
    return audio.replace(b"\x10", b"\x10\x10")


def unescape(data: bytes) -> bytes:
    """The inverse of `escape` for data holding only doubled DLEs (tests, simulators)."""
    return data.replace(b"\x10\x10", b"\x10")


def _shielded(code: bytes, quirks: VoiceQuirks) -> bytes:
    return b"\x10" * quirks.dle_repeat + code


def end_play(quirks: VoiceQuirks = QUIRKS["generic"]) -> bytes:
    """Ends `AT+VTX` after the buffered audio has played: `DLE ETX` (`DLE DLE DLE ETX`)."""
    return _shielded(b"\x03", quirks)


def abort_play(quirks: VoiceQuirks = QUIRKS["generic"]) -> bytes:
    """Stops playback at once: `DLE CAN` (clear buffer) then `DLE ETX` (REFERENCE.md 1)."""
    return _shielded(b"\x18", quirks) + _shielded(b"\x03", quirks)


def stop_record(quirks: VoiceQuirks = QUIRKS["generic"]) -> bytes:
    """Ends `AT+VRX`: `DLE !`; the modem answers `DLE ETX` then `OK`."""
    return _shielded(quirks.stop_record_code, quirks)


def end_duplex(quirks: VoiceQuirks = QUIRKS["generic"]) -> bytes:
    """Ends `AT+VTR`: `DLE ^` (`DLE DLE DLE ^` on Conexant sticks, which act only on
    tripled codes). USR 56K command reference and Conexant CX930xx reference, `+VTR`: "the
    DTE sending a <DLE><^> shielded code"; the modem ends its data with `DLE ETX`, then `OK`
    once its transmit buffer has played. Never `DLE ETX` from our side: in duplex no manual
    says it ends anything, and a modem may take it as the end of transmit only."""
    return _shielded(b"^", quirks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """Wire bytes (escaped) carrying `seconds` of audio: send, then pace by `seconds`."""

    data: bytes
    seconds: float


def chunks(audio: bytes, chunk_ms: int, rate: int, bytes_per_sample: int) -> Iterator[Chunk]:
    """Split raw audio into escaped chunks of `chunk_ms` each (the last may be shorter).

    Split on sample boundaries before escaping, so a doubled DLE is never cut in two. The
    driver writes each chunk and keeps at most a few chunks ahead of real time (the modem's
    buffer is small; overrun loses audio, underrun gives `DLE u`).
    """
    if chunk_ms <= 0 or rate <= 0 or bytes_per_sample <= 0:
        raise LocalProtocolError(
            f"chunks() needs positive sizes, got chunk_ms={chunk_ms} rate={rate} "
            f"bytes_per_sample={bytes_per_sample}"
        )
    size = max(1, rate * chunk_ms // 1000) * bytes_per_sample
    per_second = rate * bytes_per_sample
    for start in range(0, len(audio), size):
        piece = audio[start : start + size]
        yield Chunk(data=escape(piece), seconds=len(piece) / per_second)


# --- what the modem sends: events -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceEvent:
    """Base of the voice stream's events."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Audio(VoiceEvent):
    """Samples, unescaped (`DLE DLE` already turned into one 0x10)."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtmf(VoiceEvent):
    """A key press, reported once however long the key is held."""

    digit: str

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in DTMF_DIGITS:
            raise LocalProtocolError(f"not a DTMF digit: {self.digit!r}")


ToneKind = Literal[
    "answer_tone",
    "busy",
    "fax_calling",
    "dial_tone",
    "data_calling",
    "data_answer",
    "ringback",
    "quiet",
    "silence",
    "loop_break",
    "handset_on_hook",
    "handset_off_hook",
    "extension_off_hook",
    "underrun",
    "overrun",
    "ring",
    "bong",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Tone(VoiceEvent):
    """A DLE-shielded report from the modem (`code` is the byte after DLE, as text)."""

    code: str
    kind: ToneKind


@dataclass(frozen=True, slots=True, kw_only=True)
class End(VoiceEvent):
    """`DLE ETX`: the voice data state ended; `triple_dle` when it came as `DLE DLE DLE ETX`."""

    triple_dle: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownDle(VoiceEvent):
    """A DLE code we do not know; reported, never fatal."""

    code: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow(VoiceEvent):
    """Software flow control from the modem in the transmit state (V.250 6.2.12 `+IFC`
    <DTE_by_DCE> 1: DC3 = XOFF, stop sending; DC1 = XON, go on). Only where the modem
    sends no audio (`DleDecoder(keep_audio=False)`): in audio the bytes are samples."""

    paused: bool


XON: Final = 0x11  # DC1
XOFF: Final = 0x13  # DC3


def parse_ifc(lines: Sequence[str]) -> tuple[int, int] | None:
    """`+IFC: <DCE_by_DTE>,<DTE_by_DCE>` (the answer to `AT+IFC?`), or None."""
    for line in lines:
        if line.upper().startswith("+IFC:"):
            parts = line.split(":", 1)[1].split(",")
            try:
                return int(parts[0]), int(parts[1])
            except (IndexError, ValueError):
                return None
    return None


def ifc_offers(lines: Sequence[str], dte_by_dce: int) -> bool:
    """Whether `AT+IFC=?` (`+IFC: (0-2),(0-2)`) lists `dte_by_dce` for the second value."""
    for line in lines:
        if not line.upper().startswith("+IFC:"):
            continue
        groups = re.findall(r"\(([^)]*)\)", line)
        if len(groups) < 2:
            return False
        return dte_by_dce in _values(groups[1])
    return False


def _values(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            a = int(low)
            b = int(high) if high else a
        except ValueError:
            continue
        out.update(range(a, b + 1))
    return out


DTMF_DIGITS: Final = "0123456789*#ABCD"

# DLE codes from the modem: V.253 table 15 / IS-101, USR 56K command reference table 6-2,
# ZyXEL Omni voice chapter (`$` bong tone), callattendant modem.py (`P`, `q` on Conexant).
TONE_CODES: Final[dict[int, ToneKind]] = {
    ord("a"): "answer_tone",
    ord("b"): "busy",
    ord("c"): "fax_calling",
    ord("d"): "dial_tone",
    ord("e"): "data_calling",
    ord("f"): "data_answer",
    ord("r"): "ringback",
    ord("q"): "quiet",
    ord("s"): "silence",
    ord("l"): "loop_break",
    ord("h"): "handset_on_hook",
    ord("H"): "handset_off_hook",
    ord("P"): "extension_off_hook",
    ord("u"): "underrun",
    ord("o"): "overrun",
    ord("R"): "ring",
    ord("$"): "bong",
}

_DTMF_START: Final = ord("/")  # Conexant / Si2493 AN93 table 112: DTMF detection started
_DTMF_STOP: Final = frozenset({ord("~"), 0x7F})  # ...ceased (AN93 prints `~` as 0x7F)
_DIGIT_CODES: Final = frozenset(DTMF_DIGITS.encode())

VoiceOrNeed = VoiceEvent | _NeedData


class DleDecoder:
    """Decodes the modem's side of `AT+VRX` and `AT+VTR` (audio and events) or `AT+VTX`
    (events only).

    Feed bytes with `receive_data(data, now)`, take events with `next_event()` until
    `NEED_DATA` (or `feed`, which does both). After `End`, later bytes are kept in
    `trailing_data` for the AT engine (`ATEngine.enter_command_mode(leftover, ...)`).

    Held keys: inside Conexant framing (`DLE /` digit ... `DLE ~`) a digit counts once per
    frame. The same digit again within `repeat_gap` seconds of its last sighting (or of the
    frame's `DLE ~`) is the same key held: modems repeat `DLE <digit>` or whole frames about
    every 70 ms (REFERENCE.md 1; thess/callattendant #13 "Caller pressed: 000"). Time comes
    from the audio received in between (`bytes_per_second`) or from `now` when given (no
    audio flows during playback).
    `DLE DLE DLE ETX` (Conexant, callattendant #94) ends the stream without an extra 0x10
    sample: an escaped 0x10 is held back one code until we know it is not that ending.
    """

    def __init__(
        self,
        *,
        bytes_per_second: int = 8000,
        keep_audio: bool = True,
        repeat_gap: float = 0.12,
        max_buffer: int = 1 << 20,
    ) -> None:
        self._bps = bytes_per_second
        self._keep_audio = keep_audio
        self._repeat_gap = repeat_gap
        self._max_buffer = max_buffer
        self._events: deque[VoiceEvent] = deque()
        self._audio = bytearray()
        self._dle = False  # last byte was an unpaired DLE
        self._held_dle = False  # an escaped 0x10 not yet emitted (maybe a triple-DLE end)
        self._ended = False
        self._trailing = bytearray()
        self._framed = False  # inside DLE / ... DLE ~
        self._frame_digit: str | None = None
        self._last_digit: str | None = None
        self._last_audio_pos = 0  # audio bytes seen when the last digit was reported
        self._last_now: float | None = None
        self._audio_pos = 0
        self._now: float | None = None
        self.dropped_audio = 0

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after `DLE ETX` (the start of the `OK` line)."""
        return bytes(self._trailing)

    def feed(self, data: bytes, now: float | None = None) -> list[VoiceEvent]:
        self.receive_data(data, now)
        out: list[VoiceEvent] = []
        while not isinstance(ev := self.next_event(), _NeedData):
            out.append(ev)
        return out

    def receive_data(self, data: bytes, now: float | None = None) -> None:
        if now is not None:
            self._now = now
        if self._ended:
            self._trailing += data
            return
        for i, byte in enumerate(data):
            if self._ended:
                self._trailing += data[i:]
                break
            if not self._dle:
                if byte == DLE:
                    self._dle = True
                else:
                    self._flush_held()
                    self._sample(byte)
                continue
            self._dle = False
            self._code(byte)
        # Audio is handed out per read; a held escaped DLE waits for the next code.
        self._flush_audio()

    def flush(self) -> list[VoiceEvent]:
        """Hands out a held-back escaped 0x10 (and all events) when the stream stopped
        without `DLE ETX` (port closed, call dropped)."""
        if not self._ended:
            self._flush_held()
            self._flush_audio()
        out = list(self._events)
        self._events.clear()
        return out

    def next_event(self) -> VoiceOrNeed:
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    # -- internals ---------------------------------------------------------------------------

    def _sample(self, byte: int) -> None:
        if not self._keep_audio and byte in (XON, XOFF):
            # No audio comes in the transmit state: DC1/DC3 are the modem's flow control.
            self._emit(Flow(paused=byte == XOFF))
            return
        self._audio_pos += 1
        if not self._keep_audio:
            return
        if len(self._audio) >= self._max_buffer:
            self.dropped_audio += 1
            return
        self._audio.append(byte)

    def _flush_held(self) -> None:
        if self._held_dle:
            self._held_dle = False
            self._sample(DLE)

    def _flush_audio(self) -> None:
        if self._audio:
            self._events.append(Audio(data=bytes(self._audio)))
            self._audio.clear()

    def _emit(self, event: VoiceEvent) -> None:
        self._flush_audio()
        self._events.append(event)

    def _code(self, code: int) -> None:
        if code == DLE:
            self._flush_held()
            self._held_dle = True  # DLE DLE: a 0x10 sample, unless DLE ETX follows at once
            return
        if code == ETX:
            triple = self._held_dle
            self._held_dle = False
            self._emit(End(triple_dle=triple))
            self._ended = True
            return
        self._flush_held()
        if code == SUB:  # Si2493 AN93 table 112: DLE SUB = two 0x10 samples
            self._sample(DLE)
            self._sample(DLE)
        elif code in _DIGIT_CODES:
            self._digit(chr(code))
        elif code == _DTMF_START:
            self._framed = True
            self._frame_digit = None
        elif code in _DTMF_STOP:
            if self._frame_digit is not None:
                self._mark(self._frame_digit)  # the gap to a next press counts from here
            self._framed = False
            self._frame_digit = None
        elif code in TONE_CODES:
            self._emit(Tone(code=chr(code), kind=TONE_CODES[code]))
        else:
            self._emit(UnknownDle(code=code))

    def _digit(self, digit: str) -> None:
        if self._framed and self._frame_digit == digit:
            self._mark(digit)  # the same frame: the key is still down
            return
        if digit == self._last_digit and self._elapsed() < self._repeat_gap:
            # Repeated within the gap (plain repeats, or a new frame right after DLE ~):
            # the same key held.
            self._frame_digit = digit if self._framed else None
            self._mark(digit)
            return
        if self._framed:
            self._frame_digit = digit
        self._report(digit)
        self._mark(digit)

    def _report(self, digit: str) -> None:
        self._emit(Dtmf(digit=digit))

    def _mark(self, digit: str) -> None:
        self._last_digit = digit
        self._last_audio_pos = self._audio_pos
        self._last_now = self._now

    def _elapsed(self) -> float:
        by_audio = (self._audio_pos - self._last_audio_pos) / self._bps if self._bps else 0.0
        by_clock = 0.0
        if self._now is not None and self._last_now is not None:
            by_clock = self._now - self._last_now
        return max(by_audio, by_clock)


# --- GSM: key presses reported by the modem -------------------------------------------------

# SIMCom SIM800 `+DTMF: <key>` (after AT+DDET=1), SIMCom SIM7600 `+RXDTMF: <key>`, Quectel
# EC25 `+QTONEDET: <ascii code>` (after AT+QTONEDET=1; 49 is "1"). Vendor AT manuals.
_DTMF_URCS: Final = frozenset({"+DTMF", "+RXDTMF", "+QTONEDET"})


def parse_dtmf_urc(name: str, args: str) -> str | None:
    """The digit of a GSM modem's DTMF URC (`URC.name`, `URC.args` of the AT engine), or None
    when the URC is not one or its value is not a digit."""
    if name.upper() not in _DTMF_URCS:
        return None
    value = args.split(",")[0].strip().strip('"')
    if name.upper() == "+QTONEDET":
        if not value.isdigit() or int(value) > 0x7F:
            return None
        value = chr(int(value))
    value = value.upper()
    return value if len(value) == 1 and value in DTMF_DIGITS else None


# --- hang-up decision -----------------------------------------------------------------------

HangupReason = Literal[
    "loop_break",
    "busy",
    "dial_tone",
    "modem_silence",
    "modem_quiet",
    "silence",
    "dial_tone_audio",
    "busy_tone_audio",
    "max_duration",
    "stream_end",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup:
    """The caller is gone: `reason`, `at` (when decided) and `since` (when it started;
    audio after `since` is line noise or dial tone and may be trimmed from a recording)."""

    reason: HangupReason
    at: float
    since: float


_DLE_HANGUP: Final[dict[str, HangupReason]] = {
    "loop_break": "loop_break",
    "busy": "busy",
    "dial_tone": "dial_tone",
    "silence": "modem_silence",
    "quiet": "modem_quiet",
}


class HangupDetector:
    """Decides "caller gone" while recording or listening (callattendant #141: never minutes
    of dial tone).

    Inputs, each with `now` in seconds: `event(ev)` for decoder events (`DLE l`, `b`, `d`,
    `s`, `q`; `End` counts as the stream ending), `level(dbfs)` for each audio frame's level,
    `tone(kind, since)` when the media detectors find `dial_tone` or `busy` in the audio,
    and `tick()`. The first cause wins; `result` keeps it. Software silence: no frame above
    `silence_dbfs` for `silence_seconds`; `modem_silence=False` ignores `DLE s`/`q` for
    modems whose `+VSD` is unreliable (REFERENCE.md 1, Conexant).
    """

    def __init__(
        self,
        *,
        start: float,
        silence_seconds: float = 6.0,
        silence_dbfs: float = -45.0,
        max_duration: float | None = None,
        modem_silence: bool = True,
    ) -> None:
        if silence_seconds <= 0:
            raise LocalProtocolError(f"silence_seconds must be positive, got {silence_seconds}")
        self._start = start
        self._silence_seconds = silence_seconds
        self._silence_dbfs = silence_dbfs
        self._max_duration = max_duration
        self._modem_silence = modem_silence
        self._quiet_since = start
        self.result: Hangup | None = None

    @property
    def quiet_since(self) -> float:
        """Start of the current run of silent frames (or of the last loud frame)."""
        return self._quiet_since

    def _decide(self, reason: HangupReason, now: float, since: float) -> Hangup:
        if self.result is None:
            self.result = Hangup(reason=reason, at=now, since=since)
        return self.result

    def event(self, ev: VoiceEvent, now: float) -> Hangup | None:
        if isinstance(ev, Tone):
            reason = _DLE_HANGUP.get(ev.kind)
            if reason is None:
                return self.result
            if reason in ("modem_silence", "modem_quiet"):
                if not self._modem_silence:
                    return self.result
                return self._decide(reason, now, self._quiet_since)
            return self._decide(reason, now, now)
        if isinstance(ev, End):
            return self._decide("stream_end", now, now)
        return self.tick(now)

    def level(self, dbfs: float, now: float) -> Hangup | None:
        """One audio frame's level; `now` is the frame's end."""
        if dbfs > self._silence_dbfs:
            self._quiet_since = now
        return self.tick(now)

    def tone(self, kind: Literal["dial_tone", "busy"], now: float, since: float) -> Hangup:
        return self._decide(
            "dial_tone_audio" if kind == "dial_tone" else "busy_tone_audio", now, since
        )

    def tick(self, now: float) -> Hangup | None:
        if self.result is not None:
            return self.result
        if now - self._quiet_since >= self._silence_seconds:
            return self._decide("silence", now, self._quiet_since)
        if self._max_duration is not None and now - self._start >= self._max_duration:
            return self._decide("max_duration", now, now)
        return None
