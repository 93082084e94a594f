"""Business hours: weekly intervals, special days, holidays, closures and the manual override.

`BusinessHours.status(now)` says whether the business is open, why, and when that changes;
`upcoming_changes(now, n)` lists the next openings and closings. Pure: no I/O and no wall
clock; every answer depends only on the settings and the `now` passed in (timezone-aware),
and on the public-holiday tables of the installed `HolidayProvider`.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Literal, Protocol
from zoneinfo import ZoneInfo

from .. import holiday_calendar
from ..holiday_calendar import YearTable
from ..settings.routing import (
    Holidays,
    Hours,
    Override,
    parse_date,
    parse_instant,
    parse_interval,
    parse_local_datetime,
)
from .clock import UTC, local_midnight, wall_to_instant, wall_to_instant_after, when

if TYPE_CHECKING:
    from ..settings.model import Settings

Mode = Literal["open", "closed", "holiday", "closure", "override"]
DayKind = Literal["weekly", "special", "holiday", "closure"]

HORIZON_DAYS = 400
"""How far ahead a next change is looked for; beyond it, 'no change scheduled'."""

_WINDOW_DAYS = 14
_ONE_DAY = dt.timedelta(days=1)
_EPOCH = dt.date(2000, 1, 3)
"""Windows of the timeline start on multiples of _WINDOW_DAYS from this Monday, so that
every question about a fortnight reuses one cached window."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Day:
    """What applies to one calendar date."""

    date: dt.date
    kind: DayKind
    intervals: tuple[tuple[int, int], ...]
    """Open intervals starting this date, minutes after midnight (end may pass 1440)."""
    reason: str = ""
    closure_id: str = ""

    @property
    def closed_all_day(self) -> bool:
        return self.kind in ("holiday", "closure")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """Open or closed at one instant, why, and until when."""

    at: dt.datetime
    mode: Mode
    is_open: bool
    reason: str
    """Holiday name, closure reason, special-day note or override note; may be empty."""
    greeting: str
    """Key of the greeting to play: open, closed, holiday or closure:<id>."""
    next_change: dt.datetime | None
    """When `is_open` next flips (in the business's timezone); None: not within a year."""
    override_until: dt.datetime | None = None
    """When an active override ends; None with mode override: until switched back."""
    text: str
    """In words: 'Open now, closes 17:30'."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One opening or closing."""

    at: dt.datetime
    is_open: bool
    """The state after the change."""
    mode: Mode
    reason: str
    text: str
    """In words, relative to the `now` asked about: 'Opens Mon 09:00'."""


_PAREN = re.compile(r"\s*\([^)]*\)$")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Bounds:
    """One fortnight window's merged open spans as sorted lists (see `_bounds`)."""

    starts: list[dt.datetime]
    ends: list[dt.datetime]
    times: list[dt.datetime]  # openings and closings within the window
    states: list[bool]  # True: an opening


class HolidayProvider(Protocol):
    """Where year tables and the list of countries come from. The default asks the `holidays`
    package in this process; the daemon installs one that serves tables a short-lived child
    process computed (firmware_app/services/holidays.py), so the package never loads here."""

    def year(self, country: str, subdivision: str, year: int) -> YearTable:
        """Public holidays of one year, (date, name) by date, names in the country's language."""
        ...

    def countries(self) -> Mapping[str, tuple[str, tuple[str, ...]]]:
        """Country code -> (English name, subdivision codes), for settings checks and pages."""
        ...


class LibraryHolidays:
    """The `holidays` package in this process (about 10 MB resident once imported)."""

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def _year(country: str, subdivision: str, year: int) -> YearTable:
        return holiday_calendar.year_table(country, subdivision, year)

    def year(self, country: str, subdivision: str, year: int) -> YearTable:
        return self._year(country, subdivision, year)

    @functools.cached_property
    def _catalogue(self) -> Mapping[str, tuple[str, tuple[str, ...]]]:
        return holiday_calendar.catalogue()

    def countries(self) -> Mapping[str, tuple[str, tuple[str, ...]]]:
        return self._catalogue


LIBRARY = LibraryHolidays()
_provider: HolidayProvider = LIBRARY


def install_holiday_provider(provider: HolidayProvider | None) -> HolidayProvider:
    """Serve holiday tables from `provider` from now on (None: the package in this process).
    Returns the one it replaces. BusinessHours objects built before keep what they looked up."""
    global _provider
    previous, _provider = _provider, provider or LIBRARY
    return previous


def holiday_provider() -> HolidayProvider:
    """The provider in use (see `install_holiday_provider`)."""
    return _provider


def _year_holidays(country: str, subdivision: str, year: int) -> YearTable:
    return _provider.year(country, subdivision, year)


def public_holidays(
    country: str, subdivision: str, year: int, observe: Holidays | None = None
) -> list[tuple[dt.date, str, bool]]:
    """The year's public holidays as (date, name, closes the office) for a settings page."""
    out: list[tuple[dt.date, str, bool]] = []
    for day, name in _year_holidays(country, subdivision, year):
        closes = bool(_closing_holiday(name, observe)) if observe else True
        out.append((day, name, closes))
    return out


def holiday_names(country: str, subdivision: str, years: range) -> list[str]:
    """Distinct holiday names (observed days folded in) to choose from."""
    names: set[str] = set()
    for year in years:
        for _, name in _year_holidays(country, subdivision, year):
            names.update(_PAREN.sub("", part.strip()) for part in name.split(";"))
    return sorted(names)


def _closing_holiday(name: str, observe: Holidays) -> str:
    """The part of a holiday's name that closes the office, or empty."""
    if observe.observe == "none":
        return ""
    if observe.observe == "all":
        return name
    chosen = {c.strip().casefold() for c in observe.chosen}
    parts = [p.strip() for p in name.split(";")]
    hits = [p for p in parts if p.casefold() in chosen or _PAREN.sub("", p).casefold() in chosen]
    return "; ".join(hits)


class BusinessHours:
    """The business's hours as a function of time. Build one per settings version."""

    def __init__(
        self,
        *,
        timezone: str,
        hours: Hours,
        holidays: Holidays,
        override: Override,
        country: str = "",
        subdivision: str = "",
        holidays_from: HolidayProvider | None = None,
    ) -> None:
        self.tz = ZoneInfo(timezone)
        self._provider = holidays_from  # None: the provider installed for the process
        self.timezone = timezone
        self.hours = hours
        self.holidays = holidays
        self.override = override
        self.country = country
        self.subdivision = subdivision
        self._weekly = [
            tuple(sorted(p for t in day if (p := parse_interval(t)))) for day in hours.weekly()
        ]
        self._special: dict[dt.date, tuple[tuple[int, int], ...]] = {}
        self._special_note: dict[dt.date, str] = {}
        for sd in hours.special:
            date = parse_date(sd.date)
            if date is not None:
                self._special[date] = tuple(sorted(p for t in sd.hours if (p := parse_interval(t))))
                self._special_note[date] = sd.note
        self._closures: list[tuple[dt.date, dt.date, str, str]] = []
        for c in holidays.closures:
            a, b = parse_date(c.start), parse_date(c.end)
            if a and b:
                self._closures.append((a, b, c.id, c.reason))
        self._holiday_cache: dict[int, dict[dt.date, str]] = {}
        # Memos: an instance stands for one settings version, so days and windows never change.
        self._days: dict[dt.date, Day] = {}
        self._windows: dict[dt.date, list[tuple[dt.datetime, dt.datetime]]] = {}
        self._bounds_memo: dict[dt.date, _Bounds] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, holidays: HolidayProvider | None = None
    ) -> BusinessHours:
        """`holidays`: where public-holiday tables come from (default: the process's)."""
        b = settings.business
        return cls(
            timezone=b.timezone,
            hours=settings.hours,
            holidays=settings.holidays,
            override=settings.override,
            country=b.country,
            subdivision=b.subdivision,
            holidays_from=holidays,
        )

    # -- calendar days ------------------------------------------------------------------------

    def _holiday(self, date: dt.date) -> str:
        if not self.country or self.holidays.observe == "none":
            return ""
        year = self._holiday_cache.get(date.year)
        if year is None:
            provider = self._provider or _provider
            year = dict(provider.year(self.country, self.subdivision, date.year))
            self._holiday_cache[date.year] = year
        name = year.get(date)
        return _closing_holiday(name, self.holidays) if name else ""

    def day(self, date: dt.date) -> Day:
        """What applies on a date. Precedence: closure, special hours, holiday, weekly."""
        found = self._days.get(date)
        if found is None:
            if len(self._days) > 4096:
                self._days.clear()
            found = self._days[date] = self._find_day(date)
        return found

    def _find_day(self, date: dt.date) -> Day:
        for first, last, cid, reason in self._closures:
            if first <= date <= last:
                return Day(date=date, kind="closure", intervals=(), reason=reason, closure_id=cid)
        if date in self._special:
            return Day(
                date=date,
                kind="special",
                intervals=self._special[date],
                reason=self._special_note[date],
            )
        holiday = self._holiday(date)
        if holiday:
            return Day(date=date, kind="holiday", intervals=(), reason=holiday)
        return Day(date=date, kind="weekly", intervals=self._weekly[date.weekday()])

    # -- the scheduled timeline (without override) --------------------------------------------

    def _spans(self, first: dt.date, last: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        """Merged open spans (UTC); exact for instants from first's to (last+1)'s midnight."""
        raw: list[tuple[dt.datetime, dt.datetime]] = []
        date = first - _ONE_DAY
        while date <= last + _ONE_DAY:
            midnight = dt.datetime.combine(date, dt.time())
            for start, end in self.day(date).intervals:
                a = wall_to_instant(midnight + dt.timedelta(minutes=start), self.tz)
                b = wall_to_instant(midnight + dt.timedelta(minutes=end), self.tz)
                if a < b:
                    raw.append((a, b))
            date += _ONE_DAY
        raw.sort()
        merged: list[tuple[dt.datetime, dt.datetime]] = []
        for a, b in raw:
            if merged and a <= merged[-1][1]:
                if b > merged[-1][1]:
                    merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        # Days closed all day cut what spills into them from the evening before.
        cuts: list[tuple[dt.datetime, dt.datetime]] = []
        date = first - _ONE_DAY
        while date <= last + 2 * _ONE_DAY:
            if self.day(date).closed_all_day:
                cuts.append(
                    (local_midnight(date, self.tz), local_midnight(date + _ONE_DAY, self.tz))
                )
            date += _ONE_DAY
        for ca, cb in cuts:
            kept: list[tuple[dt.datetime, dt.datetime]] = []
            for a, b in merged:
                if b <= ca or a >= cb:
                    kept.append((a, b))
                    continue
                if a < ca:
                    kept.append((a, ca))
                if b > cb:
                    kept.append((cb, b))
            merged = kept
        return merged

    def _wall_date(self, t: dt.datetime) -> dt.date:
        return t.astimezone(self.tz).date()

    def _window_start(self, date: dt.date) -> dt.date:
        return date - dt.timedelta(days=(date - _EPOCH).days % _WINDOW_DAYS)

    def _window(self, start: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        """The merged spans of the fortnight starting on `start` (an aligned date), memoised."""
        spans = self._windows.get(start)
        if spans is None:
            if len(self._windows) > 256:
                self._windows.clear()
            spans = self._windows[start] = self._spans(
                start, start + dt.timedelta(days=_WINDOW_DAYS - 1)
            )
        return spans

    def weekly_open(self, t: dt.datetime) -> bool:
        """Within the weekly hours at `t` (wall clock), ignoring special days, holidays,
        closures and the override: the regular working times. Rota times outside them are
        on-call times (see `Router.decide`)."""
        local = t.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        weekday = local.weekday()
        if any(a <= minute < b for a, b in self._weekly[weekday]):
            return True
        return any(minute < b - 1440 for _, b in self._weekly[(weekday - 1) % 7] if b > 1440)

    def _bounds(self, start: dt.date) -> _Bounds:
        """The window's spans as sorted lists for bisection: span starts, and the openings
        and closings that fall within the fortnight (from its first local midnight to the
        next window's, both included), memoised with the window."""
        found = self._bounds_memo.get(start)
        if found is None:
            if len(self._bounds_memo) > 256:
                self._bounds_memo.clear()
            spans = self._window(start)
            lo = local_midnight(start, self.tz)
            hi = local_midnight(start + dt.timedelta(days=_WINDOW_DAYS), self.tz)
            times: list[dt.datetime] = []
            states: list[bool] = []
            for a, b in spans:
                for at, state in ((a, True), (b, False)):
                    if lo <= at <= hi:
                        times.append(at)
                        states.append(state)
            found = self._bounds_memo[start] = _Bounds(
                starts=[a for a, _ in spans], ends=[b for _, b in spans], times=times, states=states
            )
        return found

    def scheduled_open(self, t: dt.datetime) -> bool:
        """Open by the hours, holidays and closures alone (no override)."""
        t = t.astimezone(UTC)
        b = self._bounds(self._window_start(self._wall_date(t)))
        i = bisect.bisect_right(b.starts, t) - 1  # the last span starting at or before t
        return i >= 0 and t < b.ends[i]

    def scheduled_changes(self, after: dt.datetime) -> Iterator[tuple[dt.datetime, bool]]:
        """Openings (True) and closings (False) strictly after `after`, within the horizon.

        Instants are in UTC: aware datetimes sharing one zone compare by wall clock, which is
        wrong in a repeated hour, so everything inside works in UTC.
        """
        previous = after.astimezone(UTC)
        start = self._window_start(self._wall_date(previous) - _ONE_DAY)
        end = start + dt.timedelta(days=HORIZON_DAYS)
        while start <= end:
            b = self._bounds(start)
            for j in range(bisect.bisect_right(b.times, previous), len(b.times)):
                previous = b.times[j]
                yield previous, b.states[j]
            start += dt.timedelta(days=_WINDOW_DAYS)

    def _next_scheduled(self, after: dt.datetime, state: bool | None = None) -> dt.datetime | None:
        previous = after.astimezone(UTC)
        start = self._window_start(self._wall_date(previous) - _ONE_DAY)
        end = start + dt.timedelta(days=HORIZON_DAYS)
        while start <= end:
            b = self._bounds(start)
            for j in range(bisect.bisect_right(b.times, previous), len(b.times)):
                if state is None or b.states[j] == state:
                    return b.times[j]
            if b.times and b.times[-1] > previous:
                previous = b.times[-1]
            start += dt.timedelta(days=_WINDOW_DAYS)
        return None

    def next_change_to(self, after: dt.datetime, is_open: bool) -> dt.datetime | None:
        """When the hours alone (no override) next open (True) or close (False) strictly after
        `after`, in local time; None when not within the horizon. An override "until the next
        scheduled change" switched on at `after` ends there (see `override_window`)."""
        at = self._next_scheduled(after.astimezone(UTC), is_open)
        return self._local(at)

    # -- the override -------------------------------------------------------------------------

    def override_window(self, now: dt.datetime) -> tuple[bool, dt.datetime | None] | None:
        """(forced open?, end (UTC) or None: until switched back) when an override is on."""
        now = now.astimezone(UTC)
        ov = self.override
        if ov.state == "off":
            return None
        forced = ov.state == "open"
        since = parse_instant(ov.since) if ov.since else None
        if since is not None and now < since:
            return None
        end: dt.datetime | None
        if ov.until == "switched_back":
            end = None
        elif ov.until == "time":
            local = parse_local_datetime(ov.until_time)
            if local is None:
                return None
            # The first time the clock shows it after the switch (the later of the two in a
            # fall-back repeat when the first had passed by then).
            if since is not None:
                end = wall_to_instant_after(local, self.tz, since)
            else:
                end = wall_to_instant(local, self.tz)
        else:
            end = self._next_scheduled(since or now, forced)
            if end is None:  # the hours never switch that way: it holds until switched back
                pass
        if end is not None and now >= end:
            return None
        return forced, end

    # -- status -------------------------------------------------------------------------------

    def _scheduled_mode(self, t: dt.datetime, is_open: bool) -> tuple[Mode, str, str]:
        """(mode, reason, greeting) by the hours alone at t."""
        day = self.day(self._wall_date(t))
        if is_open:
            return "open", day.reason if day.kind == "special" else "", "open"
        if day.kind == "closure":
            return "closure", day.reason, f"closure:{day.closure_id}"
        if day.kind == "holiday":
            return "holiday", day.reason, "holiday"
        return "closed", day.reason if day.kind == "special" else "", "closed"

    def status(self, now: dt.datetime) -> Status:
        """Open or closed at `now` (timezone-aware), why, and when that changes."""
        _require_aware(now)
        now = now.astimezone(UTC)
        window = self.override_window(now)
        if window is not None:
            forced, end = window
            if end is None:
                next_change = None
            elif self.scheduled_open(end) != forced:
                next_change = end
            else:
                next_change = self._next_scheduled(end, not forced)
            note = self.override.note
            text = f"{'Open' if forced else 'Closed'} by override"
            text += f" ({note})" if note else ""
            if end is None:
                text += " until switched back"
            else:
                text += f" until {when(end, now, self.tz)}"
                if next_change == end:
                    text += ", then " + ("closed" if forced else "open")
                elif next_change is not None:
                    verb = "opens" if not forced else "closes"
                    text += f", then as scheduled: {verb} {when(next_change, now, self.tz)}"
            return Status(
                at=now.astimezone(self.tz),
                mode="override",
                is_open=forced,
                reason=note,
                greeting="open" if forced else "closed",
                next_change=self._local(next_change),
                override_until=self._local(end),
                text=text,
            )
        is_open = self.scheduled_open(now)
        mode, reason, greeting = self._scheduled_mode(now, is_open)
        next_change = self._next_scheduled(now, not is_open)
        return Status(
            at=now.astimezone(self.tz),
            mode=mode,
            is_open=is_open,
            reason=reason,
            greeting=greeting,
            next_change=self._local(next_change),
            text=_words(mode, is_open, reason, next_change, now, self.tz),
        )

    def upcoming_changes(
        self, now: dt.datetime, n: int, *, include_override: bool = True
    ) -> list[Change]:
        """The next `n` openings and closings after `now`, for a week view."""
        _require_aware(now)
        now = now.astimezone(UTC)
        out: list[Change] = []
        after = now
        window = self.override_window(now) if include_override else None
        if window is not None:
            forced, end = window
            if end is None:
                return []
            if self.scheduled_open(end) != forced:
                out.append(self._change(end, not forced, now))
            after = end
        for at, state in self.scheduled_changes(after):
            if len(out) >= n:
                break
            if out and out[-1].is_open == state:  # the override already made this change
                continue
            out.append(self._change(at, state, now))
        return out[:n]

    def _local(self, t: dt.datetime | None) -> dt.datetime | None:
        return None if t is None else t.astimezone(self.tz)

    def _change(self, at: dt.datetime, is_open: bool, now: dt.datetime) -> Change:
        mode, reason, _ = self._scheduled_mode(at, is_open)
        verb = "Opens" if is_open else "Closes"
        return Change(
            at=at.astimezone(self.tz),
            is_open=is_open,
            mode=mode,
            reason=reason,
            text=f"{verb} {when(at, now, self.tz)}",
        )


def _require_aware(now: dt.datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"a timezone-aware time is needed, got {now!r}")


def _words(
    mode: Mode,
    is_open: bool,
    reason: str,
    next_change: dt.datetime | None,
    now: dt.datetime,
    tz: ZoneInfo,
) -> str:
    if is_open:
        head = f"Open now ({reason})" if reason else "Open now"
        tail = f"closes {when(next_change, now, tz)}" if next_change else "no closing scheduled"
        return f"{head}, {tail}"
    if mode in ("holiday", "closure"):
        head = f"Closed: {reason}"
    else:
        head = f"Closed now ({reason})" if reason else "Closed now"
    tail = f"opens {when(next_change, now, tz)}" if next_change else "no opening scheduled"
    return f"{head}, {tail}"


def status(settings: Settings, now: dt.datetime) -> Status:
    """Shortcut: `BusinessHours.from_settings(settings).status(now)`."""
    return BusinessHours.from_settings(settings).status(now)


def upcoming_changes(settings: Settings, now: dt.datetime, n: int) -> list[Change]:
    """Shortcut: `BusinessHours.from_settings(settings).upcoming_changes(now, n)`."""
    return BusinessHours.from_settings(settings).upcoming_changes(now, n)
