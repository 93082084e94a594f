"""Caller ID: parse what analog and GSM modems report, and decide when a call's ID is complete.

Formatted lines (+VCID=1), raw SDMF/MDMF packets (+VCID=2, checksum verified), iaxmodem's
one-line form and GSM +CLIP/+CCWA become one `CallerId`. `CallerIdCollector` turns a line's
RINGs and caller-ID lines into one result per call. Pure: no I/O, no clock (time is passed
in); nothing the line sends raises here except `CallerIdFormatError` from `decode_packet`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from firmware_app.protocol.at import split_params, unquote
from firmware_app.protocol.errors import RemoteProtocolError

__all__ = [
    "CALLER_ID_URCS",
    "MAX_BLOCK_BYTES",
    "MAX_BLOCK_LINES",
    "RING_URCS",
    "CallWaiting",
    "CallerId",
    "CallerIdCollector",
    "CallerIdFormatError",
    "build_packet",
    "decode_packet",
    "is_caller_id_line",
    "no_caller_id",
    "parse_clip",
    "parse_formatted",
]

Validity = Literal["ok", "withheld", "unavailable"]
Source = Literal["formatted", "sdmf", "mdmf", "clip", "none"]


class CallerIdFormatError(RemoteProtocolError):
    """A raw caller-ID packet is not SDMF/MDMF or is cut short."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerId:
    """Who is calling, as far as the line told us.

    `validity`: ok (a number), withheld (caller hid it: P / CLI validity 1) or unavailable
    (out of area, not sent, bad checksum, nothing by the 2nd ring); `reason` says which.
    `date`/`time` are the text the line sent (MMDD / HHMM or as given). `dialled` is the
    number the caller dialled (DDN_NMBR, NDID, MDMF parameter 3). `checksum_ok` is None
    when the form has no checksum.
    """

    number: str | None
    name: str | None = None
    validity: Validity
    reason: str | None = None
    name_reason: str | None = None
    date: str | None = None
    time: str | None = None
    dialled: str | None = None
    message: str | None = None
    number_type: int | None = None
    source: Source
    checksum_ok: bool | None = None
    raw: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CallWaiting:
    """Caller ID that arrived while the line was already in a call: not a new call."""

    caller: CallerId


def no_caller_id(reason: str = "no caller ID", raw: tuple[str, ...] = ()) -> CallerId:
    return CallerId(number=None, validity="unavailable", reason=reason, source="none", raw=raw)


# --- formatted lines ------------------------------------------------------------------------

# Field names of formatted caller ID (V.253 +VCID=1 "DATE/TIME/NMBR/NAME/MESG"; DDN_NMBR from
# Rockwell/Conexant; NDID and USER from iaxmodem; "DATE TIME" from NCID's test data).
# A field starts at the line start or after whitespace; "=" may have spaces around it.
_FIELD = re.compile(
    r"(?:^|(?<=\s))(DATE TIME|DDN_NMBR|DATE|TIME|NMBR|NAME|MESG|NDID|USER)\s*=\s?",
    re.IGNORECASE,
)
_HEX_LINE = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# Absence codes for number and name (GR-30-CORE; ETSI EN 300 659-3 parameter 4/8).
_ABSENT: Final[dict[str, tuple[Validity, str]]] = {
    "P": ("withheld", "private"),
    "O": ("unavailable", "out of area"),
    "C": ("unavailable", "coin/public phone"),
}


def parse_formatted(line: str) -> list[tuple[str, str]]:
    """``NMBR = 5551234`` -> ``[("NMBR", "5551234")]``; iaxmodem's
    ``NAME= NMBR=123 USER= NDID=456`` gives four fields. Unknown lines give ``[]``."""
    text = line.strip()
    matches = list(_FIELD.finditer(text))
    if not matches or matches[0].start() != 0:
        return []
    out: list[tuple[str, str]] = []
    for i, m in enumerate(matches):
        stop = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out.append((m.group(1).upper(), text[m.end() : stop].strip()))
    return out


def _fields_to_caller(fields: list[tuple[str, str]], raw: tuple[str, ...]) -> CallerId:
    number: str | None = None
    name: str | None = None
    validity: Validity = "unavailable"
    reason: str | None = "no number sent"
    name_reason: str | None = None
    date = time = dialled = message = None
    for key, value in fields:
        if key == "NMBR":
            absent = _ABSENT.get(value.upper()) if len(value) == 1 else None
            if absent is not None:
                number, (validity, reason) = None, absent
            elif value:
                number, validity, reason = value, "ok", None
        elif key == "NAME":
            absent = _ABSENT.get(value.upper()) if len(value) == 1 else None
            if absent is not None:
                name, name_reason = None, absent[1]
            else:
                name = value or None
        elif key == "DATE":
            date = value or None
        elif key == "TIME":
            time = value or None
        elif key == "DATE TIME":
            parts = value.split()
            date = parts[0] if parts else None
            time = parts[1] if len(parts) > 1 else None
        elif key in ("DDN_NMBR", "NDID"):
            dialled = value or None
        elif key == "MESG":
            message = value or None
    return CallerId(
        number=number,
        name=name,
        validity=validity,
        reason=reason,
        name_reason=name_reason,
        date=date,
        time=time,
        dialled=dialled,
        message=message,
        source="formatted",
        raw=raw,
    )


# --- SDMF / MDMF packets --------------------------------------------------------------------

# Telcordia GR-30-CORE and ETSI EN 300 659-3: message type, length, body, checksum. The
# checksum is the two's complement of the sum of every byte before it (mod 256), so the sum
# of all bytes including the checksum is 0 mod 256.
SDMF_CALL: Final = 0x04
MDMF_CALL: Final = 0x80
P_DATETIME: Final = 0x01
P_NUMBER: Final = 0x02
P_DIALLED: Final = 0x03
P_NUMBER_ABSENT: Final = 0x04
P_NAME: Final = 0x07
P_NAME_ABSENT: Final = 0x08


def checksum(body: bytes) -> int:
    """The checksum byte for a packet's type, length and body bytes."""
    return (-sum(body)) & 0xFF


def build_packet(message_type: int, payload: bytes) -> bytes:
    """A packet with length and checksum: for tests and the line simulator."""
    head = bytes([message_type, len(payload)]) + payload
    return head + bytes([checksum(head)])


def _text(data: bytes) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_packet(data: bytes, raw: tuple[str, ...] = ()) -> CallerId:
    """Decode an SDMF (0x04) or MDMF (0x80) call packet. A bad checksum gives an
    unavailable caller (the number cannot be trusted) with ``checksum_ok=False``."""
    if len(data) < 3:
        raise CallerIdFormatError(f"caller-ID packet of {len(data)} bytes is too short")
    mtype, length = data[0], data[1]
    if len(data) < length + 3:
        raise CallerIdFormatError(
            f"caller-ID packet says {length} bytes but holds {max(len(data) - 3, 0)}"
        )
    body = data[2 : 2 + length]
    ok = (sum(data[: 3 + length]) & 0xFF) == 0
    if mtype == SDMF_CALL:
        source: Source = "sdmf"
        fields = _sdmf_fields(body)
    elif mtype == MDMF_CALL:
        source = "mdmf"
        fields = _mdmf_fields(body)
    else:
        raise CallerIdFormatError(f"caller-ID message type 0x{mtype:02X} is not a call")
    if not ok:
        return CallerId(
            number=None,
            validity="unavailable",
            reason="checksum error",
            source=source,
            checksum_ok=False,
            raw=raw,
        )
    return replace(_fields_to_caller(fields, raw), source=source, checksum_ok=True)


def _date_time(value: bytes) -> list[tuple[str, str]]:
    text = _text(value)
    return [("DATE", text[:4]), ("TIME", text[4:8])]


def _sdmf_fields(body: bytes) -> list[tuple[str, str]]:
    if len(body) < 8:
        raise CallerIdFormatError(f"SDMF body of {len(body)} bytes has no date and time")
    return [*_date_time(body[:8]), ("NMBR", _text(body[8:]))]


def _mdmf_fields(body: bytes) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(body):
        if pos + 2 > len(body):
            raise CallerIdFormatError("MDMF parameter header cut short")
        ptype, plen = body[pos], body[pos + 1]
        value = body[pos + 2 : pos + 2 + plen]
        if len(value) < plen:
            raise CallerIdFormatError(f"MDMF parameter 0x{ptype:02X} cut short")
        pos += 2 + plen
        if ptype == P_DATETIME:
            out += _date_time(value)
        elif ptype in (P_NUMBER, P_NUMBER_ABSENT):
            out.append(("NMBR", _text(value)))
        elif ptype == P_DIALLED:
            out.append(("DDN_NMBR", _text(value)))
        elif ptype in (P_NAME, P_NAME_ABSENT):
            out.append(("NAME", _text(value)))
    return out


# --- GSM +CLIP / +CCWA ----------------------------------------------------------------------

# 3GPP TS 27.007 7.6: +CLIP: <number>,<type>[,<subaddr>,<satype>[,<alpha>[,<CLI validity>]]]
# type 145 = international (prefix "+"), 129 = other. Validity 0 ok, 1 withheld, 2 not
# available (network), 3/4 payphone / other. +CCWA (7.12): <number>,<type>,<class>[,<alpha>
# [,<CLI validity>...]].
_VALIDITY: Final[dict[int, tuple[Validity, str | None]]] = {
    0: ("ok", None),
    1: ("withheld", "withheld by the caller"),
    2: ("unavailable", "not available from the network"),
    3: ("unavailable", "payphone"),
    4: ("unavailable", "not available"),
}
_CLIP = re.compile(r"\s*\+(CLIP|CCWA)\s*:\s*(.*)", re.IGNORECASE)


def parse_clip(line: str) -> CallerId | None:
    """Parse a +CLIP (or +CCWA) line; None when it is not one."""
    m = _CLIP.fullmatch(line)
    if m is None:
        return None
    waiting = m.group(1).upper() == "CCWA"
    p = split_params(m.group(2))
    if not p:
        return None
    number = unquote(p[0]).strip()
    ntype = _to_int(p[1]) if len(p) > 1 else None
    if waiting:
        alpha_at, validity_at = 3, 4
    else:
        alpha_at, validity_at = 4, 5
    alpha = unquote(p[alpha_at]).strip() if len(p) > alpha_at else ""
    cli = _to_int(p[validity_at]) if len(p) > validity_at else None
    validity: Validity
    reason: str | None
    if cli is not None and cli in _VALIDITY:
        validity, reason = _VALIDITY[cli]
    else:
        validity, reason = "ok", None
    if validity == "ok" and not number:
        validity, reason = "unavailable", "no number sent"
    number_out: str | None = None
    if validity == "ok":
        number_out = "+" + number if ntype == 145 and not number.startswith("+") else number
    return CallerId(
        number=number_out,
        name=alpha or None,
        validity=validity,
        reason=reason,
        number_type=ntype,
        source="clip",
        raw=(line.strip(),),
    )


def _to_int(param: str) -> int | None:
    p = unquote(param).strip()
    return int(p) if p.isdigit() and p.isascii() else None


def is_caller_id_line(line: str) -> bool:
    """True for a line this module understands (formatted, hex packet, +CLIP, +CCWA)."""
    text = line.strip()
    return bool(parse_formatted(text) or _CLIP.fullmatch(text) or _HEX_LINE.fullmatch(text))


# --- the collector --------------------------------------------------------------------------


RING_URCS: Final = frozenset({"RING", "+CRING"})
"""URC names (as the AT engine gives them) that are a ring."""
CALLER_ID_URCS: Final = frozenset(
    {
        "DATE",
        "TIME",
        "DATE TIME",
        "NMBR",
        "NAME",
        "MESG",
        "DDN_NMBR",
        "NDID",
        "HEX",
        "+CLIP",
        "+CCWA",
    }
)
"""URC names (as the AT engine gives them) that carry caller ID."""


class _State(enum.Enum):
    IDLE = "idle"  # no call
    COLLECTING = "collecting"  # first RING or first caller-ID line seen
    DONE = "done"  # result given; further RINGs of the same call are ignored


CollectorResult = CallerId | CallWaiting


# A caller-ID block is a handful of lines (the longest real one, MESG DATE TIME NMBR NAME
# DDN_NMBR, is six); a line that sends more is broken or hostile. Past either cap the block
# is complete with what came first, and nothing more is kept.
MAX_BLOCK_LINES: Final = 16
MAX_BLOCK_BYTES: Final = 1024


@dataclass(slots=True)
class _Collect:
    fields: list[tuple[str, str]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    rings: int = 0
    deadline: float = 0.0
    size: int = 0

    def room_for(self, text: str) -> bool:
        return len(self.raw) < MAX_BLOCK_LINES and self.size + len(text) <= MAX_BLOCK_BYTES

    def add(self, fields: list[tuple[str, str]], text: str, deadline: float) -> None:
        self.fields += fields
        self.raw.append(text)
        self.size += len(text)
        self.deadline = deadline


class CallerIdCollector:
    """One analog or GSM line's caller ID, one result per call.

    A call's caller ID is complete at the first RING after a caller-ID line, at the 2nd
    RING, or `timeout` seconds after the first RING / the last caller-ID line, whichever
    comes first. +CLIP, SDMF/MDMF packets and one-line forms (iaxmodem) are complete at
    once. While the line is in a call (`set_in_call(True)`), caller ID is a `CallWaiting`.
    After a result, RINGs are the same call until `idle_after` seconds pass without one.
    A block is at most `MAX_BLOCK_LINES` lines and `MAX_BLOCK_BYTES` characters: a line
    that would go past either completes it with what came before, so memory stays bounded
    whatever the modem sends.
    """

    def __init__(self, *, timeout: float = 5.5, idle_after: float = 8.0) -> None:
        self.timeout = timeout
        self.idle_after = idle_after
        self._state = _State.IDLE
        self._c = _Collect()
        self._in_call = False
        self._last_ring = 0.0
        self._waiting = _Collect()

    @property
    def collecting(self) -> bool:
        """A block is being gathered (a call's caller ID, or a call waiting's during a
        call): `tick()` is due `timeout` after the last line."""
        if self._in_call:
            return bool(self._waiting.fields)
        return self._state is _State.COLLECTING

    def set_in_call(self, active: bool, now: float = 0.0) -> CollectorResult | None:
        """Tell the collector the line went off-hook (True) or back on-hook (False).

        Going off-hook while still collecting completes the call with what it has.
        """
        result: CollectorResult | None = None
        if active and not self._in_call and self._state is _State.COLLECTING:
            result = self._complete()
        self._in_call = active
        if not active:
            self._state = _State.IDLE
            self._c = _Collect()
        self._waiting = _Collect()
        return result

    def reset(self) -> None:
        """Forget everything (the line was reset)."""
        self._state = _State.IDLE
        self._c = _Collect()
        self._waiting = _Collect()
        self._in_call = False

    def ring(self, now: float) -> CollectorResult | None:
        """A RING (or +CRING) arrived."""
        if self._in_call:
            return None
        self._last_ring = now
        if self._state is _State.DONE:
            return None
        c = self._c
        if self._state is _State.IDLE:
            self._state = _State.COLLECTING
            c.rings = 1
            c.deadline = now + self.timeout
            return None
        c.rings += 1
        if c.fields or c.rings >= 2:
            return self._complete()
        return None

    def line(self, text: str, now: float) -> CollectorResult | None:
        """A caller-ID line arrived (formatted, hex packet, +CLIP, +CCWA); others are ignored."""
        stripped = text.strip()
        whole = self._whole(stripped)
        if self._in_call:
            if whole is not None:
                self._waiting = _Collect()
                return CallWaiting(caller=whole)
            fields = parse_formatted(stripped)
            if fields:
                w = self._waiting
                if not w.room_for(stripped):
                    self._waiting = _Collect()
                    return CallWaiting(caller=_fields_to_caller(w.fields, tuple(w.raw)))
                w.add(fields, stripped, now + self.timeout)
            return None
        if self._state is _State.DONE:
            # Repeated +CLIP after each RING of a call already reported.
            self._last_ring = now
            return None
        if whole is not None:
            self._state = _State.DONE
            self._last_ring = now
            self._c = _Collect()
            return whole
        fields = parse_formatted(stripped)
        if not fields:
            return None
        c = self._c
        if self._state is _State.IDLE:
            self._state = _State.COLLECTING
        if not c.room_for(stripped):
            return self._complete()
        c.add(fields, stripped, now + self.timeout)
        return None

    @property
    def buffered(self) -> int:
        """Caller-ID lines held for the call being collected or a call waiting (bounded)."""
        return len(self._c.raw) + len(self._waiting.raw)

    def urc(self, name: str, line: str, now: float) -> CollectorResult | None:
        """Feed an AT engine URC by name: RING/+CRING are rings, caller-ID names are lines,
        and anything else is ignored."""
        if name in RING_URCS:
            return self.ring(now)
        if name in CALLER_ID_URCS:
            return self.line(line, now)
        return None

    def tick(self, now: float) -> CollectorResult | None:
        """Complete a call whose time is up; forget a finished call that stopped ringing."""
        if self._in_call:
            w = self._waiting
            if w.fields and now >= w.deadline:
                self._waiting = _Collect()
                return CallWaiting(caller=_fields_to_caller(w.fields, tuple(w.raw)))
            return None
        if self._state is _State.COLLECTING and now >= self._c.deadline:
            return self._complete()
        if self._state is _State.DONE and now - self._last_ring >= self.idle_after:
            self._state = _State.IDLE
        return None

    def _complete(self) -> CallerId:
        c = self._c
        self._c = _Collect()
        self._state = _State.DONE
        if not c.fields:
            return no_caller_id("no caller ID by the 2nd ring" if c.rings >= 2 else "no caller ID")
        return _fields_to_caller(c.fields, tuple(c.raw))

    def _whole(self, text: str) -> CallerId | None:
        """A line that is a complete caller ID by itself, or None."""
        if text[:1] == "+":
            return parse_clip(text)
        if _HEX_LINE.fullmatch(text) and len(text) >= 6:
            try:
                return decode_packet(bytes.fromhex(text), raw=(text,))
            except CallerIdFormatError:
                return None
        fields = parse_formatted(text)
        keys = {k for k, _ in fields}
        if "NMBR" in keys and "NAME" in keys:
            return _fields_to_caller(fields, (text,))
        return None
