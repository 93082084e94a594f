"""Text messages: intake from the SIM, the send queue, delivery reports, USSD balance checks.

Everything runs on the service's own worker thread, which talks to GSM lines through their
command futures (never on a line's thread). A part is stored durably before it is deleted
from the SIM, an outgoing message before it is sent; fingerprints keep a message whose
delete failed from being stored twice. Never `AT+CMGD=1,4`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import FieldProblem, FrontdeskError, ValidationError
from ..events import EventBus
from ..numbers import normalise
from ..protocol.at import Command, ErrorResult, Response, Timeout, parse_cusd, split_params, unquote
from ..protocol.errors import ProtocolError
from ..protocol.sms_pdu import (
    PduError,
    SmsDeliver,
    SmsEncodeError,
    SmsStatusReport,
    SmsSubmit,
    build_submit_pdus,
    count_text,
    decode_pdu,
    fingerprint,
    sender_of,
)
from ..protocol.sms_reassembly import (
    DEFAULT_TIMEOUT,
    CompletedMessage,
    Reassembler,
    ReassemblyStateError,
    part_from_record,
    part_to_record,
)
from ..store import Store
from ..workers import Worker
from .history import (
    Clause,
    Filter,
    HistoryService,
    Interaction,
    channel_key,
    contact_key,
    number_key,
    outcome_key,
)
from .history_index import words_of

if TYPE_CHECKING:
    from ..modem.line import Line
    from ..settings.model import Settings

log = logging.getLogger(__name__)

DB = "sms"
TEXT_LIMIT = 1600  # characters a page or the API accepts before counting parts
UNREADABLE_TEXT = "A text message arrived that Frontdesk could not read."
# The conversation of texts with neither a number nor a sender name (longer than any
# alphanumeric sender, which has at most 11 characters: TS 23.040 9.1.2.5).
UNKNOWN = "unknown-sender"

# +CMS ERROR codes (TS 27.005 3.2.5, TS 24.011 E.2) worth another try later: network or SIM
# busy, congestion, temporary failures. Everything else is a permanent refusal.
TRANSIENT_CMS = frozenset({17, 22, 27, 38, 41, 42, 47, 98, 111, 300, 314, 331, 332, 500})
# The SIM is missing, locked or failing (TS 27.005 3.2.5: 310 not inserted, 311 PIN required,
# 312 PH-SIM PIN, 313 failure, 316 PUK required, 317 PIN2, 318 PUK2): the owner can put it
# right (Settings, Lines), so a text to send waits for it as for any temporary failure.
SIM_NOT_READY_CMS = frozenset({310, 311, 312, 313, 316, 317, 318})
MEMORY_FULL = 322
INVALID_INDEX = 321  # TS 27.005 3.2.5: no such slot; nothing to read there
# SIM busy: +CMS ERROR: 314 (TS 27.005 3.2.5), +CME ERROR: 14 (TS 27.007 9.2.1) and the
# vendor code 515 (SIMCom, Sierra: initialisation or command processing in progress).
SIM_BUSY_CMS = frozenset({314})
SIM_BUSY_CME = frozenset({14, 515})
MESSAGE_URC_NAMES = ("+CMTI", "+CMT", "+CDSI", "+CDS", "+CUSD", "SMS Ready")


def utc_now() -> datetime:
    return datetime.now(UTC)


class SmsError(FrontdeskError):
    """A text message could not be taken (no GSM line, bad input)."""


class LinesLike(Protocol):
    def lines(self) -> list[Line]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class SmsOptions:
    """Timing of the SMS worker; tests shorten it, the defaults suit real networks."""

    reassembly_timeout: float = DEFAULT_TIMEOUT  # 24 h for missing parts, as smstools
    retry_initial: float = 30.0  # first retry of a temporary send failure
    retry_max: float = 1800.0
    give_up_after: float = 86400.0  # temporary failures for longer than this: failed
    no_line_retry: float = 60.0
    command_timeout: float = 10.0
    send_timeout: float = 60.0  # AT+CMGS: the network may take its time
    ussd_timeout: float = 20.0
    sim_full_margin: int = 2  # warn when this few message slots are left
    keep_fingerprints_days: int = 400
    # A message's two-step write record (table `messages`) once it is done: its parts are
    # `stored` by then, so it is kept only this long, then pruned.
    keep_messages_days: float = 2.0
    prune_interval: float = 86400.0  # the tables above are pruned at start-up and this often
    tick: float = 30.0  # longest sleep: the worker beats at least this often
    # A slot announced by +CMTI/+CDSI that could not be read (SIM busy, an error, no answer)
    # is read again after each of these delays; after the last, the sweep takes it.
    read_retry: tuple[float, ...] = (2.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)
    # AT+CMGL=4 on each GSM line this often, for messages whose +CMTI was lost (0: never;
    # lines are still swept when they come up and whenever a read or delete failed).
    sweep_interval: float = 900.0
    # ... and this often while parts of a long message wait for the others.
    pending_sweep_interval: float = 300.0
    # A slot whose PDU cannot be decoded is read again (bytes may have been lost on the
    # serial line) this long after, up to `garbled_reads` reads in all; the same PDU twice
    # is what the SIM holds. Only then is it kept as an unreadable text and deleted.
    garbled_reads: int = 3
    garbled_delay: float = 1.0


@dataclasses.dataclass(slots=True)
class _Owed:
    """A slot whose read failed: tried again at `due` (epoch seconds); `attempt` counts the
    failures so far."""

    attempt: int
    due: float


@dataclasses.dataclass(slots=True)
class _LineIntake:
    """What the worker still owes one line's SIM: slots to read again, and when to sweep."""

    slots: dict[tuple[str, int], _Owed] = dataclasses.field(default_factory=dict)
    sweep_due: float | None = None  # a sweep owed (a failed sweep, delete, or busy cleared)
    sweep_failures: int = 0  # sweeps in a row that could not list the memory
    last_sweep: float = 0.0  # the last sweep that listed the memory (epoch seconds)
    busy: bool = False  # the SIM answered "busy" since the last command that went through
    delete_failed: bool = False  # during the current sweep
    delete_failures: int = 0  # sweeps in a row in which a delete failed
    sim_waits: str = ""  # the SIM state (SIM PIN, ...) nothing is asked of the SIM in
    # Slots read but not decodable (or listed without their PDU), and what each read gave.
    garbled: dict[tuple[str, int], list[str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Conversation:
    """Texts with one number (or alphanumeric sender), for the inbox page."""

    key: str  # the number in E.164, or the sender's name
    number: str
    name: str
    last: Interaction
    count: int
    unread: int


@dataclasses.dataclass(frozen=True, slots=True)
class Balance:
    """The last USSD balance check."""

    at: datetime
    line: str
    code: str
    text: str
    amount: float | None
    error: str


# -- pure helpers -------------------------------------------------------------------------------

_MONEY_MARK = re.compile(
    r"[$€£¥₹]|\b(?:EUR|USD|GBP|CHF|CZK|PLN|SEK|NOK|DKK|HUF|RON|BGN|RUB|UAH|TRY|INR|AUD|CAD"
    r"|NZD|ZAR|BRL|MXN|JPY|CNY|kr|Kč|zł|Ft|lei|руб)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\d/.:-])\d+(?:[.,]\d+)?(?![\d/:])")


def parse_balance(text: str) -> float | None:
    """The first money amount in a USSD reply: a number next to a currency sign or code if
    there is one, else the first number. "Balance: EUR 4,20" -> 4.2."""
    found = list(_NUMBER.finditer(text))
    if not found:
        return None
    chosen = found[0]
    for m in found:
        near = text[max(0, m.start() - 5) : m.end() + 5]
        if _MONEY_MARK.search(near):
            chosen = m
            break
    raw = chosen.group(0)
    if "," in raw and "." not in raw:
        whole, _, frac = raw.partition(",")
        raw = f"{whole}.{frac}" if len(frac) <= 2 else whole + frac
    try:
        return float(raw)
    except ValueError:
        return None


def _cms_words(result: ErrorResult) -> str:
    if result.kind == "cms" and result.code is not None:
        words = result.message or "unknown error"
        return f"{words} (+CMS ERROR: {result.code})"
    return result.message or result.result


def sim_busy(result: object) -> bool:
    """+CMS ERROR: 314, +CME ERROR: 14 or 515: the SIM (or the modem's SMS layer) is busy."""
    if not isinstance(result, ErrorResult) or result.code is None:
        return False
    if result.kind == "cms":
        return result.code in SIM_BUSY_CMS
    return result.kind == "cme" and result.code in SIM_BUSY_CME


def sim_not_ready(sim: str) -> str:
    """The state a line reports for a SIM whose messages are out of reach (SIM PIN, SIM PUK,
    NOT INSERTED, NOT READY, PH-SIM PIN, ...), else "" (READY, or the modem did not say)."""
    state = sim.strip()
    return "" if state.upper() in ("", "READY", "UNKNOWN") else state


def _failure_words(result: object) -> str:
    """Why a command did not go through, for the log: "SIM busy", "no answer", the error."""
    if sim_busy(result):
        return "SIM busy"
    if isinstance(result, ErrorResult):
        return _cms_words(result)
    return "no answer"


def _secs(seconds: float) -> str:
    """2.0 -> "2", 0.5 -> "0.5": delays in log lines as a person writes them."""
    return f"{seconds:.3g}"


def transient(result: ErrorResult | Timeout) -> bool:
    """A send failure worth retrying: timeouts, plain ERROR, temporary +CMS codes."""
    if isinstance(result, Timeout):
        return True
    if result.kind == "cms" and result.code is not None:
        return result.code in TRANSIENT_CMS or result.code in SIM_NOT_READY_CMS
    return result.kind in ("error", "cme")


def parse_cpms(lines: Iterable[str]) -> list[tuple[str, int, int]]:
    """``+CPMS: "SM",3,20,"SM",3,20,"SM",3,20`` -> [(memory, used, total), ...]."""
    for line in lines:
        if line.upper().startswith("+CPMS:"):
            p = split_params(line.split(":", 1)[1])
            out = []
            for i in range(0, len(p) - 2, 3):
                try:
                    out.append((unquote(p[i]), int(p[i + 1]), int(p[i + 2])))
                except ValueError:
                    return out
            return out
    return []


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    """Replace {business}, {next_open}, {status}; anything else stays as written."""
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


# -- the service --------------------------------------------------------------------------------


class SmsService:
    """`send(number, text)` from any thread; intake and sending on the `sms` worker."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        settings: Callable[[], Settings],
        history: HistoryService,
        lines: LinesLike,
        *,
        clock: Callable[[], datetime] = utc_now,
        notify: Any = None,
        alerts: Any = None,
        routing: Any = None,
        contacts: Any = None,
        options: SmsOptions | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._settings = settings
        self.history = history
        self._lines = lines
        self._clock = clock
        self._notify = notify
        self._alerts = alerts
        self._routing = routing
        self._contacts = contacts
        self.options = options or SmsOptions()
        self._queued_later = False  # queued texts to look for once the history is indexed
        self._parts = store.table(DB, "parts")
        self._messages = store.table(DB, "messages")
        self._reports = store.table(DB, "reports")
        self._replies = store.table(DB, "autoreplies")
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._known: dict[str, int] = {}  # part fingerprint -> parts doc id
        self._part_line: dict[str, str] = {}
        self._reasm = Reassembler(timeout=self.options.reassembly_timeout)
        self._due: dict[str, float] = {}  # queued outgoing record id -> when to try (epoch)
        self._csms: dict[str, int] = {}  # line -> +CSMS service (1: +CMT/+CDS need +CNMA)
        self._memory: dict[str, str] = {}  # line -> current <mem1>
        self._intake: dict[str, _LineIntake] = {}  # line -> slots and sweeps owed
        self._ussd_waits: dict[str, tuple[str, float]] = {}  # line -> code, deadline
        self._recovered = False
        self._message_docs: dict[str, int] | None = None  # message fingerprint -> messages doc
        self._pruned_at = 0.0
        self.worker = _SmsWorker(self)
        self._unsubscribe: list[Callable[[], None]] = []

    # -- wiring -------------------------------------------------------------------------------

    def subscribe(self) -> None:
        """Follow lines coming up (sweep the SIM) and their message codes."""
        from ..modem import events as ev

        self._unsubscribe += [
            self._bus.subscribe(ev.LineUp, lambda e: self._q.put(("sweep", e.line))),
            self._bus.subscribe(ev.Unsolicited, lambda e: self._q.put(("urc", e))),
            self._bus.subscribe(ev.SimChanged, lambda e: self._q.put(("sim", e.line))),
        ]

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def schedule(self, scheduler: Any) -> None:
        """The balance check of every GSM line every `ussd_interval_hours` (re-made when the
        settings change)."""
        scheduler.cancel("sms-ussd")
        hours = self._settings().sms.ussd_interval_hours
        if hours > 0 and self._settings().sms.ussd_code:
            scheduler.every(hours).hours.named("balance check").tag("sms-ussd").do(
                self.check_balance
            )

    # -- public API (any thread) ----------------------------------------------------------------

    def send(
        self, number: str, text: str, line: str | None = None, *, auto_reply: bool = False
    ) -> Interaction:
        """Queue a text: validated, stored as outcome "queued", then sent by the worker.
        Raises ValidationError naming `to`, `text` or `line`."""
        settings = self._settings()
        problems: list[FieldProblem] = []
        raw = (number or "").strip()
        to = normalise(raw, settings.business.country) if raw else ""
        if not re.fullmatch(r"\+?[0-9]{3,20}", to):
            problems.append(FieldProblem("to", raw, "a phone number such as +44 7700 900123"))
        body = (text or "").strip()
        count = None
        if not body:
            problems.append(FieldProblem("text", text, "the text to send"))
        elif len(body) > TEXT_LIMIT:
            problems.append(
                FieldProblem("text", f"{len(body)} characters", f"at most {TEXT_LIMIT} characters")
            )
        else:
            count = count_text(body)
            if count.parts > settings.sms.max_parts:
                problems.append(
                    FieldProblem(
                        "text",
                        f"{count.parts} parts",
                        f"at most {settings.sms.max_parts} parts (Settings, Texts)",
                    )
                )
        names = [ln.name for ln in self.gsm_lines()]
        if line and line not in names:
            problems.append(FieldProblem("line", line, "one of the GSM lines: " + ", ".join(names)))
        if not problems and not names:
            raise SmsError("there is no GSM line to send texts: plug in a GSM modem with a SIM")
        if problems:
            raise ValidationError(problems, "text message")
        assert count is not None
        contact = self._contact(to)
        now = self._clock()
        item = Interaction(
            channel="sms",
            direction="out",
            outcome="queued",
            start=now,
            number=to,
            name=contact[1],
            line=line or "",
            text=body,
            contact_id=contact[0],
            details={
                "encoding": count.encoding,
                "parts": count.parts,
                "attempts": 0,
                "line_wanted": line or "",
                "auto_reply": auto_reply,
            },
        )
        stored = self.history.record(item)  # durable before anything goes to the modem
        with self._lock:
            self._due[stored.id] = now.timestamp()
        self._q.put(("wake", None))
        return stored

    def answered(self, reply: Interaction, by: str) -> int:
        """A person's reply answers its conversation: the texts received from the reply's
        contact (any of its numbers) or number up to the reply are marked handled by `by`
        (they can be reopened one by one). Returns how many were open."""
        from .history import OPEN, channel_key, contact_key, number_key

        keys = [number_key(reply.number)] if reply.number else []
        if reply.contact_id is not None:
            keys.append(contact_key(reply.contact_id))
        if not keys:
            return 0
        ids: list[str] = []
        before = None
        while True:
            page = self.history.query(
                [[OPEN], [channel_key("sms")], keys],
                200,
                before=before,
                where=lambda i: i.direction == "in" and i.start <= reply.start,
            )
            ids += [i.id for i in page.items]
            before = page.next_before
            if before is None:
                break
        return self.history.mark_handled(ids, by=by) if ids else 0

    def check_balance(self, line: str | None = None) -> None:
        """Ask the network for a SIM's balance (USSD): `line`'s, or every GSM line's. The
        answer shows in `balance(line)` (and `balance_pending(line)` until it comes)."""
        self._q.put(("ussd", line))

    def balance(self, line: str | None = None) -> Balance | None:
        """The last balance check of `line`, or the last of any line."""
        if line is None:
            return _balance(self._store.get_document(DB, "ussd"))
        found = _balance(self._store.get_document(DB, f"ussd:{line}"))
        if found is None:  # checked before results were kept per line
            last = _balance(self._store.get_document(DB, "ussd"))
            found = last if last is not None and last.line == line else None
        return found

    def balance_pending(self, line: str) -> bool:
        """A balance check of `line` is waiting for the network's answer."""
        with self._lock:
            return line in self._ussd_waits

    def low_balance(self, balance: Balance | None) -> bool:
        """The amount read is under the owner's warning threshold."""
        threshold = self._settings().sms.low_balance
        return bool(
            balance is not None
            and balance.amount is not None
            and threshold > 0
            and balance.amount < threshold
        )

    def gsm_lines(self) -> list[Line]:
        return [ln for ln in self._lines.lines() if ln.status().kind == "gsm"]

    def conversations(self, n: int = 50) -> list[Conversation]:
        """Texts grouped by contact (all of a contact's numbers together), else by number or
        sender name; newest conversation first, over the whole history (the history index:
        each conversation's texts are counted through its contact or number)."""
        groups = self.history.groups([[channel_key("sms")]], n, conversation_key, _members)
        out = [
            Conversation(
                key=g.key,
                number=g.last.number,
                name=g.name,
                last=g.last,
                count=g.count,
                unread=g.open,
            )
            for g in groups
        ]
        out.sort(key=lambda c: c.last.start, reverse=True)
        return out

    def texts(self, n: int = 50) -> list[Interaction]:
        """The newest `n` texts both ways, newest first."""
        return self.history.query([[channel_key("sms")]], n, count=False).items

    def conversation(self, key: str, n: int = 200) -> list[Interaction]:
        """The newest `n` texts both ways with one contact, number or sender (a
        `conversation_key`), oldest first, however old. A bare number also finds texts filed
        under the contact who has it."""
        clauses, where = _conversation_query(key)
        page = self.history.query(clauses, n, where=where, count=False)
        return list(reversed(page.items))

    def status(self) -> dict[str, Any]:
        with self._lock:
            waiting = len(self._due)
        return {"queued": waiting, "lines": [ln.name for ln in self.gsm_lines()]}

    # -- the worker -----------------------------------------------------------------------------

    def _run(self, worker: Worker) -> None:
        if not self._recovered:
            self._recover()
            self._recovered = True
        for ln in self.gsm_lines():
            if ln.status().state not in ("down", "starting"):
                self._q.put(("sweep", ln.name))
        while not worker.stopping.is_set():
            timeout = self._sleep_for()
            try:
                task: tuple[str, Any] | None = self._q.get(timeout=timeout)
            except queue.Empty:
                task = None
            worker.beat()
            if worker.stopping.is_set():
                break
            try:
                if task is not None:
                    self._task(*task)
                self._requeue_when_indexed()
                self._intake_due()
                self._expire()
                self._send_due()
                self._ussd_expired()
                if self._clock().timestamp() - self._pruned_at >= self.options.prune_interval:
                    self._prune()
            except Exception:
                log.exception("sms worker: %s failed", task[0] if task else "timer")

    def _sleep_for(self) -> float:
        now = self._clock().timestamp()
        wake = now + self.options.tick
        deadline = self._reasm.next_deadline()
        if deadline is not None:
            wake = min(wake, deadline)
        with self._lock:
            if self._due:
                wake = min(wake, min(self._due.values()))
        with self._lock:
            for _code, deadline in self._ussd_waits.values():
                wake = min(wake, deadline)
        for name in list(self._intake):
            due = self._intake_next(name)
            if due is not None:
                wake = min(wake, due)
        return max(0.01, min(self.options.tick, wake - now))

    def _task(self, kind: str, value: Any) -> None:
        if kind == "sweep":
            self._csms.pop(value, None)
            self._memory.pop(value, None)
            self.sweep(value, "at start-up")
        elif kind == "urc":
            self._urc(value)
        elif kind == "sim":
            self._sim_changed(value)
        elif kind == "ussd":
            self._ussd(value)

    # -- recovery -----------------------------------------------------------------------------

    def _recover(self) -> None:
        """After a restart: parts stored but not yet part of a message, messages recorded
        halfway, texts still queued."""
        pending: list[dict[str, Any]] = []
        for doc in self._parts.all():
            fp = doc.get("fp")
            if not fp:
                continue
            self._known[fp] = doc.doc_id
            if doc.get("state") == "pending" and doc.get("record"):
                pending.append(doc)
                self._part_line[fp] = doc.get("line", "")
        singles: list[tuple[SmsDeliver, float, str]] = []
        multi: list[dict[str, Any]] = []
        for pdoc in pending:
            record = pdoc["record"]
            if "raw" in record:  # an unreadable text whose record may not be written yet
                self._record_unreadable(pdoc["fp"], record, pdoc.get("line", ""), recovering=True)
                continue
            try:
                if "pdu" in record:
                    whole = decode_pdu(record["pdu"])
                    if isinstance(whole, SmsDeliver):
                        singles.append((whole, float(record.get("at", 0)), pdoc["fp"]))
                    continue
                part_from_record(record)
            except (ReassemblyStateError, PduError) as exc:
                log.error("stored SMS part %s cannot be read: %s", pdoc.get("fp"), exc)
                continue
            multi.append(record)
        if multi:
            self._reasm = Reassembler.from_records(multi, timeout=self.options.reassembly_timeout)
        for part, at, fp in singles:
            msg = self._reasm.add(part, at)
            if msg is not None:
                self._complete(msg, self._part_line.get(fp, ""))
        self._expire()
        if self.history.indexing():  # after an upgrade: found once the index is built
            self._queued_later = True
        else:
            self._requeue()
        self._prune()

    def _requeue_when_indexed(self) -> None:
        if self._queued_later and not self.history.indexing():
            self._queued_later = False
            self._requeue()

    def _requeue(self) -> None:
        """Texts still queued when Frontdesk stopped (however old) go out again."""
        queued = self.history.all_of([[outcome_key("sms", "queued")]])
        for item in reversed(queued):  # oldest first: sent in the order they were queued
            if item.details.get("sending"):
                log.warning(
                    "text %s was being sent when Frontdesk stopped; sending it again", item.id
                )
            with self._lock:
                self._due[item.id] = self._clock().timestamp()

    def _prune(self) -> None:
        """Forget what is no longer needed (at start-up, then every `prune_interval`): part
        fingerprints and delivery reports after `keep_fingerprints_days`, finished message
        writes after `keep_messages_days`, after-hours answer times after the longest
        `auto_reply_hours` (30 days). Nothing pending is touched."""
        now = self._clock().timestamp()
        self._pruned_at = now
        cutoff = now - self.options.keep_fingerprints_days * 86400
        for doc in self._parts.search(
            lambda d: d.get("state") != "pending" and float(d.get("at", 0)) < cutoff
        ):
            self._parts.remove(doc.doc_id)
            self._known.pop(doc.get("fp", ""), None)
        for doc in self._reports.search(lambda d: float(d.get("at", 0)) < cutoff):
            self._reports.remove(doc.doc_id)
        done = now - self.options.keep_messages_days * 86400
        docs = self._message_index()
        for doc in self._messages.search(
            lambda d: d.get("state") == "done" and float(d.get("at", 0)) < done
        ):
            self._messages.remove(doc.doc_id)
            if docs.get(str(doc.get("fp", ""))) == doc.doc_id:
                del docs[str(doc.get("fp", ""))]
        answered = now - 720 * 3600
        for doc in self._replies.search(lambda d: float(d.get("at", 0)) < answered):
            self._replies.remove(doc.doc_id)

    def _message_index(self) -> dict[str, int]:
        """Message fingerprint -> its `messages` doc (the newest), read once: finding a
        message's write record never scans the table."""
        if self._message_docs is None:
            index: dict[str, int] = {}
            for doc in self._messages.all():
                fp = doc.get("fp")
                if fp:
                    index[str(fp)] = max(doc.doc_id, index.get(str(fp), 0))
            self._message_docs = index
        return self._message_docs

    # -- talking to a line (worker thread only) -------------------------------------------------

    def _line(self, name: str) -> Line | None:
        for ln in self._lines.lines():
            if ln.name == name:
                return ln
        return None

    def _chat(self, line: Line, command: Command) -> Response | ErrorResult | Timeout:
        """One command through the line's queue; waits here, on the SMS worker."""
        future = line.command(command)
        deadline = time.monotonic() + command.timeout + 10.0
        while True:
            try:
                return future.result(0.5)
            except FutureTimeout:
                if self.worker.stopping.is_set() or time.monotonic() > deadline:
                    return Timeout(command=command, lines=())
            except FrontdeskError as exc:  # the line went down meanwhile
                log.info("%s: %s not done: %s", line.name, command.text.split("=")[0], exc)
                return Timeout(command=command, lines=())

    def _use_memory(self, line: Line, memory: str) -> bool:
        return self._select_memory(line, memory) is None

    def _select_memory(self, line: Line, memory: str) -> ErrorResult | Timeout | None:
        """`AT+CPMS="<memory>"` unless selected already; None when it is, else the failure."""
        if self._memory.get(line.name) == memory:
            return None
        r = self._chat(line, Command(f'AT+CPMS="{memory}"', timeout=self.options.command_timeout))
        if isinstance(r, Response):
            self._memory[line.name] = memory
            return None
        log.warning("%s: cannot select message memory %s: %s", line.name, memory, _failure_words(r))
        return r

    def sweep(self, line_name: str, why: str = "by a sweep") -> int:
        """Take every message on the SIM (`AT+CMGL=4`); returns how many were stored. A
        sweep that cannot list the memory (SIM busy, no answer) is tried again later."""
        line = self._line(line_name)
        if line is None or line.status().kind != "gsm":
            self._intake.pop(line_name, None)
            return 0
        state = self._intake.setdefault(line.name, _LineIntake())
        if self._sim_waits(line, state):
            return 0
        now = self._clock().timestamp()
        state.sweep_due = None
        state.delete_failed = False
        state.last_sweep = now  # also if the sweep fails half-way: no sweep straight after
        listed, taken, memory = self._sweep(line)
        if not listed:
            delay = self._backoff(state.sweep_failures)
            state.sweep_failures += 1
            state.sweep_due = now + delay
            log.info(
                "%s: the messages on the SIM could not be listed; trying again in %s s",
                line.name,
                _secs(delay),
            )
            return taken
        state.sweep_failures = 0
        state.last_sweep = self._clock().timestamp()
        state.busy = False
        # Everything in the swept memory was listed and taken: no slot there is owed, but
        # those whose PDU came garbled (read again shortly).
        for key in [k for k in state.slots if k[0] in ("", memory) and k not in state.garbled]:
            del state.slots[key]
        if state.delete_failed:  # stored, still on the SIM: swept again to delete it
            state.sweep_due = state.last_sweep + self._backoff(state.delete_failures)
            state.delete_failures += 1
        else:
            state.delete_failures = 0
        self._check_memory(line)
        if taken or why == "at start-up":
            log.info("%s: %s message(s) taken from the SIM %s", line.name, taken, why)
        return taken

    def _sim_waits(self, line: Line, state: _LineIntake) -> bool:
        """True while the line reports its SIM not ready (it needs its PIN, ...): nothing is
        asked of the SIM, whose every answer would be "SIM PIN required"; said once. The
        sweep runs as soon as the line reports it ready (`_sim_changed`)."""
        waits = sim_not_ready(line.status().sim)
        if not waits:
            if state.sim_waits:
                log.info("%s: the SIM card is ready: reading its messages", line.name)
                state.sim_waits = ""
                state.sweep_due = self._clock().timestamp()  # swept now
            return False
        now = self._clock().timestamp()
        state.sweep_due = None
        state.last_sweep = now  # the regular sweep only checks again
        for owed in state.slots.values():
            owed.due = max(owed.due, now + self._backoff(owed.attempt))
        if state.sim_waits != waits:
            log.warning(
                "%s: the SIM card is not ready (%s): its messages are read once it is",
                line.name,
                waits,
            )
            state.sim_waits = waits
        return True

    def _sim_changed(self, line_name: str) -> None:
        """The line's SIM state changed (SimChanged): say so once when it can no longer be
        read; sweep when it is ready after a wait. A line coming up is swept by LineUp."""
        line = self._line(line_name)
        if line is None or line.status().kind != "gsm":
            return
        if line.status().state in ("down", "starting"):
            return
        state = self._intake.setdefault(line.name, _LineIntake())
        if state.sim_waits and not sim_not_ready(line.status().sim):
            self.sweep(line.name, "once the SIM was ready")
        else:
            self._sim_waits(line, state)

    def _sweep(self, line: Line) -> tuple[bool, int, str]:
        """(listed, messages stored, memory swept)."""
        t = self.options.command_timeout
        self._chat(line, Command("AT+CMGF=0", timeout=t))
        cpms = self._chat(line, Command("AT+CPMS?", timeout=t))
        memories = parse_cpms(cpms.lines) if isinstance(cpms, Response) else []
        receive = memories[2][0] if len(memories) >= 3 else (memories[0][0] if memories else "")
        if memories:
            self._memory[line.name] = memories[0][0]
        if receive and not self._use_memory(line, receive):
            return False, 0, receive
        listing = self._chat(line, Command("AT+CMGL=4", timeout=max(t, 30.0)))
        if not isinstance(listing, Response):
            self._command_failed(line, "AT+CMGL=4", listing)
            return False, 0, receive
        taken = 0
        memory = receive or self._memory.get(line.name, "")
        lines = list(listing.lines)
        for i, text in enumerate(lines):
            if not text.upper().startswith("+CMGL:"):
                continue
            p = split_params(text.split(":", 1)[1])
            try:
                index, stat = int(p[0]), int(p[1])
            except (ValueError, IndexError):
                continue
            pdu = lines[i + 1] if i + 1 < len(lines) else ""
            if not pdu or pdu.upper().startswith("+CMGL:"):  # its PDU line was lost
                self._read_again(line, receive, index, "", "the listing had no PDU for it")
                continue
            if self._take(line, index, pdu, stat, receive):
                taken += 1
        return True, taken, memory

    def _backoff(self, failures: int) -> float:
        delays = self.options.read_retry or (30.0,)
        return delays[min(failures, len(delays) - 1)]

    def _periodic_sweep(self, state: _LineIntake) -> float | None:
        """When the line's next regular sweep is due: every `sweep_interval`, more often while
        parts of a long message wait; none while a sweep is owed anyway."""
        if state.sweep_due is not None or not state.last_sweep:
            return None
        interval = self.options.sweep_interval
        if self._reasm.next_deadline() is not None and self.options.pending_sweep_interval > 0:
            interval = min(interval or math.inf, self.options.pending_sweep_interval)
        return state.last_sweep + interval if interval > 0 else None

    def _intake_next(self, name: str) -> float | None:
        """When something is next owed to a line's SIM (epoch seconds), or None."""
        state = self._intake[name]
        times = [o.due for o in state.slots.values()]
        if state.sweep_due is not None:
            times.append(state.sweep_due)
        periodic = self._periodic_sweep(state)
        if periodic is not None:
            times.append(periodic)
        return min(times) if times else None

    def _intake_due(self) -> None:
        """Sweep the lines whose sweep is due, then read again the slots that are due. Each
        of these either goes through or is put off by its backoff: nothing stays due."""
        for name in list(self._intake):
            due = self._intake_next(name)
            now = self._clock().timestamp()
            if due is None or due > now:
                continue
            line = self._line(name)
            if line is None or line.status().kind != "gsm":
                self._intake.pop(name, None)
                continue
            state = self._intake[name]
            if line.status().state in ("down", "starting"):
                # Swept when it comes up again (LineUp); slots in another memory wait.
                state.sweep_due = None
                state.last_sweep = now
                for owed in state.slots.values():
                    owed.due = max(owed.due, now + self._backoff(owed.attempt))
                continue
            if self._sim_waits(line, state):
                continue
            periodic = self._periodic_sweep(state)
            if state.sweep_due is not None and state.sweep_due <= now:
                self.sweep(name)
            elif periodic is not None and periodic <= now:
                self.sweep(name, "by the regular sweep")
            for key, owed in sorted(state.slots.items()):
                if owed.due <= now and state.slots.get(key) is owed:
                    self._read(line, key[0], key[1])

    def _read(self, line: Line, memory: str, index: int) -> bool:
        """`AT+CMGR=<index>` and take what is there. A read that fails is owed: tried again
        after `read_retry` delays, so the message is never left on the SIM."""
        state = self._intake.setdefault(line.name, _LineIntake())
        key = (memory, index)
        refused = self._select_memory(line, memory) if memory else None
        if refused is not None:
            self._read_failed(line, state, key, refused)
            return False
        r = self._chat(line, Command(f"AT+CMGR={index}", timeout=self.options.command_timeout))
        if isinstance(r, ErrorResult) and r.code == INVALID_INDEX and r.kind == "cms":
            log.warning("%s: there is no slot %s to read", line.name, index)
            state.slots.pop(key, None)
            state.garbled.pop(key, None)
            return True
        if not isinstance(r, Response):
            self._read_failed(line, state, key, r)
            return False
        owed = state.slots.pop(key, None)
        if owed is not None:
            log.info("%s: slot %s read on try %s", line.name, index, owed.attempt + 1)
        if state.busy:
            # The SIM answers again: anything that arrived while it was busy (a +CMTI the
            # modem could not give, a delete that failed) is taken by a sweep now.
            state.busy = False
            state.sweep_due = self._clock().timestamp()
        lines = list(r.lines)
        for i, text in enumerate(lines):
            if text.upper().startswith("+CMGR:"):
                p = split_params(text.split(":", 1)[1])
                stat = int(p[0]) if p and p[0].strip().isdigit() else 0
                pdu = lines[i + 1] if i + 1 < len(lines) else ""
                if not pdu:
                    self._read_again(line, memory, index, "", "the answer had no PDU")
                    return False
                self._take(line, index, pdu, stat, memory)
                return True
        log.info("%s: slot %s is empty (taken already)", line.name, index)
        state.garbled.pop(key, None)
        return True

    def _read_failed(
        self, line: Line, state: _LineIntake, key: tuple[str, int], result: object
    ) -> None:
        now = self._clock().timestamp()
        words = _failure_words(result)
        if sim_busy(result):
            state.busy = True
        owed = state.slots.get(key)
        attempt = owed.attempt if owed is not None else 0
        delays = self.options.read_retry
        if attempt >= len(delays):
            state.slots.pop(key, None)
            delay = self._backoff(attempt)
            state.sweep_due = min(state.sweep_due or math.inf, now + delay)
            log.warning(
                "%s: %s reading slot %s, %s tries; it is left to the sweep in %s s",
                line.name,
                words,
                key[1],
                attempt + 1,
                _secs(delay),
            )
            return
        delay = delays[attempt]
        state.slots[key] = _Owed(attempt=attempt + 1, due=now + delay)
        log.warning(
            "%s: %s reading slot %s; trying again in %s s", line.name, words, key[1], _secs(delay)
        )

    def _delete(self, line: Line, index: int) -> bool:
        """`AT+CMGD=<index>`: one slot, only after its message is stored."""
        r = self._chat(line, Command(f"AT+CMGD={index}", timeout=self.options.command_timeout))
        if isinstance(r, Response):
            return True
        self._command_failed(line, f"AT+CMGD={index}", r)
        # Stored but still on the SIM: a sweep reads it again, finds its fingerprint and only
        # deletes it.
        state = self._intake.setdefault(line.name, _LineIntake())
        state.delete_failed = True
        if sim_busy(r):
            state.busy = True
        if state.sweep_due is None:
            state.sweep_due = self._clock().timestamp() + self._backoff(state.delete_failures)
        return False

    def _command_failed(self, line: Line, what: str, result: Any) -> None:
        words = _failure_words(result)
        log.warning("%s: %s failed: %s", line.name, what, words)
        if sim_busy(result) and line.name in self._intake:
            self._intake[line.name].busy = True
        if isinstance(result, ErrorResult) and result.code == MEMORY_FULL:
            self._sim_full(line.name, "the modem reports: memory full (+CMS ERROR: 322)")

    # -- intake ---------------------------------------------------------------------------------

    def _take(self, line: Line, index: int | None, pdu: str, stat: int, memory: str = "") -> bool:
        """One PDU read from the SIM (or a +CMT): store, then delete, then reassemble. A PDU
        that cannot be decoded is read again before anything is deleted (`_read_again`)."""
        try:
            msg = decode_pdu(pdu.strip())
        except PduError as exc:
            if index is not None and self._read_again(line, memory, index, pdu, str(exc)):
                return False
            return self._unreadable(line, index, pdu, str(exc), memory)
        if index is not None:
            self._read_well(line, memory, index)
        if isinstance(msg, SmsSubmit):
            return False  # an outgoing message kept on the SIM: not ours to take
        if isinstance(msg, SmsStatusReport):
            fp = fingerprint(msg)
            if fp not in self._known:
                self._report(msg)
                self._remember(fp, line.name, "report")
            if index is not None:
                self._delete(line, index)
            return False
        fp = fingerprint(msg)
        if fp in self._known:
            log.info("%s: slot %s holds a message already stored; deleting it", line.name, index)
            if index is not None:
                self._delete(line, index)
            return False
        now = self._clock().timestamp()
        if msg.concat is not None and msg.concat.total > 1:
            record = part_to_record(msg, now)
        else:  # a whole message: its PDU is enough to read it again after a restart
            record = {"pdu": pdu.strip().upper(), "at": now}
        self._remember(fp, line.name, "pending", record)
        if index is not None:
            self._delete(line, index)
        self._feed(msg, fp, now, line.name)
        return True

    def _remember(
        self, fp: str, line: str, state: str, record: dict[str, Any] | None = None
    ) -> None:
        doc = {"fp": fp, "line": line, "state": state, "at": self._clock().timestamp()}
        if record is not None:
            doc["record"] = record
        self._known[fp] = self._parts.insert(doc)  # journalled and fsync'd
        self._part_line[fp] = line

    def _mark(self, fps: Iterable[str], state: str) -> None:
        for fp in fps:
            doc_id = self._known.get(fp)
            if doc_id is not None:
                self._parts.put(
                    doc_id,
                    {
                        "fp": fp,
                        "line": self._part_line.get(fp, ""),
                        "state": state,
                        "at": self._clock().timestamp(),
                    },
                )

    def _feed(self, part: SmsDeliver, fp: str, now: float, line: str) -> None:
        done = self._reasm.add(part, now)
        if done is not None:
            self._complete(done, line)
        elif fp not in self._reasm.pending_fingerprints():
            self._mark([fp], "duplicate")  # the same part again with another time stamp
        self._expire()

    def _expire(self) -> None:
        for msg in self._reasm.expire(self._clock().timestamp()):
            line = next((self._part_line[f] for f in msg.fingerprints if f in self._part_line), "")
            self._complete(msg, line)

    def _read_again(self, line: Line, memory: str, index: int, pdu: str, error: str) -> bool:
        """A slot's PDU could not be decoded (or did not come): True when the slot is to be
        read again with `AT+CMGR` (nothing deleted yet); False once it has been read
        `garbled_reads` times, or twice the same: then it is what the SIM holds."""
        state = self._intake.setdefault(line.name, _LineIntake())
        key = (memory, index)
        seen = state.garbled.setdefault(key, [])
        seen.append(pdu.strip().upper())
        same = len(seen) >= 2 and seen[-1] == seen[-2] and seen[-1] != ""
        if same or len(seen) >= max(1, self.options.garbled_reads):
            return False
        due = self._clock().timestamp() + self.options.garbled_delay
        owed = state.slots.get(key)
        state.slots[key] = _Owed(attempt=owed.attempt if owed else 0, due=due)
        log.warning(
            "%s: slot %s could not be read (%s); reading it again (read %s of at most %s)",
            line.name,
            index,
            error,
            len(seen) + 1,
            self.options.garbled_reads,
        )
        return True

    def _read_well(self, line: Line, memory: str, index: int) -> None:
        state = self._intake.get(line.name)
        seen = state.garbled.pop((memory, index), None) if state is not None else None
        if seen:
            log.info("%s: slot %s read correctly on read %s", line.name, index, len(seen) + 1)

    def _unreadable(
        self, line: Line, index: int | None, pdu: str, error: str, memory: str = ""
    ) -> bool:
        """A PDU that cannot be decoded, as the SIM holds it (or a +CMT): kept as a text of
        its own (raw PDU, what is wrong, the sender when its address is readable) and
        emailed, then its slot deleted. Stored like a part: a stop half-way records it at
        the next start (`_recover`)."""
        state = self._intake.get(line.name)
        reads = state.garbled.pop((memory, index), []) if state and index is not None else []
        raw = pdu.strip().upper()
        fp = "raw:" + hashlib.sha256(raw.encode()).hexdigest()[:28]
        if fp not in self._known:
            log.warning("%s: a message could not be read (%s); kept as it is", line.name, error)
            record = {
                "raw": raw[:2000],
                "error": error,
                "reads": max(1, len(reads)),
                "at": self._clock().timestamp(),
            }
            self._remember(fp, line.name, "pending", record)
            if index is not None:
                self._delete(line, index)
            self._record_unreadable(fp, record, line.name)
        elif index is not None:
            self._delete(line, index)
        return True

    def _record_unreadable(
        self, fp: str, record: dict[str, Any], line: str, *, recovering: bool = False
    ) -> None:
        """One record (after a restart, looked for first by its fingerprint), then the
        email."""
        stored = None
        if not recovering or self._find_recorded(fp, _float(record.get("at"))) is None:
            stored = self.history.record(self._unreadable_interaction(fp, record, line))
        self._mark([fp], "stored")
        if stored is not None:
            self._after_received(stored)

    def _unreadable_interaction(self, fp: str, record: dict[str, Any], line: str) -> Interaction:
        raw, error = str(record.get("raw", "")), str(record.get("error", ""))
        sender = sender_of(raw)
        number, name, contact_id = "", "", None
        if sender is not None and sender.alphanumeric:
            name = sender.number
        elif sender is not None:
            number = normalise(sender.number, self._settings().business.country)
            contact_id, name = self._contact(number)
        return Interaction(
            channel="sms",
            direction="in",
            outcome="received",
            start=datetime.fromtimestamp(float(record.get("at", 0)), UTC),
            number=number,
            name=name,
            line=line,
            text=UNREADABLE_TEXT,
            contact_id=contact_id,
            details={
                "fingerprint": fp,
                "unreadable": True,
                "pdu": raw,
                "error": error,
                "reads": int(record.get("reads", 1)),
                "sender": sender.number if sender is not None else "",
            },
        )

    def _complete(self, msg: CompletedMessage, line: str) -> None:
        """A whole message (or what arrived of it): one interaction, exactly once."""
        index = self._message_index()
        known = index.get(msg.fingerprint)
        doc = self._messages.get(known) if known is not None else None
        if doc is not None and doc.get("history_id"):
            self._mark(msg.fingerprints, "stored")
            return
        record_id = (
            self._find_recorded(msg.fingerprint, msg.received_at) if doc is not None else None
        )
        if doc is None:
            doc_id = self._messages.insert(
                {"fp": msg.fingerprint, "state": "recording", "at": msg.received_at}
            )
            index[msg.fingerprint] = doc_id
        else:
            doc_id = doc.doc_id
        stored: Interaction | None = None
        if record_id is None:
            stored = self.history.record(self._interaction(msg, line))
            record_id = stored.id
        self._messages.update(doc_id, {"history_id": record_id, "state": "recorded"})
        self._mark(msg.fingerprints, "stored")
        if stored is not None:
            self._after_received(stored)
        self._messages.update(doc_id, {"state": "done"})

    def _find_recorded(self, fp: str, at: float | None = None) -> str | None:
        """A stop between recording a message and noting it: look for it in the history
        (by its fingerprint, among texts since an hour before it came when that is known)."""
        since = datetime.fromtimestamp(at, UTC) - timedelta(hours=1) if at else None
        found = self.history.find_detail("sms", "fingerprint", fp, since)
        return found.id if found else None

    def _interaction(self, msg: CompletedMessage, line: str) -> Interaction:
        sender = msg.sender
        country = self._settings().business.country
        if sender.alphanumeric:
            number, name, contact_id = "", sender.number, None
        else:
            number = normalise(sender.number, country)
            contact_id, name = self._contact(number)
        return Interaction(
            channel="sms",
            direction="in",
            outcome="received",
            start=datetime.fromtimestamp(msg.received_at, UTC),
            number=number,
            name=name,
            line=line,
            text=msg.text,
            contact_id=contact_id,
            details={
                "fingerprint": msg.fingerprint,
                "sender": sender.number,
                "parts": msg.total,
                "received_parts": list(msg.received),
                "missing": list(msg.missing),
                "complete": msg.complete,
                "smsc_time": msg.timestamp.isoformat() if msg.timestamp else None,
                "encoding": msg.encoding,
                "class0": msg.message_class == 0,
                "data": msg.data.hex() if msg.data else "",
            },
        )

    def _contact(self, number: str) -> tuple[int | None, str]:
        contacts = self._contacts
        if contacts is None or not number:
            return None, ""
        lookup = getattr(contacts, "lookup", None) or getattr(contacts, "by_number", None)
        try:
            found = lookup(number) if lookup is not None else None
        except Exception:
            log.debug("contact lookup failed", exc_info=True)
            return None, ""
        if found is None:
            return None, ""
        if isinstance(found, str):
            return None, found
        return getattr(found, "id", None), str(getattr(found, "title", "") or "")

    def _after_received(self, item: Interaction) -> None:
        if self._notify is not None:
            from .notify import SmsNotice

            text = item.text
            if item.details.get("unreadable"):
                text = (
                    f"{UNREADABLE_TEXT} What was wrong: {item.details.get('error', '')}. "
                    "What arrived is kept with it: open it from the link below."
                )
            try:
                self._notify.sms(
                    SmsNotice(
                        number=item.number or item.name,
                        at=item.start,
                        text=text,
                        contact_name=item.name if item.number else "",
                        record_id=item.id,
                        line=item.line,
                    )
                )
            except Exception:
                log.exception("the email for text %s could not be queued", item.id)
        try:
            self._auto_reply(item)
        except FrontdeskError as exc:
            log.warning("no after-hours answer to %s: %s", item.id, exc)

    def _auto_reply(self, item: Interaction) -> None:
        s = self._settings()
        if not s.sms.auto_reply or not item.number or self._routing is None:
            return
        if item.details.get("unreadable"):
            return  # nobody knows what it said
        if sum(c.isdigit() for c in item.number) < 6:
            return  # short codes and services do not read answers
        now = self._clock()
        status = self._routing.status(now)
        if status.is_open:
            return
        period = s.sms.auto_reply_hours * 3600
        last = self._replies.search(lambda d: d.get("number") == item.number)
        if last and now.timestamp() - float(last[-1].get("at", 0)) < period:
            return
        values = {
            "business": s.business.name,
            "next_open": _when_text(status.next_change, now) or "as soon as we can",
            "status": status.text,
        }
        text = fill_placeholders(s.sms.auto_reply_text, values)
        if last:
            self._replies.update(last[-1].doc_id, {"at": now.timestamp()})
        else:
            self._replies.insert({"number": item.number, "at": now.timestamp()})
        self.send(item.number, text, item.line or None, auto_reply=True)

    # -- unsolicited codes ----------------------------------------------------------------------

    def _urc(self, event: Any) -> None:
        line = self._line(event.line)
        if line is None:
            return
        name = event.name
        if name in ("+CMTI", "+CDSI"):
            p = split_params(event.args)
            read = len(p) >= 2 and p[1].strip().isdigit()
            if read and self._read(line, unquote(p[0]), int(p[1])):
                self._check_memory(line)  # not while the SIM is busy
        elif name in ("+CMT", "+CDS"):
            if not event.extra:
                log.warning("%s: %s without its PDU", line.name, name)
                return
            self._take(line, None, event.extra[0], 0)  # stored (or handled) first ...
            if self._service(line) == 1:  # ... then acknowledged (TS 27.005 3.4.4)
                r = self._chat(line, Command("AT+CNMA", timeout=self.options.command_timeout))
                if not isinstance(r, Response):
                    self._command_failed(line, "AT+CNMA", r)
        elif name == "SMS Ready":
            # SIM800: the modem finished reading the SIM's message store (after power-on or
            # a SIM busy spell); a +CMTI may have been dropped meanwhile. At start-up the line
            # is swept when it comes up (LineUp) instead.
            if line.status().state not in ("down", "starting"):
                self.sweep(line.name, "once the SIM was ready")
        elif name == "+CUSD":
            cusd = parse_cusd(event.text)
            if cusd is not None:
                self._ussd_reply(line, cusd)

    def _service(self, line: Line) -> int:
        """+CSMS <service>: with 1, a +CMT/+CDS must be acknowledged with +CNMA."""
        if line.name not in self._csms:
            r = self._chat(line, Command("AT+CSMS?", timeout=self.options.command_timeout))
            service = 0
            if isinstance(r, Response):
                for text in r.lines:
                    if text.upper().startswith("+CSMS:"):
                        p = split_params(text.split(":", 1)[1])
                        service = int(p[0]) if p and p[0].strip().isdigit() else 0
            self._csms[line.name] = service
        return self._csms[line.name]

    def _check_memory(self, line: Line) -> None:
        r = self._chat(line, Command("AT+CPMS?", timeout=self.options.command_timeout))
        if not isinstance(r, Response):
            return
        memories = parse_cpms(r.lines)
        if not memories:
            return
        memory, used, total = memories[2] if len(memories) >= 3 else memories[0]
        if total and total - used <= self.options.sim_full_margin:
            self._sim_full(line.name, f"{used} of {total} message slots in {memory} are used")
        elif self._alerts is not None:
            self._alerts.resolve_incident(f"sim-full:{line.name}")

    def _sim_full(self, line: str, details: str) -> None:
        log.warning("%s: the message memory is (nearly) full: %s", line, details)
        if self._alerts is not None:
            self._alerts.raise_incident(
                f"sim-full:{line}",
                f"The SIM card of line {line} has no room for texts",
                details,
                advice="New texts wait at the network until there is room. Delete old or sent "
                "messages stored on the SIM card (in a phone), or check the modem.",
            )

    # -- sending --------------------------------------------------------------------------------

    def _send_due(self) -> None:
        now = self._clock().timestamp()
        with self._lock:
            due = sorted((t, rid) for rid, t in self._due.items() if t <= now)
        for _t, record_id in due:
            self._send_one(record_id)

    def _pick_line(self, wanted: str) -> Line | None:
        lines = self.gsm_lines()
        choice = wanted or self._settings().sms.send_line
        if choice:
            lines = [ln for ln in lines if ln.name == choice] or lines
        up = [ln for ln in lines if ln.status().state not in ("down", "starting")]
        # A line whose SIM needs its PIN (or is missing) only answers +CMS ERROR: 311.
        ready = [ln for ln in up if not sim_not_ready(ln.status().sim)]
        return ready[0] if ready else None

    def _no_line_words(self, wanted: str) -> str:
        """Why no line can send now, for the Messages page: a SIM that is not ready is named."""
        for ln in self.gsm_lines():
            if wanted and ln.name != wanted:
                continue
            sim = sim_not_ready(ln.status().sim)
            if sim and ln.status().state not in ("down", "starting"):
                return f"the SIM card on {ln.name} is not ready ({sim}); the text waits for it"
        return "no GSM line is ready"

    def _next_reference(self) -> int:
        doc = self._store.get_document(DB, "counter") or {}
        ref = (int(doc.get("reference", 0)) + 1) % 256
        self._store.put_document(DB, "counter", {"reference": ref})
        return ref

    def _send_one(self, record_id: str) -> None:
        item = self.history.get(record_id)
        if item is None or item.outcome != "queued":
            with self._lock:
                self._due.pop(record_id, None)
            return
        details = dict(item.details)
        now = self._clock()
        line = self._pick_line(str(details.get("line_wanted", "")))
        if line is None:
            details["last_error"] = self._no_line_words(str(details.get("line_wanted", "")))
            self.history.update(record_id, details=details)
            self._retry_later(record_id, self.options.no_line_retry)
            return
        if "reference" not in details:
            details["reference"] = self._next_reference()
        try:
            pdus = build_submit_pdus(
                item.number,
                item.text,
                reference=int(details["reference"]),
                request_status_report=True,
            )
        except SmsEncodeError as exc:
            self._failed(record_id, details, f"it cannot be sent as a text: {exc}")
            return
        sent: list[dict[str, Any]] = list(details.get("sent_parts", []))
        done_seqs = {int(p["seq"]) for p in sent}
        details.update(
            attempts=int(details.get("attempts", 0)) + 1,
            last_attempt=_iso(now),
            sending=True,
            parts=len(pdus),
        )
        self.history.update(record_id, details=details, line=line.name)
        for pdu in pdus:
            if pdu.seq in done_seqs:
                continue  # a part that went out before a temporary failure
            command = Command(
                f"AT+CMGS={pdu.length}", timeout=self.options.send_timeout, body=pdu.hex.encode()
            )
            try:
                result = self._chat(line, command)
            except (FrontdeskError, ProtocolError) as exc:
                details.update(sending=False, last_error=str(exc))
                self.history.update(record_id, details=details)
                self._retry_later(record_id, self.options.no_line_retry)
                return
            if isinstance(result, Response):
                mr = _message_reference(result.lines)
                sent.append({"seq": pdu.seq, "mr": mr})
                details["sent_parts"] = sent
                self.history.update(record_id, details=details)
                if mr is not None:
                    self._reports.insert(
                        {
                            "mr": mr,
                            "number": item.number,
                            "record": record_id,
                            "seq": pdu.seq,
                            "total": len(pdus),
                            "at": self._clock().timestamp(),
                        }
                    )
                continue
            words = _cms_words(result) if isinstance(result, ErrorResult) else "no answer"
            details.update(sending=False, last_error=words)
            if isinstance(result, ErrorResult) and result.code == MEMORY_FULL:
                self._sim_full(line.name, words)
            if not transient(result):
                self._failed(record_id, details, words)
                return
            age = now.timestamp() - item.start.timestamp()
            if age > self.options.give_up_after:
                self._failed(
                    record_id,
                    details,
                    f"gave up after {details['attempts']} tries; last: {words}",
                )
                return
            self.history.update(record_id, details=details)
            attempts = int(details["attempts"])
            delay = min(
                self.options.retry_max, self.options.retry_initial * 2 ** max(0, attempts - 1)
            )
            log.info("text %s not sent (%s); trying again in %.0f s", record_id, words, delay)
            self._retry_later(record_id, delay)
            return
        details.update(sending=False, last_error="", sent_at=_iso(self._clock()))
        self.history.update(record_id, outcome="sent", end=self._clock(), details=details)
        with self._lock:
            self._due.pop(record_id, None)
        log.info("text %s sent on %s (%s part(s))", record_id, line.name, len(pdus))

    def _retry_later(self, record_id: str, delay: float) -> None:
        with self._lock:
            self._due[record_id] = self._clock().timestamp() + delay

    def _failed(self, record_id: str, details: dict[str, Any], words: str) -> None:
        details.update(sending=False, error=words, last_error=words)
        self.history.update(record_id, outcome="failed", end=self._clock(), details=details)
        with self._lock:
            self._due.pop(record_id, None)
        log.warning("text %s not sent: %s", record_id, words)

    # -- delivery reports -----------------------------------------------------------------------

    def _report(self, report: SmsStatusReport) -> None:
        """Match a status report to the part sent with that TP-MR to that number."""
        country = self._settings().business.country
        number = normalise(report.recipient.number, country)
        candidates = self._reports.search(
            lambda d: (
                d.get("mr") == report.message_reference
                and _same_number(d.get("number", ""), number)
            )
        )
        if not candidates:
            log.info(
                "a delivery report (reference %s) matches no sent text", report.message_reference
            )
            return
        doc = max(candidates, key=lambda d: float(d.get("at", 0)))
        self._reports.update(
            doc.doc_id,
            {"status": report.status, "category": report.category, "words": report.status_text},
        )
        record_id = doc["record"]
        item = self.history.get(record_id)
        if item is None or item.outcome not in ("sent", "delivered", "queued"):
            return
        details = dict(item.details)
        if report.category == "pending":
            details["report"] = report.status_text
            self.history.update(record_id, details=details)
            return
        parts = self._reports.search(lambda d: d.get("record") == record_id)
        if report.category in ("failed", "unknown"):
            words = f"not delivered: {report.status_text}"
            details.update(error=words, report=report.status_text)
            self.history.update(record_id, outcome="failed", details=details)
            return
        delivered = {int(d["seq"]) for d in parts if d.get("category") == "delivered"}
        total = int(doc.get("total", 1))
        details["report"] = report.status_text
        if len(delivered) >= total:
            when = report.discharge_time or self._clock()
            details["delivered_at"] = _iso(when)
            self.history.update(record_id, outcome="delivered", details=details)
        else:
            self.history.update(record_id, details=details)

    # -- USSD -----------------------------------------------------------------------------------

    def _ussd(self, wanted: str | None) -> None:
        """`wanted` line's balance check, or every GSM line's (None)."""
        code = self._settings().sms.ussd_code
        if wanted is None:
            names = [ln.name for ln in self.gsm_lines()]
            if not names:
                self._balance_result("", code, "", "no GSM line is ready")
            for name in names:
                self._ussd_on(name, code)
        else:
            self._ussd_on(wanted, code)

    def _ussd_on(self, name: str, code: str) -> None:
        if not code:
            self._balance_result(name, code, "", "no balance check code is set (Settings, Texts)")
            return
        line = self._line(name)
        if line is None or line.status().state in ("down", "starting"):
            self._balance_result(name, code, "", f"{name} is not ready")
            return
        with self._lock:
            if name in self._ussd_waits:
                return  # asked already: the answer is on its way
            self._ussd_waits[name] = (code, self._clock().timestamp() + self.options.ussd_timeout)
        r = self._chat(line, Command(f'AT+CUSD=1,"{code}",15', timeout=self.options.ussd_timeout))
        if isinstance(r, Response):
            for text in r.lines:  # the reply may come before the OK (REFERENCE.md 2)
                cusd = parse_cusd(text) if text.upper().startswith("+CUSD") else None
                if cusd is not None:
                    self._ussd_reply(line, cusd)
        else:
            words = _cms_words(r) if isinstance(r, ErrorResult) else "no answer"
            with self._lock:
                self._ussd_waits.pop(name, None)
            self._balance_result(line.name, code, "", f"the network did not take it: {words}")

    def _ussd_reply(self, line: Line, cusd: Any) -> None:
        with self._lock:
            wait = self._ussd_waits.pop(line.name, None)
        if wait is None:
            log.debug("%s: +CUSD nobody waits for (m=%s)", line.name, cusd.m)
            return
        code = wait[0]
        if cusd.m == 2 and not cusd.text:
            self._balance_result(line.name, code, "", "the network ended the request")
            return
        text = (cusd.decoded or "").strip()
        if cusd.m == 1:  # the network asks for more: end the session
            self._chat(line, Command("AT+CUSD=2", timeout=self.options.command_timeout))
        self._balance_result(line.name, code, text, "" if text else "an empty answer")

    def _ussd_expired(self) -> None:
        now = self._clock().timestamp()
        with self._lock:
            late = [(n, w) for n, w in self._ussd_waits.items() if now >= w[1]]
            for name, _wait in late:
                del self._ussd_waits[name]
        for name, (code, _deadline) in late:
            self._balance_result(name, code, "", "no answer from the network")

    def _balance_result(self, line: str, code: str, text: str, error: str) -> None:
        """Keep the answer (per line, and as the last of any line); under the threshold,
        the low-balance incident (one email until it is topped up), else it is resolved."""
        amount = parse_balance(text) if text else None
        doc = {
            "at": _iso(self._clock()),
            "line": line,
            "code": code,
            "text": text,
            "amount": amount,
            "error": error,
        }
        if line:
            self._store.put_document(DB, f"ussd:{line}", doc)
        self._store.put_document(DB, "ussd", doc)
        log.info("balance check on %s: %s", line or "no line", text or error)
        threshold = self._settings().sms.low_balance
        if self._alerts is None or amount is None or threshold <= 0:
            return
        key = f"balance:{line}"
        if amount < threshold:
            self._alerts.raise_incident(
                key,
                f"The SIM card of line {line} is low on credit",
                f"The balance check says: {text} (the warning is for less than {threshold:g})",
                advice="Top up the SIM card: without credit, texts and calls on this line stop.",
            )
        else:
            self._alerts.resolve_incident(key)


class _SmsWorker(Worker):
    """The `sms` thread: wakes for queued work, timers, and at once for `stop()`."""

    def __init__(self, service: SmsService) -> None:
        super().__init__("sms", liveness=max(120.0, service.options.tick * 4))
        self.service = service

    def run(self) -> None:
        self.service._run(self)

    def stop(self) -> None:
        super().stop()
        self.service._q.put(("wake", None))


def _balance(doc: dict[str, Any] | None) -> Balance | None:
    if not doc:
        return None
    amount = doc.get("amount")
    return Balance(
        at=datetime.fromisoformat(doc["at"]),
        line=doc.get("line", ""),
        code=doc.get("code", ""),
        text=doc.get("text", ""),
        amount=float(amount) if isinstance(amount, int | float) else None,
        error=doc.get("error", ""),
    )


def _is_sms(item: Interaction) -> bool:
    return item.channel == "sms"


def _float(value: Any) -> float | None:
    try:
        return float(value) if value else None
    except (TypeError, ValueError):
        return None


def _members(item: Interaction) -> tuple[list[Clause], Filter | None] | None:
    """What selects the texts of `item`'s conversation in the history index (see
    `HistoryService.groups`): a contact's by its key; a number's by the number, checked
    for texts filed under a contact; a sender name's by its words, checked whole."""
    key = conversation_key(item)
    if item.contact_id is not None:
        return [[contact_key(item.contact_id)]], None
    if item.number:
        return [[number_key(item.number)]], lambda i: conversation_key(i) == key
    return _by_words(key)


def _by_words(name: str) -> tuple[list[Clause], Filter | None] | None:
    words = words_of(name)
    if not words or name == UNKNOWN:
        return None
    return [[f"w:{w}"] for w in sorted(words)], lambda i: conversation_key(i) == name


def _conversation_query(key: str) -> tuple[list[Clause], Filter | None]:
    """The index query of a conversation page: a contact's texts, a number's (with those
    filed under the contact who has it), a sender name's; texts with no readable sender
    are looked for among every text."""
    clauses: list[Clause] = [[channel_key("sms")]]
    if key.startswith("contact:") and key[8:].isdigit():
        return [*clauses, [contact_key(int(key[8:]))]], None
    if key.startswith("+") and key[1:].isdigit():
        return [*clauses, [number_key(key)]], None

    def match(i: Interaction) -> bool:
        return key in (conversation_key(i), i.number or i.name)

    if key.lstrip("+").isdigit():  # a short code, or a number kept as it came
        return [*clauses, [number_key(key), *(f"w:{w}" for w in words_of(key))]], match
    by_words = _by_words(key)
    if by_words is None:
        return clauses, match
    return [*clauses, *by_words[0]], match


def conversation_key(item: Interaction) -> str:
    """Which conversation a text belongs to: `contact:<id>`, else its number or sender name,
    else (an unreadable text without a readable sender, an empty sender name) `UNKNOWN`."""
    if item.contact_id is not None:
        return f"contact:{item.contact_id}"
    return item.number or item.name or UNKNOWN


def _message_reference(lines: Iterable[str]) -> int | None:
    for text in lines:
        if text.upper().startswith("+CMGS:"):
            value = text.split(":", 1)[1].split(",")[0].strip()
            if value.isdigit():
                return int(value)
    return None


def _same_number(a: str, b: str) -> bool:
    """E.164 against a national form from the network: the last 9 digits decide."""
    da = "".join(c for c in a if c.isdigit())
    db = "".join(c for c in b if c.isdigit())
    return bool(da) and (da == db or (len(da) >= 9 and len(db) >= 9 and da[-9:] == db[-9:]))


def _when_text(when: datetime | None, now: datetime) -> str:
    if when is None:
        return ""
    if when.date() == now.astimezone(when.tzinfo).date():
        return f"today at {when:%H:%M}"
    if when - now < timedelta(days=6):
        return f"{when:%A} at {when:%H:%M}"
    return f"{when:%A %d %B} at {when:%H:%M}"


__all__ = [
    "Balance",
    "Conversation",
    "SmsError",
    "SmsOptions",
    "SmsService",
    "parse_balance",
    "parse_cpms",
    "transient",
]
