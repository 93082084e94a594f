"""Class 2 / 2.0 sessions: scripted receive and send exchanges in both spellings, page data
un-escaping fed whole and one byte at a time, hangup codes, fuzzing of page data."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_app.protocol.errors import LocalProtocolError
from firmware_app.protocol.fax_class2 import (
    AwaitResult,
    Class2Receiver,
    Class2Sender,
    Finished,
    PageDataDecoder,
    ReadPage,
    SendCommand,
    WritePage,
    escape_page,
    hangup_reason,
    parse_hangup,
    setup_commands,
)


def feed(dec: PageDataDecoder, data: bytes, one_by_one: bool) -> bytes:
    if not one_by_one:
        return dec.feed(data)
    return b"".join(dec.feed(data[i : i + 1]) for i in range(len(data)))


@pytest.mark.parametrize("one_by_one", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(
    ("version", "wire", "page", "leftover"),
    [
        ("2.0", b"ab\x10\x10cd\x10\x03\r\n+FPS:1", b"ab\x10cd", b"\r\n+FPS:1"),
        ("2.0", b"\x10\x1a\x00\x10\x03", b"\x10\x10\x00", b""),
        ("2", b"\x10\x1a\x00\x10\x03", b"\x00", b""),
        ("2", b"x\x10\x10\x10\x10y\x10\x03OK", b"x\x10\x10y", b"OK"),
        ("2.0", b"\x10", b"", b""),
    ],
)
def test_page_data_unescaping(
    version: str, wire: bytes, page: bytes, leftover: bytes, one_by_one: bool
) -> None:
    dec = PageDataDecoder(version=version)  # type: ignore[arg-type]
    assert feed(dec, wire, one_by_one) == page
    assert dec.leftover == leftover
    assert dec.ended is wire.endswith((b"\x10\x03", b"OK", b"+FPS:1"))


@given(st.binary(max_size=300), st.sampled_from(["2", "2.0"]), st.integers(1, 17))
def test_page_data_any_bytes(data: bytes, version: str, step: int) -> None:
    dec = PageDataDecoder(version=version)  # type: ignore[arg-type]
    out = b"".join(dec.feed(data[i : i + step]) for i in range(0, len(data), step))
    assert len(out) <= 2 * len(data)
    if not dec.ended:
        # Round trip: what we escape comes back unchanged.
        again = PageDataDecoder(version=version)  # type: ignore[arg-type]
        assert again.feed(escape_page(data, b"\x10\x03")) == data and again.ended


@pytest.mark.parametrize(
    ("text", "version", "code"),
    [
        ("0", "2", 0),
        ("00", "2.0", 0),
        ("70", "2.0", 70),
        ("A0", "2.0", 100),
        ("a3", "2.0", 103),
        ("103", "2", 103),
        ("zz", "2.0", None),
        ("A0", "2", None),
    ],
)
def test_hangup_codes(text: str, version: str, code: int | None) -> None:
    assert parse_hangup(text, version) == code  # type: ignore[arg-type]


def test_hangup_words() -> None:
    assert hangup_reason(0) == "normal end of call"
    assert "T2" in hangup_reason(73)
    assert hangup_reason(None) == "the modem gave no hangup status"


def test_setup_commands() -> None:
    assert setup_commands("2.0", 'Acme "1"')[:4] == [
        "AT+FCLASS=2.0",
        "AT+FCR=1",
        "AT+FNR=1,1,1,0",
        'AT+FLI="Acme 1"',
    ]
    assert setup_commands("2.0", "1")[-1] == "AT+FBO=0"  # direct bit order, as we code
    assert setup_commands("2", "1")[0] == "AT+FCLASS=2"


SPELLINGS = {
    "2.0": {
        "FCO": "+FCO",
        "FTI": '+FTI:"+49 30 123"',
        "FCS": "+FCS:1,5,0,2,0,0,0,0",
        "FPS": "+FPS:1,2287,0,0,0",
        "FHS": "+FHS:00",
        "FHS_BAD": "+FHS:A0",
    },
    "2": {
        "FCO": "+FCON",
        "FTI": '+FTSI:"+49 30 123"',
        "FCS": "+FDCS:1,5,0,2,0,0,0,0",
        "FPS": "+FPTS:1,2287,0,0,0",
        "FHS": "+FHNG:0",
        "FHS_BAD": "+FHNG:100",
    },
}


@pytest.mark.parametrize("version", ["2.0", "2"])
@pytest.mark.parametrize("one_by_one", [False, True], ids=["whole", "bytewise"])
def test_receive_session(version: str, one_by_one: bool) -> None:
    s = SPELLINGS[version]
    rx = Class2Receiver(version=version)  # type: ignore[arg-type]
    assert rx.answer() == SendCommand(text="ATA", timeout=60.0)
    for line in (s["FCO"], s["FTI"], s["FCS"]):
        rx.line(line)
    assert rx.result("OK") == SendCommand(text="AT+FDR", timeout=90.0)
    assert rx.remote_id == "+49 30 123" and rx.params is not None
    assert rx.params.fine and rx.params.bit_rate == 14400 and not rx.params.mr
    pages = [b"\x00\x10\x10\x01", b"\x80\x80"]
    for n, wire in enumerate(
        [b"\x00\x10\x10\x10\x10\x01" if version == "2" else b"\x00\x10\x1a\x01", b"\x80\x80"]
    ):
        assert rx.result("CONNECT") == ReadPage()
        step = None
        data = wire + b"\x10\x03\r\n"
        for i in range(len(data)) if one_by_one else [None]:
            chunk = data if i is None else data[i : i + 1]
            step = rx.data(chunk)
            if step is not None:
                break  # what follows DLE ETX is the AT engine's again
        assert isinstance(step, AwaitResult) and step.command == "AT+FDR"
        rx.line(s["FPS"])
        rx.line(f"+FET:{2 if n else 0}")
        assert rx.result("OK") == SendCommand(text="AT+FDR", timeout=90.0)
    rx.line(s["FHS"])
    end = rx.result("OK")
    assert end == Finished(ok=True, reason="normal end of call", hangup_code=0)
    assert [p.data for p in rx.pages] == pages
    assert [p.post_page for p in rx.pages] == [0, 2] and rx.pages[0].status == 1
    with pytest.raises(LocalProtocolError):
        rx.data(b"x")


def test_receive_session_remote_fails() -> None:
    rx = Class2Receiver(version="2.0")
    rx.answer()
    rx.line("+FCO")
    rx.result("OK")
    rx.line("+FHS:A0")
    end = rx.result("OK")
    assert isinstance(end, Finished) and not end.ok and end.hangup_code == 100
    assert end.reason == "unspecified receive phase D error"
    nobody = Class2Receiver(version="2.0")
    nobody.answer()
    assert isinstance(nobody.result("NO CARRIER"), Finished)


def _receiving(version: str = "2.0") -> Class2Receiver:
    rx = Class2Receiver(version=version)  # type: ignore[arg-type]
    rx.answer()
    rx.line("+FCO")
    rx.line("+FCS:1,5,0,2,0,0,0,0")
    rx.result("OK")
    assert rx.result("CONNECT") == ReadPage()
    return rx


def test_a_page_ended_by_a_hang_up_is_kept_unconfirmed() -> None:
    rx = _receiving()
    assert isinstance(rx.data(b"\x00\x01\x80\x10\x03"), AwaitResult)
    rx.line("+FHS:91")
    end = rx.result("ERROR")
    assert isinstance(end, Finished) and not end.ok and end.hangup_code == 91
    assert "the page is kept" in end.reason
    assert [(p.data, p.confirmed) for p in rx.pages] == [(b"\x00\x01\x80", False)]


def test_a_call_gone_in_the_middle_of_a_page_keeps_what_came() -> None:
    rx = _receiving()
    assert rx.data(b"\x00\x01\x80\x40") is None  # no DLE ETX: the call went
    assert rx.keep_unfinished()
    assert [(p.data, p.confirmed) for p in rx.pages] == [(b"\x00\x01\x80\x40", False)]
    assert not rx.keep_unfinished()  # once
    nothing = _receiving()
    assert not nothing.keep_unfinished() and nothing.pages == []


def _page_in(rx: Class2Receiver, data: bytes, status: str, fet: int, one_by_one: bool) -> Any:
    """One page's data through DLE ETX, then its +FPS/+FET and OK; the engine's next step."""
    wire = data + b"\x10\x03"
    step = None
    for chunk in [wire[i : i + 1] for i in range(len(wire))] if one_by_one else [wire]:
        step = rx.data(chunk)
    assert isinstance(step, AwaitResult), step
    rx.line(status)
    rx.line(f"+FET:{fet}")
    return rx.result("OK")


@pytest.mark.parametrize("one_by_one", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(("version", "fps"), [("2.0", "+FPS"), ("2", "+FPTS")])
def test_a_damaged_page_is_answered_rtn_through_the_modem_once(
    version: str, fps: str, one_by_one: bool
) -> None:
    """The page check says no: AT+FPS=2 (2.0) / AT+FPTS=2 (2) before the next AT+FDR, so
    the modem answers RTN; the copy that comes next is kept whatever it is."""
    judged: list[bytes] = []

    def check(data: bytes, params: Any) -> bool:
        judged.append(data)
        return False  # every page looks damaged

    rx = _receiving(version)
    rx.page_check = check
    fdr = SendCommand(text="AT+FDR", timeout=90.0)
    assert _page_in(rx, b"bad", f"{fps}:1", 0, one_by_one) == SendCommand(
        text=f"AT{fps}=2", timeout=5.0
    )
    assert rx.pages == []  # not kept while its next copy may come
    assert rx.result("OK") == fdr
    assert rx.result("CONNECT") == ReadPage()
    assert _page_in(rx, b"again", f"{fps}:1", 0, one_by_one) == fdr  # asked once: kept
    assert rx.result("CONNECT") == ReadPage()
    assert _page_in(rx, b"two", f"{fps}:1", 2, one_by_one) == SendCommand(
        text=f"AT{fps}=2", timeout=5.0
    )
    assert rx.result("OK") == fdr
    rx.line("+FHS:00" if version == "2.0" else "+FHNG:0")  # the sender gave up: no copy
    end = rx.result("OK")
    assert isinstance(end, Finished) and not end.ok
    assert "a damaged page the sender did not send again is kept" in end.reason
    assert [(p.data, p.confirmed) for p in rx.pages] == [(b"again", True), (b"two", False)]
    assert judged == [b"bad", b"two"]


def test_a_page_the_modem_answers_rtn_itself_is_replaced_by_its_next_copy() -> None:
    rx = _receiving()
    rx.page_check = lambda data, params: True
    fdr = SendCommand(text="AT+FDR", timeout=90.0)
    assert _page_in(rx, b"bad", "+FPS:2,0,0,0,0", 2, False) == fdr  # the modem's own RTN
    assert rx.result("CONNECT") == ReadPage()
    assert _page_in(rx, b"good", "+FPS:1,0,0,0,0", 2, False) == fdr
    rx.line("+FHS:00")
    end = rx.result("OK")
    assert isinstance(end, Finished) and end.ok, end
    assert [(p.data, p.confirmed) for p in rx.pages] == [(b"good", True)]


def test_a_modem_that_refuses_the_page_status_keeps_the_page() -> None:
    rx = _receiving()
    rx.page_check = lambda data, params: False
    assert _page_in(rx, b"bad", "+FPS:1", 2, False) == SendCommand(text="AT+FPS=2", timeout=5.0)
    assert rx.result("ERROR") == SendCommand(text="AT+FDR", timeout=90.0)  # it answers MCF
    assert [(p.data, p.confirmed) for p in rx.pages] == [(b"bad", True)]


@pytest.mark.parametrize("version", ["2.0", "2"])
def test_send_session(version: str) -> None:
    s = SPELLINGS[version]
    tx = Class2Sender(version=version, number="5550100", documents=(b"\x01\x10", b"\x02"))  # type: ignore[arg-type]
    assert tx.dial() == SendCommand(text="ATD5550100", timeout=120.0)
    tx.line(s["FCO"])
    tx.line(s["FTI"].replace("TI", "CI").replace("TSI", "CSI"))
    assert tx.result("OK") == SendCommand(text="AT+FDT", timeout=60.0)
    assert tx.remote_id == "+49 30 123"
    for n in range(2):
        tx.line(s["FCS"])
        step = tx.result("CONNECT")
        assert isinstance(step, WritePage) and step.wait_xon is (version == "2")
        last = n == 1
        body = [b"\x01\x10\x10", b"\x02"][n]
        end = (b"\x10." if last else b"\x10,") if version == "2.0" else b"\x10\x03"
        assert step.data == body + end
        if version == "2":
            assert tx.result("OK") == SendCommand(text=f"AT+FET={2 if last else 0}", timeout=60.0)
        tx.line(s["FPS"])
        if last:
            tx.line(s["FHS"])
        step = tx.result("OK")
    assert step == Finished(ok=True, reason="sent 2 page(s)", hangup_code=0)


@pytest.mark.parametrize(("version", "fps"), [("2.0", "+FPS:2,0,0,0,0"), ("2", "+FPTS:2")])
def test_a_page_answered_rtn_is_sent_again_three_times_at_most(version: str, fps: str) -> None:
    tx = Class2Sender(version=version, number="5550100", documents=(b"\x01",))  # type: ignore[arg-type]
    tx.dial()
    tx.line("+FCO")
    fdt = SendCommand(text="AT+FDT", timeout=60.0)
    assert tx.result("OK") == fdt
    for copy in range(3):
        step = tx.result("CONNECT")
        assert isinstance(step, WritePage) and step.data.startswith(b"\x01")
        if version == "2":
            assert tx.result("OK") == SendCommand(text="AT+FET=2", timeout=60.0)
        tx.line(fps)  # the receiver answered RTN
        step = tx.result("OK")
        if copy < 2:
            assert step == fdt, step  # the same page again, after the modem retrains
            assert tx.sent == 0
    assert isinstance(step, Finished) and not step.ok
    assert step.reason == "page 1 refused 3 times (RTN)"


class Source:
    """A page that records how it was asked to be coded."""

    def __init__(self) -> None:
        self.asked: list[tuple[bool, bool, int]] = []

    def encode(self, *, fine: bool, mr: bool, min_scan_bits: int) -> bytes:
        self.asked.append((fine, mr, min_scan_bits))
        return b"MR" if mr else b"MH"


@pytest.mark.parametrize(
    ("fcs", "coded"),
    [("+FCS:1,5,0,2,1,0,0,0", (True, True, 0)), ("+FCS:0,3,0,2,0,0,0,0", (False, False, 0))],
    ids=["fine MR", "normal MH"],
)
def test_pages_are_coded_as_the_modem_negotiated(fcs: str, coded: tuple[bool, bool, int]) -> None:
    page = Source()
    tx = Class2Sender(version="2.0", number="1", sources=(page,))
    tx.dial()
    tx.line("+FCO")
    assert tx.result("OK") == SendCommand(text="AT+FDT", timeout=60.0)
    tx.line(fcs)  # the DCS the modem sent: T.32 says the DTE sends in that format
    step = tx.result("CONNECT")
    assert isinstance(step, WritePage) and page.asked == [coded]
    assert step.data == (b"MR" if coded[1] else b"MH") + b"\x10."


def test_send_refused_page_and_bad_number() -> None:
    tx = Class2Sender(version="2.0", number="1", documents=(b"x",))
    tx.dial()
    tx.result("OK")
    tx.result("CONNECT")
    end = tx.result("ERROR")
    assert isinstance(end, Finished) and not end.ok and "refused" in end.reason
    with pytest.raises(LocalProtocolError):
        Class2Sender(version="2.0", number="1; rm", documents=(b"x",)).dial()
    busy = Class2Sender(version="2.0", number="1", documents=(b"x",))
    busy.dial()
    assert isinstance(busy.result("BUSY"), Finished)
