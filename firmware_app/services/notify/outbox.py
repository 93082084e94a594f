"""The outbox: every email Frontdesk owes someone, durable from the moment it is queued.

States: queued -> sending -> sent | queued (retry later) | failed (the server said no);
failed -> queued on retry(). Each transition is one journalled, fsync'd store write, made
under a lock and only from the expected state. A message left `sending` by a crash or power
cut goes back to `queued` on open and is sent again with its same Message-ID.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ...store import Collection

log = logging.getLogger(__name__)

State = Literal["queued", "sending", "sent", "failed"]
STATES: tuple[State, ...] = ("queued", "sending", "sent", "failed")

BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)


def backoff(attempts: int) -> timedelta:
    """Wait after the n-th failed attempt: 1 min, 2, 4, ... doubling, at most 1 h."""
    n = max(1, attempts)
    if n > 12:
        return BACKOFF_CAP
    wait: timedelta = BACKOFF_FIRST * (2 ** (n - 1))
    return min(wait, BACKOFF_CAP)


def _iso(when: datetime) -> str:
    """UTC ISO 8601: sorts and compares as text."""
    return when.astimezone(UTC).isoformat()


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxEntry:
    """One outbox message as the web page shows it."""

    id: int
    kind: str
    to: tuple[str, ...]
    subject: str
    state: State
    created: datetime
    attempts: int
    next_attempt: datetime | None
    last_attempt: datetime | None
    last_error: str
    sent_at: datetime | None
    message_id: str
    record_id: str
    attachments: tuple[str, ...]  # file names attached
    server_reply: str  # the server's answer when it took the message
    rcpt: tuple[str, ...] = ()  # who this entry sends to: `to`, or for a copy some of them
    copy_of: int | None = None  # the entry whose refused recipients this one sends to

    @classmethod
    def from_doc(cls, doc_id: int, doc: Mapping[str, Any]) -> OutboxEntry:
        return cls(
            id=doc_id,
            kind=doc.get("kind", ""),
            to=tuple(doc.get("to", ())),
            subject=doc.get("subject", ""),
            state=doc.get("state", "queued"),
            created=datetime.fromisoformat(doc["created"]),
            attempts=doc.get("attempts", 0),
            next_attempt=_time(doc.get("next_attempt")),
            last_attempt=_time(doc.get("last_attempt")),
            last_error=doc.get("last_error", ""),
            sent_at=_time(doc.get("sent_at")),
            message_id=doc.get("message_id", ""),
            record_id=doc.get("record_id", ""),
            attachments=tuple(a["filename"] for a in doc.get("attachments", [])),
            server_reply=doc.get("server_reply", ""),
            rcpt=tuple(doc.get("rcpt") or doc.get("to", ())),
            copy_of=doc.get("copy_of"),
        )


class Outbox:
    """The `outbox/messages` table with its state machine. Safe to share between threads."""

    def __init__(self, table: Collection, clock: Callable[[], datetime]) -> None:
        self._table = table
        self._clock = clock
        self._lock = threading.Lock()

    # -- writing -----------------------------------------------------------------------------

    def add(self, doc: Mapping[str, Any]) -> int:
        """Store a new queued message durably; returns its id."""
        now = self._clock()
        body = {
            **doc,
            "state": "queued",
            "attempts": 0,
            "next_attempt": _iso(now),
            "last_attempt": None,
            "last_error": "",
            "sent_at": None,
        }
        body.setdefault("created", _iso(now))
        with self._lock:
            return self._table.insert(body)

    def _move(self, msg_id: int, expect: Iterable[str], fields: Mapping[str, Any]) -> bool:
        with self._lock:
            doc = self._table.get(msg_id)
            if doc is None or doc.get("state") not in set(expect):
                return False
            return self._table.update(msg_id, fields)

    def claim(self, msg_id: int) -> dict[str, Any] | None:
        """queued -> sending, counted as an attempt. Returns the document, or None."""
        now = self._clock()
        with self._lock:
            doc = self._table.get(msg_id)
            if doc is None or doc.get("state") != "queued":
                return None
            fields = {
                "state": "sending",
                "attempts": doc.get("attempts", 0) + 1,
                "last_attempt": _iso(now),
            }
            self._table.update(msg_id, fields)
            return {**doc, **fields}

    def mark_sent(self, msg_id: int, reply: str, refused: str = "") -> bool:
        """sending -> sent. The bodies go: a sent message is never built again (retry refuses
        it) and the page lists subject, recipients and the server's reply only, while a body
        kept for `keep_sent_days` would hold a few kB of memory per email (the table is kept
        in memory) and make every snapshot rewrite larger."""
        return self._move(
            msg_id,
            ("sending",),
            {
                "state": "sent",
                "sent_at": _iso(self._clock()),
                "server_reply": reply,
                "last_error": refused,
                "next_attempt": None,
                "text": "",
                "html": "",
            },
        )

    def mark_partly_sent(
        self,
        msg_id: int,
        reply: str,
        doc: Mapping[str, Any],
        refused: Iterable[tuple[str, int, str]],
    ) -> tuple[str, list[int]]:
        """sending -> sent for a message the server took for some recipients and refused
        for others. Each refused group gets its own entry, a copy of this one (same
        Message-ID, Date, `to` header and bodies, so the same bytes) sent to those recipients
        only: `queued` with the backoff after a 4xx, `failed` with the server's words after a
        5xx. The accepted recipients are never sent it again. The copies are written before
        this entry turns `sent` (a power cut in between sends a duplicate, never nothing).
        Returns the note kept on this entry and the ids of the copies."""
        now = self._clock()
        temporary = [r for r in refused if not 500 <= r[1] < 600]
        permanent = [r for r in refused if 500 <= r[1] < 600]
        base = {
            k: v
            for k, v in doc.items()
            if k not in ("state", "attempts", "next_attempt", "last_attempt", "last_error")
        }
        base.pop("server_reply", None)
        base["copy_of"] = msg_id
        attempts = int(doc.get("attempts", 1))
        notes: list[str] = []
        ids: list[int] = []
        with self._lock:
            for group, temporary_group in ((temporary, True), (permanent, False)):
                if not group:
                    continue
                words = "; ".join(f"{a}: {c} {t}" for a, c, t in group)
                body = {
                    **base,
                    "rcpt": [a for a, _, _ in group],
                    "state": "queued" if temporary_group else "failed",
                    "attempts": attempts,
                    "next_attempt": _iso(now + backoff(attempts)) if temporary_group else None,
                    "last_attempt": _iso(now),
                    "last_error": words,
                    "sent_at": None,
                }
                copy_id = self._table.insert(body)
                ids.append(copy_id)
                who = ", ".join(a for a, _, _ in group)
                if temporary_group:
                    notes.append(f"Not taken yet for {who} ({words}); trying again as #{copy_id}.")
                else:
                    notes.append(f"Refused for {who} ({words}); see #{copy_id}.")
            note = " ".join(notes)
            current = self._table.get(msg_id)
            if current is not None and current.get("state") == "sending":
                self._table.update(
                    msg_id,
                    {
                        "state": "sent",
                        "sent_at": _iso(now),
                        "server_reply": reply,
                        "last_error": note,
                        "next_attempt": None,
                        "text": "",
                        "html": "",
                    },
                )
        return note, ids

    def media_in_use(self) -> set[str]:
        """Media references any message still attaches or owns."""
        refs: set[str] = set()
        for doc in self._table.all():
            refs.update(a.get("ref", "") for a in doc.get("attachments", []))
            refs.update(doc.get("owned_media", []))
        return refs

    def defer(
        self,
        msg_id: int,
        error: str,
        *,
        count_attempt: bool = False,
        wait: timedelta | None = None,
    ) -> datetime | None:
        """sending (or queued, for messages never tried this round) -> queued, later: after
        the backoff, or after `wait` without counting the try (the server was not there yet,
        at start-up: the backoff is for a server that is there and fails).

        Returns when the next attempt is due, or None when the message was not deferred.
        """
        now = self._clock()
        with self._lock:
            doc = self._table.get(msg_id)
            if doc is None or doc.get("state") not in ("sending", "queued"):
                return None
            attempts = doc.get("attempts", 0)
            if wait is not None:
                attempts = max(0, attempts - (1 if doc.get("state") == "sending" else 0))
                due = now + wait
            else:
                attempts += 1 if count_attempt else 0
                due = now + backoff(attempts)
            self._table.update(
                msg_id,
                {
                    "state": "queued",
                    "attempts": attempts,
                    "next_attempt": _iso(due),
                    "last_error": error,
                    "last_attempt": _iso(now),
                },
            )
            return due

    def release(self, msg_id: int | None, error: str) -> int:
        """sending -> queued after its backoff, with `error` as the reason: for a message
        (or with None, every message) an unexpected error left in the middle of sending.
        Returns how many were released."""
        now = self._clock()
        count = 0
        with self._lock:
            if msg_id is None:
                docs = self._table.search(lambda d: d.get("state") == "sending")
            else:
                one = self._table.get(msg_id)
                docs = [one] if one is not None and one.get("state") == "sending" else []
            for doc in docs:
                due = now + backoff(doc.get("attempts", 0))
                self._table.update(
                    doc.doc_id,
                    {
                        "state": "queued",
                        "next_attempt": _iso(due),
                        "last_error": error,
                        "last_attempt": _iso(now),
                    },
                )
                log.warning("outbox message %s: %s; next attempt %s", doc.doc_id, error, due)
                count += 1
        return count

    def fail(self, msg_id: int, error: str) -> bool:
        return self._move(
            msg_id,
            ("sending", "queued"),
            {"state": "failed", "last_error": error, "next_attempt": None},
        )

    def retry(self, msg_id: int) -> bool:
        """failed (or waiting queued) -> queued, due now. False for sent or unknown ids."""
        return self._move(
            msg_id, ("failed", "queued"), {"state": "queued", "next_attempt": _iso(self._clock())}
        )

    def retry_all(self) -> int:
        """Make every failed or waiting message due now (after fixing the settings)."""
        count = 0
        for doc in self._table.search(lambda d: d.get("state") in ("failed", "queued")):
            count += self.retry(doc.doc_id)
        return count

    def remove(self, msg_id: int) -> dict[str, Any] | None:
        """Delete a message that is not being sent. Returns the removed document."""
        with self._lock:
            doc = self._table.get(msg_id)
            if doc is None or doc.get("state") == "sending":
                return None
            self._table.remove(msg_id)
            return dict(doc)

    def recover(self) -> int:
        """After a restart: messages caught `sending` are queued again, due now."""
        now = _iso(self._clock())
        count = 0
        for doc in self._table.search(lambda d: d.get("state") == "sending"):
            if self._move(
                doc.doc_id,
                ("sending",),
                {
                    "state": "queued",
                    "next_attempt": now,
                    "last_error": "sending was interrupted by a restart; sending again",
                },
            ):
                log.warning(
                    "outbox message %s (%s) was interrupted while sending; it will be "
                    "sent again with the same Message-ID",
                    doc.doc_id,
                    doc.get("message_id"),
                )
                count += 1
        return count

    def prune_sent(self, older_than: datetime) -> list[dict[str, Any]]:
        """Remove sent messages sent before `older_than`; returns them."""
        cutoff = _iso(older_than)
        removed = []
        for doc in self._table.search(
            lambda d: d.get("state") == "sent" and (d.get("sent_at") or "") < cutoff
        ):
            gone = self.remove(doc.doc_id)
            if gone is not None:
                removed.append(gone)
        return removed

    def prune_unsent(self, older_than: datetime, keep: int) -> list[dict[str, Any]]:
        """Remove messages never tried (waiting for a mail server to be set) created before
        `older_than`, and all but the newest `keep` of them; returns them."""
        cutoff = _iso(older_than)
        docs = self._table.search(lambda d: d.get("state") == "queued" and not d.get("attempts", 0))
        docs.sort(key=lambda d: (d.get("created") or "", d.doc_id), reverse=True)
        removed = []
        for i, doc in enumerate(docs):
            if i >= keep or (doc.get("created") or "") < cutoff:
                gone = self.remove(doc.doc_id)
                if gone is not None:
                    removed.append(gone)
        return removed

    # -- reading -----------------------------------------------------------------------------

    def get(self, msg_id: int) -> dict[str, Any] | None:
        doc = self._table.get(msg_id)
        return None if doc is None else dict(doc)

    def entry(self, msg_id: int) -> OutboxEntry | None:
        doc = self._table.get(msg_id)
        return None if doc is None else OutboxEntry.from_doc(doc.doc_id, doc)

    def due(self, now: datetime) -> list[int]:
        """Queued messages whose time has come, oldest due first.

        A next attempt further ahead than the backoff cap can only come from a clock that
        jumped back (a Raspberry Pi without RTC before NTP sync): such messages are due now.
        """
        horizon = now + BACKOFF_CAP

        def ready(d: Mapping[str, Any]) -> bool:
            if d.get("state") != "queued":
                return False
            nxt = _time(d.get("next_attempt"))
            return nxt is None or nxt <= now or nxt > horizon

        docs = self._table.search(ready)
        docs.sort(key=lambda d: (d.get("next_attempt") or "", d.doc_id))
        return [d.doc_id for d in docs]

    def next_due(self) -> datetime | None:
        times = [
            _time(d.get("next_attempt"))
            for d in self._table.search(lambda d: d.get("state") == "queued")
        ]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def failing_since(
        self, now: datetime | None = None, stuck_after: timedelta = timedelta(minutes=15)
    ) -> datetime | None:
        """When the oldest message still waiting after a failed attempt was queued, or None.

        A message `sending` for longer than `stuck_after` (a send that never came back)
        counts as failing too."""
        stuck = _iso((now or self._clock()) - stuck_after)

        def failing(d: Mapping[str, Any]) -> bool:
            if d.get("state") == "queued":
                return bool(d.get("attempts", 0))
            return d.get("state") == "sending" and (d.get("last_attempt") or "") < stuck

        docs = self._table.search(failing)
        times = [datetime.fromisoformat(d["created"]) for d in docs if d.get("created")]
        return min(times) if times else None

    def retrying(self) -> int:
        """How many messages wait for another attempt after a failed one."""
        return len(
            self._table.search(lambda d: d.get("state") == "queued" and d.get("attempts", 0) > 0)
        )

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = dict.fromkeys(STATES, 0)
        for doc in self._table.all():
            state = doc.get("state", "queued")
            out[state] = out.get(state, 0) + 1
        return out

    def entries(
        self, limit: int = 50, state: str | None = None, before: int | None = None
    ) -> list[OutboxEntry]:
        """Newest first; `state` filters, `before` pages on from an id."""
        docs = self._table.newest(
            limit, None if state is None else (lambda d: d.get("state") == state), before=before
        )
        return [OutboxEntry.from_doc(d.doc_id, d) for d in docs]
