"""T.30 session engines for Class 1 modems: a receiver (called station) and a sender (caller).

The engine decides WHAT happens (which frames, training, page data, gaps, timers); a thin
driver does the AT+FTH/FRH/FTM/FRM/FTS calls (T.31) and feeds each action's result back.
Pure: no I/O, no clock (time comes in as `now`, seconds), no threads; see docs/fax.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from firmware_app.protocol.errors import LocalProtocolError
from firmware_app.protocol.t30_frames import (
    Capabilities,
    Dcs,
    Fcf,
    Frame,
    FrameError,
    Modulation,
    decode_id,
    encode_id,
)

__all__ = [
    "GAP_MS",
    "T1",
    "T2",
    "T4",
    "TCF_MS",
    "Action",
    "Disconnected",
    "Done",
    "FrameReceived",
    "Hangup",
    "NoCarrier",
    "PageReceived",
    "PageSource",
    "ReceiveFrame",
    "ReceivePage",
    "ReceiveTraining",
    "ReceivedPage",
    "Result",
    "SendFrames",
    "SendPage",
    "SendTraining",
    "Silence",
    "T30Receiver",
    "T30Sender",
    "TimedOut",
    "TrainingReceived",
    "training_ok",
]

# T.30 timers (5.4.3.1), seconds: T1 35 +-5 (find the other fax), T2 6 +-1 (wait for a
# command), T4 3.0 +-15% (wait for a response). TCF is 1.5 s +-10% of zeros (5.3.6.2.12).
T1: Final = 35.0
T2: Final = 6.0
T4: Final = 3.0
TCF_MS: Final = 1500
# 75 +-20 ms between the end of one signal and the start of the next (5.3.2.1, 5.3.6.2.12);
# the driver rounds up to whole AT+FTS=n units of 10 ms (AT+FTS=8).
GAP_MS: Final = 75
# A training check passes when it holds this much of unbroken zeros (HylaFAX uses 1 s too).
TCF_MIN_ZERO_MS: Final = 1000
MAX_REPEATS: Final = 3  # T.30 5.3.2: a command is repeated up to three times


# --- actions: what the driver must do next ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SendFrames:
    """AT+FTH=3, then each frame (octets without FCS) DLE-escaped + DLE ETX. Result: Done."""

    frames: tuple[Frame, ...]

    @property
    def final(self) -> bool:
        return self.frames[-1].final


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiveFrame:
    """AT+FRH=3 until `deadline`. Result: FrameReceived, TimedOut or NoCarrier."""

    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    """AT+FTS=ceil(ms/10): a quiet gap before transmitting. Result: Done."""

    ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SendTraining:
    """AT+FTM=<code>, `modulation.bytes_for(ms)` zero octets, DLE ETX. Result: Done."""

    modulation: Modulation
    ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiveTraining:
    """AT+FRM=<code> and collect the TCF until carrier loss. Result: TrainingReceived,
    NoCarrier (+FCERROR: no such carrier) or TimedOut."""

    modulation: Modulation
    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SendPage:
    """AT+FTM=<code>, `data` DLE-escaped, DLE ETX, wait OK. Result: Done."""

    modulation: Modulation
    data: bytes
    page: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivePage:
    """AT+FRM=<code>, collect page data until DLE ETX / NO CARRIER. Result: PageReceived,
    NoCarrier or TimedOut."""

    modulation: Modulation
    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup:
    """The session is over: ATH. `ok` is True for a complete, normal session."""

    ok: bool
    reason: str


Action = (
    SendFrames | ReceiveFrame | Silence | SendTraining | ReceiveTraining | SendPage | ReceivePage
) | Hangup


# --- results: what the driver feeds back ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Done:
    """A send action or silence finished."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameReceived:
    """One frame, without FCS; `fcs_ok` False when the modem said ERROR or the FCS is bad."""

    data: bytes
    fcs_ok: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingReceived:
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PageReceived:
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedOut:
    """The action's deadline passed with nothing received."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NoCarrier:
    """The expected carrier was not there (+FCERROR, NO CARRIER) or the call dropped."""

    reason: str = "no carrier"


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected:
    """The call is gone (NO CARRIER in command mode, modem error or unplug)."""

    reason: str


Result = (
    Done | FrameReceived | TrainingReceived | PageReceived | TimedOut | NoCarrier | Disconnected
)


class PageSource(Protocol):
    """A page to send, encoded on demand for what was negotiated: T.4 MH (or MR when `mr`)
    at fine or normal resolution, each line padded to `min_scan_bits`, in the order the
    modem sends (first bit in the LSB). `firmware_app.media.fax_send.FaxPage` is one."""

    def encode(self, *, fine: bool, mr: bool, min_scan_bits: int) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedPage:
    """A page as received. `confirmed` is False for page data the sender never closed with
    a post-page command (the call ended first): kept, since it may be all there is."""

    data: bytes
    dcs: Dcs
    confirmed: bool = True


def training_ok(data: bytes, modulation: Modulation, min_ms: int = TCF_MIN_ZERO_MS) -> bool:
    """True when the TCF holds an unbroken run of zero octets of at least `min_ms`."""
    need = max(1, modulation.bytes_for(min_ms))
    run = best = 0
    for byte in data:
        run = run + 1 if byte == 0 else 0
        best = max(best, run)
        if best >= need:
            return True
    return False


@dataclass(slots=True)
class _Base:
    local_id: str
    state: str = "start"
    remote_id: str = ""
    dcs: Dcs | None = None
    outcome: Hangup | None = None
    trace: list[str] = field(default_factory=list)
    _then: list[Action] = field(default_factory=list)
    _t1: float = 0.0
    _repeats: int = 0

    def _hangup(self, ok: bool, reason: str) -> Hangup:
        self.state = "done"
        self.outcome = Hangup(ok=ok, reason=self._ending(reason))
        return self.outcome

    def _ending(self, reason: str) -> str:
        """Called once as the session ends; the reason to report."""
        return reason

    def _frames(self, *frames: Frame) -> SendFrames:
        self.trace.extend(f"> {f.name}" for f in frames)
        return SendFrames(frames=frames)

    def _disconnect(self, ok: bool, reason: str) -> Action:
        """DCN, then hang up."""
        self.state = "dcn"
        self.outcome = Hangup(ok=ok, reason=self._ending(reason))
        return self._frames(Frame.make(Fcf.DCN, x_bit=self._x))

    @property
    def _x(self) -> bool:
        return False

    def _parse(self, result: FrameReceived) -> Frame | None:
        if not result.fcs_ok:
            self.trace.append("< bad frame")
            return None
        try:
            frame = Frame.parse(result.data)
        except FrameError as exc:
            self.trace.append(f"< {exc}")
            return None
        self.trace.append(f"< {frame.name}")
        return frame

    def handle(self, result: Result, now: float) -> Action:
        """Feed the result of the last action; returns the next action."""
        if self.state == "done":
            raise LocalProtocolError("the fax session is over")
        if self.state == "dcn":
            assert self.outcome is not None
            self.state = "done"
            return self.outcome
        if isinstance(result, Disconnected):
            self._then = []
            ok = self._complete()
            reason = f"the call ended: {result.reason}"
            return self._hangup(ok, reason if ok else self._cut_short(reason))
        if isinstance(result, Done) and self._then:
            return self._then.pop(0)
        return self._step(result, now)

    def _complete(self) -> bool:
        return False

    def _cut_short(self, reason: str) -> str:
        return reason

    def _step(self, result: Result, now: float) -> Action:
        raise NotImplementedError


# Post-page commands (T.30 5.3.6.1.6); procedure interrupts count as the plain command since
# there is no operator to talk to.
_PPMS: Final[dict[Fcf, Fcf]] = {
    Fcf.MPS: Fcf.MPS,
    Fcf.EOM: Fcf.EOM,
    Fcf.EOP: Fcf.EOP,
    Fcf.PRI_MPS: Fcf.MPS,
    Fcf.PRI_EOM: Fcf.EOM,
    Fcf.PRI_EOP: Fcf.EOP,
}


# --- receiver --------------------------------------------------------------------------------


@dataclass(slots=True)
class T30Receiver(_Base):
    """Called station: DIS/CSI, DCS/TSI, training check, CFR/FTT, pages, MCF/RTN, DCN.

    `page_check(data, dcs)` may judge a page's copy quality: False answers RTN, the sender
    retrains and sends the page again (T.30 5.3.6.1.8). That is asked once per page: the
    copy that comes next is kept whatever it is (many fax machines cannot send a page
    again, HylaFAX warns), and a rejected copy the sender never replaces is kept too
    (unconfirmed) when the call ends. By default every page is taken.

    A post-page command that comes when the page it closes was not received (its carrier
    was missed: `ReceivePage` gave `TimedOut` or `NoCarrier`) is answered RTN, as SpanDSP
    and HylaFAX do: the sender retrains and sends the page again, so a lost page costs a
    retransmission, never a page confirmed but missing. Only a post-page command heard
    again with no page carrier expected since our answer (our MCF/RTN was lost) gets the
    same answer again (T.30 5.3.2).

    The session is complete (`Hangup.ok`) only once EOP was answered MCF. Any other end
    (DCN or silence in the middle of the document, the call dropping) is not, whatever
    arrived before it; page data the sender never closed is kept in `pages` with
    `confirmed=False` (HylaFAX keeps such "unconfirmed" pages too).
    """

    capabilities: Capabilities = field(default_factory=Capabilities)
    page_check: Callable[[bytes, Dcs], bool] | None = None
    pages: list[ReceivedPage] = field(default_factory=list)
    _frames_in: list[Frame] = field(default_factory=list)
    _page: bytes | None = None
    _page_good: bool = True
    _rejected: bytes | None = None  # the copy page_check refused, until the page comes again
    _page_missing: bool = False  # a page carrier was expected and not received
    _phase_b: bool = False  # DIS sent, no DCS yet: DIS again every T4 until T1

    def start(self, now: float) -> Action:
        """Right after ATA gave CONNECT (the modem is in V.21 transmit): send CSI + DIS."""
        self._t1 = now + T1
        self._phase_b = True
        return self._send_dis()

    def _send_dis(self) -> Action:
        self.state = "send_dis"
        csi = Frame.make(Fcf.CSI, encode_id(self.local_id), final=False)
        dis = Frame.make(Fcf.DIS, self.capabilities.to_fif())
        self._then = []
        return self._frames(csi, dis)

    def _complete(self) -> bool:
        return self.state == "wait_dcn"

    def _ending(self, reason: str) -> str:
        if self._page is None and self._rejected is not None:
            self._page = self._rejected  # the damaged copy is better than none
            reason += "; a damaged page the sender did not send again is kept"
        self._rejected = None
        if self._page is not None and self.dcs is not None:
            self.pages.append(ReceivedPage(data=self._page, dcs=self.dcs, confirmed=False))
            self._page = None
            reason += f"; page {len(self.pages)} kept, not confirmed by the sender"
        return reason

    def _respond(self, frame: Frame, state: str) -> Action:
        """Answer after the T.30 gap: Silence, then the frame; `state` takes the Done."""
        self.state = state
        self._then = [self._frames(frame)]
        return Silence(ms=GAP_MS)

    def _step(self, result: Result, now: float) -> Action:
        state = self.state
        if state == "send_dis" or (state == "wait_command" and isinstance(result, Done)):
            self.state = "wait_command"
            self._frames_in = []
            return ReceiveFrame(deadline=min(now + T4, self._t1))
        if state == "wait_command":
            return self._on_command(result, now)
        if state == "training":
            return self._on_training(result, now)
        if state in ("sent_cfr", "page"):
            if isinstance(result, Done):
                self.state = "page"
                assert self.dcs is not None
                return ReceivePage(modulation=self.dcs.modulation, deadline=now + T2)
            return self._on_page(result, now)
        if state == "wait_ppm":
            return self._on_ppm(result, now)
        if state == "after_eom":
            # MCF to EOM: the next document starts with phase B again, so DIS again (T.30
            # 5.3.6.1.7 and its flow diagram; SpanDSP and HylaFAX do so), with T1 anew.
            self.trace.append("= EOM: phase B again")
            self._t1 = now + T1
            self._phase_b = True
            self._repeats = 0
            dis = self._send_dis()
            self._then = [dis]
            return Silence(ms=GAP_MS)
        if state in ("sent_ftt", "sent_rtn"):
            self.state = "wait_command"
            self._frames_in = []
            self._repeats = 0
            return ReceiveFrame(deadline=now + T2)
        if state == "wait_dcn":
            if isinstance(result, Done):
                return ReceiveFrame(deadline=now + T2)
            frame = self._parse(result) if isinstance(result, FrameReceived) else None
            if frame is not None and frame.kind in (Fcf.EOP, Fcf.PRI_EOP):
                return self._respond(Frame.make(Fcf.MCF), "wait_dcn")
            if frame is not None and not frame.final:
                return ReceiveFrame(deadline=now + T2)
            return self._hangup(True, f"received {len(self.pages)} page(s)")
        raise LocalProtocolError(f"no transition from {state} on {type(result).__name__}")

    def _on_command(self, result: Result, now: float) -> Action:
        if isinstance(result, FrameReceived):
            frame = self._parse(result)
            if frame is None:
                if result.fcs_ok is False and self._frames_in:
                    return ReceiveFrame(deadline=now + T4)
                return self._respond(Frame.make(Fcf.CRP), "wait_command")
            if frame.kind is Fcf.TSI:
                self.remote_id = decode_id(frame.fif)
            self._frames_in.append(frame)
            if not frame.final:
                return ReceiveFrame(deadline=now + T4)
            if frame.kind is Fcf.DCS:
                try:
                    self.dcs = Dcs.from_fif(frame.fif)
                except FrameError as exc:
                    self.trace.append(f"< {exc}")
                    return self._disconnect(False, f"the sender's DCS is not usable: {exc}")
                self.state = "training"
                self._phase_b = False
                return ReceiveTraining(modulation=self.dcs.modulation, deadline=now + T2)
            if frame.kind is Fcf.DCN:
                return self._hangup(False, self._cut_short("the sender disconnected (DCN)"))
            if self.dcs is not None and frame.kind in _PPMS:
                # A post-page command without page data: the page was missed (RTN), or
                # our answer to it was lost (the same answer again); see _on_ppm.
                self.state = "wait_ppm"
                return self._on_ppm(result, now)
            self._frames_in = []
            return ReceiveFrame(deadline=min(now + T4, max(self._t1, now)))
        # Nothing heard: in phase B send DIS again until T1 runs out (T.30 flow diagram);
        # otherwise wait for the command up to three times T2.
        if self._phase_b and now < self._t1:
            return self._send_dis()
        self._repeats += 1
        if self._phase_b or self._repeats > MAX_REPEATS:
            return self._hangup(False, self._cut_short("no command from the sender (T2/T1)"))
        return ReceiveFrame(deadline=now + T2)

    def _cut_short(self, reason: str) -> str:
        if not self.pages and self._page is None and self._rejected is None:
            return reason
        return f"the fax ended early after {len(self.pages)} confirmed page(s): {reason}"

    def _on_training(self, result: Result, now: float) -> Action:
        assert self.dcs is not None
        if isinstance(result, TrainingReceived):
            if training_ok(result.data, self.dcs.modulation):
                self.trace.append(f"= TCF ok at {self.dcs.modulation.name}")
                return self._respond(Frame.make(Fcf.CFR), "sent_cfr")
            self.trace.append(f"= TCF bad at {self.dcs.modulation.name}")
            return self._respond(Frame.make(Fcf.FTT), "sent_ftt")
        # No training heard: the sender repeats DCS after T4.
        self.state = "wait_command"
        self._frames_in = []
        return ReceiveFrame(deadline=now + T4)

    def _on_page(self, result: Result, now: float) -> Action:
        if isinstance(result, PageReceived):
            self._page = result.data
            self._page_missing = False
            self.state = "wait_ppm"
            self._repeats = 0
            self._frames_in = []
            return ReceiveFrame(deadline=now + T2)
        # No page carrier: the sender may have missed CFR and repeats DCS (V.21 instead),
        # or it sent the page and we missed it (the post-page command then gets RTN).
        self._page_missing = True
        self.trace.append("= no page carrier")
        self._repeats += 1
        if self._repeats > MAX_REPEATS:
            return self._disconnect(False, self._cut_short("no page data from the sender"))
        self.state = "wait_command"
        self._frames_in = []
        return ReceiveFrame(deadline=now + T2)

    def _on_ppm(self, result: Result, now: float) -> Action:
        if not isinstance(result, FrameReceived):
            self._repeats += 1
            if self._repeats > MAX_REPEATS:
                return self._hangup(
                    False, self._cut_short("no post-page command from the sender (T2)")
                )
            return ReceiveFrame(deadline=now + T2)
        frame = self._parse(result)
        if frame is None:
            return self._respond(Frame.make(Fcf.CRP), "wait_ppm")
        if not frame.final:
            return ReceiveFrame(deadline=now + T4)
        kind = frame.kind
        if kind is Fcf.DCN:
            return self._hangup(
                False, self._cut_short("the sender disconnected (DCN) without closing the page")
            )
        if kind is Fcf.DCS:
            self.state = "wait_command"
            return self._on_command(result, now)
        ppm = _PPMS.get(kind) if kind is not None else None
        if ppm is None:
            return ReceiveFrame(deadline=now + T2)
        assert self.dcs is not None
        if self._page is not None:
            good = self.page_check is None or self.page_check(self._page, self.dcs)
            if not good and self._rejected is not None:
                self.trace.append("= page damaged again: kept")
                good = True  # asked once already: keep what came
            if good:
                self.pages.append(ReceivedPage(data=self._page, dcs=self.dcs))
                self._rejected = None
            else:
                self.trace.append("= page damaged: asked again")
                self._rejected = self._page
            self._page = None
            self._page_good = good
        elif self._page_missing:
            # The page this command closes never arrived: ask for it again (T.30 5.3.6.1.8
            # RTN; SpanDSP treats a post-page command in its "receiving the page" state so).
            self.trace.append(f"= {ppm.name} without its page")
            self._page_good = False
        if not self._page_good:
            return self._respond(Frame.make(Fcf.RTN), "sent_rtn")
        nxt = {Fcf.MPS: "sent_cfr", Fcf.EOM: "after_eom", Fcf.EOP: "wait_dcn"}[ppm]
        return self._respond(Frame.make(Fcf.MCF), nxt)


# --- sender ----------------------------------------------------------------------------------


@dataclass(slots=True)
class T30Sender(_Base):
    """Calling station: waits for DIS, sends TSI/DCS and TCF, falls back after FTT, sends each
    page then MPS (EOP after the last), handles MCF/RTP/RTN, ends with DCN.

    `modulations` are the codes the modem offers for AT+FTM (from `AT+FTM=?`).
    """

    pages: Sequence[PageSource] = ()
    fine: bool = True
    mr: bool = False
    modulations: frozenset[int] = frozenset({24, 48, 72, 96, 73, 97, 121, 145})
    remote: Capabilities | None = None
    pages_sent: int = 0
    _rates: tuple[Modulation, ...] = ()
    _rate: int = 0
    _page_tries: int = 0
    _encoded: dict[tuple[int, bool, bool, int], bytes] = field(default_factory=dict)
    _ppm: Fcf = Fcf.EOP
    _t4_deadline: float = 0.0

    @property
    def _x(self) -> bool:
        return True

    def start(self, now: float) -> Action:
        """Right after ATD gave CONNECT (V.21 flags heard): wait for the receiver's DIS."""
        if not self.pages:
            raise LocalProtocolError("nothing to send: a fax needs at least one page")
        self._t1 = now + T1
        self.state = "wait_dis"
        return ReceiveFrame(deadline=self._t1)

    def _step(self, result: Result, now: float) -> Action:
        state = self.state
        if state == "wait_dis":
            return self._on_dis(result, now)
        if state == "wait_cfr":
            return self._on_cfr(result, now)
        if state == "wait_mcf":
            return self._on_mcf(result, now)
        if state == "sent_training":
            self.state = "wait_cfr"
            self._t4_deadline = now + T4
            return ReceiveFrame(deadline=now + T4)
        if state == "sent_ppm":
            self.state = "wait_mcf"
            return ReceiveFrame(deadline=now + T4)
        raise LocalProtocolError(f"no transition from {state} on {type(result).__name__}")

    def _on_dis(self, result: Result, now: float) -> Action:
        if isinstance(result, FrameReceived):
            frame = self._parse(result)
            if frame is not None and frame.kind is Fcf.CSI:
                self.remote_id = decode_id(frame.fif)
            if frame is None or not frame.final:
                return ReceiveFrame(deadline=self._t1)
            if frame.kind is Fcf.DIS:
                try:
                    self.remote = Capabilities.from_fif(frame.fif)
                except FrameError as exc:
                    return self._disconnect(False, f"the receiver's DIS is not usable: {exc}")
                if not self.remote.receive:
                    return self._disconnect(False, "the remote fax cannot receive")
                self._rates = tuple(m for m in self.remote.rates() if m.code in self.modulations)
                if not self._rates:
                    return self._disconnect(False, "no modem speed in common with the remote")
                self._rate = 0
                self._repeats = 0
                return self._send_dcs()
            if frame.kind is Fcf.DTC:
                return self._disconnect(False, "the remote wants to send (polling)")
            if frame.kind is Fcf.DCN:
                return self._hangup(False, "the remote disconnected (DCN)")
            return ReceiveFrame(deadline=self._t1)
        if now >= self._t1:
            return self._disconnect(False, "no fax machine answered (T1)")
        return ReceiveFrame(deadline=self._t1)

    def _make_dcs(self) -> Dcs:
        assert self.remote is not None
        fine = self.fine and self.remote.fine
        scan_normal, scan_fine = self.remote.scan_ms
        return Dcs(
            modulation=self._rates[self._rate],
            fine=fine,
            mr=self.mr and self.remote.mr,
            width_code=0,
            length_code=2 if self.remote.length_code & 2 else 0,
            scan_ms=scan_fine if fine else scan_normal,
        )

    def _send_dcs(self) -> Action:
        self.dcs = self._make_dcs()
        self.state = "sent_training"
        tsi = Frame.make(Fcf.TSI, encode_id(self.local_id), final=False, x_bit=True)
        dcs = Frame.make(Fcf.DCS, self.dcs.to_fif(), x_bit=True)
        self._then = [
            self._frames(tsi, dcs),
            Silence(ms=GAP_MS),
            SendTraining(modulation=self.dcs.modulation, ms=TCF_MS),
        ]
        self.trace.append(f"> TCF at {self.dcs.modulation.name}")
        return Silence(ms=GAP_MS)

    def _page_data(self) -> bytes:
        assert self.dcs is not None
        key = (self.pages_sent, self.dcs.fine, self.dcs.mr, self.dcs.min_scan_bits)
        data = self._encoded.get(key)
        if data is None:
            source = self.pages[self.pages_sent]
            data = source.encode(
                fine=self.dcs.fine, mr=self.dcs.mr, min_scan_bits=self.dcs.min_scan_bits
            )
            self._encoded = {key: data}  # keep one page in memory
        return data

    def _send_page(self) -> Action:
        assert self.dcs is not None
        last = self.pages_sent + 1 >= len(self.pages)
        self._ppm = Fcf.EOP if last else Fcf.MPS
        self.state = "sent_ppm"
        self.trace.append(f"> page {self.pages_sent + 1} at {self.dcs.modulation.name}")
        self._then = [
            SendPage(modulation=self.dcs.modulation, data=self._page_data(), page=self.pages_sent),
            Silence(ms=GAP_MS),
            self._frames(Frame.make(self._ppm, x_bit=True)),
        ]
        return Silence(ms=GAP_MS)

    def _on_cfr(self, result: Result, now: float) -> Action:
        frame = self._parse(result) if isinstance(result, FrameReceived) else None
        if frame is not None and not frame.final:
            return ReceiveFrame(deadline=max(self._t4_deadline, now + 0.5))
        kind = frame.kind if frame is not None else None
        if kind is Fcf.CFR:
            self._repeats = 0
            return self._send_page()
        if kind is Fcf.FTT:
            self._rate += 1
            if self._rate >= len(self._rates):
                return self._disconnect(False, "training failed at every speed")
            return self._send_dcs()
        if kind is Fcf.DCN:
            return self._hangup(False, "the remote disconnected (DCN) after training")
        # Nothing, garbage, or DIS again (our DCS was missed): repeat DCS + TCF.
        self._repeats += 1
        if self._repeats >= MAX_REPEATS:
            return self._disconnect(False, "no answer to our training (DCS sent 3 times)")
        return self._send_dcs()

    def _on_mcf(self, result: Result, now: float) -> Action:
        frame = self._parse(result) if isinstance(result, FrameReceived) else None
        if frame is not None and not frame.final:
            return ReceiveFrame(deadline=now + T4)
        kind = frame.kind if frame is not None else None
        if kind in (Fcf.MCF, Fcf.RTP, Fcf.PIP):
            self.pages_sent += 1
            self._page_tries = 0
            self._repeats = 0
            if self._ppm is Fcf.EOP:
                return self._disconnect(True, f"sent {self.pages_sent} page(s)")
            if kind is Fcf.RTP:
                return self._send_dcs()
            return self._send_page()
        if kind in (Fcf.RTN, Fcf.PIN):
            # Page refused: retrain one speed lower (if any) and send it again (T.30 5.3.6.1.8).
            self._page_tries += 1
            self._repeats = 0
            if self._page_tries >= MAX_REPEATS:
                return self._disconnect(False, f"page {self.pages_sent + 1} refused 3 times")
            self._rate = min(self._rate + 1, len(self._rates) - 1)
            return self._send_dcs()
        if kind is Fcf.DCN:
            return self._hangup(False, f"the remote disconnected after page {self.pages_sent + 1}")
        self._repeats += 1
        if self._repeats >= MAX_REPEATS:
            return self._disconnect(False, "no answer to the post-page command")
        self.state = "sent_ppm"
        return self._after(Silence(ms=GAP_MS), self._frames(Frame.make(self._ppm, x_bit=True)))

    def _after(self, first: Action, *rest: Action) -> Action:
        self._then = list(rest)
        return first
