"""System alerts: one email when a problem starts, and optionally one when it is over.

An incident (a line down for over 5 minutes, a SIM card that needs its PIN, a nearly full
disk, email failing for over an hour) is kept durably in the store's `alerts` database, so
retries, repeated events and restarts never send a second email for the same incident.
Listens on the event bus and runs its checks from the scheduler; never talks SMTP itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ..events import EventBus
from ..store import Store
from .notify.service import STUCK_AFTER

if TYPE_CHECKING:
    from .notify import Notifier
    from .scheduler import Scheduler
    from .system import DiskUsage

log = logging.getLogger(__name__)

LINE_DOWN_AFTER = timedelta(minutes=5)
MAIL_FAILING_AFTER = timedelta(hours=1)
DISK_LOW = 0.10  # free fraction under which the disk incident opens
DISK_OK = 0.12  # ... and over which it closes again (no flapping around one value)
KEEP_CLOSED = 200  # closed incidents kept for the web page

State = Literal["pending", "open", "closed"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    """One problem, from when it started to when it was over."""

    id: int
    key: str  # what it is about, e.g. "line-down:line1", "disk", "mail"
    title: str
    details: str
    state: State
    opened: datetime  # for a pending incident: when it was first seen
    closed: datetime | None
    emailed: bool  # the "problem" email was queued

    @classmethod
    def from_doc(cls, doc_id: int, doc: Mapping[str, Any]) -> Incident:
        closed = doc.get("closed")
        return cls(
            id=doc_id,
            key=doc.get("key", ""),
            title=doc.get("title", ""),
            details=doc.get("details", ""),
            state=doc.get("state", "open"),
            opened=datetime.fromisoformat(doc["opened"]),
            closed=datetime.fromisoformat(closed) if closed else None,
            emailed=bool(doc.get("emailed")),
        )


class AlertService:
    """Incidents by key: `raise_incident` / `resolve_incident`, safe from any thread."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        *,
        clock: Callable[[], datetime] = utc_now,
        disk: Callable[[], DiskUsage | None] | None = None,
    ) -> None:
        self._table = store.table("alerts", "incidents")
        self._notifier = notifier
        self._clock = clock
        self._disk = disk
        self._lock = threading.Lock()

    # -- the API -------------------------------------------------------------------------------

    def raise_incident(
        self,
        key: str,
        title: str,
        details: str,
        *,
        after: timedelta | None = None,
        advice: str = "",
        email: bool = True,
    ) -> bool:
        """Report a problem. Returns True when this opened a new incident (one email).

        While an incident with this key is open (or pending) nothing is sent; its details
        are updated. With `after`, the incident stays pending and opens only if it is not
        resolved within that time (`check()` opens it). `email=False` opens it silently
        (for a problem the email itself cannot get through): the "fixed" email then says it.
        """
        now = self._clock()
        with self._lock:
            current = self._current(key)
            if current is not None:
                self._table.update(current.doc_id, {"details": details, "seen": _iso(now)})
                return False
            doc: dict[str, Any] = {
                "key": key,
                "title": title,
                "details": details,
                "advice": advice,
                "state": "pending" if after else "open",
                "opened": _iso(now),
                "seen": _iso(now),
                "due": _iso(now + after) if after else None,
                "closed": None,
                "email": email,
                "emailed": False,
            }
            doc_id = self._table.insert(doc)
        if after:
            log.info("possible problem %s: %s; waiting %s before warning", key, title, after)
            return False
        self._opened(doc_id, doc)
        return True

    def resolve_incident(self, key: str) -> bool:
        """The problem is over. Returns True when an open incident was closed."""
        now = self._clock()
        with self._lock:
            current = self._current(key)
            if current is None:
                return False
            if current.get("state") == "pending":
                self._table.remove(current.doc_id)  # over before anyone needed telling
                return False
            self._table.update(current.doc_id, {"state": "closed", "closed": _iso(now)})
            doc = dict(current)
        log.info("problem over: %s", doc.get("title"))
        prefs = self._notifier.prefs.get()
        if prefs.alert_when_fixed or not doc.get("emailed"):
            self._notifier.alert(
                doc.get("title", key),
                doc.get("details", ""),
                datetime.fromisoformat(doc["opened"]),
                resolved=now,
            )
        self._prune()
        return True

    def incidents(self, state: State | None = None, limit: int = 50) -> list[Incident]:
        """Newest first; `state` filters."""
        docs = self._table.newest(
            limit, None if state is None else (lambda d: d.get("state") == state)
        )
        return [Incident.from_doc(d.doc_id, d) for d in docs]

    def open_incidents(self) -> list[Incident]:
        return self.incidents("open", limit=100)

    # -- checks (from the scheduler) -----------------------------------------------------------

    def check(self) -> None:
        """Open pending incidents whose time has come; check email and the disk."""
        now = self._clock()
        with self._lock:
            due = [
                d
                for d in self._table.search(lambda d: d.get("state") == "pending")
                if d.get("due") and datetime.fromisoformat(d["due"]) <= now
            ]
            for d in due:
                self._table.update(d.doc_id, {"state": "open"})
        for d in due:
            self._opened(d.doc_id, {**d, "state": "open"})
        self.check_mail(now)
        self.check_disk()

    def check_mail(self, now: datetime | None = None) -> None:
        now = now or self._clock()
        since = self._notifier.outbox.failing_since(now, STUCK_AFTER)
        if since is not None and now - since > MAIL_FAILING_AFTER:
            error = self._notifier.status().last_error or "the mail server did not take them"
            self.raise_incident(
                "mail",
                "Emails could not be sent for over an hour",
                f"Emails have been waiting since {since:%Y-%m-%d %H:%M} UTC: {error}",
                email=False,  # it would wait in the same outbox
            )
        elif since is None:
            self.resolve_incident("mail")

    def check_disk(self) -> None:
        if self._disk is None:
            return
        usage = self._disk()
        if usage is None or usage.total <= 0:
            return
        free = usage.free_fraction
        if free < DISK_LOW:
            self.raise_incident(
                "disk",
                "The storage is nearly full",
                f"{free:.0%} free ({usage.free // 1_000_000} MB of {usage.total // 1_000_000} MB)",
                advice="When it is full, voicemail and faxes cannot be saved. Delete old "
                "recordings and faxes, or use a larger memory card.",
            )
        elif free >= DISK_OK:
            self.resolve_incident("disk")

    def add_jobs(self, scheduler: Scheduler) -> None:
        scheduler.every(1).minutes.named("alerts check").tag("alerts").do(self.check)

    # -- line events ---------------------------------------------------------------------------

    def subscribe(self, bus: EventBus) -> Callable[[], None]:
        """Follow the phone lines' events (firmware_app.modem.events), when they exist."""
        try:
            from ..modem import events as line_events
        except ImportError:  # a build without the modem layer
            log.info("alerts: no line events to follow")
            return lambda: None

        def down(event: Any) -> None:
            self.raise_incident(
                f"line-down:{event.line}",
                f"Phone line {event.line} is down",
                f"{event.reason} (port {event.port})",
                after=LINE_DOWN_AFTER,
                advice="Calls on this line are not answered until it is back. Check the "
                "modem's USB cable, its power and the phone cable or SIM card.",
            )

        def up(event: Any) -> None:
            self.resolve_incident(f"line-down:{event.line}")

        def modem_error(event: Any) -> None:
            code = getattr(event, "code", "") or ""
            if code.startswith(("sim_pin", "sim_puk", "sim_missing")):
                if code == "sim_missing":
                    title = f"There is no SIM card in line {event.line}"
                elif code == "sim_puk":
                    title = f"The SIM card of line {event.line} is blocked (it needs its PUK)"
                else:
                    title = f"The SIM card of line {event.line} needs its PIN"
                self.raise_incident(
                    f"sim:{event.line}",
                    title,
                    event.message,
                    advice="Texts and calls on this line do not work until this is fixed.",
                )

        def signal(event: Any) -> None:
            if str(getattr(event, "registration", "")).startswith("registered"):
                self.resolve_incident(f"sim:{event.line}")

        handlers = [
            bus.subscribe(line_events.LineDown, down),
            bus.subscribe(line_events.LineUp, up),
            bus.subscribe(line_events.ModemError, modem_error),
            bus.subscribe(line_events.SignalChanged, signal),
        ]

        def unsubscribe() -> None:
            for h in handlers:
                h()

        return unsubscribe

    # -- inside --------------------------------------------------------------------------------

    def _current(self, key: str) -> Any:
        found = self._table.search(
            lambda d: d.get("key") == key and d.get("state") in ("pending", "open")
        )
        return found[-1] if found else None

    def _opened(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        log.warning("problem: %s (%s)", doc.get("title"), doc.get("details"))
        if not doc.get("email", True):
            return
        msg_id = self._notifier.alert(
            doc.get("title", ""),
            doc.get("details", ""),
            datetime.fromisoformat(doc["opened"]),
            advice=doc.get("advice", ""),
        )
        if msg_id is not None:
            self._table.update(doc_id, {"emailed": True})

    def _prune(self) -> None:
        with self._lock:
            closed = self._table.search(lambda d: d.get("state") == "closed")
            for d in closed[:-KEEP_CLOSED]:
                self._table.remove(d.doc_id)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()
