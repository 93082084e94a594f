"""Class 2 and Class 2.0 fax sessions (the modem runs T.30; we read its reports and page data).

Both spellings of the reports are read (+FCO/+FCON, +FTI/+FTSI, +FCS/+FDCS, +FPS/+FPTS,
+FET, +FHS/+FHNG); page data is un-escaped (DLE DLE, 2.0's DLE SUB, DLE ETX ends a page).
Pure: no I/O, no clock; the line driver sends the commands and feeds lines, results, data.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from firmware_app.protocol.at import split_params, unquote
from firmware_app.protocol.errors import LocalProtocolError
from firmware_app.protocol.t30 import PageSource

__all__ = [
    "DC2",
    "HANGUP_CODES",
    "AwaitResult",
    "Class2Page",
    "Class2Receiver",
    "Class2Sender",
    "FaxParams",
    "Finished",
    "PageDataDecoder",
    "ReadPage",
    "SendCommand",
    "WritePage",
    "escape_page",
    "hangup_reason",
    "parse_hangup",
    "setup_commands",
]

DLE: Final = 0x10
ETX: Final = 0x03
SUB: Final = 0x1A
DC2: Final = b"\x12"  # "ready to receive" after CONNECT (T.32 8.3.4; Class 2 too)
Version = Literal["2", "2.0"]

# Hangup status codes (mgetty doc/fhng-codes, after EIA-592 / T.32 Table 24). Class 2.0
# reports them in hex: A0-A3 are 100-103; below 100 the digits read the same.
HANGUP_CODES: Final[dict[int, str]] = {
    0: "normal end of call",
    1: "ring detected without a successful handshake",
    2: "call aborted from +FK or CAN",
    3: "no loop current",
    4: "ringback detected, no answer (timeout)",
    5: "ringback detected, no answer without CED",
    10: "unspecified phase A error",
    11: "no answer (T.30 T1 timeout)",
    20: "unspecified transmit phase B error",
    21: "the remote cannot receive or send",
    22: "COMREC error in transmit phase B",
    23: "COMREC invalid command received",
    24: "RSPREC error",
    25: "DCS sent three times without response",
    26: "DIS/DTC received three times; DCS not recognised",
    27: "failure to train at 2400 bit/s or +FMS value",
    28: "RSPREC invalid response received",
    40: "unspecified transmit phase C error",
    43: "send fax data underflow",
    50: "unspecified transmit phase D error",
    51: "RSPREC error",
    52: "no response to MPS repeated three times",
    53: "invalid response to MPS",
    54: "no response to EOP repeated three times",
    55: "invalid response to EOP",
    56: "no response to EOM repeated three times",
    57: "invalid response to EOM",
    58: "unable to continue after PIN or PIP",
    70: "unspecified receive phase B error",
    71: "RSPREC error",
    72: "COMREC error",
    73: "T.30 T2 timeout, expected page not received",
    74: "T.30 T1 timeout after EOM received",
    90: "unspecified receive phase C error",
    91: "missing EOL after 5 seconds",
    92: "bad CRC or frame (ECM mode)",
    93: "DTE to DCE data overflow",
    94: "DCE to DTE data overflow",
    100: "unspecified receive phase D error",
    101: "RSPREC invalid response received",
    102: "COMREC invalid response received",
    103: "unable to continue after PIN or PIP",
}
# +FCS/+FDCS br: bit rate (T.32 Table 21).
BIT_RATES: Final = {0: 2400, 1: 4800, 2: 7200, 3: 9600, 4: 12000, 5: 14400}


def parse_hangup(code: str, version: Version) -> int | None:
    """The hangup status from `+FHS:`/`+FHNG:` text; 2.0 `A0`-`A3` (hex) are 100-103."""
    code = code.strip()
    if re.fullmatch(r"[0-9]{1,3}", code):
        return int(code)
    if version == "2.0" and re.fullmatch(r"[0-9A-Fa-f]{1,2}", code):
        value = int(code, 16)
        return 100 + value - 0xA0 if value >= 0xA0 else value
    return None


def hangup_reason(code: int | None) -> str:
    if code is None:
        return "the modem gave no hangup status"
    return HANGUP_CODES.get(code, f"hangup status {code}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FaxParams:
    """Session parameters from `+FCS:`/`+FDCS:` (vr,br,wd,ln,df,ec,bf,st)."""

    fine: bool
    bit_rate: int
    width_code: int
    length_code: int
    mr: bool
    coding: int
    ecm: bool

    @classmethod
    def parse(cls, args: str) -> FaxParams | None:
        try:
            v = [int(x) for x in split_params(args)[:6]]
        except ValueError:
            return None
        if len(v) < 5:
            return None
        v += [0] * (6 - len(v))
        return cls(
            fine=v[0] >= 1,
            bit_rate=BIT_RATES.get(v[1], 0),
            width_code=v[2],
            length_code=v[3],
            mr=v[4] == 1,
            coding=v[4],
            ecm=v[5] != 0,
        )


# --- page data --------------------------------------------------------------------------------


@dataclass(slots=True)
class PageDataDecoder:
    """Un-escapes received page data; a DLE at the end of one read waits for the next.
    `feed` returns the page bytes so far decoded; after DLE ETX `ended` is True and
    `leftover` holds what followed (the modem's +FPS/+FET/OK lines)."""

    version: Version = "2.0"
    ended: bool = False
    leftover: bytes = b""
    unknown: int = 0
    _dle: bool = False

    def feed(self, data: bytes) -> bytes:
        if self.ended:
            self.leftover += data
            return b""
        out = bytearray()
        i = 0
        n = len(data)
        while i < n:
            if self._dle:
                self._dle = False
                byte = data[i]
                i += 1
                if byte == DLE:
                    out.append(DLE)
                elif byte == SUB and self.version == "2.0":
                    out += b"\x10\x10"  # T.32 8.3.3: DLE SUB stands for two DLEs
                elif byte == ETX:
                    self.ended = True
                    self.leftover = bytes(data[i:])
                    return bytes(out)
                else:
                    self.unknown += 1  # other DLE pairs carry nothing for us
                continue
            j = data.find(DLE, i)
            if j < 0:
                out += data[i:]
                break
            out += data[i:j]
            self._dle = True
            i = j + 1
        return bytes(out)


def escape_page(data: bytes, terminator: bytes) -> bytes:
    """Page data to send: DLE doubled, then the terminator (e.g. DLE ETX)."""
    return data.replace(b"\x10", b"\x10\x10") + terminator


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SendCommand:
    text: str
    timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadPage:
    """Data mode: write `prelude` (DC2), feed every read to `data()` until it says done."""

    prelude: bytes = DC2


@dataclass(frozen=True, slots=True, kw_only=True)
class AwaitResult:
    """The page ended: put the command back in flight (`enter_command_mode(leftover, ...)`)
    and feed its lines and result as usual."""

    command: str
    timeout: float
    leftover: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class WritePage:
    """After CONNECT (Class 2: after XON too), write `data` (already escaped and
    terminated) with flow control, then feed the result (OK or ERROR)."""

    data: bytes
    wait_xon: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    ok: bool
    reason: str
    hangup_code: int | None


Step = SendCommand | ReadPage | AwaitResult | WritePage | Finished


@dataclass(frozen=True, slots=True, kw_only=True)
class Class2Page:
    data: bytes
    params: FaxParams | None
    status: int | None  # +FPS: 1 MCF (good), 2 RTN, 3 RTP, 4 PIN, 5 PIP
    post_page: int | None  # +FET: 0 MPS, 1 EOM, 2 EOP
    confirmed: bool = True  # False: the call ended before the modem closed the page


def setup_commands(version: Version, local_id: str, *, fine: bool = True) -> list[str]:
    """Commands to put a modem in fax mode (REFERENCE.md 1): class, receive on, reporting,
    our id, capabilities (fine or not, up to 14400, 1728 wide, any length, MH/MR, no ECM),
    and in 2.0 the bit order of page data (+FBO=0: direct, as we code pages; a modem left
    in another order would send them garbled; received pages are read in either order)."""
    ident = local_id.replace('"', "")[:20]
    vr = 1 if fine else 0
    if version == "2.0":
        return [
            "AT+FCLASS=2.0",
            "AT+FCR=1",
            "AT+FNR=1,1,1,0",
            f'AT+FLI="{ident}"',
            f"AT+FCC={vr},5,0,2,1,0,0,0",
            "AT+FBO=0",  # direct bit order (the first bit in the LSB), as pages are coded
        ]
    return ["AT+FCLASS=2", "AT+FCR=1", f'AT+FLID="{ident}"', f"AT+FDCC={vr},5,0,2,1,0,0,0"]


_LINE: Final = re.compile(r"^\+(F[A-Z]+)\s*:?\s*(.*)$")
_NAMES: Final = {
    "FCO": "connect",
    "FCON": "connect",
    "FTI": "remote_id",
    "FTSI": "remote_id",
    "FCI": "remote_id",
    "FCSI": "remote_id",
    "FCS": "params",
    "FDCS": "params",
    "FPS": "page_status",
    "FPTS": "page_status",
    "FET": "post_page",
    "FHS": "hangup",
    "FHNG": "hangup",
    "FIS": "remote_caps",
    "FDIS": "remote_caps",
}


@dataclass(slots=True)
class _Session:
    version: Version = "2.0"
    state: str = "idle"
    connected: bool = False
    remote_id: str = ""
    params: FaxParams | None = None
    hangup_code: int | None = None
    page_status: int | None = None
    post_page: int | None = None
    pages: list[Class2Page] = field(default_factory=list)
    unknown_lines: list[str] = field(default_factory=list)

    def line(self, text: str) -> None:
        """An intermediate response line or URC from the AT engine."""
        m = _LINE.match(text.strip())
        kind = _NAMES.get(m.group(1)) if m else None
        if m is None or kind is None:
            self.unknown_lines.append(text)
            return
        args = m.group(2).strip()
        first = split_params(args)[0] if args else ""
        if kind == "connect":
            self.connected = True
        elif kind == "remote_id":
            self.remote_id = unquote(args).strip()
        elif kind == "params":
            self.params = FaxParams.parse(args) or self.params
        elif kind == "page_status":
            self.page_status = int(first) if first.isdigit() else None
        elif kind == "post_page":
            self.post_page = int(first) if first.isdigit() else None
        elif kind == "hangup":
            self.hangup_code = parse_hangup(first, self.version)

    def _finish(self, ok: bool, reason: str) -> Finished:
        self.state = "done"
        return Finished(ok=ok, reason=reason, hangup_code=self.hangup_code)

    def _check_state(self, *states: str) -> None:
        if self.state not in states:
            raise LocalProtocolError(f"fax session is {self.state}, not {' or '.join(states)}")


@dataclass(slots=True)
class Class2Receiver(_Session):
    """Answer and receive: ATA, AT+FDR per page, DC2, page data, +FPS/+FET, AT+FDR again.

    The modem answers each post-page command when the next AT+FDR comes, as its page status
    says (T.32 +FPS, Class 2 +FPTS: 1 MCF, 2 RTN; it sets the value after each page, its
    own copy quality verdict, and the host may change it first). `page_check(data, params)`
    judges a page's copy quality as the Class 1 receiver does: False sets the status to 2
    (`AT+FPS=2` / `AT+FPTS=2`) before the next AT+FDR, so the modem answers RTN and the
    sender sends the page again. That is asked once per page; the copy that comes next is
    kept whatever it is. A page the modem itself answers RTN (+FPS:2) is not kept either
    while its next copy may come. A refused copy the sender never replaces is kept,
    unconfirmed, when the call ends.
    """

    page_check: Callable[[bytes, FaxParams | None], bool] | None = None
    _decoder: PageDataDecoder | None = None
    _data: bytearray = field(default_factory=bytearray)
    _rejected: Class2Page | None = None  # a copy answered RTN, until the page comes again
    _asked: bool = False  # RTN already asked for the page now coming

    def answer(self) -> Step:
        self._check_state("idle")
        self.state = "answering"
        return SendCommand(text="ATA", timeout=60.0)

    def result(self, result: str) -> Step:
        """The final result of the command in flight ("OK", "CONNECT", "ERROR", "NO CARRIER",
        "TIMEOUT", ...)."""
        upper = result.strip().upper()
        if self.state == "answering":
            if upper == "OK" and self.connected:
                return self._fdr()
            return self._finish(False, f"no fax handshake after answering ({result})")
        if self.state == "fdr":
            if upper.startswith("CONNECT"):
                self.state = "page"
                self._decoder = PageDataDecoder(version=self.version)
                self._data = bytearray()
                self.page_status = self.post_page = None
                return ReadPage()
            ok = upper == "OK" and self.hangup_code == 0 and bool(self.pages)
            reason = hangup_reason(self.hangup_code)
            if self._keep_rejected():
                ok = False
                reason += "; a damaged page the sender did not send again is kept"
            return self._finish(ok, reason)
        if self.state == "post_page":
            if upper != "OK":
                reason = f"page {len(self.pages) + 1} ended with {result}"
                if self.keep_unfinished():
                    reason += f" ({hangup_reason(self.hangup_code)}); the page is kept"
                return self._finish(False, reason)
            page = Class2Page(
                data=bytes(self._data),
                params=self.params,
                status=self.page_status,
                post_page=self.post_page,
            )
            self._data = bytearray()
            if self.page_status in (2, 4):  # the modem's own verdict: RTN (PIN), once more
                self._rejected, self._asked = page, True
                return self._fdr()
            if (
                self.page_check is not None
                and not self._asked
                and not self.page_check(page.data, page.params)
            ):
                self._rejected, self._asked = page, True
                self.state = "set_status"
                name = "FPS" if self.version == "2.0" else "FPTS"
                return SendCommand(text=f"AT+{name}=2", timeout=5.0)
            self._take(page)
            return self._fdr()
        if self.state == "set_status":
            if upper != "OK" and self._rejected is not None:  # not taken: the modem says MCF
                self._take(self._rejected)
            return self._fdr()
        raise LocalProtocolError(f"no command in flight in state {self.state}")

    def _take(self, page: Class2Page) -> None:
        self.pages.append(page)
        self._rejected, self._asked = None, False

    def _keep_rejected(self) -> bool:
        """The call is over with a refused copy that never came again: keep it."""
        if self._rejected is None:
            return False
        self.pages.append(dataclasses.replace(self._rejected, confirmed=False))
        self._rejected = None
        return True

    def _fdr(self) -> Step:
        self.state = "fdr"
        return SendCommand(text="AT+FDR", timeout=90.0)

    def keep_unfinished(self) -> bool:
        """The call ended in the middle of a page or before the modem confirmed it: keep
        the page data that came (status None: unconfirmed). True when there was some."""
        kept = self._keep_rejected()
        if self.state not in ("page", "post_page") or not self._data:
            return kept
        self.pages.append(
            Class2Page(
                data=bytes(self._data),
                params=self.params,
                status=None,
                post_page=None,
                confirmed=False,
            )
        )
        self._data = bytearray()
        self.state = "done"
        return True

    def data(self, chunk: bytes) -> Step | None:
        """Page data in data mode; returns `AwaitResult` once the page has ended."""
        self._check_state("page")
        assert self._decoder is not None
        self._data += self._decoder.feed(chunk)
        if not self._decoder.ended:
            return None
        self.state = "post_page"
        return AwaitResult(command="AT+FDR", timeout=30.0, leftover=self._decoder.leftover)


@dataclass(slots=True)
class Class2Sender(_Session):
    """Dial and send: ATD, AT+FDT per page, page data with its end mark, page status.

    Pages are `documents` (T.4 already coded, in the bit order set with +FBO) or `sources`,
    coded when the modem answers AT+FDT with CONNECT, in the resolution and coding its
    `+FCS` reports (T.32: the DTE sends what was negotiated; MR when df is 1). A page the
    receiver answers RTN (+FPS:2) is sent again after the next AT+FDT (the modem trains
    again first), up to three copies."""

    number: str = ""
    documents: tuple[bytes, ...] = ()
    sources: Sequence[PageSource] = ()
    sent: int = 0
    _tries: int = 0  # copies of the current page the receiver answered RTN

    @property
    def page_count(self) -> int:
        return len(self.documents) or len(self.sources)

    def _page_data(self) -> bytes:
        if self.documents:
            return self.documents[self.sent]
        params = self.params
        fine = params.fine if params is not None else True
        mr = params is not None and params.mr
        return self.sources[self.sent].encode(fine=fine, mr=mr, min_scan_bits=0)

    def dial(self) -> Step:
        self._check_state("idle")
        if not self.page_count:
            raise LocalProtocolError("nothing to send: a fax needs at least one page")
        if not re.fullmatch(r"[0-9*#+,WwPpTt]+", self.number):
            raise LocalProtocolError(f"cannot dial {self.number!r}")
        self.state = "dialling"
        return SendCommand(text=f"ATD{self.number}", timeout=120.0)

    def _terminator(self, last: bool) -> bytes:
        if self.version == "2.0":
            return b"\x10." if last else b"\x10,"  # EOP / MPS (REFERENCE.md 1)
        return b"\x10\x03"

    def result(self, result: str) -> Step:
        upper = result.strip().upper()
        last = self.sent + 1 >= self.page_count
        if self.state == "dialling":
            if upper == "OK":
                self.state = "fdt"
                return SendCommand(text="AT+FDT", timeout=60.0)
            return self._finish(False, f"the call did not connect ({result})")
        if self.state == "fdt":
            if upper.startswith("CONNECT"):
                self.state = "writing"
                data = escape_page(self._page_data(), self._terminator(last))
                return WritePage(data=data, wait_xon=self.version == "2")
            return self._finish(False, f"the remote did not take page {self.sent + 1} ({result})")
        if self.state == "writing":
            if upper != "OK":
                return self._finish(False, f"page {self.sent + 1} refused ({result})")
            if self.version == "2":
                self.state = "fet"
                return SendCommand(text=f"AT+FET={2 if last else 0}", timeout=60.0)
            return self._page_done(last)
        if self.state == "fet":
            if upper != "OK":
                return self._finish(False, f"no page confirmation ({result})")
            return self._page_done(last)
        raise LocalProtocolError(f"no command in flight in state {self.state}")

    def _page_done(self, last: bool) -> Step:
        if self.page_status in (2, 4):
            # RTN (PIN): the receiver wants the page again; the modem trains again at the
            # next AT+FDT (T.32). Three copies in all, as the Class 1 sender.
            self._tries += 1
            if self._tries >= 3:
                return self._finish(False, f"page {self.sent + 1} refused 3 times (RTN)")
            self.state = "fdt"
            self.page_status = None
            return SendCommand(text="AT+FDT", timeout=60.0)
        if self.page_status not in (None, 1, 3, 5):
            return self._finish(False, f"page {self.sent + 1} was not confirmed (+FPS)")
        self._tries = 0
        self.sent += 1
        if not last:
            self.state = "fdt"
            self.page_status = None
            return SendCommand(text="AT+FDT", timeout=60.0)
        ok = self.hangup_code in (None, 0)
        return self._finish(
            ok, f"sent {self.sent} page(s)" if ok else hangup_reason(self.hangup_code)
        )
