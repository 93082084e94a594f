"""The services facade: what the web UI, the CLI's control socket and the daemon call.

Pages never reach TinyDB or a modem driver; they call these. Each channel adds its service
here as it lands (lines, calls, sms, fax, notify, contacts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..config import MachineConfig, page_url
from ..events import EventBus
from ..logs import RingBufferHandler
from ..store import Store
from .alerts import AlertService
from .auth import AuthService
from .contacts import ContactsService, TimelineService
from .greetings import GreetingsService
from .history import HistoryService
from .notify import Notifier
from .routing import RoutingService
from .scheduler import Scheduler
from .settings import SettingsService
from .stats import StatsService
from .system import SystemService

if TYPE_CHECKING:
    from ..calls.audio import CallAudio
    from ..fax.service import FaxService
    from .forwarding import ForwardingService
    from .sms import SmsService


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    config: MachineConfig
    store: Store
    bus: EventBus
    settings: SettingsService
    log_ring: RingBufferHandler = field(default_factory=RingBufferHandler)
    clock: Callable[[], datetime] = utc_now
    started_monotonic: float = field(default_factory=time.monotonic)
    # Channel services register themselves here by name as they are built.
    extra: dict[str, Any] = field(default_factory=dict)
    # Built from the fields above; tests may replace them (or their probes) after construction.
    auth: AuthService = field(init=False, repr=False)
    system: SystemService = field(init=False, repr=False)
    notify: Notifier = field(init=False, repr=False)  # email: outbox, delivery thread, summary
    scheduler: Scheduler = field(init=False, repr=False)  # timed jobs; the daemon starts it
    alerts: AlertService = field(init=False, repr=False)  # one email per system problem
    routing: RoutingService = field(init=False, repr=False)
    history: HistoryService = field(init=False, repr=False)  # interactions and the inbox
    contacts: ContactsService = field(init=False, repr=False)  # address book, notes
    stats: StatsService = field(init=False, repr=False)  # daily counters
    timeline: TimelineService = field(init=False, repr=False)  # per contact/number, search
    # Text messages; the daemon attaches it with the lines (None without a daemon).
    sms: SmsService | None = field(default=None, init=False, repr=False)
    # Faxes in and out; the daemon attaches it with the lines (None without a daemon).
    fax: FaxService | None = field(default=None, init=False, repr=False)
    greetings: GreetingsService = field(init=False, repr=False)  # GreetingSource, TTS, uploads
    # GSM call audio (the runner's `call_audio.channel(line, call)`); the daemon attaches it.
    call_audio: CallAudio | None = field(default=None, init=False, repr=False)
    # Network forwarding and `put_through` for answered calls; the daemon attaches it.
    forwarding: ForwardingService | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.auth = AuthService(self.store)
        self.system = SystemService(self.store, self.log_ring, self.started_monotonic)
        self.notify = Notifier(
            self.store,
            self.settings.get,
            clock=lambda: self.clock(),
            save_section=self.settings.save_section,
            page_url=page_url(self.config),
        )
        self.scheduler = Scheduler(lambda: self.clock())
        self.alerts = AlertService(
            self.store, self.notify, clock=lambda: self.clock(), disk=lambda: self.system.disk()
        )
        self.routing = RoutingService(
            self.settings,
            lambda: self.clock(),
            contacts=lambda: self.contacts,  # previews see the VIP and blocked contacts
            lines=lambda: self.extra.get("lines"),  # and each line as a call on it does
            calls=lambda: self.extra.get("calls"),
        )
        self.history = HistoryService(self.store, self.bus, clock=lambda: self.clock())
        self.contacts = ContactsService(
            self.store,
            self.bus,
            self.settings.get,
            clock=lambda: self.clock(),
            save_section=self.settings.save_section,  # flags and the call rules' lists are one
        )
        self.stats = StatsService(self.store, self.settings.get, clock=lambda: self.clock())
        self.stats.subscribe(self.bus)
        self.timeline = TimelineService(
            self.store, self.history, self.contacts, self.notify.messages, self.notify.message
        )
        self.notify.record_emails = self.history.note_email  # emails stay on their timelines
        self.notify.records_between = self._summary_records  # the daily summary's day
        self.greetings = GreetingsService(self.store, self.settings, self.bus)

    def _summary_records(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The day's records for the daily summary, each named as the owner knows the caller:
        the contact's name (by the record's contact, else its number), else caller ID's."""
        out = []
        for i in self.history.between(start, end):
            rec = {**i.to_record(), "id": i.id}
            contact = self.contacts.get(i.contact_id) if i.contact_id is not None else None
            contact = contact or self.contacts.by_number(i.number)
            if contact is not None and contact.name:
                rec["name"] = contact.name
            out.append(rec)
        return out

    @classmethod
    def build(
        cls,
        config: MachineConfig,
        store: Store,
        bus: EventBus | None = None,
        log_ring: RingBufferHandler | None = None,
    ) -> Services:
        bus = bus or EventBus()
        return cls(
            config=config,
            store=store,
            bus=bus,
            settings=SettingsService(store, bus),
            log_ring=log_ring or RingBufferHandler(),
        )

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started_monotonic


__all__ = [
    "AlertService",
    "AuthService",
    "Notifier",
    "RoutingService",
    "Scheduler",
    "Services",
    "SettingsService",
    "SystemService",
]
