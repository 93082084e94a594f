"""One fax call on a line: answer (or switch a voice call) and receive, or dial and send.

Runs on a fax session thread, never on the line's worker: every AT command goes through the
line's futures and the call's bytes through a `LinePipe`. Picks Class 1 or Class 2/2.0 from
the modem's profile. Returns plain results; storing and notifying is the fax service's job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from ..protocol.at import Command, ErrorResult, Response

if TYPE_CHECKING:
    from ..modem.line import Line
    from ..protocol.t30 import PageSource, ReceivedPage
    from ..protocol.t30_frames import Dcs
    from .pipe import LinePipe

log = logging.getLogger(__name__)

T = TypeVar("T")

DIAL_TIMEOUT = 90.0  # ATD: dialling, ringing and the answering fax's tones
ANSWER_TIMEOUT = 60.0
# T.31 Table 1 codes offered when the modem does not answer AT+FTM=?.
DEFAULT_MODULATIONS = frozenset({24, 48, 72, 96})

SendStatus = Literal["sent", "busy", "no_answer", "no_carrier", "no_dialtone", "failed"]


@dataclass(frozen=True, slots=True)
class RxPage:
    """One received page as the modem delivered it (T.4 data) and how it was coded."""

    data: bytes
    fine: bool
    mr: bool
    fill_order: int | None  # 2 for Class 1 (first bit in the LSB); None: detect
    confirmed: bool = True  # False: the call ended before the sender closed the page


@dataclass(slots=True)
class ReceiveOutcome:
    ok: bool
    reason: str
    pages: list[RxPage] = field(default_factory=list)
    remote_id: str = ""
    fax_class: str = "1"
    rate: str = ""
    bps: int = 0
    seconds: float = 0.0
    page_seconds: list[float] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SendOutcome:
    ok: bool
    status: SendStatus
    reason: str
    pages_sent: int = 0
    remote_id: str = ""
    fax_class: str = "1"
    rate: str = ""
    bps: int = 0
    seconds: float = 0.0
    page_seconds: list[float] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)


# Told as a reception goes on: the sender's id and the pages accepted since the last call
# (in order). The fax service writes each page to disk and notes it in the fax's marker.
Progress = Callable[[str, list[RxPage]], None]


def reporter(
    on_progress: Progress | None,
    pages: Callable[[], Sequence[T]],
    remote_id: Callable[[], str],
    make: Callable[[T], RxPage],
) -> Callable[[], None] | None:
    """A driver's `progress` hook: calls `on_progress` when the engine holds new pages or
    the sender's id changed; each page is handed on once."""
    if on_progress is None:
        return None
    seen = 0
    told = ""

    def progress() -> None:
        nonlocal seen, told
        held, who = pages(), remote_id()
        if len(held) == seen and who == told:
            return
        new = [make(page) for page in held[seen:]]
        seen, told = len(held), who
        on_progress(who, new)

    return progress


def fax_class(line: Line) -> str | None:
    """The class to use on this line: 2.0 when offered (the modem keeps T.30's timing),
    else 1, else 2; None when the modem has no fax."""
    profile = line.profile
    classes = tuple(profile.fax_classes) if profile is not None else ()
    for wanted in ("2.0", "1", "2"):
        if wanted in classes:
            return wanted
    if "1.0" in classes:
        return "1"
    return None


def _ok(fut_result: object) -> bool:
    return isinstance(fut_result, Response)


def _command(line: Line, text: str, timeout: float = 5.0) -> Response | ErrorResult | None:
    try:
        result = line.command(Command(text, timeout=timeout)).result(timeout + 5.0)
    except Exception as exc:  # LineDownError, LineError
        log.info("%s: %s failed: %s", line.name, text, exc)
        return None
    return result if isinstance(result, Response | ErrorResult) else None


def _finish_call(line: Line, pipe: LinePipe) -> None:
    pipe.close()
    try:
        line.hangup().result(15.0)
    except Exception as exc:
        log.info("%s: hang-up after the fax: %s", line.name, exc)
    _command(line, "AT+FCLASS=0")


def receive(
    line: Line,
    *,
    local_id: str,
    answered: bool = False,
    use_class: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_progress: Progress | None = None,
) -> ReceiveOutcome:
    """Take a fax on `line`: answer the ringing call as a fax machine, or (`answered`)
    switch an answered voice call to fax (a calling tone was heard). Hangs up at the end.
    `use_class` picks a class the modem offers instead of the preferred one; `on_progress`
    hears of each page as soon as the engine accepts it (and of the sender's id)."""
    klass = use_class or fax_class(line)
    if klass is None:
        return ReceiveOutcome(ok=False, reason="this line's modem cannot receive faxes")
    if klass in ("2", "2.0"):
        from .class2 import receive_class2

        return receive_class2(line, klass, local_id=local_id, clock=clock, on_progress=on_progress)
    # The T.30 engine and the Class 1 driver: loaded with the first fax, not at start.
    from ..protocol.t30 import T30Receiver
    from ..protocol.t30_frames import Capabilities
    from .class1 import Class1Driver
    from .pipe import LinePipe

    started = clock()
    pipe = LinePipe(line)
    try:
        # T.31 8.2: in Class 1 the modem answers with CED and V.21 flags, then CONNECT:
        # from a ringing line, or from an answered voice call after switching (vgetty does
        # the same with +FCLASS=2 and ATA when it hears DLE c).
        if _command(line, "AT+FCLASS=1") is None:
            return ReceiveOutcome(ok=False, reason="the modem did not take AT+FCLASS=1")
        # The DIS offers only the modulations this modem can receive (AT+FRM=?).
        capabilities = Capabilities(families=receive_families(modulations(line, "AT+FRM=?")))
        result = pipe.connect(Command("ATA", timeout=ANSWER_TIMEOUT))
        if answered and isinstance(result, ErrorResult) and result.kind == "error":
            # A modem that refuses ATA while already off-hook: start phase B ourselves; the
            # CONNECT to AT+FTH=3 is the same V.21 transmit state ATA ends in (T.31).
            result = pipe.connect(Command("AT+FTH=3", timeout=10.0))
        if not (isinstance(result, Response) and result.result.startswith("CONNECT")):
            return ReceiveOutcome(
                ok=False, reason=f"answering as a fax: {getattr(result, 'result', 'no answer')}"
            )
        driver = Class1Driver(pipe, online=True, clock=clock)
        rx = T30Receiver(local_id=local_id, capabilities=capabilities, page_check=copy_quality)

        def rx_page(page: ReceivedPage) -> RxPage:
            # Class 1 modems pass the first bit in the LSB (T.31), but a page is read with
            # its bit order detected, never assumed (REFERENCE.md 1).
            return RxPage(
                data=page.data,
                fine=page.dcs.fine,
                mr=page.dcs.mr,
                fill_order=None,
                confirmed=page.confirmed,
            )

        end = driver.run(rx, reporter(on_progress, lambda: rx.pages, lambda: rx.remote_id, rx_page))
        pages = [rx_page(p) for p in rx.pages]
        log.info("%s: fax received: %s (%d pages)", line.name, end.reason, len(pages))
        return ReceiveOutcome(
            ok=end.ok and bool(pages),
            reason=end.reason,
            pages=pages,
            remote_id=rx.remote_id,
            fax_class="1",
            rate=driver.stats.rate,
            bps=driver.stats.bps,
            seconds=clock() - started,
            page_seconds=list(driver.stats.page_seconds),
            trace=list(rx.trace),
        )
    finally:
        _finish_call(line, pipe)


def copy_quality(data: bytes, dcs: Dcs) -> bool:
    """The Class 1 receiver's page check, run when the post-page command is in and before
    the answer goes out (the sender waits T4, 3 s; an A4 fine page decodes in about 25 ms
    on the build machine): False (RTN, the page once more) when fewer than 95 % of its
    lines are good or more than 5 in a row are damaged (`fax_image.acceptable`)."""
    return page_quality(data, fine=dcs.fine, mr=dcs.mr)


def page_quality(data: bytes, *, fine: bool, mr: bool | None) -> bool:
    """A received page's copy quality (Class 1 and Class 2/2.0): `copy_quality`."""
    from ..media.fax_image import FaxImageError, acceptable, decode_page  # numpy: on use

    started = time.monotonic()
    try:
        page = decode_page(data, fine=fine, mr=mr)
    except FaxImageError:
        log.info("fax: a page without a single line came: asking for it again")
        return False
    except Exception:  # never let the check break the call: take the page
        log.exception("fax: the page check failed; the page is taken as it is")
        return True
    good = acceptable(page)
    log.info(
        "fax: page checked in %.0f ms: %d lines, %d damaged (%d in a row)%s",
        (time.monotonic() - started) * 1000,
        page.lines,
        page.damaged_lines,
        page.damage_run,
        "" if good else ": asking for it again (RTN)",
    )
    return good


def receive_families(codes: frozenset[int]) -> frozenset[str]:
    """The modem families a DIS can offer for these AT+FRM codes. DIS bits 11-14 name
    V.27ter, V.29, both, or all three (T.30 Table 2): V.17 only with both of the others."""
    families = set()
    if codes & {24, 48}:
        families.add("V.27ter")
    if codes & {72, 96}:
        families.add("V.29")
    if len(families) == 2 and codes & {73, 74, 97, 98, 121, 122, 145, 146}:
        families.add("V.17")
    return frozenset(families or {"V.27ter"})


def modulations(line: Line, query: str = "AT+FTM=?") -> frozenset[int]:
    """T.31 codes the modem offers (AT+FTM=? or AT+FRM=? answers e.g. ``24,48,72,...``)."""
    result = _command(line, query)
    codes: set[int] = set()
    if isinstance(result, Response):
        for text in result.lines:
            for part in text.split(":")[-1].replace("(", "").replace(")", "").split(","):
                part = part.strip()
                if "-" in part:
                    lo, _, hi = part.partition("-")
                    if lo.isdigit() and hi.isdigit():
                        codes.update(range(int(lo), int(hi) + 1))
                elif part.isdigit():
                    codes.add(int(part))
    return frozenset(codes) or DEFAULT_MODULATIONS


_DIAL_ERRORS: dict[str, SendStatus] = {
    "busy": "busy",
    "no_answer": "no_answer",
    "no_carrier": "no_carrier",
    "no_dialtone": "no_dialtone",
}


# What a failed dial means, for the owner (the modem's own word follows in brackets).
_DIAL_WORDS: dict[str, str] = {
    "busy": "the number was busy",
    "no_answer": "nobody answered",
    "no_carrier": "no fax machine answered",
    "no_dialtone": "no dial tone: check the phone line",
}


def dial_words(status: str, result: str) -> str:
    """`no fax machine answered (NO CARRIER)`, or `dialling: <result>` for anything else."""
    words = _DIAL_WORDS.get(status)
    return f"{words} ({result})" if words else f"dialling: {result}"


def send(
    line: Line,
    number: str,
    pages: Sequence[PageSource],
    *,
    local_id: str,
    fine: bool = True,
    use_class: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SendOutcome:
    """Dial `number` on `line` and send `pages`. Hangs up at the end. `status` says whether a
    later try may help (busy, no answer) or not."""
    klass = use_class or fax_class(line)
    if klass is None:
        return SendOutcome(ok=False, status="failed", reason="this line's modem cannot send faxes")
    dial = "ATDT" + "".join(c for c in number if c.isdigit() or c in "*#,+W")
    if klass in ("2", "2.0"):
        from .class2 import send_class2

        return send_class2(line, klass, dial, pages, local_id=local_id, fine=fine, clock=clock)
    from ..protocol.t30 import T30Sender
    from .class1 import Class1Driver
    from .pipe import LinePipe

    started = clock()
    pipe = LinePipe(line)
    try:
        if _command(line, "AT+FCLASS=1") is None:
            return SendOutcome(ok=False, status="failed", reason="the modem refused AT+FCLASS=1")
        mods = modulations(line)
        result = pipe.connect(Command(dial, timeout=DIAL_TIMEOUT))
        if not (isinstance(result, Response) and result.result.startswith("CONNECT")):
            words = getattr(result, "result", "no answer from the modem")
            status: SendStatus = "failed"
            if isinstance(result, ErrorResult):
                status = _DIAL_ERRORS.get(result.kind, "failed")
            elif result is not None and not isinstance(result, Response):
                status = "no_answer"
            return SendOutcome(ok=False, status=status, reason=dial_words(status, str(words)))
        driver = Class1Driver(pipe, online=True, clock=clock)
        # MR (2-D) when the receiver's DIS offers it (the engine asks the DIS): smaller pages.
        tx = T30Sender(local_id=local_id, pages=pages, fine=fine, mr=True, modulations=mods)
        end = driver.run(tx)
        log.info("%s: fax sent: %s", line.name, end.reason)
        return SendOutcome(
            ok=end.ok,
            status="sent" if end.ok else "failed",
            reason=end.reason,
            pages_sent=tx.pages_sent,
            remote_id=tx.remote_id,
            fax_class="1",
            rate=driver.stats.rate,
            bps=driver.stats.bps,
            seconds=clock() - started,
            page_seconds=list(driver.stats.page_seconds),
            trace=list(tx.trace),
        )
    finally:
        _finish_call(line, pipe)
