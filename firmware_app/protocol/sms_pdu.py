"""SMS in PDU mode: decode SMS-DELIVER, SMS-STATUS-REPORT and SMS-SUBMIT, encode SUBMIT/DELIVER.

Also the send-side split (GSM-7 or UCS-2, 160/153 and 70/67 per part), the live counter and
the fingerprint that keeps a message from being stored twice. Pure: no I/O, no clock.
A broken PDU raises `PduError` (a `RemoteProtocolError`) naming the field; nothing else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final, Literal

from firmware_app.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "Address",
    "Concat",
    "Encoding",
    "InformationElement",
    "PduError",
    "SmsCount",
    "SmsDeliver",
    "SmsEncodeError",
    "SmsStatusReport",
    "SmsSubmit",
    "SubmitPdu",
    "build_submit_pdus",
    "choose_encoding",
    "cmgs_length",
    "count_text",
    "decode_pdu",
    "decode_units",
    "encode_deliver",
    "encode_submit",
    "fingerprint",
    "is_gsm7",
    "sender_of",
    "split_smsc",
    "split_text",
]

Encoding = Literal["gsm7", "ucs2", "8bit"]
StatusCategory = Literal["delivered", "pending", "failed", "unknown"]


class PduError(RemoteProtocolError):
    """A PDU from the modem or network is malformed; the message names the field and value."""


class SmsEncodeError(LocalProtocolError):
    """We were asked to encode something a PDU cannot carry (bad number, text too long)."""


# --- GSM 03.38 alphabet (3GPP TS 23.038 6.2.1 default alphabet, 6.2.1.1 extension table) ---

# Index = septet value. 0x1B is the escape to the extension table (shown here as "\x1b").
GSM7_BASIC: Final[str] = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
ESC: Final = 0x1B
# TS 23.038 6.2.1.1: septet after ESC -> character (form feed, ^, {, }, \, [, ~, ], |, €).
GSM7_EXTENSION: Final[dict[int, str]] = {
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_TO_BASIC: Final[dict[str, int]] = {c: i for i, c in enumerate(GSM7_BASIC) if i != ESC}
_TO_EXT: Final[dict[str, int]] = {c: i for i, c in GSM7_EXTENSION.items()}
_GSM7_CHARS: Final = frozenset(_TO_BASIC) | frozenset(_TO_EXT)
_FROM_BASIC: Final[dict[int, str]] = dict(enumerate(GSM7_BASIC))
# Text -> septet values in one str.translate: a basic character to its code, an extension
# character to ESC and its code (as characters below 128, encoded as Latin-1 afterwards).
_TO_SEPTETS: Final[dict[int, str]] = {
    **{ord(c): chr(code) for c, code in _TO_BASIC.items()},
    **{ord(c): chr(ESC) + chr(code) for c, code in _TO_EXT.items()},
}

# Limits (TS 23.040 9.2.3.16, 9.2.3.24): 140 octets of user data; a concatenation header with
# an 8-bit reference takes 6 octets (UDHL, IEI 00, IEL 3, ref, total, seq).
MAX_UD_OCTETS: Final = 140
MAX_SEPTETS: Final = 160
SINGLE_GSM7: Final = 160
MULTI_GSM7: Final = 153
SINGLE_UCS2: Final = 70
MULTI_UCS2: Final = 67
MAX_PARTS: Final = 255

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 default alphabet or its extension table."""
    return _GSM7_CHARS.issuperset(text)


def choose_encoding(text: str) -> Encoding:
    """GSM-7 when the text fits the alphabet (with the extension table), else UCS-2."""
    return "gsm7" if is_gsm7(text) else "ucs2"


def _clean(text: str) -> str:
    # A lone surrogate cannot be sent as UTF-16; it becomes U+FFFD everywhere (count and send).
    return _LONE_SURROGATE.sub("\ufffd", text)


def _char_units(c: str, encoding: Encoding) -> int:
    if encoding == "gsm7":
        return 2 if c in _TO_EXT else 1
    return 2 if ord(c) > 0xFFFF else 1


def gsm7_septets(text: str) -> bytes:
    """Text -> septet values (one per byte), extension characters as ESC + code."""
    if not _GSM7_CHARS.issuperset(text):
        c = next(c for c in text if c not in _GSM7_CHARS)
        raise SmsEncodeError(f"character {c!r} (U+{ord(c):04X}) is not in the GSM-7 alphabet")
    return text.translate(_TO_SEPTETS).encode("latin-1")


def gsm7_text(septets: bytes) -> str:
    """Septet values -> text (TS 23.038 6.2.1.1: an unknown ESC code shows the basic
    character; ESC ESC and a trailing ESC show a space)."""
    if ESC not in septets and septets.isascii():  # no escapes: one translate
        return septets.decode("ascii").translate(_FROM_BASIC)
    out: list[str] = []
    i, n = 0, len(septets)
    while i < n:
        s = septets[i] & 0x7F
        if s != ESC:
            out.append(GSM7_BASIC[s])
            i += 1
            continue
        if i + 1 >= n:
            out.append(" ")
            break
        nxt = septets[i + 1] & 0x7F
        if nxt == ESC:
            out.append(" ")
        else:
            out.append(GSM7_EXTENSION.get(nxt, GSM7_BASIC[nxt]))
        i += 2
    return "".join(out)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """TS 23.038 6.1.2.1.1 packing: septet i at bit 7*i (+ fill bits), LSB first."""
    value = 0
    for i, s in enumerate(septets):
        value |= (s & 0x7F) << (fill_bits + 7 * i)
    nbits = fill_bits + 7 * len(septets)
    return value.to_bytes((nbits + 7) // 8, "little")


def unpack_septets(data: bytes, count: int) -> bytes:
    """The first `count` septets of packed data (caller checks there are enough octets)."""
    value = int.from_bytes(data, "little")
    return bytes((value >> (7 * i)) & 0x7F for i in range(count))


def decode_units(encoding: Encoding, units: bytes) -> str:
    """User-data units -> text: GSM-7 septets (one per byte) or UTF-16BE octets (UCS-2 in
    practice carries surrogate pairs; a broken pair or odd octet becomes U+FFFD).
    8-bit data has no text: returns ""."""
    if encoding == "gsm7":
        return gsm7_text(units)
    if encoding == "ucs2":
        return units.decode("utf-16-be", errors="replace")
    return ""


# --- splitting and counting (docs/sms.md; mirrored by the web page's counter) ---------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsCount:
    """What the live counter shows: units used, parts, and units left in the last part.

    `units` are septets for GSM-7 (an extension character counts 2) and UTF-16 code units
    for UCS-2 (an emoji counts 2).
    """

    encoding: Encoding
    units: int
    parts: int
    per_part: int
    remaining: int


def split_text(text: str, encoding: Encoding | None = None) -> list[str]:
    """Split text into SMS parts: one part up to 160 septets / 70 UCS-2 units, else parts of
    at most 153 / 67. Escape pairs and surrogate pairs are never split; "" is one part."""
    text = _clean(text)
    enc = encoding or choose_encoding(text)
    if enc == "8bit":
        raise SmsEncodeError("split_text splits text; send 8-bit data with encode_submit")
    single, multi = (SINGLE_GSM7, MULTI_GSM7) if enc == "gsm7" else (SINGLE_UCS2, MULTI_UCS2)
    if encoding == "gsm7" and not is_gsm7(text):
        raise SmsEncodeError("text holds characters outside the GSM-7 alphabet; use ucs2")
    if enc == "gsm7":
        sizes = [2 if c in _TO_EXT else 1 for c in text]
    else:
        sizes = [2 if c > "\uffff" else 1 for c in text]
    if sum(sizes) <= single:
        return [text]
    if len(sizes) == sum(sizes):  # every character one unit: plain slices
        return [text[i : i + multi] for i in range(0, len(text), multi)]
    parts: list[str] = []
    start = used = 0
    for i, size in enumerate(sizes):
        if used + size > multi:
            parts.append(text[start:i])
            start, used = i, 0
        used += size
    parts.append(text[start:])
    return parts


def count_text(text: str, encoding: Encoding | None = None) -> SmsCount:
    """Units, parts and units left, by exactly the rules of `split_text`."""
    text = _clean(text)
    enc = encoding or choose_encoding(text)
    parts = split_text(text, enc)
    units = sum(_char_units(c, enc) for c in text)
    single, multi = (SINGLE_GSM7, MULTI_GSM7) if enc == "gsm7" else (SINGLE_UCS2, MULTI_UCS2)
    per_part = single if len(parts) == 1 else multi
    last = sum(_char_units(c, enc) for c in parts[-1])
    return SmsCount(
        encoding=enc, units=units, parts=len(parts), per_part=per_part, remaining=per_part - last
    )


# --- fields ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """TS 23.040 9.1.2.5 address: `number` as shown ("+4412...", "12345" or an alphanumeric
    sender such as "MyBank"), `toa` the type-of-address octet (0x91 international,
    0x81 unknown, 0xD0 alphanumeric)."""

    number: str
    toa: int

    @property
    def ton(self) -> int:
        return (self.toa >> 4) & 0x07

    @property
    def alphanumeric(self) -> bool:
        return self.ton == 5

    def __str__(self) -> str:
        return self.number


@dataclass(frozen=True, slots=True, kw_only=True)
class InformationElement:
    """One user-data-header element (TS 23.040 9.2.3.24): identifier and its octets."""

    iei: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Concat:
    """Concatenated SMS (TS 23.040 9.2.3.24.1 8-bit ref, 9.2.3.24.8 16-bit ref): part `seq`
    of `total`, all parts sharing `reference`."""

    reference: int
    total: int
    seq: int
    bits: Literal[8, 16] = 8

    def __post_init__(self) -> None:
        if not 0 <= self.reference < (1 << self.bits):
            raise SmsEncodeError(f"concat reference {self.reference} does not fit {self.bits} bits")
        if not 1 <= self.seq <= self.total <= MAX_PARTS:
            raise SmsEncodeError(f"concat part {self.seq} of {self.total} is not valid (1..255)")

    def element(self) -> InformationElement:
        if self.bits == 8:
            return InformationElement(iei=0x00, data=bytes((self.reference, self.total, self.seq)))
        ref = self.reference.to_bytes(2, "big")
        return InformationElement(iei=0x08, data=ref + bytes((self.total, self.seq)))


@dataclass(frozen=True, slots=True, kw_only=True)
class _UserData:
    encoding: Encoding
    compressed: bool
    udh: tuple[InformationElement, ...]
    units: bytes
    raw: bytes
    concat: Concat | None
    ports: tuple[int, int] | None
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsDeliver:
    """A received message (TS 23.040 9.2.2.1) or one part of a concatenated one.

    `text` is decoded (GSM-7 or UCS-2); `data` holds the octets of an 8-bit message and is
    empty for text. `units` are the user-data units after the header (septets for GSM-7),
    used to join parts without breaking an escape or surrogate pair at a part boundary.
    `timestamp` (TP-SCTS, with its timezone) is None when the SMSC sent an impossible date;
    `timestamp_raw` always holds its 7 octets. `problems` lists what was tolerated.
    """

    smsc: Address | None
    sender: Address
    text: str
    data: bytes = b""
    encoding: Encoding
    compressed: bool = False
    message_class: int | None = None
    pid: int = 0
    dcs: int = 0
    timestamp: datetime | None
    timestamp_raw: bytes
    udh: tuple[InformationElement, ...] = ()
    concat: Concat | None = None
    ports: tuple[int, int] | None = None
    units: bytes = b""
    user_data_raw: bytes = b""
    more_messages: bool = False
    reply_path: bool = False
    status_report_indication: bool = False
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsSubmit:
    """A message to send (TS 23.040 9.2.2.2), as decoded from a stored or outgoing PDU.

    `validity` is a timedelta (relative/enhanced), a datetime (absolute) or None.
    """

    smsc: Address | None
    message_reference: int
    destination: Address
    text: str
    data: bytes = b""
    encoding: Encoding
    compressed: bool = False
    message_class: int | None = None
    pid: int = 0
    dcs: int = 0
    validity: timedelta | datetime | None = None
    request_status_report: bool = False
    reject_duplicates: bool = False
    reply_path: bool = False
    udh: tuple[InformationElement, ...] = ()
    concat: Concat | None = None
    ports: tuple[int, int] | None = None
    units: bytes = b""
    user_data_raw: bytes = b""
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsStatusReport:
    """Delivery report for a message we sent (TS 23.040 9.2.2.3): `message_reference` is the
    TP-MR from `+CMGS: <mr>`; `status` the TP-ST octet (9.2.3.15) and `category` its meaning."""

    smsc: Address | None
    message_reference: int
    recipient: Address
    timestamp: datetime | None
    timestamp_raw: bytes
    discharge_time: datetime | None
    discharge_time_raw: bytes
    status: int
    category: StatusCategory
    status_text: str
    more_messages: bool = False
    text: str = ""
    problems: tuple[str, ...] = ()


# TS 23.040 9.2.3.15 TP-Status values.
_STATUS_TEXT: Final[dict[int, str]] = {
    0x00: "received by the recipient",
    0x01: "forwarded, delivery not confirmed",
    0x02: "replaced by the service centre",
    0x20: "congestion, still trying",
    0x21: "recipient busy, still trying",
    0x22: "no response from recipient, still trying",
    0x23: "service rejected, still trying",
    0x24: "quality of service not available, still trying",
    0x25: "error in recipient, still trying",
    0x40: "remote procedure error",
    0x41: "incompatible destination",
    0x42: "connection rejected by recipient",
    0x43: "not obtainable",
    0x44: "quality of service not available",
    0x45: "no interworking available",
    0x46: "validity period expired",
    0x47: "deleted by the sender",
    0x48: "deleted by the service centre",
    0x49: "message does not exist",
    0x60: "congestion, no longer trying",
    0x61: "recipient busy, no longer trying",
    0x62: "no response from recipient, no longer trying",
    0x63: "service rejected, no longer trying",
    0x64: "quality of service not available, no longer trying",
    0x65: "error in recipient, no longer trying",
}


def _status_category(st: int) -> StatusCategory:
    if st < 0x20:
        return "delivered"
    if st < 0x40:
        return "pending"
    if st < 0x80:
        return "failed"
    return "unknown"


# --- reading -----------------------------------------------------------------------------------


class _Reader:
    """Cursor over a PDU; every read names the field so a short PDU says what is missing."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            have = len(self.data) - self.pos
            raise PduError(
                f"PDU ends inside {what}: needs {n} octet(s) at offset {self.pos}, {have} left"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def octet(self, what: str) -> int:
        return self.take(1, what)[0]

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


_BCD_DIGITS: Final = "0123456789*#abc"


def _bcd_number(octets: bytes, digits: int) -> str:
    # TS 23.040 9.1.2.3: semi-octets, low nibble first; F fills an odd count.
    out: list[str] = []
    for b in octets:
        for nibble in (b & 0x0F, b >> 4):
            if len(out) >= digits or nibble == 0x0F:
                break
            out.append(_BCD_DIGITS[nibble])
    return "".join(out)


def _read_address(r: _Reader, what: str) -> Address:
    # TS 23.040 9.1.2.5: length in useful semi-octets, type of address, value.
    digits = r.octet(f"{what} length")
    toa = r.octet(f"{what} type")
    value = r.take((digits + 1) // 2, f"{what} ({digits} digits)")
    if (toa >> 4) & 0x07 == 5:  # alphanumeric, GSM-7 packed (9.1.2.5, 23.038 6.2.1)
        septets = unpack_septets(value, digits * 4 // 7)
        return Address(number=gsm7_text(septets).rstrip("@"), toa=toa)
    number = _bcd_number(value, digits)
    if (toa >> 4) & 0x07 == 1 and number:
        number = "+" + number
    return Address(number=number, toa=toa)


def _read_smsc(r: _Reader) -> Address | None:
    # TS 24.011 8.2.5.1 RP address as given by +CMGR: length in octets (TOA included).
    n = r.octet("SMSC address length")
    if n == 0:
        return None
    body = r.take(n, f"SMSC address ({n} octets)")
    toa, digits = body[0], _bcd_number(body[1:], 2 * (n - 1))
    if (toa >> 4) & 0x07 == 1 and digits:
        digits = "+" + digits
    return Address(number=digits, toa=toa)


def _bcd_pair(b: int) -> int:
    # Swapped semi-octets: low nibble is the tens digit.
    lo, hi = b & 0x0F, b >> 4
    if lo > 9 or hi > 9:
        raise ValueError(f"octet {b:02X} is not two decimal digits")
    return lo * 10 + hi


def _timestamp(raw: bytes, what: str) -> tuple[datetime | None, str | None]:
    # TS 23.040 9.2.3.11: YY MM DD hh mm ss TZ, semi-octets swapped; TZ in quarters of an
    # hour, its sign in bit 3 of the seventh octet.
    try:
        yy, mo, dd, hh, mi, ss = (_bcd_pair(b) for b in raw[:6])
        tz = raw[6]
        quarters = _bcd_pair(tz & 0xF7)
        offset = timedelta(minutes=15 * quarters)
        if tz & 0x08:
            offset = -offset
        year = 1900 + yy if yy >= 90 else 2000 + yy
        return datetime(year, mo, dd, hh, mi, ss, tzinfo=timezone(offset)), None
    except ValueError as exc:
        return None, f"{what} {raw.hex().upper()} is not a valid time ({exc})"


def _dcs_info(dcs: int) -> tuple[Encoding, int | None, bool]:
    """TS 23.038 4: (alphabet, message class, compressed). Reserved codings read as GSM-7."""
    group = dcs >> 4
    if group <= 0x7:  # 00xx general data coding, 01xx the same marked for automatic deletion
        compressed = bool(dcs & 0x20)
        alphabet = (dcs >> 2) & 0x03
        enc: Encoding = "8bit" if alphabet == 1 else "ucs2" if alphabet == 2 else "gsm7"
        cls = dcs & 0x03 if dcs & 0x10 else None
        return enc, cls, compressed
    if group in (0xC, 0xD):  # message waiting indication, GSM-7
        return "gsm7", None, False
    if group == 0xE:  # message waiting indication, UCS-2
        return "ucs2", None, False
    if group == 0xF:  # data coding / message class
        return ("8bit" if dcs & 0x04 else "gsm7"), dcs & 0x03, False
    return "gsm7", None, False  # 1000..1011 reserved


def _parse_udh(header: bytes, problems: list[str]) -> tuple[InformationElement, ...]:
    # TS 23.040 9.2.3.24: IEI, IEL, data, repeated.
    out: list[InformationElement] = []
    i = 0
    while i < len(header):
        if i + 2 > len(header):
            raise PduError(f"user data header ends inside an element at offset {i}")
        iei, iel = header[i], header[i + 1]
        if i + 2 + iel > len(header):
            raise PduError(
                f"user data header element {iei:02X} says {iel} octets, "
                f"only {len(header) - i - 2} left"
            )
        out.append(InformationElement(iei=iei, data=header[i + 2 : i + 2 + iel]))
        i += 2 + iel
    return tuple(out)


def _concat_and_ports(
    udh: tuple[InformationElement, ...], problems: list[str]
) -> tuple[Concat | None, tuple[int, int] | None]:
    concat: Concat | None = None
    ports: tuple[int, int] | None = None
    for ie in udh:  # 9.2.3.24: a repeated element counts by its last occurrence
        if ie.iei in (0x00, 0x08):
            bits: Literal[8, 16] = 8 if ie.iei == 0x00 else 16
            want = 3 if bits == 8 else 4
            if len(ie.data) != want:
                problems.append(f"concat element {ie.iei:02X} has {len(ie.data)} octets, ignored")
                continue
            ref = ie.data[0] if bits == 8 else int.from_bytes(ie.data[:2], "big")
            total, seq = ie.data[-2], ie.data[-1]
            if total == 0 or seq == 0 or seq > total:
                # 9.2.3.24.1: such an element is ignored; the part reads as a whole message.
                problems.append(f"concat part {seq} of {total} is not valid, ignored")
                concat = None
                continue
            concat = Concat(reference=ref, total=total, seq=seq, bits=bits)
        elif ie.iei == 0x04 and len(ie.data) == 2:  # 9.2.3.24.3 8-bit ports
            ports = (ie.data[0], ie.data[1])
        elif ie.iei == 0x05 and len(ie.data) == 4:  # 9.2.3.24.4 16-bit ports
            ports = (int.from_bytes(ie.data[:2], "big"), int.from_bytes(ie.data[2:], "big"))
        elif ie.iei in (0x24, 0x25):  # 9.2.3.24.15/16 national language shift tables
            problems.append("national language shift table not supported; default alphabet used")
    return concat, ports


def _read_user_data(r: _Reader, dcs: int, udhi: bool, problems: list[str]) -> _UserData:
    # TS 23.040 9.2.3.16 TP-UDL (septets for GSM-7, octets otherwise) and 9.2.3.24 TP-UD.
    enc, _cls, compressed = _dcs_info(dcs)
    udl = r.octet("TP-UDL")
    seven = enc == "gsm7" and not compressed
    if seven:
        if udl > MAX_SEPTETS:
            raise PduError(f"TP-UDL {udl} is more than {MAX_SEPTETS} septets")
        n_octets = (udl * 7 + 7) // 8
    else:
        if udl > MAX_UD_OCTETS:
            raise PduError(f"TP-UDL {udl} is more than {MAX_UD_OCTETS} octets")
        n_octets = udl
    rest = r.rest()
    if len(rest) < n_octets:
        unit = "septets" if seven else "octets"
        raise PduError(
            f"TP-UDL says {udl} {unit} ({n_octets} octets) but only {len(rest)} octets follow"
        )
    if len(rest) > n_octets:
        problems.append(f"{len(rest) - n_octets} octet(s) after the user data ignored")
    raw = rest[:n_octets]
    udh: tuple[InformationElement, ...] = ()
    header_len = 0
    if udhi:
        if not raw:
            raise PduError("TP-UDHI is set but the user data is empty")
        udhl = raw[0]
        header_len = udhl + 1
        if header_len > len(raw):
            raise PduError(f"UDHL {udhl} is longer than the user data ({len(raw)} octets)")
        udh = _parse_udh(raw[1:header_len], problems)
    concat, ports = _concat_and_ports(udh, problems)
    if seven:
        skip = (header_len * 8 + 6) // 7  # header septets incl. fill bits (9.2.3.24)
        if skip > udl:
            raise PduError(f"user data header ({header_len} octets) is longer than TP-UDL {udl}")
        units = unpack_septets(raw, udl)[skip:]
    else:
        units = raw[header_len:]
    return _UserData(
        encoding=enc,
        compressed=compressed,
        udh=udh,
        units=units,
        raw=raw,
        concat=concat,
        ports=ports,
        problems=tuple(problems),
    )


def _text_and_data(ud: _UserData) -> tuple[str, bytes]:
    if ud.compressed:
        return "", ud.units
    if ud.encoding == "8bit":
        return "", ud.units
    return decode_units(ud.encoding, ud.units), b""


def _read_validity(r: _Reader, vpf: int, problems: list[str]) -> timedelta | datetime | None:
    # TS 23.040 9.2.3.12: VPF 00 none, 10 relative, 11 absolute, 01 enhanced.
    if vpf == 0:
        return None
    if vpf == 2:
        return _relative_validity(r.octet("TP-VP (relative)"))
    raw = r.take(7, "TP-VP")
    if vpf == 3:
        when, problem = _timestamp(raw, "TP-VP")
        if problem:
            problems.append(problem)
        return when
    kind = raw[0] & 0x07  # 9.2.3.12.3 enhanced format
    try:
        if kind == 1:
            return _relative_validity(raw[1])
        if kind == 2:
            return timedelta(seconds=raw[1])
        if kind == 3:
            return timedelta(
                hours=_bcd_pair(raw[1]), minutes=_bcd_pair(raw[2]), seconds=_bcd_pair(raw[3])
            )
    except ValueError as exc:
        problems.append(f"TP-VP enhanced {raw.hex().upper()}: {exc}")
    return None


def _relative_validity(vp: int) -> timedelta:
    # TS 23.040 9.2.3.12.1.
    if vp <= 143:
        return timedelta(minutes=(vp + 1) * 5)
    if vp <= 167:
        return timedelta(hours=12, minutes=(vp - 143) * 30)
    if vp <= 196:
        return timedelta(days=vp - 166)
    return timedelta(weeks=vp - 192)


def _to_bytes(pdu: bytes | str) -> bytes:
    if isinstance(pdu, bytes):
        return pdu
    text = pdu.strip()
    if len(text) % 2:
        raise PduError(f"PDU hex has an odd number of digits ({len(text)})")
    try:
        return bytes.fromhex(text)
    except ValueError:
        bad = next((c for c in text if c not in "0123456789abcdefABCDEF"), "?")
        raise PduError(f"PDU is not hex: {bad!r} in {text[:40]!r}") from None


def split_smsc(pdu: bytes | str) -> tuple[Address | None, bytes]:
    """Separate the SMSC address prefix (as +CMGR gives it) from the TPDU."""
    r = _Reader(_to_bytes(pdu))
    smsc = _read_smsc(r)
    return smsc, r.rest()


def sender_of(pdu: bytes | str, *, has_smsc: bool = True) -> Address | None:
    """The sender of an SMS-DELIVER that cannot be decoded as a whole. TP-OA comes right
    after the first octet (TS 23.040 9.2.2.1), so a PDU cut short or damaged further on
    still says who sent it. None when even that cannot be read (a trailing half octet is
    dropped first), the address is longer than 20 digits (9.1.2.5), or the PDU is not a
    DELIVER. Never raises."""
    try:
        if isinstance(pdu, str):
            text = pdu.strip()
            pdu = text[: len(text) - len(text) % 2]
        r = _Reader(_to_bytes(pdu))
        if has_smsc:
            _read_smsc(r)
        if r.octet("first octet (TP-MTI)") & 0x03 != 0:
            return None
        if r.data[r.pos] > 20:
            return None
        sender = _read_address(r, "TP-OA (sender)")
    except (PduError, IndexError):
        return None
    return sender if sender.number else None


def decode_pdu(
    pdu: bytes | str, *, has_smsc: bool = True
) -> SmsDeliver | SmsSubmit | SmsStatusReport:
    """Decode one PDU (hex text or octets). `has_smsc`: the PDU starts with the SMSC address
    field, as with +CMGR/+CMGL/+CMT/+CDS in PDU mode. TP-MTI 00 reads as SMS-DELIVER,
    01 as SMS-SUBMIT (stored outgoing messages), 10 as SMS-STATUS-REPORT.

    Raises `PduError` naming the field when the PDU is broken; nothing else.
    """
    r = _Reader(_to_bytes(pdu))
    if not r.data:
        raise PduError("PDU is empty")
    smsc = _read_smsc(r) if has_smsc else None
    first = r.octet("first octet (TP-MTI)")
    mti = first & 0x03
    if mti == 0:
        return _decode_deliver(r, first, smsc)
    if mti == 1:
        return _decode_submit(r, first, smsc)
    if mti == 2:
        return _decode_status_report(r, first, smsc)
    raise PduError(f"TP-MTI 3 (reserved) in first octet {first:02X}")


def _decode_deliver(r: _Reader, first: int, smsc: Address | None) -> SmsDeliver:
    # TS 23.040 9.2.2.1: first octet (MTI, MMS, LP, SRI, UDHI, RP), OA, PID, DCS, SCTS, UDL, UD.
    sender = _read_address(r, "TP-OA (sender)")
    pid = r.octet("TP-PID")
    dcs = r.octet("TP-DCS")
    scts_raw = r.take(7, "TP-SCTS (timestamp)")
    problems: list[str] = []
    scts, problem = _timestamp(scts_raw, "TP-SCTS")
    if problem:
        problems.append(problem)
    ud = _read_user_data(r, dcs, bool(first & 0x40), problems)
    text, data = _text_and_data(ud)
    return SmsDeliver(
        smsc=smsc,
        sender=sender,
        text=text,
        data=data,
        encoding=ud.encoding,
        compressed=ud.compressed,
        message_class=_dcs_info(dcs)[1],
        pid=pid,
        dcs=dcs,
        timestamp=scts,
        timestamp_raw=scts_raw,
        udh=ud.udh,
        concat=ud.concat,
        ports=ud.ports,
        units=ud.units,
        user_data_raw=ud.raw,
        more_messages=not first & 0x04,
        reply_path=bool(first & 0x80),
        status_report_indication=bool(first & 0x20),
        problems=ud.problems,
    )


def _decode_submit(r: _Reader, first: int, smsc: Address | None) -> SmsSubmit:
    # TS 23.040 9.2.2.2: first octet (MTI, RD, VPF, SRR, UDHI, RP), MR, DA, PID, DCS, VP,
    # UDL, UD.
    mr = r.octet("TP-MR")
    dest = _read_address(r, "TP-DA (destination)")
    pid = r.octet("TP-PID")
    dcs = r.octet("TP-DCS")
    problems: list[str] = []
    validity = _read_validity(r, (first >> 3) & 0x03, problems)
    ud = _read_user_data(r, dcs, bool(first & 0x40), problems)
    text, data = _text_and_data(ud)
    return SmsSubmit(
        smsc=smsc,
        message_reference=mr,
        destination=dest,
        text=text,
        data=data,
        encoding=ud.encoding,
        compressed=ud.compressed,
        message_class=_dcs_info(dcs)[1],
        pid=pid,
        dcs=dcs,
        validity=validity,
        request_status_report=bool(first & 0x20),
        reject_duplicates=bool(first & 0x04),
        reply_path=bool(first & 0x80),
        udh=ud.udh,
        concat=ud.concat,
        ports=ud.ports,
        units=ud.units,
        user_data_raw=ud.raw,
        problems=ud.problems,
    )


def _decode_status_report(r: _Reader, first: int, smsc: Address | None) -> SmsStatusReport:
    # TS 23.040 9.2.2.3: first octet (MTI, MMS, LP, SRQ, UDHI), MR, RA, SCTS, DT, ST,
    # then optional PI and the PID/DCS/UDL/UD it announces.
    mr = r.octet("TP-MR")
    recipient = _read_address(r, "TP-RA (recipient)")
    scts_raw = r.take(7, "TP-SCTS (timestamp)")
    dt_raw = r.take(7, "TP-DT (discharge time)")
    st = r.octet("TP-ST (status)")
    problems: list[str] = []
    scts, p1 = _timestamp(scts_raw, "TP-SCTS")
    dt, p2 = _timestamp(dt_raw, "TP-DT")
    problems += [p for p in (p1, p2) if p]
    text = ""
    if r.pos < len(r.data):
        # The optional part: a report whose mandatory fields were read is kept when this is
        # broken (the delivery is what matters); the problem is listed.
        start = r.pos
        try:
            text, problems = _status_report_extras(r, first, problems)
        except PduError as exc:
            tail = r.data[start:].hex().upper()
            problems.append(
                f"the optional part after TP-ST ({tail[:40]}) is broken: {exc}; "
                "the report is read without it"
            )
    return SmsStatusReport(
        smsc=smsc,
        message_reference=mr,
        recipient=recipient,
        timestamp=scts,
        timestamp_raw=scts_raw,
        discharge_time=dt,
        discharge_time_raw=dt_raw,
        status=st,
        category=_status_category(st),
        status_text=_STATUS_TEXT.get(st, f"status {st:#04x}"),
        more_messages=not first & 0x04,
        text=text,
        problems=tuple(problems),
    )


def _status_report_extras(r: _Reader, first: int, problems: list[str]) -> tuple[str, list[str]]:
    """TP-PI and the TP-PID, TP-DCS, TP-UDL and TP-UD it announces (9.2.3.27): bit 0 PID,
    bit 1 DCS, bit 2 UDL; bit 7 says another TP-PI octet follows, bits 3 to 6 are
    reserved and ignored. (text, problems)."""
    pi = r.octet("TP-PI")
    extension = pi
    while extension & 0x80:
        extension = r.octet("TP-PI extension")
    if pi & 0x01:
        r.octet("TP-PID")
    dcs = r.octet("TP-DCS") if pi & 0x02 else 0
    if pi & 0x04:
        ud = _read_user_data(r, dcs, bool(first & 0x40), problems)
        return _text_and_data(ud)[0], list(ud.problems)
    if r.pos < len(r.data):
        problems.append(f"{len(r.data) - r.pos} octet(s) after TP-PI ignored")
    return "", problems


# --- writing -----------------------------------------------------------------------------------

_NUMBER = re.compile(r"\+?[0-9*#]{1,20}")


def _encode_address(number: str, what: str) -> bytes:
    # TS 23.040 9.1.2.5: digit count, TOA (0x91 international, 0x81 unknown), swapped BCD;
    # text that is not a number becomes an alphanumeric address (TOA 0xD0, GSM-7 packed).
    cleaned = re.sub(r"[\s\-().]", "", number)
    if _NUMBER.fullmatch(cleaned):
        digits = cleaned.lstrip("+")
        toa = 0x91 if cleaned.startswith("+") else 0x81
        nibbles = [_BCD_DIGITS.index(d) for d in digits]
        if len(nibbles) % 2:
            nibbles.append(0x0F)
        body = bytes(nibbles[i] | nibbles[i + 1] << 4 for i in range(0, len(nibbles), 2))
        return bytes((len(digits), toa)) + body
    if re.fullmatch(r"\+?[0-9*#]+", cleaned):
        raise SmsEncodeError(f"{what} {number!r} has more than 20 digits")
    if not number or not is_gsm7(number):
        raise SmsEncodeError(f"{what} {number!r} is not a phone number")
    septets = gsm7_septets(number)
    if len(septets) > 11:
        raise SmsEncodeError(f"{what} {number!r} is longer than 11 characters")
    packed = pack_septets(septets)
    return bytes(((len(septets) * 7 + 3) // 4, 0xD0)) + packed


def _encode_smsc(smsc: str | None) -> bytes:
    if not smsc:
        return b"\x00"
    field_ = _encode_address(smsc, "SMSC")
    if field_[1] == 0xD0:
        raise SmsEncodeError(f"SMSC {smsc!r} is not a phone number")
    return bytes((len(field_) - 1,)) + field_[1:]


def _encode_timestamp(when: datetime) -> bytes:
    # TS 23.040 9.2.3.11 (also the absolute validity period, 9.2.3.12.2).
    offset = when.utcoffset() or timedelta(0)
    quarters = int(abs(offset.total_seconds()) // 900)
    if quarters > 79:
        raise SmsEncodeError(f"timezone offset {offset} does not fit TP-SCTS")

    def swap(v: int) -> int:
        return (v % 10) << 4 | (v // 10)

    tz = swap(quarters) | (0x08 if offset < timedelta(0) else 0)
    fields = (when.year % 100, when.month, when.day, when.hour, when.minute, when.second)
    return bytes(swap(v) for v in fields) + bytes((tz,))


def _relative_vp(validity: timedelta) -> int:
    # Smallest TS 23.040 9.2.3.12.1 value at least as long as asked, capped at 63 weeks.
    for vp in range(256):
        if _relative_validity(vp) >= validity:
            return vp
    return 255


def _dcs_for(encoding: Encoding, message_class: int | None) -> int:
    # TS 23.038 4, general data coding group: bits 3-2 alphabet, bit 4 class present.
    alphabet = {"gsm7": 0, "8bit": 1, "ucs2": 2}[encoding]
    dcs = alphabet << 2
    if message_class is not None:
        if message_class not in (0, 1, 2, 3):
            raise SmsEncodeError(f"message class {message_class} is not 0-3")
        dcs |= 0x10 | message_class
    return dcs


def _encode_user_data(
    payload: str | bytes, encoding: Encoding, udh: Iterable[InformationElement]
) -> tuple[int, bytes]:
    """(TP-UDL, TP-UD) for text or 8-bit data with the given header elements."""
    elements = b"".join(bytes((ie.iei, len(ie.data))) + ie.data for ie in udh)
    header = bytes((len(elements),)) + elements if elements else b""
    if encoding == "gsm7":
        if not isinstance(payload, str):
            raise SmsEncodeError("GSM-7 user data must be text")
        septets = gsm7_septets(_clean(payload))
        header_septets = (len(header) * 8 + 6) // 7
        fill = header_septets * 7 - len(header) * 8
        udl = header_septets + len(septets)
        if udl > MAX_SEPTETS:
            raise SmsEncodeError(f"text needs {udl} septets; one PDU holds {MAX_SEPTETS}")
        return udl, header + pack_septets(septets, fill)
    if encoding == "ucs2":
        if not isinstance(payload, str):
            raise SmsEncodeError("UCS-2 user data must be text")
        body = _clean(payload).encode("utf-16-be")
    else:
        if not isinstance(payload, bytes):
            raise SmsEncodeError("8-bit user data must be bytes")
        body = payload
    ud = header + body
    if len(ud) > MAX_UD_OCTETS:
        raise SmsEncodeError(f"user data needs {len(ud)} octets; one PDU holds {MAX_UD_OCTETS}")
    return len(ud), ud


def encode_submit(
    *,
    destination: str,
    payload: str | bytes,
    encoding: Encoding | None = None,
    concat: Concat | None = None,
    message_reference: int = 0,
    validity: timedelta | datetime | None = None,
    request_status_report: bool = False,
    reject_duplicates: bool = False,
    message_class: int | None = None,
    pid: int = 0,
    smsc: str | None = None,
) -> bytes:
    """One SMS-SUBMIT (TS 23.040 9.2.2.2) with its SMSC field in front ("00": the modem's
    default SMSC), ready for AT+CMGS. Raises `SmsEncodeError` when it does not fit."""
    if encoding is None:
        encoding = "8bit" if isinstance(payload, bytes) else choose_encoding(payload)
    if not 0 <= message_reference <= 255:
        raise SmsEncodeError(f"message reference {message_reference} is not 0-255")
    if validity is None:
        vpf, vp = 0, b""
    elif isinstance(validity, datetime):
        vpf, vp = 3, _encode_timestamp(validity)
    else:
        vpf, vp = 2, bytes((_relative_vp(validity),))
    udh = [concat.element()] if concat else []
    udl, ud = _encode_user_data(payload, encoding, udh)
    first = 0x01 | vpf << 3
    first |= 0x04 if reject_duplicates else 0
    first |= 0x20 if request_status_report else 0
    first |= 0x40 if udh else 0
    return (
        _encode_smsc(smsc)
        + bytes((first, message_reference))
        + _encode_address(destination, "destination")
        + bytes((pid & 0xFF, _dcs_for(encoding, message_class)))
        + vp
        + bytes((udl,))
        + ud
    )


def encode_deliver(
    *,
    sender: str,
    payload: str | bytes,
    timestamp: datetime,
    encoding: Encoding | None = None,
    concat: Concat | None = None,
    message_class: int | None = None,
    pid: int = 0,
    smsc: str | None = None,
    more_messages: bool = False,
    extra_udh: tuple[InformationElement, ...] = (),
) -> bytes:
    """One SMS-DELIVER (TS 23.040 9.2.2.1) as a modem would store it, SMSC field first.
    For the simulator and tests; a text sender becomes an alphanumeric address."""
    if encoding is None:
        encoding = "8bit" if isinstance(payload, bytes) else choose_encoding(payload)
    udh = [*extra_udh, *([concat.element()] if concat else [])]
    udl, ud = _encode_user_data(payload, encoding, udh)
    first = 0x00 | (0 if more_messages else 0x04) | (0x40 if udh else 0)
    return (
        _encode_smsc(smsc)
        + bytes((first,))
        + _encode_address(sender, "sender")
        + bytes((pid & 0xFF, _dcs_for(encoding, message_class)))
        + _encode_timestamp(timestamp)
        + bytes((udl,))
        + ud
    )


def cmgs_length(pdu: bytes | str) -> int:
    """AT+CMGS/+CMGW <length> (TS 27.005 3.5.1): TPDU octets, the SMSC field not counted."""
    data = _to_bytes(pdu)
    if not data or data[0] + 1 > len(data):
        raise SmsEncodeError("PDU does not start with a complete SMSC field")
    return len(data) - data[0] - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitPdu:
    """One part ready to send: `AT+CMGS={length}`, then `hex` + Ctrl-Z at the prompt."""

    pdu: bytes
    length: int
    text: str
    seq: int
    total: int

    @property
    def hex(self) -> str:
        return self.pdu.hex().upper()


def build_submit_pdus(
    destination: str,
    text: str,
    *,
    reference: int,
    encoding: Encoding | None = None,
    validity: timedelta | datetime | None = None,
    request_status_report: bool = False,
    message_class: int | None = None,
    smsc: str | None = None,
    max_parts: int = MAX_PARTS,
) -> list[SubmitPdu]:
    """Text -> the PDUs to send, split by `split_text`; several parts share the 8-bit
    concatenation `reference` (0-255, the caller keeps a counter)."""
    text = _clean(text)
    enc = encoding or choose_encoding(text)
    parts = split_text(text, enc)
    if len(parts) > max_parts:
        raise SmsEncodeError(f"text needs {len(parts)} parts; at most {max_parts} allowed")
    total = len(parts)
    out: list[SubmitPdu] = []
    for seq, part in enumerate(parts, 1):
        concat = Concat(reference=reference & 0xFF, total=total, seq=seq) if total > 1 else None
        pdu = encode_submit(
            destination=destination,
            payload=part,
            encoding=enc,
            concat=concat,
            validity=validity,
            request_status_report=request_status_report,
            message_class=message_class,
            smsc=smsc,
        )
        out.append(SubmitPdu(pdu=pdu, length=cmgs_length(pdu), text=part, seq=seq, total=total))
    return out


# --- fingerprint -------------------------------------------------------------------------------


def fingerprint(msg: SmsDeliver | SmsStatusReport) -> str:
    """Stable hash of what makes a received part itself: sender and its type, SMSC timestamp,
    concatenation reference/total/part, coding and user data (header included). The same
    part read twice (a delete that failed) has the same fingerprint; 32 hex digits."""
    h = hashlib.sha256()

    def put(tag: str, value: bytes) -> None:
        h.update(tag.encode() + len(value).to_bytes(4, "big") + value)

    if isinstance(msg, SmsDeliver):
        put("kind", b"deliver")
        put("sender", msg.sender.number.encode("utf-8", "surrogatepass"))
        put("toa", bytes((msg.sender.toa,)))
        put("scts", msg.timestamp_raw)
        c = msg.concat
        concat = b"" if c is None else f"{c.bits}:{c.reference}:{c.total}:{c.seq}".encode()
        put("concat", concat)
        put("dcs", bytes((msg.dcs,)))
        put("ud", msg.user_data_raw)
    else:
        put("kind", b"status")
        put("recipient", msg.recipient.number.encode("utf-8", "surrogatepass"))
        put("mr", bytes((msg.message_reference,)))
        put("scts", msg.timestamp_raw)
        put("dt", msg.discharge_time_raw)
        put("st", bytes((msg.status,)))
    return h.hexdigest()[:32]
