"""Business hours: DST days in several zones, intervals past midnight, holidays, closures,
special days and every override kind."""

from __future__ import annotations

import datetime as dt

import pytest

from firmware_app.settings.routing import Override

from .helpers import at, hours, settings, utc

NINE_TO_FIVE = ["09:00-17:00"]

# Days on which the clocks change (2025), spring-forward and fall-back, in several zones.
DST_DAYS = [
    ("Europe/London", "2025-03-30"),
    ("Europe/London", "2025-10-26"),
    ("America/New_York", "2025-03-09"),
    ("America/New_York", "2025-11-02"),
    ("Australia/Sydney", "2025-10-05"),
    ("Australia/Sydney", "2025-04-06"),
    ("Pacific/Auckland", "2025-09-28"),
    ("Pacific/Auckland", "2025-04-06"),
    ("Australia/Lord_Howe", "2025-10-05"),
    ("America/Santiago", "2025-09-07"),
]


@pytest.mark.parametrize(("tz", "day"), DST_DAYS)
def test_nine_to_five_on_clock_change_days_follows_the_wall_clock(tz: str, day: str) -> None:
    bh = hours(settings(tz, "", every_day=NINE_TO_FIVE))
    changes = bh.upcoming_changes(at(f"{day} 00:00", tz) + dt.timedelta(hours=4), 2)
    assert [c.at for c in changes] == [at(f"{day} 09:00", tz), at(f"{day} 17:00", tz)]
    assert [c.at.strftime("%H:%M") for c in changes] == ["09:00", "17:00"]
    assert [c.text for c in changes] == ["Opens 09:00", "Closes 17:00"]
    st = bh.status(at(f"{day} 12:00", tz))
    assert st.is_open and st.text == "Open now, closes 17:00"


# (zone, hours that day, probe instant UTC, open?, next change UTC, why)
DST_TABLE = [
    # New York spring forward 2025-03-09: 02:00 EST -> 03:00 EDT (07:00 UTC).
    ("America/New_York", "01:30-03:00", "2025-03-09 06:45", True, "2025-03-09 07:00",
     "an interval over the gap lasts 30 real minutes"),
    ("America/New_York", "02:30-04:00", "2025-03-09 06:59", False, "2025-03-09 07:00",
     "a start inside the gap opens when the clock jumps"),
    ("America/New_York", "02:30-04:00", "2025-03-09 07:30", True, "2025-03-09 08:00",
     "and closes at 04:00 EDT"),
    ("America/New_York", "02:10-02:40", "2025-03-09 06:00", False, "2025-03-10 06:10",
     "an interval wholly inside the gap does not happen that day"),
    # New York fall back 2025-11-02: 02:00 EDT -> 01:00 EST (06:00 UTC).
    ("America/New_York", "01:30-03:00", "2025-11-02 05:40", True, "2025-11-02 08:00",
     "first 01:30 opens; 03:00 EST closes: 2.5 real hours"),
    ("America/New_York", "01:30-03:00", "2025-11-02 06:10", True, "2025-11-02 08:00",
     "no flapping during the repeated hour (01:10 EST)"),
    ("America/New_York", "00:00-01:30", "2025-11-02 05:45", False, "2025-11-03 05:00",
     "an end inside the repeat closes at its first occurrence"),
    # London spring 2025-03-30 01:00 GMT -> 02:00 BST; fall 2025-10-26 02:00 BST -> 01:00 GMT.
    ("Europe/London", "01:15-01:45", "2025-03-30 00:30", False, "2025-03-31 00:15",
     "London: an interval inside the gap is skipped"),
    ("Europe/London", "01:00-02:00", "2025-10-26 00:30", True, "2025-10-26 02:00",
     "London: 01:00-02:00 around the repeat lasts two real hours (first 01:00 to 02:00 GMT)"),
    # Sydney spring 2025-10-05 02:00 AEST -> 03:00 AEDT (2025-10-04 16:00 UTC).
    ("Australia/Sydney", "02:00-04:00", "2025-10-04 16:30", True, "2025-10-04 17:00",
     "Sydney: opens at 03:00 AEDT, closes 04:00 AEDT"),
    # Auckland fall 2025-04-06 03:00 NZDT -> 02:00 NZST (2025-04-05 14:00 UTC).
    ("Pacific/Auckland", "02:30-03:30", "2025-04-05 14:10", True, "2025-04-05 15:30",
     "Auckland: opens at the first 02:30, closes 03:30 NZST: two real hours"),
]  # fmt: skip


@pytest.mark.parametrize(("tz", "span", "probe", "is_open", "change", "why"), DST_TABLE)
def test_intervals_across_clock_changes(
    tz: str, span: str, probe: str, is_open: bool, change: str, why: str
) -> None:
    st = hours(settings(tz, "", every_day=[span])).status(utc(probe))
    assert (st.is_open, st.next_change) == (is_open, utc(change)), why
    assert st.next_change is not None and st.next_change.tzinfo is not None


def test_overnight_interval_across_spring_forward_is_an_hour_shorter() -> None:
    bh = hours(settings("Europe/London", "", sat=["22:00-04:00"]))
    opens, closes = bh.upcoming_changes(utc("2025-03-29 12:00"), 2)
    assert (opens.at, closes.at) == (utc("2025-03-29 22:00"), utc("2025-03-30 03:00"))
    assert closes.at.strftime("%H:%M %Z") == "04:00 BST"


def test_overnight_interval_across_fall_back_is_an_hour_longer() -> None:
    bh = hours(settings("Europe/London", "", sat=["22:00-04:00"]))
    opens, closes = bh.upcoming_changes(utc("2025-10-25 12:00"), 2)
    # Subtract in UTC: Python subtracts same-zone datetimes by wall clock.
    assert closes.at.astimezone(dt.UTC) - opens.at.astimezone(dt.UTC) == dt.timedelta(hours=7)


@pytest.mark.parametrize(
    ("local", "is_open", "text"),
    [
        ("2025-03-28 17:30", False, "Closed now, opens 18:00"),
        ("2025-03-28 20:00", True, "Open now, closes tomorrow 02:00"),
        ("2025-03-29 01:59", True, "Open now, closes 02:00"),
        ("2025-03-29 02:00", False, "Closed now, opens Mon 09:00"),
    ],
)
def test_friday_evening_interval_runs_past_midnight(local: str, is_open: bool, text: str) -> None:
    s = settings("Europe/London", "", fri=["09:00-17:00", "18:00-02:00"])
    st = hours(s).status(at(local, "Europe/London"))
    assert (st.is_open, st.text) == (is_open, text)


def test_adjacent_days_open_all_day_merge_into_one_span() -> None:
    bh = hours(settings("Europe/London", "", every_day=["00:00-24:00"], sun=[]))
    st = bh.status(at("2025-03-24 12:00", "Europe/London"))
    assert st.next_change == at("2025-03-30 00:00", "Europe/London")
    assert st.text == "Open now, closes Sun 00:00"


def test_never_open_has_no_next_change() -> None:
    bh = hours(settings("UTC", "", every_day=[]))
    st = bh.status(utc("2025-01-01 12:00"))
    assert (st.is_open, st.next_change, st.text) == (
        False,
        None,
        "Closed now, no opening scheduled",
    )
    assert bh.upcoming_changes(utc("2025-01-01 12:00"), 3) == []


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        hours(settings()).status(dt.datetime(2025, 1, 1, 12))


# -- holidays, special days, closures -----------------------------------------------------------

LON = "Europe/London"


@pytest.mark.parametrize(
    ("observe", "chosen", "local", "mode", "reason"),
    [
        ("all", [], "2025-12-25 10:00", "holiday", "Christmas Day"),
        ("all", [], "2025-12-26 10:00", "holiday", "Boxing Day"),
        ("chosen", ["Christmas Day"], "2025-12-25 10:00", "holiday", "Christmas Day"),
        ("chosen", ["christmas day"], "2025-12-26 10:00", "open", ""),
        ("none", [], "2025-12-25 10:00", "open", ""),
        ("all", [], "2025-12-27 10:00", "closed", ""),
    ],
)
def test_which_public_holidays_close(
    observe: str, chosen: list[str], local: str, mode: str, reason: str
) -> None:
    s = settings(LON, "GB", "ENG", observe=observe, chosen=chosen)
    st = hours(s).status(at(local, LON))
    assert (st.mode, st.reason) == (mode, reason)
    if mode == "holiday":
        assert st.greeting == "holiday"
        assert st.text.startswith(f"Closed: {reason}, opens ")


def test_choosing_a_holiday_covers_its_observed_day() -> None:
    s = settings("America/New_York", "US", observe="chosen", chosen=["Christmas Day"])
    st = hours(s).status(at("2021-12-24 10:00", "America/New_York"))  # a Friday
    assert (st.mode, st.reason) == ("holiday", "Christmas Day (observed)")


def test_regional_holidays_follow_the_subdivision() -> None:
    day = at("2025-01-06 10:00", "Europe/Berlin")  # Epiphany: Bavaria only
    assert hours(settings("Europe/Berlin", "DE", "BY")).status(day).mode == "holiday"
    assert hours(settings("Europe/Berlin", "DE", "BE")).status(day).mode == "open"


def test_holiday_names_use_the_country_language_whatever_the_locale() -> None:
    s = settings("Europe/Berlin", "DE", observe="chosen", chosen=["Neujahr"])
    assert hours(s).status(at("2025-01-01 10:00", "Europe/Berlin")).reason == "Neujahr"


def test_special_hours_replace_the_weekly_hours() -> None:
    s = settings(LON, "GB", special=[("2025-12-24", ["09:00-12:00"], "Christmas Eve")])
    bh = hours(s)
    st = bh.status(at("2025-12-24 11:00", LON))
    assert (st.mode, st.text) == ("open", "Open now (Christmas Eve), closes 12:00")
    st = bh.status(at("2025-12-24 12:30", LON))
    assert (st.mode, st.reason) == ("closed", "Christmas Eve")
    assert st.text == "Closed now (Christmas Eve), opens Mon 09:00"


def test_special_hours_beat_a_holiday_and_closures_beat_both() -> None:
    s = settings(LON, "GB", special=[("2025-12-26", ["10:00-14:00"], "Sale")])
    assert hours(s).status(at("2025-12-26 11:00", LON)).mode == "open"
    s.holidays.closures = settings(
        closures=[("winter", "2025-12-22", "2026-01-02", "Winter break")]
    ).holidays.closures
    st = hours(s).status(at("2025-12-26 11:00", LON))
    assert (st.mode, st.reason, st.greeting) == ("closure", "Winter break", "closure:winter")
    assert st.next_change == at("2026-01-05 09:00", LON)


def test_a_closed_day_cuts_the_evening_before_at_midnight() -> None:
    s = settings(LON, "GB", wed=["18:00-02:00"])  # 2025-12-24 is a Wednesday
    bh = hours(s)
    st = bh.status(at("2025-12-24 23:00", LON))
    assert st.is_open and st.next_change == at("2025-12-25 00:00", LON)
    assert bh.status(at("2025-12-25 01:00", LON)).mode == "holiday"


# -- the override -------------------------------------------------------------------------------

MON = "2025-03-24"  # a Monday; London on GMT


def _override(
    state: str, until: str, since: str = "", until_time: str = "", note: str = ""
) -> Override:
    return Override(state=state, until=until, since=since, until_time=until_time, note=note)  # type: ignore[arg-type]


def _since(local: str) -> str:
    return at(local, LON).isoformat()


OVERRIDES = [
    # (override, probe, mode, open?, override until, next change, text)
    (_override("closed", "next_change", _since(f"{MON} 15:00")), f"{MON} 15:30",
     "override", False, f"{MON} 17:00", "2025-03-25 09:00",
     "Closed by override until 17:00, then as scheduled: opens tomorrow 09:00"),
    (_override("closed", "next_change", _since(f"{MON} 15:00")), f"{MON} 17:30",
     "closed", False, None, "2025-03-25 09:00", "Closed now, opens tomorrow 09:00"),
    (_override("closed", "next_change", _since(f"{MON} 08:00"), note="Staff training"),
     f"{MON} 10:00", "override", False, f"{MON} 17:00", "2025-03-25 09:00",
     "Closed by override (Staff training) until 17:00, then as scheduled: opens tomorrow 09:00"),
    (_override("open", "next_change", _since(f"{MON} 17:10")), f"{MON} 20:00",
     "override", True, "2025-03-25 09:00", "2025-03-25 17:00",
     "Open by override until tomorrow 09:00, then as scheduled: closes tomorrow 17:00"),
    (_override("closed", "time", _since(f"{MON} 15:00"), "2025-03-25 10:00"), f"{MON} 16:00",
     "override", False, "2025-03-25 10:00", "2025-03-25 10:00",
     "Closed by override until tomorrow 10:00, then open"),
    (_override("open", "time", _since(f"{MON} 17:05"), f"{MON} 19:00"), f"{MON} 18:00",
     "override", True, f"{MON} 19:00", f"{MON} 19:00",
     "Open by override until 19:00, then closed"),
    (_override("open", "time", _since(f"{MON} 17:05"), f"{MON} 19:00"), f"{MON} 19:00",
     "closed", False, None, "2025-03-25 09:00", "Closed now, opens tomorrow 09:00"),
    (_override("closed", "switched_back", _since(f"{MON} 11:00")), "2025-04-02 10:00",
     "override", False, None, None, "Closed by override until switched back"),
    (_override("open", "switched_back"), "2025-12-25 03:00",
     "override", True, None, None, "Open by override until switched back"),
    (_override("closed", "switched_back", _since(f"{MON} 11:00")), f"{MON} 10:00",
     "open", True, None, f"{MON} 17:00", "Open now, closes 17:00"),
]  # fmt: skip


@pytest.mark.parametrize(("ov", "probe", "mode", "is_open", "until", "change", "text"), OVERRIDES)
def test_every_override_kind_shows_its_end(
    ov: Override,
    probe: str,
    mode: str,
    is_open: bool,
    until: str | None,
    change: str | None,
    text: str,
) -> None:
    st = hours(settings(LON, "GB", override=ov)).status(at(probe, LON))
    assert (st.mode, st.is_open, st.text) == (mode, is_open, text)
    assert st.override_until == (at(until, LON) if until else None)
    assert st.next_change == (at(change, LON) if change else None)
    if mode == "override":
        assert st.greeting == ("open" if is_open else "closed")


def test_upcoming_changes_start_with_the_override_end() -> None:
    ov = _override("closed", "time", _since(f"{MON} 15:00"), "2025-03-25 10:00")
    bh = hours(settings(LON, "GB", override=ov))
    got = [(c.at, c.is_open) for c in bh.upcoming_changes(at(f"{MON} 16:00", LON), 3)]
    assert got == [
        (at("2025-03-25 10:00", LON), True),
        (at("2025-03-25 17:00", LON), False),
        (at("2025-03-26 09:00", LON), True),
    ]
    plain = bh.upcoming_changes(at(f"{MON} 16:00", LON), 1, include_override=False)
    assert plain[0].at == at(f"{MON} 17:00", LON)


def test_override_until_switched_back_has_no_upcoming_changes() -> None:
    bh = hours(settings(LON, "GB", override=_override("closed", "switched_back")))
    assert bh.upcoming_changes(at(f"{MON} 10:00", LON), 5) == []
