"""The simulated Class 1 modem (T.31) as a host sees it on its pty, byte for byte, with two
simulated USR5637s on a virtual line and nothing of Frontdesk's in between: the codes
AT+FTM=?/+FRM=?/+FTH=? list, ERROR on-hook and for a code the modem lacks, ATD/ATA and
CONNECT after the answer tone, HDLC frames with the FCS octets the modem adds and checks,
CONNECT between frames and OK after the final one, +FRH=3 again on the same carrier,
+FCERROR for the wrong carrier, page data with DLE doubling ended by DLE ETX and NO CARRIER,
a receive aborted by a character (OK), +FTS/+FRS, and NO CARRIER once the far end is gone."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from firmware_app.modem.simulator import create
from firmware_app.modem.simulator.fax_line import VirtualLine
from firmware_app.protocol.t30_frames import crc16

pytestmark = pytest.mark.timeout(60)

DLE_ETX = b"\x10\x03"
CODES = b"24,48,72,73,74,96,97,98,121,122,145,146"


class Host:
    """A serial port read until a pattern, as a fax program would."""

    def __init__(self, path: Path) -> None:
        self.port = serial.Serial(str(path), 115200, timeout=0.05)
        self.buf = bytearray()

    def send(self, data: bytes) -> None:
        self.port.write(data)

    def at(self, command: str) -> None:
        self.send(command.encode() + b"\r")

    def expect(self, pattern: bytes, timeout: float = 10.0) -> re.Match[bytes]:
        regex = re.compile(pattern, re.DOTALL)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(bytes(self.buf))
            if m is not None:
                del self.buf[: m.end()]
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in {bytes(self.buf)!r}")
            self.buf += self.port.read(4096)

    def nothing(self, seconds: float) -> bytes:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.buf += self.port.read(4096)
        return bytes(self.buf)

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Host, Host, VirtualLine]]:
    a = create("usr5637", tmp_path / "a")
    b = create("usr5637", tmp_path / "b")
    line = VirtualLine(a, b, time_scale=0.02)
    hosts = (Host(a.path), Host(b.path))
    try:
        for host in hosts:
            host.at("ATE0")
            host.expect(rb"OK\r\n")
            host.at("AT+FCLASS=1")
            host.expect(rb"OK\r\n")
        yield hosts[0], hosts[1], line
    finally:
        for host in hosts:
            host.close()
        line.close()
        a.close()
        b.close()


def frame(fcf: int, fif: bytes = b"", final: bool = True) -> bytes:
    return bytes((0xFF, 0x13 if final else 0x03, fcf)) + fif


def on_wire(octets: bytes) -> bytes:
    """A frame as the receiving modem hands it over: with its FCS, DLE doubled."""
    fcs = crc16(octets)
    return (octets + bytes((fcs & 0xFF, fcs >> 8))).replace(b"\x10", b"\x10\x10") + DLE_ETX


def call(a: Host, b: Host) -> None:
    """A dials B, B answers: B's modem sends flags (CONNECT), A hears them (CONNECT)."""
    a.at("ATD5552002")
    b.expect(rb"RING")
    b.at("ATA")
    b.expect(rb"\r\nCONNECT\r\n")
    a.expect(rb"\r\nCONNECT\r\n")


def test_lists_codes_and_refuses_on_hook_or_unknown(pair: tuple[Host, Host, VirtualLine]) -> None:
    a, _, _ = pair
    for command, answer in (("AT+FTM=?", CODES), ("AT+FRM=?", CODES), ("AT+FTH=?", b"3")):
        a.at(command)
        a.expect(rb"\r\n" + re.escape(answer) + rb"\r\n\r\nOK\r\n")
    for command in ("AT+FRH=3", "AT+FTM=146", "AT+FTH=3", "AT+FRM=146"):
        a.at(command)
        a.expect(rb"\r\nERROR\r\n")  # on-hook (USR command reference)
    a.at("AT+FCLASS=0")
    a.expect(rb"OK\r\n")
    a.at("AT+FTM=?")
    a.expect(rb"\r\nERROR\r\n")  # not in Class 1


def test_frames_both_ways_with_fcs_and_connect_between(
    pair: tuple[Host, Host, VirtualLine],
) -> None:
    a, b, _ = pair
    call(a, b)
    csi = frame(0x40, b"\x10 0 0 2 5 5 5 1 +".ljust(20, b" "), final=False)
    dis = frame(0x80, b"\x00\xee\x78")
    b.send(csi.replace(b"\x10", b"\x10\x10") + DLE_ETX)
    b.expect(rb"\r\nCONNECT\r\n")  # final bit 0: the next frame may follow
    b.send(dis + DLE_ETX)
    b.expect(rb"\r\nOK\r\n")  # final frame sent
    # A is in HDLC receive after ATD: the first frame follows CONNECT.
    got = a.expect(rb"(.*?)\r\nOK\r\n").group(1)
    assert got == on_wire(csi)
    a.at("AT+FRH=3")  # the same carrier: CONNECT at once, then the next frame
    a.expect(rb"\r\nCONNECT\r\n")
    assert a.expect(rb"(.*?)\r\nOK\r\n").group(1) == on_wire(dis)
    # A answers: gap, then its own frame. B listens.
    b.at("AT+FRH=3")
    a.at("AT+FTS=8")
    a.expect(rb"\r\nOK\r\n")
    a.at("AT+FTH=3")
    a.expect(rb"\r\nCONNECT\r\n")
    dcs = frame(0x83, b"\x00\x62\x70")
    a.send(dcs + DLE_ETX)
    a.expect(rb"\r\nOK\r\n")
    b.expect(rb"\r\nCONNECT\r\n")
    assert b.expect(rb"(.*?)\r\nOK\r\n").group(1) == on_wire(dcs)


def test_high_speed_data_fcerror_and_abort(pair: tuple[Host, Host, VirtualLine]) -> None:
    a, b, _ = pair
    call(a, b)
    b.send(frame(0x80, b"\x00\xee\x78") + DLE_ETX)  # B's DIS, so the line is quiet after
    b.expect(rb"\r\nOK\r\n")
    a.expect(rb"\r\nOK\r\n")
    # Nothing comes: a receive waits, and any character ends it with OK.
    a.at("AT+FRM=146")
    assert b"CONNECT" not in a.nothing(0.5)
    a.send(b"\x18")
    a.expect(rb"\r\nOK\r\n")
    # B sends page data at V.17 14400 short training; A asked for V.29: +FCERROR.
    data = bytes(range(256)) * 8 + b"\x10\x10\x00"
    b.at("AT+FTM=146")
    b.expect(rb"\r\nCONNECT\r\n")
    a.at("AT+FRM=96")
    a.expect(rb"\r\n\+FCERROR\r\n")
    a.at("AT+FRH=3")
    a.expect(rb"\r\n\+FCERROR\r\n")  # not frames either
    a.at("AT+FRM=146")
    b.send(data.replace(b"\x10", b"\x10\x10") + DLE_ETX)
    b.expect(rb"\r\nOK\r\n")
    a.expect(rb"\r\nCONNECT\r\n")
    got = a.expect(rb"(.*?)\x10\x03\r\nNO CARRIER\r\n").group(1)
    assert got.replace(b"\x10\x10", b"\x10") == data


def test_silence_commands_and_the_far_end_hanging_up(
    pair: tuple[Host, Host, VirtualLine],
) -> None:
    a, b, _ = pair
    call(a, b)
    b.send(frame(0x80, b"\x00\xee\x78") + DLE_ETX)
    b.expect(rb"\r\nOK\r\n")
    a.expect(rb"\r\nOK\r\n")
    a.at("AT+FRS=5")  # the line is quiet: OK after 50 ms of silence
    a.expect(rb"\r\nOK\r\n")
    b.at("AT+FTH=3")
    b.expect(rb"\r\nCONNECT\r\n")
    b.send(DLE_ETX)  # a null frame ends the carrier
    b.expect(rb"\r\nOK\r\n")
    a.at("AT+FRH=3")
    b.at("ATH")
    b.expect(rb"\r\nOK\r\n")
    a.expect(rb"\r\nNO CARRIER\r\n")
    a.at("AT+FRM=146")
    a.expect(rb"\r\nNO CARRIER\r\n")


def test_no_answer_and_busy(tmp_path: Path) -> None:
    a = create("usr5637", tmp_path / "a")
    b = create("usr5637", tmp_path / "b")
    line = VirtualLine(a, b, rings=2, ring_interval=0.2)
    host = Host(a.path)
    try:
        host.at("AT+FCLASS=1")
        host.expect(rb"OK\r\n")
        host.at("ATD5552002")
        host.expect(rb"\r\nNO CARRIER\r\n", timeout=10)
        line.off_hook(1)
        host.at("ATD5552002")
        host.expect(rb"\r\nBUSY\r\n")
    finally:
        host.close()
        line.close()
        a.close()
        b.close()
