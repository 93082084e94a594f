"""T.30 frames: HDLC framing and FCS, facsimile control fields, DIS/DTC/DCS bits, identities.

Everything here is octets as a Class 1 modem passes them (AT+FTH=3 / AT+FRH=3, T.31 8.3): the
first bit sent on the line is each octet's least significant bit, so T.30 bit n of the FIF is
octet (n-1)//8, mask 1 << ((n-1) % 8). Pure: no I/O; nothing a peer sends raises anything but
`RemoteProtocolError` (`FrameError`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

from firmware_app.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "ADDRESS",
    "CONTROL_FINAL",
    "CONTROL_NOT_FINAL",
    "FALLBACK_ORDER",
    "MODULATIONS",
    "Capabilities",
    "Dcs",
    "Fcf",
    "Frame",
    "FrameError",
    "Modulation",
    "crc16",
    "decode_id",
    "encode_id",
    "frame_from_modem",
    "min_scan_bits",
    "with_fcs",
]

# T.30 5.3.4 / 5.3.5: address field is all ones; control 1100 X000 in line order, X = final.
ADDRESS: Final = 0xFF
CONTROL_NOT_FINAL: Final = 0x03
CONTROL_FINAL: Final = 0x13
DLE: Final = 0x10
ETX: Final = 0x03


class FrameError(RemoteProtocolError):
    """A frame from the line is too short, has a bad address/control field or a bad FCS."""


class Fcf(enum.IntEnum):
    """Facsimile control field codes (T.30 5.3.6.1) as octets, with the X bit (0x01) clear.

    The X bit is set by the station that received a valid DIS (the calling sender) in
    every frame except DIS/CSI/NSF, where the low bit tells DIS (0x80) from DTC (0x81).
    """

    DIS = 0x80
    CSI = 0x40
    NSF = 0x20
    DTC = 0x81
    CIG = 0x41
    NSC = 0x21
    DCS = 0x82
    TSI = 0x42
    NSS = 0x22
    CFR = 0x84
    FTT = 0x44
    EOM = 0x8E
    MPS = 0x4E
    EOP = 0x2E
    PRI_EOM = 0x9E
    PRI_MPS = 0x5E
    PRI_EOP = 0x3E
    MCF = 0x8C
    RTP = 0xCC
    RTN = 0x4C
    PIP = 0xAC
    PIN = 0x2C
    DCN = 0xFA
    CRP = 0x1A


_INITIAL: Final = frozenset({0x80, 0x40, 0x20, 0x81, 0x41, 0x21})


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One HDLC frame without its FCS: address, control, FCF, FIF."""

    fcf: int
    fif: bytes = b""
    final: bool = True
    x_bit: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.fcf <= 0xFF:
            raise LocalProtocolError(f"FCF {self.fcf!r} is not an octet")

    @property
    def kind(self) -> Fcf | None:
        """The FCF without the X bit (initial identification frames keep their low bit)."""
        code = self.fcf if self.fcf in _INITIAL else self.fcf & 0xFE
        try:
            return Fcf(code)
        except ValueError:
            return None

    @property
    def name(self) -> str:
        kind = self.kind
        return kind.name if kind is not None else f"FCF 0x{self.fcf:02X}"

    def to_bytes(self) -> bytes:
        control = CONTROL_FINAL if self.final else CONTROL_NOT_FINAL
        return bytes((ADDRESS, control, self.fcf)) + self.fif

    @classmethod
    def make(cls, kind: Fcf, fif: bytes = b"", *, final: bool = True, x_bit: bool = False) -> Frame:
        fcf = int(kind) | (1 if x_bit and kind not in _INITIAL else 0)
        return cls(fcf=fcf, fif=fif, final=final, x_bit=x_bit and kind not in _INITIAL)

    @classmethod
    def parse(cls, data: bytes) -> Frame:
        """A frame from its octets (FCS already removed). Raises `FrameError`."""
        if len(data) < 3:
            raise FrameError(f"frame too short ({len(data)} octets): {data.hex()}")
        if data[0] != ADDRESS:
            raise FrameError(f"frame address 0x{data[0]:02X} is not 0xFF")
        if data[1] not in (CONTROL_FINAL, CONTROL_NOT_FINAL):
            raise FrameError(f"frame control 0x{data[1]:02X} is neither 0x03 nor 0x13")
        fcf = data[2]
        x_bit = fcf not in _INITIAL and bool(fcf & 1)
        return cls(fcf=fcf, fif=bytes(data[3:]), final=data[1] == CONTROL_FINAL, x_bit=x_bit)


# --- FCS (T.30 5.3.7 refers to ISO 3309 / X.25: CRC-16, reflected 0x8408, init and xor 0xFFFF)


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc16(data: bytes) -> int:
    """The HDLC frame check sequence of `data` (sent low octet first)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def with_fcs(frame: bytes) -> bytes:
    """`frame` followed by its two FCS octets, as a modem delivers it after AT+FRH=3."""
    fcs = crc16(frame)
    return frame + bytes((fcs & 0xFF, fcs >> 8))


def frame_from_modem(data: bytes) -> tuple[bytes, bool]:
    """What AT+FRH=3 delivered (DLE-escaped, ending DLE ETX, FCS included, REFERENCE.md 5)
    -> (frame without FCS, FCS ok). A frame too short to hold an FCS comes back whole with
    False. The modem's own OK/ERROR verdict is the driver's to combine with ours."""
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == DLE and i + 1 < len(data):
            nxt = data[i + 1]
            if nxt == ETX:
                break
            if nxt == DLE:
                out.append(DLE)
            i += 2
            continue
        if byte != DLE:
            out.append(byte)
        i += 1
    if len(out) < 5:
        return bytes(out), False
    body, fcs = bytes(out[:-2]), out[-2] | out[-1] << 8
    return body, crc16(body) == fcs


# --- modulations (T.31 Table 1 codes for +FTM/+FRM; T.30 Table 2 bits 11-14) --------------


@dataclass(frozen=True, slots=True)
class Modulation:
    """An image-data modem and rate: `code` for AT+FTM/AT+FRM (long training for V.17),
    `dcs` the value of DCS bits 11-14 (bit 11 least significant)."""

    name: str
    family: str
    bps: int
    code: int
    short_code: int
    dcs: int

    def bytes_for(self, ms: int) -> int:
        return self.bps * ms // 8000


MODULATIONS: Final = {
    m.name: m
    for m in (
        Modulation("V.17/14400", "V.17", 14400, 145, 146, 0b1000),
        Modulation("V.17/12000", "V.17", 12000, 121, 122, 0b1010),
        Modulation("V.17/9600", "V.17", 9600, 97, 98, 0b1001),
        Modulation("V.29/9600", "V.29", 9600, 96, 96, 0b0001),
        Modulation("V.17/7200", "V.17", 7200, 73, 74, 0b1011),
        Modulation("V.29/7200", "V.29", 7200, 72, 72, 0b0011),
        Modulation("V.27ter/4800", "V.27ter", 4800, 48, 48, 0b0010),
        Modulation("V.27ter/2400", "V.27ter", 2400, 24, 24, 0b0000),
    )
}
# Fall-back order after FTT/RTN (the order SpanDSP and HylaFAX step down in).
FALLBACK_ORDER: Final = tuple(MODULATIONS.values())
_BY_DCS: Final = {m.dcs: m for m in FALLBACK_ORDER}

# DIS/DTC bits 11-14: which modem families the receiver has.
_DIS_FAMILIES: Final[dict[int, frozenset[str]]] = {
    0b0000: frozenset({"V.27ter-fallback"}),
    0b0010: frozenset({"V.27ter"}),
    0b0001: frozenset({"V.29"}),
    0b0011: frozenset({"V.27ter", "V.29"}),
    0b1011: frozenset({"V.27ter", "V.29", "V.17"}),
}

# Minimum scan line time, bits 21-23 (bit 21 least significant), T.30 Table 2.
# DIS: (normal ms, fine ms); DCS: ms.
_DIS_SCAN: Final[dict[int, tuple[int, int]]] = {
    0b000: (20, 20),
    0b100: (40, 40),
    0b010: (10, 10),
    0b001: (5, 5),
    0b110: (10, 5),
    0b011: (20, 10),
    0b101: (40, 20),
    0b111: (0, 0),
}
_DCS_SCAN: Final[dict[int, int]] = {0b000: 20, 0b100: 40, 0b010: 10, 0b001: 5, 0b111: 0}
_DCS_SCAN_CODE: Final = {ms: code for code, ms in _DCS_SCAN.items()}


def _bit(fif: bytes, n: int) -> bool:
    i = (n - 1) // 8
    return i < len(fif) and bool(fif[i] >> ((n - 1) % 8) & 1)


def _field(fif: bytes, first: int, count: int) -> int:
    return sum(1 << k for k in range(count) if _bit(fif, first + k))


def _set(fif: bytearray, n: int, on: bool = True) -> None:
    if on:
        fif[(n - 1) // 8] |= 1 << ((n - 1) % 8)


def _set_field(fif: bytearray, first: int, count: int, value: int) -> None:
    for k in range(count):
        _set(fif, first + k, bool(value >> k & 1))


WIDTHS: Final = {0: 1728, 1: 2048, 2: 2432}  # bits 17-18 in DCS (T.30 Table 2)
LENGTHS: Final = {0: "A4", 1: "B4", 2: "unlimited"}  # bits 19-20 in DCS


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What a DIS (or DTC) offers. `families` names the modem families (bits 11-14);
    `scan_ms` the minimum scan line time at (normal, fine); `extra` the octets past the
    third, kept as sent (ECM and friends live there; we do not use them)."""

    receive: bool = True
    transmit: bool = False
    families: frozenset[str] = frozenset({"V.27ter", "V.29", "V.17"})
    fine: bool = True
    mr: bool = True
    width_code: int = 0
    length_code: int = 2  # bit 20: unlimited (letter and legal fit); bit 19: B4
    scan_ms: tuple[int, int] = (0, 0)
    ecm: bool = False

    def rates(self) -> tuple[Modulation, ...]:
        """Modulations this receiver accepts, fastest first."""
        fams = set(self.families)
        if "V.27ter-fallback" in fams:
            return (MODULATIONS["V.27ter/2400"],)
        return tuple(m for m in FALLBACK_ORDER if m.family in fams)

    def to_fif(self) -> bytes:
        code = next((c for c, fams in _DIS_FAMILIES.items() if fams == self.families), None)
        if code is None:
            raise LocalProtocolError(f"DIS cannot offer the modem set {sorted(self.families)}")
        scan = next((c for c, v in _DIS_SCAN.items() if v == self.scan_ms), None)
        if scan is None:
            raise LocalProtocolError(f"DIS has no code for scan line times {self.scan_ms}")
        fif = bytearray(4 if self.ecm else 3)
        _set(fif, 9, self.transmit)
        _set(fif, 10, self.receive)
        _set_field(fif, 11, 4, code)
        _set(fif, 15, self.fine)
        _set(fif, 16, self.mr)
        _set_field(fif, 17, 2, self.width_code)
        _set_field(fif, 19, 2, self.length_code)
        _set_field(fif, 21, 3, scan)
        if self.ecm:
            _set(fif, 24)  # extend: fourth octet follows
            _set(fif, 27)
        return bytes(fif)

    @classmethod
    def from_fif(cls, fif: bytes) -> Capabilities:
        """Decode a DIS/DTC FIF. Raises `FrameError` when it is shorter than 3 octets."""
        if len(fif) < 3:
            raise FrameError(f"DIS too short ({len(fif)} octets): {fif.hex()}")
        code = _field(fif, 11, 4)
        # Reserved rate codes: assume the mandatory V.27ter and V.29 (T.30 Table 2 note).
        families = _DIS_FAMILIES.get(code, frozenset({"V.27ter", "V.29"}))
        return cls(
            receive=_bit(fif, 10),
            transmit=_bit(fif, 9),
            families=families,
            fine=_bit(fif, 15),
            mr=_bit(fif, 16),
            width_code=_field(fif, 17, 2),
            length_code=_field(fif, 19, 2),
            scan_ms=_DIS_SCAN[_field(fif, 21, 3)],
            ecm=_bit(fif, 24) and _bit(fif, 27),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Dcs:
    """The sender's choice (DCS): modulation, resolution, coding, width, length, scan time."""

    modulation: Modulation
    fine: bool = False
    mr: bool = False
    width_code: int = 0
    length_code: int = 0
    scan_ms: int = 20
    receive: bool = True

    def __post_init__(self) -> None:
        if self.scan_ms not in _DCS_SCAN_CODE:
            raise LocalProtocolError(f"DCS scan line time {self.scan_ms} ms has no code")

    @property
    def width(self) -> int:
        return WIDTHS.get(self.width_code, 1728)

    @property
    def min_scan_bits(self) -> int:
        return min_scan_bits(self.modulation.bps, self.scan_ms)

    def to_fif(self) -> bytes:
        fif = bytearray(3)
        _set(fif, 10, self.receive)
        _set_field(fif, 11, 4, self.modulation.dcs)
        _set(fif, 15, self.fine)
        _set(fif, 16, self.mr)
        _set_field(fif, 17, 2, self.width_code)
        _set_field(fif, 19, 2, self.length_code)
        _set_field(fif, 21, 3, _DCS_SCAN_CODE[self.scan_ms])
        return bytes(fif)

    @classmethod
    def from_fif(cls, fif: bytes) -> Dcs:
        """Decode a DCS FIF. Raises `FrameError` for a short FIF or an unknown rate code."""
        if len(fif) < 3:
            raise FrameError(f"DCS too short ({len(fif)} octets): {fif.hex()}")
        rate = _field(fif, 11, 4)
        modulation = _BY_DCS.get(rate)
        if modulation is None:
            raise FrameError(f"DCS rate code {rate:04b} (bits 11-14) is reserved")
        scan = _DCS_SCAN.get(_field(fif, 21, 3))
        if scan is None:
            raise FrameError(f"DCS scan line code {_field(fif, 21, 3):03b} is reserved")
        return cls(
            modulation=modulation,
            fine=_bit(fif, 15),
            mr=_bit(fif, 16),
            width_code=_field(fif, 17, 2),
            length_code=_field(fif, 19, 2),
            scan_ms=scan,
            receive=_bit(fif, 10),
        )


def min_scan_bits(bps: int, ms: int) -> int:
    """Bits a coded scan line must at least take at `bps` (T.4 4.1.2: fill before EOL)."""
    return math.ceil(bps * ms / 1000)


# --- identities (T.30 5.3.6.2.4-5: 20 characters, last character sent first) ----------------

ID_LENGTH: Final = 20


def encode_id(identity: str) -> bytes:
    """CSI/TSI/CIG FIF: digits, '+' and space, padded to 20 and sent in reverse order."""
    text = "".join(ch for ch in identity if ch.isdigit() or ch in "+ ")[:ID_LENGTH]
    return text.ljust(ID_LENGTH).encode("ascii")[::-1]


def decode_id(fif: bytes) -> str:
    """The identity in a CSI/TSI/CIG FIF, as printed (any byte survives as Latin-1)."""
    return fif[::-1].decode("latin-1").strip(" \x00")
