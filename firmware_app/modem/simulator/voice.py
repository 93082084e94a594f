"""Voice data mode of the simulated analog modems (ITU-T V.253): AT+VTX, AT+VRX, AT+VTR,
DLE events.

`AT+VTX` -> CONNECT, then the host's DLE-shielded audio is collected (per play, unescaped)
until `DLE ETX`; `AT+VRX` -> CONNECT, then a scripted caller's audio streams in the chosen
+VSM codec with DLE doubling and DLE event codes, until the host's `DLE !`; `AT+VTR` ->
CONNECT, then both at once (the caller's audio and events to the host, the host's audio
collected) until the host's `DLE ^`. No file descriptors or threads here: bytes go out
through the engine's host, time via `call_later`.
"""

# Sources for what the modem side does:
# - ITU-T V.253 (02/98) 10.1.8 +VSM, 10.2.1 DLE shielding (<DLE><DLE> is a 0x10 sample,
#   <DLE><ETX> ends transmit data, <DLE><CAN> clears the transmit buffer, <DLE><!> ends
#   receive), table 15 event codes (0-9 * # A-D, b busy, c CNG, d dial tone, l loop break,
#   s silence); after <DLE><ETX> in transmit the modem plays what it holds, then sends OK.
# - REFERENCE.md 1: Zoom 3095 / Conexant CX93010 end play/record with DLE DLE DLE ETX
#   (callattendant #94); USR5637 firmware 1.2.23+ wants AT+VLS=5 before AT+VRX.
# - Silicon Labs AN93 table 112 (Si2493/Conexant-class voice): DTMF framed as DLE / digit
#   DLE ~; a held key repeats about every 70 ms (REFERENCE.md 1).
# - AT+VTR (voice duplex): U.S. Robotics 56K command reference, Voice Commands, "+VTR - Start
#   Voice Transmission and Reception"; Conexant "AT Commands for CX930xx Modem Reference
#   Manual" (102752B) 5-6, the same text: CONNECT, then DLE-shielded voice data both ways in
#   the +VSM format; the DTE leaves with the shielded code <DLE><^> (or the modem's
#   inactivity timer ends it); the modem then ends its data with <DLE><ETX> and sends OK once
#   its transmit buffer has played. Neither manual says what DLE ETX, CAN or ! do in the
#   duplex state: here only DLE ^ ends it (CAN still clears the transmit buffer), and no
#   AT+VLS=5 is needed first (the USR's VLS quirk is documented for AT+VRX only).
# - Buffer sizes are not published for either modem; 4 KiB is illustrative.
# - Hook flash (AT+VTS={!,<n>}, REFERENCE.md 1) on a PBX or Centrex line: the caller is put on
#   hold and the exchange gives recall dial tone ("stutter" then steady, as Centrex lines in
#   North America do; E.180 supplement 2 lists the tone plans), so AT+VRX then carries that
#   tone; a second flash takes the caller back. A plain line ignores the flash
#   (`extras.flash_transfers = False`). Whether a modem also reports the tone as DLE d in
#   AT+VRX is not documented per model: off unless `extras.flash_reports_dle_d`.

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from ...media import codecs, tones

if TYPE_CHECKING:
    from .engine import Engine

Samples = npt.NDArray[np.int16]
RATE = 8000
DLE = 0x10
ETX = 0x03
CAN = 0x18
TICK = 0.02  # seconds of real time between audio deliveries while recording
KEY_REPEAT = 0.07  # a held key is reported again this often (REFERENCE.md 1)
BUFFER_BYTES = 4096
FLASH_TONE_DELAY = 0.3  # seconds from a hook flash to the exchange's recall dial tone
STUTTER = 0.3  # seconds of 0.1 s on / 0.1 s off before the recall dial tone goes steady
# With +IFC <DTE_by_DCE> 1 the modem stops the host with XOFF (DC3) when its transmit buffer
# is this full and lets it go on with XON (DC1) once it has drained to XON_AT (V.250 6.2.12;
# the marks are the simulator's own: no manual gives them).
XOFF_AT = BUFFER_BYTES // 2
XON_AT = BUFFER_BYTES // 4

HangupHow = Literal["loop_break", "dial_tone", "busy", "silence"]

# +VSM method -> sample codec, per personality (the method numbers differ between vendors:
# REFERENCE.md 1 "Voice mode"). ADPCM methods are not simulated: AT+VTX/+VRX answer ERROR.
CODECS: dict[str, dict[str, codecs.Codec]] = {
    "usr5637": {"128": "u8", "129": "s16le", "130": "alaw", "131": "ulaw"},
    "cx93010": {"0": "s8", "1": "u8", "131": "ulaw", "132": "alaw"},
    "mt9234mu": {"128": "u8", "129": "s16le", "130": "alaw", "131": "ulaw"},
}


@dataclasses.dataclass(slots=True)
class _Item:
    kind: Literal["say", "press", "hangup", "fax"]
    at: float
    after: str
    audio: Samples | None = None
    digits: str = ""
    hold: float = 0.1
    gap: float = 0.3
    dle: bool = True
    inband: bool = True
    how: tuple[HangupHow, ...] = ()


class VoiceCaller:
    """A scripted caller for the next answered voice call.

    Times are seconds after an anchor: `after="answer"`, `"play"` / `"record"` /
    `"duplex"` (the first AT+VTX / AT+VRX / AT+VTR of the call) or `"play:2"`, `"record:2"`
    (the second one). Audio the
    caller speaks while nobody records is lost, as on a real line.
    """

    def __init__(self, *, noise_dbfs: float = -66.0) -> None:
        self.items: list[_Item] = []
        self.noise_dbfs = noise_dbfs

    def say(self, audio: Samples, *, at: float = 0.0, after: str = "record") -> VoiceCaller:
        self.items.append(_Item("say", at, after, audio=np.asarray(audio, dtype=np.int16)))
        return self

    def press(
        self,
        digits: str,
        *,
        at: float = 0.0,
        after: str = "answer",
        hold: float = 0.1,
        gap: float = 0.3,
        dle: bool = True,
        inband: bool = True,
    ) -> VoiceCaller:
        """Keys as DLE digit events (`dle`) and/or DTMF tones in the audio (`inband`)."""
        self.items.append(
            _Item("press", at, after, digits=digits, hold=hold, gap=gap, dle=dle, inband=inband)
        )
        return self

    def hang_up(
        self,
        *,
        at: float = 0.0,
        after: str = "answer",
        how: tuple[HangupHow, ...] = ("loop_break",),
    ) -> VoiceCaller:
        """`loop_break` sends DLE l; `dial_tone`/`busy` put that tone in the audio after it;
        `silence` leaves only line hiss."""
        self.items.append(_Item("hangup", at, after, how=tuple(how)))
        return self

    def send_fax_tone(
        self, *, at: float = 0.0, after: str = "answer", dle: bool = True, inband: bool = True
    ) -> VoiceCaller:
        """A fax machine's CNG: DLE c and/or 1100 Hz bursts (T.30 5.2.1)."""
        self.items.append(_Item("fax", at, after, dle=dle, inband=inband))
        return self


@dataclasses.dataclass(slots=True)
class Played:
    """What the host sent in one AT+VTX: unescaped bytes in `codec`, how it ended."""

    codec: str
    data: bytearray = dataclasses.field(default_factory=bytearray)
    ended: str = ""  # "etx", "triple_etx", "abort", "duplex_end", "hangup"
    overruns: int = 0
    seconds_real: float = 0.0


@dataclasses.dataclass(slots=True)
class Recorded:
    """What the modem sent in one AT+VRX: the audio bytes (before DLE doubling)."""

    codec: str
    data: bytearray = dataclasses.field(default_factory=bytearray)
    events: list[tuple[float, bytes]] = dataclasses.field(default_factory=list)
    ended: str = ""


class VoiceSim:
    """Per-modem voice state: the current call's clock, data mode, and what was exchanged."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self.caller: VoiceCaller | None = None
        self.speed = 1.0
        # The modem's audio clock against the nominal rate (< 1: slower, so the transmit
        # buffer fills when the host keeps to the nominal rate).
        self.drain_rate = 1.0
        self.xoffs = 0  # XOFFs sent in the transmit state
        self._xoff = False
        self.played: list[Played] = []
        self.recorded: list[Recorded] = []
        self.mode: Literal["", "vtx", "vrx", "vtr"] = ""
        self.port = 0
        self._gen = 0
        self._answered_at: float | None = None
        self._anchors: dict[str, float] = {}
        self._counts = {"play": 0, "record": 0, "duplex": 0}
        self._sent_events: set[tuple[int, int]] = set()  # (item index, event index) sent
        self._held_dle = False
        self._dle = False
        self._level = 0.0
        self._level_at = 0.0
        self._pos = 0  # samples of caller audio generated so far (stream)
        self._flashes: list[float] = []  # stream times of this call's hook flashes
        self._mode_started = 0.0
        self._play_started = 0.0
        # When (self.clock) the line first carried the caller's hang-up (DLE l, the start of
        # a dial or busy tone, or hiss): benchmarks time the host's reaction from here.
        self.hangup_sent: float | None = None

    # -- call life --------------------------------------------------------------------------

    def answered(self) -> None:
        self._gen += 1
        self._answered_at = self.clock()
        self._anchors = {"answer": 0.0}
        self._counts = {"play": 0, "record": 0, "duplex": 0}
        self._sent_events = set()
        self._pos = 0
        self._flashes = []
        self.mode = ""
        self.hangup_sent = None

    def flash(self) -> None:
        """A hook flash (AT+VTS={!,n}) during the call: on a PBX line the caller is held
        and recall dial tone follows (see `_audio`); the next flash takes the caller back."""
        if self._answered_at is not None and self.engine.extras.flash_transfers:
            self._flashes.append(self.now())

    def _holds(self) -> list[tuple[float, float]]:
        """(start, end) stream times while the caller is held after a flash."""
        f = self._flashes
        return [(f[i], f[i + 1] if i + 1 < len(f) else float("inf")) for i in range(0, len(f), 2)]

    def ended(self) -> None:
        """Our side hung up (ATH, AT+VLS=0)."""
        self._gen += 1
        self._answered_at = None
        self.mode = ""

    def caller_hangs_up(self) -> None:
        """The scripting API's caller_hangs_up() during a voice call: a loop break now."""
        if self._answered_at is None:
            return
        if self.caller is None:
            self.caller = VoiceCaller()
        self.caller.items.append(_Item("hangup", self.now(), "answer", how=("loop_break",)))

    @property
    def in_call(self) -> bool:
        return self._answered_at is not None

    def now(self) -> float:
        """Stream seconds since the answer (real seconds times `speed`)."""
        if self._answered_at is None:
            return 0.0
        return (self.clock() - self._answered_at) * self.speed

    def _anchor(self, name: str) -> None:
        self._counts[name] += 1
        n = self._counts[name]
        t = self.now()
        self._anchors[f"{name}:{n}"] = t
        if n == 1:
            self._anchors[name] = t

    def _resolve(self, item: _Item) -> float | None:
        base = self._anchors.get(item.after)
        return None if base is None else base + item.at

    def hangup_time(self) -> tuple[float, _Item] | None:
        if self.caller is None:
            return None
        found = [
            (t, it)
            for it in self.caller.items
            if it.kind == "hangup"
            if (t := self._resolve(it)) is not None
        ]
        return min(found, key=lambda x: x[0]) if found else None

    # -- commands ---------------------------------------------------------------------------

    def codec(self) -> codecs.Codec | None:
        cmid = self.engine.vsm.split(",")[0]
        return CODECS.get(self.engine.p.name, {}).get(cmid)

    def start_play(self, port: int) -> bool:
        codec = self.codec()
        if codec is None or not self.in_call:
            return False
        self.mode = "vtx"
        self.port = port
        self._anchor("play")
        self._mode_started = self.now()
        self.played.append(Played(codec=codec))
        self._held_dle = False
        self._dle = False
        self._level = 0.0
        self._level_at = self.clock()
        self._play_started = self.clock()
        self._xoff = False
        self._schedule_tick()
        return True

    def start_record(self, port: int) -> bool:
        codec = self.codec()
        if codec is None or not self.in_call:
            return False
        self.mode = "vrx"
        self.port = port
        self._anchor("record")
        self._mode_started = self.now()
        self.recorded.append(Recorded(codec=codec))
        self._dle = False
        self._held_dle = False
        self._pos = int(self.now() * RATE)
        self._schedule_tick()
        return True

    def start_duplex(self, port: int) -> bool:
        """AT+VTR: the caller's audio and events go to the host as in AT+VRX while the host's
        audio is taken as in AT+VTX (one `Played` and one `Recorded` per duplex state)."""
        codec = self.codec()
        if codec is None or not self.in_call:
            return False
        self.mode = "vtr"
        self.port = port
        self._anchor("duplex")
        self._mode_started = self.now()
        self.played.append(Played(codec=codec))
        self.recorded.append(Recorded(codec=codec))
        self._dle = False
        self._held_dle = False
        self._level = 0.0
        self._level_at = self.clock()
        self._play_started = self.clock()
        self._pos = int(self.now() * RATE)
        self._schedule_tick()
        return True

    def vtr_command(self, port: int, cmd: object) -> tuple[list[str], str]:
        """The engine's `+VTR` handler: CONNECT in voice mode during a call, else ERROR."""
        form = getattr(cmd, "form", "")
        if form != "exec" or self.engine.fclass != "8" or not self.start_duplex(port):
            return [], "ERROR"
        return [], "CONNECT"

    # -- bytes from the host ----------------------------------------------------------------

    def receive(self, data: bytes) -> bytes:
        """Host bytes in voice data mode; returns bytes after the end (command text)."""
        triple = self.engine.quirks.get("triple_dle", False)
        for i, b in enumerate(data):
            if self.mode == "":
                return data[i:]
            if not self._dle:
                if b == DLE:
                    self._dle = True
                else:
                    self._flush_held()
                    self._sample(b)
                continue
            self._dle = False
            if b == DLE:
                self._flush_held()
                if triple:
                    self._held_dle = True  # maybe the first of DLE DLE DLE <code>
                else:
                    self._sample(DLE)
                continue
            shielded = self._held_dle
            if triple and not shielded and b in (ETX, CAN, ord("!"), ord("^")):
                # The Conexant acts only on DLE DLE DLE <code> (callattendant #94).
                self._flush_held()
                continue
            self._held_dle = False
            if b == ETX and self.mode == "vtx":
                self._end_play("triple_etx" if shielded else "etx")
            elif b == CAN and self.mode == "vtx":
                self._level = 0.0
                self.played[-1].ended = "abort"
            elif b == CAN and self.mode == "vtr":
                self._level = 0.0  # clears the transmit buffer; the duplex state goes on
            elif b == ord("!") and self.mode == "vrx":
                self._end_record("stopped")
            elif b == ord("^") and self.mode == "vtr":
                self._end_duplex()
            elif shielded:
                self._sample(DLE)
        return b""

    def _flush_held(self) -> None:
        if self._held_dle:
            self._held_dle = False
            self._sample(DLE)

    def _drained(self, codec: str) -> float:
        """Bring the transmit buffer's level to now; returns it."""
        now = self.clock()
        rate = RATE * _width(codec) * self.speed * self.drain_rate
        self._level = max(0.0, self._level - (now - self._level_at) * rate)
        self._level_at = now
        return self._level

    def _sample(self, b: int) -> None:
        if self.mode not in ("vtx", "vtr"):
            return
        play = self.played[-1]
        self._drained(play.codec)
        if self._level + 1 > BUFFER_BYTES:
            play.overruns += 1
            return
        self._level += 1
        play.data.append(b)
        xon_xoff = self.mode == "vtx" and self.engine.ifc[1] == 1
        if xon_xoff and not self._xoff and self._level >= XOFF_AT:
            self._xoff = True
            self.xoffs += 1
            self.engine.host.write(self.port, b"\x13")
            self._xon_later(play.codec)

    def _xon_later(self, codec: str) -> None:
        """XON once the buffer has drained to XON_AT (or the transmit state ended)."""
        gen, count = self._gen, len(self.played)
        rate = RATE * _width(codec) * self.speed * self.drain_rate
        wait = max(0.0, (self._level - XON_AT) / rate)

        def check() -> None:
            if gen != self._gen or count != len(self.played) or self.mode != "vtx":
                return
            if self._drained(codec) > XON_AT:
                self._xon_later(codec)
                return
            self._xoff = False
            self.engine.host.write(self.port, b"\x11")

        self.engine.host.call_later(wait + 0.001, check)

    def _end_play(self, how: str) -> None:
        play = self.played[-1]
        if not play.ended:
            play.ended = how
        play.seconds_real = self.clock() - self._play_started
        self.mode = ""
        rate = RATE * _width(play.codec) * self.drain_rate
        wait = 0.0 if play.ended == "abort" else self._drained(play.codec) / rate
        gen = self._gen
        port = self.port

        def ok() -> None:
            if gen == self._gen:
                self.engine.host.write(port, b"\r\nOK\r\n")

        self.engine.host.call_later(wait / self.speed, ok)

    def _end_record(self, how: str) -> None:
        rec = self.recorded[-1]
        rec.ended = how
        self._deliver()  # audio up to now
        self.mode = ""
        end = b"\x10\x10\x10\x03" if self.engine.quirks.get("triple_dle") else b"\x10\x03"
        self.engine.host.write(self.port, end + b"\r\nOK\r\n")

    def _end_duplex(self) -> None:
        """The host's DLE ^: the caller's audio up to now, then (once the transmit buffer has
        played, per the +VTR text of the USR and Conexant references) DLE ETX and OK."""
        play, rec = self.played[-1], self.recorded[-1]
        play.ended = play.ended or "duplex_end"
        play.seconds_real = self.clock() - self._play_started
        rec.ended = "stopped"
        self._deliver()
        self.mode = ""
        now = self.clock()
        drained = (now - self._level_at) * RATE * _width(play.codec) * self.speed
        left = max(0.0, self._level - drained)
        wait = left / (RATE * _width(play.codec))
        end = b"\x10\x10\x10\x03" if self.engine.quirks.get("triple_dle") else b"\x10\x03"
        gen, port = self._gen, self.port

        def finish() -> None:
            if gen == self._gen:
                self.engine.host.write(port, end + b"\r\nOK\r\n")

        self.engine.host.call_later(wait / self.speed, finish)

    # -- the caller's side ------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        gen = self._gen
        mode_count = sum(self._counts.values())
        self.engine.host.call_later(TICK, lambda: self._tick(gen, mode_count))

    def _tick(self, gen: int, mode_count: int) -> None:
        if gen != self._gen or self.mode == "" or mode_count != sum(self._counts.values()):
            return
        if self.mode in ("vrx", "vtr"):
            self._deliver()
        else:
            codes = self._due_codes(self.now())
            if codes:
                self.engine.host.write(self.port, b"".join(c for _, c in codes))
        self._schedule_tick()

    def _events(self) -> list[tuple[float, bytes, tuple[int, int]]]:
        """Every DLE code the script makes, with its stream time and an identity."""
        out: list[tuple[float, bytes, tuple[int, int]]] = []
        if self.engine.extras.flash_reports_dle_d:
            for k, (held, _) in enumerate(self._holds()):
                out.append((held + FLASH_TONE_DELAY + STUTTER + 0.5, b"\x10d", (-1 - k, 0)))
        if self.caller is None:
            out.sort(key=lambda e: e[0])
            return out
        framed = self.engine.quirks.get("dtmf_framing", False)
        for i, item in enumerate(self.caller.items):
            t0 = self._resolve(item)
            if t0 is None:
                continue
            if item.kind == "press" and item.dle:
                k = 0
                for n, d in enumerate(item.digits):
                    start = t0 + n * (item.hold + item.gap)
                    reps = max(1, int(item.hold / KEY_REPEAT))
                    for r in range(reps):
                        code = b"\x10" + d.encode()
                        if framed and r == 0:
                            code = b"\x10/" + code
                        out.append((start + r * KEY_REPEAT, code, (i, k)))
                        k += 1
                    if framed:
                        out.append((start + item.hold, b"\x10~", (i, k)))
                        k += 1
            elif item.kind == "hangup" and "loop_break" in item.how:
                if not self.engine.quirks.get("no_loop_break"):
                    out.append((t0, b"\x10l", (i, 0)))
            elif item.kind == "fax" and item.dle:
                out.append((t0 + 0.5, b"\x10c", (i, 0)))
        out.sort(key=lambda e: e[0])
        return out

    def _due_codes(self, until: float) -> list[tuple[float, bytes]]:
        due: list[tuple[float, bytes]] = []
        gone = self.hangup_time()
        for t, code, ident in self._events():
            if t > until or ident in self._sent_events:
                continue
            if gone is not None and t > gone[0] and code != b"\x10l":
                continue  # nobody presses keys after hanging up
            self._sent_events.add(ident)
            if t < self._mode_started and code != b"\x10l":
                continue  # pressed in command state: the report is lost
            due.append((t, code))
        return due

    def _deliver(self) -> None:
        """Send the caller's audio from the last position to now, with due DLE codes."""
        rec = self.recorded[-1]
        end = int(self.now() * RATE)
        if end <= self._pos:
            return
        start = self._pos
        self._pos = end
        audio = self._audio(start, end)
        codes = self._due_codes(end / RATE)
        gone = self.hangup_time()
        if self.hangup_sent is None and gone is not None and end / RATE >= gone[0]:
            self.hangup_sent = self.clock()
        out = bytearray()
        cut = start
        for t, code in codes:
            at = min(max(int(t * RATE), cut), end)
            out += self._encode(rec, audio[cut - start : at - start])
            out += code
            rec.events.append((t, code))
            cut = at
        out += self._encode(rec, audio[cut - start :])
        self.engine.host.write(self.port, bytes(out))

    def _encode(self, rec: Recorded, samples: Samples) -> bytes:
        if samples.size == 0:
            return b""
        raw = codecs.encode(samples, rec.codec)  # type: ignore[arg-type]
        rec.data += raw
        return raw.replace(b"\x10", b"\x10\x10")

    def _audio(self, start: int, end: int) -> Samples:
        """The line's audio for samples [start, end) of the call."""
        n = end - start
        mix = np.zeros(n, dtype=np.float64)
        caller = self.caller
        if caller is not None and caller.noise_dbfs > -100:
            mix += tones.noise(n / RATE, level_dbfs=caller.noise_dbfs, seed=start % 9973)[:n]
        gone = self.hangup_time()
        if caller is not None:
            for item in caller.items:
                t0 = self._resolve(item)
                if t0 is None:
                    continue
                seg: Samples | None = None
                if item.kind == "say" and item.audio is not None:
                    seg = item.audio
                elif item.kind == "press" and item.inband:
                    on = max(40, int(item.hold * 1000))
                    seg = tones.dtmf(item.digits, on_ms=on, off_ms=int(item.gap * 1000))
                elif item.kind == "fax" and item.inband:
                    seg = tones.cng(7.0)
                if seg is not None:
                    _add(mix, seg, int(t0 * RATE) - start)
        for held, back in self._holds():
            a = max(0, int(held * RATE) - start)
            b = n if back == float("inf") else min(n, int(back * RATE) - start)
            if a >= b:
                continue
            mix[a:b] = 0.0  # the caller is on hold
            tone_start = int((held + FLASH_TONE_DELAY) * RATE)
            t = np.arange(start + a, start + b) - tone_start
            mix[a:b] += _recall_dial_tone(t, self.engine.extras.flash_dial_tone)
        if gone is not None:
            t_gone, item = gone
            first = max(0, int(t_gone * RATE) - start)
            if first < n:
                mix[first:] = 0.0
                after = n - first
                offset = start + first - int(t_gone * RATE)
                if "dial_tone" in item.how:
                    tone = tones.dial_tone((offset + after) / RATE)
                    mix[first:] += tone[offset : offset + after]
                elif "busy" in item.how:
                    tone = tones.busy_tone((offset + after) / RATE)
                    mix[first:] += tone[offset : offset + after]
        return np.clip(np.round(mix), -32768, 32767).astype(np.int16)


def _recall_dial_tone(t: npt.NDArray[np.int64], plan: str) -> npt.NDArray[np.float64]:
    """The exchange's tone after a hook flash at sample indices `t` (0 = the tone's start;
    nothing before it): 0.1 s on / 0.1 s off for `STUTTER` s, then steady dial tone of
    `plan` at -13 dBFS per tone (`tones.dial_tone`)."""
    freqs = tones.DIAL_FREQUENCIES.get(plan, tones.DIAL_FREQUENCIES["na"])
    seconds = t / RATE
    x = np.zeros(t.size, dtype=np.float64)
    for f in freqs:
        x += 32767 * 10 ** (-13.0 / 20) * np.sin(2 * np.pi * f * seconds)
    x[(t < 0) | ((seconds < STUTTER) & ((seconds % 0.2) >= 0.1))] = 0.0
    return x


def _add(mix: npt.NDArray[np.float64], seg: Samples, offset: int) -> None:
    n = mix.size
    a = max(0, offset)
    b = min(n, offset + seg.size)
    if a < b:
        mix[a:b] += seg[a - offset : b - offset]


def _width(codec: str) -> int:
    return 2 if codec == "s16le" else 1
