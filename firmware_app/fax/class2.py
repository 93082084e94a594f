"""Class 2 and 2.0 driver (T.32, EIA-592): the modem runs T.30; this passes its report lines,
final results and page data through the pure `Class2Receiver`/`Class2Sender` engines.

Runs on the fax session thread: the line answers or dials through its futures, then the
call's bytes come through a `LinePipe` and are parsed by the session's own AT engine.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, cast

from ..protocol.at import Command, Data, ErrorResult, Response, Timeout
from ..protocol.fax_class2 import (
    AwaitResult,
    Class2Page,
    Class2Receiver,
    Class2Sender,
    FaxParams,
    Finished,
    ReadPage,
    SendCommand,
    Step,
    WritePage,
    setup_commands,
)
from ..protocol.t30 import PageSource
from .pipe import CallGone, LinePipe, PipeClosed, PipeModem

if TYPE_CHECKING:
    from ..modem.line import Line
    from .session import Progress, ReceiveOutcome, SendOutcome

log = logging.getLogger(__name__)

XON = 0x11
_LEAD_BYTES = 768
_CHUNK = 256

Version = Literal["2", "2.0"]


def _result_text(result: Response | ErrorResult | Timeout | None) -> str:
    if isinstance(result, Response | ErrorResult):
        return result.result
    return "TIMEOUT"


class Class2Call:
    """One Class 2/2.0 call: the engine's steps done over the line, then over the pipe."""

    def __init__(
        self,
        line: Line,
        session: Class2Receiver | Class2Sender,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.line = line
        self.session = session
        self.pipe = LinePipe(line)
        self.modem = PipeModem(self.pipe, online=True, clock=clock)
        self.clock = clock
        self.sleep = sleep
        self.page_seconds: list[float] = []

    def _feed(self, result: Response | ErrorResult | Timeout | None) -> Step:
        lines = result.lines if result is not None else ()
        for text in lines:
            self.session.line(text)
        return self.session.result(_result_text(result))

    def _send(self, step: SendCommand) -> Step:
        command = Command(step.text, timeout=step.timeout)
        if self.pipe.connected:  # the call is in data mode on the line: the pipe carries it
            return self._feed(self.modem._command(step.text, step.timeout))
        if step.text.upper() in ("AT+FDR", "AT+FDT"):
            return self._feed(self.pipe.connect(command))
        try:
            result = self.line.command(command).result(step.timeout + 10.0)
        except Exception as exc:
            log.info("%s: %s failed: %s", self.line.name, step.text, exc)
            result = None
        return self._feed(result if isinstance(result, Response | ErrorResult | Timeout) else None)

    def _read_page(self, step: ReadPage) -> Step:
        assert isinstance(self.session, Class2Receiver)
        started = self.clock()
        self.pipe.write(step.prelude)
        quiet = 30.0  # T.32: the modem ends a page with DLE ETX; silence this long is a loss
        while True:
            event = self.modem._next(self.clock() + quiet)
            if event is None:
                raise CallGone("no page data from the modem")
            if isinstance(event, Data):
                nxt = self.session.data(event.data)
                if isinstance(nxt, AwaitResult):
                    self.page_seconds.append(self.clock() - started)
                    result = self.modem._await(nxt.command, nxt.timeout, nxt.leftover)
                    return self._feed(result)
            elif isinstance(event, Response | ErrorResult | Timeout):
                return self._feed(event)

    def _write_page(self, step: WritePage) -> Step:
        assert isinstance(self.session, Class2Sender)
        started = self.clock()
        if step.wait_xon:  # Class 2: the modem sends XON when it is ready for data
            until = self.clock() + 10.0
            while True:
                event = self.modem._next(until)
                if event is None:
                    break
                if isinstance(event, Data) and bytes((XON,)) in event.data:
                    break
        params = self.session.params
        rate = (params.bit_rate if params is not None and params.bit_rate else 9600) / 8
        sent = 0
        data = step.data
        begin = self.clock()
        while sent < len(data):
            # The modem trains after CONNECT (a V.17 short train is 0.3 s), then takes data
            # at the line rate.
            allowed = _LEAD_BYTES + rate * max(0.0, self.clock() - begin - 0.3)
            room = int(allowed) - sent
            if room <= 0:
                self.sleep(min(0.05, -room / rate + 0.005))
                continue
            n = min(room, _CHUNK, len(data) - sent)
            self.pipe.write(data[sent : sent + n])
            sent += n
        result = self.modem._await("AT+FDT", 60.0 + len(data) / rate)
        self.page_seconds.append(self.clock() - started)
        return self._feed(result)

    def run(self, first: Step, progress: Callable[[], None] | None = None) -> Finished:
        """The engine's steps to its end. `progress` is called after every step (a page the
        engine took is handed on there, before the next AT+FDR)."""
        step = first
        try:
            while not isinstance(step, Finished):
                if progress is not None:
                    progress()
                if isinstance(step, SendCommand):
                    step = self._send(step)
                elif isinstance(step, ReadPage):
                    step = self._read_page(step)
                elif isinstance(step, WritePage):
                    step = self._write_page(step)
                else:
                    step = self._feed(self.modem._await(step.command, step.timeout, step.leftover))
        except (CallGone, PipeClosed) as exc:
            step = Finished(ok=False, reason=f"the call ended: {exc}", hangup_code=None)
        if progress is not None:
            progress()
        return step

    def close(self) -> None:
        self.pipe.close()
        try:
            self.line.hangup().result(15.0)
        except Exception as exc:
            log.info("%s: hang-up after the fax: %s", self.line.name, exc)
        try:
            self.line.command("AT+FCLASS=0").result(10.0)
        except Exception as exc:
            log.debug("%s: AT+FCLASS=0: %s", self.line.name, exc)


def _setup(line: Line, version: Version, local_id: str, fine: bool = True) -> str:
    for text in setup_commands(version, local_id, fine=fine):
        try:
            result = line.command(Command(text, timeout=5.0)).result(15.0)
        except Exception as exc:
            return f"{text} failed: {exc}"
        if isinstance(result, ErrorResult) and text.startswith("AT+FCLASS"):
            return f"the modem refused {text}"
    return ""


def receive_class2(
    line: Line,
    version: str,
    *,
    local_id: str,
    clock: Callable[[], float] = time.monotonic,
    on_progress: Progress | None = None,
) -> ReceiveOutcome:
    from .session import ReceiveOutcome, RxPage, reporter

    v = cast(Version, version)
    started = clock()
    problem = _setup(line, v, local_id)
    if problem:
        return ReceiveOutcome(ok=False, reason=problem, fax_class=version)
    from .session import page_quality

    def page_check(data: bytes, params: FaxParams | None) -> bool:
        # As in Class 1, before the answer goes out (at the next AT+FDR): bad -> AT+FPS=2.
        return page_quality(
            data, fine=params.fine if params else True, mr=params.mr if params else None
        )

    rx = Class2Receiver(version=v, page_check=page_check)

    def rx_page(page: Class2Page) -> RxPage:
        params = page.params or rx.params
        return RxPage(
            data=page.data,
            fine=params.fine if params else True,
            mr=params.mr if params else False,
            fill_order=None,  # Class 2 modems differ (REFERENCE.md 1): detect
            confirmed=page.confirmed,
        )

    progress = reporter(on_progress, lambda: rx.pages, lambda: rx.remote_id, rx_page)
    call = Class2Call(line, rx, clock=clock)
    try:
        end = call.run(rx.answer(), progress)
        if rx.keep_unfinished():  # the call went in the middle of a page: keep what came
            end = dataclasses.replace(end, reason=f"{end.reason}; the last page is kept")
            if progress is not None:
                progress()
    finally:
        call.close()
    pages = [rx_page(page) for page in rx.pages]
    bps = rx.params.bit_rate if rx.params else 0
    return ReceiveOutcome(
        ok=end.ok and bool(pages),
        reason=end.reason,
        pages=pages,
        remote_id=rx.remote_id,
        fax_class=version,
        rate=f"{bps} bit/s" if bps else "",
        bps=bps,
        seconds=clock() - started,
        page_seconds=call.page_seconds,
        trace=[f"+FHS {end.hangup_code}"] if end.hangup_code is not None else [],
    )


def send_class2(
    line: Line,
    version: str,
    dial: str,
    pages: Sequence[PageSource],
    *,
    local_id: str,
    fine: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> SendOutcome:
    from .session import SendOutcome

    v = cast(Version, version)
    started = clock()
    problem = _setup(line, v, local_id, fine=fine)
    if problem:
        return SendOutcome(ok=False, status="failed", reason=problem, fax_class=version)
    # Minimum scan time 0 (+FCC st=0); Class 2.0 takes data in direct order (+FBO=0, the
    # first bit in the LSB), as the pages are coded. Each page is coded once the modem's
    # +FCS says how (fine or normal, MH or MR: whatever the two machines agreed).
    tx = Class2Sender(version=v, number=dial[3:] if dial.upper().startswith("ATD") else dial)
    tx.sources = tuple(pages)
    call = Class2Call(line, tx, clock=clock)
    try:
        end = call.run(tx.dial())
    finally:
        call.close()
    status = "sent" if end.ok else "failed"
    reason = end.reason
    if not tx.connected and not end.ok:
        from .session import dial_words

        words = end.reason.upper()
        for word, kind in (
            ("BUSY", "busy"),
            ("NO ANSWER", "no_answer"),
            ("NO CARRIER", "no_carrier"),
            ("NO DIALTONE", "no_dialtone"),
        ):
            if word in words:
                status, reason = kind, dial_words(kind, word)
                break
    bps = tx.params.bit_rate if tx.params else 0
    return SendOutcome(
        ok=end.ok,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        pages_sent=tx.sent,
        remote_id=tx.remote_id,
        fax_class=version,
        rate=f"{bps} bit/s" if bps else "",
        bps=bps,
        seconds=clock() - started,
        page_seconds=call.page_seconds,
    )
