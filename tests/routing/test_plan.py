"""decide(): every rule combination as a table of (settings, call, time, line) -> steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from firmware_app.routing import (
    Call,
    ForwardTo,
    Greet,
    LineCapabilities,
    Menu,
    NotifyStaff,
    Reject,
    decide,
    preview,
)
from firmware_app.settings.model import Settings
from firmware_app.settings.routing import (
    Menu as MenuSettings,
)
from firmware_app.settings.routing import (
    MenuOption,
    Override,
    RotaEntry,
    StaffMember,
)

from .helpers import at, settings

LON = "Europe/London"
OPEN = "2025-03-24 10:00"  # Monday
CLOSED = "2025-03-24 20:00"
SATURDAY = "2025-03-29 11:00"
HOLIDAY = "2025-12-25 10:00"
CLOSURE = "2025-08-05 10:00"

ANALOG = LineCapabilities.analog()
ANALOG_FLASH = LineCapabilities.analog(can_transfer=True)
ANALOG_DIAL = LineCapabilities.analog(can_dial_out=True)  # a free GSM line, voice duplex
ANALOG_BOTH = LineCapabilities.analog(can_transfer=True, can_dial_out=True)
GSM = LineCapabilities.gsm()
GSM_NETWORK = LineCapabilities.gsm(can_dial_out=False)
GSM_BARE = LineCapabilities.gsm(can_dial_out=False, can_forward_network=False)

CALLER = Call(number="+44 20 7946 0123")
VIP = Call(number="+447700900999")
WITHHELD = Call(validity="withheld")
UNAVAILABLE = Call(number="", validity="unavailable")


def base() -> Settings:
    s = settings(LON, "GB", "ENG")
    s.holidays.closures = settings(
        closures=[("refit", "2025-08-04", "2025-08-08", "Refit")]
    ).holidays.closures
    s.staff.members = [
        StaffMember(name="Anna", mobile="07700 900001", email="anna@example.com", groups=["sales"]),
        StaffMember(name="Ben", mobile="+447700900002", groups=["support"]),
    ]
    s.rules.allow = ["+447700900999"]
    s.rules.block = ["+44870*", "+447700900666", "+447700900999*"]
    return s


def tweak(**changes: object) -> Callable[[Settings], None]:
    def apply(s: Settings) -> None:
        s.rules = dataclasses.replace(s.rules, **changes)  # type: ignore[arg-type]

    return apply


def no_staff(s: Settings) -> None:
    s.staff.members = []


def menus(s: Settings) -> None:
    s.rules.menus = [
        MenuSettings(mode="open", options=[
            MenuOption(digit="1", action="ring_staff", target="sales", label="for sales"),
            MenuOption(digit="2", action="voicemail", target="orders"),
            MenuOption(digit="3", action="message", target="directions"),
            MenuOption(digit="9", action="repeat"),
        ]),
        MenuSettings(mode="closed", options=[
            MenuOption(digit="1", action="ring_staff", target="support", label="emergencies"),
        ]),
    ]  # fmt: skip


def override(state: str, until: str = "switched_back") -> Callable[[Settings], None]:
    def apply(s: Settings) -> None:
        s.override = Override(state=state, until=until)  # type: ignore[arg-type]

    return apply


def rota_anna_only(s: Settings) -> None:
    s.staff.rota = [RotaEntry(name="Anna", days=["mon"], hours=["09:00-13:00"])]


def nothing(s: Settings) -> None:
    pass


def on_call(s: Settings) -> None:
    """Anna works the opening hours; Ben is on call on weekday evenings and at weekends, and
    callers are put through to whoever is on call."""
    s.rules = dataclasses.replace(s.rules, on_call_when_closed=True)
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    s.staff.rota = [
        RotaEntry(name="Anna", days=weekdays, hours=["09:00-17:00"]),
        RotaEntry(name="Ben", days=weekdays, hours=["17:00-23:00"]),
        RotaEntry(name="Ben", days=["sat", "sun"], hours=["08:00-20:00"]),
    ]


def rota_without_on_call_calls(s: Settings) -> None:
    on_call(s)
    s.rules = dataclasses.replace(s.rules, on_call_when_closed=False)


# (name, settings change, call, local time, line, rule, mode, steps, explanation contains)
TABLE = [
    ("open analog, office phone, no transfer", nothing, CALLER, OPEN, ANALOG, "schedule", "open",
     ["ring_office", "greet", "take_voicemail", "notify_staff"], "line cannot put calls through"),
    ("open analog with hook flash", nothing, CALLER, OPEN, ANALOG_FLASH, "schedule", "open",
     ["ring_office", "greet", "forward_to", "take_voicemail"], "hook flash"),
    ("open analog dials out on a GSM line", nothing, CALLER, OPEN, ANALOG_DIAL, "schedule",
     "open", ["ring_office", "greet", "forward_to", "take_voicemail"], "they press 1"),
    ("open analog, no phone, dials out", tweak(office_phone=False), CALLER, OPEN, ANALOG_DIAL,
     "schedule", "open", ["greet", "forward_to", "take_voicemail"], "Call Anna, Ben for 35 s"),
    ("closed analog that could dial out", nothing, CALLER, CLOSED, ANALOG_DIAL, "schedule",
     "closed", ["greet", "take_voicemail"], "voicemail"),
    ("open gsm dials out", nothing, CALLER, OPEN, GSM, "schedule", "open",
     ["greet", "forward_to", "take_voicemail"], "Call Anna, Ben for 35 s (they press 1"),
    ("open gsm network forwarding", nothing, CALLER, OPEN, GSM_NETWORK, "schedule", "open",
     ["forward_to", "greet", "take_voicemail"], "the network forwards it to Anna after 20 s"),
    ("open gsm cannot forward", nothing, CALLER, OPEN, GSM_BARE, "schedule", "open",
     ["greet", "take_voicemail", "notify_staff"], "tell Anna, Ben by SMS or email"),
    ("open, forwarding off", tweak(forward_calls=False), CALLER, OPEN, GSM, "schedule", "open",
     ["greet", "take_voicemail", "notify_staff"], "switched off"),
    ("open analog, no phone on line", tweak(office_phone=False), CALLER, OPEN, ANALOG,
     "schedule", "open", ["greet", "take_voicemail", "notify_staff"], "Open now, closes 17:00."),
    ("open, no staff", no_staff, CALLER, OPEN, GSM, "schedule", "open",
     ["greet", "take_voicemail"], "Play the open greeting, then take a voicemail."),
    ("closed analog", nothing, CALLER, CLOSED, ANALOG, "schedule", "closed",
     ["greet", "take_voicemail"], "Closed now, opens tomorrow 09:00."),
    ("holiday gsm", nothing, CALLER, HOLIDAY, GSM, "schedule", "holiday",
     ["greet", "take_voicemail"], "Closed: Christmas Day, opens Mon 09:00. Play the holiday"),
    ("closure", nothing, CALLER, CLOSURE, ANALOG, "schedule", "closure",
     ["greet", "take_voicemail"], "closure greeting (refit)"),
    ("blocked exact, analog", nothing, Call(number="+447700900666"), OPEN, ANALOG, "block",
     "open", ["reject"], "Pick up and hang up at once"),
    ("blocked prefix, gsm", nothing, Call(number="+44 870 123 4567"), CLOSED, GSM, "block",
     "closed", ["reject"], "matches +44870*. Decline the call"),
    ("blocked prefix in national format", nothing, Call(number="0870 123 4567"), OPEN, GSM,
     "block", "open", ["reject"], "Blocked"),
    ("VIP when closed is put through", nothing, VIP, CLOSED, GSM, "allow", "closed",
     ["greet", "forward_to", "take_voicemail"], "put through at any time"),
    ("VIP on a holiday, analog with flash", nothing, VIP, HOLIDAY, ANALOG_FLASH, "allow",
     "holiday", ["greet", "forward_to", "take_voicemail"], "Allow list"),
    ("VIP while open rings the office first", nothing, VIP, OPEN, ANALOG, "allow", "open",
     ["ring_office", "greet", "take_voicemail", "notify_staff"], "Allow list"),
    ("VIP skips screening and menus", tweak(screen_all=True), VIP, OPEN, GSM, "allow", "open",
     ["greet", "forward_to", "take_voicemail"], "Allow list"),
    ("withheld answered like anyone", nothing, WITHHELD, OPEN, GSM, "schedule", "open",
     ["greet", "forward_to", "take_voicemail"], "Open now"),
    ("withheld rejected", tweak(withheld="reject"), WITHHELD, OPEN, GSM, "withheld", "open",
     ["reject"], "Withheld number: rejected"),
    ("unavailable to voicemail", tweak(withheld="voicemail"), UNAVAILABLE, OPEN, ANALOG,
     "withheld", "open", ["greet", "take_voicemail"], "Number unavailable: straight to voicemail"),
    ("withheld screened", tweak(withheld="screen"), WITHHELD, OPEN, GSM, "schedule", "open",
     ["screen", "greet", "forward_to", "take_voicemail"], "asked to press 1"),
    ("screened call cannot use network forwarding", tweak(withheld="screen"), WITHHELD, OPEN,
     GSM_NETWORK, "schedule", "open", ["screen", "greet", "take_voicemail", "notify_staff"], ""),
    ("screen everyone, analog", tweak(screen_all=True), CALLER, OPEN, ANALOG, "schedule", "open",
     ["ring_office", "screen", "greet", "take_voicemail", "notify_staff"], "press 1"),
    ("screen everyone when closed", tweak(screen_all=True), CALLER, CLOSED, ANALOG, "schedule",
     "closed", ["screen", "greet", "take_voicemail"], ""),
    ("open menu", menus, CALLER, OPEN, GSM, "schedule", "open",
     ["menu", "forward_to", "take_voicemail"], "offer the menu open (1: for sales"),
    ("holiday falls back to the closed menu", menus, CALLER, HOLIDAY, GSM, "schedule", "holiday",
     ["menu", "take_voicemail"], "offer the menu closed (1: emergencies)"),
    ("override closed in open hours", override("closed"), CALLER, OPEN, GSM, "schedule",
     "override", ["greet", "take_voicemail"], "Closed by override until switched back"),
    ("override open at night", override("open"), CALLER, CLOSED, GSM, "schedule", "override",
     ["greet", "forward_to", "take_voicemail"], "Open by override"),
    ("rota: only Anna", rota_anna_only, CALLER, OPEN, GSM, "schedule", "open",
     ["greet", "forward_to", "take_voicemail"], "Call Anna for 35 s"),
    ("rota: nobody on duty in the afternoon", rota_anna_only, CALLER, "2025-03-24 14:00", GSM,
     "schedule", "open", ["greet", "take_voicemail"], ""),
    ("saturday closed", nothing, CALLER, SATURDAY, GSM, "schedule", "closed",
     ["greet", "take_voicemail"], "opens Mon 09:00"),
    ("on call in the evening", on_call, CALLER, CLOSED, GSM, "schedule", "closed",
     ["greet", "forward_to", "take_voicemail"],
     "Play the closed greeting, then call Ben for 35 s (they press 1 to take it), then take "
     "a voicemail. (Ben on call by the rota.)"),
    ("on call on saturday, analog dials out", on_call, CALLER, SATURDAY, ANALOG_DIAL,
     "schedule", "closed", ["greet", "forward_to", "take_voicemail"], "call Ben for 35 s"),
    ("on call on a holiday evening, network forwarding", on_call, CALLER, "2025-12-25 19:00",
     GSM_NETWORK, "schedule", "holiday", ["forward_to", "greet", "take_voicemail"],
     "the network forwards it to Ben"),
    ("a holiday's daytime rota is a day off, not on call", on_call, CALLER, HOLIDAY, GSM,
     "schedule", "holiday", ["greet", "take_voicemail"], "Closed: Christmas Day"),
    ("closed by hand in working hours: nobody on call",
     lambda s: (on_call(s), override("closed")(s)), CALLER, OPEN, GSM, "schedule", "override",
     ["greet", "take_voicemail"], "Closed by override"),
    ("on call, line cannot put through", on_call, CALLER, CLOSED, ANALOG, "schedule",
     "closed", ["greet", "take_voicemail", "notify_staff"], "tell Ben by SMS or email"),
    ("on call, closed by hand", lambda s: (on_call(s), override("closed")(s)), CALLER,
     "2025-03-24 18:00", GSM, "schedule", "override", ["greet", "forward_to", "take_voicemail"],
     "call Ben"),
    ("on call, nobody on the rota at night", on_call, CALLER, "2025-03-25 02:00", GSM,
     "schedule", "closed", ["greet", "take_voicemail"], "Closed now"),
    ("on call, screened first", lambda s: (on_call(s), tweak(screen_all=True)(s)), CALLER,
     CLOSED, GSM_NETWORK, "schedule", "closed",
     ["screen", "greet", "take_voicemail", "notify_staff"], "Ben on call"),
    ("rota on call, but calls not put through", rota_without_on_call_calls, CALLER, CLOSED,
     GSM, "schedule", "closed", ["greet", "take_voicemail"], "Closed now, opens tomorrow 09:00."),
    ("on call, closed menu rings the key's group", lambda s: (on_call(s), menus(s)), CALLER,
     CLOSED, GSM, "schedule", "closed", ["menu", "forward_to", "take_voicemail"],
     "offer the menu closed (1: emergencies), then call Ben"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "change", "call", "local", "line", "rule", "mode", "kinds", "words"),
    TABLE,
    ids=[row[0] for row in TABLE],
)
def test_decide(
    name: str,
    change: Callable[[Settings], None],
    call: Call,
    local: str,
    line: LineCapabilities,
    rule: str,
    mode: str,
    kinds: list[str],
    words: str,
) -> None:
    s = base()
    change(s)
    plan = decide(call, at(local, LON), s, line)
    assert (plan.rule, plan.mode, plan.kinds()) == (rule, mode, kinds), plan.explanation
    assert words.lower() in plan.explanation.lower()
    assert len(plan.lines()) == len(plan.steps)


def test_greetings_name_the_mode() -> None:
    s = base()
    s.holidays.observe = "all"
    greetings = {
        local: next(st.greeting for st in decide(CALLER, at(local, LON), s, GSM).steps
                    if isinstance(st, Greet))
        for local in (OPEN, CLOSED, HOLIDAY, CLOSURE)
    }  # fmt: skip
    assert greetings == {
        OPEN: "open",
        CLOSED: "closed",
        HOLIDAY: "holiday",
        CLOSURE: "closure:refit",
    }


def test_analog_dials_out_rather_than_hook_flash_when_both_can() -> None:
    plan = decide(CALLER, at(OPEN, LON), base(), ANALOG_BOTH)
    (fwd,) = [st for st in plan.steps if isinstance(st, ForwardTo)]
    assert fwd.method == "dial_out" and fwd.confirm
    assert [p.name for p in fwd.people] == ["Anna", "Ben"]


def test_forward_numbers_are_e164_and_confirmed() -> None:
    plan = decide(CALLER, at(OPEN, LON), base(), GSM)
    fwd = plan.steps[1]
    assert isinstance(fwd, ForwardTo)
    assert [p.mobile for p in fwd.people] == ["+447700900001", "+447700900002"]
    assert (fwd.method, fwd.seconds, fwd.confirm) == ("dial_out", 35, True)


def test_menu_choices_are_sub_plans() -> None:
    s = base()
    menus(s)
    menu = decide(CALLER, at(OPEN, LON), s, GSM).steps[0]
    assert isinstance(menu, Menu) and menu.prompt == "menu:open"
    got = {c.digit: [st.kind for st in c.steps] for c in menu.choices}
    assert got == {
        "1": ["forward_to", "take_voicemail"],
        "2": ["take_voicemail"],
        "3": ["play_message", "repeat_menu"],
        "9": ["repeat_menu"],
    }
    first = menu.choices[0].steps[0]
    assert isinstance(first, ForwardTo) and [p.name for p in first.people] == ["Anna"]
    # When closed, the emergencies choice rings the support group although nobody is on duty.
    closed_menu = decide(CALLER, at(CLOSED, LON), s, ANALOG).steps[0]
    assert isinstance(closed_menu, Menu)
    notify = closed_menu.choices[0].steps[-1]
    assert isinstance(notify, NotifyStaff) and [p.name for p in notify.people] == ["Ben"]


def test_the_owners_own_greeting_is_played_before_the_menu() -> None:
    """With a key menu for the time, a greeting the owner gave words or a recording of is
    played first, then the menu's choices alone (its default words would repeat the
    welcome); a greeting with its default words is not played: the menu's default words
    begin with its welcome, and the explanation says how to have it played."""
    from firmware_app.settings.greetings import Greeting

    s = base()
    menus(s)
    plain = decide(CALLER, at(CLOSED, LON), s, GSM)
    assert plain.kinds()[:1] == ["menu"]
    menu = plain.steps[0]
    assert isinstance(menu, Menu) and menu.welcome and menu.sound == "menu:closed"
    assert "the menu is said in place of the default closed greeting" in plain.explanation

    s.greetings.items = [
        Greeting(key="closed", mode="recording", recording="media/2025/03/abcdefgh12.wav"),
        Greeting(key="closure:refit", mode="text", text="We are away for a refit."),
        Greeting(key="open", mode="default"),  # listed but unchanged: the default words
    ]
    closed = decide(CALLER, at(CLOSED, LON), s, GSM)
    assert closed.kinds()[:2] == ["greet", "menu"]
    greet, menu = closed.steps[:2]
    assert isinstance(greet, Greet) and greet.greeting == "closed"
    assert isinstance(menu, Menu) and not menu.welcome and menu.sound == "menu:closed:choices"
    assert "in place of" not in closed.explanation
    assert closed.lines()[:2] == [
        "1. Play the closed greeting",
        "2. Offer the menu closed (1: emergencies)",
    ]
    # A closure has no menu of its own: its own greeting, then the closed menu's choices.
    refit = decide(CALLER, at(CLOSURE, LON), s, ANALOG)
    assert [getattr(st, "greeting", "") for st in refit.steps[:1]] == ["closure:refit"]
    assert isinstance(refit.steps[1], Menu) and refit.steps[1].sound == "menu:closed:choices"
    # The holiday greeting is not the owner's: the closed menu in its place, welcome included.
    holiday = decide(CALLER, at(HOLIDAY, LON), s, GSM)
    assert isinstance(holiday.steps[0], Menu) and holiday.steps[0].welcome
    assert "in place of the default holiday greeting" in holiday.explanation
    opened = decide(CALLER, at(OPEN, LON), s, GSM)  # "default" mode counts as not changed
    assert isinstance(opened.steps[0], Menu) and opened.steps[0].welcome
    # The preview page shows the same plan as a call.
    shown = preview(s, at=CLOSED, caller="+442079460123", line=GSM)
    assert shown.kinds()[:2] == ["greet", "menu"]


def test_reject_depends_on_the_line() -> None:
    blocked = Call(number="+447700900666")
    for line, how in ((GSM, "decline"), (ANALOG, "answer_and_hang_up")):
        step = decide(blocked, at(OPEN, LON), base(), line).steps[0]
        assert isinstance(step, Reject) and step.how == how


@pytest.mark.parametrize(
    ("when", "caller", "kinds", "start"),
    [
        ("2025-03-28 18:05", "+442079460123", ["greet", "take_voicemail"], "Closed now, opens"),
        ("2025-03-28 16:05", "withheld", ["ring_office", "greet", "take_voicemail", "notify_staff"],
         "Open now, closes 17:00"),
        ("2025-12-25 12:00", "", ["greet", "take_voicemail"], "Closed: Christmas Day"),
    ],
)  # fmt: skip
def test_preview_answers_what_happens_if_someone_calls(
    when: str, caller: str, kinds: list[str], start: str
) -> None:
    plan = preview(base(), at=when, caller=caller, line=ANALOG)
    assert plan.kinds() == kinds
    assert plan.explanation.startswith(start)


def test_preview_rejects_an_unreadable_time() -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD HH:MM"):
        preview(base(), at="Friday evening")


def test_on_call_is_the_rota_outside_the_weekly_hours() -> None:
    """A bar open 18:00-02:00: at 01:00 the rota's night shift is working hours, not on
    call, even when closed by hand; at 03:00 the rota puts someone on call."""
    s = base()
    on_call(s)
    s.hours.mon = ["18:00-02:00"]
    s.staff.rota = [
        RotaEntry(name="Anna", days=["mon"], hours=["18:00-02:00"]),
        RotaEntry(name="Ben", days=["tue"], hours=["02:00-06:00"]),
    ]
    s.override = Override(state="closed", until="switched_back")
    night = decide(CALLER, at("2025-03-25 01:00", LON), s, GSM)
    assert night.mode == "override" and night.kinds() == ["greet", "take_voicemail"]
    late = decide(CALLER, at("2025-03-25 03:00", LON), s, GSM)
    (fwd,) = [st for st in late.steps if isinstance(st, ForwardTo)]
    assert [p.name for p in fwd.people] == ["Ben"]


def test_router_on_call_is_who_the_network_forwarding_follows_while_closed() -> None:
    """`Router.on_call`: the people ordinary callers reach while closed (and the GSM
    network forwarding's target then): nobody while open, nobody with the rule off."""
    from firmware_app.routing import Router

    s = base()
    on_call(s)
    router = Router(s)
    assert [p.name for p in router.on_call(at("2025-03-24 18:00", LON))] == ["Ben"]
    assert router.on_call(at("2025-03-24 10:00", LON)) == []  # open: on duty, not on call
    assert router.on_call(at("2025-12-25 10:00", LON)) == []  # a holiday's day rota: day off
    assert [p.name for p in router.on_call(at("2025-12-25 19:00", LON))] == ["Ben"]
    s.rules = dataclasses.replace(s.rules, on_call_when_closed=False)
    assert Router(s).on_call(at("2025-03-24 18:00", LON)) == []


def test_a_router_cache_belongs_to_its_owner_and_follows_the_settings_object() -> None:
    from firmware_app.routing import RouterCache

    first, second = RouterCache(size=2), RouterCache(size=2)
    a, b, c = base(), base(), base()
    assert first.get(a) is first.get(a)  # the same object: the same Router
    assert first.get(a) is not second.get(a)  # no state shared between owners
    assert first.get(b) is not first.get(a)  # a saved change is a new object
    kept = first.get(b)
    first.get(c)  # a third pushes the oldest (a) out
    assert first.get(b) is kept


def test_holiday_tables_can_be_passed_in() -> None:
    """The routing asks the provider it is given (the daemon's comes from a child process)."""
    from firmware_app.routing import RouterCache

    class Provider:
        def __init__(self) -> None:
            self.asked: list[tuple[str, str, int]] = []

        def year(self, country: str, subdivision: str, year: int) -> tuple[tuple[object, str], ...]:
            import datetime as dt

            self.asked.append((country, subdivision, year))
            return ((dt.date(2025, 3, 24), "Founders' Day"),)

        def countries(self) -> dict[str, tuple[str, tuple[str, ...]]]:
            return {"GB": ("United Kingdom", ("ENG",))}

    provider = Provider()
    s = base()
    s.holidays.observe = "all"
    plan = RouterCache(holidays=provider).get(s).decide(CALLER, at(OPEN, LON), GSM)  # type: ignore[arg-type]
    assert plan.mode == "holiday" and "Founders' Day" in plan.explanation
    assert ("GB", "ENG", 2025) in provider.asked
