"""Business hours and call routing as the pages, the API and the CLI see them.

Status, upcoming changes and plan previews come from the pure routing layer, with one
`Router` kept per settings version; switching the override writes `override.since` (now,
with its UTC offset). Changes go through the settings service: validated whole, or nothing.
A preview is decided exactly as a live call is (`CallService.plan_for`): the same contacts'
VIP and blocked numbers (`contact_flags`) and, for each of the box's lines, the same
capabilities as adjusted by the forwarding service.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from typing import Any, Literal

from ..errors import FieldProblem, SettingsError
from ..routing import Change, LineCapabilities, Plan, Router, RouterCache, Status, holiday_names
from ..routing import public_holidays as _public_holidays
from ..routing.clock import wall_to_instant_after, when
from ..settings.model import Settings, settings_to_dict
from ..settings.routing import Closure, parse_date, parse_local_datetime
from .settings import SettingsService

OverrideState = Literal["off", "open", "closed"]
OverrideUntil = Literal["next_change", "time", "switched_back"]

LINES: dict[str, tuple[str, LineCapabilities]] = {
    "analog": ("Phone line (a phone shares it)", LineCapabilities.analog()),
    "analog_transfer": (
        "Phone line with call transfer",
        LineCapabilities.analog(can_transfer=True),
    ),
    "gsm": ("Mobile (SIM) line", LineCapabilities.gsm()),
    "fax": ("Fax-only phone line", LineCapabilities.analog(can_receive_fax=True, fax_only=True)),
}
"""Line kinds a preview can assume, by form value: (label, capabilities)."""

_SLUG = re.compile(r"[^a-z0-9]+")
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class LineChoice:
    """A line a preview can put the call on: one of the box's lines as it is now, or (`real`
    False) a kind of line the box does not have."""

    key: str
    label: str
    caps: LineCapabilities
    real: bool


def describe_line(caps: LineCapabilities) -> str:
    """What a line can do, in a few words (for the preview's line list)."""
    if caps.kind == "gsm":
        words = ["mobile (SIM) line"]
        if caps.can_forward_network:
            words.append("the network forwards calls")
        if caps.can_dial_out:
            words.append("calls staff on a second mobile line")
    else:
        words = ["fax-only phone line" if caps.fax_only else "phone line"]
        if caps.can_transfer:
            words.append("hook-flash transfer")
        if caps.can_dial_out:
            words.append("calls staff on a mobile line")
    if len(words) == 1 and not caps.fax_only:
        words.append("cannot put calls through")
    return ", ".join(words)


def contact_flags(contacts: Any) -> tuple[frozenset[str], frozenset[str]]:
    """The contacts' VIP and blocked numbers (E.164) as `decide()` takes them, for live calls
    and previews alike; empty (and logged) when the contacts cannot be read."""
    if contacts is None:
        return frozenset(), frozenset()
    try:
        return frozenset(contacts.vip_numbers()), frozenset(contacts.blocked_numbers())
    except Exception:
        log.exception("contacts' VIP and blocked numbers unavailable")
        return frozenset(), frozenset()


@dataclasses.dataclass(frozen=True, slots=True)
class PublicHoliday:
    date: dt.date
    name: str
    closes: bool


class RoutingService:
    """What the owner sees and switches about opening hours and call routing."""

    def __init__(
        self,
        settings: SettingsService,
        clock: Callable[[], dt.datetime],
        *,
        contacts: Callable[[], Any] | None = None,
        lines: Callable[[], Any] | None = None,
        calls: Callable[[], Any] | None = None,
    ) -> None:
        """`contacts`, `lines` and `calls` give the contacts service, the lines service and
        the call service when there are (the daemon builds the last two after this one)."""
        self._settings = settings
        self._clock = clock
        self._contacts = contacts or (lambda: None)
        self._lines = lines or (lambda: None)
        self._calls = calls or (lambda: None)
        self._lock = threading.Lock()
        self._routers = RouterCache()

    # -- reading --------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self._clock()

    def router(self, settings: Settings | None = None) -> Router:
        return self._routers.get(settings or self._settings.get())

    def status(self, now: dt.datetime | None = None) -> Status:
        return self.router().hours.status(now or self._clock())

    def upcoming(self, n: int = 6, now: dt.datetime | None = None) -> list[Change]:
        return self.router().hours.upcoming_changes(now or self._clock(), n)

    def local_now(self) -> dt.datetime:
        return self._clock().astimezone(self.router().hours.tz)

    def line_choices(self) -> list[LineChoice]:
        """The box's lines with what each can do now, exactly as a live call on it sees it
        (the call service's capabilities: a free GSM line to call staff on, network
        forwarding set and verified), then the kinds of line it does not have."""
        choices: list[LineChoice] = []
        lines, calls = self._lines(), self._calls()
        if lines is not None:
            try:
                found = list(lines.lines())
            except Exception:
                log.exception("the lines are unavailable for the preview")
                found = []
            for line in found:
                caps = calls.capabilities(line) if calls is not None else line.capabilities
                if caps is None:
                    continue  # not identified yet: it takes no calls
                label = f"{line.name}: {describe_line(caps)}"
                choices.append(LineChoice(line.name, label, caps, True))
        taken = {c.key for c in choices}
        choices += [
            LineChoice(key, label, caps, False)
            for key, (label, caps) in LINES.items()
            if key not in taken
        ]
        return choices

    def preview(self, at: str, caller: str = "", line: str | None = None) -> Plan:
        """What happens if `caller` calls at `at` on `line`: see `preview_on`."""
        return self.preview_on(at, caller, line)[0]

    def explain(self, at: str, caller: str = "", line: str | None = None) -> dict[str, Any]:
        """`preview_on` as plain data (the control socket, the CLI), with the line's words."""
        plan, choice = self.preview_on(at, caller, line)
        return {**plan_dict(plan), "line": choice.label, "line_key": choice.key}

    def preview_on(
        self, at: str, caller: str = "", line: str | None = None
    ) -> tuple[Plan, LineChoice]:
        """What happens if `caller` ("" or "withheld" for none) calls at `at` (local time) on
        `line`: one of the box's lines by name (default: the first), or a kind of line
        (`LINES`). Decided by the same `decide()` with the same inputs as a live call: the
        contacts' VIP and blocked numbers and the line's capabilities as they are now.

        Raises ValidationError naming `at`, `caller` or `line` when one cannot be read.
        """
        problems: list[FieldProblem] = []
        when = parse_local_datetime(at.strip())
        if when is None:
            problems.append(FieldProblem("at", at, "a date and time as YYYY-MM-DD HH:MM"))
        caller = caller.strip()
        if caller.lower() not in ("", "withheld") and not re.fullmatch(
            r"\+?[0-9 ()./-]{3,30}", caller
        ):
            problems.append(
                FieldProblem("caller", caller, "a phone number like +44 1632 960123, or withheld")
            )
        choices = {c.key: c for c in self.line_choices()}
        if line is None or not line.strip():
            line = next(iter(choices))
        if line not in choices:
            problems.append(FieldProblem("line", line, "one of " + ", ".join(choices)))
        if problems:
            raise SettingsError(problems, "preview")
        assert when is not None
        vip, blocked = contact_flags(self._contacts())
        from ..routing import preview

        routes = self.router()
        plan = preview(
            routes.settings,
            routes=routes,
            at=when,
            caller=caller,
            line=choices[line].caps,
            vip=vip,
            blocked=blocked,
        )
        return plan, choices[line]

    def public_holidays(self, year: int | None = None) -> list[PublicHoliday]:
        """The year's public holidays for the business's country and region."""
        s = self._settings.get()
        year = year or self.local_now().year
        if not s.business.country:
            return []
        return [
            PublicHoliday(day, name, closes)
            for day, name, closes in _public_holidays(
                s.business.country, s.business.subdivision, year, s.holidays
            )
        ]

    def upcoming_holidays(self, days: int = 400) -> list[PublicHoliday]:
        today = self.local_now().date()
        found = self.public_holidays(today.year) + self.public_holidays(today.year + 1)
        last = today + dt.timedelta(days=days)
        return [h for h in found if today <= h.date <= last]

    def holiday_names(self) -> list[str]:
        s = self._settings.get()
        year = self.local_now().year
        if not s.business.country:
            return []
        return holiday_names(s.business.country, s.business.subdivision, range(year, year + 2))

    # -- changing -------------------------------------------------------------------------------

    def _save(self, name: str, value: Any) -> list[tuple[str, Any, Any]]:
        with self._lock:
            data = settings_to_dict(self._settings.get())[name]
            data.update(value)
            return self._settings.save_section(name, data)

    def set_override(
        self,
        state: OverrideState,
        until: OverrideUntil = "next_change",
        until_time: str = "",
        note: str = "",
    ) -> Status:
        """Switch the override on (writing `since` = now) or off; returns the new status."""
        now = self._clock()
        tz = self.router().hours.tz
        until_time = until_time.strip().replace("T", " ")
        if state != "off" and until == "time":
            local = parse_local_datetime(until_time)
            # Compared as instants: in the repeated hour of a fall-back night "until 01:50"
            # at 01:35 (the second time round) means the 01:50 still to come.
            if local is not None and wall_to_instant_after(local, tz, now) <= now:
                raise SettingsError(
                    [FieldProblem("until_time", until_time, "a date and time in the future")],
                    "override",
                )
        value: dict[str, Any] = {
            "state": state,
            "until": until,
            "until_time": until_time if until == "time" and state != "off" else "",
            "since": now.astimezone(tz).isoformat(timespec="seconds") if state != "off" else "",
            "note": note.strip(),
        }
        self._save("override", value)
        return self.status(now)

    def override_end(self, state: str, now: dt.datetime | None = None) -> str:
        """What "`state` until the next scheduled change", switched on now, does, in words
        for its choice on the hours page: when it ends, and what it covers on the way when
        the hours are in that state already (it holds until they next switch to it)."""
        now = now or self._clock()
        hours = self.router().hours
        forced = state == "open"
        tz = hours.tz
        end = hours.next_change_to(now, forced)
        word = "Open" if forced else "Closed"
        if end is None:
            return f"{word} until switched back (the hours never {'open' if forced else 'close'})"
        if hours.scheduled_open(now) != forced:
            return f"{word} until {when(end, now, tz)}, the next scheduled change"
        other = hours.next_change_to(now, not forced)
        over = "the opening hours" if not forced else "the closed hours"
        start = f" from {when(other, now, tz)}" if other is not None else ""
        return f"{word} until {when(end, now, tz)}, through {over}{start}"

    def set_holiday(self, name: str, closes: bool) -> None:
        """Let one public holiday close the office or not (switching `observe` to chosen)."""
        s = self._settings.get()
        names = self.holiday_names()
        parts = [re.sub(r"\s*\([^)]*\)$", "", p.strip()) for p in name.split(";")]
        if not any(p in names for p in parts):
            raise SettingsError(
                [FieldProblem("holiday", name, "a public holiday of " + s.business.country)],
                "holidays",
            )
        if s.holidays.observe == "all":
            chosen = list(names)
        elif s.holidays.observe == "none":
            chosen = []
        else:
            chosen = list(s.holidays.chosen)
        folded = {c.casefold() for c in chosen}
        for part in parts:
            if closes and part.casefold() not in folded:
                chosen.append(part)
            if not closes:
                chosen = [c for c in chosen if c.casefold() != part.casefold()]
        self._save("holidays", {"observe": "chosen", "chosen": sorted(chosen)})

    def add_closures(self, closures: list[tuple[str, str, str]]) -> list[str]:
        """Add closures (first day, last day, reason); returns their ids. All or nothing."""
        s = self._settings.get()
        existing = [dataclasses.asdict(c) for c in s.holidays.closures]
        used = {c["id"] for c in existing}
        ids: list[str] = []
        for start, end, reason in closures:
            base = _SLUG.sub("-", reason.casefold()).strip("-")[:24] or "closure"
            if not base[0].isalnum():
                base = "closure"
            cid, n = base, 2
            while cid in used:
                cid, n = f"{base}-{n}", n + 1
            used.add(cid)
            ids.append(cid)
            existing.append({"id": cid, "start": start, "end": end, "reason": reason})
        self._save("holidays", {"closures": existing})
        return ids

    def remove_closure(self, closure_id: str) -> bool:
        s = self._settings.get()
        kept = [dataclasses.asdict(c) for c in s.holidays.closures if c.id != closure_id]
        if len(kept) == len(s.holidays.closures):
            return False
        self._save("holidays", {"closures": kept})
        return True

    def closures(self) -> list[Closure]:
        today = self.local_now().date()
        return sorted(
            self._settings.get().holidays.closures,
            key=lambda c: (
                (parse_date(c.end) or dt.date.max) < today,
                parse_date(c.start) or dt.date.min,
            ),
        )


def plan_dict(plan: Plan) -> dict[str, Any]:
    """A plan as plain data (control socket, CLI): the sentence and the numbered steps."""
    from ..routing import Menu

    steps: list[str] = []
    for i, step in enumerate(plan.steps, 1):
        text = step.describe()
        steps.append(f"{i}. {text[:1].upper()}{text[1:]}")
        if isinstance(step, Menu):
            for c in step.choices:
                then = ", then ".join(s.describe() for s in c.steps)
                steps.append(f"   key {c.digit} ({c.label}): {then}")
    return {
        "mode": plan.mode,
        "rule": plan.rule,
        "status": plan.status.text,
        "explanation": plan.explanation,
        "steps": steps,
    }
