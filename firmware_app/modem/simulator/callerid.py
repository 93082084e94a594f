"""Caller ID as a modem shows it: formatted lines (+VCID=1) or the raw packet (+VCID=2).

The raw packet is Bellcore GR-30 / ETSI EN 300 659 MDMF or SDMF with its checksum, written
as hex the way V.253 modems print the unformatted report. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# GR-30-CORE message and parameter types.
_SDMF = 0x04
_MDMF = 0x80
_P_DATETIME = 0x01
_P_NUMBER = 0x02
_P_NO_NUMBER = 0x04
_P_NAME = 0x07
_P_NO_NAME = 0x08

# REFERENCE.md 1: names are cut to 15 characters.
MAX_NAME = 15


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerId:
    """Who is calling. `number=None` with `private=True` is a withheld number."""

    number: str | None = None
    name: str | None = None
    when: datetime | None = None
    private: bool = False
    alpha: str = ""  # GSM: phonebook name shown in +CLIP
    extra: tuple[str, ...] = field(default=())  # extra formatted lines, e.g. "MESG = 110101"


def _absent_number_code(cid: CallerId) -> str:
    return "P" if cid.private else "O"


def formatted_lines(cid: CallerId, when: datetime, separator: str = " = ") -> list[str]:
    """The +VCID=1 report: DATE, TIME, NMBR, NAME (REFERENCE.md 1 "Caller ID")."""
    t = cid.when or when
    lines = list(cid.extra)
    lines.append(f"DATE{separator}{t:%m%d}")
    lines.append(f"TIME{separator}{t:%H%M}")
    number = cid.number if cid.number and not cid.private else _absent_number_code(cid)
    lines.append(f"NMBR{separator}{number}")
    if cid.name is not None:
        name = cid.name[:MAX_NAME] if not cid.private else "P"
        lines.append(f"NAME{separator}{name}")
    return lines


def _checksum(body: bytes) -> int:
    return (-sum(body)) & 0xFF


def mdmf_packet(cid: CallerId, when: datetime) -> bytes:
    """Multiple Data Message Format packet, checksum included."""
    t = cid.when or when
    params = bytearray()
    stamp = f"{t:%m%d%H%M}".encode("ascii")
    params += bytes([_P_DATETIME, len(stamp)]) + stamp
    if cid.number and not cid.private:
        num = cid.number.encode("ascii", "replace")[:20]
        params += bytes([_P_NUMBER, len(num)]) + num
    else:
        params += bytes([_P_NO_NUMBER, 1]) + _absent_number_code(cid).encode("ascii")
    if cid.name and not cid.private:
        name = cid.name[:MAX_NAME].encode("latin-1", "replace")
        params += bytes([_P_NAME, len(name)]) + name
    elif cid.name is not None or cid.private:
        params += bytes([_P_NO_NAME, 1]) + _absent_number_code(cid).encode("ascii")
    body = bytes([_MDMF, len(params)]) + params
    return body + bytes([_checksum(body)])


def sdmf_packet(cid: CallerId, when: datetime) -> bytes:
    """Single Data Message Format packet: date, time and number only."""
    t = cid.when or when
    number = cid.number if cid.number and not cid.private else _absent_number_code(cid)
    payload = f"{t:%m%d%H%M}{number}".encode("ascii", "replace")
    body = bytes([_SDMF, len(payload)]) + payload
    return body + bytes([_checksum(body)])


def raw_line(cid: CallerId, when: datetime, sdmf: bool = False) -> str:
    """The +VCID=2 report: the packet as upper-case hex on one line."""
    packet = sdmf_packet(cid, when) if sdmf else mdmf_packet(cid, when)
    return packet.hex().upper()


def clip_fields(cid: CallerId) -> dict[str, str]:
    """Values for a +CLIP line (3GPP TS 27.007 7.6): number, type, alpha, validity."""
    if cid.private or not cid.number:
        # Withheld: empty number, CLI validity 1 (withheld by the caller).
        return {"number": "", "type": "128", "alpha": "", "validity": "1"}
    kind = "145" if cid.number.startswith("+") else "129"
    return {"number": cid.number, "type": kind, "alpha": cid.alpha, "validity": "0"}
