"""Caller ID as a modem shows it: formatted lines (+VCID=1) or the raw packet (+VCID=2).

Every form REFERENCE.md 1 lists can be produced, chosen per call with `CidForm` (the same
modem shows different forms on different lines, exchanges and firmware):
- `DATE = 0117` / `TIME = 1452` / `NMBR = ...` / `NAME = ...`, with or without spaces
  around `=` (both seen; mgetty `cnd.c` reads both);
- fields in another order: NAME (or MESG) after NMBR, NAME before it (NCID test data;
  mgetty `cnd.c`: a parser that emits on NMBR loses fields);
- `MESG = 110101` (parameters the modem did not decode, before DATE on UK BT lines);
- `DDN_NMBR=` (the dialled number, Rockwell/Conexant);
- a combined `DATE TIME=01/06 14:15` (NCID test data) and an empty `DATE=`;
- `NMBR = P` (private) / `NMBR = O` (out of area), names cut to 15 characters, non-ASCII
  names (sent as Latin-1 bytes), no NAME at all (UK, callattendant #139);
- raw Bellcore GR-30 / ETSI EN 300 659-3 packets as hex (V.253 unformatted report): MDMF
  (date/time, number or its absence, dialled number, name or its absence) or SDMF (date,
  time, number), checksum included.
GSM +CLIP fields follow 3GPP TS 27.007 7.6, CLI validity 0 (number), 1 (withheld by the
caller) and 2 (not available from the network). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# GR-30-CORE message and parameter types.
_SDMF = 0x04
_MDMF = 0x80
_P_DATETIME = 0x01
_P_NUMBER = 0x02
_P_DIALLED = 0x03
_P_NO_NUMBER = 0x04
_P_NAME = 0x07
_P_NO_NAME = 0x08

# REFERENCE.md 1: names are cut to 15 characters.
MAX_NAME = 15

# The order most modems print the fields in (V.253 +VCID=1 examples; mgetty cnd.c).
DEFAULT_ORDER = ("MESG", "DATE", "TIME", "NMBR", "NAME", "DDN_NMBR")


@dataclass(frozen=True, slots=True, kw_only=True)
class CidForm:
    """How a caller-ID block is laid out (REFERENCE.md 1 "Caller ID (analog)").

    `separator`: between a field's name and value; None uses the personality's (" = ").
    `order`: field names in the order they are printed (missing names are left out, so
    ``("DATE", "TIME", "NAME", "NMBR")`` puts NAME first). `date_time`: one combined
    ``DATE TIME=MM/DD HH:MM`` line instead of DATE and TIME. `empty_date`: ``DATE=`` with
    no value. `packet`: the raw packet type with +VCID=2.
    """

    separator: str | None = None
    order: tuple[str, ...] = DEFAULT_ORDER
    date_time: bool = False
    empty_date: bool = False
    packet: Literal["mdmf", "sdmf"] = "mdmf"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerId:
    """Who is calling. `number=None` with `private=True` is a withheld number; without it,
    a number the network could not give (out of area; GSM CLI validity 2)."""

    number: str | None = None
    name: str | None = None
    when: datetime | None = None
    private: bool = False
    alpha: str = ""  # GSM: phonebook name shown in +CLIP
    message: str | None = None  # MESG: parameters the modem did not decode, as hex
    dialled: str | None = None  # DDN_NMBR / MDMF parameter 3: the number the caller dialled
    form: CidForm = field(default_factory=CidForm)
    extra: tuple[str, ...] = field(default=())  # more lines printed first, e.g. "MESG = 11"


def _absent_number_code(cid: CallerId) -> str:
    return "P" if cid.private else "O"


def formatted_lines(cid: CallerId, when: datetime, separator: str = " = ") -> list[str]:
    """The +VCID=1 report, laid out as `cid.form` says (REFERENCE.md 1 "Caller ID")."""
    form = cid.form
    sep = form.separator if form.separator is not None else separator
    t = cid.when or when
    number = cid.number if cid.number and not cid.private else _absent_number_code(cid)
    values: dict[str, str | None] = {
        "MESG": cid.message,
        "DATE": "" if form.empty_date else f"{t:%m%d}",
        "TIME": f"{t:%H%M}",
        "NMBR": number,
        "NAME": None if cid.name is None else ("P" if cid.private else cid.name[:MAX_NAME]),
        "DDN_NMBR": cid.dialled,
    }
    lines = list(cid.extra)
    for key in form.order:
        if form.date_time and key == "TIME":
            continue
        if form.date_time and key == "DATE":
            lines.append(f"DATE TIME{sep}{t:%m/%d %H:%M}")
            continue
        value = values.get(key)
        if value is not None:
            lines.append(f"{key}{sep}{value}".rstrip())
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
    if cid.dialled:
        dialled = cid.dialled.encode("ascii", "replace")[:20]
        params += bytes([_P_DIALLED, len(dialled)]) + dialled
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


def raw_line(cid: CallerId, when: datetime, sdmf: bool | None = None) -> str:
    """The +VCID=2 report: the packet as upper-case hex on one line (`cid.form.packet`
    unless `sdmf` says otherwise)."""
    use_sdmf = cid.form.packet == "sdmf" if sdmf is None else sdmf
    packet = sdmf_packet(cid, when) if use_sdmf else mdmf_packet(cid, when)
    return packet.hex().upper()


def clip_fields(cid: CallerId) -> dict[str, str]:
    """Values for a +CLIP line (3GPP TS 27.007 7.6): number, type, alpha, validity."""
    if cid.private:
        # Withheld: empty number, CLI validity 1 (withheld by the caller).
        return {"number": "", "type": "128", "alpha": "", "validity": "1"}
    if not cid.number:
        # CLI validity 2: not available (interworking, the network sent none).
        return {"number": "", "type": "128", "alpha": "", "validity": "2"}
    kind = "145" if cid.number.startswith("+") else "129"
    return {"number": cid.number, "type": kind, "alpha": cid.alpha, "validity": "0"}
