"""Class 2 and Class 2.0 fax in the analog personalities that offer it: a scripted fax machine
on the line that sends pages to us or takes ours.

Sources: REFERENCE.md 1 "Fax" (the 2.0 and 2 command and report spellings, DC2, DLE
escapes, +FET values, +FHS/+FHNG codes); ITU-T T.32 8.3-8.5 (AT+FDR, AT+FDT, DLE SUB in
2.0, page ends DLE , / DLE ; / DLE .); mgetty's doc/fhng-codes; efax(1) (Class 2 modems
send data MSB first and send XON after CONNECT to AT+FDT). Only what a host sees is
simulated: no T.30 frames, no modulation.

On a virtual line (fax_line.py) the modem runs T.30 itself instead, as a real Class 2 modem
does, with the simulator's own T.30 station (fax_machine.py) on a thread of the call: ATA
answers (CED, DIS, DCS, training) and reports +FCO/+FTI/+FCS; each AT+FDR first answers
the post-page command of the page the host read last, as the host's +FPS (2.0) / +FPTS (2)
says (T.32 8.5.2.2 and EIA-592: the modem sets it to 1 after each page, its own copy quality
verdict, and the host may set 2 to have the page sent again: RTN; 3 RTP), then waits for a
page (a missed page is answered RTN and waited for again), then CONNECT, DC2, the page,
+FPS/+FET, OK; after MCF to EOM it goes through phase B again; after MCF to EOP and DCN,
AT+FDR gives +FHS:00. ATD calls, reports +FCO/+FCI/+FIS after the other end's DIS; the
first AT+FDT (and the one after RTN or EOM) trains (DCS, TCF, CFR, with fall-back) before
+FCS and CONNECT; each page goes out with its post-page command and the answer comes back
as +FPS (1 MCF, 2 RTN, 3 RTP); after EOP the modem sends DCN and reports +FHS:00. A call
that fails reports the T.32 hangup code of the phase it failed in.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .commandline import Command
from .fax_machine import PPM_NAMES, Caps, Fc, Gone, Station

if TYPE_CHECKING:
    from .engine import Engine
    from .fax_line import LineEnd

log = logging.getLogger(__name__)

Reply = tuple[list[str], str | None]
Job = Callable[[Station], Callable[[], None] | None]

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
    # The host may answer a page RTN (AT+FPS=2 / AT+FPTS=2 before AT+FDR). T.30 leaves it to the
    # sender whether it sends that page again: this machine does only for the pages here
    # (page index -> the copy it sends the second time), once; for others it goes on.
    again: dict[int, bytes] = field(default_factory=dict)
    asked_again: list[int] = field(default_factory=list)  # pages the host answered RTN


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
        self.end: LineEnd | None = None  # a virtual line (fax_line.py), set by VirtualLine
        self.station: Station | None = None  # T.30 on the line for the call in progress
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._call_gen = 0
        self._reported: object = None  # the session last reported with +FCS
        self._retrain = False  # after RTN or EOM: the next AT+FDT trains again
        self._held = b""  # Class 2: the page written, waiting for AT+FET=n
        self._line_page: tuple[bytes, int] | None = None  # received, waiting for DC2
        self._line_due: int | None = None  # the post-page command the host's page awaits
        self._resend = False  # the scripted machine sends its page again (RTN)
        self._again = b""  # ... this copy
        self.line_post_pages: list[int] = []  # sent on the line: 0 MPS, 1 EOM, 2 EOP

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
        if self.end is not None and (self.end.ringing or self.end.connected):
            return self._line_answer(port)
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
        if self.end is not None:
            return self._line_dial(port)
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
        self._end_call()

    # -- on a virtual line: T.30 on the call's own thread -----------------------------------

    def line_update(self) -> None:
        """Something changed on the virtual line: wake the call's T.30 station."""
        if self.station is not None:
            self.station.notify()

    def _start_call(self) -> None:
        self._end_call()
        assert self.end is not None
        self._call_gen += 1
        self._stop = threading.Event()
        self._jobs = queue.SimpleQueue()
        ident = self.settings.get("+FLI") or self.settings.get("+FLID") or ""
        caps = self._caps()
        station = Station(
            self.end, local_id=ident.strip('"'), fine=caps.fine, mr=caps.mr, stop=self._stop
        )
        self.station = station
        self._reported = None
        self._retrain = False
        self._line_due = None
        self._held = b""
        self._line_page = None
        self.line_post_pages.clear()
        jobs, gen, host = self._jobs, self._call_gen, self.engine.host

        def work() -> None:
            while (job := jobs.get()) is not None:
                try:
                    after = job(station)
                except Exception as exc:  # a bug here must not leave the host waiting
                    log.exception("simulated Class 2 modem: T.30 step failed")
                    after = self._failer(90, "ERROR", str(exc))
                if after is not None:
                    host.call_later(0.0, self._current(gen, after))

        threading.Thread(target=work, name="sim-class2-t30", daemon=True).start()

    def _current(self, gen: int, fn: Callable[[], None]) -> Callable[[], None]:
        """`fn`, to run on the modem's thread only while the same call lasts."""

        def run() -> None:
            if gen == self._call_gen:
                fn()

        return run

    def _end_call(self) -> None:
        if self.station is None:
            return
        self._call_gen += 1
        self._stop.set()
        self._jobs.put(None)
        self.station.notify()
        self.station = None
        if self.end is not None:
            self.end.hang_up()

    def _run(self, job: Job) -> Reply:
        self._jobs.put(job)
        return [], None

    def _failer(self, code: int, final: str, why: str = "") -> Callable[[], None]:
        def fail() -> None:
            self.connected = False
            self.mode = ""
            self.engine.call_state = "idle"
            self._write(self._lines(self._hangup(code), final))
            self._end_call()

        return fail

    def _caps(self) -> Caps:
        """What the host set with +FCC (2.0) / +FDCC (2): vr, br, wd, ln, df, ..."""
        raw = self.settings.get("+FCC") or self.settings.get("+FDCC") or "1,5,0,2,0"
        values = [int(v) if v.strip().isdigit() else 0 for v in raw.split(",")] + [0] * 5
        vr, br, df = values[0], values[1], values[4]
        families = {"V.27ter"} | ({"V.29"} if br >= 2 else set()) | ({"V.17"} if br >= 4 else set())
        return Caps(frozenset(families), fine=vr >= 1, mr=df >= 1)

    def _session_params(self, station: Station) -> str:
        session = station.session
        if session is None:
            return self._params()
        br = {2400: 0, 4800: 1, 7200: 2, 9600: 3, 12000: 4, 14400: 5}[session.rate.bps]
        return f"{int(session.fine)},{br},0,2,{int(session.mr)},0,0,0"

    def _line_answer(self, port: int) -> Reply:
        self.port = port
        self.connected = True
        self.engine.call_state = "active"
        self.engine.ring_generation += 1
        self.engine.voice.ended()
        self._start_call()
        caps = self._caps()

        def job(st: Station) -> Callable[[], None]:
            try:
                if st.end.ringing:
                    st.answer()
                st.phase_b(caps)
            except Gone:
                return self._failer(70, "NO CARRIER")
            params = self._session_params(st)
            remote = st.remote_id

            def done() -> None:
                self._reported = st.session
                self._write(
                    self._lines(
                        self._name("+FCO", "+FCON"),
                        f'{self._name("+FTI", "+FTSI")}:"{remote}"',
                        f"{self._name('+FCS', '+FDCS')}:{params}",
                        "OK",
                    )
                )

            return done

        return self._run(job)

    def _line_fdr(self, port: int) -> Reply:
        """AT+FDR on a call: first the answer to the page the host read last (T.32: the
        modem sends its post-page response when the host asks for the next page, as the
        host's +FPS/+FPTS says: 1 MCF, 2 RTN, 3 RTP; the modem sets 1 after each page, its
        own copy quality verdict), then the next page."""
        self.port = port
        due, self._line_due = self._line_due, None
        status = self._host_status()
        caps = self._caps()

        def job(st: Station) -> Callable[[], None]:
            try:
                if due is not None:
                    again = status in (2, 4)  # RTN (or PIN): the sender sends it again
                    st.respond(Fc.RTN if again else Fc.RTP if status == 3 else Fc.MCF)
                    if not again and due == Fc.EOP:
                        st.wait_dcn()
                        return self._failer(0, "OK")  # +FHS:00, the call is over
                    if not again and due == Fc.EOM:
                        st.phase_b(caps)  # the next document starts with phase B
                while True:
                    data, ppm = st.receive_page()
                    if ppm is None or ppm == Fc.DCN:
                        return self._failer(73 if data is None else 100, "OK")
                    if data is None:  # the page's carrier was missed: send it again
                        st.respond(Fc.RTN)
                        continue
                    break
            except Gone:
                return self._failer(100, "OK")
            fet = PPM_NAMES[Fc(ppm)]
            params = self._session_params(st)
            session = st.session

            def ready() -> None:
                self._line_page = (data, fet)
                self._line_due = ppm  # answered at the next AT+FDR
                self.settings[self._name("+FPS", "+FPTS")] = "1"  # the modem's own verdict
                lines = []
                if session is not self._reported:
                    self._reported = session
                    lines.append(f"{self._name('+FCS', '+FDCS')}:{params}")
                self.mode = "fdr"  # the page goes out when the host sends DC2
                self._write(self._lines(*lines, "CONNECT"))

            return ready

        return self._run(job)

    def _host_status(self) -> int:
        """The page status the host set with AT+FPS (2.0) / AT+FPTS (2), first value."""
        raw = self.settings.get(self._name("+FPS", "+FPTS"), "1").split(",")[0].strip()
        return int(raw) if raw.isdigit() else 1

    def _send_line_page(self) -> None:
        assert self._line_page is not None
        data, fet = self._line_page
        self._line_page = None
        self.mode = ""
        status = "1,0,0,0,0" if self.version == "2.0" else "1"
        self._write(
            self._escape_page(data)
            + bytes((DLE, ETX))
            + self._lines(f"{self._name('+FPS', '+FPTS')}:{status}", f"+FET:{fet}", "OK")
        )

    def _line_dial(self, port: int) -> Reply:
        self.port = port
        self._start_call()
        self._sent_last = False

        def job(st: Station) -> Callable[[], None]:
            try:
                caps = st.call()
            except Gone as exc:
                word = "BUSY" if str(exc) == "BUSY" else "NO CARRIER"

                def failed() -> None:
                    self.engine.call_state = "idle"
                    self._write(self._lines(word))
                    self._end_call()

                return failed
            remote = st.remote_id
            br = 5 if "V.17" in caps.families else 3 if "V.29" in caps.families else 1

            def dialled() -> None:
                self.connected = True
                self.engine.call_state = "active"
                self._write(
                    self._lines(
                        self._name("+FCO", "+FCON"),
                        f'{self._name("+FCI", "+FCSI")}:"{remote}"',
                        f"{self._name('+FIS', '+FDIS')}:{int(caps.fine)},{br},0,2,"
                        f"{int(caps.mr)},0,0,0",
                        "OK",
                    )
                )

            self.engine.call_state = "active"
            return dialled

        self.engine.call_state = "active"
        return self._run(job)

    def _line_fdt(self, port: int) -> Reply:
        self.port = port
        if self._sent_last:
            self.connected = False
            self._end_call()
            return [self._hangup(0)], "OK"
        retrain = self._retrain
        self._retrain = False

        def job(st: Station) -> Callable[[], None]:
            try:
                if st.session is None or retrain:
                    st.train()
            except Gone:
                return self._failer(27, "ERROR")
            params = self._session_params(st)

            def ready() -> None:
                self.mode = "fdt"
                self._buf.clear()
                self._dle = False
                self._write(self._lines(f"{self._name('+FCS', '+FDCS')}:{params}", "CONNECT"))
                if self.version == "2":
                    gen = self.engine.generation
                    self.engine.host.call_later(0.02, lambda: self._xon(gen))

            return ready

        return self._run(job)

    def _line_send(self, data: bytes, post_page: int) -> None:
        """The page written by the host goes out with its post-page command."""
        self.line_post_pages.append(post_page)
        ppm = {0: Fc.MPS, 1: Fc.EOM, 2: Fc.EOP}[post_page]

        def job(st: Station) -> Callable[[], None]:
            try:
                answer = st.send_page(data, ppm)
                if answer != Fc.RTN and post_page == 2:
                    st.disconnect()
                elif answer != Fc.RTN and post_page == 1:
                    st.wait_dis()  # EOM: phase B again, the next AT+FDT trains
            except Gone:
                return self._failer({0: 52, 1: 56, 2: 54}[post_page], "ERROR")
            status = {Fc.MCF: 1, Fc.RTN: 2, Fc.RTP: 3}.get(Fc(answer), 1)

            def sent() -> None:
                self._retrain = status in (2, 3) or post_page == 1
                tail = ",0,0,0,0" if self.version == "2.0" else ""
                lines = [f"{self._name('+FPS', '+FPTS')}:{status}{tail}"]
                if post_page == 2 and status != 2:
                    self._sent_last = True
                    self.connected = False
                    self.engine.call_state = "idle"
                    lines.append(self._hangup(0))
                self._write(self._lines(*lines, "OK"))

            return sent

        self._run(job)

    # -- receiving: AT+FDR -----------------------------------------------------------------

    def fdr(self, port: int, cmd: Command) -> Reply:
        if self.station is not None:
            return self._line_fdr(port)
        machine = self.machine
        if not self.connected or machine is None:
            return [], "ERROR"
        if self._page and self._host_status() in (2, 4):  # RTN (the modem answers so)
            machine.asked_again.append(self._page - 1)
            second = machine.again.pop(self._page - 1, None)
            if second is not None:
                self._page -= 1  # this machine sends that page again, once
                self._resend, self._again = True, second
        if not self._resend and self._page >= len(machine.pages):
            self.connected = False
            self.engine.call_state = "idle"
            return [self._hangup(0)], "OK"
        self.port = port
        self.mode = "fdr"  # the page goes out when the host sends DC2
        return [], "CONNECT"

    def _escape_page(self, data: bytes) -> bytes:
        """Page data as the modem hands it to the host after DC2 (before DLE ETX)."""
        if self.version == "2":
            data = data.translate(_REVERSE)  # Class 2 modems deliver MSB first (efax(1))
        if self.version == "2.0":
            # T.32 8.3.3: DLE SUB stands for two DLEs; plain doubling for a lone one.
            return re.sub(
                b"\x10\x10?", lambda m: b"\x10\x1a" if len(m[0]) == 2 else b"\x10\x10", data
            )
        return data.replace(b"\x10", b"\x10\x10")

    def _send_page(self) -> None:
        machine = self.machine
        assert machine is not None
        page = machine.pages[self._page]
        if self._resend:
            page, self._resend = self._again, False
        body = self._escape_page(page)
        self.settings[self._name("+FPS", "+FPTS")] = "1"  # the modem's own verdict
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
        if self.station is not None:
            return self._line_fdt(port)
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
        if self.version != "2" or not self.connected:
            return [], "ERROR"
        value = cmd.args.strip()
        if value not in ("0", "1", "2"):
            return [], "ERROR"
        if self.station is not None:
            self._line_send(self._held, int(value))
            return [], None
        if self.machine is None:
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
            if self._line_page is not None:
                self._send_line_page()
            else:
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
        if self.station is not None:
            data = bytes(self._buf)
            self._buf.clear()
            self.mode = ""
            if post_page is None:  # Class 2: AT+FET=n says what follows
                self._held = data
                self._write(self._lines("OK"))
            else:
                self._line_send(data, post_page)
            return
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
