"""The fax service without a line: a received fax becomes a PDF before its record and its
record before the email (kept when the email fails); the send queue is durable, retries busy
lines with backoff, gives up after the last try, and can be retried or cancelled."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from PIL import Image

from firmware_app.fax import session
from firmware_app.fax.service import FaxError, FaxService
from firmware_app.media.fax_image import decode_page
from firmware_app.media.fax_send import encode_page
from firmware_app.services import Services
from tests.fax.fakes import FakeLine, FakeLines, FakeSend, drawn, page_png

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Notes:
    def __init__(self, services: Services, fail: bool = False) -> None:
        self.services = services
        self.faxes: list[Any] = []
        self.queued: list[tuple[Any, Any]] = []
        self.fail = fail

    def fax(self, notice: Any) -> int:
        if self.fail:
            raise RuntimeError("outbox is broken")
        self.faxes.append(notice)
        return 1

    def context(self) -> Any:
        return self.services.notify.context()

    def queue(self, draft: Any, to: Any = None) -> int:
        self.queued.append((draft, to))
        return 2


def _service(services: Services, **kw: Any) -> tuple[FaxService, Clock]:
    clock = Clock()
    svc = FaxService(
        services.store,
        services.bus,
        services.settings.get,
        services.history,
        kw.pop("lines", FakeLines(FakeLine())),
        clock=clock,
        **kw,
    )
    return svc, clock


def _page() -> Image.Image:
    im = Image.new("1", (1728, 400), 1)
    for x in range(100, 1600, 150):
        im.paste(0, (x, 50, x + 60, 350))
    return im


def _received(ok: bool = True, pages: int = 1) -> session.ReceiveOutcome:
    data = encode_page(_page(), fine=True, mr=False, min_scan_bits=0, fill_order=2)
    return session.ReceiveOutcome(
        ok=ok,
        reason="received 1 page(s)" if ok else "the call ended: NO CARRIER",
        pages=[session.RxPage(data=data, fine=True, mr=False, fill_order=2)] * pages,
        remote_id="+1 555 1001",
        rate="V.17/14400",
        bps=14400,
        seconds=31.0,
    )


def test_a_received_fax_is_stored_recorded_and_emailed(services: Services) -> None:
    notes = Notes(services)
    svc, _ = _service(services, notify=notes)
    record = svc.store_received(_received(pages=2), line="line1", number="5551001", start=T0)
    assert record.outcome == "received" and record.direction == "in"
    assert record.name == "+1 555 1001" and record.line == "line1"
    assert record.details["pages"] == 2 and record.details["resolution"] == "fine"
    assert record.details["rate"] == "V.17/14400" and record.details["damaged_lines"] == 0
    pdf = services.store.media.read(record.media[0])
    assert pdf.startswith(b"%PDF-") and b"/N 2 " in pdf  # linearised: two pages
    assert services.history.get(record.id) is not None
    (notice,) = notes.faxes
    assert (notice.pdf_ref, notice.record_id, notice.pages) == (record.media[0], record.id, 2)
    assert notice.problem == ""


def test_a_fax_is_kept_when_the_email_fails(services: Services) -> None:
    svc, _ = _service(services, notify=Notes(services, fail=True))
    record = svc.store_received(_received(), line="line1")
    assert record.outcome == "received"
    assert services.store.media.path(record.media[0]).is_file()


def test_a_fax_cut_short_is_partial_and_says_why(services: Services) -> None:
    notes = Notes(services)
    svc, _ = _service(services, notify=notes)
    record = svc.store_received(_received(ok=False), line="line1")
    assert record.outcome == "partial" and "NO CARRIER" in record.text
    assert "NO CARRIER" in notes.faxes[0].problem


def test_a_page_the_sender_never_closed_is_in_the_partial_fax(services: Services) -> None:
    svc, _ = _service(services, notify=Notes(services))
    outcome = _received(ok=False, pages=2)
    last = outcome.pages[-1]
    outcome.pages[-1] = session.RxPage(
        data=last.data, fine=True, mr=False, fill_order=2, confirmed=False
    )
    record = svc.store_received(outcome, line="line1")
    assert record.outcome == "partial" and record.details["pages"] == 2
    assert record.details["unconfirmed_pages"] == 1


def test_nothing_received_is_a_failed_record_without_media(services: Services) -> None:
    notes = Notes(services)
    svc, _ = _service(services, notify=notes)
    outcome = session.ReceiveOutcome(ok=False, reason="no command from the sender (T2/T1)")
    record = svc.store_received(outcome, line="line1")
    assert (record.outcome, record.media) == ("failed", ())
    assert notes.faxes == []


def test_the_received_pdf_holds_the_page(services: Services) -> None:
    svc, _ = _service(services)
    record = svc.store_received(_received(), line="line1")
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(services.store.media.read(record.media[0]))
    try:
        assert len(pdf) == 1
        w, h = pdf[0].get_size()
        assert round(w / 72 * 204) == 1728 and round(h / 72 * 196) == 400
    finally:
        pdf.close()


def test_sending_queues_first_then_retries_busy_with_backoff(services: Services) -> None:
    fake = FakeSend("busy", "no_answer", "sent")
    notes = Notes(services)
    svc, clock = _service(services, send=fake, notify=notes, backoff=(60.0, 120.0))
    accepted = svc.send("+1 555 010 0100", page_png(), cover_note="Invoice attached", fine=True)
    # Stored at once (the upload and the record), drawn next on the drawing thread.
    assert accepted.outcome == "queued" and accepted.details["status"] == "drawing"
    (upload,) = accepted.media
    assert upload.endswith(".upload") and services.store.media.read(upload) == page_png()
    item = drawn(svc, accepted)
    assert item.outcome == "queued" and item.details["status"] == "queued"
    assert item.details["pages"] == 2  # cover + page
    assert not services.store.media.path(upload).exists()  # drawn: the upload is gone
    pdf_ref, tiff_ref, png_ref = item.media
    assert services.store.media.read(pdf_ref).startswith(b"%PDF-")
    assert services.store.media.path(tiff_ref).is_file()
    assert svc.thumbnail(item.id) == services.store.media.path(png_ref)  # page 1: the cover
    svc.run_due()
    got = services.history.get(item.id)
    assert got is not None and got.outcome == "queued"
    assert got.details["attempts"] == 1 and got.details["last_status"] == "busy"
    assert datetime.fromisoformat(got.details["next_try"]) == T0 + timedelta(seconds=60)
    svc.run_due()  # not due yet
    assert len(fake.calls) == 1
    clock.now += timedelta(seconds=61)
    svc.run_due()
    clock.now += timedelta(seconds=121)
    svc.run_due()
    done = services.history.get(item.id)
    assert done is not None and done.outcome == "sent" and done.details["attempts"] == 3
    assert done.name == "+1 555 2002" and len(done.details["log"]) == 3
    assert fake.calls[0]["number"] == "+15550100100" and fake.calls[0]["fine"] is True
    pages = fake.calls[0]["pages"]  # read from the stored TIFF as each is sent
    assert len(pages) == 2 and pages[0].image().size == (1728, 2287)
    page = decode_page(pages[1].encode(fine=True, mr=False, min_scan_bits=0), fine=True)
    assert page.image.tobytes() == pages[1].image().tobytes()
    assert not np.asarray(page.image)[220:330, 300:1300].any()  # the black bar is there
    ((draft, _to),) = notes.queued
    assert "sent" in draft.subject


def test_a_fax_that_never_gets_through_fails_and_says_so(services: Services) -> None:
    fake = FakeSend("busy", "busy")
    notes = Notes(services)
    svc, clock = _service(services, send=fake, notify=notes, backoff=(1.0,))
    item = drawn(svc, svc.send("5550100", page_png()))
    svc.run_due()
    clock.now += timedelta(seconds=2)
    svc.run_due()
    got = services.history.get(item.id)
    assert got is not None and got.outcome == "failed" and "BUSY" in got.details["reason"]
    ((draft, _),) = notes.queued
    assert "failed" in draft.subject
    retried = svc.retry(item.id)
    assert retried.outcome == "queued" and retried.details["attempts"] == 0


def test_cancel_and_bad_input(services: Services) -> None:
    svc, _ = _service(services, send=FakeSend())
    item = drawn(svc, svc.send("5550100", page_png()))
    assert svc.cancel(item.id).outcome == "failed"
    with pytest.raises(FaxError, match="not queued"):
        svc.cancel(item.id)
    early = svc.send("5550100", page_png())  # cancelled before or while it is drawn
    cancelled = svc.cancel(early.id)
    assert cancelled.outcome == "failed" and cancelled.media == ()
    got = drawn(svc, early)
    assert got.outcome == "failed" and got.details["status"] == "cancelled" and got.media == ()
    assert list(services.store.data_dir.rglob("*.upload")) == []
    with pytest.raises(FaxError, match=r"not a document|PDF"):
        svc.send("5550100", b"hello, not a document")
    with pytest.raises(FaxError, match="phone number"):
        svc.send("call me", page_png())
    no_fax = FakeLines(FakeLine(profile=None))
    svc2, _ = _service(services, lines=no_fax)
    with pytest.raises(FaxError, match="no line can send faxes"):
        svc2.send("5550100", page_png())


def test_a_document_that_cannot_be_faxed_fails_in_words_and_leaves_nothing(
    services: Services,
) -> None:
    """Drawn in the render child after the fax was queued: a page too tall (it would need
    gigabytes at fax width) fails the fax in words, with the result email; the upload and
    the draft files go, and Try again says why it cannot help."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(595, 842)
    pdf.new_page(10, 14400)
    buf = io.BytesIO()
    pdf.save(buf)
    pdf.close()
    fake, notes = FakeSend(), Notes(services)
    svc, _ = _service(services, send=fake, notify=notes)
    got = drawn(svc, svc.send("5550100", buf.getvalue()))
    assert got.outcome == "failed" and got.details["status"] == "not drawn" and got.media == ()
    assert "page 2 is 4 x 5080 mm, as tall as 1018 A4 pages" in got.details["reason"]
    ((mail, _),) = notes.queued
    assert "failed" in mail.subject and "1018 A4 pages" in mail.text
    with pytest.raises(FaxError, match="could not be drawn"):
        svc.retry(got.id)
    svc.run_due()
    assert svc.queued() == [] and fake.calls == []
    assert list(services.store.data_dir.rglob("*.upload")) == []
    drafts = services.store.data_dir / "fax-drafts"
    assert not drafts.exists() or list(drafts.iterdir()) == []


def test_a_fax_queued_but_not_yet_drawn_is_drawn_after_a_restart(services: Services) -> None:
    """Stop before the pages are drawn: the record and the upload are on disk, so the next
    start draws it and it goes out."""
    fake = FakeSend()
    first, _ = _service(services, send=fake)
    first._draw_later = lambda record_id: None  # type: ignore[method-assign]  # stopped first
    item = first.send("5550100", page_png())
    assert item.details["status"] == "drawing"
    first.run_due()
    assert fake.calls == []  # nothing to send before its pages exist
    again, _ = _service(services, send=fake)
    again.subscribe()
    try:
        got = drawn(again, item)
        assert got.outcome == "queued" and got.details["pages"] == 1
        again.run_due()
        sent = services.history.get(item.id)
        assert sent is not None and sent.outcome == "sent" and len(fake.calls) == 1
    finally:
        again.close()


def test_a_busy_line_waits(services: Services) -> None:
    fake = FakeSend()
    svc, _ = _service(services, send=fake, lines=FakeLines(FakeLine(state="in_call")))
    item = drawn(svc, svc.send("5550100", page_png()))
    svc.run_due()
    assert fake.calls == []
    got = services.history.get(item.id)
    assert got is not None and got.outcome == "queued" and got.details["attempts"] == 0


def test_fax_class_prefers_class_2_0(services: Services) -> None:
    from tests.fax.fakes import FakeProfile

    assert session.fax_class(FakeLine(profile=FakeProfile(("0", "1", "2.0")))) == "2.0"  # type: ignore[arg-type]
    assert session.fax_class(FakeLine(profile=FakeProfile(("1", "1.0")))) == "1"  # type: ignore[arg-type]
    assert session.fax_class(FakeLine(profile=FakeProfile(("2",)))) == "2"  # type: ignore[arg-type]
    assert session.fax_class(FakeLine(profile=FakeProfile(()))) is None  # type: ignore[arg-type]


def test_received_page_decodes_exactly() -> None:
    data = encode_page(_page(), fine=True, mr=False, min_scan_bits=0, fill_order=2)
    page = decode_page(data + b"\x00\xff\x13", fine=True, fill_order=2)  # noise after RTC
    assert page.damaged_lines == 0 and page.image.height == 400


def test_a_calling_tone_hands_the_call_to_the_fax_service(services: Services) -> None:
    from firmware_app.calls.events import FaxToneDetected

    asked: list[dict[str, Any]] = []

    def receive(line: Any, **kw: Any) -> session.ReceiveOutcome:
        asked.append({"line": line.name, **kw})
        return _received()

    svc, _ = _service(services, receive=receive)
    svc.subscribe()
    try:
        services.bus.publish(FaxToneDetected(line="line1", call_id=7, number="+15551001"))
        for thread in list(svc._threads):
            thread.join(10)
    finally:
        svc.close()
    (kw,) = asked
    assert callable(kw.pop("on_progress"))  # pages are kept on disk as they arrive
    assert kw == {"line": "line1", "local_id": "", "answered": True}
    (item,) = svc.faxes()
    assert (item.outcome, item.number, item.direction) == ("received", "+15551001", "in")
    services.bus.publish(FaxToneDetected(line="line1", call_id=8))  # unsubscribed: nothing
    assert len(asked) == 1
