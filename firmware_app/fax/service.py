"""The fax service: takes faxes (a fax-only line's call, or a voice call where a calling tone
was heard), stores each as a PDF, records it and emails it; keeps a durable send queue.

A received fax's PDF is written to the media store before its history record, and the
record before the email: a failed email never loses a fax. Calls run on fax session
threads, the queue on the service's worker; never on a line's worker thread.

Every fax call has an in-progress marker (`calls.json`, table `in_progress`, `kind="fax"`;
`firmware_app/calls/markers.py`) from its start until its record is written. A reception
writes each page to disk as it arrives (its file named in the marker first); `recover()`
(from `subscribe()`, at start-up) turns a marker a dead run left into the fax's record, with
the pages on disk as its PDF, and its email; a send job goes back to the queue.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..calls import markers
from ..errors import FrontdeskError
from ..events import EventBus
from ..media.fax_render import Cover, UploadError, UploadRenderer, sniff
from ..numbers import normalise
from ..services.history import HistoryService, Interaction, channel_key, outcome_key
from ..services.notify.messages import FaxNotice, FaxSentNotice, fax_sent_message
from ..store import Store
from ..store.durable import atomic_write
from ..workers import Worker
from . import session as fax_session

if TYPE_CHECKING:
    from ..modem.events import IncomingCall
    from ..modem.line import Line
    from ..services.notify import Notifier
    from ..settings.model import Settings

log = logging.getLogger(__name__)

MAX_UPLOAD = 20 * 1024 * 1024
MAX_PAGES = 50
# Waits before the 2nd, 3rd, ... try of a fax that found the line busy or unanswered.
BACKOFF = (120.0, 300.0, 600.0, 1200.0)
MAX_ATTEMPTS = len(BACKOFF) + 1
COVER_NOTE_MAX = 600
# Uploads being drawn, or drawn and waiting to be confirmed: <data_dir>/fax-drafts/<id>/.
DRAFT_DIR = "fax-drafts"
DRAFT_LIFETIME = timedelta(hours=1)
MAX_DRAFTS = 4
_DRAFT_ID = re.compile(r"^[A-Za-z0-9_-]{12}$")
UPLOAD_EXT = "upload"  # a queued fax's document until its pages are drawn
PAGE_EXT = "g3"  # a received page's T.4 data on disk until the fax's record is written
INTERRUPTED_FAX = (
    "Interrupted (Frontdesk restarted): the fax was being received when Frontdesk stopped "
    "(power cut, crash or restart)"
)
NOTHING_ARRIVED = "A fax was being received when Frontdesk restarted; nothing arrived."
INTERRUPTED_SEND = "interrupted: Frontdesk stopped during the call"


class FaxError(FrontdeskError):
    """A fax could not be queued or changed (bad number, bad file, no fax line)."""


class LinesLike(Protocol):
    def line(self, name: str) -> Line | None: ...

    def lines(self) -> list[Line]: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def can_fax(line: Line) -> bool:
    return fax_session.fax_class(line) is not None


@dataclasses.dataclass(slots=True)
class FaxDraft:
    """An upload being drawn into fax pages (in the render child), or drawn and waiting to be
    queued. Kept in memory and in its folder for `DRAFT_LIFETIME`; a restart forgets it
    (nothing was acknowledged: the owner has not pressed Send yet)."""

    id: str
    number: str
    dial: str
    created: datetime
    folder: Path
    cover_note: str | None = None
    fine: bool = True
    dither: bool | None = None
    paper: str = "a4"
    filename: str = ""
    state: str = "drawing"  # "drawing", "ready" or "failed"
    pages: int = 0  # in all, the cover included (known once the document is checked)
    done: int = 0  # pages drawn so far
    error: str = ""
    finished: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)

    def wait(self, timeout: float | None = None) -> bool:
        """True once the pages are drawn, or the drawing failed."""
        return self.finished.wait(timeout)

    def preview(self, n: int) -> Path | None:
        """Page n's preview picture (1-based), once drawn."""
        if not 1 <= n <= self.done:
            return None
        path = self.folder / f"preview-{n:03d}.png"
        return path if path.is_file() else None


@dataclasses.dataclass(slots=True)
class _Reception:
    """A fax being received and its in-progress marker (None: the marker could not be
    written; the fax goes on, kept in memory only)."""

    line: str
    call_id: int
    number: str
    start: datetime
    key: str
    call_key: str = ""
    marker: int | None = None
    pages: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # on disk
    next_page: str = ""  # the next page's file, named in the marker before it is written
    remote_id: str = ""


class FaxService:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        settings: Callable[[], Settings],
        history: HistoryService,
        lines: LinesLike,
        *,
        notify: Notifier | None = None,
        clock: Callable[[], datetime] = utc_now,
        backoff: tuple[float, ...] = BACKOFF,
        receive: Callable[..., fax_session.ReceiveOutcome] = fax_session.receive,
        send: Callable[..., fax_session.SendOutcome] = fax_session.send,
        renderer: UploadRenderer | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.history = history
        self.lines = lines
        self.notify = notify
        self.clock = clock
        self.backoff = backoff
        self._receive = receive
        self._send = send
        self._lock = threading.Lock()
        self._busy_lines: set[str] = set()
        self._taken: deque[tuple[str, int]] = deque(maxlen=16)  # calls handed over, newest last
        self._threads: list[threading.Thread] = []
        self._wake = threading.Event()
        self._unsubscribe: list[Callable[[], None]] = []
        self.worker = _QueueWorker(self._run_queue, self._wake)
        self.renderer = renderer or UploadRenderer()
        self._drafts: dict[str, FaxDraft] = {}
        self._drafts_dir = store.data_dir / DRAFT_DIR
        self._thumb_lock = threading.Lock()
        self._to_draw: deque[str] = deque()  # queued faxes whose pages are still to draw
        self._drawer: threading.Thread | None = None
        self._drawn: dict[str, threading.Event] = {}  # set once a record's pages are drawn
        self._closed = threading.Event()

    # -- wiring --------------------------------------------------------------------------------

    def subscribe(self) -> None:
        """Take over voice calls where a fax calling tone was heard (unless the call runner
        already handed the call over with `take_over`). First, faxes a previous run left in
        progress get their record (`recover`)."""
        from ..calls.events import FaxToneDetected

        shutil.rmtree(self._drafts_dir, ignore_errors=True)  # a previous run's, forgotten
        self.recover()
        # Faxes queued with their pages still to draw when it stopped: looked for on a
        # thread, off the start-up path (while the history index is being built after an
        # upgrade, the whole history is read for them).
        thread = threading.Thread(target=self._resume_drawing, name="fax-resume", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

        def on_tone(event: FaxToneDetected) -> None:
            with self._lock:
                if event.call_id and (event.line, event.call_id) in self._taken:
                    return
            line = self.lines.line(event.line)
            if line is not None:
                self.take_over(line, call_id=event.call_id, number=event.number)

        self._unsubscribe.append(self.bus.subscribe(FaxToneDetected, on_tone))

    def _resume_drawing(self) -> None:
        while not self.history.wait_indexed(1.0):  # after an upgrade: once it is indexed
            if self._closed.is_set() or self.history.stopping:  # the next start looks
                return
        if self._closed.is_set() or self.history.stopping:
            return
        try:
            for item in self.queued():
                if item.details.get("status") == "drawing" and not self._closed.is_set():
                    self._draw_later(item.id)
        except Exception:  # the next start looks again
            log.exception("faxes still to draw could not be looked for")

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()  # a fax being drawn stays "drawing": the next start draws it
        for undo in self._unsubscribe:
            undo()
        self._unsubscribe = []
        self.worker.stop()
        self.renderer.stop()
        self._wake.set()
        for thread in list(self._threads):
            thread.join(timeout)

    def fax_lines(self) -> list[Line]:
        return [line for line in self.lines.lines() if can_fax(line)]

    def is_fax_only(self, line_name: str) -> bool:
        return line_name in self.settings().lines.fax_only

    def local_id(self) -> str:
        return self.settings().lines.fax_id or ""

    # -- receiving -----------------------------------------------------------------------------

    def answer(self, line: Line, call: IncomingCall) -> threading.Thread | None:
        """A ringing call on a fax-only line (or a plan that says FaxReceive): answer it as a
        fax machine and receive. Returns the fax session thread."""
        return self._start_receive(line, call.call_id, call.number or "", answered=False)

    def take_over(
        self, line: Line, *, call_id: int = 0, number: str = "", call_key: str = ""
    ) -> threading.Thread | None:
        """An answered voice call is a fax machine (DLE c or 1100 Hz heard): switch the line to
        fax and receive (`AT+FCLASS=1`, `ATA`, T.31). The line is the fax session's from
        here: it hangs up at the end. Returns None when a fax is already on the line. The
        fax's marker is written before this returns (`call_key`: the call's, kept in it)."""
        thread = self._start_receive(line, call_id, number, answered=True, call_key=call_key)
        if thread is not None and call_id:
            with self._lock:
                self._taken.append((line.name, call_id))
        return thread

    def _start_receive(
        self, line: Line, call_id: int, number: str, *, answered: bool, call_key: str = ""
    ) -> threading.Thread | None:
        with self._lock:
            if line.name in self._busy_lines:
                log.info("%s: a fax is already on this line", line.name)
                return None
            self._busy_lines.add(line.name)
        rx = self._begin_receive(line.name, call_id, number, adopt=not answered, call_key=call_key)
        thread = threading.Thread(
            target=self._receive_call,
            args=(line, rx, answered),
            name=f"fax-rx-{line.name}",
            daemon=True,
        )
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _receive_call(self, line: Line, rx: _Reception, answered: bool) -> None:
        def progress(remote_id: str, pages: list[fax_session.RxPage]) -> None:
            self._received_pages(rx, remote_id, pages)

        try:
            outcome = self._receive(
                line, local_id=self.local_id(), answered=answered, on_progress=progress
            )
        except Exception as exc:
            log.exception("%s: fax reception failed", line.name)
            outcome = fax_session.ReceiveOutcome(ok=False, reason=f"fax reception failed: {exc}")
        finally:
            with self._lock:
                self._busy_lines.discard(line.name)
        try:
            self.store_received(
                outcome,
                line=line.name,
                number=rx.number,
                start=rx.start,
                key=rx.key,
                call_key=rx.call_key,
            )
        except Exception:  # the marker and the pages on disk stay: the next start records it
            log.exception("%s: storing the received fax failed", line.name)
            return
        self._forget(rx.marker, [p["ref"] for p in rx.pages] + [rx.next_page])

    # -- the reception's marker ------------------------------------------------------------------

    def _begin_receive(
        self, line: str, call_id: int, number: str, *, adopt: bool, call_key: str = ""
    ) -> _Reception:
        """Note the reception durably before the fax thread starts. A ringing call from the
        call runner (`adopt`) has a marker already: it becomes this fax's, in one write."""
        now = self.clock()
        rx = _Reception(
            line=line,
            call_id=call_id,
            number=number,
            start=now,
            key=markers.new_key(),
            call_key=call_key,
        )
        rx.next_page = markers.media_ref(now, PAGE_EXT)
        try:
            found = self._call_marker(line, call_id) if adopt and call_id else None
            if found is not None:
                rx.key = str(found.get("key") or "") or rx.key
                rx.start = markers.when(found.get("start")) or now
                rx.number = rx.number or str(found.get("number") or "")
            fields = {
                "kind": markers.FAX,
                "direction": "in",
                "key": rx.key,
                "line": line,
                "call_id": call_id,
                "number": rx.number,
                "start": rx.start.isoformat(),
                "remote_id": "",
                "pages": [],
                "next_page": rx.next_page,
            }
            if call_key:
                fields["call_key"] = call_key  # the voice call it came from (calling tone)
            if found is not None:
                rx.marker = int(found["marker_id"])
                self.history.note_call(rx.marker, **fields)
            else:
                rx.marker = self.history.begin_call(fields)
        except Exception:  # the fax goes on; only a stop before its end would lose it
            log.exception("%s: fax call %s: the in-progress marker failed", line, call_id)
        return rx

    def _call_marker(self, line: str, call_id: int) -> dict[str, Any] | None:
        """The call runner's marker of this ringing call (`CallRunner.to_fax` left it)."""
        for marker in self.history.calls_in_progress():
            if markers.is_fax(marker):
                continue
            if marker.get("line") == line and marker.get("call_id") == call_id:
                return marker
        return None

    def _received_pages(
        self, rx: _Reception, remote_id: str, pages: list[fax_session.RxPage]
    ) -> None:
        """On the fax thread, as each page is accepted (before the next step of the call):
        the page to its file (named in the marker already), then the marker notes it."""
        if rx.marker is None:
            return
        try:
            for page in pages:
                ref = rx.next_page
                path = self.store.media.path(ref)
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, page.data)
                rx.pages.append(
                    {"ref": ref, "fine": page.fine, "mr": page.mr, "fill_order": page.fill_order}
                )
                rx.next_page = markers.media_ref(rx.start, PAGE_EXT)
                rx.remote_id = remote_id
                self.history.note_call(
                    rx.marker, pages=list(rx.pages), next_page=rx.next_page, remote_id=remote_id
                )
            if remote_id != rx.remote_id:
                rx.remote_id = remote_id
                self.history.note_call(rx.marker, remote_id=remote_id)
        except Exception:  # the pages are still in memory: the fax's end stores them
            log.exception("%s: a received fax page could not be kept on disk", rx.line)

    def _forget(self, marker_id: int | None, refs: list[str]) -> None:
        """The fax's record is written: its pages' files go, then its marker."""
        for ref in filter(None, refs):
            try:
                self.store.media.delete(ref)
            except Exception:
                log.warning("fax page file %s could not be deleted", ref)
        if marker_id is not None:
            try:
                self.history.end_call(marker_id)
            except Exception:  # the next start finds the record by its key: still one
                log.exception("a fax's in-progress marker stays")

    def store_received(
        self,
        outcome: fax_session.ReceiveOutcome,
        *,
        line: str,
        number: str = "",
        start: datetime | None = None,
        key: str = "",
        call_key: str = "",
    ) -> Interaction:
        """Pages -> PDF (media store) -> history record -> email. Nothing received: a
        "failed" record, so the owner sees that a fax machine called. `key`: the fax's
        marker key (`details.fax_key`); `call_key`: the voice call it came from."""
        from ..media.fax_image import FaxDocument, FaxImageError  # Pillow, numpy: on use only

        start = start or self.clock()
        end = self.clock()
        doc = FaxDocument(remote_id=outcome.remote_id)
        lost = 0
        for page in outcome.pages:
            try:
                doc.add_page(
                    page.data,
                    fine=page.fine,
                    mr=page.mr,
                    fill_order=page.fill_order,  # type: ignore[arg-type]
                )
            except FaxImageError as exc:
                lost += 1
                log.warning("%s: a received page could not be read: %s", line, exc)
        media: tuple[str, ...] = ()
        if doc.pages:
            pdf = doc.to_pdf()
            media = (self.store.media.write(pdf, "pdf", start),)  # before the record
        complete = outcome.ok and not lost and bool(doc.pages)
        result = "received" if complete else ("partial" if doc.pages else "failed")
        problem = (
            "" if complete else outcome.reason + (f"; {lost} page(s) unreadable" if lost else "")
        )
        details: dict[str, Any] = {
            "pages": len(doc.pages),
            "resolution": "fine" if doc.pages and doc.fine else "normal",
            "rate": outcome.rate,
            "bps": outcome.bps,
            "fax_class": outcome.fax_class,
            "damaged_lines": doc.damaged_lines,
            "quality": round(doc.quality, 4),
            "reason": outcome.reason,
            "seconds": round(outcome.seconds, 1),
        }
        unconfirmed = sum(1 for page in outcome.pages if not page.confirmed)
        if unconfirmed:
            details["unconfirmed_pages"] = unconfirmed  # the call ended before their PPM
        if key:
            details["fax_key"] = key
        if call_key:
            details["from_call"] = call_key
        record = self.history.record(
            Interaction(
                channel="fax",
                direction="in",
                outcome=result,
                start=start,
                end=end,
                number=_number(number, self.settings()),
                name=outcome.remote_id,
                line=line,
                duration=round((end - start).total_seconds(), 1),
                text=problem,
                media=media,
                details=details,
            )
        )
        self._fax_email(record)
        return record

    def _fax_email(self, record: Interaction) -> None:
        """The received fax's email: with the PDF when a page came; an interrupted fax
        without pages gets a short notice; a failed call without pages gets none."""
        interrupted = bool(record.details.get("interrupted"))
        if self.notify is None or not (record.media or interrupted):
            return
        problem = "" if record.outcome == "received" else record.text
        try:
            self.notify.fax(
                FaxNotice(
                    number=record.number,
                    at=record.start,
                    pages=int(record.details.get("pages", 0) or 0),
                    remote_id=record.name,
                    pdf_ref=record.media[0] if record.media else "",
                    record_id=record.id,
                    line=record.line,
                    problem=problem if record.media else NOTHING_ARRIVED,
                )
            )
        except Exception:
            log.exception("fax %s: the email could not be queued (the fax is kept)", record.id)

    # -- start-up: faxes a previous run left in progress ------------------------------------------

    def recover(self) -> int:
        """Every fax marker a previous run left is settled, once: a reception becomes its
        record (the pages on disk as the PDF, outcome "partial", or "failed" when no page
        came) and its email; a send job goes back to the queue (or fails after its last
        try). A marker whose record exists only gets what is missing. Returns how many
        records were written."""
        try:
            found = [m for m in self.history.calls_in_progress() if markers.is_fax(m)]
        except Exception:
            log.exception("faxes in progress at the last stop could not be read")
            return 0
        written = 0
        for marker in found:
            try:
                if marker.get("direction") == "out":
                    self._recover_send(marker)
                else:
                    written += self._recover_receive(marker)
            except Exception:  # kept: the next start tries again
                log.exception("fax in progress %s: not settled yet", marker.get("key"))
        return written

    def _find(self, key: str, start: datetime | None = None) -> Interaction | None:
        """The fax record written for a marker's `key` (details.fax_key), if any."""
        return self.history.find_detail("fax", "fax_key", key, start)

    def _recover_receive(self, marker: dict[str, Any]) -> int:
        key = str(marker.get("key", "") or "")
        item = self._find(key, markers.when(marker.get("start")))
        fresh = item is None
        if item is None:
            item = self.history.record(self._interrupted(marker))
            log.warning(
                "%s: a fax from %s was being received when Frontdesk stopped: recorded as %s "
                "(%s page(s))",
                item.line,
                item.number or item.name or "an unknown sender",
                item.id,
                item.details.get("pages"),
            )
        if not markers.email_queued(self.store, item.id, ("fax",)):
            self._fax_email(item)
        refs = [str(p.get("ref", "")) for p in marker.get("pages", ()) or ()]
        self._forget(int(marker["marker_id"]), [*refs, str(marker.get("next_page", "") or "")])
        return 1 if fresh else 0

    def _interrupted(self, marker: dict[str, Any]) -> Interaction:
        """The record of a reception a dead run left: the pages whose files were written."""
        from ..media.fax_image import FaxDocument, FaxImageError  # Pillow, numpy: on use only

        start = markers.when(marker.get("start")) or self.clock()
        remote_id = str(marker.get("remote_id", "") or "")
        pages = [dict(p) for p in marker.get("pages", ()) or () if self._stored(p.get("ref"))]
        nxt = str(marker.get("next_page", "") or "")
        if self._stored(nxt):  # written, the marker not yet told: coding found from the data
            fine = bool(pages[-1].get("fine", True)) if pages else True
            pages.append({"ref": nxt, "fine": fine, "mr": None, "fill_order": None})
        doc = FaxDocument(remote_id=remote_id)
        lost = 0
        for page in pages:
            try:
                doc.add_page(
                    self.store.media.read(str(page["ref"])),
                    fine=bool(page.get("fine", True)),
                    mr=page.get("mr"),
                    fill_order=page.get("fill_order"),
                )
            except (FaxImageError, FrontdeskError) as exc:
                lost += 1
                log.warning("a kept fax page could not be read: %s", exc)
        media: tuple[str, ...] = ()
        if doc.pages:
            media = (self.store.media.write(doc.to_pdf(), "pdf", start),)  # before the record
        n = len(doc.pages)
        text = f"{INTERRUPTED_FAX}; {n} page(s) had arrived" if n else f"{INTERRUPTED_FAX}"
        if lost:
            text += f"; {lost} page(s) unreadable"
        details: dict[str, Any] = {
            "pages": n,
            "resolution": "fine" if doc.pages and doc.fine else "normal",
            "rate": "",
            "bps": 0,
            "fax_class": "",
            "damaged_lines": doc.damaged_lines if doc.pages else 0,
            "quality": round(doc.quality, 4) if doc.pages else 0.0,
            "reason": text,
            "seconds": 0.0,
            "interrupted": True,
            "duration_known": False,
            "fax_key": str(marker.get("key", "") or ""),
            "call_id": marker.get("call_id"),
        }
        if marker.get("call_key"):
            details["from_call"] = marker["call_key"]
        return Interaction(
            channel="fax",
            direction="in",
            outcome="partial" if doc.pages else "failed",
            start=start,
            end=None,
            number=_number(str(marker.get("number", "") or ""), self.settings()),
            name=remote_id,
            line=str(marker.get("line", "") or ""),
            duration=0.0,
            text=text,
            media=media,
            details=details,
        )

    def _stored(self, ref: Any) -> bool:
        try:
            return bool(ref) and self.store.media.path(str(ref)).is_file()
        except Exception:
            return False

    def _recover_send(self, marker: dict[str, Any]) -> None:
        """A send job the stop cut off: this try counts as failed (the receiver may have
        part of it) and the retry policy decides, as for a dropped call."""
        item = self.history.get(str(marker.get("record_id", "") or ""))
        tried = int(marker.get("attempt", 0) or 0)
        if item is None or item.channel != "fax" or item.direction != "out":
            pass  # deleted meanwhile: nothing to do
        elif (
            item.outcome == "queued"
            and item.details.get("status") == "sending"
            and int(item.details.get("attempts", 0) or 0) == tried
        ):
            started = markers.when(marker.get("start")) or self.clock()
            outcome = fax_session.SendOutcome(ok=False, status="failed", reason=INTERRUPTED_SEND)
            changed = self._tried(item, tried, started, outcome)
            log.warning(
                "fax %s was being sent when Frontdesk stopped: %s",
                item.id,
                "queued again" if changed.outcome == "queued" else "failed (its last try)",
            )
        elif item.outcome in ("sent", "failed") and not markers.email_queued(
            self.store, item.id, ("fax",)
        ):
            self._email(item, ok=item.outcome == "sent")
        self.history.end_call(int(marker["marker_id"]))

    # -- sending -------------------------------------------------------------------------------

    def send(
        self,
        number: str,
        data: bytes,
        *,
        cover_note: str | None = None,
        fine: bool = True,
        dither: bool | None = None,
        paper: str = "a4",
        filename: str = "",
    ) -> Interaction:
        """Queue a fax in one step (the API and `frontdesk fax send`) and return at once: the
        number and the file are checked, the upload and the record (outcome "queued",
        `details.status` "drawing") are stored before this returns, then the render child
        draws the pages on the fax drawing thread. Drawn, the fax is queued for the worker
        (`status` "queued"); a document that cannot be drawn turns the record "failed" with
        the reason in words (`status` "not drawn") and the owner gets the result email. A
        restart in between draws it again from the stored upload (`recover`)."""
        dial = self._checked(number, data)
        now = self.clock()
        upload = self.store.media.write(data, UPLOAD_EXT, now)
        try:
            record = self.history.record(
                Interaction(
                    channel="fax",
                    direction="out",
                    outcome="queued",
                    start=now,
                    number=_number(number, self.settings()),
                    text=(cover_note or "").strip()[:COVER_NOTE_MAX],
                    media=(upload,),
                    details={
                        "status": "drawing",
                        "dial": dial,
                        "pages": 0,
                        "resolution": "fine" if fine else "normal",
                        "cover": cover_note is not None,
                        "dither": dither,
                        "paper": "letter" if paper == "letter" else "a4",
                        "filename": filename[:120],
                        "attempts": 0,
                        "next_try": now.isoformat(),
                        "log": [],
                    },
                )
            )
        except Exception:
            self.store.media.delete(upload)
            raise
        self._draw_later(record.id)
        return record

    def wait_drawn(self, record_id: str, timeout: float) -> Interaction | None:
        """The record once its pages are drawn (or could not be), or as it is after
        `timeout` seconds; None when there is no such outgoing fax."""
        with self._lock:
            done = self._drawn.setdefault(record_id, threading.Event())
        item = self.history.get(record_id)
        if item is not None and item.details.get("status") == "drawing":
            done.wait(timeout)
            item = self.history.get(record_id)
        with self._lock:
            self._drawn.pop(record_id, None)
        if item is None or item.channel != "fax" or item.direction != "out":
            return None
        return item

    def _draw_later(self, record_id: str) -> None:
        """Have the drawing thread draw a queued fax's pages (one fax at a time, in order)."""
        with self._lock:
            if record_id not in self._to_draw:
                self._to_draw.append(record_id)
            if self._drawer is not None and self._drawer.is_alive():
                return
            self._drawer = threading.Thread(
                target=self._draw_pending, name="fax-drawing", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [self._drawer]
            self._drawer.start()

    def _draw_pending(self) -> None:
        while True:
            with self._lock:
                if not self._to_draw or self._closed.is_set():
                    self._drawer = None
                    return
                record_id = self._to_draw.popleft()
            try:
                self._draw_record(record_id)
            except Exception:  # the record still says "drawing": the next start tries again
                log.exception("fax %s: its pages could not be drawn", record_id)
            finally:
                with self._lock:
                    done = self._drawn.get(record_id)
                if done is not None:
                    done.set()

    def _draw_record(self, record_id: str) -> None:
        item = self.history.get(record_id)
        if item is None or item.outcome != "queued" or item.details.get("status") != "drawing":
            return
        d = item.details
        upload = next((m for m in item.media if m.endswith("." + UPLOAD_EXT)), "")
        path = self.history.media_file(upload) if upload else None
        if path is None:
            self._not_drawn(item, "the uploaded document is missing; send it again")
            return
        draft = FaxDraft(
            id=secrets.token_urlsafe(9),
            number=item.number or str(d.get("dial", "")),
            dial=str(d.get("dial", "")),
            created=item.start,
            folder=self._drafts_dir / f"queued-{secrets.token_hex(6)}",
            cover_note=item.text if d.get("cover") else None,
            fine=d.get("resolution") != "normal",
            dither=d.get("dither") if isinstance(d.get("dither"), bool) else None,
            paper=str(d.get("paper", "a4")),
            filename=str(d.get("filename", "")),
        )
        draft.folder.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(path, draft.folder / "upload")
            self._draw(draft, owned=True)
            if draft.state != "ready" and self._closed.is_set():
                return  # stopped under it (the render child killed): drawn at the next start
            current = self.history.get(record_id)
            if current is None or current.outcome != "queued":
                log.info("fax %s: cancelled while its pages were drawn", record_id)
                self.store.media.delete(upload)
                return
            if draft.state != "ready":
                self._not_drawn(current, draft.error)
                return
            media = self._store_pages(draft, current.start)
            self.history.update(
                record_id,
                media=media,
                details=dict(
                    current.details,
                    status="queued",
                    pages=draft.pages,
                    next_try=self.clock().isoformat(),
                ),
            )
            self.store.media.delete(upload)
            log.info("fax %s: %d page(s) drawn, queued", record_id, draft.pages)
        finally:
            shutil.rmtree(draft.folder, ignore_errors=True)
        self._wake.set()

    def _not_drawn(self, item: Interaction, reason: str) -> None:
        """A queued fax whose document cannot be drawn: failed, in words, with the email."""
        changed = self.history.update(
            item.id,
            outcome="failed",
            end=self.clock(),
            media=tuple(m for m in item.media if not m.endswith("." + UPLOAD_EXT)),
            details=dict(item.details, status="not drawn", reason=reason),
        )
        for ref in item.media:
            if ref.endswith("." + UPLOAD_EXT):
                self.store.media.delete(ref)
        log.info("fax %s: not sent, its document could not be drawn: %s", item.id, reason)
        self._email(changed, ok=False)

    # -- drafts: an upload drawn before it is queued -------------------------------------------

    def prepare(
        self,
        number: str,
        data: bytes,
        *,
        cover_note: str | None = None,
        fine: bool = True,
        dither: bool | None = None,
        paper: str = "a4",
        filename: str = "",
        wait: bool = False,
    ) -> FaxDraft:
        """Start drawing an upload into fax pages (a cover page first when `cover_note` is not
        None) in the render child, on a thread of its own unless `wait`. Returns the draft at
        once: its `state` says when the pages are ready to be seen and queued."""
        dial = self._checked(number, data)
        self._prune_drafts()
        draft_id = secrets.token_urlsafe(9)
        draft = FaxDraft(
            id=draft_id,
            number=number,
            dial=dial,
            created=self.clock(),
            folder=self._drafts_dir / draft_id,
            cover_note=None if cover_note is None else cover_note.strip()[:COVER_NOTE_MAX],
            fine=fine,
            dither=dither,
            paper="letter" if paper == "letter" else "a4",
            filename=filename[:120],
        )
        draft.folder.mkdir(parents=True, exist_ok=True)
        (draft.folder / "upload").write_bytes(data)
        with self._lock:
            self._drafts[draft.id] = draft
        if wait:
            self._draw(draft)
        else:
            thread = threading.Thread(
                target=self._draw, args=(draft,), name="fax-draw", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
        return draft

    def _checked(self, number: str, data: bytes) -> str:
        """What can be said before any drawing: the number (returned as dialled), a fax
        line, the file's size and kind (by its content)."""
        dial = "".join(c for c in number if c.isdigit() or c in "+*#")
        if not dial.strip("+"):
            raise FaxError(f"{number!r} is not a phone number")
        if not self.fax_lines():
            raise FaxError("no line can send faxes: the modems have no fax class")
        if not data:
            raise FaxError("the uploaded file is empty")
        if len(data) > MAX_UPLOAD:
            raise FaxError(
                f"the file is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD / 1e6:.0f} MB"
            )
        try:
            sniff(data)
        except UploadError as exc:
            raise FaxError(str(exc)) from exc
        return dial

    def _draw(self, draft: FaxDraft, *, owned: bool = False) -> None:
        """Draw the draft's upload in the render child. `owned`: the caller keeps and removes
        the draft's folder (a queued fax's), else a draft discarded meanwhile loses it."""
        settings = self.settings()
        cover = None
        if draft.cover_note is not None:
            cover = Cover(
                business=settings.business.name,
                to=draft.number,
                sender=self.local_id() or settings.business.name,
                note=draft.cover_note,
                date=f"{draft.created:%Y-%m-%d %H:%M} UTC",
            )

        def progress(done: int, total: int) -> None:
            draft.pages, draft.done = total, done

        try:
            rendered = self.renderer.render(
                draft.folder / "upload",
                draft.folder,
                paper=draft.paper,
                dither=draft.dither,
                fine=draft.fine,
                cover=cover,
                title=f"Fax to {draft.number}",
                max_bytes=MAX_UPLOAD,
                max_pages=MAX_PAGES,
                on_progress=progress,
            )
            draft.pages = draft.done = rendered.pages
            draft.state = "ready"
        except UploadError as exc:
            draft.error, draft.state = str(exc), "failed"
        except Exception as exc:
            log.exception("fax draft %s could not be drawn", draft.id)
            draft.error, draft.state = f"the document could not be drawn ({exc})", "failed"
        finally:
            (draft.folder / "upload").unlink(missing_ok=True)
            with self._lock:
                kept = owned or self._drafts.get(draft.id) is draft
            if not kept:  # discarded while it was being drawn
                shutil.rmtree(draft.folder, ignore_errors=True)
            draft.finished.set()

    def draft(self, draft_id: str) -> FaxDraft | None:
        if not _DRAFT_ID.match(draft_id or ""):
            return None
        with self._lock:
            return self._drafts.get(draft_id)

    def discard(self, draft_id: str) -> None:
        """Forget a draft and its files (still drawing: its files go when it is done)."""
        with self._lock:
            draft = self._drafts.pop(draft_id, None)
        if draft is not None and draft.state != "drawing":
            shutil.rmtree(draft.folder, ignore_errors=True)

    def _prune_drafts(self) -> None:
        """Drafts older than `DRAFT_LIFETIME` go, and the oldest beyond `MAX_DRAFTS - 1`."""
        now = self.clock()
        with self._lock:
            drafts = sorted(self._drafts.values(), key=lambda d: d.created)
        stale = [d for d in drafts if now - d.created > DRAFT_LIFETIME]
        fresh = [d for d in drafts if d not in stale]
        stale += fresh[: max(0, len(fresh) - (MAX_DRAFTS - 1))]
        for draft in stale:
            self.discard(draft.id)
        if self._drafts_dir.is_dir():
            with self._lock:
                known = set(self._drafts)
            for folder in self._drafts_dir.iterdir():
                if folder.name not in known:
                    shutil.rmtree(folder, ignore_errors=True)

    def queue_draft(self, draft_id: str) -> Interaction:
        """Queue a drawn draft: its pages (G4 TIFF, sent exactly), PDF (shown) and page-1
        picture go to the media store, then the record (media: PDF, TIFF, PNG); the worker
        dials it."""
        with self._lock:
            draft = self._drafts.get(draft_id) if _DRAFT_ID.match(draft_id or "") else None
            if draft is None:
                raise FaxError(
                    "this fax is no longer waiting to be sent (an upload is kept for an hour, "
                    "and not across a restart): upload it again"
                )
            if draft.state == "drawing":
                raise FaxError("its pages are still being drawn; wait a moment")
            if draft.state == "failed":
                raise FaxError(draft.error)
            del self._drafts[draft_id]
        try:
            record = self._queue(draft)
        except Exception:
            with self._lock:
                self._drafts[draft.id] = draft  # still there to try again
            raise
        shutil.rmtree(draft.folder, ignore_errors=True)
        return record

    def _queue(self, draft: FaxDraft) -> Interaction:
        if not self.fax_lines():
            raise FaxError("no line can send faxes: the modems have no fax class")
        now = self.clock()
        media = self._store_pages(draft, now)
        record = self.history.record(
            Interaction(
                channel="fax",
                direction="out",
                outcome="queued",
                start=now,
                number=_number(draft.number, self.settings()),
                text=draft.cover_note or "",
                media=media,
                details={
                    "status": "queued",
                    "dial": draft.dial,
                    "pages": draft.pages,
                    "resolution": "fine" if draft.fine else "normal",
                    "cover": draft.cover_note is not None,
                    "filename": draft.filename,
                    "attempts": 0,
                    "next_try": now.isoformat(),
                    "log": [],
                },
            )
        )
        self._wake.set()
        return record

    def _store_pages(self, draft: FaxDraft, when: datetime) -> tuple[str, ...]:
        """A drawn draft's files into the media store: (PDF shown, G4 TIFF sent, page 1's
        picture when there is one), the order the record's `media` keeps."""
        folder = draft.folder
        tiff_ref = self.store.media.write((folder / "pages.tif").read_bytes(), "tif", when)
        pdf_ref = self.store.media.write((folder / "document.pdf").read_bytes(), "pdf", when)
        first = draft.preview(1)
        media: tuple[str, ...] = (pdf_ref, tiff_ref)
        if first is not None:  # page 1 as the inbox shows it
            media += (self.store.media.write(first.read_bytes(), "png", when),)
        return media

    # -- page 1 pictures -------------------------------------------------------------------------

    def thumbnail(self, record_id: str) -> Path | None:
        """Page 1 of a fax as a small PNG (432 px wide) for the inbox: a sent fax has it from
        its draft; a received one gets it the first time it is asked for, drawn from its PDF
        by the render child and kept with the record. None: no such fax, or no page."""
        item = self.history.get(record_id)
        if item is None or item.channel != "fax":
            return None
        found = self._thumbnail_file(item)
        if found is not None or not any(m.endswith(".pdf") for m in item.media):
            return found
        with self._thumb_lock:
            item = self.history.get(record_id)  # another request may have drawn it meanwhile
            if item is None:
                return None
            found = self._thumbnail_file(item)
            if found is not None:
                return found
            pdf = self.history.media_file(next(m for m in item.media if m.endswith(".pdf")))
            if pdf is None:
                return None
            with tempfile.TemporaryDirectory(prefix="frontdesk-fax-") as tmp:
                out = Path(tmp) / "page1.png"
                try:
                    self.renderer.thumbnail(pdf, out)
                except UploadError as exc:
                    log.warning("fax %s: page 1 could not be drawn: %s", record_id, exc)
                    return None
                ref = self.store.media.write(out.read_bytes(), "png", item.start)
            self.history.update(record_id, media=(*item.media, ref))
            return self.history.media_file(ref)

    def _thumbnail_file(self, item: Interaction) -> Path | None:
        ref = next((m for m in item.media if m.endswith(".png")), "")
        return self.history.media_file(ref) if ref else None

    def queued(self) -> list[Interaction]:
        """Every fax waiting to be sent, newest first, however old (from the history index)."""
        return [
            i for i in self.history.all_of([[outcome_key("fax", "queued")]]) if i.direction == "out"
        ]

    def faxes(self, n: int = 50, before: str | None = None) -> list[Interaction]:
        """Faxes in and out, newest first, `n` a page after `before` (a record id)."""
        return self.history.query([[channel_key("fax")]], n, before=before).items

    def retry(self, record_id: str) -> Interaction:
        """Try a queued or failed outgoing fax again now."""
        item = self._outgoing(record_id)
        if item.outcome not in ("queued", "failed"):
            raise FaxError(f"fax {record_id} was {item.outcome}; only queued or failed faxes retry")
        if item.details.get("status") == "drawing":
            raise FaxError("its pages are still being drawn; it goes out once they are ready")
        if item.details.get("status") == "not drawn":
            raise FaxError(
                "its document could not be drawn, so there is nothing to send: "
                "send the document again (as a simpler PDF or an image)"
            )
        details = dict(item.details, status="queued", next_try=self.clock().isoformat())
        if item.outcome == "failed":
            details["attempts"] = 0
        changed = self.history.update(record_id, outcome="queued", details=details)
        self._wake.set()
        return changed

    def cancel(self, record_id: str) -> Interaction:
        item = self._outgoing(record_id)
        if item.outcome != "queued":
            raise FaxError(f"fax {record_id} is {item.outcome}, not queued")
        if item.details.get("status") == "sending":
            raise FaxError(f"fax {record_id} is being sent right now")
        details = dict(item.details, status="cancelled", reason="cancelled")
        uploads = [m for m in item.media if m.endswith("." + UPLOAD_EXT)]
        changed = self.history.update(
            record_id,
            outcome="failed",
            details=details,
            text=item.text,
            end=self.clock(),
            media=tuple(m for m in item.media if m not in uploads),
        )
        for ref in uploads:  # cancelled before its pages were drawn: the upload goes
            self.store.media.delete(ref)
        return changed

    def _outgoing(self, record_id: str) -> Interaction:
        item = self.history.get(record_id)
        if item is None or item.channel != "fax" or item.direction != "out":
            raise FaxError(f"no outgoing fax {record_id}")
        return item

    # -- the queue's worker --------------------------------------------------------------------

    def _run_queue(self, worker: Worker) -> None:
        while not worker.stopping.is_set():
            wait = self.run_due()
            worker.beat()
            self._wake.wait(min(wait, 30.0))
            self._wake.clear()

    def run_due(self) -> float:
        """Send what is due (one at a time); returns seconds until the next is due. While
        the history index is being built (after an upgrade) the queue waits for it: the
        queue is the history's queued faxes, found whole through the index."""
        if self.history.indexing():
            return INDEXING_WAIT
        now = self.clock()
        soonest = 3600.0
        for item in sorted(self.queued(), key=lambda i: i.start):
            if self.worker.stopping.is_set():
                break
            if item.details.get("status") == "drawing":
                continue  # the drawing thread queues it when its pages are ready
            due = _when(item.details.get("next_try")) or now
            if due > now:
                soonest = min(soonest, (due - now).total_seconds())
                continue
            self.send_now(item)
            now = self.clock()
        return max(0.5, soonest)

    def _free_line(self) -> Line | None:
        for line in self.fax_lines():
            if line.name in self._busy_lines:
                continue
            if line.status().state == "idle":
                return line
        return None

    def send_now(self, item: Interaction) -> Interaction:
        """One try of a queued fax on a free fax line."""
        line = self._free_line()
        if line is None:
            later = self.clock() + timedelta(seconds=30)
            return self.history.update(
                item.id, details=dict(item.details, next_try=later.isoformat())
            )
        with self._lock:
            if line.name in self._busy_lines:
                return item
            self._busy_lines.add(line.name)
        attempts = int(item.details.get("attempts", 0)) + 1
        item = self.history.update(
            item.id, line=line.name, details=dict(item.details, status="sending", attempts=attempts)
        )
        started = self.clock()
        marker = self._begin_send(item, line.name, attempts, started)
        try:
            outcome = self._call(line, item)
        finally:
            with self._lock:
                self._busy_lines.discard(line.name)
        changed = self._tried(item, attempts, started, outcome)
        self._forget(marker, [])
        return changed

    def _begin_send(self, item: Interaction, line: str, attempt: int, at: datetime) -> int | None:
        """Note the try durably: a stop during the call sends the fax again (`recover`)."""
        try:
            return self.history.begin_call(
                {
                    "kind": markers.FAX,
                    "direction": "out",
                    "key": item.id,
                    "record_id": item.id,
                    "line": line,
                    "attempt": attempt,
                    "start": at.isoformat(),
                }
            )
        except Exception:  # the record says "sending": the queue still has it
            log.exception("fax %s: the in-progress marker failed", item.id)
            return None

    def _tried(
        self,
        item: Interaction,
        attempts: int,
        started: datetime,
        outcome: fax_session.SendOutcome,
    ) -> Interaction:
        """One try's result into the record: sent, queued again after the backoff, or failed
        after the last try (with the result email)."""
        end = self.clock()
        entry = f"{started:%Y-%m-%d %H:%M:%S} {outcome.status}: {outcome.reason}"
        details = dict(
            item.details,
            attempts=attempts,
            status=outcome.status,
            reason=outcome.reason,
            rate=outcome.rate,
            pages_sent=outcome.pages_sent,
            fax_class=outcome.fax_class,
            seconds=round(outcome.seconds, 1),
            log=[*list(item.details.get("log", []))[-9:], entry],
        )
        if outcome.ok:
            changed = self.history.update(
                item.id,
                outcome="sent",
                name=outcome.remote_id,
                end=end,
                duration=round((end - started).total_seconds(), 1),
                details=details,
            )
            self._email(changed, ok=True)
            return changed
        if attempts < min(MAX_ATTEMPTS, len(self.backoff) + 1):
            wait = self.backoff[min(attempts - 1, len(self.backoff) - 1)]
            details["next_try"] = (end + timedelta(seconds=wait)).isoformat()
            details["status"] = "queued"
            details["last_status"] = outcome.status
            return self.history.update(item.id, details=details, name=outcome.remote_id)
        changed = self.history.update(
            item.id, outcome="failed", end=end, details=details, name=outcome.remote_id
        )
        self._email(changed, ok=False)
        return changed

    def _call(self, line: Line, item: Interaction) -> fax_session.SendOutcome:
        """The call on its own session thread; the worker keeps beating while it lasts (a long
        fax takes many minutes)."""
        got: list[fax_session.SendOutcome] = []

        def run() -> None:
            from ..media.fax_send import tiff_pages

            try:
                pages = tiff_pages(self.store.media.read(item.media[1]))
                got.append(
                    self._send(
                        line,
                        str(item.details.get("dial") or item.number),
                        pages,
                        local_id=self.local_id(),
                        fine=item.details.get("resolution", "fine") == "fine",
                    )
                )
            except Exception as exc:
                log.exception("%s: sending fax %s failed", line.name, item.id)
                got.append(fax_session.SendOutcome(ok=False, status="failed", reason=str(exc)))

        thread = threading.Thread(target=run, name=f"fax-tx-{line.name}", daemon=True)
        thread.start()
        while thread.is_alive():
            self.worker.beat()
            thread.join(5.0)
        return got[0] if got else fax_session.SendOutcome(False, "failed", "the call ended")

    def _email(self, item: Interaction, *, ok: bool) -> None:
        if self.notify is None:
            return
        owner = self.settings().business.owner_email
        try:
            draft = fax_sent_message(
                FaxSentNotice(
                    number=item.number or str(item.details.get("dial", "")),
                    at=item.end or self.clock(),
                    ok=ok,
                    pages=int(item.details.get("pages", 0)),
                    attempts=int(item.details.get("attempts", 1)),
                    remote_id=item.name,
                    reason=str(item.details.get("reason", "")),
                    record_id=item.id,
                    line=item.line,
                ),
                self.notify.context(),
            )
            self.notify.queue(draft, to=[owner] if owner else None)
        except Exception:
            log.exception("fax %s: the result email could not be queued", item.id)


INDEXING_WAIT = 5.0  # seconds between looks at the queue while the history is indexed


class _QueueWorker(Worker):
    """The send queue's thread; `stop()` also wakes it from its wait."""

    def __init__(self, target: Callable[[Worker], None], wake: threading.Event) -> None:
        super().__init__("fax", target, liveness=120.0)
        self._wake_event = wake

    def stop(self) -> None:
        super().stop()
        self._wake_event.set()


def _number(number: str, settings: Settings) -> str:
    if not number:
        return ""
    try:
        return normalise(number, settings.business.country) or number
    except Exception:
        return number


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


__all__ = ["FaxDraft", "FaxError", "FaxService", "can_fax"]
