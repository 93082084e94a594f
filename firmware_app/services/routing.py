"""Business hours and call routing as the pages, the API and the CLI see them.

Status, upcoming changes and plan previews come from the pure routing layer, with one
`Router` kept per settings version; switching the override writes `override.since` (now,
with its UTC offset). Changes go through the settings service: validated whole, or nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
from collections.abc import Callable
from typing import Any, Literal

from ..errors import FieldProblem, SettingsError
from ..routing import Change, LineCapabilities, Plan, Router, Status, holiday_names
from ..routing import public_holidays as _public_holidays
from ..routing import router as _router
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


@dataclasses.dataclass(frozen=True, slots=True)
class PublicHoliday:
    date: dt.date
    name: str
    closes: bool


class RoutingService:
    """What the owner sees and switches about opening hours and call routing."""

    def __init__(self, settings: SettingsService, clock: Callable[[], dt.datetime]) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()

    # -- reading --------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self._clock()

    def router(self, settings: Settings | None = None) -> Router:
        return _router(settings or self._settings.get())

    def status(self, now: dt.datetime | None = None) -> Status:
        return self.router().hours.status(now or self._clock())

    def upcoming(self, n: int = 6, now: dt.datetime | None = None) -> list[Change]:
        return self.router().hours.upcoming_changes(now or self._clock(), n)

    def local_now(self) -> dt.datetime:
        return self._clock().astimezone(self.router().hours.tz)

    def preview(self, at: str, caller: str = "", line: str = "analog") -> Plan:
        """What happens if `caller` ("" or "withheld" for none) calls at `at` (local time).

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
        if line not in LINES:
            problems.append(FieldProblem("line", line, "one of " + ", ".join(LINES)))
        if problems:
            raise SettingsError(problems, "preview")
        assert when is not None
        router = self.router()
        from ..routing import preview

        return preview(router.settings, at=when, caller=caller, line=LINES[line][1])

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
            if local is not None and local <= now.astimezone(tz).replace(tzinfo=None):
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
