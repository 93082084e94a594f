"""Wall-clock times to instants and back, summer time included, and times in words.

One rule for every local time: it means the first instant at which the clock on the wall
reaches it. In a spring-forward gap that is the end of the gap; in a fall-back repeat, the
first of the two occurrences, except for an override's end, which is the first occurrence
after the override was switched on (`wall_to_instant_after`). Pure: never reads the clock;
`now` is always passed in.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.UTC


def wall_to_instant(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The first instant (UTC) at which the wall clock in `tz` reads `local` or later.

    `local` is naive. In a fall-back repeat this is the first occurrence (fold=0). In a
    spring-forward gap the time never shows, so the answer is the end of the gap: the
    instant the clock jumps past it.
    """
    first = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == local:
        return first
    # In a gap: with fold=0 the offset before the jump applies, so `first` lies after the
    # jump and the same wall time with fold=1 lies before it. Find the jump between them.
    lo = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    if lo > hi:  # a gap only ever moves the clock forward; be safe with odd zones
        lo, hi = hi, lo
    while hi - lo > dt.timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if mid.astimezone(tz).replace(tzinfo=None) >= local:
            hi = mid
        else:
            lo = mid
    return hi


def wall_to_instant_after(local: dt.datetime, tz: ZoneInfo, after: dt.datetime) -> dt.datetime:
    """The first instant after `after` at which the wall clock in `tz` reads `local`.

    Like `wall_to_instant`, except in a fall-back repeat: when the first occurrence is not
    after `after` but the second is (an override switched on at 01:35 in the repeated hour
    "until 01:50" means the 01:50 still to come), the second. Otherwise the first, even
    when it is not after `after` (then the time has simply passed).
    """
    first = wall_to_instant(local, tz)
    if first > after:
        return first
    second = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if second > after and second.astimezone(tz).replace(tzinfo=None) == local:
        return second
    return first


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The instant a calendar day starts (01:00 in zones that skip midnight)."""
    return wall_to_instant(dt.datetime.combine(day, dt.time()), tz)


def when(at: dt.datetime, now: dt.datetime, tz: ZoneInfo) -> str:
    """A time as an owner says it, relative to now: '17:30', 'tomorrow 09:00',
    'Mon 09:00', 'Fri 26 Dec 09:00', 'Fri 26 Dec 2031 09:00'."""
    a = at.astimezone(tz)
    n = now.astimezone(tz)
    clock = f"{a:%H:%M}"
    days = (a.date() - n.date()).days
    if days == 0:
        return clock
    if days == 1:
        return f"tomorrow {clock}"
    if 1 < days < 7:
        return f"{a:%a} {clock}"
    if a.year == n.year or 0 < days < 300:
        return f"{a:%a} {a.day} {a:%b} {clock}"
    return f"{a:%a} {a.day} {a:%b} {a.year} {clock}"
