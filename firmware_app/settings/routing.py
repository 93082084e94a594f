"""Settings sections for call routing: hours, holidays, override, staff and call rules.

Plain data only (texts like "09:00-17:00" and "2025-12-24"), so the sections export as
readable TOML; each `validate()` names what is allowed. Pure: no clock, no I/O. The routing
layer (`firmware_app.routing`) reads these sections; parsing helpers live here so that the
form checks and the routing layer agree on one grammar.
"""

# `setting()` returns a dataclasses.field(), which RUF009 cannot tell.
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any, Literal

from ..errors import FieldProblem
from ..numbers import normalise
from .schema import Check, email_address, email_list, length, number_range, setting

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES: dict[str, str] = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


# -- grammar shared with the routing layer ------------------------------------------------------

_INTERVAL = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
INTERVAL_HELP = "a time range as HH:MM-HH:MM, e.g. 09:00-17:00, 18:00-02:00 or 00:00-24:00"


def parse_interval(text: str) -> tuple[int, int] | None:
    """Minutes after the day's midnight: (start, end); end > 1440 runs into the next day.

    "09:00-17:00" -> (540, 1020); "18:00-02:00" -> (1080, 1560); "00:00-24:00" -> (0, 1440).
    None when the text is not a range, a time is impossible, or start equals end.
    """
    m = _INTERVAL.match(text)
    if m is None:
        return None
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        return None
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end == start:
        return None
    if end < start:
        end += 1440
    return start, end


def parse_date(text: str) -> dt.date | None:
    if not re.fullmatch(r"\d{4}-\d\d-\d\d", text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def parse_local_datetime(text: str) -> dt.datetime | None:
    """Parse "YYYY-MM-DD HH:MM" (or with a T) as a naive wall-clock time."""
    if not re.fullmatch(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d", text):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        return None


def parse_instant(text: str) -> dt.datetime | None:
    """An ISO 8601 time with its UTC offset, e.g. 2025-03-28T15:04:00+00:00."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.utcoffset() is not None else None


def normalise_number(number: str, region: str = "US") -> str:
    """A phone number in E.164 when it can be read as one, else its digits (and a leading +)."""
    return normalise(number, region)


# -- checks -------------------------------------------------------------------------------------


def _intervals(v: list[str]) -> str | None:
    bad = [t for t in v if parse_interval(t) is None]
    if bad:
        return f"{INTERVAL_HELP}; start and end must differ (bad: {', '.join(bad)})"
    return None


def _date(v: str) -> str | None:
    return None if parse_date(v) else "a date as YYYY-MM-DD, e.g. 2025-12-24"


def _local_datetime_or_empty(v: str) -> str | None:
    if v == "" or parse_local_datetime(v):
        return None
    return "a local date and time as YYYY-MM-DD HH:MM, or empty"


def _instant_or_empty(v: str) -> str | None:
    if v == "" or parse_instant(v):
        return None
    return "a time with its UTC offset like 2025-03-28T15:04:00+00:00, or empty"


def _identifier(v: str) -> str | None:
    return None if _ID.match(v) else "a short id: lower-case letters, digits, - and _"


_PHONE_CHARS = re.compile(r"^\+?[0-9 ()./-]{3,30}$")


def phone_number(optional: bool) -> Check:
    def check(v: str) -> str | None:
        if (optional and v == "") or _PHONE_CHARS.match(v):
            return None
        return "a phone number like +44 20 7946 0000" + (" or empty" if optional else "")

    return check


def _number_patterns(v: list[str]) -> str | None:
    bad = [p for p in v if not re.fullmatch(r"\+?[0-9 ()./-]{2,30}\*?", p)]
    if bad:
        return (
            f"phone numbers, or a number prefix ending in * such as +44870* (bad: {', '.join(bad)})"
        )
    # Without digits ("--*", "()*") a prefix would match every caller.
    few = [p for p in v if sum(c.isdigit() for c in p) < 2]
    if few:
        return (
            "phone numbers or prefixes with at least two digits: an entry without them would "
            f"match every caller (bad: {', '.join(few)})"
        )
    return None


def _weekdays(v: list[str]) -> str | None:
    bad = [d for d in v if d not in WEEKDAYS]
    return f"weekdays from {', '.join(WEEKDAYS)} (bad: {', '.join(bad)})" if bad else None


def _overlaps(spans: list[tuple[str, int, int]]) -> list[tuple[str, str]]:
    """Pairs of labels whose minute spans overlap."""
    out: list[tuple[str, str]] = []
    ordered = sorted(spans, key=lambda s: (s[1], s[2]))
    for i, (a, _, a_end) in enumerate(ordered):
        for b, b_start, _ in ordered[i + 1 :]:
            if b_start < a_end:
                out.append((a, b))
    return out


def interval_problems(
    field: str, texts: list[str], spill: list[str] | None = None
) -> list[FieldProblem]:
    """Overlaps among one day's intervals and the previous day's intervals past midnight."""
    spans: list[tuple[str, int, int]] = []
    for t in spill or []:
        p = parse_interval(t)
        if p and p[1] > 1440:
            spans.append((f"previous day's {t}", p[0] - 1440, p[1] - 1440))
    for t in texts:
        p = parse_interval(t)
        if p:
            spans.append((t, p[0], p[1]))
    return [
        FieldProblem(field, texts, f"intervals that do not overlap ({a} overlaps {b})")
        for a, b in _overlaps(spans)
    ]


# -- hours --------------------------------------------------------------------------------------


def _weekday_hours(day: str, default: list[str]) -> Any:
    return setting(
        default_factory=lambda: list(default),
        label=DAY_NAMES[day],
        check=_intervals,
        widget="intervals",
        help="Open intervals as HH:MM-HH:MM. An end before the start runs past midnight "
        "(18:00-02:00 closes at 02:00 the next morning). Empty: closed all day.",
    )


@dataclasses.dataclass(slots=True, kw_only=True)
class SpecialDay:
    date: str = setting("2025-12-24", label="Date", check=_date, widget="date")
    hours: list[str] = setting(
        default_factory=list,
        label="Open",
        check=_intervals,
        widget="intervals",
        help="Open intervals on this date, replacing the weekly hours. Empty: closed all day.",
    )
    note: str = setting("", label="Note", check=length(0, 80), help="Shown in the status.")


@dataclasses.dataclass(slots=True, kw_only=True)
class Hours:
    mon: list[str] = _weekday_hours("mon", ["09:00-17:00"])
    tue: list[str] = _weekday_hours("tue", ["09:00-17:00"])
    wed: list[str] = _weekday_hours("wed", ["09:00-17:00"])
    thu: list[str] = _weekday_hours("thu", ["09:00-17:00"])
    fri: list[str] = _weekday_hours("fri", ["09:00-17:00"])
    sat: list[str] = _weekday_hours("sat", [])
    sun: list[str] = _weekday_hours("sun", [])
    special: list[SpecialDay] = setting(
        default_factory=list,
        label="Special hours",
        help="Dates with their own hours, e.g. 2025-12-24 open 09:00-12:00.",
    )

    def weekly(self) -> list[list[str]]:
        """Intervals per weekday, Monday first."""
        return [self.mon, self.tue, self.wed, self.thu, self.fri, self.sat, self.sun]

    def validate(self) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        week = self.weekly()
        for i, day in enumerate(WEEKDAYS):
            problems += interval_problems(day, week[i], week[i - 1])
        seen: set[str] = set()
        for i, sd in enumerate(self.special):
            problems += interval_problems(f"special[{i}].hours", sd.hours)
            if sd.date in seen:
                problems.append(FieldProblem(f"special[{i}].date", sd.date, "one entry per date"))
            seen.add(sd.date)
        return problems


# -- holidays and closures ----------------------------------------------------------------------


@dataclasses.dataclass(slots=True, kw_only=True)
class Closure:
    id: str = setting(
        "closure",
        label="Id",
        check=_identifier,
        help="Names the greeting played while closed: closure:<id>.",
    )
    start: str = setting("2025-08-04", label="First day", check=_date, widget="date")
    end: str = setting("2025-08-08", label="Last day", check=_date, widget="date")
    reason: str = setting(
        "Closed",
        label="Reason",
        check=length(1, 80),
        help="Shown in the status and the call log, e.g. 'Summer break'.",
    )

    def validate(self) -> list[FieldProblem]:
        a, b = parse_date(self.start), parse_date(self.end)
        if a and b and b < a:
            return [FieldProblem("end", self.end, f"a date on or after the first day {self.start}")]
        return []


@dataclasses.dataclass(slots=True, kw_only=True)
class Holidays:
    observe: Literal["all", "chosen", "none"] = setting(
        "all",
        label="Close on public holidays",
        help="all: every public holiday of the business's country and region; chosen: only "
        "those listed below; none: public holidays are ordinary days.",
    )
    chosen: list[str] = setting(
        default_factory=list,
        label="Holidays that close the office",
        widget="holidays",
        help="Holiday names as listed for your country, e.g. 'Christmas Day'. A name also "
        "covers its observed or substitute day.",
    )
    closures: list[Closure] = setting(
        default_factory=list,
        label="Closures",
        help="One-off closed periods (date ranges) with a reason and their own greeting.",
    )

    def validate(self) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        ids: set[str] = set()
        for i, c in enumerate(self.closures):
            if c.id in ids:
                problems.append(FieldProblem(f"closures[{i}].id", c.id, "an id used once"))
            ids.add(c.id)
        return problems


# -- manual override ----------------------------------------------------------------------------


@dataclasses.dataclass(slots=True, kw_only=True)
class Override:
    state: Literal["off", "open", "closed"] = setting(
        "off", label="Override", help="off: follow the hours; open or closed: by hand."
    )
    until: Literal["next_change", "time", "switched_back"] = setting(
        "next_change",
        label="Until",
        help="next_change: until the hours next switch to the same state by themselves "
        "(closed: the next scheduled closing; open: the next scheduled opening); time: until "
        "the time below; switched_back: until someone turns it off.",
    )
    until_time: str = setting(
        "",
        label="Until (date and time)",
        check=_local_datetime_or_empty,
        widget="datetime",
        help="Local time, YYYY-MM-DD HH:MM.",
    )
    since: str = setting(
        "",
        label="Switched on at",
        check=_instant_or_empty,
        help="Set when the override is switched on; ISO 8601 with offset.",
    )
    note: str = setting("", label="Note", check=length(0, 80), help="Shown with the status.")

    def validate(self) -> list[FieldProblem]:
        if self.state == "off":
            return []
        if self.until == "time" and not self.until_time:
            return [
                FieldProblem("until_time", self.until_time, "a date and time when until = time")
            ]
        if self.until == "next_change" and not self.since:
            return [FieldProblem("since", self.since, "the time it was switched on")]
        return []


# -- staff and rota -----------------------------------------------------------------------------


@dataclasses.dataclass(slots=True, kw_only=True)
class StaffMember:
    name: str = setting("Staff", label="Name", check=length(1, 60))
    mobile: str = setting(
        "",
        label="Mobile",
        check=phone_number(optional=True),
        widget="tel",
        help="Calls are put through to this number.",
    )
    email: str = setting(
        "", label="Email", check=email_address(), help="For missed-call and voicemail notes."
    )
    groups: list[str] = setting(
        default_factory=list,
        label="Groups",
        help="Menu groups this person answers for, e.g. sales.",
    )


@dataclasses.dataclass(slots=True, kw_only=True)
class RotaEntry:
    name: str = setting("Staff", label="Who", check=length(1, 60))
    days: list[str] = setting(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"], label="Days", check=_weekdays
    )
    hours: list[str] = setting(
        default_factory=lambda: ["09:00-17:00"], label="Hours", check=_intervals, widget="intervals"
    )


@dataclasses.dataclass(slots=True, kw_only=True)
class Staff:
    members: list[StaffMember] = setting(default_factory=list, label="Staff")
    rota: list[RotaEntry] = setting(
        default_factory=list,
        label="Who is on duty",
        help="Empty: everyone is on duty while open. Otherwise only those listed, at the "
        "listed times. Times outside opening hours put someone on call: callers reach them "
        "when the call rules say so (Put callers through to staff on call when closed), and "
        "VIPs and menu keys always do.",
    )

    def validate(self) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        names: set[str] = set()
        for i, m in enumerate(self.members):
            if m.name.casefold() in names:
                problems.append(FieldProblem(f"members[{i}].name", m.name, "a name used once"))
            names.add(m.name.casefold())
        known = ", ".join(m.name for m in self.members) or "none yet"
        for i, r in enumerate(self.rota):
            if r.name.casefold() not in names:
                problems.append(FieldProblem(f"rota[{i}].name", r.name, f"a staff name ({known})"))
        return problems

    def member(self, name: str) -> StaffMember | None:
        for m in self.members:
            if m.name.casefold() == name.casefold():
                return m
        return None


# -- call rules ---------------------------------------------------------------------------------

MenuMode = Literal["open", "closed", "holiday", "closure"]


@dataclasses.dataclass(slots=True, kw_only=True)
class MenuOption:
    digit: str = setting(
        "1",
        label="Key",
        check=lambda v: None if v in set("0123456789*#") else "one key: 0-9, * or #",
    )
    action: Literal["ring_staff", "voicemail", "message", "repeat"] = setting(
        "ring_staff",
        label="Action",
        help="ring_staff: put through to a staff group; voicemail: take a message in a box; "
        "message: play an information message; repeat: say the menu again.",
    )
    target: str = setting(
        "",
        label="Group, box or message",
        check=length(0, 40),
        help="Staff group (empty: everyone), voicemail box (empty: main) or message name.",
    )
    label: str = setting("", label="Said as", check=length(0, 80), help="e.g. 'for sales'.")
    email_to: list[str] = setting(
        default_factory=list,
        label="Email to",
        check=email_list,
        help="A voicemail key with a box name: who gets an email for each voicemail left in "
        "that box (besides the staff whose groups name the box, and Voicemail goes to on the "
        "Email page).",
    )

    def validate(self) -> list[FieldProblem]:
        if not self.email_to:
            return []
        if self.action != "voicemail":
            return [
                FieldProblem(
                    "email_to",
                    ", ".join(self.email_to),
                    "empty: only a key that takes a voicemail sends email",
                )
            ]
        if not self.target.strip():
            return [
                FieldProblem(
                    "target",
                    self.target,
                    "a box name (e.g. accounts) for the voicemail to go to the Email to "
                    "addresses; the main box's voicemail goes to Voicemail goes to on the Email "
                    "page",
                )
            ]
        return []


@dataclasses.dataclass(slots=True, kw_only=True)
class Menu:
    mode: MenuMode = setting(
        "open",
        label="When",
        help="The menu is offered in this mode; holiday and closure fall back to the closed menu.",
    )
    options: list[MenuOption] = setting(default_factory=list, label="Options")

    def validate(self) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        seen: set[str] = set()
        for i, o in enumerate(self.options):
            if o.digit in seen:
                problems.append(FieldProblem(f"options[{i}].digit", o.digit, "a key used once"))
            seen.add(o.digit)
        return problems


@dataclasses.dataclass(slots=True, kw_only=True)
class Rules:
    allow: list[str] = setting(
        default_factory=list,
        label="Always put through (VIP)",
        check=_number_patterns,
        help="Numbers (or prefixes ending in *) put through to staff at any time, skipping "
        "menus and screening.",
    )
    block: list[str] = setting(
        default_factory=list,
        label="Block",
        check=_number_patterns,
        help="Numbers (or prefixes ending in *) that are rejected. The allow list wins.",
    )
    withheld: Literal["answer", "screen", "voicemail", "reject"] = setting(
        "answer",
        label="Withheld or unknown numbers",
        help="answer: like any caller; screen: ask them to press 1 first; voicemail: straight "
        "to voicemail; reject: do not take the call.",
    )
    screen_all: bool = setting(
        False,
        label="Ask every caller to press 1",
        help="Stops most robocalls: callers not on the allow list must press 1 to reach you.",
    )
    ring_seconds: int = setting(
        35,
        label="Ring for (seconds)",
        check=number_range(5, 120),
        help="How long a call rings (office phone or staff) before voicemail takes it.",
    )
    office_phone: bool = setting(
        True,
        label="A phone shares the analog line",
        help="Analog lines: while open, let the office phone ring before answering.",
    )
    forward_calls: bool = setting(
        True,
        label="Put calls through to staff mobiles",
        help="Off: staff are told by SMS or email and the caller leaves a message.",
    )
    confirm_forwarded: bool = setting(
        True,
        label="Ask staff to press 1 to take a call",
        help="Stops a mobile's own voicemail from taking the call.",
    )
    on_call_when_closed: bool = setting(
        False,
        label="Put callers through to staff on call when closed",
        help="When closed, callers hear the closed greeting and are put through to the staff "
        "the rota has on call: on the rota outside the weekly hours (evenings, nights, "
        "weekends; a holiday's working-day rota is a day off). Nobody on call: voicemail. "
        "A mobile line using the network's forwarding forwards unanswered calls to the first "
        "of them, as while open. Off: only VIPs and menu keys reach staff when closed.",
    )
    menus: list[Menu] = setting(
        default_factory=list, label="Menus", help="Key menus per mode; at most one per mode."
    )

    def validate(self) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        seen: set[str] = set()
        for i, m in enumerate(self.menus):
            if m.mode in seen:
                problems.append(FieldProblem(f"menus[{i}].mode", m.mode, "one menu per mode"))
            seen.add(m.mode)
        both = sorted({p.strip() for p in self.allow} & {p.strip() for p in self.block})
        if both:
            problems.append(FieldProblem("block", both, "numbers not also on the allow list"))
        return problems


def cross_problems(staff: Staff, rules: Rules) -> list[FieldProblem]:
    """Problems between sections: menu options naming a staff group nobody is in."""
    groups = {g.casefold() for m in staff.members for g in m.groups}
    problems: list[FieldProblem] = []
    for i, menu in enumerate(rules.menus):
        for j, o in enumerate(menu.options):
            if o.action == "ring_staff" and o.target and o.target.casefold() not in groups:
                problems.append(
                    FieldProblem(
                        f"rules.menus[{i}].options[{j}].target",
                        o.target,
                        f"a staff group ({', '.join(sorted(groups)) or 'none defined yet'})",
                    )
                )
    return problems
