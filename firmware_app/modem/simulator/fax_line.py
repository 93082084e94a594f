"""A virtual phone line for fax: two simulated ends (two simulated modems, or a simulated
modem and a simulated fax machine) joined so that what one sends the other receives.

The line carries what a fax modem puts on a real line, one carrier at a time, at the level a
Class 1 modem (ITU-T T.31) sees it: V.21 channel 2 HDLC frames (T.30 control, 300 bit/s)
and high-speed carriers (V.27ter, V.29, V.17: training check and page data). Each carrier
knows when it starts on the line, when a receiver can lock on (after the V.21 preamble of
flags or the modem's training sequence) and when it stops, on the line's clock: real
seconds times `time_scale` for what the signal takes (so tests run fast), except the DTE's
own pace, which is what it is. No audio and no modulation: bits arrive as sent, unless a
fault says otherwise (a lost, damaged or cut carrier: `lose`, `damage`, `cut_after`).

A receiver that starts listening late still hears a carrier that ended up to `grace` real
seconds ago (a loaded test machine answers late; a real modem would often miss it). Older
carriers are gone, as they are on a real line.

Threads: each simulated modem has its own thread and lock. The line has a lock for its own
state and one small thread that hands notifications to the ends (`owner.notify()` and
friends) and runs the line's timers, so no modem ever waits for the other modem's lock.

Sources: ITU-T T.30 5.3.1 (V.21 preamble of flags, 1 s +-15 %), 5.3.6.2.12 (CED 2.6-4.0 s
before the first DIS); ITU-T V.17 (long training 1393 ms, short 280 ms), V.29 (253 ms),
V.27ter (943 ms at 2400 bit/s, 708 ms at 4800); T.31 Table 1 (modulation codes).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from .modem import SimulatedModem

log = logging.getLogger(__name__)

V21: int = 3  # T.31 code of V.21 channel 2 (HDLC frames)

# T.31 Table 1: bit rate of each high-speed modulation code.
BPS: dict[int, int] = {
    24: 2400,
    48: 4800,
    72: 7200,
    73: 7200,
    74: 7200,
    96: 9600,
    97: 9600,
    98: 9600,
    121: 12000,
    122: 12000,
    145: 14400,
    146: 14400,
}
# Training before data, seconds: V.17 long (73, 97, 121, 145) and short (74, 98, 122, 146).
TRAINING_S: dict[int, float] = {
    24: 0.943,
    48: 0.708,
    72: 0.253,
    96: 0.253,
    73: 1.393,
    97: 1.393,
    121: 1.393,
    145: 1.393,
    74: 0.280,
    98: 0.280,
    122: 0.280,
    146: 0.280,
}
ALL_CODES: tuple[int, ...] = (24, 48, 72, 73, 74, 96, 97, 98, 121, 122, 145, 146)
PREAMBLE_S = 1.0  # V.21 flags before the first frame of a carrier
CED_S = 3.0  # the answer tone before the called fax's first V.21 carrier


def frame_seconds(octets: int) -> float:
    """A frame with its FCS and a closing flag at 300 bit/s."""
    return (octets + 3) * 8 / 300


@dataclass(eq=False, slots=True)
class SentFrame:
    data: bytes  # address, control, FCF, FIF (the FCS is the modem's to add)
    done_at: float  # when its last bit has crossed the line
    good: bool = True  # False: it arrives with a bad FCS

    @property
    def final(self) -> bool:
        return len(self.data) > 1 and bool(self.data[1] & 0x10)


@dataclass(eq=False, slots=True)
class Carrier:
    """One carrier from one end: V.21 frames, or a high-speed signal's data."""

    kind: Literal["v21", "hs"]
    code: int
    started: float
    ready: float  # a receiver locks on from here (flags or training heard)
    sender: int  # the index of the end that sends it
    number: int = 0  # high-speed carriers from this end, counted from 1
    frames: list[SentFrame] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    end_at: float | None = None  # when it stops on the line; None while still on
    tail: float = 0.0  # V.21: when the frames sent so far are through

    @property
    def bps(self) -> int:
        return BPS.get(self.code, 300)


class EndOwner(Protocol):
    """Whoever stands at one end: a simulated modem, or a simulated fax machine. The line
    calls these from its own thread, holding no lock."""

    def notify(self) -> None:
        """Something on the line changed (a carrier, a frame, data, the call)."""

    def ringing(self, caller: str) -> None:
        """A call comes in from `caller`."""

    def far_end_gone(self) -> None:
        """The other end hung up (or never answered)."""


@dataclass(slots=True)
class _Faults:
    lose: set[tuple[int, int]] = field(default_factory=set)
    damage: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    cut_after: tuple[int, int] | None = None


class LineEnd:
    """One end of the line. All methods are thread-safe; `now` is `time.monotonic()`."""

    def __init__(self, line: VirtualLine, index: int, number: str) -> None:
        self.line = line
        self.index = index
        self.number = number
        self.owner: EndOwner | None = None
        self.inbound: deque[Carrier] = deque()
        self.offhook = False
        self._sent_hs = 0

    @property
    def peer(self) -> LineEnd:
        return self.line.ends[1 - self.index]

    @property
    def scale(self) -> float:
        return self.line.time_scale

    # -- the call ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Both ends off-hook on the same call."""
        with self.line.lock:
            return self.line.call == "up" and self.offhook and self.peer.offhook

    @property
    def ringing(self) -> bool:
        """A call from the other end rings here."""
        with self.line.lock:
            return self.line.call == "ringing" and self.line.caller == 1 - self.index

    @property
    def in_call(self) -> bool:
        """This end takes part in a call (dialling, ringing here, or up)."""
        with self.line.lock:
            return self.line.call != "idle"

    def dial(self) -> str:
        """Call the other end: "" (it rings there) or "BUSY"."""
        line = self.line
        with line.lock:
            if line.call != "idle" or self.peer.offhook:
                return "BUSY"
            line.call = "ringing"
            line.caller = self.index
            self.offhook = True
            line.generation += 1
            gen = line.generation
        peer = self.peer
        line.post(lambda: peer.owner.ringing(self.number) if peer.owner else None)
        # Nobody answers: the caller gives up a little after the last ring.
        line.post(lambda: line.no_answer(gen), at=time.monotonic() + line.give_up_after)
        return ""

    def answer(self) -> bool:
        """Pick up a call ringing here; False when none rings."""
        with self.line.lock:
            if not (self.line.call == "ringing" and self.line.caller == 1 - self.index):
                return False
            self.line.call = "up"
            self.offhook = True
        self.line.post_notify(self.peer)
        return True

    def hang_up(self) -> None:
        """On-hook; the other end hears the call end (safe when there is no call)."""
        line = self.line
        with line.lock:
            was = line.call
            self.offhook = False
            self.inbound.clear()
            if was == "idle":
                return
            line.call = "idle"
            line.generation += 1
            _cut_off(self.peer.inbound)  # what was through still reaches the other end
        peer = self.peer
        line.post(lambda: peer.owner.far_end_gone() if peer.owner else None)

    # -- sending -----------------------------------------------------------------------------

    def start_carrier(self, kind: Literal["v21", "hs"], code: int, *, lead: float = 0.0) -> Carrier:
        """Start sending a carrier (after `lead` real-line seconds, e.g. CED before flags)."""
        now = time.monotonic()
        scale = self.scale
        started = now + lead * scale
        settle = PREAMBLE_S if kind == "v21" else TRAINING_S.get(code, 1.4)
        carrier = Carrier(
            kind=kind, code=code, started=started, ready=started + settle * scale, sender=self.index
        )
        carrier.tail = carrier.ready
        line = self.line
        with line.lock:
            if kind == "hs":
                self._sent_hs += 1
                carrier.number = self._sent_hs
            if line.call == "up" and (self.index, carrier.number) not in line.faults.lose:
                self.peer.inbound.append(carrier)
        line.post_notify(self.peer)
        return carrier

    def add_frame(self, carrier: Carrier, data: bytes) -> float:
        """A frame onto a V.21 carrier; returns when it is through (line clock)."""
        now = time.monotonic()
        with self.line.lock:
            done = max(now, carrier.tail) + frame_seconds(len(data)) * self.scale
            carrier.tail = done
            carrier.frames.append(SentFrame(data=bytes(data), done_at=done))
        self.line.post_notify(self.peer, at=done)
        return done

    def add_data(self, carrier: Carrier, data: bytes) -> None:
        """High-speed data as the sender hands it over."""
        line = self.line
        with line.lock:
            span = line.faults.damage.get((self.index, carrier.number))
            if span is not None:
                lo, hi = span
                at = len(carrier.data)
                data = bytes(b ^ 0xA5 if lo <= at + i < hi else b for i, b in enumerate(data))
            carrier.data += data
        line.post_notify(self.peer)

    def end_carrier(self, carrier: Carrier) -> float:
        """The sender stops the carrier once what it holds is through; returns when."""
        now = time.monotonic()
        line = self.line
        with line.lock:
            if carrier.kind == "v21":
                end = max(now, carrier.tail)
            else:
                through = carrier.ready + len(carrier.data) * 8 / carrier.bps * self.scale
                end = max(now, through)
            carrier.end_at = end
            cut = line.faults.cut_after == (self.index, carrier.number) and carrier.number
        line.post_notify(self.peer, at=end)
        if cut:
            line.post(line.cut, at=end)
        return end

    # -- receiving ---------------------------------------------------------------------------

    def head(self) -> Carrier | None:
        """The carrier a receiver listening now hears first (those gone past `grace` are
        dropped), or None when the line is quiet."""
        now = time.monotonic()
        with self.line.lock:
            while self.inbound:
                first = self.inbound[0]
                if first.end_at is not None and first.end_at + self.line.grace < now:
                    self.inbound.popleft()
                    continue
                return first
            return None

    def consume(self, carrier: Carrier) -> None:
        """Done with `carrier` (received in full, or given up)."""
        with self.line.lock:
            if carrier in self.inbound:
                self.inbound.remove(carrier)

    def quiet(self) -> bool:
        """No carrier from the other end on the line now."""
        now = time.monotonic()
        with self.line.lock:
            return all(c.end_at is not None and c.end_at <= now for c in self.inbound)


def _cut_off(carriers: deque[Carrier]) -> None:
    """The call ends now: carriers still on stop here; frames not yet through are lost."""
    now = time.monotonic()
    for carrier in carriers:
        if carrier.end_at is None or carrier.end_at > now:
            carrier.end_at = now
            carrier.frames = [f for f in carrier.frames if f.done_at <= now]


class VirtualLine:
    """Two fax ends on one line. `a` and `b` are simulated modems or `LineFax` machines;
    `numbers` are their phone numbers (each one's caller ID at the other)."""

    def __init__(
        self,
        a: SimulatedModem | Attachable,
        b: SimulatedModem | Attachable,
        *,
        numbers: tuple[str, str] = ("5551001", "5552002"),
        time_scale: float = 0.05,
        grace: float = 1.0,
        rings: int = 5,
        ring_interval: float = 1.0,
    ) -> None:
        self.lock = threading.Lock()
        self.time_scale = time_scale
        self.grace = grace
        self.rings = rings
        self.ring_interval = ring_interval
        self.call: Literal["idle", "ringing", "up"] = "idle"
        self.caller = 0
        self.generation = 0
        self.faults = _Faults()
        self.ends = (LineEnd(self, 0, numbers[0]), LineEnd(self, 1, numbers[1]))
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="fax-line", daemon=True)
        self._thread.start()
        for end, who in zip(self.ends, (a, b), strict=True):
            _attach(who, end)

    # -- faults (tests and the demo script them) ---------------------------------------------

    def lose(self, side: int, number: int) -> None:
        """The `number`th high-speed carrier (1: usually the first training check) sent by
        end `side` never reaches the other end."""
        with self.lock:
            self.faults.lose.add((side, number))

    def damage(self, side: int, number: int, start: int, stop: int) -> None:
        """Bytes `start`..`stop` of that carrier arrive with their bits scrambled."""
        with self.lock:
            self.faults.damage[(side, number)] = (start, stop)

    def cut_after(self, side: int, number: int) -> None:
        """The call drops as soon as that high-speed carrier has ended."""
        with self.lock:
            self.faults.cut_after = (side, number)

    @property
    def give_up_after(self) -> float:
        return self.rings * self.ring_interval + 0.5

    def no_answer(self, generation: int) -> None:
        """The call rang out unanswered: it ends at both ends."""
        with self.lock:
            if self.generation != generation or self.call != "ringing":
                return
        self.cut()

    def off_hook(self, side: int, on: bool = True) -> None:
        """The other equipment at end `side` is in use: a call to it gets BUSY."""
        with self.lock:
            self.ends[side].offhook = on

    def cut(self, *, now: bool = False) -> None:
        """The line drops: both ends hear the call end (`now`: told on this thread, which
        must hold no modem's lock; else on the line's thread)."""
        with self.lock:
            if self.call == "idle":
                return
            self.call = "idle"
            self.generation += 1
            for end in self.ends:
                _cut_off(end.inbound)  # each end stays off-hook until it hangs up itself
        for end in self.ends:
            owner = end.owner
            if owner is not None:
                if now:
                    owner.far_end_gone()
                else:
                    self.post(owner.far_end_gone)

    # -- the line's thread -------------------------------------------------------------------

    def post(self, fn: Callable[[], None], at: float | None = None) -> None:
        """Run `fn` on the line's thread (at `at`, monotonic; now when None)."""
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._timers, (at or 0.0, next(self._seq), fn))
            self._cond.notify()

    def post_notify(self, end: LineEnd, at: float | None = None) -> None:
        owner = end.owner
        if owner is not None:
            self.post(owner.notify, at)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    if self._timers:
                        wait = self._timers[0][0] - time.monotonic()
                        if wait <= 0:
                            _, _, fn = heapq.heappop(self._timers)
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
            try:
                fn()
            except Exception:
                log.exception("virtual fax line: a notification failed")

    def close(self) -> None:
        """Hang up and stop the line's thread (safe twice). Call it from a thread that holds
        no simulated modem's lock (a test, the demo)."""
        self.cut(now=True)
        with self._cond:
            self._closed = True
            self._timers.clear()
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def __enter__(self) -> VirtualLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Attachable(Protocol):
    """A fax machine that can stand at one end of the line (`LineFax`)."""

    def attach(self, end: LineEnd) -> None: ...


class _ModemOwner:
    """A simulated modem at one end: notifications run on its own thread, under its lock."""

    def __init__(self, modem: SimulatedModem, end: LineEnd) -> None:
        self.modem = modem
        self.end = end

    def notify(self) -> None:
        self.modem.call_later(0.0, self._update)

    def _update(self) -> None:
        engine = self.modem.engine
        engine.fax1.update()
        engine.fax2.line_update()

    def ringing(self, caller: str) -> None:
        from .callerid import CallerId

        line = self.end.line

        def ring() -> None:
            self.modem.engine.start_ringing(CallerId(number=caller), line.rings, line.ring_interval)

        self.modem.call_later(0.0, ring)

    def far_end_gone(self) -> None:
        def gone() -> None:
            engine = self.modem.engine
            if engine.call_state == "ringing":
                engine.caller_hangs_up()
            engine.fax1.far_end_gone()
            engine.fax2.line_update()

        self.modem.call_later(0.0, gone)


def _attach(who: SimulatedModem | Attachable, end: LineEnd) -> None:
    from .modem import SimulatedModem

    if isinstance(who, SimulatedModem):
        end.owner = _ModemOwner(who, end)
        with who._lock:
            who.engine.fax1.end = end
            who.engine.fax2.end = end
    else:
        who.attach(end)


__all__ = [
    "ALL_CODES",
    "BPS",
    "TRAINING_S",
    "V21",
    "Attachable",
    "Carrier",
    "EndOwner",
    "LineEnd",
    "SentFrame",
    "VirtualLine",
]
