"""Counters per day and hour, kept in step with the history as it is written.

The dashboard reads these instead of scanning the history: one small write per interaction
(on `InteractionRecorded`), a rebuild from the history when they are missing.
Days and hours are the business's local ones. Never blocks a channel: handlers only count.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..events import EventBus
from ..settings.model import Settings
from ..store import Store
from .history import Interaction, InteractionRecorded, InteractionUpdated

log = logging.getLogger(__name__)

DATABASE = "stats"
KEEP_DAYS = 400
HOURLY = ("answered", "missed", "voicemail")
REMEMBER = 2000  # recent records whose counted category an update may still change


def category(item: Interaction) -> str:
    """The counter an interaction adds to: `call:answered`, `sms:in`, `fax:out`, ..."""
    if item.channel == "call":
        if item.direction == "out":
            return "call:out"
        return "call:" + {
            "answered": "answered",
            "forwarded": "answered",
            "voicemail": "voicemail",
            "missed": "missed",
            "screened": "missed",
            "interrupted": "missed",  # in progress when Frontdesk stopped
            "blocked": "blocked",
            "fax": "fax",
        }.get(item.outcome, item.outcome)
    if item.channel == "sms" and item.direction == "out" and item.outcome == "failed":
        return "sms:failed"
    return f"{item.channel}:{item.direction}"


@dataclass(frozen=True, slots=True)
class Day:
    """One local day's counters."""

    day: date
    counts: dict[str, int] = field(default_factory=dict)
    hours: dict[str, list[int]] = field(default_factory=dict)

    def get(self, key: str) -> int:
        return self.counts.get(key, 0)


class StatsService:
    """Daily counters (per channel and outcome) and hourly call counters, incremental."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._days = store.table(DATABASE, "days")
        self._ids: dict[str, int] | None = None  # "YYYY-MM-DD" -> doc id
        self._counted: OrderedDict[str, tuple[str, str, int]] = OrderedDict()
        self._lock = threading.RLock()

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self._settings().business.timezone or "UTC")
        except (KeyError, ValueError):
            return ZoneInfo("UTC")

    def subscribe(self, bus: EventBus) -> Callable[[], None]:
        a = bus.subscribe(InteractionRecorded, lambda e: self.add(e.interaction))
        b = bus.subscribe(InteractionUpdated, lambda e: self.changed(e.interaction))

        def unsubscribe() -> None:
            a()
            b()

        return unsubscribe

    # -- writing -----------------------------------------------------------------------------

    def _doc_ids(self) -> dict[str, int]:
        if self._ids is None:
            self._ids = {str(d.get("day")): d.doc_id for d in self._days.all()}
        return self._ids

    def _bump(self, day: str, key: str, hour: int, delta: int) -> None:
        ids = self._doc_ids()
        doc_id = ids.get(day)
        doc = self._days.get(doc_id) if doc_id is not None else None
        counts: dict[str, int] = dict(doc.get("c", {})) if doc else {}
        hours: dict[str, list[int]] = dict(doc.get("h", {})) if doc else {}
        counts[key] = max(0, counts.get(key, 0) + delta)
        kind = key.partition(":")[2]
        if key.startswith("call:") and kind in HOURLY:
            row = list(hours.get(kind, [0] * 24))
            row[hour] = max(0, row[hour] + delta)
            hours[kind] = row
        body = {"day": day, "c": counts, "h": hours}
        if doc_id is None:
            ids[day] = self._days.insert(body)
            self._prune(ids)
        else:
            self._days.put(doc_id, body)

    def _prune(self, ids: dict[str, int]) -> None:
        if len(ids) <= KEEP_DAYS:
            return
        for day in sorted(ids)[: len(ids) - KEEP_DAYS]:
            self._days.remove(ids.pop(day))

    def add(self, item: Interaction) -> None:
        """Count one new interaction (the `InteractionRecorded` handler)."""
        local = item.start.astimezone(self.zone())
        key = category(item)
        day = local.date().isoformat()
        with self._lock:
            self._bump(day, key, local.hour, 1)
            if item.id:
                self._counted[item.id] = (day, key, local.hour)
                while len(self._counted) > REMEMBER:
                    self._counted.popitem(last=False)

    def changed(self, item: Interaction) -> None:
        """A call's outcome may change after it was recorded (answered, then voicemail)."""
        with self._lock:
            before = self._counted.get(item.id)
            key = category(item)
            if before is None or before[1] == key:
                return
            day, old, hour = before
            self._bump(day, old, hour, -1)
            self._bump(day, key, hour, 1)
            self._counted[item.id] = (day, key, hour)

    def rebuild(self, records: Iterable[Interaction]) -> int:
        """Count `records` from scratch (after an upgrade, or when the counters were lost)."""
        zone = self.zone()
        days: dict[str, dict[str, Any]] = {}
        n = 0
        for item in records:
            local = item.start.astimezone(zone)
            doc = days.setdefault(local.date().isoformat(), {"c": {}, "h": {}})
            key = category(item)
            doc["c"][key] = doc["c"].get(key, 0) + 1
            kind = key.partition(":")[2]
            if key.startswith("call:") and kind in HOURLY:
                doc["h"].setdefault(kind, [0] * 24)[local.hour] += 1
            n += 1
        with self._lock:
            for doc in self._days.all():
                self._days.remove(doc.doc_id)
            self._ids = {}
            for day in sorted(days)[-KEEP_DAYS:]:
                self._ids[day] = self._days.insert({"day": day, **days[day]})
        return n

    # -- reading -----------------------------------------------------------------------------

    def today(self) -> date:
        return self._clock().astimezone(self.zone()).date()

    def day(self, when: date) -> Day:
        with self._lock:
            doc_id = self._doc_ids().get(when.isoformat())
            doc = self._days.get(doc_id) if doc_id is not None else None
        if doc is None:
            return Day(when)
        return Day(when, dict(doc.get("c", {})), {k: list(v) for k, v in doc.get("h", {}).items()})

    def days(self, n: int = 30, until: date | None = None) -> list[Day]:
        """The last `n` local days up to `until` (default today), oldest first."""
        last = until or self.today()
        return [self.day(last - timedelta(days=i)) for i in range(n - 1, -1, -1)]

    def by_hour(self, days: list[Day]) -> dict[str, list[int]]:
        """Calls per hour of the day summed over `days`: answered, missed, voicemail."""
        out = {k: [0] * 24 for k in HOURLY}
        for d in days:
            for kind, row in d.hours.items():
                if kind in out:
                    out[kind] = [a + b for a, b in zip(out[kind], row, strict=False)]
        return out


__all__ = ["Day", "StatsService", "category"]
