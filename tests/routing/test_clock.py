"""Wall-clock times to instants: gaps map to the gap's end, repeats to the first occurrence."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from firmware_app.routing import wall_to_instant, when

from .helpers import utc

# (zone, local wall time, first instant the clock shows it, why)
TABLE = [
    ("Europe/London", "2025-03-30 00:30", "2025-03-30 00:30", "before the jump"),
    ("Europe/London", "2025-03-30 01:00", "2025-03-30 01:00", "gap start: gap end"),
    ("Europe/London", "2025-03-30 01:30", "2025-03-30 01:00", "inside the gap: gap end"),
    ("Europe/London", "2025-03-30 02:00", "2025-03-30 01:00", "gap end itself"),
    ("Europe/London", "2025-10-26 01:30", "2025-10-26 00:30", "repeat: first occurrence"),
    ("Europe/London", "2025-10-26 02:00", "2025-10-26 02:00", "after the repeat"),
    ("America/New_York", "2025-03-09 02:30", "2025-03-09 07:00", "gap"),
    ("America/New_York", "2025-03-09 03:00", "2025-03-09 07:00", "gap end"),
    ("America/New_York", "2025-11-02 01:30", "2025-11-02 05:30", "repeat: EDT first"),
    ("Australia/Sydney", "2025-10-05 02:30", "2025-10-04 16:00", "southern spring gap"),
    ("Australia/Sydney", "2025-04-06 02:30", "2025-04-05 15:30", "southern repeat"),
    ("Pacific/Auckland", "2025-09-28 02:15", "2025-09-27 14:00", "gap"),
    ("Pacific/Auckland", "2025-04-06 02:30", "2025-04-05 13:30", "repeat"),
    ("Australia/Lord_Howe", "2025-10-05 02:10", "2025-10-04 15:30", "half-hour gap"),
    ("America/Santiago", "2025-09-07 00:00", "2025-09-07 04:00", "midnight skipped"),
    ("Pacific/Apia", "2011-12-30 10:00", "2011-12-30 10:00", "a whole day skipped"),
    ("UTC", "2025-06-01 12:00", "2025-06-01 12:00", "no DST"),
]


@pytest.mark.parametrize(("tz", "local", "expected", "why"), TABLE)
def test_wall_to_instant(tz: str, local: str, expected: str, why: str) -> None:
    got = wall_to_instant(dt.datetime.fromisoformat(local), ZoneInfo(tz))
    assert got == utc(expected), why


def test_wall_to_instant_is_monotone_through_a_gap() -> None:
    tz = ZoneInfo("America/New_York")
    base = dt.datetime(2025, 3, 9, 1, 0)
    instants = [wall_to_instant(base + dt.timedelta(minutes=m), tz) for m in range(0, 180, 5)]
    assert instants == sorted(instants)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("2025-03-24 17:30", "17:30"),
        ("2025-03-25 09:00", "tomorrow 09:00"),
        ("2025-03-28 09:00", "Fri 09:00"),
        ("2025-04-07 09:00", "Mon 7 Apr 09:00"),
        ("2027-01-04 09:00", "Mon 4 Jan 2027 09:00"),
    ],
)
def test_when_in_words(target: str, expected: str) -> None:
    tz = ZoneInfo("Europe/London")
    now = dt.datetime(2025, 3, 24, 10, 0, tzinfo=tz)
    assert when(dt.datetime.fromisoformat(target).replace(tzinfo=tz), now, tz) == expected


def test_wall_to_instant_after_picks_the_occurrence_still_to_come() -> None:
    from firmware_app.routing.clock import wall_to_instant_after

    london = ZoneInfo("Europe/London")
    repeat = dt.datetime(2025, 10, 26, 1, 50)  # 01:50 happens at 00:50 and 01:50 UTC
    first = dt.datetime(2025, 10, 26, 0, 50, tzinfo=dt.UTC)
    second = dt.datetime(2025, 10, 26, 1, 50, tzinfo=dt.UTC)
    assert wall_to_instant_after(repeat, london, first - dt.timedelta(hours=1)) == first
    assert wall_to_instant_after(repeat, london, first) == second  # the first has come
    assert (
        wall_to_instant_after(repeat, london, dt.datetime(2025, 10, 26, 1, 35, tzinfo=dt.UTC))
        == second
    )
    assert wall_to_instant_after(repeat, london, second) == first  # both passed: the first
    normal = dt.datetime(2025, 10, 27, 9, 0)  # no repeat: the one instant, passed or not
    nine = dt.datetime(2025, 10, 27, 9, 0, tzinfo=dt.UTC)
    assert wall_to_instant_after(normal, london, nine + dt.timedelta(hours=2)) == nine
    gap = dt.datetime(2025, 3, 30, 1, 30)  # never shows: the end of the gap, as before
    assert wall_to_instant_after(gap, london, nine) == dt.datetime(2025, 3, 30, 1, 0, tzinfo=dt.UTC)
