"""Interactions: one history record per call, SMS or fax, and the shared inbox of open ones.

Every channel writes its records through `HistoryService`, so the timeline, the inbox, the
digest and the events out all read one shape. Records needing a person (a voicemail, a
missed call, an SMS or fax received) are open until someone marks them handled; the open
ones are indexed in the `inbox` database so counting them never scans the history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ..errors import FrontdeskError, StoreError
from ..events import Event, EventBus
from ..store import Store

log = logging.getLogger(__name__)

Channel = Literal["call", "sms", "fax"]
Direction = Literal["in", "out"]

# Outcomes per channel. A voicemail is a call whose outcome is "voicemail" (with media).
# "interrupted": the call was in progress when Frontdesk stopped (power cut, crash); its
# record is written at the next start from the call's in-progress marker.
CALL_OUTCOMES = (
    "answered",
    "forwarded",
    "voicemail",
    "missed",
    "blocked",
    "screened",
    "fax",
    "interrupted",
)
SMS_OUTCOMES = ("received", "queued", "sent", "delivered", "failed")
FAX_OUTCOMES = ("received", "partial", "queued", "sent", "failed")
OUTCOMES: dict[str, tuple[str, ...]] = {
    "call": CALL_OUTCOMES,
    "sms": SMS_OUTCOMES,
    "fax": FAX_OUTCOMES,
}

# What needs a person: these open an inbox item when recorded.
NEEDS_ATTENTION = {
    ("call", "voicemail"),
    ("call", "missed"),
    ("call", "interrupted"),
    ("sms", "received"),
    ("fax", "received"),
    ("fax", "partial"),
}


class HistoryError(FrontdeskError):
    """A record that does not fit the history's shape."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Interaction:
    """One call, SMS or fax. `number` is E.164 ("" when withheld); times are aware (UTC)."""

    channel: Channel
    direction: Direction
    outcome: str
    start: datetime
    number: str = ""
    name: str = ""  # caller-ID name, SMS alphanumeric sender, fax remote id
    line: str = ""  # which line it came in on / went out of
    end: datetime | None = None
    duration: float = 0.0  # seconds of talk, voicemail or transmission
    contact_id: int | None = None
    text: str = ""  # SMS body; a short note for other channels
    media: tuple[str, ...] = ()  # media references (voicemail audio, fax PDF)
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # plan, pages, ...
    handled_at: datetime | None = None
    handled_by: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if self.channel not in OUTCOMES:
            raise HistoryError(f"channel {self.channel!r} is not one of call, sms, fax")
        if self.outcome not in OUTCOMES[self.channel]:
            allowed = ", ".join(OUTCOMES[self.channel])
            raise HistoryError(f"{self.channel} outcome {self.outcome!r} is not one of {allowed}")
        if self.direction not in ("in", "out"):
            raise HistoryError(f"direction {self.direction!r} is not in or out")
        if self.start.tzinfo is None:
            raise HistoryError("start must be an aware datetime")

    @property
    def needs_attention(self) -> bool:
        return (self.channel, self.outcome) in NEEDS_ATTENTION and self.direction == "in"

    @property
    def open(self) -> bool:
        return self.needs_attention and self.handled_at is None

    def to_record(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "direction": self.direction,
            "outcome": self.outcome,
            "start": self.start.astimezone(UTC).isoformat(),
            "end": self.end.astimezone(UTC).isoformat() if self.end else None,
            "number": self.number,
            "name": self.name,
            "line": self.line,
            "duration": self.duration,
            "contact_id": self.contact_id,
            "text": self.text,
            "media": list(self.media),
            "details": dict(self.details),
            "handled_at": self.handled_at.astimezone(UTC).isoformat() if self.handled_at else None,
            "handled_by": self.handled_by,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Interaction:
        def when(value: Any) -> datetime | None:
            return datetime.fromisoformat(value) if isinstance(value, str) and value else None

        start = when(record.get("start"))
        if start is None:
            raise HistoryError(f"record {record.get('id', '?')} has no start time")
        return cls(
            channel=record.get("channel", "call"),
            direction=record.get("direction", "in"),
            outcome=record.get("outcome", ""),
            start=start,
            end=when(record.get("end")),
            number=record.get("number", "") or "",
            name=record.get("name", "") or "",
            line=record.get("line", "") or "",
            duration=float(record.get("duration", 0) or 0),
            contact_id=record.get("contact_id"),
            text=record.get("text", "") or "",
            media=tuple(record.get("media", ()) or ()),
            details=dict(record.get("details", {}) or {}),
            handled_at=when(record.get("handled_at")),
            handled_by=record.get("handled_by", "") or "",
            id=str(record.get("id", "")),
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class InteractionRecorded(Event):
    interaction: Interaction


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class InteractionUpdated(Event):
    interaction: Interaction


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class InboxChanged(Event):
    open_count: int


Filter = Callable[[Interaction], bool]

# Calls in progress: one marker each, written when the call starts and removed once its
# record is written, so a call the daemon did not live to finish is recorded at the next
# start (firmware_app/calls/runner.py `recover`).
IN_PROGRESS = ("calls", "in_progress")
# How many of the newest records are searched for a marker's call: its record, when written,
# was written just before the marker was to be removed, so it is among the last ones.
FIND_CALL_SCAN = 1000


class HistoryService:
    """Write and read interactions; keep the inbox index in step."""

    def __init__(
        self, store: Store, bus: EventBus, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock or (lambda: datetime.now(UTC))
        self._inbox = store.table("inbox", "open")
        self._lock = threading.Lock()

    # -- writing -----------------------------------------------------------------------------

    def record(self, interaction: Interaction) -> Interaction:
        """Store a new interaction durably; returns it with its id."""
        with self._lock:
            record_id = self._store.history.add(interaction.to_record(), interaction.start)
            stored = dataclasses.replace(interaction, id=record_id)
            if stored.open:
                self._inbox.insert(
                    {"record": record_id, "channel": stored.channel, "line": stored.line}
                )
        log.info(
            "%s %s %s recorded as %s", stored.channel, stored.direction, stored.outcome, record_id
        )
        self._bus.publish(InteractionRecorded(interaction=stored))
        if stored.open:
            self._bus.publish(InboxChanged(open_count=self.open_count()))
        return stored

    def update(self, record_id: str, **fields: Any) -> Interaction:
        """Change fields of a stored interaction (outcome, end, media, details...)."""
        with self._lock:
            current = self.get(record_id)
            if current is None:
                raise HistoryError(f"no history record {record_id}")
            changed = dataclasses.replace(current, **fields)
            self._store.history.update(record_id, changed.to_record())
            was_open, now_open = current.open, changed.open
            if was_open != now_open:
                self._set_open(changed, now_open)
        self._bus.publish(InteractionUpdated(interaction=changed))
        if was_open != now_open:
            self._bus.publish(InboxChanged(open_count=self.open_count()))
        return changed

    def _set_open(self, item: Interaction, is_open: bool) -> None:
        rows = self._inbox.search(lambda d: d.get("record") == item.id)
        if is_open and not rows:
            self._inbox.insert({"record": item.id, "channel": item.channel, "line": item.line})
        for row in rows if not is_open else ():
            self._inbox.remove(row.doc_id)

    def mark_handled(self, record_ids: Iterable[str], by: str) -> int:
        """Close inbox items; returns how many were open."""
        count = 0
        for record_id in record_ids:
            item = self.get(record_id)
            if item is not None and item.open:
                self.update(record_id, handled_at=self._clock(), handled_by=by)
                count += 1
        return count

    def media_file(self, ref: str) -> Path | None:
        """The file behind a media reference, or None when the reference is not one of the
        store's (nothing outside the data dir is ever named) or the file is gone."""
        try:
            path = self._store.media.path(ref)
        except StoreError:
            return None
        return path if path.is_file() else None

    def delete_media(self, record_id: str, by: str) -> Interaction:
        """Delete a record's recordings (a voicemail's audio); the record stays, marked handled.

        The record stops pointing at the files before they are deleted, so a cut in between
        leaves an orphan file, never a record pointing at nothing.
        """
        item = self.get(record_id)
        if item is None:
            raise HistoryError(f"no history record {record_id}")
        details = {**item.details, "audio_deleted": True}
        self.update(record_id, media=(), details=details)
        for ref in item.media:
            with contextlib.suppress(StoreError):
                self._store.media.delete(ref)
        self.mark_handled([record_id], by=by)
        changed = self.get(record_id)
        assert changed is not None
        return changed

    def reopen(self, record_id: str) -> None:
        self.update(record_id, handled_at=None, handled_by="")

    # -- calls in progress -------------------------------------------------------------------

    def begin_call(self, marker: Mapping[str, Any]) -> int:
        """Durably note a call in progress (its `key` names the record it will have)."""
        return self._store.table(*IN_PROGRESS).insert(marker)

    def note_call(self, marker_id: int, **fields: Any) -> None:
        """Add to a call's marker what a restart would need (answered, a recording's name)."""
        self._store.table(*IN_PROGRESS).update(marker_id, fields)

    def end_call(self, marker_id: int) -> None:
        """The call's record is written: forget its marker (idempotent)."""
        self._store.table(*IN_PROGRESS).remove(marker_id)

    def calls_in_progress(self) -> list[dict[str, Any]]:
        """Markers left, oldest first, each with its `marker_id`."""
        rows = self._store.table(*IN_PROGRESS).all()
        return [{**row, "marker_id": row.doc_id} for row in rows]

    def find_call(self, key: str) -> Interaction | None:
        """The call record written for a marker's `key` (details.call_key), if any."""
        if not key:
            return None
        found = self.newest(
            1,
            where=lambda i: i.channel == "call" and i.details.get("call_key") == key,
            max_scan=FIND_CALL_SCAN,
        )
        return found[0] if found else None

    # -- reading -----------------------------------------------------------------------------

    def get(self, record_id: str) -> Interaction | None:
        record = self._store.history.get(record_id)
        return None if record is None else Interaction.from_record(record)

    def newest(
        self,
        n: int = 50,
        *,
        before: str | None = None,
        where: Filter | None = None,
        max_scan: int = 5000,
    ) -> list[Interaction]:
        """Newest first; `where` filters; stops after `max_scan` records to stay bounded."""
        out: list[Interaction] = []
        scanned = 0
        cursor = before
        while len(out) < n and scanned < max_scan:
            page = self._store.history.newest(min(500, max_scan - scanned), before=cursor)
            if not page:
                break
            scanned += len(page)
            cursor = page[-1]["id"]
            for record in page:
                try:
                    item = Interaction.from_record(record)
                except (HistoryError, ValueError, TypeError) as exc:
                    log.warning("skipping unreadable history record %s: %s", record.get("id"), exc)
                    continue
                if where is None or where(item):
                    out.append(item)
                    if len(out) >= n:
                        break
        return out

    def open_items(
        self, n: int = 100, channel: str | None = None, line: str | None = None
    ) -> list[Interaction]:
        """The shared inbox: open items newest first."""
        rows = self._inbox.newest(
            n,
            where=lambda d: (
                (channel is None or d.get("channel") == channel)
                and (line is None or d.get("line") == line)
            ),
        )
        items = [self.get(r["record"]) for r in rows]
        return [i for i in items if i is not None and i.open]

    def open_count(self) -> int:
        return len(self._inbox)

    def for_number(self, number: str, n: int = 100) -> list[Interaction]:
        """Everything with one number, newest first (a timeline of a bare number)."""
        return self.newest(n, where=lambda i: i.number == number)
