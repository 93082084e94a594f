"""Business hours take their public holidays from the installed provider: a made-up calendar
closes the office on its days, the settings checks and country list read it too, and
uninstalling gives the `holidays` package back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping

import pytest

from firmware_app.holiday_calendar import YearTable
from firmware_app.routing import hours as hours_module
from firmware_app.routing import public_holidays
from firmware_app.settings import model

from .helpers import at, hours, settings

BERLIN = "Europe/Berlin"


class Calendar:
    """Holidays of a country that does not exist, with one region."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, int]] = []

    def year(self, country: str, subdivision: str, year: int) -> YearTable:
        self.asked.append((country, subdivision, year))
        days = [(dt.date(year, 3, 3), "Founders' Day")]
        if subdivision == "NO":
            days.append((dt.date(year, 3, 4), "North Day"))
        return tuple(days)

    def countries(self) -> Mapping[str, tuple[str, tuple[str, ...]]]:
        return {"ZZ": ("Zedland", ("NO", "SO")), "DE": ("Germany", ("BY", "BE"))}


@pytest.fixture
def calendar() -> Iterator[Calendar]:
    cal = Calendar()
    previous = hours_module.install_holiday_provider(cal)
    model._countries.cache_clear()
    try:
        yield cal
    finally:
        hours_module.install_holiday_provider(previous)
        model._countries.cache_clear()


def test_the_office_closes_on_the_providers_holidays(calendar: Calendar) -> None:
    s = settings(BERLIN, "ZZ", "NO", every_day=["09:00-17:00"])
    bh = hours(s)
    st = bh.status(at("2025-03-03 10:00", BERLIN))
    assert (st.mode, st.reason, st.greeting) == ("holiday", "Founders' Day", "holiday")
    assert bh.status(at("2025-03-04 10:00", BERLIN)).reason == "North Day"
    assert bh.status(at("2025-03-05 10:00", BERLIN)).mode == "open"
    assert ("ZZ", "NO", 2025) in calendar.asked
    # Real German holidays are not consulted: Epiphany in Bavaria is an ordinary day here.
    assert hours(settings(BERLIN, "DE", "BY")).status(at("2025-01-06 10:00", BERLIN)).is_open


def test_settings_pages_and_checks_read_the_provider(calendar: Calendar) -> None:
    assert [d for d, _, _ in public_holidays("ZZ", "SO", 2026)] == [dt.date(2026, 3, 3)]
    business = model.Business(country="ZZ", subdivision="NO")
    assert business.validate() == []
    problems = model.Business(country="ZZ", subdivision="XX").validate()
    assert [p.allowed for p in problems] == ["a region of ZZ: NO, SO"]
    assert model._check_country("ZZ") is None
    assert model._check_country("FR") is not None  # not in this calendar


def test_without_a_provider_the_package_answers() -> None:
    assert hours_module.holiday_provider() is hours_module.LIBRARY
    table = hours_module.LIBRARY.year("DE", "BY", 2025)
    assert (dt.date(2025, 1, 6), "Heilige Drei Könige") in table
    name, regions = hours_module.LIBRARY.countries()["DE"]
    assert name == "Germany" and "BY" in regions
