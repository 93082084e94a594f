"""Who a call concerns: allow and block lists by number, and which staff are on duty.

Numbers are compared in E.164 where they can be read as phone numbers; list entries ending
in * match by prefix. Pure: no I/O and no clock; the time is passed in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
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
        mobile = e164(member.mobile, region) if member.mobile else ""
        return cls(name=member.name, mobile=mobile, email=member.email)


@functools.lru_cache(maxsize=2048)
def e164(number: str, region: str) -> str:
    """`normalise_number`, remembered: callers ring again, and parsing costs ~40 us."""
    return normalise_number(number, region)


@functools.lru_cache(maxsize=64)
def _country_prefixes(region: str) -> tuple[str, str, str]:
    """(+country code, international dialling prefix, national trunk prefix) of a region."""
    import phonenumbers

    meta = phonenumbers.PhoneMetadata.metadata_for_region(region or "", None)
    if meta is None or meta.country_code is None:
        return "", "", ""
    intl = next(
        (
            p
            for p in (meta.international_prefix, meta.preferred_international_prefix)
            if p and p.isdigit()
        ),
        "00",
    )
    trunk = meta.national_prefix if (meta.national_prefix or "").isdigit() else ""
    return f"+{meta.country_code}", intl, trunk or ""


class NumberList:
    """An allow or block list read once: exact entries in E.164, prefixes as E.164 prefixes.

    A prefix written nationally ("0870*" with the business in GB) also matches the same
    numbers written internationally ("+44 870 ..."), and the caller's digits as sent.
    """

    def __init__(self, patterns: list[str], region: str) -> None:
        self.exact: dict[str, str] = {}
        self.prefixes: list[tuple[str, str]] = []  # (prefix of an E.164 or digit string, entry)
        code, intl, trunk = _country_prefixes(region)
        for pattern in patterns:
            p = pattern.strip()
            digits = "".join(c for c in p if c.isdigit())
            if not digits:
                continue  # would match every caller (validation refuses it; an old file may not)
            if not p.endswith("*"):
                self.exact.setdefault(e164(p, region), pattern)
                continue
            if p.startswith("+"):
                self.prefixes.append(("+" + digits, pattern))
                continue
            self.prefixes.append((digits, pattern))  # the caller's digits as sent
            if intl and digits.startswith(intl):  # 0044870* -> +44870
                self.prefixes.append(("+" + digits[len(intl) :], pattern))
            elif code:  # 0870* -> +44870 (the trunk prefix dropped)
                national = digits[len(trunk) :] if trunk and digits.startswith(trunk) else digits
                self.prefixes.append((code + national, pattern))

    def match(self, number: str, region: str) -> str:
        """The first entry matching `number`, or empty."""
        if not number.strip():
            return ""
        normal = e164(number, region)
        hit = self.exact.get(normal)
        if hit is not None:
            return hit
        digits = "".join(c for c in number if c.isdigit())
        for prefix, pattern in self.prefixes:
            if normal.startswith(prefix) or (
                not prefix.startswith("+") and digits.startswith(prefix)
            ):
                return pattern
        return ""


def matching_entry(number: str, patterns: list[str], region: str) -> str:
    """The first list entry that matches `number`, or empty. Entries ending in * are prefixes."""
    return NumberList(patterns, region).match(number, region)


class RotaTable:
    """The rota read once (intervals parsed, names and groups folded): who is on duty when.

    A `Router` keeps one per settings version, so a call does not parse the rota again."""

    def __init__(self, staff: Staff) -> None:
        self.members = list(staff.members)
        self.empty = not staff.rota
        self._entries: list[tuple[str, frozenset[str], tuple[tuple[int, int], ...]]] = []
        for r in staff.rota:
            spans = tuple(span for text in r.hours if (span := parse_interval(text)))
            self._entries.append((r.name.casefold(), frozenset(r.days), spans))
        self._groups = [frozenset(g.casefold() for g in m.groups) for m in self.members]

    def _names_at(self, local: dt.datetime) -> set[str]:
        minute = local.hour * 60 + local.minute
        today = WEEKDAYS[local.weekday()]
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
        names: set[str] = set()
        for name, days, spans in self._entries:
            if name in names:
                continue
            for start, end in spans:
                if (today in days and start <= minute < end) or (
                    yesterday in days and end > 1440 and minute < end - 1440
                ):
                    names.add(name)
                    break
        return names

    def on_duty(
        self, now: dt.datetime, tz: ZoneInfo, *, is_open: bool, group: str = ""
    ) -> list[StaffMember]:
        """See `on_duty`."""
        if self.empty:
            chosen = list(range(len(self.members))) if is_open else []
        else:
            names = self._names_at(now.astimezone(tz))
            chosen = [i for i, m in enumerate(self.members) if m.name.casefold() in names]
        if group:
            wanted = group.casefold()
            chosen = [i for i in chosen if wanted in self._groups[i]]
        return [self.members[i] for i in chosen]


def on_duty(
    staff: Staff, now: dt.datetime, tz: ZoneInfo, *, is_open: bool, group: str = ""
) -> list[StaffMember]:
    """Staff on duty at `now` (wall clock in `tz`), optionally only those in `group`.

    With an empty rota everyone is on duty while open and nobody while closed; otherwise the
    rota decides, also outside opening hours (someone on call).
    """
    return RotaTable(staff).on_duty(now, tz, is_open=is_open, group=group)


def in_group(staff: Staff, group: str) -> list[StaffMember]:
    if not group:
        return list(staff.members)
    return [m for m in staff.members if group.casefold() in {g.casefold() for g in m.groups}]
