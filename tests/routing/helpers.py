"""Shared builders for routing tests."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from firmware_app.routing import BusinessHours
from firmware_app.settings.model import Settings
from firmware_app.settings.routing import Closure, Holidays, Hours, Override, SpecialDay

WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def settings(
    tz: str = "Europe/London",
    country: str = "GB",
    subdivision: str = "",
    *,
    every_day: list[str] | None = None,
    **kw: Any,
) -> Settings:
    s = Settings()
    s.business.timezone = tz
    s.business.country = country
    s.business.subdivision = subdivision
    if every_day is not None:
        for day in WEEK:
            setattr(s.hours, day, list(every_day))
    for day in WEEK:
        if day in kw:
            setattr(s.hours, day, kw.pop(day))
    if "special" in kw:
        s.hours.special = [SpecialDay(date=d, hours=h, note=n) for d, h, n in kw.pop("special")]
    if "observe" in kw:
        s.holidays.observe = kw.pop("observe")
    if "chosen" in kw:
        s.holidays.chosen = kw.pop("chosen")
    if "closures" in kw:
        s.holidays.closures = [
            Closure(id=i, start=a, end=b, reason=r) for i, a, b, r in kw.pop("closures")
        ]
    if "override" in kw:
        s.override = kw.pop("override")
    assert not kw, kw
    return s


def hours(s: Settings) -> BusinessHours:
    return BusinessHours.from_settings(s)


def at(text: str, tz: str, fold: int = 0) -> dt.datetime:
    """An aware local time; fold=1 picks the second of a repeated hour."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz), fold=fold)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


__all__ = ["Holidays", "Hours", "Override", "at", "hours", "settings", "utc"]
