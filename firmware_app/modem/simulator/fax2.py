"""Class 2 and Class 2.0 fax in the analog personalities that offer it: a scripted fax machine
on the line that sends pages to us or takes ours.

Sources: REFERENCE.md 1 "Fax" (the 2.0 and 2 command and report spellings, DC2, DLE
escapes, +FET values, +FHS/+FHNG codes); ITU-T T.32 8.3-8.5 (AT+FDR, AT+FDT, DLE SUB in
2.0, page ends DLE , / DLE ; / DLE .); mgetty's doc/fhng-codes; efax(1) (Class 2 modems
send data MSB first and send XON after CONNECT to AT+FDT). Only what a host sees is
simulated: no T.30 frames, no modulation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .commandline import Command

if TYPE_CHECKING:
    from .engine import Engine

Reply = tuple[list[str], str]

DLE, ETX, SUB, DC2, XON = 0x10, 0x03, 0x1A, 0x12, 0x11
_REVERSE = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
# Settings the host may set; they are kept and read back, none changes the simulation.
SETTINGS = (
    "+FCR",
    "+FNR",
    "+FLI",
    "+FLID",
    "+FCC",
    "+FDCC",
    "+FBO",
    "+FBOR",
    "+FPI",
    "+FIE",
    "+FPS",
    "+FAP",
    "+FCQ",
    "+FCT",
    "+FHS",
    "+FMS",
    "+FRQ",
    "+FPHCTO",
    "+FAA",
    "+FLO",
    "+FCIG",
    "+FSPL",
    "+FTBC",
    "+FDIS",
    "+FDCS",
    "+FK",
    "+FBUG",
    "+FLNFC",
    "+FVRFC",
    "+FWDFC",
)
COMMANDS = frozenset(SETTINGS) | {"+FDR", "+FDT", "+FET"}


@dataclass
class FaxMachine:
    """The fax machine at the other end. Calling us: `pages` (T.4 data, first bit in the
    LSB) to send. Called by us: `received` collects the pages the host sent (un-escaped)."""

    remote_id: str = "+1 555 1001"
    pages: list[bytes] = field(default_factory=list)
    fine: bool = True
    received: list[bytes] = field(default_factory=list)
    post_page: list[int] = field(default_factory=list)  # 2.0 page ends: 0 MPS, 1 EOM, 2 EOP
    busy: bool = False  # ATD to it answers BUSY
    hangup_after: int | None = None  # drop the call after this many pages (status 90-ish)


class Class2Sim:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.machine: FaxMachine | None = None  # who calls, or who we can dial
        self.mode: Literal["", "fdr", "fdt"] = ""
        self.port = 0
        self.settings: dict[str, str] = {}
        self.connected = False
        self._page = 0
        self._buf = bytearray()
        self._dle = False
        self._sent_last = False
        self.time_scale = 1.0  # 0 makes page transmission instant (fast tests)

    @property
    def version(self) -> str:
        return self.engine.fclass

    @property
    def active(self) -> bool:
        return self.engine.fclass in ("2", "2.0")

    def _write(self, data: bytes) -> None:
        self.engine.host.write(self.port, data)

    def _lines(self, *lines: str) -> bytes:
        return "".join(f"\r\n{line}\r\n" for line in lines).encode("latin-1")

    def _name(self, v20: str, v2: str) -> str:
        return v20 if self.version == "2.0" else v2

    def _params(self) -> str:
        vr = 1 if (self.machine is None or self.machine.fine) else 0
        return f"{vr},5,0,2,0,0,0,0"  # fine/normal, 14400, A4, unlimited, MH, no ECM

    def _hangup(self, code: int) -> str:
        if self.version != "2.0":
            return f"+FHNG:{code}"
        # 2.0 writes the codes in two hex digits: below 100 they read as the decimal code,
        # 100-103 are A0-A3 (REFERENCE.md 1, mgetty doc/fhng-codes).
        return f"+FHS:{code:02d}" if code < 100 else f"+FHS:A{code - 100}"

    # -- settings and the call -------------------------------------------------------------

    @property
    def offered(self) -> bool:
        """The firmware has Class 2 (Conexant V0.2013 does, V0.2002 does not)."""
        p = self.engine.p
        options = p.fclass_options
        if self.engine.quirks.get("class2") and p.fclass_options_class2:
            options = p.fclass_options_class2
        return any(c in ("2", "2.0") for c in options.split(","))

    def setting(self, port: int, cmd: Command) -> Reply:
        if not self.offered:
            return [], "ERROR"
        if cmd.form == "set":
            self.settings[cmd.name] = cmd.args
            return [], "OK"
        if cmd.form == "read":
            return [self.settings.get(cmd.name, "0")], "OK"
        if cmd.form == "test":
            return [], "OK"
        return [], "OK"

    def answer(self, port: int) -> Reply:
        """ATA in Class 2/2.0 with a fax machine calling: phase B reports, then OK."""
        machine = self.machine
        if machine is None or not machine.pages:
            self.engine.call_state = "idle"
            return [self._hangup(1)], "NO CARRIER"
        self.port = port
        self.connected = True
        self._page = 0
        self.engine.call_state = "active"
        return [
            self._name("+FCO", "+FCON"),
            f'{self._name("+FTI", "+FTSI")}:"{machine.remote_id}"',
            f"{self._name('+FCS', '+FDCS')}:{self._params()}",
        ], "OK"

    def dial(self, port: int, number: str) -> Reply:
        machine = self.machine
        if machine is None:
            return [], "NO CARRIER"
        if machine.busy:
            return [], "BUSY"
        self.port = port
        self.connected = True
        self._page = 0
        self._sent_last = False
        machine.received.clear()
        machine.post_page.clear()
        self.engine.call_state = "active"
        return [
            self._name("+FCO", "+FCON"),
            f'{self._name("+FCI", "+FCSI")}:"{machine.remote_id}"',
            f"{self._name('+FIS', '+FDIS')}:1,5,0,2,0,0,0,0",
        ], "OK"

    def ended(self) -> None:
        self.mode = ""
        self.connected = False

    # -- receiving: AT+FDR -----------------------------------------------------------------

    def fdr(self, port: int, cmd: Command) -> Reply:
        machine = self.machine
        if not self.connected or machine is None:
            return [], "ERROR"
        if self._page >= len(machine.pages):
            self.connected = False
            self.engine.call_state = "idle"
            return [self._hangup(0)], "OK"
        self.port = port
        self.mode = "fdr"  # the page goes out when the host sends DC2
        return [], "CONNECT"

    def _send_page(self) -> None:
        machine = self.machine
        assert machine is not None
        data = machine.pages[self._page]
        if self.version == "2":
            data = data.translate(_REVERSE)  # Class 2 modems deliver MSB first (efax(1))
        if self.version == "2.0":
            # T.32 8.3.3: DLE SUB stands for two DLEs; plain doubling for a lone one.
            body = re.sub(
                b"\x10\x10?", lambda m: b"\x10\x1a" if len(m[0]) == 2 else b"\x10\x10", data
            )
        else:
            body = data.replace(b"\x10", b"\x10\x10")
        self._page += 1
        last = self._page >= len(machine.pages)
        cut = machine.hangup_after is not None and self._page >= machine.hangup_after
        self.mode = ""
        out = bytearray(body + bytes((DLE, ETX)))
        if cut and not last:
            self.connected = False
            self.engine.call_state = "idle"
            out += self._lines(self._hangup(91), "ERROR")
        else:
            status = "1,0,0,0,0" if self.version == "2.0" else "1"
            out += self._lines(
                f"{self._name('+FPS', '+FPTS')}:{status}", f"+FET:{2 if last else 0}", "OK"
            )
        self._write(bytes(out))

    # -- sending: AT+FDT -------------------------------------------------------------------

    def fdt(self, port: int, cmd: Command) -> Reply:
        if not self.connected or self.machine is None:
            return [], "ERROR"
        if self._sent_last:
            self.connected = False
            return [self._hangup(0)], "OK"
        self.port = port
        self.mode = "fdt"
        self._buf.clear()
        self._dle = False
        if self.version == "2":
            gen = self.engine.generation
            self.engine.host.call_later(0.02, lambda: self._xon(gen))
            return [f"+FDCS:{self._params()}"], "CONNECT"
        return [f"+FCS:{self._params()}"], "CONNECT"

    def _xon(self, gen: int) -> None:
        if gen == self.engine.generation and self.mode == "fdt":
            self._write(bytes((XON,)))

    def fet(self, port: int, cmd: Command) -> Reply:
        """Class 2: the post-page message after DLE ETX (0 MPS, 1 EOM, 2 EOP)."""
        if self.version != "2" or not self.connected or self.machine is None:
            return [], "ERROR"
        value = cmd.args.strip()
        if value not in ("0", "1", "2"):
            return [], "ERROR"
        self.machine.post_page.append(int(value))
        if value == "2":
            self._sent_last = True
            self.connected = False
            return ["+FPTS:1", "+FHNG:0"], "OK"
        return ["+FPTS:1"], "OK"

    def receive(self, data: bytes) -> bytes:
        """Host bytes while a page is being read (DC2) or written (page data); returns
        what follows the end of data mode, for the command parser."""
        if self.mode == "fdr":
            at = data.find(bytes((DC2,)))
            if at < 0:
                return b""
            self._send_page()
            return data[at + 1 :]
        i = 0
        n = len(data)
        while i < n:
            b = data[i]
            i += 1
            if not self._dle:
                if b == DLE:
                    self._dle = True
                else:
                    self._buf.append(b)
                continue
            self._dle = False
            if b == DLE:
                self._buf.append(DLE)
            elif self.version == "2.0" and b in (ord(","), ord(";"), ord(".")):
                self._page_written({",": 0, ";": 1, ".": 2}[chr(b)])
                return data[i:]
            elif self.version == "2" and b == ETX:
                self._page_written(None)
                return data[i:]
        return b""

    def _page_written(self, post_page: int | None) -> None:
        machine = self.machine
        assert machine is not None
        machine.received.append(bytes(self._buf))
        # The page leaves the modem at 14400 bit/s: its OK comes when it is sent (efax
        # divides by the time a page took).
        delay = min(5.0, 0.2 + len(self._buf) / 1800 * self.time_scale)
        self._buf.clear()
        self.mode = ""
        if post_page is None:  # Class 2: AT+FET=n follows
            self._later(delay, self._lines("OK"))
            return
        machine.post_page.append(post_page)
        lines = ["+FPS:1,0,0,0,0"]
        if post_page == 2:
            self._sent_last = True
            self.connected = False
            lines.append(self._hangup(0))
        self._later(delay, self._lines(*lines, "OK"))

    def _later(self, delay: float, data: bytes) -> None:
        gen = self.engine.generation

        def write() -> None:
            if gen == self.engine.generation:
                self._write(data)

        self.engine.host.call_later(delay, write)


def handlers(sim: Class2Sim) -> dict[str, Callable[[int, Command], Reply]]:
    table: dict[str, Callable[[int, Command], Reply]] = {
        name: sim.setting for name in COMMANDS - {"+FDR", "+FDT", "+FET"}
    }
    table.update({"+FDR": sim.fdr, "+FDT": sim.fdt, "+FET": sim.fet})
    return table


__all__ = ["COMMANDS", "Class2Sim", "FaxMachine", "handlers"]
