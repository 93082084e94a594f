"""Class 1 (ITU-T T.31) driver: runs a T.30 engine's actions as AT+FTH/FRH/FTM/FRM/FTS
exchanges over a line in data mode, on the fax session thread.

It parses the modem's bytes with its own AT engine (results, HDLC frames, page data with DLE
escapes), keeps T.30's timing (AT+FTS=8 gaps, the engine's T1/T2/T4 deadlines, aborting a
receive that hears nothing) and paces page data to the modulation's rate.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..protocol.at import (
    NEED_DATA,
    Command,
    Data,
    ErrorResult,
    Mode,
    Response,
    Timeout,
)
from ..protocol.t30 import (
    Action,
    Disconnected,
    Done,
    FrameReceived,
    Hangup,
    NoCarrier,
    PageReceived,
    ReceiveFrame,
    ReceivePage,
    ReceiveTraining,
    SendFrames,
    SendPage,
    SendTraining,
    Silence,
    T30Receiver,
    T30Sender,
    TimedOut,
    TrainingReceived,
)
from ..protocol.t30 import Result as T30Result
from ..protocol.t30_frames import Modulation, frame_from_modem
from .pipe import CallGone as _Gone
from .pipe import Pipe, PipeClosed, PipeModem

log = logging.getLogger(__name__)

DLE, ETX, CAN = 0x10, 0x03, 0x18
DLE_ETX = b"\x10\x03"

# Training before the modem takes page data, seconds (V.17 long 1393 ms, V.29 253 ms,
# V.27ter 708/943 ms): the pacing clock starts after it.
_TRAINING_S = {"V.17": 1.4, "V.29": 0.26, "V.27ter": 0.95}
# Bytes written ahead of the line rate. SpanDSP's T.31 buffer is 4 KB; real modems have
# about 1 KB: stay below both, and well above one scheduling hiccup.
_LEAD_BYTES = 768
_CHUNK = 256
_ABORT_WAIT = 3.0  # seconds for the modem's OK after a receive was aborted


def escape(data: bytes) -> bytes:
    """DLE-escape data for the modem (T.31 4.4: DLE is sent as DLE DLE)."""
    return data.replace(b"\x10", b"\x10\x10")


def unescape(data: bytes) -> bytes:
    """DLE DLE -> DLE; other DLE pairs (flow or status codes) are dropped."""
    if b"\x10" not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        j = data.find(b"\x10", i)
        if j < 0:
            out += data[i:]
            break
        out += data[i:j]
        if j + 1 < n and data[j + 1] == DLE:
            out.append(DLE)
        i = j + 2
    return bytes(out)


def find_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """Look for DLE ETX from `start` (which is never inside a DLE pair).

    Returns (index of the DLE of DLE ETX or -1, where to resume the search next time)."""
    i = start
    n = len(data)
    while True:
        j = data.find(b"\x10", i)
        if j < 0:
            return -1, n
        if j + 1 >= n:
            return -1, j  # a DLE split across reads: look again when more comes
        if data[j + 1] == ETX:
            return j, j
        i = j + 2


@dataclass(slots=True)
class Stats:
    """What the driver saw, for the record and the log."""

    started: float = 0.0
    ended: float = 0.0
    rate: str = ""
    bps: int = 0
    page_seconds: list[float] = field(default_factory=list)
    fcerrors: int = 0
    aborted_receives: int = 0


class Class1Driver(PipeModem):
    """Performs T.30 actions over a Class 1 modem that is already online.

    `online`: the call was just set up by ``ATA`` or ``ATD`` with ``CONNECT``: the modem is in
    V.21 HDLC transmit (after ATA, so the first `SendFrames` goes out at once) or receive
    (after ATD, so the first `ReceiveFrame` reads the frames following CONNECT).
    """

    def __init__(
        self,
        pipe: Pipe,
        *,
        online: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(pipe, online=online, clock=clock, trace=trace)
        self.sleep = sleep
        self.stats = Stats()
        self._receiving = "AT+FRH=3"

    # -- the session -----------------------------------------------------------------------------

    def run(
        self, session: T30Receiver | T30Sender, progress: Callable[[], None] | None = None
    ) -> Hangup:
        """Run the engine to its end; returns its Hangup. Never raises for what the line does.
        `progress` is called after every step the engine takes: a page it accepted is handed
        on there before its MCF goes out (the sender waits T4, 3 s, for it)."""
        self.stats.started = self.clock()
        action: Action = session.start(self.clock())
        while not isinstance(action, Hangup):
            result = self.perform(action)
            action = session.handle(result, self.clock())
            if progress is not None:
                progress()
        self.stats.ended = self.clock()
        return action

    def perform(self, action: Action) -> T30Result:
        if self._gone:
            return Disconnected(reason=self._gone)
        try:
            if isinstance(action, SendFrames):
                return self._send_frames(action)
            if isinstance(action, ReceiveFrame):
                return self._receive_frame(action.deadline)
            if isinstance(action, Silence):
                return self._silence(action.ms)
            if isinstance(action, SendTraining):
                zeros = bytes(action.modulation.bytes_for(action.ms))
                return self._send_high_speed(action.modulation, zeros)
            if isinstance(action, SendPage):
                started = self.clock()
                result = self._send_high_speed(action.modulation, action.data, short=True)
                self.stats.page_seconds.append(self.clock() - started)
                return result
            if isinstance(action, ReceiveTraining):
                got = self._receive_high_speed(action.modulation, action.deadline)
                return got if not isinstance(got, bytes) else TrainingReceived(data=got)
            if isinstance(action, ReceivePage):
                started = self.clock()
                got = self._receive_high_speed(action.modulation, action.deadline, short=True)
                if isinstance(got, bytes):
                    self.stats.page_seconds.append(self.clock() - started)
                    return PageReceived(data=got)
                return got
        except (_Gone, PipeClosed) as exc:
            self._gone = self._gone or str(exc) or "the call ended"
            return Disconnected(reason=self._gone)
        raise TypeError(f"not a T.30 action: {action!r}")

    def _silence(self, ms: int) -> T30Result:
        result = self._command(gap_command(ms), 3.0)
        if isinstance(result, Response):
            return Done()
        return Disconnected(reason=f"{gap_command(ms)} answered {_words(result)}")

    # -- V.21 HDLC -------------------------------------------------------------------------------

    def _send_frames(self, action: SendFrames) -> T30Result:
        frames = action.frames
        if self.online:
            self.online = False  # after ATA: CONNECT already given, the modem sends flags
        else:
            result = self._command("AT+FTH=3", 10.0)
            if not _connected(result):
                return Disconnected(reason=f"AT+FTH=3 answered {_words(result)}")
        for i, frame in enumerate(frames):
            data = frame.to_bytes()
            self.pipe.write(escape(data) + DLE_ETX)
            # 300 bit/s plus the closing flags; CONNECT between frames, OK after the final one
            seconds = 10.0 + len(data) * 8 / 300
            result = self._await("AT+FTH=3", seconds)
            last = i == len(frames) - 1
            if last and frame.final:
                if isinstance(result, Response) and not _connected(result):
                    return Done()
                return Disconnected(reason=f"frame {frame.name} answered {_words(result)}")
            if not _connected(result):
                if isinstance(result, Response):  # OK: the modem left HDLC mode early
                    result = self._command("AT+FTH=3", 10.0)
                    if _connected(result):
                        continue
                return Disconnected(reason=f"frame {frame.name} answered {_words(result)}")
        return Done()

    def _receive_frame(self, deadline: float) -> T30Result:
        if self.online:
            self.online = False  # after ATD: the frames follow CONNECT
            self._receiving = "AT+FRH=3"
        else:
            started = self._start_receive("AT+FRH=3", deadline)
            if started is not None:
                return started
        got = self._collect(deadline=max(deadline, self.clock()) + 5.0)
        if got is None:
            return TimedOut()
        raw, status = got
        body, fcs_ok = frame_from_modem(raw + DLE_ETX)
        if not isinstance(status, Response):
            fcs_ok = False
        if not body:
            return NoCarrier(reason=f"no frame ({_words(status)})")
        return FrameReceived(data=body, fcs_ok=fcs_ok)

    # -- high speed ------------------------------------------------------------------------------

    def _send_high_speed(
        self, modulation: Modulation, data: bytes, *, short: bool = False
    ) -> T30Result:
        code = _code(modulation, short)
        result = self._command(f"AT+FTM={code}", 10.0)
        if not _connected(result):
            return Disconnected(reason=f"AT+FTM={code} answered {_words(result)}")
        self.stats.rate, self.stats.bps = modulation.name, modulation.bps
        start = self.clock()
        payload = escape(data)
        rate = modulation.bps / 8
        training = _TRAINING_S.get(modulation.family, 1.4)
        if short and modulation.family == "V.17":
            training = 0.3  # V.17 short training: 0.28 s
        sent = 0
        while sent < len(payload):
            allowed = _LEAD_BYTES + rate * max(0.0, self.clock() - start - training)
            room = int(allowed) - sent
            if room <= 0:
                self.sleep(min(0.05, -room / rate + 0.005))
                continue
            n = min(room, _CHUNK, len(payload) - sent)
            self.pipe.write(payload[sent : sent + n])
            sent += n
        self.pipe.write(DLE_ETX)
        left = max(0.0, start + training + len(payload) / rate - self.clock())
        result = self._await(f"AT+FTM={code}", left + 15.0)
        if isinstance(result, Response):
            return Done()
        return Disconnected(reason=f"sending at {modulation.name}: {_words(result)}")

    def _receive_high_speed(
        self, modulation: Modulation, deadline: float, *, short: bool = False
    ) -> T30Result | bytes:
        started = self._start_receive(f"AT+FRM={_code(modulation, short)}", deadline)
        if started is not None:
            return started
        self.stats.rate, self.stats.bps = modulation.name, modulation.bps
        # A page of the longest kind at 2400 bit/s takes minutes: no fixed bound but the
        # carrier; a modem that goes quiet for T2 without ending the data is gone. What
        # came before is the page as far as it got: handed on (the engine keeps it,
        # unconfirmed), and the next action finds the call gone.
        got = self._collect(deadline=None, partial=True)
        if got is None:
            raise _Gone("the modem stopped sending page data")
        raw, status = got
        if status is None:
            self._gone = "the modem stopped sending page data"
        return unescape(raw)

    def _start_receive(self, text: str, deadline: float) -> T30Result | None:
        """Send AT+FRH/AT+FRM and wait for CONNECT until `deadline`; abort after it (any
        character stops a T.31 receive; the modem answers OK). None: data follows."""
        now = self.clock()
        cmd = Command(text, timeout=max(1.0, deadline - now) + 30.0)
        self._receiving = text
        if self.engine.mode is Mode.DATA:
            self.engine.enter_command_mode(b"")
        if self._trace is not None:
            self._trace(text)
        self.pipe.write(self.engine.send(cmd, now))
        aborted = False
        until = deadline
        while True:
            event = self._next(until)
            if event is None:
                if aborted:
                    raise _Gone(f"no answer after aborting {text}")
                aborted = True
                self.stats.aborted_receives += 1
                self.pipe.write(bytes((CAN,)))
                until = self.clock() + _ABORT_WAIT
                continue
            if isinstance(event, Response):
                if _connected(event):
                    return None  # the data follows (even when it came as we aborted)
                return TimedOut()  # OK after our abort
            if isinstance(event, ErrorResult):
                if event.kind == "fcerror":
                    self.stats.fcerrors += 1
                    return NoCarrier(reason="+FCERROR: another carrier on the line")
                if aborted:
                    return TimedOut()
                return NoCarrier(reason=event.result)
            if isinstance(event, Timeout):
                raise _Gone(f"no answer to {text}")

    def _collect(
        self, deadline: float | None, *, partial: bool = False
    ) -> tuple[bytes, object] | None:
        """Data mode after CONNECT: bytes up to DLE ETX (still escaped), then the final
        result. None when nothing ends the data by `deadline` (or for T2 with none); with
        `partial`, what came before that with None for the result (if anything came)."""
        buf = bytearray()
        pos = 0
        quiet = 6.0  # T.30 T2: page data that stops without an end
        last = self.clock()
        while True:
            until = self.clock() + quiet if deadline is None else min(deadline, last + quiet)
            event = self._next(until)
            if event is None:
                return (bytes(buf), None) if partial and buf else None
            if isinstance(event, Data):
                last = self.clock()
                buf += event.data
                end, pos = find_end(buf, pos)
                if end < 0:
                    continue
                leftover = bytes(buf[end + 2 :])
                while (more := self.engine.next_event()) is not NEED_DATA:
                    if isinstance(more, Data):
                        leftover += more.data
                status = self._await(self._receiving, 10.0, leftover)
                return bytes(buf[:end]), status
            if isinstance(event, ErrorResult | Response | Timeout):
                return bytes(buf), event  # ended without DLE ETX


def _code(modulation: Modulation, short: bool) -> int:
    """T.31 code for AT+FTM/AT+FRM. V.17 trains long for TCF and short for the pages that
    follow it at the same rate (as SpanDSP and efax do; seen over iaxmodem): a receiver
    set for one and sent the other misses the start of the page or all of it."""
    return modulation.short_code if short else modulation.code


def _connected(result: object) -> bool:
    return isinstance(result, Response) and result.result.startswith("CONNECT")


def _words(result: object) -> str:
    if isinstance(result, Response | ErrorResult):
        return result.result
    if isinstance(result, Timeout):
        return "nothing (timeout)"
    return "nothing"


def gap_command(ms: int) -> str:
    """AT+FTS=n for a gap of `ms` (n in 10 ms units, rounded up: 75 ms -> AT+FTS=8)."""
    return f"AT+FTS={max(1, math.ceil(ms / 10))}"
