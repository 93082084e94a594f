"""More tables: fixed and floating holidays, special hours, override expiry, fax calls, the
plan for VIP/blocked/withheld callers, menu choices and nobody on duty, numbers in E.164."""

# ruff: noqa: E501

from __future__ import annotations

import pytest

from firmware_app.routing import Call, LineCapabilities, NumberList, decide
from firmware_app.settings.routing import Menu as MenuSettings
from firmware_app.settings.routing import MenuOption, Override, RotaEntry, StaffMember

from .helpers import at, hours, settings

LON, NY = "Europe/London", "America/New_York"


@pytest.mark.parametrize(
    ("tz", "country", "sub", "local", "mode", "reason"),
    [
        (LON, "GB", "ENG", "2026-12-25 10:00", "holiday", "Christmas Day"),  # fixed
        (LON, "GB", "ENG", "2026-04-06 10:00", "holiday", "Easter Monday"),  # floating
        (LON, "GB", "ENG", "2027-03-29 10:00", "holiday", "Easter Monday"),
        (LON, "GB", "SCT", "2026-04-06 10:00", "open", ""),  # not in Scotland
        (NY, "US", "NY", "2026-11-26 10:00", "holiday", "Thanksgiving Day"),  # 4th Thursday
        (NY, "US", "NY", "2027-11-25 10:00", "holiday", "Thanksgiving Day"),
        (NY, "US", "NY", "2026-11-19 10:00", "open", ""),
        (NY, "US", "NY", "2026-07-03 10:00", "holiday", "Independence Day (observed)"),
    ],
)
def test_fixed_and_floating_holidays(
    tz: str, country: str, sub: str, local: str, mode: str, reason: str
) -> None:
    st = hours(settings(tz, country, sub)).status(at(local, tz))
    assert (st.mode, st.reason) == (mode, reason)


@pytest.mark.parametrize(
    ("local", "is_open", "text"),
    [
        ("2026-12-24 08:30", False, "Closed now (Christmas Eve), opens 09:00"),
        ("2026-12-24 11:00", True, "Open now (Christmas Eve), closes 12:00"),
        ("2026-12-31 11:00", False, "Closed now (Stocktake), opens Mon 09:00"),
    ],
)
def test_special_hours_table(local: str, is_open: bool, text: str) -> None:
    s = settings(
        LON,
        "GB",
        "ENG",
        special=[("2026-12-24", ["09:00-12:00"], "Christmas Eve"), ("2026-12-31", [], "Stocktake")],
    )
    st = hours(s).status(at(local, LON))
    assert (st.is_open, st.text) == (is_open, text)


@pytest.mark.parametrize(
    ("ov", "before", "after"),
    [
        # (override, a time while it holds, the first instant it no longer does)
        (Override(state="closed", until="next_change", since=at("2026-03-23 15:00", LON).isoformat()),
         "2026-03-23 16:59", "2026-03-23 17:00"),
        (Override(state="open", until="next_change", since=at("2026-03-23 18:00", LON).isoformat()),
         "2026-03-24 08:59", "2026-03-24 09:00"),
        (Override(state="closed", until="time", until_time="2026-03-25 11:30",
                  since=at("2026-03-23 10:00", LON).isoformat()),
         "2026-03-25 11:29", "2026-03-25 11:30"),
    ],
)  # fmt: skip
def test_each_override_kind_expires(ov: Override, before: str, after: str) -> None:
    bh = hours(settings(LON, "GB", override=ov))
    assert bh.status(at(before, LON)).mode == "override"
    assert bh.status(at(after, LON)).mode != "override"


def test_override_switched_on_in_the_future_is_ignored() -> None:
    ov = Override(
        state="closed", until="switched_back", since=at("2026-03-24 10:00", LON).isoformat()
    )
    assert (
        hours(settings(LON, "GB", override=ov)).status(at("2026-03-23 10:00", LON)).mode == "open"
    )


# -- plans -------------------------------------------------------------------------------------

GSM = LineCapabilities.gsm()


def staffed() -> object:
    s = settings(LON, "GB", "ENG")
    s.staff.members = [
        StaffMember(name="Anna", mobile="07700 900001", groups=["sales"]),
        StaffMember(name="Ben", mobile="+44 7700 900002", groups=["support"]),
    ]
    s.rules.allow = ["07700 900999"]
    s.rules.block = ["0870*", "0044 20 7946 0666"]
    s.rules.menus = [
        MenuSettings(mode="open", options=[
            MenuOption(digit="1", action="ring_staff", target="sales", label="for sales"),
            MenuOption(digit="2", action="voicemail", target="orders", label="for orders"),
        ]),
    ]  # fmt: skip
    return s


@pytest.mark.parametrize(
    ("call", "local", "rule", "kinds", "words"),
    [
        (Call(number="+447700900999"), "2026-03-23 22:00", "allow",
         ["greet", "forward_to", "take_voicemail"], "call Anna, Ben for 35 s (they press 1"),
        (Call(number="+44 870 000 1234"), "2026-03-23 10:00", "block", ["reject"], "matches 0870*"),
        (Call(number="020 7946 0666"), "2026-03-23 10:00", "block", ["reject"], "Blocked"),
        (Call(validity="withheld"), "2026-03-23 22:00", "schedule", ["greet", "take_voicemail"],
         "Closed now"),
        (Call(number="+441632960123"), "2026-03-23 10:00", "schedule",
         ["menu", "forward_to", "take_voicemail"], "1: for sales, 2: for orders"),
        (Call(number="+441632960123", fax=True), "2026-03-23 10:00", "fax", ["fax_receive"],
         "The caller is a fax machine"),
    ],
)  # fmt: skip
def test_plan_table(call: Call, local: str, rule: str, kinds: list[str], words: str) -> None:
    line = LineCapabilities.gsm()
    if call.fax:
        line = LineCapabilities.analog(can_receive_fax=True)
    plan = decide(call, at(local, LON), staffed(), line)  # type: ignore[arg-type]
    assert (plan.rule, plan.kinds()) == (rule, kinds), plan.explanation
    assert words in plan.explanation


def test_menu_choice_rings_the_group_and_no_staff_on_duty_means_voicemail() -> None:
    s = staffed()
    plan = decide(Call(number="+441632960123"), at("2026-03-23 10:00", LON), s, GSM)  # type: ignore[arg-type]
    menu = plan.steps[0]
    assert menu.kind == "menu"
    ring = menu.choices[0].steps[0]  # type: ignore[union-attr]
    assert ring.kind == "forward_to" and [p.name for p in ring.people] == ["Anna"]  # type: ignore[union-attr]
    assert [s.kind for s in menu.choices[1].steps] == ["take_voicemail"]  # type: ignore[union-attr]
    s = staffed()  # a new settings object: routing reads one once (never change it in place)
    s.rules.menus = []  # type: ignore[attr-defined]
    s.staff.rota = [RotaEntry(name="Anna", days=["sat"], hours=["09:00-12:00"])]  # type: ignore[attr-defined]
    plan = decide(Call(number="+441632960123"), at("2026-03-23 10:01", LON), s, GSM)  # type: ignore[arg-type]
    assert plan.kinds() == ["greet", "take_voicemail"]


def test_fax_only_line_and_a_line_that_cannot_take_faxes() -> None:
    s = staffed()
    fax_line = LineCapabilities.analog(can_receive_fax=True, fax_only=True)
    plan = decide(Call(validity="withheld"), at("2026-03-23 10:00", LON), s, fax_line)  # type: ignore[arg-type]
    assert plan.kinds() == ["fax_receive"] and plan.explanation.startswith("Fax-only line")
    plan = decide(Call(number="+441632960123", fax=True), at("2026-03-23 10:00", LON), s, GSM)  # type: ignore[arg-type]
    assert plan.kinds() == ["hang_up"] and "cannot receive faxes" in plan.explanation
    blocked = decide(Call(number="08700001234", fax=True), at("2026-03-23 10:00", LON), s, fax_line)  # type: ignore[arg-type]
    assert blocked.kinds() == ["reject"]


@pytest.mark.parametrize(
    ("patterns", "region", "number", "hit"),
    [
        (["07700 900999"], "GB", "+447700900999", "07700 900999"),
        (["+44 7700 900999"], "GB", "07700900999", "+44 7700 900999"),
        (["0870*"], "GB", "+448700001234", "0870*"),
        (["0044870*"], "GB", "08700001234", "0044870*"),
        (["800*"], "US", "+18005550100", "800*"),
        (["1 800*"], "US", "(800) 555-0100", "1 800*"),
        (["+1 212 555 0100"], "US", "212-555-0100", "+1 212 555 0100"),
        (["0870*"], "GB", "+338700001234", ""),
    ],
)
def test_numbers_compare_in_e164_with_the_business_country(
    patterns: list[str], region: str, number: str, hit: str
) -> None:
    assert NumberList(patterns, region).match(number, region) == hit
