"""Frontdesk faxes Frontdesk over the simulator's virtual line: two simulated modems on ptys
(the USR5637 in Class 1, the Conexant with Class 2 and 2.0), each opened by a real `Line`,
one running `session.send`, the other `session.receive`. Pages compared pixel for pixel.
Also the line's faults through the real drivers: a page carrier lost on the way (the receiver
answers RTN and the page comes again), the call dropping in the middle of a document (a
partial fax that keeps its pages), and multi-document faxes (EOM) from the simulator's own
T.30 fax machine."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from firmware_app.events import EventBus
from firmware_app.fax import session
from firmware_app.fax.service import FaxService
from firmware_app.media.fax_image import decode_page
from firmware_app.media.fax_send import FaxPage, encode_page
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line, LineOptions
from firmware_app.modem.simulator import SimulatedModem, create
from firmware_app.modem.simulator.fax_line import VirtualLine
from firmware_app.modem.simulator.fax_machine import LineFax
from firmware_app.services import Services
from tests.fax.fakes import FakeLine, FakeLines

pytestmark = pytest.mark.timeout(120)


def make_page(seed: int, height: int = 160) -> Image.Image:
    im = Image.new("1", (1728, height), 1)
    draw = ImageDraw.Draw(im)
    draw.rectangle((60 + 40 * seed, 20, 700 + 40 * seed, 70), fill=0)
    draw.text((80, 90), f"page {seed}: the quick brown fox " * 4, fill=0)
    for x in range(0, 1728, 97 + seed):
        draw.line((x, 120, x + 30, height - 10), fill=0, width=2)
    return im


def same(data: bytes, fine: bool, mr: bool | None, order: int | None, want: Image.Image) -> bool:
    page = decode_page(data, fine=fine, mr=mr, fill_order=order)  # type: ignore[arg-type]
    expected = np.asarray(want)[:: 1 if fine else 2]
    return page.damaged_lines == 0 and np.array_equal(np.asarray(page.image), expected)


@dataclasses.dataclass
class End:
    modem: SimulatedModem
    line: Line
    bus: EventBus
    fax_class: str
    rang: threading.Event


@pytest.fixture
def make_end(tmp_path: Path) -> Iterator[Callable[[str, str], End]]:
    made: list[End] = []

    def make(fax_class: str, name: str) -> End:
        if fax_class == "1":
            modem = create("usr5637", tmp_path / name)
        else:  # the Conexant firmware with Class 2, widened to 2.0 (MultiTech style)
            modem = create("cx93010", tmp_path / name)
            modem.engine.p = dataclasses.replace(
                modem.engine.p, fclass_options_class2="0,1,1.0,2,2.0,8"
            )
        bus = EventBus()
        up = threading.Event()
        rang = threading.Event()
        bus.subscribe(ev.LineUp, lambda e: up.set())
        bus.subscribe(ev.IncomingCall, lambda e: rang.set())
        line = Line(name, str(modem.path), bus=bus, options=LineOptions(idle_after=60.0))
        line.start()
        end = End(modem, line, bus, fax_class, rang)
        made.append(end)
        assert up.wait(15), line.status()
        assert line.profile is not None and fax_class in line.profile.fax_classes
        return end

    yield make
    for end in made:
        end.line.stop()
        end.line.join(3)
        end.line.close()
        end.modem.close()


def fax(
    sender: End, receiver: End, pages: list[Image.Image], *, fine: bool = True
) -> tuple[session.SendOutcome, session.ReceiveOutcome]:
    """The sender dials the receiver; the receiver answers when it rings."""
    sent: dict[str, session.SendOutcome] = {}

    def send() -> None:
        sent["out"] = session.send(
            sender.line,
            "5552002",
            [FaxPage(p) for p in pages],
            local_id="+1 555 1001",
            fine=fine,
            use_class=sender.fax_class,
        )

    thread = threading.Thread(target=send, name="test-fax-send")
    thread.start()
    assert receiver.rang.wait(30), "the receiving line never rang"
    got = session.receive(receiver.line, local_id="+1 555 2002", use_class=receiver.fax_class)
    thread.join(90)
    assert not thread.is_alive()
    return sent["out"], got


@pytest.mark.parametrize(
    ("tx_class", "rx_class"),
    [("1", "1"), ("1", "2.0"), ("2.0", "1"), ("2.0", "2.0")],
    ids=["class1-class1", "class1-class2.0", "class2.0-class1", "class2.0-class2.0"],
)
def test_frontdesk_faxes_frontdesk(
    make_end: Callable[[str, str], End], tx_class: str, rx_class: str
) -> None:
    sender, receiver = make_end(tx_class, "a"), make_end(rx_class, "b")
    with VirtualLine(sender.modem, receiver.modem):
        pages = [make_page(1), make_page(2)]
        out, got = fax(sender, receiver, pages)
    assert out.ok and out.pages_sent == 2 and out.remote_id == "+1 555 2002", out
    assert got.ok and got.remote_id == "+1 555 1001", got
    assert (out.fax_class, got.fax_class) == (tx_class, rx_class)
    assert len(got.pages) == 2
    for rx, want in zip(got.pages, pages, strict=True):
        assert rx.mr  # both ends offer MR (2-D): the sender uses it
        assert rx.confirmed and same(rx.data, rx.fine, rx.mr, rx.fill_order, want)


def test_class1_at_normal_resolution(make_end: Callable[[str, str], End]) -> None:
    sender, receiver = make_end("1", "a"), make_end("1", "b")
    with VirtualLine(sender.modem, receiver.modem):
        pages = [make_page(3, height=200)]
        out, got = fax(sender, receiver, pages, fine=False)
    assert out.ok and got.ok, (out, got)
    (rx,) = got.pages
    assert not rx.fine and same(rx.data, False, rx.mr, rx.fill_order, pages[0])


def test_a_page_lost_on_the_line_is_answered_rtn_and_sent_again(
    make_end: Callable[[str, str], End],
) -> None:
    sender, receiver = make_end("1", "a"), make_end("1", "b")
    with VirtualLine(sender.modem, receiver.modem) as line:
        # The sender's high-speed carriers: 1 training check, 2 page 1, 3 page 2.
        line.lose(0, 3)
        pages = [make_page(4), make_page(5)]
        out, got = fax(sender, receiver, pages)
    assert out.ok and out.pages_sent == 2, out
    assert "< RTN" in out.trace and "> RTN" in got.trace
    assert "= EOP without its page" in got.trace
    assert got.ok and len(got.pages) == 2, got
    for rx, want in zip(got.pages, pages, strict=True):
        assert same(rx.data, rx.fine, rx.mr, rx.fill_order, want)


def test_a_page_damaged_on_the_line_is_answered_rtn_and_sent_again(
    make_end: Callable[[str, str], End],
) -> None:
    sender, receiver = make_end("1", "a"), make_end("1", "b")
    pages = [make_page(14), make_page(15)]
    size = len(FaxPage(pages[0]).encode(fine=True, mr=True, min_scan_bits=0))
    with VirtualLine(sender.modem, receiver.modem) as line:
        line.damage(0, 2, size // 5, size // 5 + 400)  # a burst of noise across page 1
        out, got = fax(sender, receiver, pages)
    assert out.ok and out.pages_sent == 2, out
    assert "> RTN" in got.trace and "= page damaged: asked again" in got.trace
    assert "< RTN" in out.trace and "> TCF at V.17/12000" in out.trace  # one rate down
    assert got.ok and len(got.pages) == 2, got
    for rx, want in zip(got.pages, pages, strict=True):
        assert same(rx.data, rx.fine, rx.mr, rx.fill_order, want)


def test_a_class2_receiver_checks_each_page_and_asks_rtn_through_the_modem(
    make_end: Callable[[str, str], End],
) -> None:
    """Class 2.0: the modem runs T.30 and answers each page when the next AT+FDR comes; a
    page Frontdesk finds damaged gets AT+FPS=2 first, so the modem answers RTN and the
    sender sends it again (T.32 +FPS; what efax and Windows' fax driver do too)."""
    sender, receiver = make_end("1", "a"), make_end("2.0", "b")
    pages = [make_page(14), make_page(15)]
    size = len(FaxPage(pages[0]).encode(fine=True, mr=True, min_scan_bits=0))
    with VirtualLine(sender.modem, receiver.modem) as line:
        line.damage(0, 2, size // 5, size // 5 + 400)  # a burst of noise across page 1
        out, got = fax(sender, receiver, pages)
    assert out.ok and out.pages_sent == 2, out
    assert "< RTN" in out.trace, out.trace  # the modem answered RTN as Frontdesk asked
    commands = [c.upper() for c in receiver.modem.commands]
    assert commands.count("AT+FPS=2") == 1, commands
    at = commands.index("AT+FPS=2")
    assert commands[at - 1 : at + 2] == ["AT+FDR", "AT+FPS=2", "AT+FDR"]  # between pages
    assert got.ok and len(got.pages) == 2, got  # the damaged copy is not kept
    for rx, want in zip(got.pages, pages, strict=True):
        assert same(rx.data, rx.fine, rx.mr, rx.fill_order, want)


def test_a_class2_sender_sends_a_page_again_after_rtn(
    make_end: Callable[[str, str], End],
) -> None:
    """Class 2.0 sending: the Class 1 receiver answers a damaged page RTN, the modem reports
    +FPS:2, Frontdesk sends the page again with another AT+FDT (the modem trains again)."""
    sender, receiver = make_end("2.0", "a"), make_end("1", "b")
    pages = [make_page(16), make_page(17)]
    size = len(FaxPage(pages[0]).encode(fine=True, mr=False, min_scan_bits=0))
    with VirtualLine(sender.modem, receiver.modem) as line:
        line.damage(0, 2, size // 5, size // 5 + 400)  # a burst of noise across page 1
        out, got = fax(sender, receiver, pages)
    assert out.ok and out.pages_sent == 2, out
    assert "> RTN" in got.trace and "= page damaged: asked again" in got.trace
    commands = [c.upper() for c in sender.modem.commands]
    assert commands.count("AT+FDT") == 3, commands  # page 1 twice, then page 2
    assert got.ok and len(got.pages) == 2, got
    for rx, want in zip(got.pages, pages, strict=True):
        assert same(rx.data, rx.fine, rx.mr, rx.fill_order, want)


def test_a_call_cut_after_page_data_is_a_partial_fax_with_its_pages(
    make_end: Callable[[str, str], End], services: Services
) -> None:
    sender, receiver = make_end("1", "a"), make_end("1", "b")
    with VirtualLine(sender.modem, receiver.modem) as line:
        line.cut_after(0, 3)  # the line drops as page 2's data ends, before its MPS
        pages = [make_page(6), make_page(7), make_page(8)]
        out, got = fax(sender, receiver, pages)
    assert not out.ok and not got.ok, (out, got)
    assert [p.confirmed for p in got.pages] == [True, False], got
    assert "not confirmed" in got.reason
    for rx, want in zip(got.pages, pages, strict=False):
        assert same(rx.data, rx.fine, rx.mr, rx.fill_order, want)
    service = FaxService(
        services.store,
        services.bus,
        services.settings.get,
        services.history,
        FakeLines(FakeLine(name="b")),
    )
    record = service.store_received(got, line="b", number="5551001")
    assert record.outcome == "partial" and record.details["pages"] == 2
    assert record.details["unconfirmed_pages"] == 1 and record.media


def machine_pages(*seeds: int) -> tuple[list[Image.Image], list[bytes]]:
    images = [make_page(s) for s in seeds]
    return images, [encode_page(im, fine=True, mr=False, min_scan_bits=0) for im in images]


@pytest.mark.parametrize("rx_class", ["1", "2.0"])
def test_two_documents_from_a_fax_machine_eom(
    make_end: Callable[[str, str], End], rx_class: str
) -> None:
    receiver = make_end(rx_class, "b")
    machine = LineFax(local_id="+1 555 3003")
    images, data = machine_pages(9, 10, 11)
    with VirtualLine(machine, receiver.modem):
        machine.send([data[:1], data[1:]])
        assert receiver.rang.wait(30)
        got = session.receive(receiver.line, local_id="+1 555 2002", use_class=rx_class)
        result = machine.wait(60)
    machine.close()
    assert result.ok, result
    assert result.trace.count("< DIS") == 2  # DIS again after EOM
    assert got.ok and got.remote_id == "+1 555 3003" and len(got.pages) == 3, got
    if rx_class == "1":
        assert "= EOM: phase B again" in got.trace
    for rx, want in zip(got.pages, images, strict=True):
        assert same(rx.data, rx.fine, rx.mr, rx.fill_order, want)


@pytest.mark.parametrize("mr", [False, True], ids=["MH", "MR"])
def test_frontdesk_class1_to_a_fax_machine(make_end: Callable[[str, str], End], mr: bool) -> None:
    sender = make_end("1", "a")
    machine = LineFax(local_id="+1 555 3003", mr=mr)
    images = [make_page(12), make_page(13)]
    with VirtualLine(sender.modem, machine):
        machine.receive()
        out = session.send(
            sender.line, "5553003", [FaxPage(im) for im in images], local_id="+1 555 1001"
        )
        result = machine.wait(60)
    machine.close()
    assert out.ok and out.remote_id == "+1 555 3003", out
    assert result.ok and result.remote_id == "+1 555 1001", result
    assert result.post_pages == [0, 2]
    session_params = result.session
    assert session_params is not None and session_params.mr is mr  # MR only when offered
    for data, want in zip(result.pages, images, strict=True):
        assert same(data, session_params.fine, session_params.mr, 2, want)


def test_a_busy_line_and_a_call_nobody_answers(make_end: Callable[[str, str], End]) -> None:
    sender, receiver = make_end("1", "a"), make_end("1", "b")
    with VirtualLine(sender.modem, receiver.modem, rings=2, ring_interval=0.3) as line:
        out = session.send(sender.line, "5552002", [FaxPage(make_page(1))], local_id="1")
        assert (out.ok, out.status) == (False, "no_carrier"), out
        assert out.reason == "no fax machine answered (NO CARRIER)"
        assert receiver.rang.is_set()
        line.off_hook(1)  # a phone at the other end is in use
        busy = session.send(sender.line, "5552002", [FaxPage(make_page(1))], local_id="1")
        assert (busy.ok, busy.status) == (False, "busy"), busy
        assert busy.reason == "the number was busy (BUSY)"


def test_a_class1_receiver_offers_only_what_its_modem_receives(
    make_end: Callable[[str, str], End],
) -> None:
    sender, receiver = make_end("1", "a"), make_end("1", "b")
    receiver.modem.engine.fax1.modulations = (24, 48, 72, 96)  # AT+FRM=?: no V.17
    with VirtualLine(sender.modem, receiver.modem):
        pages = [make_page(16)]
        out, got = fax(sender, receiver, pages)
    assert receiver.modem.wait_for_command(r"AT\+FRM=\?")
    assert out.ok and got.ok, (out, got)
    assert out.rate == got.rate == "V.29/9600"  # the best the DIS offered
    assert "= TCF bad" not in " ".join(got.trace)  # no training at a speed it cannot take
    (rx,) = got.pages
    assert same(rx.data, rx.fine, rx.mr, rx.fill_order, pages[0])


def test_the_bit_order_of_class1_pages_is_detected(
    make_end: Callable[[str, str], End], services: Services
) -> None:
    receiver = make_end("1", "b")
    machine = LineFax(local_id="+1 555 3003")
    images = [make_page(17)]
    msb_first = [encode_page(images[0], fine=True, mr=False, min_scan_bits=0, fill_order=1)]
    with VirtualLine(machine, receiver.modem):
        machine.send([msb_first])
        assert receiver.rang.wait(30)
        got = session.receive(receiver.line, local_id="+1 555 2002")
        assert machine.wait(60).ok
    machine.close()
    assert got.ok, got
    (rx,) = got.pages
    assert rx.fill_order is None  # not assumed: detected when read
    page = decode_page(rx.data, fine=rx.fine, mr=rx.mr)
    assert page.fill_order == 1 and np.array_equal(np.asarray(page.image), np.asarray(images[0]))
    service = FaxService(
        services.store,
        services.bus,
        services.settings.get,
        services.history,
        FakeLines(FakeLine(name="b")),
    )
    record = service.store_received(got, line="b")
    assert record.outcome == "received" and record.details["quality"] == 1.0
