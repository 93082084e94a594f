"""Interactions: one history record per call, SMS or fax, and the shared inbox of open ones.

Every channel writes its records through `HistoryService`, so the timeline, the inbox, the
digest and the events out all read one shape. Records needing a person (a voicemail, a
missed call, an SMS or fax received) are open until someone marks them handled; the open
ones are kept in the `inbox` database so counting them never scans the history.

Every write also goes to the history index (history_index.py), which the pages query:
`query` (clauses of index keys, newest or oldest first, with cursors and a total), `since`
(records started at or after a time, oldest first). While the index is being built after an
upgrade, queries search the newest FALLBACK_SCAN records and say so (`Page.complete`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal

from ..errors import FrontdeskError, StoreError
from ..events import Event, EventBus
from ..store import Store
from .history_index import HistoryIndex, decode, encode, hour_key, record_keys

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


def needs_attention(channel: str, outcome: str, direction: str) -> bool:
    return (channel, outcome) in NEEDS_ATTENTION and direction == "in"


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
        return needs_attention(self.channel, self.outcome, self.direction)

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
Clause = Sequence[str]  # index keys; a record matches a clause when it has any of them

# Index keys (history_index.py): build query clauses with these.
OPEN = "open"
HAS_MEDIA = "m"


def channel_key(channel: str) -> str:
    return f"ch:{channel}"


def outcome_key(channel: str, outcome: str) -> str:
    return f"o:{channel}:{outcome}"


def number_key(number: str) -> str:
    return f"n:{number}"


def contact_key(contact_id: int) -> str:
    return f"c:{contact_id}"


def line_key(line: str) -> str:
    return f"l:{line}"


def day_keys(day: date, tz: tzinfo) -> tuple[list[str], datetime, datetime]:
    """The hour keys covering a local day in `tz`, and the day's start and end (UTC): a
    query with these keys needs `where` only when the zone is not whole hours from UTC."""
    start = datetime.combine(day, datetime.min.time(), tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
    keys, at = [], start.replace(minute=0, second=0, microsecond=0)
    while at < end:
        keys.append(hour_key(at))
        at += timedelta(hours=1)
    return keys, start, end


ALL = [channel_key(c) for c in OUTCOMES]
FALLBACK_SCAN = 5000  # records a query searches while the index is being built
EMAILS_KEPT = 20  # emails noted on one record (details.emails)
VERIFY_MAX = 1000  # candidates checked one by one for an exact total when `where` is given


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    """One page of a query: the items, how many match in all, and where the next page is."""

    items: list[Interaction]
    total: int
    exact: bool = True  # False: `total` may count a few that `where` would leave out
    next_before: str | None = None  # the next (older) page: pass as `before`
    next_after: str | None = None  # the next (newer) page of an oldest-first query
    complete: bool = True  # False: the index is being built; only the newest records searched
    searched: int = 0  # how many records were searched when not complete


# Calls in progress: one marker each, written when the call starts and removed once its
# record is written, so a call the daemon did not live to finish is recorded at the next
# start (firmware_app/calls/runner.py `recover`).
IN_PROGRESS = ("calls", "in_progress")
FIND_PAGE = 200  # records read a page at a time when looking for one by its details
ALL_OF = 1 << 40  # "no limit" for index selections that must be whole


class _Tally:
    """A group being counted (HistoryService.groups)."""

    __slots__ = ("count", "last", "name", "open")

    def __init__(self, last: Interaction) -> None:
        self.last = last
        self.name = last.name
        self.count = 1
        self.open = int(last.open)

    def add(self, item: Interaction) -> None:
        self.count += 1
        self.open += int(item.open)
        self.name = self.name or item.name

    def group(self, key: str) -> Group:
        return Group(key, self.last, self.name, self.count, self.open)


@dataclasses.dataclass(frozen=True, slots=True)
class Group:
    """Records sharing a key (a text conversation): the newest, the newest name, counts."""

    key: str
    last: Interaction
    name: str
    count: int
    open: int


# What selects the group of a record: extra clauses, and a check for what they cannot tell.
Members = Callable[[Interaction], "tuple[list[Clause], Filter | None] | None"]


def _group(
    items: Iterable[Interaction], n: int, key_of: Callable[[Interaction], str]
) -> list[Group]:
    """Group records already read, newest first (the fallback while the index is built)."""
    found: dict[str, _Tally] = {}
    for item in items:
        key = key_of(item)
        if key in found:
            found[key].add(item)
        else:
            found[key] = _Tally(item)
    return [t.group(k) for k, t in list(found.items())[:n]]


class HistoryService:
    """Write and read interactions; keep the inbox index in step."""

    def __init__(
        self, store: Store, bus: EventBus, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock or (lambda: datetime.now(UTC))
        self._inbox = store.table("inbox", "open")
        self._lock = threading.RLock()
        self.index = HistoryIndex(store, needs_attention, self._lock)
        self._index_opened = False
        self._index_open_lock = threading.Lock()
        self._index_stop = threading.Event()
        self._index_thread: threading.Thread | None = None
        self._index_done = threading.Event()  # clear while the index's thread has work
        self._index_done.set()
        self._index_wake = threading.Event()  # set when it is done, or stopping
        self._index_wake.set()

    # -- the index ---------------------------------------------------------------------------

    def start_index(self, background: bool = False, *, hold: bool = False) -> None:
        """Open the index (fast); months it lacks are read from the store at once, or on a
        thread when `background` (the daemon: start-up never waits for a rebuild). With
        `hold` that thread starts only at `release_index` (the daemon's, once it has told
        systemd it is ready: the rebuild does not compete with the start for the CPU)."""
        with self._index_open_lock:
            if self._index_opened:
                return
            self._index_opened = True
            try:
                months = self.index.open()
            except OSError as exc:
                log.error("history index cannot be opened: %s; searching by scan", exc)
                return
            if not months:
                return
            if background:
                self._index_done.clear()
                self._index_wake.clear()
                self._index_thread = threading.Thread(
                    target=self._catch_up, args=(months,), name="history-index", daemon=True
                )
                if not hold:
                    self._index_thread.start()
                return
        self._catch_up(months)

    def release_index(self) -> None:
        """Start the index's thread held back by `start_index(hold=True)`."""
        with self._index_open_lock:
            thread = self._index_thread
            if thread is not None and thread.ident is None and not self._index_stop.is_set():
                thread.start()

    def _catch_up(self, months: list[str]) -> None:
        try:
            self.index.catch_up(months, self._index_stop)
        except Exception:
            log.exception("history index: catching up with the store failed; searching by scan")
        finally:
            self._index_done.set()
            self._index_wake.set()

    def indexing(self) -> bool:
        """The index is being caught up with the store on its thread (the first start after
        an upgrade, a start after a power cut): queries search the newest records only and
        `all_of` reads the whole store. Work that can wait for it checks this first."""
        return not self._index_done.is_set() and not self.index.ready

    def wait_indexed(self, timeout: float | None = None) -> bool:
        """Wait until the index's thread is done (True), or `timeout` passes or the daemon
        starts stopping (False while it is still indexing: see `stopping`)."""
        self._index_wake.wait(timeout)
        return not self.indexing()

    @property
    def stopping(self) -> bool:
        """`stop_indexing` was called: the daemon is stopping."""
        return self._index_stop.is_set()

    def stop_indexing(self) -> None:
        """The daemon is stopping: the index's thread ends after its current batch of
        records (what it did is kept; the rest is read at the next start), so the snapshot
        at `close` is written within the stop's deadline. Never blocks."""
        with self._index_open_lock:
            self._index_stop.set()
            self._index_wake.set()
            thread = self._index_thread
            if thread is None or thread.ident is None:  # never started
                self._index_done.set()

    def _ensure_index(self) -> None:
        if not self._index_opened:
            self.start_index()

    def _indexed(self, record_id: str, record: Mapping[str, Any]) -> None:
        try:
            self.index.put(record_id, record)
        except (OSError, ValueError) as exc:  # the index is derived: never fail a write for it
            log.warning("history index: %s not indexed: %s", record_id, exc)

    def close(self) -> None:
        """Stop a rebuild in progress and write the index's snapshot (daemon shutdown)."""
        self.stop_indexing()
        thread = self._index_thread
        if thread is not None and thread.ident is not None:
            thread.join(30)
        self.index.close()

    # -- writing -----------------------------------------------------------------------------

    def record(self, interaction: Interaction) -> Interaction:
        """Store a new interaction durably; returns it with its id."""
        self._ensure_index()
        with self._lock:
            body = interaction.to_record()
            record_id = self._store.history.add(body, interaction.start)
            stored = dataclasses.replace(interaction, id=record_id)
            if stored.open:
                self._inbox.insert(
                    {"record": record_id, "channel": stored.channel, "line": stored.line}
                )
            self._indexed(record_id, body)
        log.info(
            "%s %s %s recorded as %s", stored.channel, stored.direction, stored.outcome, record_id
        )
        self._bus.publish(InteractionRecorded(interaction=stored))
        if stored.open:
            self._bus.publish(InboxChanged(open_count=self.open_count()))
        return stored

    def update(self, record_id: str, **fields: Any) -> Interaction:
        """Change fields of a stored interaction (outcome, end, media, details...)."""
        self._ensure_index()
        with self._lock:
            try:
                raw = self._store.history.get(record_id)
            except StoreError:
                raw = None
            if raw is None:
                raise HistoryError(f"no history record {record_id}")
            current = Interaction.from_record(raw)
            changed = dataclasses.replace(current, **fields)
            body = changed.to_record()
            self._store.history.update(record_id, body)
            was_open, now_open = current.open, changed.open
            if was_open != now_open:
                self._set_open(changed, now_open)
            self._indexed(record_id, body)
        self._bus.publish(InteractionUpdated(interaction=changed))
        if was_open != now_open:
            self._bus.publish(InboxChanged(open_count=self.open_count()))
        return changed

    def note_email(self, record_id: str, note: Mapping[str, Any]) -> None:
        """Keep what an email about a record was (`details.emails`, one entry per Message-ID,
        the newest EMAILS_KEPT), so its timeline shows it after the outbox lets it go. No
        event: the record itself did not change."""
        self._ensure_index()
        with self._lock:
            try:
                raw = self._store.history.get(record_id)
            except StoreError:
                raw = None
            if raw is None:
                log.info("email note for %s: no such record", record_id)
                return
            details = dict(raw.get("details") or {})
            key = note.get("message_id")
            emails = [dict(e) for e in details.get("emails", ()) if isinstance(e, Mapping)]
            old = next((e for e in emails if e.get("message_id") == key), {})
            emails = [e for e in emails if e is not old]
            emails.append({**old, **note})
            details["emails"] = emails[-EMAILS_KEPT:]
            self._store.history.update(record_id, {"details": details})
            body = {k: v for k, v in raw.items() if k != "id"}
            body["details"] = details
            self._indexed(record_id, body)

    def _set_open(self, item: Interaction, is_open: bool) -> None:
        rows = self._inbox.search(lambda d: d.get("record") == item.id)
        if is_open and not rows:
            self._inbox.insert({"record": item.id, "channel": item.channel, "line": item.line})
        for row in rows if not is_open else ():
            self._inbox.remove(row.doc_id)

    def mark_handled(self, record_ids: Iterable[str], by: str) -> int:
        """Mark records handled, with who and when: open inbox items close; any other record
        (an answered call, a text sent, a fax out) can be marked handled too. Returns how
        many were not handled before."""
        count = 0
        for record_id in record_ids:
            item = self.get(record_id)
            if item is not None and item.handled_at is None:
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

    def find_call(self, key: str, start: datetime | None = None) -> Interaction | None:
        """The call record written for a marker's `key` (details.call_key), if any; `start`
        is the marker's start, which the record keeps."""
        return self.find_detail("call", "call_key", key, start)

    def find_detail(
        self, channel: str, field: str, value: str, start: datetime | None = None
    ) -> Interaction | None:
        """The record of `channel` whose `details[field]` is `value` (a call's or a fax's
        marker key, a text's fingerprint), looked for in the whole history: among records
        started at or after `start` when it is known (a record keeps its marker's start),
        else among every record of the channel, newest first."""
        if not value:
            return None

        def match(item: Interaction) -> bool:
            return item.channel == channel and item.details.get(field) == value

        if start is not None:
            after: str | None = None
            while True:
                page = self.since(start, FIND_PAGE, after=after)
                found = next((i for i in page.items if match(i)), None)
                if found is not None or page.next_after is None:
                    return found
                after = page.next_after
        page = self.query([[channel_key(channel)]], 1, where=match, count=False)
        return page.items[0] if page.items else None

    def between(self, start: datetime, end: datetime) -> list[Interaction]:
        """Every record started in [start, end), newest first (the daily summary's day),
        from the index however many there are. While the index is built: read from the
        store, newest first, until a whole page of records started before `start` (records
        are written about in the order they happen)."""
        self._ensure_index()
        out: list[Interaction] = []
        if not self.index.ready:
            older = 0
            for rec in self._store.history.scan():
                item = self._readable(rec)
                if item is None:
                    continue
                older = older + 1 if item.start < start else 0
                if older >= FIND_PAGE:
                    break
                if start <= item.start < end:
                    out.append(item)
            return sorted(out, key=lambda i: (i.start, encode(i.id)), reverse=True)
        after: str | None = None
        while True:
            page = self.since(start, FIND_PAGE, after=after)
            out.extend(i for i in page.items if i.start < end)
            if page.next_after is None:
                break
            after = page.next_after
        out.sort(key=lambda i: (i.start, encode(i.id)), reverse=True)
        return out

    def all_of(self, clauses: Sequence[Clause]) -> list[Interaction]:
        """Every record with a key of every clause, newest first (queued texts and faxes:
        lists that are short by nature but must never be cut). Without a ready index the
        whole store is read for them, a month at a time: never a partial list (the services
        that ask regularly wait for the index instead while it is built: `indexing`)."""
        self._ensure_index()
        if self.index.ready:
            return self.query(clauses, ALL_OF, count=False).items
        wanted = [set(c) for c in clauses]
        out = []
        for rec in self._store.history.scan():
            if all(record_keys(rec, needs_attention) & w for w in wanted):
                item = self._readable(rec)
                if item is not None:
                    out.append(item)
        return out

    @staticmethod
    def _readable(rec: Mapping[str, Any]) -> Interaction | None:
        try:
            return Interaction.from_record(rec)
        except (HistoryError, ValueError, TypeError):
            return None

    def groups(
        self,
        clauses: Sequence[Clause],
        n: int,
        key_of: Callable[[Interaction], str],
        members: Members,
    ) -> list[Group]:
        """The `n` groups (records sharing `key_of`) whose newest record is newest, among the
        records with a key of every clause; newest first, each with its newest record, the
        newest name in it, how many records it has and how many are open, over the whole
        history. `members(item)` gives the clauses that select the group of `item` and a
        check for what the keys cannot tell (or None: the keys are exact); a group it gives
        None for is counted record by record, reading every record the clauses match."""
        self._ensure_index()
        if not self.index.ready:
            return _group(
                self._scan(clauses, FALLBACK_SCAN, None, None, False, None).items, n, key_of
            )
        codes, _ = self.index.select(clauses, ALL_OF, count=False)
        seen: set[int] = set()
        found: dict[str, _Tally] = {}
        by_record: set[str] = set()
        for code in codes:
            if code in seen:
                continue
            item = self._load(code)
            if item is None:
                continue
            key = key_of(item)
            tally = found.get(key)
            if tally is not None:  # a group counted record by record
                tally.add(item)
                continue
            if len(found) >= n:
                if not by_record:
                    break
                continue
            tally = found[key] = _Tally(item)
            selection = members(item)
            if selection is None:
                by_record.add(key)
                continue
            extra, check = selection
            member_codes, _ = self.index.select([*clauses, *extra], ALL_OF, count=False)
            if check is None:
                seen.update(member_codes)
                tally.count = len(member_codes)
                tally.open = self.index.select([*clauses, *extra, [OPEN]], 0)[1]
                for mc in member_codes:  # the newest name (most often the newest record's)
                    if tally.name:
                        break
                    if mc != code and (other := self._load(mc)) is not None:
                        tally.name = other.name
                continue
            for mc in member_codes:
                if mc == code:
                    seen.add(mc)
                    continue
                other = self._load(mc)
                if other is not None and check(other):
                    seen.add(mc)
                    tally.add(other)
        return [t.group(k) for k, t in found.items()]

    # -- reading -----------------------------------------------------------------------------

    def get(self, record_id: str) -> Interaction | None:
        """One record: from the index's copy of its month when it has it (one read, never
        the whole month), else from the store."""
        record = self.index.get(record_id) if self.index.state == "open" else None
        if record is not None:
            try:
                return Interaction.from_record({**record, "id": record_id})
            except (HistoryError, ValueError, TypeError):
                pass
        record = self._store.history.get(record_id)
        return None if record is None else Interaction.from_record(record)

    def _load(self, code: int) -> Interaction | None:
        try:
            return self.get(decode(code))
        except (HistoryError, StoreError, ValueError, TypeError) as exc:
            log.warning("skipping unreadable history record %s: %s", decode(code), exc)
            return None

    @staticmethod
    def _code(record_id: str | None) -> int | None:
        if not record_id:
            return None
        try:
            return encode(record_id)
        except ValueError:
            raise HistoryError(f"{record_id!r} is not a history record id") from None

    def query(
        self,
        clauses: Sequence[Clause],
        n: int = 50,
        *,
        before: str | None = None,
        after: str | None = None,
        oldest_first: bool = False,
        where: Filter | None = None,
        count: bool = True,
    ) -> Page:
        """Records with a key of every clause, newest first (or oldest first), strictly
        between the cursors `after` and `before`; `where` checks what the keys cannot say
        exactly (a local day in a zone with half hours). `total` counts every match (with
        `where`, by checking up to VERIFY_MAX of them; not at all when `count` is False)."""
        self._ensure_index()
        if not self.index.ready:
            return self._scan(clauses, n, before, after, oldest_first, where)
        b, a = self._code(before), self._code(after)
        items: list[Interaction] = []
        total: int | None = None
        while True:
            want = n + 1 - len(items)
            codes, matched = self.index.select(
                clauses, want, before=b, after=a, oldest_first=oldest_first, count=total is None
            )
            if total is None:
                total = matched
            for code in codes:
                item = self._load(code)
                if item is not None and (where is None or where(item)):
                    items.append(item)
            if len(codes) < want or len(items) > n:
                break
            if oldest_first:
                a = codes[-1]
            else:
                b = codes[-1]
        exact = True
        if where is not None and total and not count:
            exact = False
        elif where is not None and total:
            if total <= VERIFY_MAX:
                codes, _ = self.index.select(clauses, total, count=False)
                total = sum(1 for c in codes if (i := self._load(c)) is not None and where(i))
            else:
                exact = False
        more = len(items) > n
        items = items[:n]
        last = items[-1].id if more and items else None
        return Page(
            items,
            total or 0,
            exact,
            next_before=None if oldest_first else last,
            next_after=last if oldest_first else None,
        )

    def since(self, at: datetime, n: int = 100, after: str | None = None) -> Page:
        """Records started at or after `at`, oldest first (by id: month, then order of
        writing), after the cursor `after`; `total` counts all of them."""
        self._ensure_index()
        if not self.index.ready:
            return self._scan([ALL], n, None, after, True, lambda i: i.start >= at)
        a = self._code(after)
        first = self.index.count(hour_key(at))
        codes, total, head = self.index.since(at, n + 1 + first, after=a)
        early = set()
        for code in head:  # the first hour is partly before `at`
            item = self._load(code)
            if item is None or item.start < at:
                early.add(code)
        items = [i for c in codes if c not in early and (i := self._load(c)) is not None]
        more = len(items) > n
        items = items[:n]
        return Page(
            items,
            total - len(early),
            next_after=items[-1].id if more and items else None,
        )

    def _scan(
        self,
        clauses: Sequence[Clause],
        n: int,
        before: str | None,
        after: str | None,
        oldest_first: bool,
        where: Filter | None,
    ) -> Page:
        """A query answered by reading the newest FALLBACK_SCAN records (index not ready)."""
        wanted = [set(c) for c in clauses]
        low = self._code(after)
        found: list[Interaction] = []
        scanned = 0
        for rec in self._store.history.scan(before):  # older months are not kept in memory
            if scanned >= FALLBACK_SCAN:
                break
            scanned += 1
            if low is not None and encode(str(rec["id"])) <= low:
                continue
            if not all(record_keys(rec, needs_attention) & w for w in wanted):
                continue
            try:
                item = Interaction.from_record(rec)
            except (HistoryError, ValueError, TypeError):
                continue
            if where is None or where(item):
                found.append(item)
        whole = scanned < FALLBACK_SCAN
        if oldest_first:
            found.reverse()
        items, more = found[:n], len(found) > n
        last = items[-1].id if more and items else None
        return Page(
            items,
            len(found),
            whole,
            next_before=None if oldest_first else last,
            next_after=last if oldest_first else None,
            complete=whole,
            searched=scanned,
        )

    def newest(
        self,
        n: int = 50,
        *,
        before: str | None = None,
        where: Filter | None = None,
        max_scan: int = 5000,
    ) -> list[Interaction]:
        """Newest first; `where` filters; stops after `max_scan` records to stay bounded
        (a scan of the store; `query` reaches the whole history through the index)."""
        out: list[Interaction] = []
        for scanned, record in enumerate(self._store.history.scan(before)):
            if scanned >= max_scan or len(out) >= n:
                break
            try:
                item = Interaction.from_record(record)
            except (HistoryError, ValueError, TypeError) as exc:
                log.warning("skipping unreadable history record %s: %s", record.get("id"), exc)
                continue
            if where is None or where(item):
                out.append(item)
        return out

    def open_items(
        self, n: int = 100, channel: str | None = None, line: str | None = None
    ) -> list[Interaction]:
        """The shared inbox: open items newest first (`inbox` has paging and a total)."""
        return self.inbox(n, channel=channel, line=line).items

    def inbox(
        self,
        n: int = 100,
        *,
        channel: str | None = None,
        line: str | None = None,
        before: str | None = None,
    ) -> Page:
        """Open items newest first. `channel`: call, sms, fax, or "voicemail" (calls that
        left a message) and "missed" (the other open calls)."""
        clauses: list[Clause] = [[OPEN]]
        if channel == "voicemail":
            clauses.append([outcome_key("call", "voicemail")])
        elif channel == "missed":
            clauses.append([outcome_key("call", "missed"), outcome_key("call", "interrupted")])
        elif channel:
            clauses.append([channel_key(channel)])
        if line:
            clauses.append([line_key(line)])
        return self.query(clauses, n, before=before)

    def open_count(self) -> int:
        return len(self._inbox)

    def for_number(self, number: str, n: int = 100) -> list[Interaction]:
        """Everything with one number, newest first (a timeline of a bare number)."""
        return self.query([[number_key(number)]], n).items
