"""T.30 for the simulator's own fax ends on a virtual line (fax_line.py): a fax machine that
stands on the line by itself (`LineFax`, for tests and the demo), and the T.30 a simulated
Class 2/2.0 modem runs inside (fax2.py).

Written from ITU-T T.30 itself and deliberately apart from Frontdesk's engine
(`firmware_app/protocol/t30.py`): its own frame codes, DIS/DCS bits and flow, so tests of
Frontdesk against it are tests against a second reading of the standard. It is a plain
Group 3 machine without ECM: phase B (CSI/DIS; TSI/DCS; training check; CFR/FTT with
fall-back), phase C (one page per high-speed carrier; V.17 long training for the check and
short training for the pages), phase D (MPS/EOM/EOP; MCF/RTN/RTP; EOM goes back to phase
B), DCN. Timers are T.30's in real seconds (T1 35 s, T2 6 s, T4 3 s), so a slow host on the
other end is waited for as a real fax machine would.

Each station runs on its own thread and blocks on the line; a Class 2 modem calls the steps
one by one as its host's commands come.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .fax_line import ALL_CODES, Carrier, LineEnd

log = logging.getLogger(__name__)

T1 = 35.0
T2 = 6.0
T4 = 3.0
GAP = 0.075  # between the end of one signal and the next (T.30 5.3.2.1), line time
TCF_S = 1.5


class Fc(enum.IntEnum):
    """T.30 5.3.6.1 facsimile control fields as sent on the line, first bit in the LSB
    (the form a Class 1 modem passes them in), X bit clear."""

    DIS = 0x80
    CSI = 0x40
    DCS = 0x82
    TSI = 0x42
    CFR = 0x84
    FTT = 0x44
    EOM = 0x8E
    MPS = 0x4E
    EOP = 0x2E
    MCF = 0x8C
    RTP = 0xCC
    RTN = 0x4C
    DCN = 0xFA
    CRP = 0x1A


PPM_NAMES = {Fc.MPS: 0, Fc.EOM: 1, Fc.EOP: 2}  # +FET values (T.32)


# Rates by T.30 Table 2 bits 11-14 (bit 11 first) for DCS, with their T.31 codes (long
# training; V.17 short training is one more) and the DIS rate bits that admit them.
@dataclass(frozen=True, slots=True)
class Rate:
    bps: int
    family: str
    dcs_bits: int
    code: int

    @property
    def page_code(self) -> int:
        return self.code + 1 if self.family == "V.17" else self.code


RATES = (
    Rate(14400, "V.17", 0b1000, 145),
    Rate(12000, "V.17", 0b1010, 121),
    Rate(9600, "V.17", 0b1001, 97),
    Rate(9600, "V.29", 0b0001, 96),
    Rate(7200, "V.17", 0b1011, 73),
    Rate(7200, "V.29", 0b0011, 72),
    Rate(4800, "V.27ter", 0b0010, 48),
    Rate(2400, "V.27ter", 0b0000, 24),
)
_DIS_FAMILIES = {
    0b0000: {"V.27ter"},
    0b0010: {"V.27ter"},
    0b0001: {"V.29"},
    0b0011: {"V.27ter", "V.29"},
    0b1011: {"V.27ter", "V.29", "V.17"},
}
_SCAN_DIS = {0b000: 20, 0b100: 40, 0b010: 10, 0b001: 5, 0b111: 0}


def _bit(fif: bytes, n: int) -> bool:
    i = (n - 1) // 8
    return i < len(fif) and bool(fif[i] >> ((n - 1) % 8) & 1)


def _bits(fif: bytes, first: int, count: int) -> int:
    return sum(1 << k for k in range(count) if _bit(fif, first + k))


def _put(fif: bytearray, first: int, count: int, value: int) -> None:
    for k in range(count):
        if value >> k & 1:
            n = first + k
            fif[(n - 1) // 8] |= 1 << ((n - 1) % 8)


@dataclass(frozen=True, slots=True)
class Caps:
    """A DIS: what the station can receive."""

    families: frozenset[str]
    fine: bool
    mr: bool
    receive: bool = True

    def fif(self) -> bytes:
        fam = set(self.families)
        code = next(c for c, f in _DIS_FAMILIES.items() if f == fam and c != 0)
        out = bytearray(3)
        _put(out, 10, 1, int(self.receive))
        _put(out, 11, 4, code)
        _put(out, 15, 1, int(self.fine))
        _put(out, 16, 1, int(self.mr))
        _put(out, 19, 2, 0b10)  # bit 20: unlimited length
        _put(out, 21, 3, 0b111)  # scan line time 0 ms
        return bytes(out)

    @classmethod
    def parse(cls, fif: bytes) -> Caps:
        families = _DIS_FAMILIES.get(_bits(fif, 11, 4), {"V.27ter", "V.29"})
        return cls(frozenset(families), _bit(fif, 15), _bit(fif, 16), _bit(fif, 10))


@dataclass(frozen=True, slots=True)
class Session:
    """A DCS: what the sender chose."""

    rate: Rate
    fine: bool
    mr: bool

    def fif(self) -> bytes:
        out = bytearray(3)
        _put(out, 10, 1, 1)
        _put(out, 11, 4, self.rate.dcs_bits)
        _put(out, 15, 1, int(self.fine))
        _put(out, 16, 1, int(self.mr))
        _put(out, 21, 3, 0b111)
        return bytes(out)

    @classmethod
    def parse(cls, fif: bytes) -> Session | None:
        bits = _bits(fif, 11, 4)
        rate = next((r for r in RATES if r.dcs_bits == bits), None)
        if rate is None:
            return None
        return cls(rate, _bit(fif, 15), _bit(fif, 16))


def frame(fc: int, fif: bytes = b"", *, final: bool = True, x: bool = False) -> bytes:
    fcf = fc | (1 if x and fc not in (Fc.DIS, Fc.CSI) else 0)
    return bytes((0xFF, 0x13 if final else 0x03, fcf)) + fif


def ident(text: str) -> bytes:
    """CSI/TSI: 20 characters, the last sent first (T.30 5.3.6.2.4)."""
    return text[:20].ljust(20).encode("ascii", "replace")[::-1]


def read_ident(fif: bytes) -> str:
    return fif[::-1].decode("latin-1").strip()


class Gone(Exception):
    """The call ended (the other end hung up, or the line dropped)."""


@dataclass(slots=True)
class Heard:
    """Frames of one V.21 carrier: (fcf without the X bit, fif, FCS good)."""

    frames: list[tuple[int, bytes, bool]]

    def find(self, *fcs: int) -> tuple[int, bytes] | None:
        for fc, fif, good in self.frames:
            if good and fc in fcs:
                return fc, fif
        return None

    @property
    def final(self) -> int | None:
        for fc, _fif, good in reversed(self.frames):
            if good:
                return fc
        return None


class Station:
    """One fax station on a line end: blocking T.30 steps. Not thread-safe: one thread."""

    def __init__(
        self,
        end: LineEnd,
        *,
        local_id: str,
        modulations: Sequence[int] = ALL_CODES,
        fine: bool = True,
        mr: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        self.end = end
        self.local_id = local_id
        self.modulations = tuple(modulations)
        self.fine = fine
        self.mr = mr
        self.cond = threading.Condition()
        self.stop = stop or threading.Event()
        self.remote_id = ""
        self.remote: Caps | None = None
        self.session: Session | None = None
        self.rate_index = 0  # in rates(): where the last training succeeded
        self.trace: list[str] = []

    # -- the line ---------------------------------------------------------------------------

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def _wait(self, until: float, ready: Callable[[], bool]) -> bool:
        with self.cond:
            while not ready():
                if self.stop.is_set():
                    raise Gone("stopped")
                left = until - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
        return True

    def _sleep_until(self, when: float) -> None:
        self._wait(when, lambda: time.monotonic() >= when)

    def _live(self) -> None:
        if not self.end.connected:
            raise Gone("the call ended")

    def _gap(self) -> None:
        self._sleep_until(time.monotonic() + GAP * self.end.scale)

    def send(self, *frames: bytes) -> None:
        """One V.21 carrier with these frames; returns once it is through."""
        self._live()
        carrier = self.end.start_carrier("v21", 3)
        for data in frames:
            self.end.add_frame(carrier, data)
            self.trace.append(f"> {_name(data[2])}")
        self._sleep_until(self.end.end_carrier(carrier))

    def send_data(self, code: int, data: bytes) -> None:
        """One high-speed carrier with `data`; returns once it is through."""
        self._live()
        carrier = self.end.start_carrier("hs", code)
        self.end.add_data(carrier, data)
        self._sleep_until(self.end.end_carrier(carrier))

    def _head(self) -> Carrier | None:
        head = self.end.head()
        if head is None:
            self._live()
        return head

    def hear(self, timeout: float) -> Heard | None:
        """The frames of the next V.21 carrier (None: nothing within `timeout`, or a
        high-speed carrier came instead, which is skipped)."""
        until = time.monotonic() + timeout
        if not self._wait(until, lambda: self._head() is not None):
            return None
        carrier = self.end.head()
        assert carrier is not None
        if carrier.kind != "v21":
            self._wait(time.monotonic() + 120, lambda: carrier.end_at is not None)
            self.end.consume(carrier)
            self.trace.append("< high-speed carrier instead of frames")
            return None
        got: list[tuple[int, bytes, bool]] = []
        while True:

            def more(c: Carrier = carrier) -> bool:
                now = time.monotonic()
                with self.end.line.lock:
                    done = [f for f in c.frames[len(got) :] if f.done_at <= now]
                    return bool(done) or (c.end_at is not None and c.end_at <= now)

            self._wait(time.monotonic() + T2 + 30, more)
            with self.end.line.lock:
                ready = [f for f in carrier.frames[len(got) :] if f.done_at <= time.monotonic()]
                ended = carrier.end_at is not None and carrier.end_at <= time.monotonic()
            for f in ready:
                fc = f.data[2] & 0xFE if f.data[2] not in (Fc.DIS, Fc.CSI) else f.data[2]
                got.append((fc, f.data[3:], f.good))
                self.trace.append(f"< {_name(fc)}")
            if any(f.final for f in ready) or ended:
                self.end.consume(carrier)
                return Heard(got)

    def hear_data(self, code: int, timeout: float) -> bytes | None:
        """The data of the next high-speed carrier at `code`; None when nothing came within
        `timeout` or frames came instead (left for `hear`)."""
        until = time.monotonic() + timeout
        if not self._wait(until, lambda: self._head() is not None):
            return None
        carrier = self.end.head()
        assert carrier is not None
        if carrier.kind != "hs" or carrier.code != code:
            if carrier.kind == "hs":  # another modulation: not receivable, let it pass
                self._wait(time.monotonic() + 120, lambda: carrier.end_at is not None)
                self.end.consume(carrier)
            return None
        done = self._wait(
            time.monotonic() + 600,
            lambda: carrier.end_at is not None and carrier.end_at <= time.monotonic(),
        )
        self.end.consume(carrier)
        if not done:
            return None
        with self.end.line.lock:
            return bytes(carrier.data)

    # -- calling and sending (T.30 flow for the calling station) ----------------------------

    def call(self) -> Caps:
        """Dial and wait for the answering fax's DIS (T1). Raises Gone."""
        if self.end.dial():
            raise Gone("BUSY")
        if not self._wait(time.monotonic() + T1 + 30, lambda: self.end.connected):
            self.end.hang_up()
            raise Gone("no answer")
        return self.wait_dis()

    def wait_dis(self) -> Caps:
        until = time.monotonic() + T1
        while time.monotonic() < until:
            heard = self.hear(until - time.monotonic())
            if heard is None:
                continue
            got = heard.find(Fc.CSI)
            if got is not None:
                self.remote_id = read_ident(got[1])
            dis = heard.find(Fc.DIS)
            if dis is not None:
                self.remote = Caps.parse(dis[1])
                return self.remote
            if heard.final == Fc.DCN:
                raise Gone("DCN")
        raise Gone("no DIS (T1)")

    def rates(self) -> list[Rate]:
        assert self.remote is not None
        return [r for r in RATES if r.family in self.remote.families and r.code in self.modulations]

    def train(self, start: int = 0) -> Session:
        """DCS and training from rates()[start] down until CFR; returns the session."""
        assert self.remote is not None
        rates = self.rates()[start:]
        tries = 0
        i = 0
        while i < len(rates):
            rate = rates[i]
            self.session = Session(rate, self.fine and self.remote.fine, self.mr and self.remote.mr)
            self._gap()
            self.send(
                frame(Fc.TSI, ident(self.local_id), final=False, x=True),
                frame(Fc.DCS, self.session.fif(), x=True),
            )
            self._gap()
            self.send_data(rate.code, bytes(int(rate.bps * TCF_S / 8)))
            heard = self.hear(T4)
            answer = heard.final if heard is not None else None
            if answer == Fc.CFR:
                self.rate_index = start + i
                return self.session
            if answer == Fc.FTT:
                i += 1
                tries = 0
                continue
            if answer == Fc.DCN:
                raise Gone("DCN after training")
            if answer == Fc.DIS and heard is not None:  # they missed our DCS
                dis = heard.find(Fc.DIS)
                if dis is not None:
                    self.remote = Caps.parse(dis[1])
            tries += 1
            if tries >= 3:
                raise Gone("no answer to DCS (3 times)")
        raise Gone("training failed at every rate")

    def send_page(self, data: bytes, ppm: int) -> int:
        """Phase C and D for one page: the page, then `ppm` (MPS/EOM/EOP), repeated up to
        3 times without an answer. Returns the answer's FCF (MCF, RTP, RTN, PIP, PIN)."""
        assert self.session is not None
        self._gap()
        self.send_data(self.session.rate.page_code, data)
        for _ in range(3):
            self._gap()
            self.send(frame(ppm, x=True))
            heard = self.hear(T4)
            answer = heard.final if heard is not None else None
            if answer in (Fc.MCF, Fc.RTP, Fc.RTN):
                return answer
            if answer == Fc.DCN:
                raise Gone("DCN after the page")
        raise Gone("no answer to the post-page command (3 times)")

    def disconnect(self) -> None:
        try:
            self._gap()
            self.send(frame(Fc.DCN, x=True))
        except Gone:
            pass
        self.end.hang_up()

    # -- answering and receiving (T.30 flow for the called station) -------------------------

    def answer(self) -> None:
        """Off-hook (a call rings here): the answer tone, then phase B from `phase_b()`."""
        if not self.end.answer():
            raise Gone("no call to answer")
        self._sleep_until(time.monotonic() + 3.0 * self.end.scale)  # CED

    def phase_b(self, caps: Caps) -> Session:
        """CSI + DIS every T4 until DCS + a good training check (CFR); T1 in all."""
        until = time.monotonic() + T1
        while time.monotonic() < until:
            self.send(frame(Fc.CSI, ident(self.local_id), final=False), frame(Fc.DIS, caps.fif()))
            heard = self.hear(T4)
            while heard is not None:
                got = self.take_dcs(heard)
                if got is None:
                    if heard.final == Fc.DCN:
                        raise Gone("DCN")
                    break
                if isinstance(got, Session):
                    return got
                heard = self.hear(T2)  # FTT sent: DCS again at another rate
        raise Gone("no DCS (T1)")

    def take_dcs(self, heard: Heard) -> Session | Literal[False] | None:
        """TSI/DCS heard: check the training and answer CFR (-> the session) or FTT
        (-> False). None: no DCS in these frames."""
        tsi = heard.find(Fc.TSI)
        if tsi is not None:
            self.remote_id = read_ident(tsi[1])
        dcs = heard.find(Fc.DCS)
        if dcs is None:
            return None
        session = Session.parse(dcs[1])
        if session is None:
            return None
        tcf = self.hear_data(session.rate.code, T2)
        good = (
            tcf is not None and tcf.count(0) >= len(tcf) * 0.9 and len(tcf) >= session.rate.bps / 8
        )
        self._gap()
        self.send(frame(Fc.CFR if good else Fc.FTT))
        if not good:
            return False
        self.session = session
        return session

    def receive_page(self) -> tuple[bytes | None, int | None]:
        """Phase C and the post-page command: (page data or None when its carrier was
        missed, the PPM's FCF or None when none came within T2). A DCS instead (our CFR
        was missed) is trained again here."""
        assert self.session is not None
        data = self.hear_data(self.session.rate.page_code, T2)
        while True:
            heard = self.hear(T2)
            if heard is None:
                return data, None
            if heard.find(Fc.DCS) is not None:
                again = self.take_dcs(heard)
                if again:
                    data = self.hear_data(self.session.rate.page_code, T2)
                continue
            final = heard.final
            if final in PPM_NAMES or final == Fc.DCN:
                return data, final
            if final == Fc.CRP:
                continue
            return data, None

    def respond(self, fc: int) -> None:
        self._gap()
        self.send(frame(fc))

    def wait_dcn(self) -> None:
        """After MCF to EOP: DCN (a repeated EOP is answered MCF again)."""
        for _ in range(3):
            heard = self.hear(T2)
            if heard is None or heard.final == Fc.DCN:
                return
            if heard.final == Fc.EOP:
                self.respond(Fc.MCF)


def _name(fcf: int) -> str:
    code = fcf if fcf in (Fc.DIS, Fc.CSI) else fcf & 0xFE
    try:
        return Fc(code).name
    except ValueError:
        return f"FCF 0x{fcf:02X}"


@dataclass(slots=True)
class FaxResult:
    """How a `LineFax` call went."""

    ok: bool = False
    reason: str = ""
    pages: list[bytes] = field(default_factory=list)  # received, or sent and confirmed
    post_pages: list[int] = field(default_factory=list)  # received: MPS 0, EOM 1, EOP 2
    remote_id: str = ""
    session: Session | None = None
    trace: list[str] = field(default_factory=list)


class LineFax:
    """A Group 3 fax machine standing directly on a virtual line: `send()` calls the other
    end and sends documents (lists of T.4 pages, first bit in the LSB); `receive()` waits
    for a call and takes what comes; after `answer_calls()` it answers every call that
    rings it while it is idle, as a fax machine left switched on does. `wait()` gives the
    `FaxResult` (the last call's)."""

    def __init__(
        self,
        *,
        local_id: str = "+1 555 1001",
        modulations: Sequence[int] = ALL_CODES,
        fine: bool = True,
        mr: bool = False,
    ) -> None:
        self.local_id = local_id
        self.modulations = tuple(modulations)
        self.fine = fine
        self.mr = mr
        self.end: LineEnd | None = None
        self.station: Station | None = None
        self.result = FaxResult()
        self._ringing = threading.Event()
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs = threading.Lock()  # one call at a time
        self._answer_as: str | None = None  # answer_calls(): the id it answers with
        self.answered = 0  # calls answered by answer_calls()

    @property
    def busy(self) -> bool:
        """In a call (sending, receiving or waiting for one)."""
        return self._thread is not None and self._thread.is_alive()

    def answer_calls(self, local_id: str | None = None) -> LineFax:
        """From now on answer each call that rings this machine while it is idle and
        receive what comes, as `receive()` (with `local_id` as its own id when given)."""
        self._answer_as = local_id or self.local_id
        return self

    # EndOwner
    def attach(self, end: LineEnd) -> None:
        self.end = end
        end.owner = self

    def notify(self) -> None:
        if self.station is not None:
            self.station.notify()

    def ringing(self, caller: str) -> None:
        self._ringing.set()
        with self._jobs:
            answer = self._answer_as is not None and not self.busy and not self._stop.is_set()
            if answer:
                self.local_id = self._answer_as or self.local_id
                self.answered += 1
                self.receive()
        self.notify()

    def far_end_gone(self) -> None:
        self.notify()

    def _station(self) -> Station:
        assert self.end is not None, "put the machine on a VirtualLine first"
        self.station = Station(
            self.end,
            local_id=self.local_id,
            modulations=self.modulations,
            fine=self.fine,
            mr=self.mr,
            stop=self._stop,
        )
        return self.station

    def _start(self, target: Callable[[Station], None]) -> LineFax:
        station = self._station()
        self.result = FaxResult()
        self._done.clear()

        def run() -> None:
            try:
                target(station)
            except Gone as exc:
                self.result.reason = self.result.reason or f"the call ended: {exc}"
            except Exception as exc:  # a bug in a test tool: say so, never hang
                log.exception("simulated fax machine failed")
                self.result.reason = f"internal error: {exc}"
            finally:
                assert self.end is not None
                self.end.hang_up()
                self.result.remote_id = station.remote_id
                self.result.session = station.session
                self.result.trace = list(station.trace)
                self._done.set()
                log.info("simulated fax machine %s: %s", self.local_id, self.result.reason)

        self._thread = threading.Thread(target=run, name="line-fax", daemon=True)
        self._thread.start()
        return self

    def send(self, documents: Sequence[Sequence[bytes]]) -> LineFax:
        """Call and send: each document's pages, MPS between pages, EOM between documents,
        EOP at the end; a page answered RTN is trained again and sent again (3 tries)."""
        docs = [list(d) for d in documents if d]

        def run(st: Station) -> None:
            st.call()
            for d, pages in enumerate(docs):
                st.train()
                p = 0
                tries = 0
                while p < len(pages):
                    last_doc = d == len(docs) - 1
                    last = p == len(pages) - 1
                    ppm = Fc.MPS if not last else (Fc.EOP if last_doc else Fc.EOM)
                    answer = st.send_page(pages[p], ppm)
                    if answer == Fc.RTN:
                        tries += 1
                        if tries >= 3:
                            raise Gone(f"page {p + 1} refused 3 times")
                        st.train(start=min(st.rate_index + 1, len(st.rates()) - 1))
                        continue
                    self.result.pages.append(pages[p])
                    tries = 0
                    p += 1
                    if answer == Fc.RTP and not last:
                        st.train()
                if d < len(docs) - 1:
                    st.wait_dis()  # EOM: the receiver sends DIS again (phase B)
            st.disconnect()
            self.result.ok = True
            self.result.reason = f"sent {len(self.result.pages)} page(s)"

        return self._start(run)

    def receive(self, *, answer_after: float = 0.0) -> LineFax:
        """Wait for a call, answer it and receive; MCF to every page received."""
        caps = Caps(
            frozenset(r.family for r in RATES if r.code in self.modulations),
            self.fine,
            self.mr,
        )

        def run(st: Station) -> None:
            if not self._ringing.wait(120):
                raise Gone("nobody called")
            self._ringing.clear()  # the next receive() waits for a call of its own
            time.sleep(answer_after)
            st.answer()
            while True:
                st.phase_b(caps)
                while True:
                    data, ppm = st.receive_page()
                    if ppm is None or ppm == Fc.DCN:
                        raise Gone("no post-page command" if ppm is None else "DCN mid-document")
                    if data is None:
                        st.respond(Fc.RTN)
                        continue
                    self.result.pages.append(data)
                    self.result.post_pages.append(PPM_NAMES[Fc(ppm)])
                    st.respond(Fc.MCF)
                    if ppm != Fc.MPS:
                        break
                if ppm == Fc.EOP:
                    st.wait_dcn()
                    self.result.ok = True
                    self.result.reason = f"received {len(self.result.pages)} page(s)"
                    return

        return self._start(run)

    def wait(self, timeout: float = 120.0) -> FaxResult:
        if not self._done.wait(timeout):
            raise TimeoutError(f"the simulated fax machine is still busy: {self.result}")
        return self.result

    def close(self) -> None:
        self._stop.set()
        self.notify()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


__all__ = [
    "RATES",
    "Caps",
    "FaxResult",
    "Fc",
    "Gone",
    "LineFax",
    "Rate",
    "Session",
    "Station",
    "frame",
]
