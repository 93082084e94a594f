"""A fax in progress when the daemon dies still leaves exactly one record and one email.

A reception writes its marker before it starts and each page to disk as it arrives (named in
the marker first); the next start turns a marker left behind into a fax record (outcome
"partial" with the pages on disk as its PDF, "failed" with a notice when nothing came), once.
A send job cut off goes back to the queue. Calls handed to the fax keep a marker all along.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image

from firmware_app.calls.runner import FAX_TAKEN_WHY, CallRunner
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.fax import session
from firmware_app.fax.service import INTERRUPTED_FAX, NOTHING_ARRIVED, FaxService
from firmware_app.media.fax_send import encode_page
from firmware_app.modem.events import IncomingCall
from firmware_app.routing import Call, LineCapabilities, decide
from firmware_app.services import Services
from firmware_app.services.calls import CallService
from firmware_app.services.history import Interaction
from firmware_app.store import Store
from tests.calls.test_calls_e2e import closed_settings
from tests.fax.fakes import FakeLine, FakeLines, FakeSend, page_png

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def boot(data: Path, *, settings: bool = True, send: Any = None) -> tuple[Services, FaxService]:
    """One life of the daemon's call and fax side on `data`: the call service and the fax
    service started, which records what a previous life left in progress."""
    store = Store(data)
    services = Services.build(MachineConfig(store=StoreConfig(data_dir=str(data))), store)
    services.clock = lambda: T0
    if settings:
        services.settings.save(closed_settings(2525))  # email on; nothing is sent here
    runner = CallRunner(services)
    runner.ring_grace = 0.0
    calls = CallService(services.bus, services.settings.get, {}.get, services.clock, runner=runner)
    calls.subscribe()
    calls.close()
    fax = FaxService(
        store,
        services.bus,
        services.settings.get,
        services.history,
        FakeLines(FakeLine()),
        notify=services.notify,
        clock=lambda: T0,
        send=send or FakeSend(),
    )
    fax.subscribe()
    fax.close()
    services.fax = fax
    return services, fax


def die(services: Services) -> None:
    """The process ends here: nothing is closed or flushed beyond what was acknowledged."""
    services.store.close()


def faxes(services: Services) -> list[Interaction]:
    return services.history.newest(50, where=lambda i: i.channel == "fax")


def calls(services: Services) -> list[Interaction]:
    return services.history.newest(50, where=lambda i: i.channel == "call")


def emails(services: Services) -> list[dict[str, Any]]:
    return [dict(d) for d in services.store.table("outbox", "messages").all()]


def page(seed: int = 1) -> session.RxPage:
    im = Image.new("1", (1728, 200), 1)
    for x in range(60 + seed * 9, 1600, 200):
        im.paste(0, (x, 40, x + 70, 160))
    data = encode_page(im, fine=True, mr=False, min_scan_bits=0, fill_order=2)
    return session.RxPage(data=data, fine=True, mr=False, fill_order=2)


def pdf_pages(services: Services, ref: str) -> int:
    pdf = pdfium.PdfDocument(services.store.media.read(ref))
    try:
        return len(pdf)
    finally:
        pdf.close()


def test_a_page_on_disk_becomes_a_partial_fax_and_one_email_once(tmp_path: Path) -> None:
    first, fax = boot(tmp_path)
    rx = fax._begin_receive("line1", 3, "5551001", adopt=True)
    fax._received_pages(rx, "+1 555 1001", [page()])
    (marker,) = first.history.calls_in_progress()
    assert marker["kind"] == "fax" and marker["remote_id"] == "+1 555 1001"
    (kept,) = marker["pages"]
    assert first.store.media.path(kept["ref"]).is_file()
    assert not first.store.media.path(marker["next_page"]).exists()  # named, not written yet
    die(first)

    second, _ = boot(tmp_path, settings=False)
    (item,) = faxes(second)
    assert (item.outcome, item.direction, item.line) == ("partial", "in", "line1")
    assert item.number == "+15551001" and item.name == "+1 555 1001" and item.start == T0
    assert item.text.startswith(INTERRUPTED_FAX) and "1 page(s) had arrived" in item.text
    assert item.details["interrupted"] is True and item.details["pages"] == 1
    assert item.details["fax_key"] == marker["key"] and item.end is None
    assert item.open  # the owner should look at it
    assert pdf_pages(second, item.media[0]) == 1
    (mail,) = emails(second)
    assert mail["kind"] == "fax" and mail["record_id"] == item.id
    assert [a["ref"] for a in mail["attachments"]] == [item.media[0]]
    assert "incomplete" in mail["subject"]
    assert second.history.calls_in_progress() == []
    assert not second.store.media.path(kept["ref"]).exists()  # the page file went with it
    assert calls(second) == []
    die(second)

    third, _ = boot(tmp_path, settings=False)  # and again: nothing more
    assert len(faxes(third)) == 1 and len(emails(third)) == 1
    die(third)


def test_nothing_arrived_gives_one_failed_record_and_a_notice(tmp_path: Path) -> None:
    first, fax = boot(tmp_path)
    fax._begin_receive("line1", 3, "5551001", adopt=True)
    die(first)

    second, _ = boot(tmp_path, settings=False)
    (item,) = faxes(second)
    assert (item.outcome, item.media, item.details["pages"]) == ("failed", (), 0)
    assert item.text == INTERRUPTED_FAX and item.details["interrupted"] is True
    (mail,) = emails(second)
    assert mail["kind"] == "fax" and mail["record_id"] == item.id and not mail["attachments"]
    assert "nothing arrived" in mail["subject"]
    assert NOTHING_ARRIVED in mail["text"]
    die(second)

    third, _ = boot(tmp_path, settings=False)
    assert len(faxes(third)) == 1 and len(emails(third)) == 1
    die(third)


def test_a_page_written_before_the_marker_heard_of_it_is_kept(tmp_path: Path) -> None:
    first, fax = boot(tmp_path)
    rx = fax._begin_receive("line1", 3, "5551001", adopt=True)
    fax._received_pages(rx, "+1 555 1001", [page(1)])
    (marker,) = first.history.calls_in_progress()
    # The second page's file is written; the process dies before the marker notes it.
    path = first.store.media.path(marker["next_page"])
    path.write_bytes(page(2).data)
    die(first)

    second, _ = boot(tmp_path, settings=False)
    (item,) = faxes(second)
    assert item.outcome == "partial" and item.details["pages"] == 2
    assert pdf_pages(second, item.media[0]) == 2
    assert not path.exists()
    die(second)


def test_a_finished_fax_removes_its_marker_and_page_files(tmp_path: Path) -> None:
    services, fax = boot(tmp_path)
    got: list[str] = []

    def receive(line: Any, **kw: Any) -> session.ReceiveOutcome:
        kw["on_progress"]("+1 555 1001", [page(1)])
        got.extend(p["ref"] for p in services.history.calls_in_progress()[0]["pages"])
        kw["on_progress"]("+1 555 1001", [page(2)])
        return session.ReceiveOutcome(
            ok=True, reason="received 2 page(s)", pages=[page(1), page(2)], remote_id="x"
        )

    fax._receive = receive
    thread = fax.answer(
        FakeLine(),
        IncomingCall(line="line1", call_id=4, number="5551001", name=None, validity="ok"),
    )  # type: ignore[arg-type]
    assert thread is not None
    thread.join(20)
    (item,) = faxes(services)
    assert item.outcome == "received" and item.details["fax_key"]
    assert services.history.calls_in_progress() == []
    assert got and not services.store.media.path(got[0]).exists()
    assert len(emails(services)) == 1
    die(services)


def test_a_death_between_the_record_and_the_marker_gives_no_second_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services, fax = boot(tmp_path)
    rx = fax._begin_receive("line1", 3, "5551001", adopt=True)
    fax._received_pages(rx, "+1 555 1001", [page()])
    monkeypatch.setattr(services.history, "end_call", lambda marker_id: None)
    outcome = session.ReceiveOutcome(ok=True, reason="received 1 page(s)", pages=[page()])
    fax.store_received(outcome, line="line1", number="5551001", start=rx.start, key=rx.key)
    fax._forget(rx.marker, [p["ref"] for p in rx.pages] + [rx.next_page])
    monkeypatch.undo()
    assert len(services.history.calls_in_progress()) == 1
    die(services)

    again, _ = boot(tmp_path, settings=False)
    (item,) = faxes(again)
    assert item.outcome == "received"  # the record as written, not a second one
    assert len(emails(again)) == 1 and again.history.calls_in_progress() == []
    die(again)


def test_a_fax_only_call_hands_its_marker_to_the_fax(tmp_path: Path) -> None:
    """The call runner's marker of a ringing call becomes the fax's (one write): a stop
    right after gives one fax record and no call record."""
    services, fax = boot(tmp_path)
    runner = CallRunner(services)
    event = IncomingCall(line="line1", call_id=9, number="5551001", name=None, validity="ok")
    plan = decide(Call(number="+15551001"), T0, services.settings.get(), LineCapabilities.analog())
    runner.ringing("line1", event, plan)
    (call_marker,) = services.history.calls_in_progress()
    runner.to_fax("line1", event)
    assert len(services.history.calls_in_progress()) == 1  # still noted
    fax._begin_receive("line1", 9, "5551001", adopt=True)
    (marker,) = services.history.calls_in_progress()
    assert marker["kind"] == "fax" and marker["key"] == call_marker["key"]
    assert marker["marker_id"] == call_marker["marker_id"]
    die(services)

    again, _ = boot(tmp_path, settings=False)
    assert calls(again) == []
    (item,) = faxes(again)
    assert item.details["fax_key"] == call_marker["key"]
    assert len(emails(again)) == 1
    die(again)


def test_a_stop_during_a_calling_tone_hand_over_records_the_call_and_the_fax(
    tmp_path: Path,
) -> None:
    services, fax = boot(tmp_path)
    runner = CallRunner(services)
    event = IncomingCall(line="line1", call_id=5, number="5551001", name=None, validity="ok")
    plan = decide(Call(number="+15551001"), T0, services.settings.get(), LineCapabilities.analog())
    runner.ringing("line1", event, plan)
    call = runner._ringing[("line1", 5)]
    runner._note(call, answered=True)
    release = threading.Event()

    def receive(line: Any, **kw: Any) -> session.ReceiveOutcome:
        release.wait(30)  # the fax goes on... and the process dies meanwhile
        raise Died

    fax._receive = receive
    fax.store_received = dead  # type: ignore[method-assign]
    call.fax = runner._hand_to_fax(FakeLine(), call)  # type: ignore[arg-type]
    assert call.fax
    (call_marker,) = [m for m in services.history.calls_in_progress() if "kind" not in m]
    assert call_marker["fax"] == "taken over"
    (fax_marker,) = [m for m in services.history.calls_in_progress() if m.get("kind") == "fax"]
    assert fax_marker["call_key"] == call.key
    die(services)
    release.set()

    again, _ = boot(tmp_path, settings=False)
    (record,) = calls(again)
    assert record.outcome == "fax" and record.text == FAX_TAKEN_WHY
    assert record.details["fax"] == "taken over" and record.details["call_key"] == call.key
    (item,) = faxes(again)
    assert item.details["from_call"] == call.key and item.number == "+15551001"
    assert [m["kind"] for m in emails(again)] == ["fax"]  # no missed-call email as well
    assert again.history.calls_in_progress() == []
    die(again)


class Died(Exception):
    """The process ends here (what follows is never written)."""


def queued_and_drawn(services: Services, fax: FaxService) -> Interaction:
    """A fax queued through `send` and drawn here (`boot` closed the service's threads)."""
    item = fax.send("+1 555 010 0100", page_png())
    fax._draw_record(item.id)
    got = services.history.get(item.id)
    assert got is not None and got.details["status"] == "queued", got
    return got


def dead(*_: Any, **__: Any) -> Any:
    raise Died


def test_a_send_cut_off_goes_back_to_the_queue(tmp_path: Path) -> None:
    services, fax = boot(tmp_path)
    item = queued_and_drawn(services, fax)
    fax._tried = dead  # type: ignore[method-assign]  # dies before the try's result is written
    with pytest.raises(Died):
        fax.send_now(item)
    (marker,) = services.history.calls_in_progress()
    assert (marker["kind"], marker["direction"], marker["record_id"]) == ("fax", "out", item.id)
    die(services)

    again, fax2 = boot(tmp_path, settings=False)
    got = again.history.get(item.id)
    assert got is not None and got.outcome == "queued" and got.details["status"] == "queued"
    assert got.details["attempts"] == 1 and got.details["last_status"] == "failed"
    assert "interrupted" in got.details["log"][-1]
    assert datetime.fromisoformat(got.details["next_try"]) == T0 + timedelta(seconds=120)
    assert again.history.calls_in_progress() == [] and emails(again) == []
    fax2.send_now(got)
    sent = again.history.get(item.id)
    assert sent is not None and sent.outcome == "sent" and sent.details["attempts"] == 2
    assert again.history.calls_in_progress() == []
    die(again)


def test_a_send_cut_off_on_its_last_try_fails_and_says_so(tmp_path: Path) -> None:
    services, fax = boot(tmp_path)
    item = queued_and_drawn(services, fax)
    item = services.history.update(item.id, details=dict(item.details, attempts=4))
    fax._tried = dead  # type: ignore[method-assign]
    with pytest.raises(Died):
        fax.send_now(item)
    die(services)

    again, _ = boot(tmp_path, settings=False)
    got = again.history.get(item.id)
    assert got is not None and got.outcome == "failed" and got.details["attempts"] == 5
    assert "interrupted" in got.details["reason"]
    (mail,) = emails(again)
    assert mail["record_id"] == item.id and "failed" in mail["subject"]
    die(again)

    third, _ = boot(tmp_path, settings=False)
    assert len(emails(third)) == 1
    die(third)


def test_the_missed_call_email_of_an_interrupted_call_says_it_was_cut_off(
    tmp_path: Path,
) -> None:
    services, _ = boot(tmp_path)
    runner = CallRunner(services)
    event = IncomingCall(line="line1", call_id=2, number="5551001", name=None, validity="ok")
    plan = decide(Call(number="+15551001"), T0, services.settings.get(), LineCapabilities.analog())
    runner.ringing("line1", event, plan)
    die(services)

    again, _ = boot(tmp_path, settings=False)
    (record,) = calls(again)
    (mail,) = emails(again)
    assert record.outcome == "interrupted" and mail["kind"] == "missed_call"
    assert "The call was cut off when Frontdesk restarted." in mail["text"]
    assert "left no message" not in mail["text"]
    die(again)
