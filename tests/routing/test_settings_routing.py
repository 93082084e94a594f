"""The routing settings sections: defaults, TOML round trip, and validation that names what
is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from firmware_app.errors import SettingsError
from firmware_app.settings.model import (
    Settings,
    export_toml,
    import_toml,
    section_from_dict,
    settings_from_dict,
)
from firmware_app.settings.routing import (
    Menu,
    MenuOption,
    Rules,
    Staff,
    StaffMember,
    cross_problems,
    normalise_number,
    parse_interval,
)

EXAMPLE = """
schema_version = 2

[business]
name = "Corner Shop"
timezone = "Europe/London"
country = "GB"
subdivision = "ENG"

[hours]
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-12:30", "13:30-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00", "18:00-02:00"]
sat = ["10:00-13:00"]
sun = []

[[hours.special]]
date = "2025-12-24"
hours = ["09:00-12:00"]
note = "Christmas Eve"

[holidays]
observe = "chosen"
chosen = ["Christmas Day", "Boxing Day", "New Year's Day"]

[[holidays.closures]]
id = "summer"
start = "2025-08-04"
end = "2025-08-15"
reason = "Summer break"

[override]
state = "closed"
until = "time"
until_time = "2025-03-25 10:00"
since = "2025-03-24T15:00:00+00:00"
note = "Stocktaking"

[[staff.members]]
name = "Anna"
mobile = "+44 7700 900001"
email = "anna@example.com"
groups = ["sales"]

[[staff.members]]
name = "Ben"
mobile = "07700 900002"
groups = ["support"]

[[staff.rota]]
name = "Anna"
days = ["mon", "tue", "wed"]
hours = ["09:00-17:00"]

[[staff.rota]]
name = "Ben"
days = ["thu", "fri", "sat"]
hours = ["09:00-17:00"]

[rules]
allow = ["+44 7700 900999"]
block = ["+44870*", "0800 000 0000"]
withheld = "screen"
screen_all = false
ring_seconds = 30
office_phone = true
forward_calls = true
confirm_forwarded = true

[[rules.menus]]
mode = "open"

[[rules.menus.options]]
digit = "1"
action = "ring_staff"
target = "sales"
label = "for sales"

[[rules.menus.options]]
digit = "2"
action = "voicemail"
target = "main"

[[rules.menus.options]]
digit = "3"
action = "voicemail"
target = "accounts"
email_to = ["accounts@example.com"]
"""


def test_defaults_are_a_shop_open_weekdays_nine_to_five() -> None:
    s = Settings()
    assert [s.hours.mon, s.hours.fri, s.hours.sat, s.hours.sun] == [["09:00-17:00"]] * 2 + [[]] * 2
    assert (s.holidays.observe, s.override.state, s.rules.ring_seconds) == ("all", "off", 35)
    assert s.hours.validate() == [] and s.staff.validate() == [] and s.rules.validate() == []


def test_the_documented_example_imports_and_round_trips() -> None:
    s = import_toml(EXAMPLE)
    assert s.hours.fri == ["09:00-17:00", "18:00-02:00"]
    assert s.staff.members[1].name == "Ben"
    assert s.rules.menus[0].options[0].target == "sales"
    assert s.rules.menus[0].options[2].email_to == ["accounts@example.com"]
    assert import_toml(export_toml(s)) == s
    assert cross_problems(s.staff, s.rules) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-17:00", (540, 1020)),
        ("18:00-02:00", (1080, 1560)),
        ("00:00-24:00", (0, 1440)),
        ("22:00-24:00", (1320, 1440)),
        ("09:00-09:00", None),
        ("9:00-17:00", None),
        ("24:00-02:00", None),
        ("09:60-10:00", None),
        ("10:00-24:30", None),
        ("09:00 - 17:00", None),
    ],
)
def test_interval_grammar(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_interval(text) == expected


def _problems(section: str, data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SettingsError) as err:
        section_from_dict(section, data)
    return err.value.by_field()


@pytest.mark.parametrize(
    ("section", "data", "field", "says"),
    [
        ("hours", {"mon": ["09:00-09:00"]}, "mon", "start and end must differ"),
        ("hours", {"tue": ["9-5"]}, "tue", "HH:MM-HH:MM"),
        ("hours", {"wed": ["09:00-13:00", "12:00-17:00"]}, "wed", "09:00-13:00 overlaps"),
        ("hours", {"fri": ["18:00-02:00"], "sat": ["01:00-05:00"]}, "sat",
         "previous day's 18:00-02:00 overlaps 01:00-05:00"),
        ("hours", {"special": [{"date": "2025-02-30"}]}, "special[0].date", "YYYY-MM-DD"),
        ("hours", {"special": [{"date": "2025-12-24"}, {"date": "2025-12-24"}]},
         "special[1].date", "one entry per date"),
        ("holidays", {"observe": "some"}, "observe", "one of 'all', 'chosen', 'none'"),
        ("holidays", {"closures": [{"id": "x", "start": "2025-08-08", "end": "2025-08-04"}]},
         "closures[0].end", "on or after the first day 2025-08-08"),
        ("holidays", {"closures": [{"id": "a"}, {"id": "a"}]}, "closures[1].id", "an id used once"),
        ("holidays", {"closures": [{"id": "Summer Break"}]}, "closures[0].id", "lower-case"),
        ("override", {"state": "closed", "until": "time"}, "until_time", "a date and time"),
        ("override", {"state": "closed", "until": "next_change"}, "since", "switched on"),
        ("override", {"until_time": "tomorrow"}, "until_time", "YYYY-MM-DD HH:MM"),
        ("override", {"since": "2025-03-24T15:00"}, "since", "UTC offset"),
        ("staff", {"members": [{"name": "Anna"}], "rota": [{"name": "Zoe"}]}, "rota[0].name",
         "a staff name (Anna)"),
        ("staff", {"members": [{"name": "Anna"}, {"name": "anna"}]}, "members[1].name", "once"),
        ("staff", {"members": [{"name": "Anna", "mobile": "call me"}]}, "members[0].mobile",
         "a phone number"),
        ("staff", {"rota": [{"name": "x", "days": ["monday"]}]}, "rota[0].days", "mon, tue"),
        ("rules", {"ring_seconds": 2}, "ring_seconds", "a number from 5 to 120"),
        ("rules", {"block": ["+44*870"]}, "block", "prefix ending in *"),
        ("rules", {"block": ["--*"]}, "block", "would match every caller (bad: --*)"),
        ("rules", {"allow": ["..*", "()*", "  *"]}, "allow", "at least two digits"),
        ("rules", {"block": ["0*", "+44870*"]}, "block", "(bad: 0*)"),
        ("rules", {"allow": ["+441"], "block": ["+441"]}, "block", "not also on the allow list"),
        ("rules", {"menus": [{"mode": "open"}, {"mode": "open"}]}, "menus[1].mode", "one menu"),
        ("rules", {"menus": [{"options": [{"digit": "1"}, {"digit": "1"}]}]},
         "menus[0].options[1].digit", "a key used once"),
        ("rules", {"menus": [{"options": [{"digit": "12"}]}]}, "menus[0].options[0].digit",
         "one key"),
        ("rules", {"menus": [{"options": [{"action": "voicemail", "target": "accounts",
                                           "email_to": ["accounts"]}]}]},
         "menus[0].options[0].email_to", "email addresses like staff@example.com (bad: accounts)"),
        ("rules", {"menus": [{"options": [{"action": "ring_staff", "email_to": ["a@b.io"]}]}]},
         "menus[0].options[0].email_to", "only a key that takes a voicemail sends email"),
        ("rules", {"menus": [{"options": [{"action": "voicemail", "email_to": ["a@b.io"]}]}]},
         "menus[0].options[0].target", "a box name (e.g. accounts)"),
    ],
)  # fmt: skip
def test_validation_names_what_is_allowed(
    section: str, data: dict[str, Any], field: str, says: str
) -> None:
    problems = _problems(section, data)
    assert field in problems, problems
    assert says in problems[field]


def test_whole_document_reports_problems_with_section_prefix() -> None:
    with pytest.raises(SettingsError) as err:
        settings_from_dict({"schema_version": 2, "hours": {"mon": ["09:00-13:00", "12:00-14:00"]}})
    assert "hours.mon" in err.value.by_field()


def test_menus_naming_an_unknown_group_are_reported() -> None:
    staff = Staff(members=[StaffMember(name="Anna", groups=["sales"])])
    rules = Rules(menus=[Menu(options=[MenuOption(digit="1", target="billing")])])
    (problem,) = cross_problems(staff, rules)
    assert problem.field == "rules.menus[0].options[0].target"
    assert "sales" in problem.allowed


@pytest.mark.parametrize(
    ("number", "region", "expected"),
    [
        ("07700 900001", "GB", "+447700900001"),
        ("+44 (0)20 7946 0123", "GB", "+442079460123"),
        ("(212) 555-0100", "US", "+12125550100"),
        ("12", "GB", "12"),
    ],
)
def test_numbers_are_normalised_to_e164_when_possible(
    number: str, region: str, expected: str
) -> None:
    assert normalise_number(number, region) == expected


def test_number_entries_need_digits() -> None:
    from firmware_app.routing.rules import NumberList

    rules = section_from_dict("rules", {"block": ["+44*", "0870*"], "allow": ["+44 7700 900999"]})
    assert rules.block == ["+44*", "0870*"]
    # A list saved before this check (or edited by hand) never matches everybody.
    old = NumberList(["--*", "()*", "+44870*"], "GB")
    assert old.match("+441632960123", "GB") == ""
    assert old.match("+448701234567", "GB") == "+44870*"
