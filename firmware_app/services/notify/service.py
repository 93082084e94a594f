"""The notify service: queue emails about voicemail, missed calls, SMS and faxes; deliver them.

`Notifier` is what channel code, the daemon and the web pages call. Queueing writes the
outbox record (and any MP3 it needs) durably and returns; delivery happens on the
`DeliveryWorker` thread, never on a line worker. Time comes from an injected clock.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ...errors import StoreError
from ...events import EventBus, SettingsChanged
from ...settings.model import Email, Settings
from ...settings.schema import email_address
from ...store import Store
from ...workers import Worker
from .errors import DEFAULT_TIMEOUT, MailServerError, MessageRejected, NotifyError
from .messages import (
    Context,
    Draft,
    FaxNotice,
    Kind,
    MissedCallNotice,
    SmsNotice,
    VoicemailNotice,
    alert_message,
    check_email_message,
    digest_message,
    fax_message,
    missed_call_message,
    record_start,
    sms_message,
    voicemail_message,
)
from .mime import Sender, add_notes, build_message, limit_attachments, make_message_id
from .outbox import Outbox, OutboxEntry
from .prefs import PrefsStore

if TYPE_CHECKING:
    import ssl

    from .smtp import SmtpConnection

log = logging.getLogger(__name__)

GIVE_UP_AFTER = timedelta(days=7)  # temporary errors for this long turn a message `failed`
HOLD_WITHOUT_SERVER = timedelta(days=7)  # with no mail server set, emails wait this long
HOLD_MAX = 500  # and at most this many (the newest), so the outbox cannot grow without bound
STUCK_AFTER = timedelta(minutes=15)  # `sending` longer than this counts as failing
PRUNE_EVERY = timedelta(hours=1)
IDLE_WAIT = 300.0  # seconds the worker sleeps with nothing due (it wakes on queue anyway)
# For this long after the delivery worker starts, a mail server that refuses the connection
# (nothing listens yet: a relay on this machine, the demo's sink or the network still coming
# up with the box) is tried again after STARTUP_RETRY, not after the backoff.
STARTUP_GRACE = 120.0
STARTUP_RETRY = timedelta(seconds=5)
DIGEST_LATE = timedelta(hours=12)  # a summary missed by more than this (box off) is skipped
HISTORY_PAGE = 100
STATE_DATABASE = "notify"  # run state (when the last summary went out), not settings
HISTORY_PAGES_MAX = 100  # a digest reads at most this many pages of history


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxStatus:
    """What the web page shows about email delivery."""

    configured: bool  # a mail server is set
    running: bool  # the delivery worker is alive
    counts: dict[str, int]  # by state: queued, sending, sent, failed
    retrying: int = 0  # queued messages that already failed once or more
    next_attempt: datetime | None
    last_error: str
    last_error_at: datetime | None
    last_sent_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TestResult:
    """The answer to "send a test email": ok, and the server's words."""

    __test__ = False  # not a pytest test class

    ok: bool
    code: int | None
    answer: str  # the server's own words (or ours when it was never reached)
    explanation: str = ""  # the same in plain words for the owner

    def __post_init__(self) -> None:
        if not self.explanation:
            object.__setattr__(self, "explanation", self.answer)


def envelope_sender(settings: Settings) -> str:
    e = settings.email
    for candidate in (e.from_address, e.username, settings.business.owner_email):
        if candidate and "@" in candidate:
            return candidate
    return f"frontdesk@{socket.gethostname() or 'localhost'}"


class Notifier:
    """Email notifications: the service API. Thread-safe; cheap to call from any thread."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        *,
        clock: Callable[[], datetime] = utc_now,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        local_hostname: str | None = None,
        save_section: Callable[[str, dict[str, Any]], Any] | None = None,
        page_url: str = "",
    ) -> None:
        self.store = store
        # This box's web page as browsers reach it (config.page_url): the links in emails
        # while the owner's `email.web_url` is empty.
        self.page_url = page_url
        self._settings = settings
        self._clock = clock
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.outbox = Outbox(store.table("outbox", "messages"), clock)
        self.prefs = PrefsStore(settings, save_section)
        self.worker = DeliveryWorker(self)
        self._last_error = ""
        self._last_error_at: datetime | None = None
        self._last_sent_at: datetime | None = None
        self._status_lock = threading.Lock()
        # Told of each email about a history record when it is queued and when it leaves the
        # outbox (pruned once sent, deleted, dropped waiting for a mail server), so the
        # record's timeline keeps it.
        self.record_emails: Callable[[str, dict[str, Any]], None] | None = None
        # The history records started in [start, end), newest first, from the history index
        # (services.history.between); without it the summary pages back through the store.
        self.records_between: Callable[[datetime, datetime], list[dict[str, Any]]] | None = None

    # -- settings-derived values ---------------------------------------------------------------

    def context(self, settings: Settings | None = None) -> Context:
        s = settings or self._settings()
        return Context(
            business_name=s.business.name,
            timezone=s.business.timezone,
            country=s.business.country,
            web_url=self.web_url(s),
        )

    def web_url(self, settings: Settings | None = None) -> str:
        """The base of the links in emails: the owner's `email.web_url`, else this box's
        own address; "" (no links) when the owner set "none"."""
        own = (settings or self._settings()).email.web_url.strip()
        if own.lower() == "none":
            return ""
        return own or self.page_url

    def recipients(
        self,
        kind: Kind,
        settings: Settings | None = None,
        *,
        box: str = "",
        staff: Sequence[str] = (),
    ) -> list[str]:
        """Who gets emails of this kind, without repeats.

        The staff members named in `staff`, for voicemail `box` (the box name of a menu
        option) the staff whose groups include it and the addresses of the voicemail keys
        with that box (`MenuOption.email_to`), and the kind's list; when that makes nobody,
        the owner email. Staff without an email address are skipped.
        """
        s = settings or self._settings()
        prefs = self.prefs.get()
        lists: dict[str, list[str]] = {
            "voicemail": s.email.voicemail_to,
            "missed_call": s.email.missed_call_to,
            "sms": s.email.sms_to,
            "fax": s.email.fax_to,
            "digest": prefs.digest_to,
            "alert": prefs.alerts_to,
        }
        chosen: list[str] = []
        for name in staff:
            member = s.staff.member(name)
            if member is not None and member.email:
                chosen.append(member.email)
        if box:
            wanted = box.casefold()
            chosen += [
                m.email
                for m in s.staff.members
                if m.email and any(g.casefold() == wanted for g in m.groups)
            ]
            for menu in s.rules.menus:
                for option in menu.options:
                    if option.action == "voicemail" and option.target.casefold() == wanted:
                        chosen += option.email_to
        chosen += list(lists.get(kind) or [])
        if not chosen and s.business.owner_email:
            chosen = [s.business.owner_email]
        seen: set[str] = set()
        unique = []
        for address in chosen:
            if address.casefold() not in seen:
                seen.add(address.casefold())
                unique.append(address)
        return unique

    def voicemail_recipients(self, box: str, settings: Settings | None = None) -> list[str]:
        """Who gets the voicemail left in `box` ("" is the main box): see `recipients`."""
        return self.recipients("voicemail", settings, box=box)

    def sender(self, settings: Settings | None = None) -> Sender:
        s = settings or self._settings()
        return Sender(
            name=s.business.name,
            address=envelope_sender(s),
            reply_to=s.email.reply_to or s.business.owner_email,
        )

    # -- queueing ------------------------------------------------------------------------------

    def queue(self, draft: Draft, to: Sequence[str] | None = None) -> int | None:
        """Put a message in the outbox, durably, and wake the worker. Returns its id.

        `to` defaults to the recipients configured for the draft's kind. Returns None (and
        logs why) when nobody is set to receive it. With no mail server set yet, the message
        is kept all the same and goes out once one is set (see `prune` for how long).
        """
        settings = self._settings()
        if not settings.email.smtp_host:
            log.info(
                "no mail server is set yet: the %s email waits in the outbox until one is",
                draft.kind,
            )
        recipients = list(to) if to is not None else self.recipients(draft.kind, settings)
        bad = [a for a in recipients if email_address(optional=False)(a)]
        if bad:
            raise NotifyError(
                f"{', '.join(map(repr, bad))} is not an email address; "
                "expected one like owner@example.com"
            )
        if not recipients:
            log.warning(
                "no recipient for %s emails: set the owner email or the %s list",
                draft.kind,
                draft.kind,
            )
            return None
        media = self.store.media
        sizes: dict[str, int | None] = {}
        for att in draft.attachments:
            try:
                sizes[att.ref] = media.path(att.ref).stat().st_size
            except (OSError, StoreError) as exc:
                log.warning("%s email: attachment %s unavailable: %s", draft.kind, att.ref, exc)
                sizes[att.ref] = None
        limit = settings.email.attachment_limit_mb * 1024 * 1024
        kept, notes = limit_attachments([a.to_doc() for a in draft.attachments], sizes, limit)
        text, html = add_notes(draft.text, draft.html, notes)
        now = self._clock()
        domain = envelope_sender(settings).rpartition("@")[2]
        doc: dict[str, Any] = {
            "kind": draft.kind,
            "to": recipients,
            "subject": draft.subject,
            "text": text,
            "html": html,
            "attachments": kept,
            "record_id": draft.record_id,
            "owned_media": list(draft.owned_media),
            "created": now.astimezone(UTC).isoformat(),
            "message_id": make_message_id(domain, now),
        }
        msg_id = self.outbox.add(doc)
        log.info("queued %s email %s for %d recipient(s)", draft.kind, msg_id, len(recipients))
        self._tell_record(
            doc,
            outbox=msg_id,
            at=doc["created"],
            to=list(recipients),
            subject=draft.subject,
            kind=draft.kind,
            state="queued",
        )
        self.wake()
        return msg_id

    def _tell_record(self, doc: Mapping[str, Any], **note: Any) -> None:
        """Pass a note about an email to its history record (never fails the email)."""
        record_id = str(doc.get("record_id") or "")
        if not record_id or self.record_emails is None:
            return
        try:
            self.record_emails(record_id, {"message_id": doc.get("message_id", ""), **note})
        except Exception as exc:
            log.warning("email not noted on record %s: %s", record_id, exc)

    def voicemail(self, vm: VoicemailNotice) -> int | None:
        """Email a voicemail; the recording goes as MP3 (made here if it is not one)."""
        owned: tuple[str, ...] = ()
        if vm.audio_ref and not vm.audio_ref.endswith(".mp3"):
            mp3_ref = self._mp3_copy(vm.audio_ref)
            if mp3_ref:
                owned = (mp3_ref,)
                vm = dataclasses.replace(vm, audio_ref=mp3_ref)
        draft = dataclasses.replace(voicemail_message(vm, self.context()), owned_media=owned)
        to = (
            self.recipients("voicemail", box=vm.box, staff=vm.staff) if vm.box or vm.staff else None
        )
        msg_id = self.queue(draft, to)
        if msg_id is None:
            for ref in owned:
                self.store.media.delete(ref)
        return msg_id

    def missed_call(self, call: MissedCallNotice) -> int | None:
        to = self.recipients("missed_call", staff=call.staff) if call.staff else None
        return self.queue(missed_call_message(call, self.context()), to)

    # -- daily summary and alerts --------------------------------------------------------------

    def history_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """History records whose `start` falls in [start, end), newest first.

        Through the history index when there is one (`records_between`: every record of the
        day, however many). Otherwise pages back through the store and stops at the first
        page whose records all started before `start` (records are stored in about the
        order they happen). Records without a readable `start` are left out.
        """
        if self.records_between is not None:
            return self.records_between(start, end)
        found: list[dict[str, Any]] = []
        before: str | None = None
        for _ in range(HISTORY_PAGES_MAX):
            page = self.store.history.newest(HISTORY_PAGE, before=before)
            if not page:
                break
            times = []
            for rec in page:
                at = record_start(rec)
                if at is None:
                    continue
                times.append(at)
                if start <= at < end:
                    found.append(rec)
            if times and max(times) < start:
                break
            before = str(page[-1]["id"])
        return found

    def digest_window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """The 24 hours the latest due summary covers: up to today's summary time (local
        wall clock, so 23 or 25 hours across a summer-time change), or yesterday's when
        today's has not come yet."""
        now = now or self._clock()
        zone = self.context().zone()
        h, m = (int(x) for x in self.prefs.get().digest_time.split(":"))
        local = now.astimezone(zone)
        end = local.replace(hour=h, minute=m, second=0, microsecond=0)
        if end.astimezone(UTC) > now:
            end = end - timedelta(days=1)
        start = end - timedelta(days=1)
        return start.astimezone(UTC), end.astimezone(UTC)

    def send_digest(self, now: datetime | None = None, *, force: bool = False) -> int | None:
        """Queue the daily summary for the window that ended last; once per window.

        The scheduler calls this at the summary time and once at start (to catch up on a
        summary missed while the box was off, up to 12 hours late). Returns the outbox id.
        """
        now = now or self._clock()
        prefs = self.prefs.get()
        if not prefs.digest and not force:
            return None
        start, end = self.digest_window(now)
        state = self.store.get_document(STATE_DATABASE, "digest") or {}
        if not force:
            if state.get("last_end", "") >= end.isoformat():
                return None
            if now - end > DIGEST_LATE:
                log.info("daily summary up to %s skipped: more than 12 hours late", end)
                return None
        records = self.history_between(start, end)
        if not records and not prefs.digest_quiet_days and not force:
            self.store.put_document(STATE_DATABASE, "digest", {"last_end": end.isoformat()})
            log.info("daily summary up to %s not sent: nothing happened", end)
            return None
        draft = digest_message(start, end, records, self.context())
        msg_id = self.queue(draft)
        self.store.put_document(STATE_DATABASE, "digest", {"last_end": end.isoformat()})
        log.info("daily summary queued: %d interaction(s)", len(records))
        return msg_id

    def catch_up_digest(self, now: datetime | None = None) -> int | None:
        """At start: send a summary missed while the box was off (see `send_digest`).

        A box that never sent one (a new installation) starts counting from now instead.
        """
        if self.store.get_document(STATE_DATABASE, "digest") is None:
            _, end = self.digest_window(now)
            self.store.put_document(STATE_DATABASE, "digest", {"last_end": end.isoformat()})
            return None
        return self.send_digest(now)

    def schedule_digest(self, scheduler: Any, tag: str = "digest") -> None:
        """(Re)schedule the summary on `scheduler` at the preference's time, business zone."""
        scheduler.cancel(tag)
        prefs = self.prefs.get()
        if not prefs.digest:
            return
        zone = self._settings().business.timezone
        scheduler.every().day.at(prefs.digest_time, zone).named("daily summary").tag(tag).do(
            self.send_digest
        )

    def alert(
        self,
        title: str,
        details: str,
        opened: datetime,
        *,
        resolved: datetime | None = None,
        advice: str = "",
    ) -> int | None:
        """Queue an alert email (incident opened, or with `resolved`, over)."""
        if not self.prefs.get().alerts:
            return None
        draft = alert_message(
            title, details, opened, self.context(), resolved=resolved, advice=advice
        )
        return self.queue(draft)

    def sms(self, sms: SmsNotice) -> int | None:
        return self.queue(sms_message(sms, self.context()))

    def fax(self, fax: FaxNotice) -> int | None:
        return self.queue(fax_message(fax, self.context()))

    def _mp3_copy(self, ref: str) -> str | None:
        from ...media.audio import encode_mp3

        try:
            mp3 = encode_mp3(self.store.media.read(ref))
        except Exception as exc:  # keep the original recording attached instead
            log.warning("cannot make an MP3 of %s (%s); attaching it as it is", ref, exc)
            return None
        return self.store.media.write(mp3, "mp3")

    # -- the web page --------------------------------------------------------------------------

    def status(self) -> OutboxStatus:
        with self._status_lock:
            last_error, last_error_at = self._last_error, self._last_error_at
            last_sent = self._last_sent_at
        return OutboxStatus(
            configured=bool(self._settings().email.smtp_host),
            running=self.worker.alive,
            counts=self.outbox.counts(),
            retrying=self.outbox.retrying(),
            next_attempt=self.outbox.next_due(),
            last_error=last_error,
            last_error_at=last_error_at,
            last_sent_at=last_sent,
        )

    def messages(
        self, limit: int = 50, state: str | None = None, before: int | None = None
    ) -> list[OutboxEntry]:
        return self.outbox.entries(limit, state, before)

    def message(self, msg_id: int) -> OutboxEntry | None:
        return self.outbox.entry(msg_id)

    def retry(self, msg_id: int) -> bool:
        """Send a failed (or waiting) message again now. False if it is sent or unknown."""
        ok = self.outbox.retry(msg_id)
        if ok:
            log.info("outbox message %s queued again by request", msg_id)
            self.wake()
        return ok

    def retry_all(self) -> int:
        count = self.outbox.retry_all()
        if count:
            self.wake()
        return count

    def delete(self, msg_id: int) -> bool:
        """Remove a message (not while it is being sent), with the MP3 made for it."""
        doc = self.outbox.remove(msg_id)
        if doc is None:
            return False
        self._drop_media(doc)
        return True

    def settings_changed(self) -> None:
        """Mail settings changed: waiting messages are tried again at once."""
        self.retry_all()
        self.wake()

    def send_test(self, to: str, email: Email | None = None) -> TestResult:
        """Send the test email now, in the caller's thread, and report the server's answer.

        `email` lets the settings page try values before saving them. Never queued.
        """
        settings = self._settings()
        if email is not None:
            settings = settings.replace("email", email)
        cfg = settings.email
        if not cfg.smtp_host:
            return TestResult(ok=False, code=None, answer="No mail server is set.")
        if email_address(optional=False)(to):
            return TestResult(
                ok=False,
                code=None,
                answer=f"{to!r} is not an email address like owner@example.com",
                explanation=f"“{to}” is not an email address. Type one like owner@example.com.",
            )
        now = self._clock()
        draft = check_email_message(self.context(settings), now)
        sender = self.sender(settings)
        doc = {
            "kind": draft.kind,
            "to": [to],
            "subject": draft.subject,
            "text": draft.text,
            "html": draft.html,
            "created": now.astimezone(UTC).isoformat(),
            "message_id": make_message_id(sender.address.rpartition("@")[2], now),
        }
        try:
            msg = build_message(doc, sender, self.store.media)
            with self._connect(cfg) as conn:
                accepted = conn.send(msg, sender.address, [to])
        except MessageRejected as exc:
            return TestResult(
                ok=False,
                code=exc.code,
                answer=str(exc),
                explanation=f"{cfg.smtp_host} turned the test email down ({exc}). "
                + (
                    "Check the Send as address and the recipient."
                    if exc.permanent
                    else "It may work if you try again in a few minutes."
                ),
            )
        except MailServerError as exc:
            return TestResult(ok=False, code=None, answer=str(exc), explanation=exc.plain)
        except ValueError as exc:
            return TestResult(ok=False, code=None, answer=str(exc))
        except Exception as exc:  # a fault of ours or of a library: still a plain answer
            log.exception("test email to %s: unexpected error", cfg.smtp_host)
            why = f"{type(exc).__name__}: {exc}"
            return TestResult(
                ok=False,
                code=None,
                answer=why,
                explanation="Something unexpected went wrong while sending the test email, "
                f"so it was not sent ({why}). Check the mail server settings for typing "
                "mistakes; the System page's log has the details.",
            )
        log.info("test email accepted by %s: %s", cfg.smtp_host, accepted)
        return TestResult(
            ok=True,
            code=accepted.code,
            answer=str(accepted),
            explanation=f"{cfg.smtp_host} took the test email ({accepted}). "
            f"It should arrive at {to} within a minute or two.",
        )

    # -- the worker's side ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread (it first requeues sends a restart interrupted).

        A daemon with a Supervisor may instead `add(notifier.worker)` and start it there.
        """
        self.worker.start()

    def subscribe(self, bus: EventBus) -> Callable[[], None]:
        """Try waiting messages again whenever the email settings are saved."""

        def changed(event: SettingsChanged) -> None:
            if "email" in event.sections or "business" in event.sections:
                self.settings_changed()

        return bus.subscribe(SettingsChanged, changed)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the delivery thread; True when it ended within `timeout` seconds."""
        self.worker.stop()
        return self.worker.join(timeout)

    def wake(self) -> None:
        self.worker.wake()

    def _connect(self, cfg: Email) -> SmtpConnection:
        from .smtp import SmtpConnection  # smtplib and ssl: loaded when there is mail to send

        return SmtpConnection(
            cfg,
            timeout=self.timeout,
            ssl_context=self._tls_context() if cfg.security != "none" else None,
            local_hostname=self.local_hostname,
        )

    def _tls_context(self) -> ssl.SSLContext:
        """The context given at construction, or the system's trusted certificates loaded
        on the first encrypted connection and shared by every later one (an SSLContext is
        safe to share between threads; a new certificate store is read at the next start).
        One per connection cost every email tens of milliseconds of CPU."""
        import ssl

        with self._status_lock:
            if self.ssl_context is None:
                self.ssl_context = ssl.create_default_context()
            return self.ssl_context

    def _note_error(self, error: str) -> None:
        with self._status_lock:
            self._last_error, self._last_error_at = error, self._clock()

    def _later(
        self,
        msg_id: int,
        error: str,
        doc: dict[str, Any] | None,
        count_attempt: bool = False,
        wait: timedelta | None = None,
    ) -> None:
        created = datetime.fromisoformat(doc["created"]) if doc else None
        if created is not None and self._clock() - created > GIVE_UP_AFTER:
            self.outbox.fail(msg_id, f"gave up after {GIVE_UP_AFTER.days} days: {error}")
            log.error(
                "outbox message %s failed: gave up after %s days: %s",
                msg_id,
                GIVE_UP_AFTER.days,
                error,
            )
            return
        due = self.outbox.defer(msg_id, error, count_attempt=count_attempt, wait=wait)
        log.info("outbox message %s not sent (%s); next attempt %s", msg_id, error, due)

    def _drop_media(self, doc: dict[str, Any]) -> None:
        """Delete the media made for a removed message, unless another message (a copy for
        refused recipients) still attaches it; and note on its record how it left."""
        self._tell_record(doc, state=doc.get("state", ""), sent_at=doc.get("sent_at"), removed=True)
        owned = doc.get("owned_media", [])
        if not owned:
            return
        in_use = self.outbox.media_in_use()
        for ref in owned:
            if ref in in_use:
                continue
            try:
                self.store.media.delete(ref)
            except Exception as exc:
                log.warning("cannot delete %s: %s", ref, exc)

    def prune(self, now: datetime | None = None) -> int:
        """Remove sent messages older than the retention setting and, while no mail server
        is set, messages waiting for one longer than HOLD_WITHOUT_SERVER (or beyond the
        newest HOLD_MAX). Returns how many were removed."""
        now = now or self._clock()
        settings = self._settings()
        days = settings.email.keep_sent_days
        removed = self.outbox.prune_sent(now - timedelta(days=days))
        for doc in removed:
            self._drop_media(doc)
        if removed:
            log.info(
                "removed %d sent email(s) older than %d days from the outbox", len(removed), days
            )
        held: list[dict[str, Any]] = []
        if not settings.email.smtp_host:
            held = self.outbox.prune_unsent(now - HOLD_WITHOUT_SERVER, HOLD_MAX)
            for doc in held:
                self._drop_media(doc)
            if held:
                log.warning(
                    "removed %d email(s) that waited for a mail server for over %d days (or "
                    "beyond the newest %d): set one on the Email page",
                    len(held),
                    HOLD_WITHOUT_SERVER.days,
                    HOLD_MAX,
                )
        return len(removed) + len(held)

    def deliver_due(self) -> int:
        """One delivery round: send every message that is due. Returns how many were sent.

        Called by the worker thread; tests call it directly to step without threads.
        """
        settings = self._settings()
        cfg = settings.email
        if not cfg.smtp_host:
            return 0
        due = self.outbox.due(self._clock())
        if not due:
            return 0
        sender = self.sender(settings)
        sent = 0
        conn: SmtpConnection | None = None
        claimed: int | None = None  # the message in hand: never left `sending`
        try:
            for i, msg_id in enumerate(due):
                if self.worker.stopping.is_set():
                    break
                self.worker.beat()
                doc = self.outbox.claim(msg_id)
                if doc is None:
                    continue
                claimed = msg_id
                try:
                    msg = build_message(doc, sender, self.store.media)
                except Exception as exc:
                    log.exception("outbox message %s cannot be built", msg_id)
                    self.outbox.fail(msg_id, f"the email cannot be built: {exc}")
                    continue
                try:
                    if conn is None or not conn.connected:
                        conn = self._connect(cfg)
                    accepted = conn.send(msg, sender.address, doc.get("rcpt") or doc["to"])
                except MailServerError as exc:
                    self._note_error(str(exc))
                    # Refused just after the start: the server is not up yet, not failing.
                    soon = STARTUP_RETRY if exc.refused and self.worker.starting() else None
                    self._later(msg_id, str(exc), doc, wait=soon)
                    for rest in due[i + 1 :]:
                        self._later(
                            rest, str(exc), self.outbox.get(rest), count_attempt=True, wait=soon
                        )
                    break
                except MessageRejected as exc:
                    self._note_error(str(exc))
                    if exc.permanent:
                        self.outbox.fail(msg_id, str(exc))
                        log.error("outbox message %s refused by the mail server: %s", msg_id, exc)
                    else:
                        self._later(msg_id, str(exc), doc)
                    continue
                except Exception as exc:
                    # Not a reply of the server's: a fault of ours or of a library. The
                    # message waits its backoff like any other error, with the reason shown
                    # (and is given up after GIVE_UP_AFTER); the connection is started over.
                    log.exception("outbox message %s: unexpected error while sending", msg_id)
                    error = f"unexpected error while sending: {type(exc).__name__}: {exc}"
                    self._note_error(error)
                    self._later(msg_id, error, doc)
                    if conn is not None:
                        conn.close()
                        conn = None
                    continue
                if accepted.refused:
                    note, _ = self.outbox.mark_partly_sent(
                        msg_id, str(accepted), doc, accepted.refused
                    )
                    self._note_error(note)
                    log.warning("outbox message %s sent, not to everybody: %s", msg_id, note)
                else:
                    self.outbox.mark_sent(msg_id, str(accepted))
                with self._status_lock:
                    self._last_sent_at = self._clock()
                    if not accepted.refused:
                        self._last_error, self._last_error_at = "", None
                sent += 1
                log.info("outbox message %s sent: %s", msg_id, accepted)
        finally:
            if conn is not None:
                conn.close()
            if claimed is not None:
                # Anything that escaped above (the store, a bug) must not leave the message
                # `sending`, where nothing would ever pick it up again.
                self.outbox.release(claimed, "an unexpected error interrupted sending")
        return sent


class DeliveryWorker(Worker):
    """The thread that empties the outbox. Sleeps until woken or until something is due."""

    liveness = 600.0  # a round may wait on several SMTP timeouts

    def __init__(self, notifier: Notifier) -> None:
        super().__init__("email", restart=True)
        self._notifier = notifier
        self._wake = threading.Event()
        self._last_prune: datetime | None = None
        self.started_at: float | None = None  # monotonic time the thread started

    def starting(self) -> bool:
        """True for STARTUP_GRACE seconds after the thread started (the box is starting)."""
        started = self.started_at
        return started is not None and time.monotonic() - started < STARTUP_GRACE

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        super().stop()
        self._wake.set()

    def _wait_seconds(self) -> float:
        n = self._notifier
        if not n._settings().email.smtp_host:
            return IDLE_WAIT
        nxt = n.outbox.next_due()
        if nxt is None:
            return IDLE_WAIT
        seconds = (nxt - n._clock()).total_seconds()
        return min(max(seconds, 0.0), 60.0)  # re-read the clock at least every minute

    def run(self) -> None:
        n = self._notifier
        if self.started_at is None:  # the first start, not a restart after a crash
            self.started_at = time.monotonic()
        n.outbox.recover()  # nothing else sends: anything `sending` was cut short
        while not self.stopping.is_set():
            self._wake.clear()
            self.beat()
            pause = 0.0
            try:
                now = n._clock()
                if self._last_prune is None or abs(now - self._last_prune) >= PRUNE_EVERY:
                    self._last_prune = now
                    n.prune(now)
                n.deliver_due()
                pause = self._wait_seconds()
            except Exception as exc:
                if self.stopping.is_set():  # the store may be closing: the email stays queued
                    log.info("email delivery round cut short by the stop (%s)", exc)
                    break
                log.exception("email delivery round failed; trying again shortly")
                pause = 5.0
                try:  # nothing else sends: whatever the round left `sending` waits again
                    n.outbox.release(None, f"delivery was interrupted: {type(exc).__name__}: {exc}")
                except Exception:
                    log.exception("cannot put interrupted emails back in the queue")
            if self.stopping.is_set():
                break
            self.beat()
            self._wake.wait(max(pause, 0.01))
