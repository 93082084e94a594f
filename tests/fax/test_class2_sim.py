"""Class 2 and 2.0 over a line: the Conexant personality (firmware with Class 2) and a
scripted fax machine. Receive: ATA reports, AT+FDR, DC2, page data (MSB first in Class 2,
DLE SUB in 2.0), +FPS/+FET, +FHS. Send: ATD, AT+FDT (XON in Class 2), page ends, AT+FET."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from firmware_app.events import EventBus
from firmware_app.fax import session
from firmware_app.media.fax_image import decode_page
from firmware_app.media.fax_send import FaxPage, encode_page
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line, LineOptions
from firmware_app.modem.simulator import FaxMachine, create

pytestmark = pytest.mark.timeout(60)


def _page(seed: int) -> Image.Image:
    im = Image.new("1", (1728, 120), 1)
    for x in range(40 + seed * 7, 1700, 240):
        im.paste(0, (x, 20, x + 50, 100))
    im.paste(0, (0, 60, 1728, 62))
    return im


def _data(im: Image.Image) -> bytes:
    # 0x10 0x10 in the data exercises DLE SUB (2.0) and DLE doubling both ways
    return encode_page(im, fine=True, mr=False, min_scan_bits=0, fill_order=2)


@pytest.fixture(
    params=[("cx93010", "2"), ("cx93010", "2.0"), ("mt9234mu", "2.0")],
    ids=["cx93010-2", "cx93010-2.0", "mt9234mu-2.0"],
)
def line(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Line, str]]:
    personality, version = request.param
    modem = create(personality, tmp_path / "dev")
    if personality == "cx93010" and version == "2.0":  # a Conexant with Class 2.0 as well
        modem.engine.p = dataclasses.replace(
            modem.engine.p, fclass_options_class2="0,1,1.0,2,2.0,8"
        )
    bus = EventBus()
    up = threading.Event()
    bus.subscribe(ev.LineUp, lambda e: up.set())
    line = Line("line1", str(modem.path), bus=bus, options=LineOptions(idle_after=30.0))
    line.start()
    try:
        assert up.wait(15), line.status()
        assert line.profile is not None and version in line.profile.fax_classes
        yield modem, line, version
    finally:
        line.stop()
        line.join(3)
        line.close()
        modem.close()


def test_receive(line: tuple[Any, Line, str]) -> None:
    modem, fax_line, version = line
    pages = [_page(1), _page(2)]
    machine = FaxMachine(remote_id="+1 555 1001", pages=[_data(p) for p in pages])
    calls: list[ev.IncomingCall] = []
    rang = threading.Event()
    fax_line.bus.subscribe(ev.IncomingCall, lambda e: (calls.append(e), rang.set()))
    modem.fax_call(machine, "5551001", rings=5, interval=0.5)
    assert rang.wait(10)
    got = session.receive(fax_line, local_id="+1 555 2002", use_class=version)
    assert got.ok, got
    assert (got.fax_class, got.remote_id, len(got.pages)) == (version, "+1 555 1001", 2)
    for sent, rx in zip(pages, got.pages, strict=True):
        decoded = decode_page(rx.data, fine=rx.fine, mr=rx.mr, fill_order=rx.fill_order)
        assert decoded.fill_order == (1 if version == "2" else 2)  # Class 2: MSB first
        assert decoded.damaged_lines == 0
        assert np.array_equal(np.asarray(decoded.image), np.asarray(sent))
    assert modem.wait_for_command(r"AT\+FCLASS=0", timeout=5)
    assert any(c.upper().startswith("AT+FCR=1") for c in modem.commands)


def test_receive_cut_short_keeps_the_pages_and_is_not_ok(line: tuple[Any, Line, str]) -> None:
    modem, fax_line, version = line
    pages = [_page(1), _page(2), _page(3)]
    machine = FaxMachine(pages=[_data(p) for p in pages], hangup_after=2)
    rang = threading.Event()
    fax_line.bus.subscribe(ev.IncomingCall, lambda e: rang.set())
    modem.fax_call(machine, "5551001", rings=5, interval=0.5)
    assert rang.wait(10)
    got = session.receive(fax_line, local_id="+1 555 2002", use_class=version)
    assert not got.ok and "the page is kept" in got.reason, got
    assert [p.confirmed for p in got.pages] == [True, False]
    for sent, rx in zip(pages, got.pages, strict=False):
        decoded = decode_page(rx.data, fine=rx.fine, mr=rx.mr, fill_order=rx.fill_order)
        assert np.array_equal(np.asarray(decoded.image), np.asarray(sent))


def test_send(line: tuple[Any, Line, str]) -> None:
    modem, fax_line, version = line
    machine = FaxMachine(remote_id="+1 555 2002")
    modem.fax.machine = machine
    pages = [_page(3), _page(4)]
    got = session.send(
        fax_line,
        "5552002",
        [FaxPage(p) for p in pages],
        local_id="+1 555 1001",
        use_class=version,
    )
    assert got.ok, got
    assert (got.status, got.pages_sent, got.remote_id) == ("sent", 2, "+1 555 2002")
    assert machine.post_page == [0, 2]  # MPS, then EOP
    for sent, data in zip(pages, machine.received, strict=True):
        decoded = decode_page(data, fine=True, fill_order=2)
        assert np.array_equal(np.asarray(decoded.image), np.asarray(sent))


def test_busy(line: tuple[Any, Line, str]) -> None:
    modem, fax_line, version = line
    modem.fax.machine = FaxMachine(busy=True)
    got = session.send(fax_line, "5552002", [FaxPage(_page(1))], local_id="", use_class=version)
    assert (got.ok, got.status, got.reason) == (False, "busy", "the number was busy (BUSY)")


class _Host:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, port: int, data: bytes) -> None:
        self.out += data


class _Engine:
    def __init__(self, fclass: str) -> None:
        self.fclass = fclass
        self.host = _Host()
        self.call_state = "active"


@pytest.mark.parametrize("version", ["2", "2.0"])
def test_page_data_escapes_round_trip(version: str) -> None:
    from firmware_app.modem.simulator.fax2 import Class2Sim
    from firmware_app.protocol.fax_class2 import PageDataDecoder

    data = bytes([1, 0x10, 0x10, 2, 0x10, 0x1A, 0x10, 3, 0x10, 0x10, 0x10])
    engine = _Engine(version)
    sim = Class2Sim(engine)  # type: ignore[arg-type]
    sim.machine = FaxMachine(pages=[data])
    sim.connected = True
    sim.mode = "fdr"
    assert sim.receive(b"\x12AT") == b"AT"
    wire = bytes(engine.host.out)
    if version == "2.0":
        assert b"\x10\x1a" in wire  # DLE SUB for a pair of DLEs
    decoder = PageDataDecoder(version=version)  # type: ignore[arg-type]
    got = decoder.feed(wire)
    expected = (
        data
        if version == "2.0"
        else data.translate(bytes(int(f"{b:08b}"[::-1], 2) for b in range(256)))
    )
    assert decoder.ended and got == expected
    assert b"+FET:2" in decoder.leftover
