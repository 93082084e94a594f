"""Properties: for any instant and any weekly schedule, the status is defined, the next
change is strictly in the future and really is a change."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from firmware_app.settings.routing import Override

from .helpers import WEEK, at, hours, settings

ZONES = [
    "Europe/London", "America/New_York", "Australia/Sydney", "Pacific/Auckland",
    "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata", "UTC",
]  # fmt: skip

times = st.integers(min_value=0, max_value=24 * 4 - 1).map(
    lambda q: f"{q // 4:02d}:{q % 4 * 15:02d}"
)
intervals = st.tuples(times, times).filter(lambda t: t[0] != t[1]).map(lambda t: f"{t[0]}-{t[1]}")
instants = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 12, 31)).map(
    lambda d: d.replace(tzinfo=dt.UTC)
)


@hsettings(deadline=None, max_examples=150)
@given(
    zone=st.sampled_from(ZONES),
    week=st.lists(st.lists(intervals, max_size=2), min_size=7, max_size=7),
    now=instants,
)
def test_status_is_defined_and_next_change_is_a_future_change(
    zone: str, week: list[list[str]], now: dt.datetime
) -> None:
    s = settings(zone, "GB", **dict(zip(WEEK, week, strict=True)))
    bh = hours(s)
    status = bh.status(now)
    assert status.mode in ("open", "closed", "holiday", "closure")
    assert status.text
    if status.next_change is None:
        assert not any(week)
        return
    assert status.next_change > now
    assert bh.status(status.next_change).is_open != status.is_open
    assert bh.status(status.next_change - dt.timedelta(seconds=1)).is_open == status.is_open
    changes = bh.upcoming_changes(now, 4)
    assert changes[0].at == status.next_change
    for a, b in itertools.pairwise(changes):
        assert a.at < b.at and a.is_open != b.is_open


@hsettings(deadline=None, max_examples=80)
@given(
    zone=st.sampled_from(ZONES),
    state=st.sampled_from(["open", "closed"]),
    until=st.sampled_from(["next_change", "time", "switched_back"]),
    since=instants,
    later=st.integers(min_value=0, max_value=14 * 24 * 60),
    length=st.integers(min_value=1, max_value=7 * 24 * 60),
)
def test_overrides_always_show_an_end_in_the_future(
    zone: str, state: str, until: str, since: dt.datetime, later: int, length: int
) -> None:
    from zoneinfo import ZoneInfo

    end_local = (since + dt.timedelta(minutes=length)).astimezone(ZoneInfo(zone))
    ov = Override(
        state=state,  # type: ignore[arg-type]
        until=until,  # type: ignore[arg-type]
        since=since.isoformat(),
        until_time=end_local.strftime("%Y-%m-%d %H:%M"),
    )
    now = since + dt.timedelta(minutes=later)
    status = hours(settings(zone, "GB", override=ov)).status(now)
    if status.mode == "override":
        assert status.is_open == (state == "open")
        if until == "switched_back":
            assert status.override_until is None and "until switched back" in status.text
        else:
            assert status.override_until is not None and status.override_until > now
    if status.next_change is not None:
        assert status.next_change > now


def test_override_end_in_a_repeated_hour_is_an_instant_not_a_wall_time() -> None:
    # Until 01:30 on fall-back day: the first 01:30 (BST). At 01:10 GMT (later) it is over.
    ov = Override(state="closed", until="time", until_time="2025-10-26 01:30",
                  since="2025-10-25T20:00:00+00:00")  # fmt: skip
    bh = hours(settings("Europe/London", "GB", every_day=["00:00-24:00"], override=ov))
    assert bh.status(at("2025-10-26 01:20", "Europe/London", fold=0)).mode == "override"
    assert bh.status(at("2025-10-26 01:10", "Europe/London", fold=1)).mode == "open"
