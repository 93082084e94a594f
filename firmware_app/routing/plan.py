"""What to do with a call: `decide(call, now, settings, line) -> Plan`, and `preview()` for the UI.

A plan is data: ordered steps (ring the office, greet, menu, forward to, take voicemail,
reject) and an explanation of why, so the call service can run it and a web page can show it.
Pure: no I/O, no clock, never touches a modem; the line's capabilities are passed in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Literal

from ..settings.routing import Menu as MenuSettings
from ..settings.routing import MenuOption, Rules, StaffMember, parse_local_datetime
from .clock import wall_to_instant
from .hours import BusinessHours, HolidayProvider, Mode, Status
from .rules import NumberList, Person, RotaTable, e164, in_group

if TYPE_CHECKING:
    from ..settings.model import Settings

Validity = Literal["ok", "withheld", "unavailable"]
LineKind = Literal["analog", "gsm"]
ForwardMethod = Literal["dial_out", "hook_flash", "network"]
Rule = Literal["schedule", "allow", "block", "withheld", "fax"]

NETWORK_FORWARD_MAX_SECONDS = 30
"""3GPP TS 27.007 AT+CCFC 'no reply' time: 5 to 30 seconds."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """An incoming call as the line reports it."""

    number: str = ""
    name: str = ""
    validity: Validity = "ok"
    fax: bool = False
    """The caller is a fax machine (its calling tone was heard, or the line said so)."""

    @property
    def withheld(self) -> bool:
        return self.validity != "ok" or not self.number.strip()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LineCapabilities:
    """What the line can do with a call besides answering it."""

    kind: LineKind
    can_transfer: bool = False
    """Analog: the exchange offers hook-flash transfer."""
    can_dial_out: bool = False
    """A second call can be placed on another (GSM) line and joined to the caller: GSM lines,
    and analog voice lines whose modem joins calls with V.253 voice duplex (AT+VTR)."""
    can_forward_network: bool = False
    """GSM: the network forwards unanswered calls (AT+CCFC)."""
    can_receive_fax: bool = False
    """The modem can take a fax (a fax class in AT+FCLASS=?)."""
    fax_only: bool = False
    """The owner uses this line for faxes only: every call is answered as a fax."""

    @classmethod
    def analog(
        cls,
        *,
        can_transfer: bool = False,
        can_receive_fax: bool = False,
        fax_only: bool = False,
        can_dial_out: bool = False,
    ) -> LineCapabilities:
        return cls(
            kind="analog",
            can_transfer=can_transfer,
            can_receive_fax=can_receive_fax,
            fax_only=fax_only,
            can_dial_out=can_dial_out,
        )

    @classmethod
    def gsm(
        cls, *, can_dial_out: bool = True, can_forward_network: bool = True
    ) -> LineCapabilities:
        return cls(kind="gsm", can_dial_out=can_dial_out, can_forward_network=can_forward_network)


# -- steps --------------------------------------------------------------------------------------


def _names(people: tuple[Person, ...]) -> str:
    return ", ".join(p.name for p in people) or "nobody"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RingOffice:
    """Analog: do not answer yet; let the phone sharing the line ring."""

    seconds: int
    kind: Literal["ring_office"] = dataclasses.field(default="ring_office", init=False)

    def describe(self) -> str:
        return f"let the office phone ring for {self.seconds} s"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Screen:
    """Answer and ask the caller to press a key; hang up when nobody does (robocalls)."""

    prompt: str = "screen"
    digit: str = "1"
    seconds: int = 8
    kind: Literal["screen"] = dataclasses.field(default="screen", init=False)

    def describe(self) -> str:
        return f"ask the caller to press {self.digit} (hang up if nobody does)"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Greet:
    """Answer (if not yet) and play a greeting."""

    greeting: str
    kind: Literal["greet"] = dataclasses.field(default="greet", init=False)

    def describe(self) -> str:
        if self.greeting.startswith("closure:"):
            return f"play the closure greeting ({self.greeting.removeprefix('closure:')})"
        return f"play the {self.greeting} greeting"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ForwardTo:
    """Put the caller through to staff phones."""

    people: tuple[Person, ...]
    method: ForwardMethod
    seconds: int
    confirm: bool = False
    """Staff press 1 to take the call, so a mobile's own voicemail cannot take it."""
    kind: Literal["forward_to"] = dataclasses.field(default="forward_to", init=False)

    def describe(self) -> str:
        who = _names(self.people)
        if self.method == "hook_flash":
            return f"transfer to {who} by hook flash"
        if self.method == "network":
            return f"leave it unanswered so the network forwards it to {who} after {self.seconds} s"
        return f"call {who} for {self.seconds} s" + (
            " (they press 1 to take it)" if self.confirm else ""
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NotifyStaff:
    """Tell staff about the call by SMS or email (the line cannot put it through)."""

    people: tuple[Person, ...]
    kind: Literal["notify_staff"] = dataclasses.field(default="notify_staff", init=False)

    def describe(self) -> str:
        return f"tell {_names(self.people)} by SMS or email"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TakeVoicemail:
    box: str = "main"
    greeting: str = "voicemail"
    kind: Literal["take_voicemail"] = dataclasses.field(default="take_voicemail", init=False)

    def describe(self) -> str:
        return "take a voicemail" + (f" in box {self.box}" if self.box != "main" else "")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PlayMessage:
    message: str
    kind: Literal["play_message"] = dataclasses.field(default="play_message", init=False)

    def describe(self) -> str:
        return f"play the message {self.message.removeprefix('message:')}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RepeatMenu:
    kind: Literal["repeat_menu"] = dataclasses.field(default="repeat_menu", init=False)

    def describe(self) -> str:
        return "say the menu again"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    """Do not take the call: decline it (GSM), pick up and hang up at once (analog), or
    (analog, `calls.blocked_message`) pick up, play "not_accepted" and hang up."""

    how: Literal["decline", "answer_and_hang_up", "message"]
    kind: Literal["reject"] = dataclasses.field(default="reject", init=False)

    def describe(self) -> str:
        if self.how == "message":
            return "pick up, say the call is not accepted and hang up"
        return "decline the call" if self.how == "decline" else "pick up and hang up at once"


def _reject(line: LineCapabilities, settings: Settings) -> Reject:
    if line.kind == "gsm":
        return Reject(how="decline")
    return Reject(how="message" if settings.calls.blocked_message else "answer_and_hang_up")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FaxReceive:
    """Answer as a fax machine and receive the document (run by the fax service)."""

    kind: Literal["fax_receive"] = dataclasses.field(default="fax_receive", init=False)

    def describe(self) -> str:
        return "answer as a fax machine and receive the fax"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HangUp:
    kind: Literal["hang_up"] = dataclasses.field(default="hang_up", init=False)

    def describe(self) -> str:
        return "hang up"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MenuChoice:
    digit: str
    label: str
    steps: tuple[Step, ...]


CHOICES_ONLY = ":choices"
"""Suffix of a menu prompt's greeting key (`menu:closed:choices`) whose default words are
the choices alone: the owner's own greeting for the time was just played before it."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Menu:
    """Play the menu prompt and wait for a key; with no key, go on with the next steps.

    `welcome`: the prompt's default words begin with the time's welcome (the time's
    greeting has its default words and is not played); False after the owner's own greeting
    for the time, so a default prompt says the choices only (`sound`)."""

    prompt: str
    choices: tuple[MenuChoice, ...]
    seconds: int = 8
    welcome: bool = True
    kind: Literal["menu"] = dataclasses.field(default="menu", init=False)

    @property
    def sound(self) -> str:
        """The greeting key the call plays for the prompt."""
        return self.prompt if self.welcome else self.prompt + CHOICES_ONLY

    def describe(self) -> str:
        keys = ", ".join(f"{c.digit}: {c.label}" for c in self.choices)
        return f"offer the menu {self.prompt.removeprefix('menu:')} ({keys})"


Step = (
    RingOffice
    | Screen
    | Greet
    | Menu
    | ForwardTo
    | NotifyStaff
    | TakeVoicemail
    | PlayMessage
    | RepeatMenu
    | Reject
    | FaxReceive
    | HangUp
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What happens to a call, in order, and why."""

    mode: Mode
    rule: Rule
    """What decided: the schedule, the allow list, the block list or the withheld policy."""
    steps: tuple[Step, ...]
    explanation: str
    status: Status

    def kinds(self) -> list[str]:
        return [s.kind for s in self.steps]

    def lines(self) -> list[str]:
        """Numbered steps in words, for a page."""
        return [f"{i}. {_capital(s.describe())}" for i, s in enumerate(self.steps, 1)]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


# -- decide -------------------------------------------------------------------------------------


def _put_through(
    people: list[Person],
    line: LineCapabilities,
    rules: Rules,
    *,
    greeting: str,
    ring_office: bool,
    notes: list[str],
    box: str = "main",
    answered: bool = False,
    network_seconds: int = NETWORK_FORWARD_MAX_SECONDS,
) -> list[Step]:
    """Ring the office (analog), then forward to `people` if the line can, else voicemail.

    `answered`: the call was already picked up (screening, menu), so the network can no
    longer forward it. `network_seconds`: the no-reply time set with AT+CCFC.
    """
    steps: list[Step] = []
    if ring_office:
        steps.append(RingOffice(seconds=rules.ring_seconds))
    with_mobile = tuple(p for p in people if p.mobile)
    can_forward = rules.forward_calls and bool(with_mobile)
    if can_forward and line.can_dial_out:
        # GSM, or analog with a free GSM line to call staff on (after the office phone rang);
        # preferred to a hook-flash transfer: staff press 1, and nobody -> voicemail.
        steps += [
            Greet(greeting=greeting),
            ForwardTo(
                people=with_mobile,
                method="dial_out",
                seconds=rules.ring_seconds,
                confirm=rules.confirm_forwarded,
            ),
            TakeVoicemail(box=box),
        ]
        return steps
    if line.kind == "gsm" and can_forward and line.can_forward_network and not answered:
        # `can_forward_network` only while the line's AT+CCFC is set and verified. Should the
        # call still ring once the network ought to have forwarded it, Frontdesk answers and
        # the greeting and voicemail after the ForwardTo run.
        seconds = min(network_seconds, NETWORK_FORWARD_MAX_SECONDS)
        notes.append("the network forwards to one number only and cannot ask staff to press 1")
        notes.append("if the call still rings after that, Frontdesk answers it")
        steps += [
            ForwardTo(people=with_mobile[:1], method="network", seconds=seconds),
            Greet(greeting=greeting),
            TakeVoicemail(box=box),
        ]
        return steps
    if line.kind == "analog" and can_forward and line.can_transfer:
        notes.append("a hook-flash transfer leaves the call to the phone it goes to")
        steps += [
            Greet(greeting=greeting),
            ForwardTo(people=with_mobile[:1], method="hook_flash", seconds=rules.ring_seconds),
            TakeVoicemail(box=box),
        ]
        return steps
    if people:
        if not rules.forward_calls:
            notes.append("putting calls through to staff is switched off")
        elif not with_mobile:
            notes.append("no mobile number is set for the staff on duty")
        else:
            notes.append("this line cannot put calls through")
    steps += [Greet(greeting=greeting), TakeVoicemail(box=box)]
    if people:
        steps.append(NotifyStaff(people=tuple(people)))
    return steps


def _menu_for(rules: Rules, status: Status) -> tuple[str, MenuSettings] | None:
    if status.mode == "override":
        wanted = ["open"] if status.is_open else ["closed"]
    elif status.mode in ("holiday", "closure"):
        wanted = [status.mode, "closed"]
    else:
        wanted = [status.mode]
    for mode in wanted:
        for menu in rules.menus:
            if menu.mode == mode and menu.options:
                return mode, menu
    return None


class Router:
    """One settings version read once for routing: hours, number lists and staff numbers.

    Build one per settings object (the settings service replaces the object on every save)
    and call `decide` for each call; a `RouterCache` keeps the one in use. `holidays`: where
    public-holiday tables come from (default: the provider installed for the process).
    """

    def __init__(self, settings: Settings, *, holidays: HolidayProvider | None = None) -> None:
        self.settings = settings
        self.hours = BusinessHours.from_settings(settings, holidays=holidays)
        self.region = settings.business.country
        self.allow = NumberList(settings.rules.allow, self.region)
        self.block = NumberList(settings.rules.block, self.region)
        self._people = {m.name: Person.of(m, self.region) for m in settings.staff.members}
        self.rota = RotaTable(settings.staff)

    def people(self, members: list[StaffMember]) -> list[Person]:
        return [self._people.get(m.name) or Person.of(m, self.region) for m in members]

    def on_call(self, now: dt.datetime, status: Status | None = None) -> list[Person]:
        """The staff ordinary callers are put through to while closed: with
        `rules.on_call_when_closed`, those the rota lists at `now` outside the *weekly* hours
        (evenings, nights, weekends; on a holiday, a closure or while closed by hand the
        working-day rota is a day off). Empty while open, or with the rule off. The network
        forwarding of GSM lines follows the same list (services/forwarding.py)."""
        hours = self.hours
        if not self.settings.rules.on_call_when_closed or hours.weekly_open(now):
            return []
        if (status or hours.status(now)).is_open:
            return []
        return self.people(self.rota.on_duty(now, hours.tz, is_open=False))

    def decide(
        self,
        call: Call,
        now: dt.datetime,
        line: LineCapabilities,
        *,
        vip: AbstractSet[str] = frozenset(),
        blocked: AbstractSet[str] = frozenset(),
    ) -> Plan:
        """The plan for `call` arriving at `now` (timezone-aware) on `line`.

        Precedence: allow list (VIP), block list, withheld policy, fax, then the mode
        (override, closure, holiday, special hours, weekly hours) with its menu; see
        docs/routing.md. `vip` and `blocked` are E.164 numbers of contacts so flagged: they
        count as entries of the allow and block lists.
        """
        settings = self.settings
        hours = self.hours
        status = hours.status(now)
        rules = settings.rules
        staff = settings.staff
        notes: list[str] = []
        people = self.people

        number = "" if call.withheld else call.number
        flagged = e164(number, self.region) if number and (vip or blocked) else ""
        allowed = self.allow.match(number, self.region) if number else ""
        if not allowed and flagged in vip:
            allowed = "a contact marked VIP"
        rejected = self.block.match(number, self.region) if number and not allowed else ""
        if number and not allowed and not rejected and flagged in blocked:
            rejected = "a blocked contact"
        is_fax = call.fax or line.fax_only

        steps: list[Step]
        if allowed and not is_fax:
            members = self.rota.on_duty(now, hours.tz, is_open=status.is_open) or [
                m for m in staff.members if m.mobile
            ]
            steps = _put_through(
                people(members),
                line,
                rules,
                greeting="open",
                ring_office=line.kind == "analog" and rules.office_phone and status.is_open,
                notes=notes,
                network_seconds=settings.forwarding.no_reply_seconds,
            )
            why = f"Allow list: {call.number} matches {allowed}, put through at any time"
            return _plan(status, "allow", steps, why, notes)

        if rejected:
            steps = [_reject(line, settings)]
            why = f"Blocked: {call.number} matches {rejected}"
            return _plan(status, "block", steps, why, notes)

        screen = rules.screen_all
        if call.withheld:
            label = "Withheld number" if call.validity != "unavailable" else "Number unavailable"
            if rules.withheld == "reject":
                steps = [_reject(line, settings)]
                return _plan(
                    status, "withheld", steps, f"{label}: rejected by the withheld rule", notes
                )
            if is_fax:
                pass  # a fax machine cannot press 1 or leave a message: the fax rule below
            elif rules.withheld == "voicemail":
                steps = [Greet(greeting=status.greeting), TakeVoicemail()]
                why = f"{label}: straight to voicemail by the withheld rule ({status.text})"
                return _plan(status, "withheld", steps, why, notes)
            elif rules.withheld == "screen":
                screen = True
                notes.append(f"{label.lower()}: the caller is asked to press 1")

        if is_fax:
            why = "Fax-only line" if line.fax_only else "The caller is a fax machine"
            if line.can_receive_fax:
                return _plan(status, "fax", [FaxReceive()], why, notes)
            notes.append("this line's modem cannot receive faxes")
            return _plan(status, "fax", [HangUp()], why, notes)

        ring_office = line.kind == "analog" and rules.office_phone and status.is_open
        steps = []
        if ring_office:
            steps.append(RingOffice(seconds=rules.ring_seconds))
        if screen:
            steps.append(Screen())

        menu = _menu_for(rules, status)
        if status.is_open:
            default = _put_through(
                people(self.rota.on_duty(now, hours.tz, is_open=True)),
                line,
                rules,
                greeting=status.greeting,
                ring_office=False,
                notes=notes,
                answered=screen or menu is not None,
                network_seconds=settings.forwarding.no_reply_seconds,
            )
        else:
            # Closed (also a holiday, a closure, closed by hand): the staff the rota has on
            # call now, when the owner wants callers put through to them; else voicemail.
            # On call means on the rota outside the weekly hours (evenings, nights, weekends):
            # on a holiday or when closed by hand, the daytime rota is a day off, not a call.
            on_call = self.on_call(now, status)
            if on_call:
                notes.append(f"{_names(tuple(on_call))} on call by the rota")
                default = _put_through(
                    on_call,
                    line,
                    rules,
                    greeting=status.greeting,
                    ring_office=False,
                    notes=notes,
                    answered=screen or menu is not None,
                    network_seconds=settings.forwarding.no_reply_seconds,
                )
            else:
                default = [Greet(greeting=status.greeting), TakeVoicemail()]

        if menu is not None:
            mode, menu_settings = menu
            # The owner's own greeting for this time (words or a recording) is played before
            # the menu; a default one is not: the menu's default words begin with its welcome.
            own = _own_greeting(settings, status.greeting)
            if own:
                steps.append(Greet(greeting=status.greeting))
            else:
                what = _greeting_words(status.greeting)
                notes.append(
                    f"the menu is said in place of the default {what}; give that greeting "
                    "your own words or recording to have it played before the menu"
                )
            choices: list[MenuChoice] = []
            for option in menu_settings.options:
                choices.append(
                    MenuChoice(
                        digit=option.digit,
                        label=option.label or _option_label(option.action, option.target),
                        steps=tuple(_option_steps(option, self, now, status, line)),
                    )
                )
            steps.append(Menu(prompt=f"menu:{mode}", choices=tuple(choices), welcome=not own))
            # With no key pressed: what would have happened without the menu, minus its greeting.
            steps += [s for s in default if not isinstance(s, Greet)]
        else:
            steps += default
        return _plan(status, "schedule", steps, status.text, notes)


class RouterCache:
    """The `Router` for the settings object in use, kept by the service that routes (one
    cache per owner, no module-level state). The settings service builds a new object on
    every save, so an object is recognised by identity; the last `size` are kept, which
    also holds their ids from being reused. Thread-safe."""

    def __init__(self, size: int = 4, holidays: HolidayProvider | None = None) -> None:
        self.size = size
        self.holidays = holidays
        self._routers: list[tuple[Settings, Router]] = []
        self._lock = threading.Lock()

    def get(self, settings: Settings) -> Router:
        with self._lock:
            for kept, made in self._routers:
                if kept is settings:
                    return made
        made = Router(settings, holidays=self.holidays)
        with self._lock:
            self._routers = [(settings, made), *self._routers[: self.size - 1]]
        return made


def router(settings: Settings) -> Router:
    """A new `Router` for `settings` (one-off use; a service keeps a `RouterCache`)."""
    return Router(settings)


def decide(
    call: Call,
    now: dt.datetime,
    settings: Settings,
    line: LineCapabilities,
    *,
    vip: AbstractSet[str] = frozenset(),
    blocked: AbstractSet[str] = frozenset(),
) -> Plan:
    """The plan for `call` arriving at `now` (timezone-aware) on `line`: see `Router.decide`.

    `vip`/`blocked`: E.164 numbers of contacts with those flags (ContactsService.vip_numbers()
    and blocked_numbers()), merged with `rules.allow` and `rules.block`. Builds a `Router`
    each time (a millisecond or so): code that routes every call keeps a `RouterCache`.
    """
    return Router(settings).decide(call, now, line, vip=vip, blocked=blocked)


def _own_greeting(settings: Settings, key: str) -> bool:
    """Whether the owner gave greeting `key` words or a recording of their own."""
    own = settings.greetings.get(key)
    return own is not None and own.mode in ("text", "recording")


def _greeting_words(key: str) -> str:
    if key.startswith("closure:"):
        return f"closure greeting ({key.removeprefix('closure:')})"
    return f"{key} greeting"


def _option_label(action: str, target: str) -> str:
    return {
        "ring_staff": f"speak to {target or 'someone'}",
        "voicemail": "leave a message",
        "message": f"hear {target or 'information'}",
        "repeat": "hear this again",
    }.get(action, action)


def _option_steps(
    option: MenuOption,
    router: Router,
    now: dt.datetime,
    status: Status,
    line: LineCapabilities,
) -> list[Step]:
    if option.action == "voicemail":
        return [TakeVoicemail(box=option.target or "main")]
    if option.action == "message":
        return [PlayMessage(message=f"message:{option.target or 'info'}"), RepeatMenu()]
    if option.action == "repeat":
        return [RepeatMenu()]
    settings = router.settings
    members = router.rota.on_duty(now, router.hours.tz, is_open=status.is_open, group=option.target)
    if not members:
        members = in_group(settings.staff, option.target)
    steps = _put_through(
        router.people(members),
        line,
        settings.rules,
        greeting="connect",
        ring_office=False,
        notes=[],
        answered=True,
    )
    return [s for s in steps if not isinstance(s, Greet)]


def _plan(status: Status, rule: Rule, steps: list[Step], why: str, notes: list[str]) -> Plan:
    text = f"{why}. {_capital(', then '.join(s.describe() for s in steps))}."
    if notes:
        text += " (" + "; ".join(dict.fromkeys(notes)) + ".)"
    return Plan(mode=status.mode, rule=rule, steps=tuple(steps), explanation=text, status=status)


def preview(
    settings: Settings,
    *,
    at: dt.datetime | str,
    caller: str = "",
    line: LineCapabilities | None = None,
    vip: AbstractSet[str] = frozenset(),
    blocked: AbstractSet[str] = frozenset(),
    routes: Router | None = None,
) -> Plan:
    """What happens if someone calls at `at`? For the settings page.

    `at` is a wall-clock time in the business's timezone (naive datetime or "YYYY-MM-DD HH:MM")
    or an aware datetime. `caller` is a number, or "" / "withheld" for a withheld number.
    `line`, `vip` and `blocked` as for `decide()`: give the ones a live call would get.
    `routes`: the `Router` of `settings` when the caller keeps one (else one is built).
    """
    routes = routes if routes is not None and routes.settings is settings else Router(settings)
    hours = routes.hours
    if isinstance(at, str):
        local = parse_local_datetime(at)
        if local is None:
            raise ValueError(f"a time as YYYY-MM-DD HH:MM is needed, got {at!r}")
        at = local
    now = at if at.tzinfo is not None else wall_to_instant(at, hours.tz)
    if caller.strip().lower() in ("", "withheld", "anonymous", "private"):
        call = Call(validity="withheld")
    else:
        call = Call(number=caller)
    return routes.decide(call, now, line or LineCapabilities.analog(), vip=vip, blocked=blocked)
