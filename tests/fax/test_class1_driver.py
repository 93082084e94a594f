"""The Class 1 driver against a scripted T.31 modem, one byte per read: the AT commands each
T.30 action becomes, DLE framing both ways, FCS checks, +FCERROR, aborting a receive at
its deadline, the first action after ATA/ATD, and a line that goes away."""

from __future__ import annotations

import re
from collections import deque

import pytest

from firmware_app.fax.class1 import Class1Driver, escape, find_end, gap_command, unescape
from firmware_app.fax.pipe import PipeClosed
from firmware_app.protocol.t30 import (
    Disconnected,
    Done,
    FrameReceived,
    NoCarrier,
    PageReceived,
    ReceiveFrame,
    ReceivePage,
    ReceiveTraining,
    SendFrames,
    SendPage,
    SendTraining,
    Silence,
    TimedOut,
    TrainingReceived,
)
from firmware_app.protocol.t30_frames import MODULATIONS, Fcf, Frame, with_fcs

pytestmark = pytest.mark.timeout(20)

DLE_ETX = b"\x10\x03"
V17 = MODULATIONS["V.17/14400"]


class ScriptedModem:
    """A pipe: when the host has written what a step expects, the step's reply is queued
    (handed out one byte per read). A fake clock advances by the wait of an empty read."""

    def __init__(self, *steps: tuple[bytes | re.Pattern[bytes], bytes]) -> None:
        self.steps = deque(steps)
        self.written = bytearray()
        self._matched = 0
        self.out: deque[bytes] = deque()
        self.now = 100.0
        self.closed = False

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def write(self, data: bytes) -> None:
        if self.closed:
            raise PipeClosed("the line is down")
        self.written += data
        while self.steps:
            want, reply = self.steps[0]
            seen = bytes(self.written[self._matched :])
            if isinstance(want, re.Pattern):
                m = want.search(seen)
                if m is None:
                    return
                end = m.end()
            else:
                at = seen.find(want)
                if at < 0:
                    return
                end = at + len(want)
            self._matched += end
            self.steps.popleft()
            self.out.extend(bytes([b]) for b in reply)

    def read(self, timeout: float) -> bytes | None:
        if self.out:
            return self.out.popleft()
        self.now += timeout
        return None


def _driver(modem: ScriptedModem, online: bool = False) -> Class1Driver:
    return Class1Driver(modem, online=online, clock=modem.clock, sleep=modem.sleep)


def test_escape_and_end_search() -> None:
    assert escape(b"\x01\x10\x02") == b"\x01\x10\x10\x02"
    assert unescape(b"\x01\x10\x10\x02\x10\x11") == b"\x01\x10\x02"
    assert find_end(b"ab\x10\x10\x03\x10\x03zz") == (5, 5)  # DLE DLE ETX is data
    assert find_end(b"ab\x10") == (-1, 2)  # a DLE at the end waits for the next read
    assert gap_command(75) == "AT+FTS=8" and gap_command(200) == "AT+FTS=20"


def test_receive_frame_checks_the_fcs_and_unescapes() -> None:
    frame = Frame.make(Fcf.TSI, b"\x10 1 555 0100\x10\x10".ljust(20, b" "), final=False)
    wire = escape(with_fcs(frame.to_bytes())) + DLE_ETX
    modem = ScriptedModem((b"AT+FRH=3\r", b"\r\nCONNECT\r\n" + wire + b"\r\nOK\r\n"))
    got = _driver(modem).perform(ReceiveFrame(deadline=modem.now + 3))
    assert got == FrameReceived(data=frame.to_bytes(), fcs_ok=True)


def test_a_frame_the_modem_calls_bad_is_not_trusted() -> None:
    frame = Frame.make(Fcf.DCS, bytes(4))
    wire = escape(with_fcs(frame.to_bytes())) + DLE_ETX
    modem = ScriptedModem((b"AT+FRH=3\r", b"\r\nCONNECT\r\n" + wire + b"\r\nERROR\r\n"))
    got = _driver(modem).perform(ReceiveFrame(deadline=modem.now + 3))
    assert isinstance(got, FrameReceived) and got.fcs_ok is False


def test_after_atd_the_first_frames_follow_connect() -> None:
    csi = Frame.make(Fcf.CSI, b" " * 20, final=False)
    wire = escape(with_fcs(csi.to_bytes())) + DLE_ETX + b"\r\nOK\r\n"
    modem = ScriptedModem()
    modem.out.extend(bytes([b]) for b in wire)
    driver = _driver(modem, online=True)
    assert driver.perform(ReceiveFrame(deadline=modem.now + 35)) == FrameReceived(
        data=csi.to_bytes(), fcs_ok=True
    )
    assert bytes(modem.written) == b""  # no AT+FRH=3 for the frames after CONNECT


def test_a_receive_that_hears_nothing_is_aborted_at_its_deadline() -> None:
    modem = ScriptedModem((b"AT+FRH=3\r", b""), (b"\x18", b"\r\nOK\r\n"))
    driver = _driver(modem)
    started = modem.now
    assert driver.perform(ReceiveFrame(deadline=started + 3.0)) == TimedOut()
    assert 3.0 <= modem.now - started < 4.5
    assert driver.stats.aborted_receives == 1


def test_fcerror_is_no_carrier() -> None:
    modem = ScriptedModem((b"AT+FRM=146\r", b"\r\n+FCERROR\r\n"))
    got = _driver(modem).perform(ReceivePage(modulation=V17, deadline=modem.now + 6))
    assert isinstance(got, NoCarrier) and "FCERROR" in got.reason


def test_training_uses_long_training_and_the_page_short_training() -> None:
    tcf = bytes(200) + b"\x10"
    modem = ScriptedModem(
        (b"AT+FRM=145\r", b"\r\nCONNECT\r\n" + escape(tcf) + DLE_ETX + b"\r\nNO CARRIER\r\n"),
        (b"AT+FRM=146\r", b"\r\nCONNECT\r\n" + b"\x00\x10\x10\x80" + DLE_ETX + b"\r\nOK\r\n"),
    )
    driver = _driver(modem)
    assert driver.perform(ReceiveTraining(modulation=V17, deadline=modem.now + 6)) == (
        TrainingReceived(data=tcf)
    )
    assert driver.perform(ReceivePage(modulation=V17, deadline=modem.now + 6)) == PageReceived(
        data=b"\x00\x10\x80"
    )


def test_page_data_that_stops_is_handed_on_and_the_call_is_then_gone() -> None:
    modem = ScriptedModem((b"AT+FRM=146\r", b"\r\nCONNECT\r\n\x00\x10\x10\x80\x01\x10"))
    driver = _driver(modem)
    got = driver.perform(ReceivePage(modulation=V17, deadline=modem.now + 6))
    assert got == PageReceived(data=b"\x00\x10\x80\x01")  # a trailing lone DLE is dropped
    after = driver.perform(ReceiveFrame(deadline=modem.now + 6))
    assert isinstance(after, Disconnected) and "stopped sending page data" in after.reason


def test_send_page_escapes_and_waits_for_ok() -> None:
    data = bytes(range(256)) * 20
    modem = ScriptedModem((b"AT+FTM=146\r", b"\r\nCONNECT\r\n"), (DLE_ETX, b"\r\nOK\r\n"))
    driver = _driver(modem)
    assert driver.perform(SendPage(modulation=V17, data=data, page=0)) == Done()
    sent = bytes(modem.written)
    body = sent[sent.index(b"\r") + 1 : -2]
    assert unescape(body) == data and sent.endswith(DLE_ETX)
    # paced at the line rate after the training: about len/1800 s of (fake) time
    assert driver.stats.page_seconds[0] >= len(escape(data)) / 1800 - 0.5


def test_training_check_is_zeros_at_the_long_code() -> None:
    modem = ScriptedModem((b"AT+FTM=145\r", b"\r\nCONNECT\r\n"), (DLE_ETX, b"\r\nOK\r\n"))
    assert _driver(modem).perform(SendTraining(modulation=V17, ms=1500)) == Done()
    assert bytes(modem.written).count(b"\x00") == V17.bytes_for(1500)


def test_frames_gap_and_connect_between_frames() -> None:
    tsi = Frame.make(Fcf.TSI, b" " * 20, final=False, x_bit=True)
    dcs = Frame.make(Fcf.DCS, bytes(4), x_bit=True)
    modem = ScriptedModem(
        (b"AT+FTS=8\r", b"\r\nOK\r\n"),
        (b"AT+FTH=3\r", b"\r\nCONNECT\r\n"),
        (escape(tsi.to_bytes()) + DLE_ETX, b"\r\nCONNECT\r\n"),
        (escape(dcs.to_bytes()) + DLE_ETX, b"\r\nOK\r\n"),
    )
    driver = _driver(modem)
    assert driver.perform(Silence(ms=75)) == Done()
    assert driver.perform(SendFrames(frames=(tsi, dcs))) == Done()
    assert not modem.steps


def test_after_ata_the_first_frames_go_out_on_the_connect() -> None:
    dis = Frame.make(Fcf.DIS, bytes(4))
    modem = ScriptedModem((escape(dis.to_bytes()) + DLE_ETX, b"\r\nOK\r\n"))
    assert _driver(modem, online=True).perform(SendFrames(frames=(dis,))) == Done()
    assert not bytes(modem.written).startswith(b"AT")


def test_a_line_that_goes_away_disconnects() -> None:
    modem = ScriptedModem()
    modem.closed = True
    driver = _driver(modem)
    got = driver.perform(Silence(ms=75))
    assert isinstance(got, Disconnected)
    assert isinstance(driver.perform(ReceiveFrame(deadline=modem.now + 1)), Disconnected)


def test_no_carrier_in_command_mode_ends_the_call() -> None:
    modem = ScriptedModem((b"AT+FTS=8\r", b"\r\nNO CARRIER\r\n"))
    got = _driver(modem).perform(Silence(ms=75))
    assert isinstance(got, Disconnected) and "NO CARRIER" in got.reason
