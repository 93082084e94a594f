"""Reading closures out of an iCalendar (.ics) file: events become (first day, last day, reason).

The file is checked by its content (it must be a VCALENDAR) and capped in size; nothing is
stored here: the page shows the events and the owner picks which become closures.

Only what can still become a closure is listed: events that end today or later, soonest
first, at most `MAX_EVENTS`. A repeating event (RRULE, with its EXDATE, RDATE and moved
occurrences) is expanded into its dates within the next `HORIZON_DAYS` days. Whatever is
left out is counted and said (`ImportResult.skipped`), never dropped silently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from firmware_app.errors import FrontdeskError

MAX_BYTES = 256 * 1024
MAX_EVENTS = 200
HORIZON_DAYS = 400
"""Repeating events are expanded this far ahead of today."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_TOO_OFTEN = {"SECONDLY", "MINUTELY", "HOURLY"}


class CalendarError(FrontdeskError):
    """The upload is not a calendar we can read; the message says what to do."""


@dataclasses.dataclass(frozen=True, slots=True)
class ImportEvent:
    start: str
    end: str
    reason: str
    repeats: bool = False  # one date of a repeating event
    past: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ImportResult:
    events: list[ImportEvent]  # upcoming, soonest first, at most MAX_EVENTS
    skipped: list[str]  # what was left out, in words, for the page


def _day(value: dt.date | dt.datetime, tz: ZoneInfo) -> tuple[dt.date, bool]:
    """The local date of a DTSTART/DTEND value, and whether it was exactly midnight."""
    if isinstance(value, dt.datetime):
        local = value.astimezone(tz) if value.tzinfo else value
        return local.date(), local.time() == dt.time()
    return value, True


def _span(
    start: dt.date | dt.datetime, end: dt.date | dt.datetime, tz: ZoneInfo
) -> tuple[dt.date, dt.date]:
    """First and last day (local) of an event from its start and (exclusive) end."""
    first, _ = _day(start, tz)
    last, midnight = _day(end, tz)
    if midnight and last > first:  # DTEND is exclusive
        last -= dt.timedelta(days=1)
    return first, max(last, first)


def _wall(value: dt.date | dt.datetime, zone: Any) -> dt.datetime:
    """A DTSTART-like value as a naive wall time in the event's own zone (`zone`, or None)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and zone is not None:
            value = value.astimezone(zone)
        return value.replace(tzinfo=None)
    return dt.datetime.combine(value, dt.time())


def _values(prop: Any) -> list[Any]:
    """The dates of an EXDATE/RDATE property (one or several lines, each a list)."""
    out: list[Any] = []
    for item in prop if isinstance(prop, list) else [prop]:
        out += [d.dt for d in getattr(item, "dts", [])]
    return out


def _occurrences(
    component: Any,
    start: dt.date | dt.datetime,
    length: dt.timedelta,
    moved: set[dt.datetime],
    today: dt.date,
) -> tuple[list[dt.date | dt.datetime], bool]:
    """The starts of a repeating event that may still be going on today, up to the horizon,
    as values like DTSTART; and whether the expansion was cut at the horizon."""
    from dateutil.rrule import rruleset, rrulestr

    zone = start.tzinfo if isinstance(start, dt.datetime) else None
    first = _wall(start, zone)
    low = dt.datetime.combine(today - dt.timedelta(days=max(length.days, 0) + 2), dt.time())
    found = rruleset()
    for rule in _values_rrule(component):
        text = rule.to_ical().decode("ascii", "replace")
        begin = first
        freq = str(rule.get("FREQ", [""])[0]).upper()
        step = {"DAILY": 1, "WEEKLY": 7}.get(freq, 0) * int(rule.get("INTERVAL", [1])[0] or 1)
        if step and "COUNT" not in rule and begin < low:
            # A daily or weekly series without a count repeats the same pattern every `step`
            # days: start it at its last repetition before the window instead of iterating
            # from, say, 1990 (the dates it gives inside the window are the same).
            begin += dt.timedelta(days=step * ((low - begin).days // step))
        found.rrule(rrulestr(text, dtstart=begin, ignoretz=True))  # type: ignore[arg-type]
    for value in _values(component.get("RDATE", [])):
        found.rdate(_wall(value, zone))
    excluded = {_wall(v, zone) for v in _values(component.get("EXDATE", []))} | moved
    excluded_days = {v.date() for v in excluded if v.time() == dt.time()}
    high = dt.datetime.combine(today + dt.timedelta(days=HORIZON_DAYS), dt.time())
    out: list[dt.date | dt.datetime] = []
    cut = False
    for when in found.xafter(low, count=None, inc=True):
        if when > high:
            cut = True
            break
        if when in excluded or (
            not isinstance(start, dt.datetime) and when.date() in excluded_days
        ):
            continue
        if isinstance(start, dt.datetime):
            out.append(when.replace(tzinfo=zone) if zone is not None else when)
        else:
            out.append(when.date())
        if len(out) > 2 * HORIZON_DAYS + MAX_EVENTS:
            cut = True
            break
    return out, cut


def read_events(data: bytes, tz: ZoneInfo, today: dt.date) -> ImportResult:
    """The upcoming events of an .ics file as date ranges in `tz`, soonest first, and what
    was left out; raises CalendarError when the file cannot be used at all."""
    import icalendar

    if len(data) > MAX_BYTES:
        raise CalendarError(f"this file is larger than {MAX_BYTES // 1024} KB; export fewer events")
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:15].upper()
    if not head.startswith(b"BEGIN:VCALENDAR"):
        raise CalendarError("this is not an iCalendar file; choose a .ics file from your calendar")
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError, UnicodeDecodeError) as exc:
        raise CalendarError(f"this calendar cannot be read ({str(exc)[:80]})") from None
    components = list(calendar.walk("VEVENT"))
    # Occurrences moved or changed on their own (RECURRENCE-ID) replace the series' date.
    moved: dict[str, set[dt.datetime]] = {}
    for component in components:
        if "RECURRENCE-ID" in component:
            try:
                rid = component.decoded("RECURRENCE-ID")
                zone = rid.tzinfo if isinstance(rid, dt.datetime) else None
                moved.setdefault(str(component.get("UID", "")), set()).add(_wall(rid, zone))
            except (ValueError, TypeError, AttributeError, KeyError):
                pass
    events: list[ImportEvent] = []
    dated = past = unreadable = too_often = 0
    horizon_cut = False
    for component in components:
        if "DTSTART" not in component:
            continue
        dated += 1
        try:
            start_value = component.decoded("DTSTART")
            if "DTEND" in component:
                length = component.decoded("DTEND") - start_value
            elif "DURATION" in component:
                length = component.decoded("DURATION")
            else:
                length = dt.timedelta(0)
            summary = _CONTROL.sub(" ", str(component.get("SUMMARY", ""))).strip()[:80].strip()
            repeats = "RRULE" in component and "RECURRENCE-ID" not in component
            starts: Iterable[dt.date | dt.datetime] = [start_value]
            if repeats:
                freqs = {str(r.get("FREQ", [""])[0]).upper() for r in _values_rrule(component)}
                if freqs & _TOO_OFTEN:
                    too_often += 1
                    continue
                uid = str(component.get("UID", ""))
                starts, cut = _occurrences(
                    component, start_value, length, moved.get(uid, set()), today
                )
                horizon_cut = horizon_cut or cut
            for begin in starts:
                first, last = _span(begin, begin + length, tz)
                if last < today:
                    if not repeats:
                        past += 1
                    continue
                events.append(
                    ImportEvent(
                        start=first.isoformat(),
                        end=last.isoformat(),
                        reason=summary or "Closed",
                        repeats=repeats,
                    )
                )
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError):
            unreadable += 1
            continue
    if not dated:
        raise CalendarError("no events with dates were found in this calendar")
    unique = sorted(set(events), key=lambda e: (e.start, e.end, e.reason))
    skipped: list[str] = []
    if past:
        skipped.append(f"{_count(past, 'event')} that ended before today")
    if len(unique) > MAX_EVENTS:
        after = unique[MAX_EVENTS - 1].start
        more = len(unique) - MAX_EVENTS
        skipped.append(
            f"{_count(more, 'more event')} after {after} (at most {MAX_EVENTS} are listed at "
            "a time: import the file again for them)"
        )
        unique = unique[:MAX_EVENTS]
    if horizon_cut:
        skipped.append(
            f"the dates of repeating events more than {HORIZON_DAYS} days ahead "
            "(import the file again later for them)"
        )
    if too_often:
        skipped.append(f"{_count(too_often, 'event')} repeating more often than daily")
    if unreadable:
        skipped.append(f"{_count(unreadable, 'event')} whose dates could not be read")
    if not unique and not skipped:
        raise CalendarError("no events with dates were found in this calendar")
    return ImportResult(unique, skipped)


def _values_rrule(component: Any) -> list[Any]:
    rules = component.get("RRULE")
    return rules if isinstance(rules, list) else [rules]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
