"""Hours, holidays, override, staff, call rules and the call preview through the test client:
saves, inline errors naming the field, nothing half-saved, hostile text escaped, the
override API, the status API's hours, the .ics import, and `frontdesk routing explain`."""

# Tables of form fields and expected sentences read best on one line each.
# ruff: noqa: E501

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from firmware_app.cli import main
from firmware_app.daemon import Daemon
from firmware_app.services import Services
from firmware_app.settings.routing import Menu as MenuSettings
from firmware_app.settings.routing import MenuOption, RotaEntry, StaffMember
from web_ui import ical

from .conftest import Owner

NOW = dt.datetime(2026, 3, 23, 10, 0, tzinfo=dt.UTC)  # Monday 10:00 in London (GMT)
HOSTILE = '"><script>alert(1)</script>'


@pytest.fixture
def owner(logged_in: Owner, services: Services) -> Owner:
    services.clock = lambda: NOW
    s = services.settings.get()
    s = s.replace(
        "business",
        type(s.business)(name="Rossi", timezone="Europe/London", country="GB", subdivision="ENG"),
    )
    staff = type(s.staff)(
        members=[
            StaffMember(name="Anna", mobile="+447700900001", groups=["sales"]),
            StaffMember(name="Ben", mobile="+447700900002", groups=["support"]),
        ]
    )
    services.settings.save(s.replace("staff", staff))
    return logged_in


def week_form(**days: list[tuple[str, str]]) -> dict[str, str]:
    form: dict[str, str] = {"action": "save"}
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        for i, (a, b) in enumerate(days.get(day, [])):
            form[f"{day}-{i}-from"], form[f"{day}-{i}-to"] = a, b
    return form


def page(response: Any) -> str:
    return str(response.get_data(as_text=True))


# -- hours -----------------------------------------------------------------------------------


def test_generic_settings_pages_lead_to_the_hours_pages(owner: Owner) -> None:
    for section, path in (
        ("hours", "/hours/"),
        ("override", "/hours/"),
        ("holidays", "/hours/holidays"),
        ("staff", "/hours/staff/"),
        ("rules", "/hours/rules/"),
    ):
        assert owner.client.get(f"/settings/{section}").headers["Location"] == path
    assert 'href="/hours/"' in page(owner.client.get("/"))  # nav entry Hours


def test_save_weekly_hours_with_several_intervals_and_a_special_date(
    owner: Owner, services: Services
) -> None:
    form = week_form(
        mon=[("09:00", "12:30"), ("13:30", "17:00")],
        fri=[("18:00", "02:00")],
        sun=[("00:00", "00:00")],
    )
    form.update(
        {"special-0-date": "2026-12-24", "special-0-hours": "09:00-12:00", "special-0-note": "Eve"}
    )
    response = owner.post("/hours/", form)
    assert response.status_code == 302
    h = services.settings.get().hours
    assert (h.mon, h.tue, h.fri, h.sun) == (
        ["09:00-12:30", "13:30-17:00"],
        [],
        ["18:00-02:00"],
        ["00:00-24:00"],
    )
    assert h.special[0].date == "2026-12-24" and h.special[0].hours == ["09:00-12:00"]
    shown = page(owner.client.get("/hours/"))
    assert 'value="13:30"' in shown and "Open now, closes 12:30" in shown


def test_preset_and_row_buttons_redraw_without_saving(owner: Owner, services: Services) -> None:
    before = services.settings.export_toml()
    shown = page(owner.post("/hours/", {**week_form(), "action": "preset:mon-sat-8-18"}))
    assert 'name="sat-0-from" value="08:00"' in shown and "Not saved yet" in shown
    shown = page(
        owner.post("/hours/", {**week_form(mon=[("09:00", "17:00")]), "action": "add:mon"})
    )
    assert 'name="mon-1-from" value=""' in shown
    shown = page(
        owner.post(
            "/hours/",
            {**week_form(mon=[("09:00", "12:00"), ("13:00", "17:00")]), "action": "remove:mon:0"},
        )
    )
    assert 'name="mon-0-from" value="13:00"' in shown and 'name="mon-1-from"' not in shown
    shown = page(owner.post("/hours/", {**week_form(), "action": "add:special"}))
    assert 'name="special-0-date"' in shown
    assert services.settings.export_toml() == before


@pytest.mark.parametrize(
    ("form", "words"),
    [
        (week_form(mon=[("09:00", "13:00"), ("12:00", "17:00")]), "Monday: “09:00-13:00, 12:00-17:00” is not allowed. Expected intervals that do not overlap"),
        (week_form(tue=[("09:00", "")]), "Tuesday, hours 1: give a start and an end."),
        (week_form(wed=[("09:00", "09:00")]), "Wednesday: “09:00-09:00” is not allowed"),
        ({**week_form(), "special-0-date": "24/12/2026", "special-0-hours": "", "special-0-note": ""}, "Special date 1, Date: “24/12/2026” is not allowed. Expected a date as YYYY-MM-DD"),
    ],
)  # fmt: skip
def test_bad_hours_are_shown_inline_and_nothing_is_saved(
    owner: Owner, services: Services, form: dict[str, str], words: str
) -> None:
    before = services.settings.export_toml()
    response = owner.post("/hours/", {**week_form(thu=[("08:00", "16:00")]), **form})
    assert response.status_code == 422
    text = page(response)
    assert words in text and "nothing was saved" in text
    assert 'value="08:00"' in text  # what was typed comes back
    assert services.settings.export_toml() == before


def test_hostile_text_on_the_hours_pages_is_escaped(owner: Owner, services: Services) -> None:
    form = {
        **week_form(),
        "special-0-date": "2026-12-24",
        "special-0-hours": HOSTILE,
        "special-0-note": HOSTILE,
    }
    text = page(owner.post("/hours/", form))
    assert HOSTILE not in text and "&lt;script&gt;" in text
    owner.post(
        "/hours/",
        {
            **week_form(),
            "special-0-date": "2026-12-24",
            "special-0-hours": "",
            "special-0-note": "x<b>",
        },
    )
    assert "x<b>" not in page(owner.client.get("/hours/"))
    owner.post(
        "/hours/closures/add",
        {"start": "2026-08-03", "end": "2026-08-04", "reason": HOSTILE},
        token_from="/hours/holidays",
    )
    text = page(owner.client.get("/hours/holidays"))
    assert services.settings.get().holidays.closures[0].reason == HOSTILE
    assert HOSTILE not in text and "&lt;script&gt;" in text
    text = page(
        owner.post(
            "/hours/staff/",
            {
                "members-0-name": HOSTILE,
                "members-0-mobile": "",
                "members-0-email": "",
                "members-0-groups": HOSTILE,
            },
        )
    )
    assert HOSTILE not in text
    text = page(
        owner.post(
            "/hours/rules/",
            {
                "menu_open-0-digit": "1",
                "menu_open-0-action": "message",
                "menu_open-0-target": HOSTILE,
                "menu_open-0-label": HOSTILE,
            },
        )
    )
    assert HOSTILE not in text
    text = page(
        owner.client.get(
            "/hours/preview", query_string={"at": HOSTILE, "caller": HOSTILE, "line": HOSTILE}
        )
    )
    assert HOSTILE not in text and "When:" in text and "Calling number:" in text


# -- override ------------------------------------------------------------------------------------


def test_override_switch_writes_since_and_shows_its_end(owner: Owner, services: Services) -> None:
    assert "Open now, closes 17:00" in page(owner.client.get("/"))
    response = owner.post(
        "/hours/override", {"choice": "closed_next", "back": "home"}, token_from="/"
    )
    assert response.headers["Location"] == "/"
    o = services.settings.get().override
    assert (o.state, o.until, o.since) == ("closed", "next_change", "2026-03-23T10:00:00+00:00")
    home = page(owner.client.get("/"))
    assert "Closed by override until 17:00, then as scheduled: opens tomorrow 09:00" in home
    assert 'data-choice="off"' in home  # Back to normal
    owner.post(
        "/hours/override",
        {"choice": "closed_time", "until_time": "2026-03-24T12:00", "note": "Stocktaking"},
        token_from="/hours/",
    )
    assert (
        services.routing.status().text
        == "Closed by override (Stocktaking) until tomorrow 12:00, then open"
    )
    owner.post("/hours/override", {"choice": "open_back"}, token_from="/hours/")
    assert services.routing.status().text == "Open by override until switched back"
    owner.post("/hours/override", {"choice": "off"}, token_from="/hours/")
    assert services.settings.get().override.state == "off"
    assert services.settings.get().override.since == ""


def test_override_choices_say_when_they_end(owner: Owner, services: Services) -> None:
    """ "Until the next scheduled change" holds until the hours switch to the chosen state by
    themselves: against the hours that is their next change; in the state they are in
    already, it covers their next period of the other state. The label says which."""
    text = page(owner.client.get("/hours/"))  # Monday 10:00, open 09:00-17:00
    assert "Closed until 17:00, the next scheduled change" in text
    assert "Open until tomorrow 09:00, through the closed hours from 17:00" in text
    services.clock = lambda: dt.datetime(2026, 3, 27, 18, 0, tzinfo=dt.UTC)  # Friday 18:00
    text = page(owner.client.get("/hours/"))
    assert "Closed until Mon 17:00, through the opening hours from Mon 09:00" in text
    assert "Open until Mon 09:00, the next scheduled change" in text
    owner.post("/hours/override", {"choice": "closed_next"}, token_from="/hours/")
    status = services.routing.status()
    assert status.text.startswith("Closed by override until Mon 17:00, then as scheduled")
    assert status.override_until == dt.datetime(
        2026, 3, 30, 17, 0, tzinfo=ZoneInfo("Europe/London")
    )
    api = services.routing.status(dt.datetime(2026, 3, 30, 12, 0, tzinfo=dt.UTC))
    assert api.mode == "override" and not api.is_open  # Monday's opening hours are skipped


def test_override_until_a_past_time_is_refused(owner: Owner, services: Services) -> None:
    response = owner.post(
        "/hours/override",
        {"choice": "closed_time", "until_time": "2026-03-23T09:00"},
        token_from="/hours/",
    )
    text = page(owner.client.get(response.headers["Location"]))
    assert (
        "Until: “2026-03-23 09:00” is not allowed. Expected a date and time in the future." in text
    )
    assert services.settings.get().override.state == "off"


def test_override_until_a_time_in_the_repeated_hour(owner: Owner, services: Services) -> None:
    """Fall-back night in London, 01:35 the second time round: "until 01:50" is the 01:50 to
    come and lasts 15 minutes; "until 01:20" has passed both times and is refused."""
    services.clock = lambda: dt.datetime(2025, 10, 26, 1, 35, tzinfo=dt.UTC)
    owner.post(
        "/hours/override",
        {"choice": "closed_time", "until_time": "2025-10-26T01:50"},
        token_from="/hours/",
    )
    status = services.routing.status()
    assert status.mode == "override" and not status.is_open
    assert status.override_until is not None
    assert status.override_until.astimezone(dt.UTC) == dt.datetime(
        2025, 10, 26, 1, 50, tzinfo=dt.UTC
    )
    response = owner.post(
        "/hours/override",
        {"choice": "open_time", "until_time": "2025-10-26T01:20"},
        token_from="/hours/",
    )
    assert "Expected a date and time in the future" in page(
        owner.client.get(response.headers["Location"])
    )
    assert services.settings.get().override.state == "closed"


def test_override_and_status_api(owner: Owner, services: Services) -> None:
    _, secret = services.auth.create_token("wall screen")
    auth = {"Authorization": f"Bearer {secret}"}
    client = owner.client
    body = client.get("/api/v1/status", headers=auth).json
    assert body["hours"]["mode"] == "open" and body["hours"]["text"] == "Open now, closes 17:00"
    assert body["hours"]["next_change"] == "2026-03-23T17:00:00+00:00"
    assert client.get("/api/v1/override").status_code == 401
    response = client.post(
        "/api/v1/override", json={"state": "shut", "until": "later"}, headers=auth
    )
    assert response.status_code == 422
    assert [p["field"] for p in response.json["problems"]] == ["state", "until"]
    response = client.post(
        "/api/v1/override",
        json={"state": "closed", "until": "time", "until_time": "tomorrow"},
        headers=auth,
    )
    assert response.status_code == 422 and response.json["problems"][0]["field"] == "until_time"
    assert services.settings.get().override.state == "off"  # nothing half-saved
    response = client.post(
        "/api/v1/override",
        json={
            "state": "closed",
            "until": "time",
            "until_time": "2026-03-23 12:00",
            "note": "Dentist",
        },
        headers=auth,
    )
    assert response.status_code == 200
    assert response.json["status"]["text"] == "Closed by override (Dentist) until 12:00, then open"
    assert response.json["override"]["since"] == "2026-03-23T10:00:00+00:00"
    body = client.get("/api/v1/status", headers=auth).json
    assert body["hours"]["mode"] == "override" and body["hours"]["override_until"].startswith(
        "2026-03-23T12:00"
    )
    assert client.post("/api/v1/override", data="nope", headers=auth).status_code == 400


# -- holidays, closures, calendar import -----------------------------------------------------------


def test_public_holidays_toggle_and_observe(owner: Owner, services: Services) -> None:
    text = page(owner.client.get("/hours/holidays"))
    assert "Easter Monday" in text and "Christmas Day" in text
    owner.post(
        "/hours/holidays/toggle",
        {"name": "Easter Monday", "closes": "0"},
        token_from="/hours/holidays",
    )
    h = services.settings.get().holidays
    assert h.observe == "chosen" and "Easter Monday" not in h.chosen and "Christmas Day" in h.chosen
    assert services.routing.status(dt.datetime(2026, 4, 6, 10, tzinfo=dt.UTC)).mode == "open"
    owner.post(
        "/hours/holidays/toggle",
        {"name": "Easter Monday", "closes": "1"},
        token_from="/hours/holidays",
    )
    assert services.routing.status(dt.datetime(2026, 4, 6, 10, tzinfo=dt.UTC)).mode == "holiday"
    response = owner.post(
        "/hours/holidays/toggle",
        {"name": "Talk Like a Pirate Day", "closes": "1"},
        token_from="/hours/holidays",
    )
    assert "Holiday: “Talk Like a Pirate Day” is not allowed" in page(
        owner.client.get(response.headers["Location"])
    )
    owner.post("/hours/holidays/observe", {"observe": "none"}, token_from="/hours/holidays")
    assert services.settings.get().holidays.observe == "none"


def test_closures_add_remove_and_inline_errors(owner: Owner, services: Services) -> None:
    response = owner.post(
        "/hours/closures/add",
        {"start": "2026-08-14", "end": "2026-08-03", "reason": "Summer break"},
        token_from="/hours/holidays",
    )
    assert response.status_code == 422
    assert (
        "Last day: “2026-08-03” is not allowed. Expected a date on or after the first day 2026-08-14."
        in page(response)
    )
    response = owner.post(
        "/hours/closures/add", {"start": "", "end": "", "reason": ""}, token_from="/hours/holidays"
    )
    assert response.status_code == 422 and "First day: expected a date" in page(response)
    assert services.settings.get().holidays.closures == []
    owner.post(
        "/hours/closures/add",
        {"start": "2026-08-03", "end": "2026-08-14", "reason": "Summer break"},
        token_from="/hours/holidays",
    )
    owner.post(
        "/hours/closures/add",
        {"start": "2026-08-20", "end": "", "reason": "Summer break"},
        token_from="/hours/holidays",
    )
    ids = [c.id for c in services.settings.get().holidays.closures]
    assert ids == ["summer-break", "summer-break-2"]
    assert (
        services.routing.status(dt.datetime(2026, 8, 5, 10, tzinfo=dt.UTC)).greeting
        == "closure:summer-break"
    )
    owner.post("/hours/closures/remove", {"id": "summer-break"}, token_from="/hours/holidays")
    assert [c.id for c in services.settings.get().holidays.closures] == ["summer-break-2"]


ICS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Example//EN\r
BEGIN:VEVENT\r
UID:1\r
DTSTART;VALUE=DATE:20260803\r
DTEND;VALUE=DATE:20260815\r
SUMMARY:Summer <b>break</b>\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:2\r
DTSTART:20261224T130000Z\r
DTEND:20261224T170000Z\r
SUMMARY:Christmas party\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:3\r
DTSTART;VALUE=DATE:20250101\r
SUMMARY:Long ago\r
END:VEVENT\r
END:VCALENDAR\r
"""


def upload(owner: Owner, data: bytes, name: str = "cal.ics") -> Any:
    return owner.post(
        "/hours/holidays/import",
        {"file": (io.BytesIO(data), name)},
        token_from="/hours/holidays",
        content_type="multipart/form-data",
    )


def test_calendar_import_previews_then_adds_the_chosen_events(
    owner: Owner, services: Services
) -> None:
    response = upload(owner, ICS)
    text = page(response)
    assert response.status_code == 200 and "2 upcoming events found, soonest first" in text
    assert "Summer &lt;b&gt;break&lt;/b&gt;" in text and "2026-08-03 to 2026-08-14" in text
    assert "Long ago" not in text and "1 event that ended before today" in text
    assert 'name="event-0-pick" value="1" checked' in text
    assert services.settings.get().holidays.closures == []  # nothing before confirming
    form = {
        "event-0-pick": "1", "event-0-start": "2026-08-03", "event-0-end": "2026-08-14", "event-0-reason": "Summer <b>break</b>",
        "event-1-start": "2026-12-24", "event-1-end": "2026-12-24", "event-1-reason": "Christmas party",
    }  # fmt: skip
    owner.post("/hours/holidays/import/confirm", form, token_from="/hours/holidays")
    closures = services.settings.get().holidays.closures
    assert [(c.start, c.end, c.reason) for c in closures] == [
        ("2026-08-03", "2026-08-14", "Summer <b>break</b>")
    ]
    # Tampered rows are validated like any closure: nothing half-added.
    bad = {**form, "event-1-pick": "1", "event-1-end": "2026-12-01"}
    owner.post("/hours/holidays/import/confirm", bad, token_from="/hours/holidays")
    assert len(services.settings.get().holidays.closures) == 1


def _calendar(*events: str) -> bytes:
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n".encode()


def test_calendar_import_keeps_the_upcoming_events_and_says_what_it_left_out(
    owner: Owner,
) -> None:
    """500 one-day events from 1 January 2026, today 23 March: the 81 past ones are left
    out and counted, the first 200 upcoming ones are listed soonest first, and the rest are
    counted with the date after which they were cut."""
    first = dt.date(2026, 1, 1)
    days = [first + dt.timedelta(days=i) for i in range(500)]
    data = _calendar(
        *(
            f"UID:d{i}\r\nDTSTART;VALUE=DATE:{d:%Y%m%d}\r\nSUMMARY:Day {i}"
            for i, d in enumerate(days)
        )
    )
    text = page(upload(owner, data))
    assert "200 upcoming events found, soonest first" in text
    assert 'name="event-0-start" value="2026-03-23"' in text
    assert 'name="event-199-start" value="2026-10-08"' in text and "event-200-" not in text
    assert "81 events that ended before today" in text
    assert "219 more events after 2026-10-08 (at most 200 are listed at a time" in text


def test_calendar_import_expands_repeating_events(owner: Owner) -> None:
    today = dt.date(2026, 3, 23)
    data = _calendar(
        # every year since 2020 on 1-2 June (dates, UNTIL in UTC); June 2027 is past the horizon
        "UID:y\r\nDTSTART;VALUE=DATE:20200601\r\nDTEND;VALUE=DATE:20200603\r\n"
        "RRULE:FREQ=YEARLY;UNTIL=20300101T000000Z\r\nSUMMARY:Stocktaking",
        # Fridays from 27 March, 4 of them, 3 April left out, 10 April moved to Thursday 9th
        "UID:w\r\nDTSTART;TZID=Europe/London:20260327T130000\r\nDTEND;TZID=Europe/London:20260327T170000\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/London:20260403T130000\r\nSUMMARY:Early close",
        "UID:w\r\nRECURRENCE-ID;TZID=Europe/London:20260410T130000\r\n"
        "DTSTART;TZID=Europe/London:20260409T130000\r\nDTEND;TZID=Europe/London:20260409T170000\r\nSUMMARY:Early close",
        # every hour: not a closure calendar
        "UID:h\r\nDTSTART:20260101T000000Z\r\nRRULE:FREQ=HOURLY\r\nSUMMARY:Tick",
        # every 90 days, for ever: cut at the horizon (23 March 2026 + 400 days)
        "UID:d\r\nDTSTART;VALUE=DATE:20260301\r\nRRULE:FREQ=DAILY;INTERVAL=90\r\nSUMMARY:Quarter",
    )
    found = ical.read_events(data, ZoneInfo("Europe/London"), today)
    got = [(e.start, e.end, e.reason, e.repeats) for e in found.events]
    assert got == [
        ("2026-03-27", "2026-03-27", "Early close", True),
        ("2026-04-09", "2026-04-09", "Early close", False),
        ("2026-04-17", "2026-04-17", "Early close", True),
        ("2026-05-30", "2026-05-30", "Quarter", True),
        ("2026-06-01", "2026-06-02", "Stocktaking", True),
        ("2026-08-28", "2026-08-28", "Quarter", True),
        ("2026-11-26", "2026-11-26", "Quarter", True),
        ("2027-02-24", "2027-02-24", "Quarter", True),
    ]
    assert found.skipped == [
        "the dates of repeating events more than 400 days ahead (import the file again later "
        "for them)",
        "1 event repeating more often than daily",
    ]
    text = page(upload(owner, data))
    assert "8 upcoming events found" in text and "a repeating event" in text
    assert "1 event repeating more often than daily" in text


def test_a_long_running_series_gives_the_same_dates_as_from_its_start() -> None:
    """A fortnightly series since 1990 is started at its last repetition before the window
    (quick), with the same dates as expanding it from 1990."""
    from dateutil.rrule import rrulestr

    rule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR"
    data = _calendar(f"UID:o\r\nDTSTART;VALUE=DATE:19900105\r\nRRULE:{rule}\r\nSUMMARY:Old")
    today = dt.date(2026, 3, 23)
    found = ical.read_events(data, ZoneInfo("UTC"), today)
    whole = rrulestr(rule, dtstart=dt.datetime(1990, 1, 5))
    end = dt.datetime.combine(today + dt.timedelta(days=ical.HORIZON_DAYS), dt.time())
    expected = [
        d.date().isoformat() for d in whole.between(dt.datetime(2026, 3, 23), end, inc=True)
    ]
    assert [e.start for e in found.events] == expected[: ical.MAX_EVENTS]
    assert len(expected) > 50


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"%PDF-1.4 not a calendar", "this is not an iCalendar file"),
        (b"BEGIN:VCALENDAR\r\n" + b"X" * (300 * 1024), "larger than 256 KB"),
        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "no events with dates"),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\n", "Calendar file:"),
    ],
)
def test_calendar_import_refuses_what_it_cannot_read(owner: Owner, data: bytes, words: str) -> None:
    response = upload(owner, data)
    assert response.status_code == 422
    assert words in page(response)


# -- staff and rules ---------------------------------------------------------------------------------


def test_staff_mobiles_are_normalised_and_checked(owner: Owner, services: Services) -> None:
    form = {
        "members-0-name": "Anna", "members-0-mobile": "07700 900123", "members-0-email": "anna@example.com", "members-0-groups": "sales, support",
        "rota-0-name": "Anna", "rota-0-days": ["mon", "tue"], "rota-0-hours": "08:00-12:00, 13:00-18:00",
    }  # fmt: skip
    first = owner.post("/hours/staff/", form)
    assert first.status_code == 302, re.findall(
        r"class=\"field-error\"[^>]*>([^<]*)|error-summary.*?<li>([^<]*)", page(first), re.S
    )
    staff = services.settings.get().staff
    assert staff.members[0].mobile == "+447700900123" and staff.members[0].groups == [
        "sales",
        "support",
    ]
    assert staff.rota[0].days == ["mon", "tue"] and staff.rota[0].hours == [
        "08:00-12:00",
        "13:00-18:00",
    ]
    assert 'value="+44 7700 900123"' in page(owner.client.get("/hours/staff/"))
    bad = {**form, "members-0-mobile": "12", "rota-0-name": "Zed", "members-0-email": "nope"}
    response = owner.post("/hours/staff/", bad)
    text = page(response)
    assert response.status_code == 422
    assert (
        "Staff member 1, Mobile: “12” is not allowed. Expected a phone number possible in GB"
        in text
    )
    assert "Staff member 1, Email: “nope” is not allowed" in text
    assert "Rota row 1, Who: “Zed” is not allowed. Expected a staff name" in text
    assert services.settings.get().staff.members[0].email == "anna@example.com"
    text = page(owner.post("/hours/staff/", {**form, "action": "add:members"}))
    assert 'name="members-1-name"' in text and "Not saved yet" in text


def test_call_rules_and_menus(owner: Owner, services: Services) -> None:
    form = {
        "allow": "+44 7700 900999", "block": "0870*\n+44 20 7946 0666", "withheld": "screen", "ring_seconds": "25",
        "forward_calls": "1", "confirm_forwarded": "1",
        "menu_open-0-digit": "1", "menu_open-0-action": "ring_staff", "menu_open-0-target": "sales", "menu_open-0-label": "for sales",
        "menu_open-1-digit": "2", "menu_open-1-action": "voicemail", "menu_open-1-target": "", "menu_open-1-label": "",
        "menu_closed-0-digit": "9", "menu_closed-0-action": "message", "menu_closed-0-target": "directions", "menu_closed-0-label": "",
    }  # fmt: skip
    first = owner.post("/hours/rules/", form)
    assert first.status_code == 302, re.findall(
        r"class=\"field-error\"[^>]*>([^<]*)|error-summary.*?<li>([^<]*)", page(first), re.S
    )
    rules = services.settings.get().rules
    assert (rules.withheld, rules.ring_seconds, rules.office_phone) == ("screen", 25, False)
    assert [(m.mode, [o.digit for o in m.options]) for m in rules.menus] == [
        ("open", ["1", "2"]),
        ("closed", ["9"]),
    ]
    bad = {
        **form,
        "ring_seconds": "lots",
        "menu_open-1-digit": "1",
    }
    response = owner.post("/hours/rules/", bad)
    text = page(response)
    assert response.status_code == 422
    assert "Ring for (seconds): “lots” is not allowed" in text
    assert "While open, option 2, Key: “1” is not allowed. Expected a key used once" in text
    assert services.settings.get().rules.ring_seconds == 25
    # A group nobody is in is checked against the staff once the section itself is fine.
    response = owner.post("/hours/rules/", {**form, "menu_open-0-target": "plumbers"})
    assert response.status_code == 422
    assert (
        "While open, option 1, Group, box or message: “plumbers” is not allowed. Expected a staff group (sales, support)"
        in page(response)
    )
    text = page(owner.post("/hours/rules/", {**form, "action": "remove:menu_open:0"}))
    assert 'name="menu_open-0-digit"' in text and 'name="menu_open-1-digit"' not in text


def test_a_voicemail_key_emails_its_box_to_its_own_addresses(
    owner: Owner, services: Services
) -> None:
    """Recipients per voicemail box without inventing staff: the key's "Email to"."""
    form = {
        "withheld": "answer", "ring_seconds": "35",
        "menu_open-0-digit": "2", "menu_open-0-action": "voicemail", "menu_open-0-target": "accounts",
        "menu_open-0-label": "for accounts", "menu_open-0-email_to": "accounts@rossi.example; Books@Rossi.example",
    }  # fmt: skip
    response = owner.post("/hours/rules/", form)
    assert response.status_code == 302, page(response)
    (option,) = services.settings.get().rules.menus[0].options
    assert option.email_to == ["accounts@rossi.example", "Books@Rossi.example"]
    text = page(owner.client.get("/hours/rules/"))
    assert 'value="accounts@rossi.example, Books@Rossi.example"' in text
    assert services.notify.voicemail_recipients("Accounts") == [
        "accounts@rossi.example",
        "Books@Rossi.example",
    ]

    bad = owner.post("/hours/rules/", {**form, "menu_open-0-email_to": "accounts at rossi"})
    assert bad.status_code == 422
    assert "While open, option 1, Email to:" in page(bad)
    assert "email addresses like staff@example.com (bad: accounts, at, rossi)" in page(bad)
    wrong = owner.post("/hours/rules/", {**form, "menu_open-0-action": "ring_staff"})
    assert wrong.status_code == 422
    assert "only a key that takes a voicemail sends email" in page(wrong)
    main_box = owner.post("/hours/rules/", {**form, "menu_open-0-target": ""})
    assert main_box.status_code == 422
    assert "a box name (e.g. accounts)" in page(main_box)
    assert services.settings.get().rules.menus[0].options[0].email_to == [
        "accounts@rossi.example",
        "Books@Rossi.example",
    ]


def test_a_block_entry_without_digits_is_refused(owner: Owner, services: Services) -> None:
    form = {"block": "0870*\n--*", "withheld": "answer", "ring_seconds": "35"}
    response = owner.post("/hours/rules/", form)
    assert response.status_code == 422
    text = page(response)
    assert "would match every caller (bad: --*)" in text
    assert services.settings.get().rules.block == []


def test_on_call_staff_are_put_through_when_the_rules_say_so(
    owner: Owner, services: Services
) -> None:
    s = services.settings.get()
    staff = type(s.staff)(
        members=s.staff.members,
        rota=[RotaEntry(name="Ben", days=["sat"], hours=["08:00-20:00"])],
    )
    services.settings.save(s.replace("staff", staff))
    text = page(owner.client.get("/hours/staff/"))
    assert "(now off: only VIPs and menu keys reach them)" in text
    saturday = {"at": "2026-03-28T11:00", "caller": "+441632960123", "line": "gsm"}
    assert "Call Ben" not in page(owner.client.get("/hours/preview", query_string=saturday))
    form = {"withheld": "answer", "ring_seconds": "35", "forward_calls": "1", "confirm_forwarded": "1", "on_call_when_closed": "1"}  # fmt: skip
    assert "Put callers through to staff on call when closed" in page(
        owner.client.get("/hours/rules/")
    )
    assert owner.post("/hours/rules/", form).status_code == 302
    assert services.settings.get().rules.on_call_when_closed
    assert "now off" not in page(owner.client.get("/hours/staff/"))
    plan = page(owner.client.get("/hours/preview", query_string=saturday))
    assert "Call Ben for 35 s" in plan and "Ben on call by the rota" in plan


# -- the preview and the CLI -----------------------------------------------------------------------


def _menus(services: Services) -> None:
    s = services.settings.get()
    rules = type(s.rules)(allow=["+447700900999"], block=["+44870*"], menus=[
        MenuSettings(mode="open", options=[MenuOption(digit="1", action="ring_staff", target="sales", label="for sales")]),
    ])  # fmt: skip
    services.settings.save(s.replace("rules", rules))


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"at": "2026-03-23T10:05", "caller": "+441632960123", "line": "gsm"}, ["Open now, closes 17:00", "1</span> for sales: call Anna for 35 s (they press 1 to take it)"]),
        ({"at": "2026-03-23T20:05", "caller": "07700 900999", "line": "gsm"}, ["Allow list: 07700 900999 matches +447700900999", "the allow list"]),
        ({"at": "2026-03-23T10:05", "caller": "0870 123 4567", "line": "analog"}, ["Blocked", "Pick up and hang up at once"]),
        ({"at": "2026-12-25T10:00", "caller": "", "line": "analog"}, ["Closed: Christmas Day", "Play the holiday greeting"]),
        ({"at": "2026-03-23T10:05", "caller": "+441632960123", "line": "fax"}, ["Fax-only line", "Answer as a fax machine"]),
    ],
)  # fmt: skip
def test_preview_page(
    owner: Owner, services: Services, query: dict[str, str], words: list[str]
) -> None:
    _menus(services)
    text = page(owner.client.get("/hours/preview", query_string=query))
    for w in words:
        assert w in text, w


def test_preview_page_names_bad_fields(owner: Owner) -> None:
    response = owner.client.get(
        "/hours/preview", query_string={"at": "Friday", "caller": "abc", "line": "x"}
    )
    assert response.status_code == 422
    text = page(response)
    assert "When: “Friday” is not allowed. Expected a date and time as YYYY-MM-DD HH:MM." in text
    assert "Calling number: “abc” is not allowed" in text and "Line: “x” is not allowed" in text


def test_routing_explain_from_the_store_and_through_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], owner: Owner, services: Services
) -> None:
    config = tmp_path / "fd.toml"
    config.write_text(f'[store]\ndata_dir = "{tmp_path / "cli-data"}"\n')
    assert (
        main(
            [
                "routing",
                "explain",
                "-c",
                str(config),
                "--number",
                "+441632960123",
                "--at",
                "2026-12-24 18:05",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    # Without a daemon no line is known: the first kind of line is assumed, and said.
    assert out.startswith(
        "If +441632960123 calls at 2026-12-24 18:05 on Phone line (a phone shares it):"
    )
    assert "1. Play the closed greeting" in out
    assert main(["routing", "explain", "-c", str(config), "--at", "24/12"]) == 2
    err = capsys.readouterr().err
    assert "at: '24/12' is not allowed" in err
    assert "the call to explain is not valid" in err and "nothing was changed" not in err
    args = ["routing", "explain", "-c", str(config), "--at", "2026-12-24 18:05", "--line", "isdn"]
    assert main(args) == 2
    assert "line: 'isdn' is not allowed" in capsys.readouterr().err
    _menus(services)
    services.clock = lambda: NOW
    handler = Daemon(services.config).control_handlers(services)["routing.explain"]
    plan = handler(at="2026-03-23 10:05", number="+441632960123", line="gsm")
    assert plan["rule"] == "schedule" and plan["steps"][0].startswith("1. Offer the menu open")
    assert plan["steps"][1].startswith("   key 1 (for sales): call Anna")
