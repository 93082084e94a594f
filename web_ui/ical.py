"""Reading closures out of an iCalendar (.ics) file: events become (first day, last day, reason).

The file is checked by its content (it must be a VCALENDAR) and capped in size; nothing is
stored here: the page shows the events and the owner picks which become closures.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from zoneinfo import ZoneInfo

from firmware_app.errors import FrontdeskError

MAX_BYTES = 256 * 1024
MAX_EVENTS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class CalendarError(FrontdeskError):
    """The upload is not a calendar we can read; the message says what to do."""


@dataclasses.dataclass(frozen=True, slots=True)
class ImportEvent:
    start: str
    end: str
    reason: str
    repeats: bool = False
    past: bool = False


def _day(value: dt.date | dt.datetime, tz: ZoneInfo) -> tuple[dt.date, bool]:
    """The local date of a DTSTART/DTEND value, and whether it was exactly midnight."""
    if isinstance(value, dt.datetime):
        local = value.astimezone(tz) if value.tzinfo else value
        return local.date(), local.time() == dt.time()
    return value, True


def read_events(data: bytes, tz: ZoneInfo, today: dt.date) -> list[ImportEvent]:
    """The events of an .ics file as date ranges in `tz`, sorted; raises CalendarError."""
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
    events: list[ImportEvent] = []
    for component in calendar.walk("VEVENT"):
        if "DTSTART" not in component:
            continue
        try:
            start_value = component.decoded("DTSTART")
            start, _ = _day(start_value, tz)
            if "DTEND" in component:
                end, midnight = _day(component.decoded("DTEND"), tz)
                if midnight and end > start:  # DTEND is exclusive
                    end -= dt.timedelta(days=1)
            elif "DURATION" in component:
                finish = start_value + component.decoded("DURATION")
                end, midnight = _day(finish, tz)
                if midnight and end > start:
                    end -= dt.timedelta(days=1)
            else:
                end = start
        except (ValueError, TypeError, AttributeError, KeyError):
            continue
        end = max(end, start)
        summary = _CONTROL.sub(" ", str(component.get("SUMMARY", ""))).strip()[:80].strip()
        events.append(
            ImportEvent(
                start=start.isoformat(),
                end=end.isoformat(),
                reason=summary or "Closed",
                repeats="RRULE" in component,
                past=end < today,
            )
        )
    if not events:
        raise CalendarError("no events with dates were found in this calendar")
    events.sort(key=lambda e: (e.start, e.end, e.reason))
    return events[:MAX_EVENTS]
