"""Who a call concerns: allow and block lists by number, and which staff are on duty.

Numbers are compared in E.164 where they can be read as phone numbers; list entries ending
in * match by prefix. Pure: no I/O and no clock; the time is passed in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from ..settings.routing import WEEKDAYS, Staff, StaffMember, normalise_number, parse_interval


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """A staff member as a plan names them."""

    name: str
    mobile: str = ""
    email: str = ""

    @classmethod
    def of(cls, member: StaffMember, region: str) -> Person:
        mobile = normalise_number(member.mobile, region) if member.mobile else ""
        return cls(name=member.name, mobile=mobile, email=member.email)


def _national_digits(e164: str, region: str) -> str:
    import phonenumbers

    try:
        parsed = phonenumbers.parse(e164, region or None)
    except phonenumbers.NumberParseException:
        return ""
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(c for c in str(national) if c.isdigit())


def matching_entry(number: str, patterns: list[str], region: str) -> str:
    """The first list entry that matches `number`, or empty. Entries ending in * are prefixes."""
    if not number.strip():
        return ""
    e164 = normalise_number(number, region)
    national = _national_digits(e164, region) if e164.startswith("+") else ""
    digits = "".join(c for c in number if c.isdigit())
    for pattern in patterns:
        p = pattern.strip()
        if p.endswith("*"):
            prefix = "".join(c for c in p[:-1] if c.isdigit())
            if p.startswith("+"):
                if e164.startswith("+" + prefix):
                    return pattern
            elif national.startswith(prefix) or digits.startswith(prefix):
                return pattern
        elif normalise_number(p, region) == e164:
            return pattern
    return ""


def _covers(hours: list[str], days: list[str], local: dt.datetime) -> bool:
    minute = local.hour * 60 + local.minute
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
    for text in hours:
        span = parse_interval(text)
        if span is None:
            continue
        start, end = span
        if today in days and start <= minute < end:
            return True
        if yesterday in days and end > 1440 and minute < end - 1440:
            return True
    return False


def on_duty(
    staff: Staff, now: dt.datetime, tz: ZoneInfo, *, is_open: bool, group: str = ""
) -> list[StaffMember]:
    """Staff on duty at `now` (wall clock in `tz`), optionally only those in `group`.

    With an empty rota everyone is on duty while open and nobody while closed; otherwise the
    rota decides, also outside opening hours (someone on call).
    """
    local = now.astimezone(tz)
    if not staff.rota:
        chosen = list(staff.members) if is_open else []
    else:
        names = {r.name.casefold() for r in staff.rota if _covers(r.hours, r.days, local)}
        chosen = [m for m in staff.members if m.name.casefold() in names]
    if group:
        chosen = [m for m in chosen if group.casefold() in {g.casefold() for g in m.groups}]
    return chosen


def in_group(staff: Staff, group: str) -> list[StaffMember]:
    if not group:
        return list(staff.members)
    return [m for m in staff.members if group.casefold() in {g.casefold() for g in m.groups}]
