"""Class 1 fax (ITU-T T.31) in the analog personalities: AT+FTH, +FRH, +FTM, +FRM, +FTS,
+FRS and fax calls (ATD, ATA) over a virtual line (fax_line.py). The host runs T.30; the
simulated modem only moves HDLC frames and high-speed data, with the result codes and data
framing real Class 1 modems use:

- `AT+FTH=3` -> CONNECT at once (V.21 flags go out); the host's frame (DLE-shielded, ended
  by DLE ETX) is sent with the FCS the modem adds; then CONNECT when the frame's final bit
  is 0 (the next frame may follow), OK when it is 1, once the frame is through. DLE ETX
  alone (a null frame) ends the carrier with OK. Data after DLE ETX is ignored until that
  result; 5 s without data after CONNECT: the carrier drops, ERROR.
- `AT+FRH=3` -> CONNECT when V.21 flags are heard; the frame's octets and its two FCS
  octets (DLE doubled), DLE ETX, then OK (FCS good) or ERROR (bad). The modem keeps
  listening to the same carrier: the next `AT+FRH=3` gets CONNECT at once and the next
  frame. A high-speed carrier instead: +FCERROR. No carrier within S7 seconds, or the call
  gone: NO CARRIER.
- `AT+FTM=<code>` -> CONNECT; the host's data until DLE ETX; OK once it has been sent at
  the modulation's rate. `AT+FRM=<code>` -> CONNECT after the training, the data (DLE
  doubled) as it comes, DLE ETX and NO CARRIER when the carrier drops; V.21 or another
  modulation on the line: +FCERROR. A code the modem does not have: ERROR.
- Any character from the host while `+FRH`, `+FRM` or `+FRS` waits or receives ends it: OK.
- `AT+FTS=<n>`: silence for n x 10 ms, then OK. `AT+FRS=<n>`: OK once the line has been
  quiet for n x 10 ms.
- `AT+FTM=?`, `AT+FRM=?`: the modem's codes (`modulations`, from the personality);
  `AT+FTH=?`, `AT+FRH=?`: 3.
- `ATD` in Class 1 rings the other end; CONNECT when its V.21 flags are heard after its
  answer tone (the host then reads the frames that follow, as after `AT+FRH=3`); BUSY when
  that end is in a call; NO CARRIER when nobody answers within S7. `ATA` on a call from the
  line (ringing, or a voice call already answered: the calling-tone hand-over) sends the
  answer tone, then flags: CONNECT, the modem in V.21 transmit as after `AT+FTH=3`.

Sources: ITU-T T.31 8.3 (as quoted in the Tainet T-288C manual, appendix A3.3.6: FCS
octets passed to the DTE, DLE ETX, OK/ERROR, buffering for the next +FRH, any character
aborts with OK); U.S. Robotics 56K command reference, "Fax Class 1 and Fax Class 1.0
Commands" (+FTH CONNECT/OK/ERROR and its 5 s rule, +FRH CONNECT/+FCERROR/NO CARRIER/OK,
ERROR when on-hook, S7 for the carrier); Conexant "Commands for Host-Processed Modems"
100498E 4-12 (+FRH result codes, the same); REFERENCE.md 1 "Fax" and 5 (the codes iaxmodem
lists for +FTM=?/+FRM=?, FCS octets passed with received frames, NO CARRIER after +FRM
data).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .commandline import Command
from .fax_line import ALL_CODES, CED_S, V21, Carrier, LineEnd

if TYPE_CHECKING:
    from .engine import Engine

Reply = tuple[list[str], str | None]

DLE, ETX = 0x10, 0x03
FTH_IDLE_S = 5.0  # USR: no data this long after CONNECT to +FTH -> ERROR
COMMANDS = frozenset({"+FTH", "+FRH", "+FTM", "+FRM", "+FTS", "+FRS"})


def _crc16(data: bytes) -> int:
    """HDLC FCS (ISO 3309: CRC-16, reflected polynomial 0x8408, preset and inverted)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def with_fcs(frame: bytes, good: bool = True) -> bytes:
    fcs = _crc16(frame) ^ (0 if good else 0x5A5A)
    return frame + bytes((fcs & 0xFF, fcs >> 8))


def shield(data: bytes) -> bytes:
    return data.replace(b"\x10", b"\x10\x10")


class Class1Sim:
    """The Class 1 side of one simulated analog modem (one per engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.end: LineEnd | None = None  # set by VirtualLine
        self.modulations: tuple[int, ...] = tuple(engine.p.fax1_modulations or ALL_CODES)
        self.mode = ""
        self.port = 0
        self.gen = 0  # bumps whenever the mode changes: stale timers compare
        self.tx: Carrier | None = None
        self.rx: Carrier | None = None  # the V.21 carrier frames come from (kept between +FRH)
        self.rx_frame = 0
        self.rx_code = 0
        self.rx_pos = 0
        self.rx_connected = False
        self._frs_ms = 0
        self._quiet_since: float | None = None
        self._buf = bytearray()
        self._dle = False
        self._waiting_for = 0.0
        # What went out in the current call, for tests: ("frame", octets) and ("data",
        # code, carrier); cleared when a call starts.
        self.sent: list[tuple[object, ...]] = []

    # -- state ------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.engine.fclass in ("1", "1.0")

    @property
    def in_call(self) -> bool:
        return self.end is not None and self.end.in_call and self.end.offhook

    def _set(self, mode: str) -> None:
        self.mode = mode
        self.gen += 1
        self._waiting_for = 0.0

    def _write(self, data: bytes) -> None:
        self.engine.host.write(self.port, data)

    def _result(self, final: str) -> None:
        self._write(self.engine._frame(self.port, [], final))

    def _finish(self, final: str) -> None:
        """Back to command mode with a final result."""
        self._set("")
        self._result(final)

    def _at(self, when: float, fn: Callable[[], None]) -> None:
        """Run `fn` at monotonic time `when`, unless the mode changed meanwhile."""
        gen = self.gen

        def run() -> None:
            if gen == self.gen:
                fn()

        self.engine.host.call_later(max(0.0, when - time.monotonic()), run)

    def _wake(self, when: float) -> None:
        if when != self._waiting_for:
            self._waiting_for = when
            self._at(when, self.update)

    @property
    def _scale(self) -> float:
        return self.end.scale if self.end is not None else 1.0

    # -- calls ------------------------------------------------------------------------------

    def can_answer(self) -> bool:
        """A fax call from the line rings here, or is up already (voice answered first)."""
        end = self.end
        return end is not None and (end.ringing or end.connected)

    def answer(self, port: int) -> Reply:
        """ATA: off-hook, the answer tone, then V.21 flags and CONNECT (HDLC transmit)."""
        end = self.end
        assert end is not None
        if not (end.answer() or end.connected):
            return [], "NO CARRIER"
        self.port = port
        self.engine.ring_generation += 1
        self.engine.call_state = "active"
        self.engine.voice.ended()
        self.rx = None
        self.sent = []
        self._set("answer")
        self.tx = end.start_carrier("v21", V21, lead=CED_S)
        self._at(self.tx.started, self._answered)
        return [], None

    def _answered(self) -> None:
        self._set("fth")
        self._buf.clear()
        self._dle = False
        self._result("CONNECT")
        self._idle_timer()

    def answered_by_voice(self) -> None:
        """The host answered a line call in voice mode: the call is up, no fax signal yet."""
        if self.end is not None and self.end.ringing:
            self.end.answer()

    def dial(self, port: int, number: str) -> Reply:
        end = self.end
        if end is None:
            return [], "NO CARRIER"
        busy = end.dial()
        if busy:
            return [], busy
        self.port = port
        self.engine.call_state = "active"
        self._set("dial")
        self.rx = None
        self.sent = []
        self._at(time.monotonic() + self._s7(), lambda: self._give_up("NO CARRIER"))
        return [], None

    def _s7(self) -> float:
        return float(self.engine.s_regs.get(7, 50) or 50)

    def _give_up(self, final: str) -> None:
        if self.mode == "dial" and self.end is not None:
            self.end.hang_up()
            self.engine.call_state = "idle"
        self._finish(final)

    def ended(self) -> None:
        """ATH, DTR off, power: on-hook."""
        if self.end is not None:
            self.end.hang_up()
        self._set("")
        self.rx = self.tx = None

    def far_end_gone(self) -> None:
        """The other end hung up: a receive or a call in progress ends with NO CARRIER."""
        if self.mode == "dial":
            self._give_up("NO CARRIER")  # nobody answered: back on-hook
        elif self.mode == "answer":
            self._finish("NO CARRIER")
        elif self.mode in ("frh", "frm", "frs"):
            self.update()  # what was through before the hang-up is still delivered

    # -- commands ---------------------------------------------------------------------------

    def _codes(self, cmd: Command, hdlc: bool) -> Reply | int:
        if not self.active:
            return [], "ERROR"
        if cmd.form == "test":
            return ["3" if hdlc else ",".join(str(c) for c in self.modulations)], "OK"
        if cmd.form != "set":
            return [], "ERROR"
        try:
            code = int(cmd.args)
        except ValueError:
            return [], "ERROR"
        if (code != V21) if hdlc else (code not in self.modulations):
            return [], "ERROR"
        if self.end is None or self.engine.call_state != "active":
            return [], "ERROR"  # USR: ERROR when issued on-hook
        return code

    def fth(self, port: int, cmd: Command) -> Reply:
        got = self._codes(cmd, hdlc=True)
        if not isinstance(got, int):
            return got
        assert self.end is not None
        self.port = port
        self.tx = self.end.start_carrier("v21", V21)
        self._set("fth")
        self._buf.clear()
        self._dle = False
        self._idle_timer()
        return [], "CONNECT"

    def ftm(self, port: int, cmd: Command) -> Reply:
        got = self._codes(cmd, hdlc=False)
        if not isinstance(got, int):
            return got
        assert self.end is not None
        self.port = port
        self.tx = self.end.start_carrier("hs", got)
        self.sent.append(("data", got, self.tx))
        self._set("ftm")
        self._dle = False
        return [], "CONNECT"

    def frh(self, port: int, cmd: Command) -> Reply:
        got = self._codes(cmd, hdlc=True)
        if not isinstance(got, int):
            return got
        self.port = port
        if self._gone():
            return [], "NO CARRIER"
        self._set("frh")
        self._listen()
        if self.rx is not None:  # still buffering the carrier of the last frame
            self.rx_connected = True
            self._at(time.monotonic(), self.update)
            return [], "CONNECT"
        self.rx_connected = False
        self._at(time.monotonic(), self.update)
        return [], None

    def frm(self, port: int, cmd: Command) -> Reply:
        got = self._codes(cmd, hdlc=False)
        if not isinstance(got, int):
            return got
        self.port = port
        if self._gone():
            return [], "NO CARRIER"
        self.rx = None  # a change of modulation ends the HDLC receive (T.31)
        self.rx_code = got
        self.rx_pos = 0
        self.rx_connected = False
        self._set("frm")
        self._listen()
        self._at(time.monotonic(), self.update)
        return [], None

    def _gone(self) -> bool:
        """The call is over and nothing it carried is left to hear."""
        end = self.end
        if end is None:
            return True
        return not end.connected and self.rx is None and end.head() is None

    def _listen(self) -> None:
        """No carrier within S7: NO CARRIER (USR command reference, +FRH)."""
        self._waiting_for = 0.0

        def timeout() -> None:
            if not self.rx_connected:
                self._finish("NO CARRIER")

        self._at(time.monotonic() + self._s7(), timeout)

    def fts(self, port: int, cmd: Command) -> Reply:
        n = self._gap(cmd)
        if n is None:
            return [], "ERROR"
        self.port = port
        self._at(time.monotonic() + n * 0.01 * self._scale, lambda: self._result("OK"))
        return [], None

    def frs(self, port: int, cmd: Command) -> Reply:
        n = self._gap(cmd)
        if n is None:
            return [], "ERROR"
        self.port = port
        self._frs_ms = n * 10
        self._quiet_since = None
        self._set("frs")
        self._at(time.monotonic(), self.update)
        return [], None

    def _gap(self, cmd: Command) -> int | None:
        if not self.active or cmd.form not in ("set", "test"):
            return None
        if cmd.form == "test":
            return None
        try:
            n = int(cmd.args)
        except ValueError:
            return None
        return n if 0 <= n <= 255 else None

    # -- host data --------------------------------------------------------------------------

    @property
    def takes_data(self) -> bool:
        """Host bytes are data (or an abort), not command text."""
        return self.mode in ("fth", "fth_wait", "ftm", "ftm_wait", "frh", "frm", "frs", "dial")

    def receive(self, data: bytes) -> bytes:
        """Host bytes in data mode; returns what is command text again (nothing here)."""
        if self.mode in ("frh", "frm", "frs"):
            self.rx = None if self.mode == "frm" else self.rx
            self._finish("OK")  # T.31: any character ends the receive
            return b""
        if self.mode == "dial":
            self._give_up("NO CARRIER")
            return b""
        if self.mode in ("fth", "ftm"):
            self._data(data)
        return b""

    def _data(self, data: bytes) -> None:
        out = bytearray()
        for b in data:
            if not self._dle:
                if b == DLE:
                    self._dle = True
                else:
                    out.append(b)
                continue
            self._dle = False
            if b == DLE:
                out.append(DLE)
            elif b == ETX:
                self._take(bytes(out))
                self._ended()
                return  # what follows is ignored until the result (USR)
        self._take(bytes(out))

    def _take(self, data: bytes) -> None:
        if not data:
            return
        if self.mode == "fth":
            self._buf += data
        elif self.tx is not None and self.end is not None:
            self.end.add_data(self.tx, data)

    def _ended(self) -> None:
        end, tx = self.end, self.tx
        if end is None or tx is None:
            self._finish("ERROR")
            return
        if self.mode == "ftm":
            self._set("ftm_wait")
            self._at(end.end_carrier(tx), lambda: self._finish("OK"))
            return
        frame = bytes(self._buf)
        self._buf.clear()
        self._set("fth_wait")
        if not frame:  # a null frame ends the carrier
            self._at(end.end_carrier(tx), lambda: self._finish("OK"))
            return
        self.sent.append(("frame", frame))
        done = end.add_frame(tx, frame)
        if len(frame) > 1 and frame[1] & 0x10:  # final frame: the carrier ends after it
            self._at(end.end_carrier(tx), lambda: self._finish("OK"))
        else:
            self._at(done, self._next_frame)

    def _next_frame(self) -> None:
        self._set("fth")
        self._result("CONNECT")
        self._idle_timer()

    def _idle_timer(self) -> None:
        gen = self.gen
        count = len(self.sent)

        def idle() -> None:
            if gen == self.gen and self.mode == "fth" and not self._buf and count == len(self.sent):
                if self.end is not None and self.tx is not None:
                    self.end.end_carrier(self.tx)
                self._finish("ERROR")

        self.engine.host.call_later(FTH_IDLE_S, idle)

    # -- line events ------------------------------------------------------------------------

    def update(self) -> None:
        """Called when the line changed or a wake-up time came: deliver what is due."""
        self._waiting_for = 0.0
        if self.mode == "frh":
            self._frh()
        elif self.mode == "frm":
            self._frm()
        elif self.mode == "frs":
            self._frs()
        elif self.mode == "dial":
            self._dialling()

    def _dialling(self) -> None:
        end = self.end
        if end is None or not end.in_call:
            self._give_up("NO CARRIER")
            return
        if not end.connected:
            return
        head = end.head()
        if head is None or head.kind != "v21":
            return
        now = time.monotonic()
        if now < head.ready:
            self._wake(head.ready)
            return
        # The called fax's flags: CONNECT, and its frames follow as after AT+FRH=3.
        self._set("frh")
        self.rx, self.rx_frame, self.rx_connected = head, 0, True
        self._result("CONNECT")
        self._frh()

    def _frh(self) -> None:
        end = self.end
        if end is None or self._gone():
            self.rx = None
            self._finish("NO CARRIER")
            return
        now = time.monotonic()
        carrier = self.rx
        if carrier is None:
            carrier = end.head()
            if carrier is None:
                return
            if carrier.kind != "v21":
                self._finish("+FCERROR")  # a high-speed carrier: not what was asked for
                return
            self.rx, self.rx_frame = carrier, 0
        if not self.rx_connected:
            if now < carrier.ready:
                self._wake(carrier.ready)
                return
            self.rx_connected = True
            self._result("CONNECT")
        with end.line.lock:
            frames = list(carrier.frames)
            end_at = carrier.end_at
        if self.rx_frame < len(frames):
            frame = frames[self.rx_frame]
            if now < frame.done_at:
                self._wake(frame.done_at)
                return
            self.rx_frame += 1
            if frame.final or (end_at is not None and self.rx_frame >= len(frames)):
                end.consume(carrier)  # the carrier ends with it: the next +FRH waits anew
                self.rx = None
            self._set("")
            body = shield(with_fcs(frame.data, frame.good)) + bytes((DLE, ETX))
            self._write(body + self.engine._frame(self.port, [], "OK" if frame.good else "ERROR"))
            return
        if end_at is not None:
            if now < end_at:
                self._wake(end_at)
                return
            end.consume(carrier)  # the carrier dropped without (another) frame
            self.rx = None
            self._finish("NO CARRIER")

    def _frm(self) -> None:
        end = self.end
        if end is None or self._gone():
            self._finish("NO CARRIER")
            return
        now = time.monotonic()
        carrier = self.rx
        if carrier is None:
            carrier = end.head()
            if carrier is None:
                return
            if carrier.kind != "hs" or carrier.code != self.rx_code:
                self._finish("+FCERROR")  # V.21, or another modulation
                return
            self.rx = carrier
        if not self.rx_connected:
            if now < carrier.ready:
                self._wake(carrier.ready)
                return
            self.rx_connected = True
            self._result("CONNECT")
        with end.line.lock:
            data = bytes(carrier.data[self.rx_pos :])
            end_at = carrier.end_at
        if data:
            self.rx_pos += len(data)
            self._write(shield(data))
        if end_at is None:
            return
        if now < end_at:
            self._wake(end_at)
            return
        end.consume(carrier)
        self.rx = None
        self._set("")
        self._write(bytes((DLE, ETX)) + self.engine._frame(self.port, [], "NO CARRIER"))

    def _frs(self) -> None:
        end = self.end
        if end is None:
            self._finish("OK")
            return
        now = time.monotonic()
        if not end.quiet():
            self._quiet_since = None
            head = end.head()
            if head is not None and head.end_at is not None:
                self._wake(head.end_at)
            return
        if self._quiet_since is None:
            self._quiet_since = now
        due = self._quiet_since + self._frs_ms / 1000 * self._scale
        if now < due:
            self._wake(due)
            return
        self._finish("OK")


def handlers(sim: Class1Sim) -> dict[str, Callable[[int, Command], Reply]]:
    return {
        "+FTH": sim.fth,
        "+FRH": sim.frh,
        "+FTM": sim.ftm,
        "+FRM": sim.frm,
        "+FTS": sim.fts,
        "+FRS": sim.frs,
    }


__all__ = ["COMMANDS", "Class1Sim", "handlers", "shield", "with_fcs"]
