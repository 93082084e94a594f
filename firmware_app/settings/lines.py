"""Settings section for the modem lines: SIM PIN, line country, rings, caller-ID wait.

Plain data with defaults, so existing settings documents need no migration. Pure: the line
workers read this section when they (re)initialise a modem.
"""

# `setting()` returns a dataclasses.field(), which RUF009 cannot tell.
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
from typing import Literal

from .schema import number_range, setting

# ITU-T T.35 country codes for AT+GCI (V.250 6.1.9), those USB voice modems commonly list.
COUNTRY_CODES: dict[str, str] = {
    "B5": "United States / Canada",
    "B4": "United Kingdom",
    "42": "Germany",
    "3D": "France",
    "09": "Australia",
    "00": "Japan",
}
CountryCode = Literal["B5", "B4", "42", "3D", "09", "00"]


def _check_fax_id(v: str) -> str | None:
    if len(v) <= 20 and all(c.isdigit() or c in "+ " for c in v):
        return None
    return "up to 20 characters: digits, spaces and +, e.g. +1 555 010 0100"


def _check_line_names(v: list[str]) -> str | None:
    bad = [
        n for n in v if not (n and n.isascii() and n.replace("-", "").replace("_", "").isalnum())
    ]
    return f"{bad[0]!r} is not a line name such as line1" if bad else None


def _check_pin(v: str) -> str | None:
    if v == "" or (v.isascii() and v.isdigit() and 4 <= len(v) <= 8):
        return None
    return "4 to 8 digits, or empty when the SIM has no PIN"


@dataclasses.dataclass(slots=True, kw_only=True)
class Lines:
    sim_pin: str = setting(
        "",
        label="SIM PIN",
        check=_check_pin,
        secret=True,
        help="GSM lines: the SIM card's PIN. A PIN the SIM rejected is never sent again by "
        "itself: correct it here.",
    )
    country: CountryCode = setting(
        "B5",
        label="Phone line country",
        help="Analog lines (AT+GCI): B5 United States/Canada, B4 United Kingdom, 42 Germany, "
        "3D France, 09 Australia, 00 Japan.",
    )
    rings_before_answer: int = setting(
        2,
        label="Answer after (rings)",
        check=number_range(1, 10),
        help="Frontdesk picks up at this ring. Caller ID arrives after the first ring.",
    )
    caller_id_timeout: float = setting(
        5.5,
        label="Wait for caller ID (seconds)",
        check=number_range(1.0, 15.0),
        help="After a ring or a caller-ID line, how long to wait for the rest of the caller "
        "ID before deciding with what has arrived.",
    )
    fax_id: str = setting(
        "",
        label="Fax number (station id)",
        check=_check_fax_id,
        help="The number other fax machines show for Frontdesk (T.30 CSI/TSI): digits, spaces "
        "and +, up to 20 characters.",
    )
    fax_only: list[str] = setting(
        default_factory=list,
        label="Fax-only lines",
        check=_check_line_names,
        help="Lines (line1, line2, ...) that take every call as a fax: no greeting, the modem "
        "answers as a fax machine.",
    )
    transfer_lines: list[str] = setting(
        default_factory=list,
        label="Analog lines on a phone system (PBX/Centrex)",
        check=_check_line_names,
        help="Analog lines (line1, ...) whose exchange takes a hook-flash transfer: calls are "
        "passed to staff with a flash and their number (timing under Forwarding). Only for "
        "lines that support it: on a plain line a flash does nothing useful.",
    )
