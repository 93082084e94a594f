"""Settings section for text messages: the after-hours auto-reply, the balance check (USSD)
and which GSM line sends.

Plain data with defaults, so existing settings documents need no migration. Pure: the SMS
service reads this section each time it needs it.
"""

# `setting()` returns a dataclasses.field(), which RUF009 cannot tell.

from __future__ import annotations

import dataclasses
import re

from .schema import number_range, setting

PLACEHOLDERS = ("{business}", "{next_open}", "{status}")
DEFAULT_AUTO_REPLY = (
    "Thank you for your message to {business}. We are closed now and will answer when we "
    "open again ({next_open})."
)

_USSD = re.compile(r"[*#][0-9*#]{1,30}")
_LINE = re.compile(r"line[1-9][0-9]?")
_BRACED = re.compile(r"\{[^{}]*\}")


def _check_reply(v: str) -> str | None:
    if not 1 <= len(v) <= 480:
        return "1 to 480 characters"
    unknown = [p for p in _BRACED.findall(v) if p not in PLACEHOLDERS]
    if unknown:
        return "text with only these placeholders: " + ", ".join(PLACEHOLDERS)
    return None


def _check_ussd(v: str) -> str | None:
    if v == "" or _USSD.fullmatch(v):
        return None
    return "a USSD code such as *100# (digits, * and #), or empty"


def _check_line(v: str) -> str | None:
    if v == "" or _LINE.fullmatch(v):
        return None
    return "a line name such as line2, or empty for the first GSM line"


@dataclasses.dataclass(slots=True, kw_only=True)
class Sms:
    auto_reply: bool = setting(
        False,
        label="Answer texts after hours",
        help="While the office is closed, answer a text once with the message below.",
    )
    auto_reply_text: str = setting(
        DEFAULT_AUTO_REPLY,
        label="After-hours answer",
        check=_check_reply,
        help="Placeholders: {business} the business name, {next_open} when the office opens "
        "next, {status} the opening-hours sentence.",
    )
    auto_reply_hours: int = setting(
        12,
        label="Answer each number at most once per (hours)",
        check=number_range(1, 720),
        help="A customer who writes again within this time gets no second answer.",
    )
    send_line: str = setting(
        "",
        label="Line that sends texts",
        check=_check_line,
        help="A GSM line name such as line2. Empty: the first GSM line.",
    )
    max_parts: int = setting(
        6,
        label="Longest text (parts)",
        check=number_range(1, 20),
        help="Longer texts are refused when written. One part holds 160 plain characters "
        "(70 with accents beyond the GSM alphabet or emoji).",
    )
    ussd_code: str = setting(
        "*100#",
        label="Balance check code",
        check=_check_ussd,
        help="The USSD code your operator answers with the SIM card's credit. Empty: none.",
    )
    ussd_interval_hours: int = setting(
        0,
        label="Check the balance every (hours)",
        check=number_range(0, 720),
        help="Every GSM line's SIM card. 0: only when asked on the Lines or Messages page.",
    )
    low_balance: float = setting(
        0.0,
        label="Warn below this balance",
        check=number_range(0.0, 100000.0),
        help="An email warning when the balance check shows less. 0: no warning.",
    )
