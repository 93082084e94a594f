"""The simulated modem's brain: reads command bytes, keeps modem state, writes answers.

Commands are dispatched through a table of handlers keyed by command name; the personality
decides which commands exist and what identity they report. No file descriptors or threads
here: bytes leave through the host's `write`, timers through the host's `call_later`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from . import gsm_audio
from .callerid import CallerId, clip_fields, formatted_lines, raw_line
from .class1 import Class1Sim
from .class1 import handlers as fax1_handlers
from .commandline import Command, CommandLineError, split_args, split_commands
from .fax2 import Class2Sim
from .fax2 import handlers as fax2_handlers
from .personalities import Personality
from .sms import (
    ALL,
    MESSAGE_SERVICE_COMMANDS,
    REC_UNREAD,
    STO_SENT,
    STO_UNSENT,
    PduError,
    SimBusy,
    SmsMemory,
    pdu_bytes_safe,
    status_report_pdu,
    tpdu_length,
)
from .voice import VoiceSim

log = logging.getLogger(__name__)

CR = 0x0D
LF = 0x0A
BS = 0x08
DEL = 0x7F
CTRL_Z = 0x1A
ESC = 0x1B
MAX_LINE = 1024  # characters kept of one command line; the rest is dropped

# V.250 numeric result codes for ATV0.
_NUMERIC = {
    "OK": "0",
    "CONNECT": "1",
    "RING": "2",
    "NO CARRIER": "3",
    "ERROR": "4",
    "NO DIALTONE": "6",
    "BUSY": "7",
    "NO ANSWER": "8",
}

# 3GPP TS 27.007 9.2 and 27.005 3.2.5 error codes with their verbose (+CMEE=2) texts.
CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    16: "incorrect password",
    21: "invalid index",
    22: "not found",
    30: "no network service",
    100: "unknown",
}
CMS_TEXT = {
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    316: "SIM PUK required",
    321: "invalid memory index",
    322: "memory full",
    500: "unknown error",
}

# SMS settings a SIM800 refuses, like the message commands, until "SMS Ready".
SMS_SETTINGS_COMMANDS = frozenset({"+CMGF", "+CNMI", "+CSMS", "+CSDH"})

# Power-on S-register values (V.250 6.2; S0 rings to auto-answer .. S12 guard time).
_S_DEFAULTS = {0: 0, 1: 0, 2: 43, 3: 13, 4: 10, 5: 8, 6: 2, 7: 50, 8: 2, 10: 14, 12: 50}


class Host(Protocol):
    """What the engine needs from the world around it."""

    def write(self, port: int, data: bytes) -> None: ...
    def call_later(self, delay: float, fn: Callable[[], None]) -> None: ...
    def record(self, port: int, line: str) -> None: ...
    def now(self) -> datetime: ...


class Fail(Exception):
    """A command failed; `final` is the result code to send (ERROR, +CME ERROR: n, ...)."""

    def __init__(self, final: str) -> None:
        super().__init__(final)
        self.final = final


Reply = tuple[list[str], str | None]
Handler = Callable[[int, Command], Reply]


@dataclass(slots=True)
class PortSession:
    """Per-port line state: echo and result-code format are per port on multi-port modems."""

    echo: bool = True
    verbose: bool = True
    quiet: bool = False
    buffer: bytearray = field(default_factory=bytearray)
    last_line: str = ""
    pdu_command: str = ""  # "+CMGS" / "+CMGW" while waiting for a PDU after the prompt
    pdu_length: int = 0
    pdu_stat: int = STO_UNSENT
    pdu_buffer: bytearray = field(default_factory=bytearray)


@dataclass(slots=True)
class Sim:
    """The SIM card: survives resets and power cycles, as a real card does."""

    pin: str | None = None
    puk: str = "12345678"
    pin_attempts: int = 3
    puk_attempts: int = 10
    unlocked: bool = False
    imsi: str = "001010123456789"
    iccid: str = "8901260123456789012"

    @property
    def state(self) -> str:
        if self.pin_attempts <= 0:
            return "SIM PUK"
        if self.pin is None or self.unlocked:
            return "READY"
        return "SIM PIN"


@dataclass(slots=True)
class Network:
    """What the radio side looks like; tests change it through the modem's methods."""

    stat: int = 1  # 1 home, 5 roaming, 2 searching, 0 not registered, 3 denied
    lac: str = "1A2B"
    ci: str = "00C3D4E5"
    rssi: int = 20
    ber: int = 0
    operator: str = "Frontdesk Mobile"


class Engine:
    """State and command handling of one simulated modem (all ports share it)."""

    def __init__(
        self,
        personality: Personality,
        host: Host,
        *,
        quirks: dict[str, bool],
        sim: Sim,
        boot_delay: float = 0.0,
        urc_interval: float = 2.0,
        ready_delay: float = 0.0,
    ) -> None:
        self.p = personality
        self.host = host
        self.quirks = quirks
        self.sim = sim
        self.network = Network()
        self.boot_delay = boot_delay
        self.urc_interval = urc_interval
        self.ready_delay = ready_delay
        self.refused_before_ready = 0  # SMS commands a host sent before SMS ready
        self.memories = {name: SmsMemory(name, cap) for name, cap in personality.memories.items()}
        self.sent_sms: list[str] = []
        self.sms_sent_hooks: list[Callable[[str], None]] = []  # SmsNetwork and the like
        self.sessions = [PortSession() for _ in range(personality.ports)]
        self.answering = True
        self.dtr_low: set[int] = set()  # ports whose host dropped DTR (closed the port)
        self.powered = True
        self.generation = 0  # bumps on every power cycle: stale timers check it
        self.ring_generation = 0
        self.call_state = "idle"  # idle | ringing | active
        self.caller: CallerId | None = None
        self.call_started = datetime.min
        self.message_reference = 0
        self.extras = gsm_audio.Extras()  # forwarding, dialled party, PCM port, +VTS
        self.voice = VoiceSim(self)  # analog voice data mode (AT+VTX / AT+VRX)
        self.fax2 = Class2Sim(self)  # Class 2/2.0 fax with a scripted fax machine (fax2.py)
        self.fax1 = Class1Sim(self)  # Class 1 fax over a virtual line (class1.py)
        # Scripted SMS behaviour (see the modem's scripting API).
        self.send_errors: list[int] = []  # +CMS ERROR codes for the next AT+CMGS, in order
        self.report_status: int | None = 0x00  # TP-ST of status reports; None: send none
        self.report_delay = 0.2
        self.report_trailer = ""  # hex after TP-ST (an optional part, broken or not)
        self.waiting_delivery: list[str] = []  # held by the network while memory is full
        self.ussd_reply: tuple[str, int] | None = ("Your balance is 12.34 EUR.", 15)
        self.ussd_before_ok = False
        self.ussd_then_end = False
        self.ussd_requests: list[str] = []
        # Scripted damage on the serial line (not on the SIM): (command, how) per answer of
        # that command, "cut" (the PDU line loses its second half) or "drop" (it is lost).
        self.line_noise: list[tuple[str, str]] = []
        self.unacknowledged = 0  # +CMT/+CDS routed while +CSMS=1, awaiting +CNMA
        self.acknowledged = 0
        self.held: list[re.Pattern[str]] = []  # commands recorded but never answered
        self.sim_busy: SimBusy | None = None  # scripted SIM busy answers (sms.SimBusy)
        self.csms = 0
        # Quectel AT+QURCCFG="urcport": saved in the module, so it survives resets.
        self.urcport = "usbat"
        self.urc_ports: tuple[int, ...] = (personality.urc_port,)
        self._reset_settings()
        self.handlers: dict[str, Handler] = self._handler_table()

    # --- state -----------------------------------------------------------------------------

    def _reset_settings(self) -> None:
        """Power-on values of every setting (the SIM and message memories are kept)."""
        self.s_regs = dict(_S_DEFAULTS)
        self.fclass = "0"
        self.dtr_mode = 2  # &D2: DTR off hangs up (factory profiles; see dtr_off)
        self.vcid = 0
        self.scid = 0
        self.vls = 0
        self.vsm = self.p.vsm_options[0].split(",")[0] + ",8000,0,0" if self.p.vsm_options else ""
        self.gci = "B5"
        self.cmee = 0
        self.creg = 0
        self.cereg = 0
        self.cgreg = 0
        self.cgatt = 1  # packet service attached while registered (the power-on default)
        self.cops_format = 0  # AT+COPS=3,<format>: 0 long name, 1 short name, 2 numeric
        self.clip = 0
        self.crc = 0
        self.cvhu = 0
        self.cfun = 1
        self.cnmi = [2, 1, 0, 0, 0]
        self.cmgf = 0
        self.cscs = "IRA"
        self.csdh = 0
        self.csca = ("+447785016005", 145)
        first = next(iter(self.memories), "SM")
        self.cpms = [first, first, first]
        self.curc = 1
        self.cpcmreg = 0
        self.qpcmv = (0, 0)
        self.ifc = (2, 2)  # V.250 +IFC: RTS/CTS both ways (Conexant CX93001 default)
        self.gps_outport = "usbnmea"
        self.ciurc = 1
        self.catr = 0  # SIMCom AT+CATR: 0 sends URCs to every port (SIM7600 manual 4.11)
        self._route_urcs()

    def _route_urcs(self) -> None:
        """The ports unsolicited codes go to: the personality's URC port, or where Quectel
        AT+QURCCFG="urcport" or SIMCom AT+CATR sends them ("uart1" / CATR 1: the module's
        UART, which a USB host does not see: nowhere)."""
        roles = self.p.port_roles
        default = (self.p.urc_port,)
        if "+QURCCFG" in self.p.commands:
            role = {"usbat": "at", "usbmodem": "modem"}.get(self.urcport)
            if role is None:
                self.urc_ports = ()
            else:
                self.urc_ports = (roles.index(role),) if role in roles else default
        elif "+CATR" in self.p.commands:
            if self.catr == 0:
                self.urc_ports = tuple(i for i, r in enumerate(roles) if r in ("at", "modem"))
                self.urc_ports = self.urc_ports or default
            elif self.catr in (2, 3):
                role = "modem" if self.catr == 2 else "at"
                self.urc_ports = (roles.index(role),) if role in roles else default
            else:
                self.urc_ports = ()  # the UART or a CMUX channel
        else:
            self.urc_ports = default

    def silent(self, port: int) -> bool:
        """A port that takes no AT commands (diagnostics, NMEA, PCM audio)."""
        roles = self.p.port_roles
        return bool(roles) and roles[port] in ("diag", "dm", "nmea", "voice")

    def power_on(self) -> None:
        """Power-on: settings back to defaults, SIM locked again, boot URCs after a delay."""
        self.generation += 1
        self.ring_generation += 1
        self.call_state = "idle"
        self.caller = None
        self.powered = True
        self.answering = True
        self.sim.unlocked = False
        self.sessions = [PortSession() for _ in range(self.p.ports)]
        self._reset_settings()
        gen = self.generation
        if self.p.kind == "gsm":
            if self.boot_delay > 0:
                self.host.call_later(self.boot_delay, lambda: self._boot_urcs(gen))
            else:
                self._boot_urcs(gen)
            if self.quirks.get("urc_flood"):
                self.host.call_later(self.boot_delay + self.urc_interval, lambda: self._flood(gen))

    def _boot_urcs(self, gen: int) -> None:
        if gen != self.generation or not self.powered:
            return
        for urc in self.p.boot_urcs:
            self.urc(urc)
        state = self.sim.state
        if self.p.cpin_urc_at_boot:
            self.urc(f"+CPIN: {state}")
        if state == "READY":
            self._announce_ready(gen, self._sms_starting())

    def _sms_starting(self) -> SimBusy | None:
        """With `ready_delay`, the SIM has just become ready and SMS is not yet: SMS
        commands answer SIM busy from now until the SMS ready code (`_announce_ready`)."""
        if self.ready_delay <= 0 or not self.p.ready_urcs:
            return None
        busy = SimBusy(commands=MESSAGE_SERVICE_COMMANDS | SMS_SETTINGS_COMMANDS)
        self.sim_busy = busy
        return busy

    def _announce_ready(self, gen: int, busy: SimBusy | None) -> None:
        """The codes that follow the SIM becoming ready (SIM800: Call Ready, SMS Ready).
        With `ready_delay` they come spread over that many seconds, and until the SMS one
        SMS commands answer SIM busy: the SIM800 needs seconds after power-on or the PIN
        before it takes them, and a host must wait for SMS Ready (REFERENCE.md 2)."""
        urcs = self.p.ready_urcs
        if busy is None:
            for urc in urcs:
                self.urc(urc)
            return
        # SMS Ready (SIM800), SMS DONE (SIM7600), +QIND: SMS DONE (EC25); else the last
        sms_ready = next((i for i, u in enumerate(urcs) if "SMS" in u.upper()), len(urcs) - 1)

        def announce(i: int) -> None:
            if gen != self.generation or not self.powered:
                return
            self.urc(urcs[i])
            if i == sms_ready:
                self.refused_before_ready += busy.answered
                if self.sim_busy is busy:
                    self.sim_busy = None

        for i in range(len(urcs)):
            delay = self.ready_delay * (i + 1) / len(urcs)
            self.host.call_later(delay, functools.partial(announce, i))

    def _flood(self, gen: int) -> None:
        """Huawei periodic reports (^RSSI and ^MODE) until AT^CURC=0."""
        if gen != self.generation or not self.powered:
            return
        if self.curc:
            self.urc(f"^RSSI:{self.network.rssi}")
            self.urc("^MODE:5,4")
        self.host.call_later(self.urc_interval, lambda: self._flood(gen))

    @property
    def registration(self) -> int:
        """+CREG <stat>: no service without an unlocked SIM or with the radio off."""
        if self.sim.state != "READY" or self.cfun == 0:
            return 0
        return self.network.stat

    # --- output ----------------------------------------------------------------------------

    def _frame(self, port: int, lines: list[str], final: str | None) -> bytes:
        s = self.sessions[port]
        out = []
        if s.verbose:
            if lines:
                out.append("\r\n" + "\r\n".join(lines) + "\r\n")
            if final is not None and not s.quiet:
                out.append(f"\r\n{final}\r\n")
        else:
            out.extend(line + "\r\n" for line in lines)
            if final is not None and not s.quiet:
                out.append(_NUMERIC.get(final, final) + "\r")
        return "".join(out).encode("latin-1", "replace")

    def urc(self, text: str) -> None:
        """An unsolicited result code on the port(s) that carry URCs."""
        for port in self.urc_ports:
            verbose = self.sessions[port].verbose
            data = f"\r\n{text}\r\n" if verbose else _NUMERIC.get(text, text) + "\r"
            self.host.write(port, data.encode("latin-1", "replace"))

    def cme(self, code: int) -> Fail:
        if self.cmee == 0:
            return Fail("ERROR")
        return Fail(f"+CME ERROR: {CME_TEXT.get(code, code) if self.cmee == 2 else code}")

    def cms(self, code: int) -> Fail:
        if self.cmee == 0:
            return Fail("ERROR")
        return Fail(f"+CMS ERROR: {CMS_TEXT.get(code, code) if self.cmee == 2 else code}")

    # --- input -----------------------------------------------------------------------------

    def receive(self, port: int, data: bytes) -> None:
        """Bytes from the host side of one port."""
        if not self.powered or self.silent(port):
            return
        if self.voice.mode and port == self.voice.port:
            data = self.voice.receive(data)  # audio and DLE codes, not command text
            if not data:
                return
        if self.fax2.mode and port == self.fax2.port:
            data = self.fax2.receive(data)  # DC2 or page data, not command text
            if not data:
                return
        if self.fax1.takes_data and port == self.fax1.port:
            data = self.fax1.receive(data)  # frames, page data or an abort (class1.py)
            if not data:
                return
        s = self.sessions[port]
        echo = bytearray()
        for b in data:
            if not self.powered:
                break
            if s.pdu_command:
                if s.echo and self.answering:
                    echo.append(b)
                if b in (CTRL_Z, ESC):
                    self._flush(port, echo)
                    self._finish_pdu(port, cancel=b == ESC)
                elif b not in (CR, LF):
                    s.pdu_buffer.append(b)
                continue
            if s.echo and self.answering:
                echo.append(b)
            if b == self.s_regs.get(3, CR):
                line = s.buffer.decode("latin-1")
                s.buffer.clear()
                self._flush(port, echo)
                self._line(port, line)
            elif b == LF:
                continue
            elif b in (BS, DEL):
                if s.buffer:
                    s.buffer.pop()
            else:
                if len(s.buffer) < MAX_LINE:
                    s.buffer.append(b)
                if s.buffer[-2:].upper() == b"A/" and b"AT" not in s.buffer[:-2].upper():
                    # V.250 5.2.4: "A/" repeats the last command line at once, no CR needed.
                    s.buffer.clear()
                    self._flush(port, echo)
                    if s.last_line:
                        self._line(port, s.last_line, repeat=True)
        self._flush(port, echo)

    def _flush(self, port: int, echo: bytearray) -> None:
        if echo:
            self.host.write(port, bytes(echo))
            echo.clear()

    def _line(self, port: int, line: str, repeat: bool = False) -> None:
        m = re.search(r"AT", line, re.IGNORECASE)
        if m is None:
            if line.strip():
                log.debug("ignoring line without AT prefix: %r", line)
            return
        text = line[m.start() :].strip()
        self.host.record(port, text)
        if not repeat:
            self.sessions[port].last_line = text
        if not self.answering or any(p.search(text) for p in self.held):
            return
        body = text[2:]
        try:
            commands = split_commands(body)
        except CommandLineError as exc:
            log.debug("syntax error: %s", exc)
            self.host.write(port, self._frame(port, [], "ERROR"))
            return
        out = bytearray()
        final: str | None = "OK"
        for cmd in commands:
            try:
                lines, final = self._dispatch(port, cmd)
            except Fail as f:
                lines, final = [], f.final
            out += self._frame(port, lines, None)
            if final != "OK":
                break
        out += self._frame(port, [], final)
        self.host.write(port, bytes(out))
        s = self.sessions[port]
        if s.pdu_command:
            # TS 27.005 3.5.1: the prompt is CR LF "> " without a line end.
            self.host.write(port, b"\r\n> ")

    def _dispatch(self, port: int, cmd: Command) -> Reply:
        fixed = self.p.fixed.get(cmd.key)
        if fixed is not None:
            return list(fixed), "OK"
        name = cmd.name
        if name[0] in "+^-#$*" and name not in self.p.commands:
            return [], "ERROR"
        handler = self.handlers.get(name)
        if handler is None and name.startswith("S") and name[1:].isdigit():
            handler = self._s_register
        if handler is None:
            return [], "ERROR"
        refused = self.sim_busy.answer(name, cmd.form) if self.sim_busy is not None else None
        if refused is not None:
            raise self.cms(refused[1]) if refused[0] == "cms" else self.cme(refused[1])
        return handler(port, cmd)

    # --- handler table ---------------------------------------------------------------------

    def _handler_table(self) -> dict[str, Handler]:
        ident = {
            "+GMI": lambda: self.p.manufacturer,
            "+CGMI": lambda: self.p.manufacturer,
            "+GMM": lambda: self.p.model,
            "+CGMM": lambda: self.p.model,
            "+GMR": lambda: self.p.revision,
            "+CGMR": lambda: self.p.revision,
            "+GSN": lambda: self.p.imei,
            "+CGSN": lambda: self.p.imei,
        }
        table: dict[str, Handler] = {name: self._identity(fn) for name, fn in ident.items()}
        table.update(
            {
                "E": self._flag("echo"),
                "V": self._flag("verbose"),
                "Q": self._flag("quiet"),
                "Z": self._z,
                "&F": self._z,
                "I": self._i,
                "A": self._a,
                "H": self._h,
                "D": self._d,
                "X": self._accept,
                "M": self._accept,
                "L": self._accept,
                "&C": self._accept,
                "&D": self._amp_d,
                "&K": self._accept,
                "+IFC": self._ifc,
                "&W": self._accept,
                "+FCLASS": self._fclass,
                "+VSM": self._vsm,
                "+VLS": self._vls,
                "+VTX": self._vtx,
                "+VRX": self._vrx,
                "+VTR": self.voice.vtr_command,  # V.253 voice duplex: simulator/voice.py
                "+VSD": self._accept,
                "+VGT": self._accept,
                "+VGR": self._accept,
                "+VIT": self._accept,
                "+VCID": self._int_setting("vcid", 0, 2, "(0-2)", bare=True),
                "-SCID": self._int_setting("scid", 0, 1, "(0,1)", bare=True),
                "+GCI": self._gci,
                "+CMEE": self._int_setting("cmee", 0, 2, "+CMEE: (0-2)"),
                "+CLIP": self._clip,
                "+CRC": self._int_setting("crc", 0, 1, "+CRC: (0,1)"),
                "+CVHU": self._int_setting("cvhu", 0, 1, "+CVHU: (0,1)"),
                "+CSDH": self._int_setting("csdh", 0, 1, "+CSDH: (0,1)"),
                "+CIURC": self._int_setting("ciurc", 0, 1, "+CIURC: (0,1)"),
                "^CURC": self._int_setting("curc", 0, 1, "^CURC: (0-1)", prefix="^CURC: "),
                "+CPIN": self._cpin,
                "+SPIC": self._spic,
                "+QPINC": self._qpinc,
                "^CPIN": self._huawei_cpin,
                "+CREG": self._creg,
                "+CEREG": self._cereg,
                "+CGREG": self._cgreg,
                "+CGATT": self._cgatt,
                "+CSQ": self._csq,
                "+COPS": self._cops,
                "+CNMI": self._cnmi,
                "+CMGF": self._int_setting("cmgf", 0, 1, "+CMGF: (0,1)"),
                "+CSCS": self._cscs,
                "+CSMS": self._csms,
                "+CSCA": self._csca,
                "+CPMS": self._cpms,
                "+CMGL": self._cmgl,
                "+CMGR": self._cmgr,
                "+CMGD": self._cmgd,
                "+CMGS": self._cmgs,
                "+CMGW": self._cmgs,
                "+CNMA": self._cnma,
                "+CUSD": self._cusd,
                "+CIMI": self._cimi,
                "+CCID": self._ccid,
                "+CHUP": self._h,
                "+CLCC": self._clcc,
                "+CFUN": self._cfun,
                "+GCAP": self._gcap,
                "+CPBS": self._cpbs,
                "+CPBR": self._cpbr,
                "+CPCMREG": self._cpcmreg,
                "+CCFC": lambda p, c: gsm_audio.ccfc(self, p, c),
                "+VTS": lambda p, c: gsm_audio.vts(self, p, c),
                "+DDET": lambda p, c: gsm_audio.dtmf_detection(self, p, c),
                "+QTONEDET": lambda p, c: gsm_audio.dtmf_detection(self, p, c),
                "+QPCMV": self._qpcmv,
                "+QGPSCFG": self._qgpscfg,
                "+QURCCFG": self._qurccfg,
                "+CATR": self._catr,
                "^DDSETEX": self._ddsetex,
                "^U2DIAG": self._accept,
            }
        )
        table.update(fax2_handlers(self.fax2))
        table.update(fax1_handlers(self.fax1))
        return table

    # --- generic helpers -------------------------------------------------------------------

    def _identity(self, fn: Callable[[], str]) -> Handler:
        def handler(port: int, cmd: Command) -> Reply:
            if cmd.form == "test":
                return [], "OK"
            if cmd.form != "exec":
                return [], "ERROR"
            return [fn()], "OK"

        return handler

    def _flag(self, attr: str) -> Handler:
        def handler(port: int, cmd: Command) -> Reply:
            if cmd.args not in ("", "0", "1"):
                return [], "ERROR"
            setattr(self.sessions[port], attr, cmd.args == "1")
            return [], "OK"

        return handler

    def _accept(self, port: int, cmd: Command) -> Reply:
        return [], "OK"

    def _int_setting(
        self, attr: str, low: int, high: int, test: str, *, bare: bool = False, prefix: str = ""
    ) -> Handler:
        label = prefix

        def handler(port: int, cmd: Command) -> Reply:
            if cmd.form == "test":
                return [test], "OK"
            if cmd.form == "read":
                value = getattr(self, attr)
                if bare:
                    return [str(value)], "OK"
                return [f"{label or cmd.name + ': '}{value}"], "OK"
            if cmd.form == "set":
                try:
                    value = int(split_args(cmd.args)[0] or "0")
                except ValueError:
                    return [], "ERROR"
                if not low <= value <= high:
                    return [], "ERROR"
                setattr(self, attr, value)
                return [], "OK"
            return [], "ERROR"

        return handler

    def _require_sim(self, sms: bool = False) -> None:
        state = self.sim.state
        if state == "SIM PIN":
            raise self.cms(311) if sms else self.cme(11)
        if state == "SIM PUK":
            raise self.cms(316) if sms else self.cme(12)

    # --- V.250 basics ----------------------------------------------------------------------

    def _z(self, port: int, cmd: Command) -> Reply:
        """ATZ / AT&F: echo on, verbose codes, S-registers back; analog +FCLASS back to 0."""
        self.sessions[port].echo = True
        self.sessions[port].verbose = True
        self.sessions[port].quiet = False
        self.s_regs = dict(_S_DEFAULTS)
        if self.p.kind == "analog":
            self.fclass = "0"
            self.vls = 0
            if self.quirks.get("vcid_lost_on_reset"):
                # home-assistant/core #57765: the Conexant forgets +VCID on reset.
                self.vcid = 0
                self.scid = 0
        return [], "OK"

    def _i(self, port: int, cmd: Command) -> Reply:
        n = int(cmd.args or "0")
        lines = self.p.info.get(n)
        if lines is None:
            return [], "ERROR"
        if lines == ("OK",):
            return [], "OK"
        return list(lines), "OK"

    def _s_register(self, port: int, cmd: Command) -> Reply:
        reg = int(cmd.name[1:])
        if reg > 255:
            return [], "ERROR"
        if cmd.form == "read":
            return [f"{self.s_regs.get(reg, 0):03d}"], "OK"
        if cmd.form == "set":
            value = int(cmd.args)
            if value > 255:
                return [], "ERROR"
            self.s_regs[reg] = value
            return [], "OK"
        return [], "ERROR"

    # --- calls -----------------------------------------------------------------------------

    def _a(self, port: int, cmd: Command) -> Reply:
        if self.fax1.active and self.fax1.can_answer():
            return self.fax1.answer(port)  # a fax call on the virtual line (class1.py)
        end = self.fax2.end
        if self.fax2.active and end is not None and (end.ringing or end.connected):
            return self.fax2.answer(port)  # Class 2 runs T.30 on the virtual line (fax2.py)
        if self.call_state == "active" and self.fax2.active and self.fax2.machine is not None:
            # An answered voice call where the caller is a fax machine: AT+FCLASS=2(.0)
            # then ATA starts phase B off-hook (vgetty does this on DLE c; T.32 8.3.1).
            self.voice.ended()
            return self.fax2.answer(port)
        if self.call_state != "ringing":
            return [], "NO CARRIER"
        if self.fax2.active:
            self.ring_generation += 1
            return self.fax2.answer(port)
        return self._answer()

    def _answer(self) -> Reply:
        self.ring_generation += 1
        if self.p.kind == "gsm":
            self.call_state = "active"
            self.call_started = self.host.now()
            return [], "OK"
        if self.fclass == "8":
            self.call_state = "active"
            self.vls = 1
            self.voice.answered()
            self.fax1.answered_by_voice()
            return [], "VCON"
        # Data or fax answer without a peer modem on the line: no carrier.
        self.call_state = "idle"
        return [], "NO CARRIER"

    def _h(self, port: int, cmd: Command) -> Reply:
        self.ring_generation += 1
        self.call_state = "idle"
        self.caller = None
        self.cpcmreg = 0
        self.vls = 0
        self._pcm(False)
        self.voice.ended()
        self.fax2.ended()
        self.fax1.ended()
        return [], "OK"

    def _d(self, port: int, cmd: Command) -> Reply:
        number = cmd.args
        if self.p.kind == "gsm":
            if not number.endswith(";"):
                return [], "NO CARRIER"  # data calls are not offered
            self._require_sim()
            if self.registration not in (1, 5):
                return [], "NO CARRIER"
            self.call_state = "active"
            self.caller = CallerId(number=number.rstrip(";").lstrip("Tt"))
            self.call_started = self.host.now()
            return [], gsm_audio.dialled(self, number.rstrip(";").lstrip("Tt")) or "OK"
        if self.fclass == "8":
            self.call_state = "active"
            return [], "VCON"
        if self.fax2.active:
            return self.fax2.dial(port, number)
        if self.fax1.active:
            return self.fax1.dial(port, number)
        return [], "NO CARRIER"

    def _clcc(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return [], "OK"
        if self.call_state == "idle" or self.caller is None:
            return [], "OK"
        f = clip_fields(self.caller)
        stat = {"ringing": 4, "alerting": 3}.get(self.call_state, 0)
        mode = 1 if self.call_state == "ringing" else 0
        return [f'+CLCC: 1,{mode},{stat},0,0,"{f["number"]}",{f["type"]}'], "OK"

    def start_ringing(self, cid: CallerId | None, rings: int, interval: float) -> None:
        """An incoming call: RING every `interval` seconds, `rings` times, then the caller quits."""
        self.ring_generation += 1
        gen = self.ring_generation
        self.call_state = "ringing"
        self.caller = cid
        self.s_regs[1] = 0
        self._ring_step(gen, 0, rings, interval)
        gsm_audio.watch_no_reply(self, gen)  # the network forwards it on no reply (AT+CCFC)

    def _ring_step(self, gen: int, k: int, rings: int, interval: float) -> None:
        if gen != self.ring_generation or self.call_state != "ringing" or not self.powered:
            return
        cid = self.caller
        if self.p.kind == "gsm":
            self.urc("+CRING: VOICE" if self.crc else "RING")
            if self.clip and cid is not None:
                self.urc(self.p.clip_format.format(**clip_fields(cid)))
        else:
            self.urc("RING")
            if k == 0 and cid is not None and self.vcid:
                self.host.call_later(interval / 2, lambda: self._caller_id(gen))
        self.s_regs[1] = k + 1
        auto = self.s_regs.get(0, 0) if not self.dtr_low else 0  # &D2: no auto-answer
        if auto and k + 1 >= auto and self.fax2.active:
            self.ring_generation += 1
            lines, final = self.fax2.answer(self.p.urc_port)  # a Class 2 modem answers itself
            for text in lines:
                self.urc(text)
            if final is not None:  # on a virtual line the reports come when phase B is done
                self.urc(final)
            return
        if auto and k + 1 >= auto:
            _, final = self._answer()
            if final is not None:
                self.urc(final)
            return
        if k + 1 < rings:
            self.host.call_later(interval, lambda: self._ring_step(gen, k + 1, rings, interval))
        else:
            self.host.call_later(interval, lambda: self._caller_gives_up(gen))

    def _caller_id(self, gen: int) -> None:
        """Analog caller ID between the 1st and 2nd ring (REFERENCE.md 1 "Caller ID")."""
        if gen != self.ring_generation or self.call_state != "ringing" or self.caller is None:
            return
        if self.vcid == 1:
            lines = formatted_lines(self.caller, self.host.now(), self.p.cid_separator)
        elif self.vcid == 2:
            lines = [raw_line(self.caller, self.host.now())]
        else:
            return
        block = "\r\n" + "\r\n".join(lines) + "\r\n"
        for port in self.urc_ports:
            self.host.write(port, block.encode("latin-1", "replace"))

    def _caller_gives_up(self, gen: int) -> None:
        if gen == self.ring_generation and self.call_state == "ringing":
            self.caller_hangs_up()

    def caller_hangs_up(self) -> None:
        """The far end hangs up: ringing stops, or an answered call ends."""
        was = self.call_state
        self.ring_generation += 1
        self.call_state = "idle"
        cid = self.caller
        self.caller = None
        self.cpcmreg = 0
        self._pcm(False)
        if self.p.kind != "gsm" and was == "active":
            self.voice.caller_hangs_up()
        if self.p.kind != "gsm" or was == "idle":
            return
        template = self.p.caller_hangup_urc if was == "ringing" else self.p.call_end_urc
        if template:
            number = clip_fields(cid)["number"] if cid else ""
            self.urc(template.format(time=self.host.now().strftime("%I:%M%p"), number=number))

    # --- DTR (circuit 108/2) ----------------------------------------------------------------

    def _amp_d(self, port: int, cmd: Command) -> Reply:
        """AT&D<n> (V.250 6.2.9): n 0-2, no value means 0; AT&D? is not offered."""
        if cmd.form != "exec" or cmd.args not in ("", "0", "1", "2"):
            return [], "ERROR"
        self.dtr_mode = int(cmd.args or "0")
        return [], "OK"

    def dtr_on(self, port: int) -> None:
        """The host holds the port again (it opened it and sent something)."""
        self.dtr_low.discard(port)

    def dtr_off(self, port: int) -> None:
        """The host dropped DTR on `port`: it closed the port or died (a pty has no modem
        control lines; the simulator sees the last close as DTR off).

        V.250 6.2.9 (&D): 0 ignores DTR; 1 leaves data mode for command mode and keeps the
        call; 2 clears the call down and returns to command mode, with automatic answer off
        while DTR stays off. SIM800 AT Command Manual V1.09 2.2.29 (AT&D2 "Disconnect
        call, change to Command mode. During state DTR = OFF is auto-answer off"); the
        Conexant and USR factory profiles (&F) have &D2, so the simulator powers on with
        it. A half-typed command line or PDU is thrown away: the next host starts afresh.
        """
        self.dtr_low.add(port)
        s = self.sessions[port]
        s.buffer.clear()
        s.pdu_command = ""
        s.pdu_buffer.clear()
        if self.dtr_mode == 0:
            return
        if self.dtr_mode == 1:
            self.voice.mode = ""  # back to command mode, the call stays
            self.fax2.mode = ""
            self.fax1.mode = ""
            return
        if (
            self.call_state == "active"
            or self.voice.mode
            or self.fax2.connected
            or self.fax1.in_call
        ):
            log.debug("port %s: DTR off, hanging up (&D2)", port)
            self._h(port, Command(name="H", form="exec", args=""))

    # --- analog voice/fax ------------------------------------------------------------------

    def _fclass(self, port: int, cmd: Command) -> Reply:
        offered = self.p.fclass_options
        if self.quirks.get("class2") and self.p.fclass_options_class2:
            offered = self.p.fclass_options_class2
        if cmd.form == "test":
            return [offered], "OK"
        if cmd.form == "read":
            return [self.fclass], "OK"
        if cmd.form != "set" or cmd.args not in offered.split(","):
            return [], "ERROR"
        if cmd.args == "8" and self.quirks.get("fclass8_error"):
            return [], "ERROR"  # callattendant #163
        self.fclass = cmd.args
        return [], "OK"

    def _vsm(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return list(self.p.vsm_options), "OK"
        if cmd.form == "read":
            return [self.vsm], "OK"
        if cmd.form == "set":
            codes = {opt.split(",")[0] for opt in self.p.vsm_options}
            parts = split_args(cmd.args)
            if parts[0] not in codes or (len(parts) > 1 and parts[1] not in ("", "8000")):
                return [], "ERROR"
            self.vsm = f"{parts[0]},8000,0,0"
            return [], "OK"
        return [], "ERROR"

    def _vls(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return list(self.p.vls_options), "OK"
        if cmd.form == "read":
            return [str(self.vls)], "OK"
        if cmd.form == "set":
            labels = {opt.split(",")[0] for opt in self.p.vls_options}
            value = cmd.args or "0"
            if value not in labels or self.fclass != "8":
                return [], "ERROR"
            self.vls = int(value)
            if self.vls == 0:
                return self._h(port, cmd)
            if self.call_state == "ringing":
                self.ring_generation += 1
                self.call_state = "active"
                self.voice.answered()
                self.fax1.answered_by_voice()
            return [], "OK"
        return [], "ERROR"

    def _ifc(self, port: int, cmd: Command) -> Reply:
        """V.250 6.2.12 +IFC=<DCE_by_DTE>,<DTE_by_DCE>: 0 none, 1 DC1/DC3 in band, 2
        circuits 105/106 (RTS/CTS); the CX93001 takes 0-2 for both, default 2,2 (Conexant
        CX93001 AT command reference). In the voice transmit state DTE_by_DCE 1 makes the
        modem send XOFF/XON as its buffer fills and drains (voice.VoiceSim)."""
        if cmd.form == "test":
            return ["+IFC: (0-2),(0-2)"], "OK"
        if cmd.form == "read":
            return [f"+IFC: {self.ifc[0]},{self.ifc[1]}"], "OK"
        if cmd.form != "set":
            return [], "ERROR"
        args = split_args(cmd.args)
        try:
            values = [int(a) if a else d for a, d in zip(args, self.ifc, strict=False)]
        except ValueError:
            return [], "ERROR"
        if not values or len(args) > 2 or any(v not in (0, 1, 2) for v in values):
            return [], "ERROR"
        self.ifc = (values[0], values[1] if len(values) > 1 else self.ifc[1])
        return [], "OK"

    def _vtx(self, port: int, cmd: Command) -> Reply:
        """V.253 10.1.4 +VTX: CONNECT, then audio from the host until DLE ETX."""
        if cmd.form != "exec" or self.fclass != "8" or not self.voice.start_play(port):
            return [], "ERROR"
        return [], "CONNECT"

    def _vrx(self, port: int, cmd: Command) -> Reply:
        """V.253 10.1.3 +VRX: CONNECT, then the line's audio until the host sends DLE !."""
        if cmd.form != "exec" or self.fclass != "8":
            return [], "ERROR"
        if self.quirks.get("vrx_needs_vls5") and self.vls != 5:
            return [], "ERROR"  # REFERENCE.md 1: USR5637 1.2.23+ wants AT+VLS=5 first
        if not self.voice.start_record(port):
            return [], "ERROR"
        return [], "CONNECT"

    def _gci(self, port: int, cmd: Command) -> Reply:
        # ITU-T T.35 country codes: 00 Japan, 09 Australia, 3D France, 42 Germany,
        # B4 United Kingdom, B5 United States.
        codes = ("00", "09", "3D", "42", "B4", "B5")
        if cmd.form == "test":
            return [f"+GCI: ({','.join(codes)})"], "OK"
        if cmd.form == "read":
            return [f"+GCI: {self.gci}"], "OK"
        if cmd.form == "set" and cmd.args.upper() in codes:
            self.gci = cmd.args.upper()
            return [], "OK"
        return [], "ERROR"

    # --- GSM: SIM, network -----------------------------------------------------------------

    def _cpin(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return [], "OK"
        if cmd.form == "read":
            # REFERENCE.md 2: some modems send no OK after the answer.
            return [f"+CPIN: {self.sim.state}"], None if self.quirks.get("cpin_no_ok") else "OK"
        if cmd.form != "set":
            return [], "ERROR"
        args = split_args(cmd.args)
        state = self.sim.state
        if state == "READY":
            raise self.cme(3)
        if state == "SIM PIN":
            if args[0] != self.sim.pin:
                self.sim.pin_attempts -= 1
                log.debug("wrong PIN, %s attempts left", self.sim.pin_attempts)
                raise self.cme(16)
            self.sim.pin_attempts = 3
        else:
            if len(args) < 2 or self.sim.puk_attempts <= 0 or args[0] != self.sim.puk:
                self.sim.puk_attempts = max(0, self.sim.puk_attempts - 1)
                raise self.cme(16)
            self.sim.pin = args[1]
            self.sim.pin_attempts = 3
            self.sim.puk_attempts = 10
        self.sim.unlocked = True
        gen = self.generation
        busy = self._sms_starting()
        self.host.call_later(0.05, lambda: self._sim_ready(gen, busy))
        return [], "OK"

    # PIN and PUK attempts left, as each vendor reports them.

    def _spic(self, port: int, cmd: Command) -> Reply:
        """SIMCom AT+SPIC (SIM800 Series AT Command Manual V1.09, SIM7500/SIM7600 manual):
        +SPIC: <pin1>,<puk1>,<pin2>,<puk2>."""
        if cmd.form == "test":
            return [], "OK"
        return [f"+SPIC: {self.sim.pin_attempts},{self.sim.puk_attempts},3,10"], "OK"

    def _qpinc(self, port: int, cmd: Command) -> Reply:
        """Quectel AT+QPINC="SC" (EC25&EC21 AT Commands Manual): +QPINC: "SC",<pin>,<puk>."""
        if cmd.form == "test":
            return ['+QPINC: ("SC","P2")'], "OK"
        facility = split_args(cmd.args)[0].strip('"').upper() if cmd.args else ""
        if cmd.form != "set" or facility not in ("SC", "P2"):
            return [], "ERROR"
        if facility == "P2":
            return ['+QPINC: "P2",3,10'], "OK"
        return [f'+QPINC: "SC",{self.sim.pin_attempts},{self.sim.puk_attempts}'], "OK"

    def _huawei_cpin(self, port: int, cmd: Command) -> Reply:
        """Huawei AT^CPIN? (E173/E1752 AT command interface specification):
        ^CPIN: <code>,[<times>],<puk_times>,<pin_times>,<puk2_times>,<pin2_times>."""
        if cmd.form == "test":
            return [], "OK"
        if cmd.form != "read":
            return [], "ERROR"
        state = self.sim.state
        times = {"SIM PIN": self.sim.pin_attempts, "SIM PUK": self.sim.puk_attempts}.get(state)
        code = "READY" if state == "READY" else state
        left = "" if times is None else str(times)
        return [f"^CPIN: {code},{left},{self.sim.puk_attempts},{self.sim.pin_attempts},10,3"], "OK"

    def _sim_ready(self, gen: int, busy: SimBusy | None = None) -> None:
        if gen != self.generation:
            return
        self._announce_ready(gen, busy)
        self._report_registration()

    def _report_registration(self) -> None:
        if self.creg:
            self.urc("+CREG: " + self._creg_fields(unsolicited=True))
        if self.cereg and self.p.lte:
            self.urc("+CEREG: " + self._cereg_fields(unsolicited=True))
        if self.cgreg:
            self.urc("+CGREG: " + self._cgreg_fields(unsolicited=True))

    def _creg_fields(self, unsolicited: bool = False) -> str:
        stat = self.registration
        head = f"{stat}" if unsolicited else f"{self.creg},{stat}"
        if self.creg == 2 and stat in (1, 5):
            return f'{head},"{self.network.lac}","{self.network.ci[-4:]}"'
        return head

    def _cgreg_fields(self, unsolicited: bool = False) -> str:
        """GPRS registration (3GPP TS 27.007 10.1.19; SIM800 manual: <n>,<stat>[,<lac>,<ci>]):
        the simulated network attaches packet service wherever it registers the phone."""
        stat = self.registration if self.cgatt else 0
        head = f"{stat}" if unsolicited else f"{self.cgreg},{stat}"
        if self.cgreg == 2 and stat in (1, 5):
            return f'{head},"{self.network.lac}","{self.network.ci[-4:]}"'
        return head

    def _cereg_fields(self, unsolicited: bool = False) -> str:
        stat = self.registration
        head = f"{stat}" if unsolicited else f"{self.cereg},{stat}"
        if self.cereg == 2 and stat in (1, 5):
            return f'{head},"{self.network.lac}","{self.network.ci}",7'
        return head

    def set_network(self, **changes: object) -> None:
        """Change registration or signal; +CREG/+CEREG URCs follow when enabled."""
        before = self.registration
        for key, value in changes.items():
            setattr(self.network, key, value)
        if self.registration != before:
            self._report_registration()

    def _creg(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return ["+CREG: (0-2)"], "OK"
        if cmd.form == "read":
            return ["+CREG: " + self._creg_fields()], "OK"
        if cmd.form == "set" and cmd.args in ("0", "1", "2"):
            self.creg = int(cmd.args)
            return [], "OK"
        return [], "ERROR"

    def _cgreg(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return ["+CGREG: (0-2)"], "OK"
        if cmd.form == "read":
            return ["+CGREG: " + self._cgreg_fields()], "OK"
        if cmd.form == "set" and cmd.args in ("0", "1", "2"):
            self.cgreg = int(cmd.args)
            return [], "OK"
        return [], "ERROR"

    def _cgatt(self, port: int, cmd: Command) -> Reply:
        """3GPP TS 27.007 10.1.9 packet service attach: 1 attached while registered."""
        if cmd.form == "test":
            return ["+CGATT: (0,1)"], "OK"
        if cmd.form == "read":
            attached = self.cgatt and self.registration in (1, 5)
            return [f"+CGATT: {1 if attached else 0}"], "OK"
        if cmd.form == "set" and cmd.args in ("0", "1"):
            self.cgatt = int(cmd.args)
            return [], "OK"
        return [], "ERROR"

    def _cereg(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return ["+CEREG: (0-2)"], "OK"
        if cmd.form == "read":
            return ["+CEREG: " + self._cereg_fields()], "OK"
        if cmd.form == "set" and cmd.args in ("0", "1", "2"):
            self.cereg = int(cmd.args)
            return [], "OK"
        return [], "ERROR"

    def _csq(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return ["+CSQ: (0-31,99),(0-7,99)"], "OK"
        if cmd.form == "exec":
            return [f"+CSQ: {self.network.rssi},{self.network.ber}"], "OK"
        return [], "ERROR"

    def _cops(self, port: int, cmd: Command) -> Reply:
        """3GPP TS 27.007 7.3: the read form gives the operator in the format last set with
        AT+COPS=3,<format> (0 long alphanumeric, 1 short, 2 numeric MCC+MNC)."""
        act = ",7" if self.p.lte else ""
        if cmd.form == "read":
            if self.registration not in (1, 5):
                return ["+COPS: 0"], "OK"
            name = (self.network.operator, "FD", "00101")[self.cops_format]
            return [f'+COPS: 0,{self.cops_format},"{name}"{act}'], "OK"
        if cmd.form == "test":
            return [f'+COPS: (2,"{self.network.operator}","FD","00101"{act}),,(0-4),(0-2)'], "OK"
        if cmd.form == "set":
            args = split_args(cmd.args)
            if len(args) >= 2 and args[0] == "3":
                if args[1] not in ("0", "1", "2"):
                    return [], "ERROR"
                self.cops_format = int(args[1])
            return [], "OK"
        return [], "ERROR"

    def _clip(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return ["+CLIP: (0,1)"], "OK"
        if cmd.form == "read":
            return [f"+CLIP: {self.clip},1"], "OK"
        if cmd.form == "set" and cmd.args in ("0", "1"):
            self.clip = int(cmd.args)
            return [], "OK"
        return [], "ERROR"

    def _cimi(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return [], "OK"
        self._require_sim()
        return [self.sim.imsi], "OK"

    def _ccid(self, port: int, cmd: Command) -> Reply:
        return [self.sim.iccid], "OK"

    def _cfun(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return ["+CFUN: (0,1,4),(0,1)"], "OK"
        if cmd.form == "read":
            return [f"+CFUN: {self.cfun}"], "OK"
        if cmd.form != "set":
            return [], "ERROR"
        args = split_args(cmd.args)
        if args[0] not in ("0", "1", "4"):
            return [], "ERROR"
        if len(args) > 1 and args[1] == "1":
            # Reset after OK: the module reboots and sends its boot URCs again.
            self.host.call_later(0.05, self.power_on)
            return [], "OK"
        self.cfun = int(args[0])
        return [], "OK"

    def _gcap(self, port: int, cmd: Command) -> Reply:
        return ["+GCAP: +CGSM"], "OK"

    def _cpbs(self, port: int, cmd: Command) -> Reply:
        self._require_sim()
        if cmd.form == "test":
            return ['+CPBS: ("SM","ME")'], "OK"
        if cmd.form == "read":
            return ['+CPBS: "SM",0,250'], "OK"
        return [], "OK"

    def _cpbr(self, port: int, cmd: Command) -> Reply:
        self._require_sim()
        if cmd.form == "test":
            return ["+CPBR: (1-250),40,14"], "OK"
        return [], "OK"

    # --- GSM: vendor audio -----------------------------------------------------------------

    def _cpcmreg(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "read":
            return [f"+CPCMREG: {self.cpcmreg}"], "OK"
        if cmd.form == "set" and cmd.args in ("0", "1"):
            if cmd.args == "1" and self.call_state != "active":
                return [], "ERROR"  # REFERENCE.md 2: only once the call is connected
            self.cpcmreg = int(cmd.args)
            self._pcm(self.cpcmreg == 1)
            return [], "OK"
        return [], "ERROR"

    def _qpcmv(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "read":
            return [f"+QPCMV: {self.qpcmv[0]},{self.qpcmv[1]}"], "OK"
        if cmd.form == "set":
            args = split_args(cmd.args)
            try:
                enable = int(args[0])
                mode = int(args[1]) if len(args) > 1 and args[1] else 0
            except ValueError:
                return [], "ERROR"
            if enable not in (0, 1) or mode not in (0, 1, 2):
                return [], "ERROR"
            self.qpcmv = (enable, mode)
            self._pcm(enable == 1 and mode == 0 and self.call_state == "active")
            return [], "OK"
        return [], "ERROR"

    def _qgpscfg(self, port: int, cmd: Command) -> Reply:
        args = split_args(cmd.args)
        if cmd.form != "set" or args[0].lower() != "outport":
            return [], "ERROR"
        if len(args) == 1:
            return [f'+QGPSCFG: "outport","{self.gps_outport}"'], "OK"
        if args[1] not in ("none", "usbnmea", "uartdebug"):
            return [], "ERROR"
        self.gps_outport = args[1]
        return [], "OK"

    def _qurccfg(self, port: int, cmd: Command) -> Reply:
        """Quectel AT+QURCCFG="urcport"[,<value>] (EC25&EC21 AT Commands Manual 2.25)."""
        if cmd.form == "test":
            return ['+QURCCFG: "urcport",("usbat","usbmodem","uart1")'], "OK"
        args = [a.strip().strip('"').lower() for a in split_args(cmd.args)]
        if cmd.form != "set" or not args or args[0] != "urcport":
            return [], "ERROR"
        if len(args) == 1:
            return [f'+QURCCFG: "urcport","{self.urcport}"'], "OK"
        if args[1] not in ("usbat", "usbmodem", "uart1"):
            return [], "ERROR"
        self.urcport = args[1]
        self._route_urcs()
        return [], "OK"

    def _catr(self, port: int, cmd: Command) -> Reply:
        """SIMCom AT+CATR (SIM7500/SIM7600 AT Command Manual V1.12 4.11): the URC port."""
        if cmd.form == "test":
            return ["+CATR: (0-7)"], "OK"
        if cmd.form == "read":
            return [f"+CATR: {self.catr}"], "OK"
        if cmd.form == "set" and cmd.args.strip() in tuple("01234567"):
            self.catr = int(cmd.args)
            self._route_urcs()
            return [], "OK"
        return [], "ERROR"

    def _ddsetex(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "set" and cmd.args == "2" and self.call_state == "active":
            self._pcm(True)
            return [], "OK"
        return [], "ERROR"

    def _pcm(self, on: bool) -> None:
        """Call audio on the serial PCM port on or off (simulator/gsm_audio.py)."""
        if self.extras.audio is not None:
            self.extras.audio.set_enabled(on)

    # --- GSM: SMS (3GPP TS 27.005) ---------------------------------------------------------

    def _cnmi(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return ["+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)"], "OK"
        if cmd.form == "read":
            return ["+CNMI: " + ",".join(str(v) for v in self.cnmi)], "OK"
        if cmd.form == "set":
            try:
                values = [int(a) if a else 0 for a in split_args(cmd.args)]
            except ValueError:
                return [], "ERROR"
            values = (values + [0] * 5)[:5]
            if not (0 <= values[0] <= 3 and 0 <= values[1] <= 3):
                return [], "ERROR"
            self.cnmi = values
            return [], "OK"
        return [], "ERROR"

    def _cscs(self, port: int, cmd: Command) -> Reply:
        sets = ("IRA", "GSM", "UCS2", "HEX", "PCCP936")
        if cmd.form == "test":
            return ["+CSCS: (" + ",".join(f'"{s}"' for s in sets) + ")"], "OK"
        if cmd.form == "read":
            return [f'+CSCS: "{self.cscs}"'], "OK"
        value = split_args(cmd.args)[0].upper()
        if cmd.form == "set" and value in sets:
            self.cscs = value
            return [], "OK"
        return [], "ERROR"

    def _csms(self, port: int, cmd: Command) -> Reply:
        if cmd.form == "test":
            return ["+CSMS: (0,1)"], "OK"
        if cmd.form == "read":
            return [f"+CSMS: {self.csms},1,1,1"], "OK"
        if cmd.form == "set" and cmd.args in ("0", "1"):
            self.csms = int(cmd.args)
            return ["+CSMS: 1,1,1"], "OK"
        return [], "ERROR"

    def _csca(self, port: int, cmd: Command) -> Reply:
        self._require_sim(sms=True)
        if cmd.form == "read":
            return [f'+CSCA: "{self.csca[0]}",{self.csca[1]}'], "OK"
        if cmd.form == "set":
            args = split_args(cmd.args)
            kind = int(args[1]) if len(args) > 1 and args[1] else 145
            self.csca = (args[0], kind)
            return [], "OK"
        return [], "OK"

    def _cpms(self, port: int, cmd: Command) -> Reply:
        self._require_sim(sms=True)
        names = list(self.memories)
        if cmd.form == "test":
            group = "(" + ",".join(f'"{n}"' for n in names) + ")"
            return [f"+CPMS: {group},{group},{group}"], "OK"
        if cmd.form == "read":
            parts = []
            for n in self.cpms:
                m = self.memories[n]
                parts.append(f'"{n}",{m.used},{m.capacity}')
            return ["+CPMS: " + ",".join(parts)], "OK"
        if cmd.form != "set":
            return [], "ERROR"
        wanted = [a.upper() for a in split_args(cmd.args) if a]
        if not wanted or len(wanted) > 3 or any(w not in self.memories for w in wanted):
            raise self.cms(302)
        for i, w in enumerate(wanted):
            self.cpms[i] = w
        counts = ",".join(f"{self.memories[n].used},{self.memories[n].capacity}" for n in self.cpms)
        return [f"+CPMS: {counts}"], "OK"

    def _pdu_mode_only(self) -> None:
        if self.cmgf != 0:
            raise self.cms(303)  # text mode listing is not simulated

    def _cmgl(self, port: int, cmd: Command) -> Reply:
        self._require_sim(sms=True)
        if cmd.form == "test":
            return ["+CMGL: (0-4)"], "OK"
        self._pdu_mode_only()
        try:
            stat = int(cmd.args or "0")
        except ValueError:
            raise self.cms(302) from None
        if not 0 <= stat <= ALL:
            raise self.cms(302)
        lines = []
        harm = self._line_noise("+CMGL")
        for index, sms in self.memories[self.cpms[0]].listing(stat):
            lines.append(f"+CMGL: {index},{sms.stat},,{sms.length}")
            if harm != "drop":
                lines.append(_cut(sms.pdu) if harm == "cut" else sms.pdu)
            harm = ""  # the first message listed takes the damage
        return lines, "OK"

    def _line_noise(self, command: str) -> str:
        for i, (name, how) in enumerate(self.line_noise):
            if name == command:
                del self.line_noise[i]
                return how
        return ""

    def _index(self, text: str) -> int:
        try:
            index = int(text)
        except ValueError:
            raise self.cms(321) from None
        if not 1 <= index <= self.memories[self.cpms[0]].capacity:
            raise self.cms(321)
        return index

    def _cmgr(self, port: int, cmd: Command) -> Reply:
        self._require_sim(sms=True)
        if cmd.form == "test":
            return [], "OK"
        if cmd.form != "set":
            return [], "ERROR"
        self._pdu_mode_only()
        sms = self.memories[self.cpms[0]].read(self._index(cmd.args))
        if sms is None:
            return [], "OK"  # SIM800 answers a bare OK for an empty slot
        harm = self._line_noise("+CMGR")
        if harm == "drop":
            return [f"+CMGR: {sms.stat},,{sms.length}"], "OK"
        pdu = _cut(sms.pdu) if harm == "cut" else sms.pdu
        return [f"+CMGR: {sms.stat},,{sms.length}", pdu], "OK"

    def _cmgd(self, port: int, cmd: Command) -> Reply:
        self._require_sim(sms=True)
        if cmd.form == "test":
            memory = self.memories[self.cpms[0]]
            used = ",".join(str(i) for i in sorted(memory.slots))
            return [f"+CMGD: ({used}),(0-4)"], "OK"
        if cmd.form != "set":
            return [], "ERROR"
        args = split_args(cmd.args)
        delflag = int(args[1]) if len(args) > 1 and args[1] else 0
        if not 0 <= delflag <= 4:
            raise self.cms(302)
        index = self._index(args[0]) if delflag == 0 else int(args[0] or "1")
        self.memories[self.cpms[0]].delete(index, delflag)
        if self.waiting_delivery:
            # Room again: the ME tells the network (TS 23.040 10.3, SM memory available) and
            # the SMSC delivers what it held.
            self.host.call_later(0.05, self._redeliver)
        return [], "OK"

    def _redeliver(self) -> None:
        waiting, self.waiting_delivery = self.waiting_delivery, []
        for pdu in waiting:
            self.deliver_sms(pdu)

    def _cmgs(self, port: int, cmd: Command) -> Reply:
        self._require_sim(sms=True)
        if cmd.form == "test":
            return [], "OK"
        if cmd.form != "set":
            return [], "ERROR"
        self._pdu_mode_only()
        args = split_args(cmd.args)
        try:
            length = int(args[0])
            stat = int(args[1]) if len(args) > 1 and args[1] else STO_UNSENT
        except ValueError:
            raise self.cms(304) from None
        if not 1 <= length <= 164:
            raise self.cms(304)
        if cmd.name == "+CMGS" and self.registration not in (1, 5):
            raise self.cms(331 if self.registration == 0 else 332)
        s = self.sessions[port]
        s.pdu_command = cmd.name
        s.pdu_length = length
        s.pdu_stat = stat
        s.pdu_buffer.clear()
        return [], None

    def _finish_pdu(self, port: int, cancel: bool) -> None:
        s = self.sessions[port]
        command, length, stat = s.pdu_command, s.pdu_length, s.pdu_stat
        pdu = s.pdu_buffer.decode("latin-1").strip()
        s.pdu_command = ""
        s.pdu_buffer.clear()
        if cancel:
            self.host.write(port, self._frame(port, [], "OK"))
            return
        try:
            ok = tpdu_length(pdu) == length
        except PduError:
            ok = False
        if not ok:
            self.host.write(port, self._frame(port, [], self.cms(304).final))
            return
        if command == "+CMGW":
            index = self.memories[self.cpms[1]].store(pdu, stat)
            if index is None:
                self.host.write(port, self._frame(port, [], self.cms(322).final))
                return
            self.host.write(port, self._frame(port, [f"+CMGW: {index}"], "OK"))
            return
        if self.send_errors:
            # Scripted network refusal, e.g. 38 network out of order (TS 27.005 3.2.5).
            self.host.write(port, self._frame(port, [], self.cms(self.send_errors.pop(0)).final))
            return
        self.message_reference = (self.message_reference + 1) % 256
        self.sent_sms.append(pdu.upper())
        log.debug("SMS sent, reference %s", self.message_reference)
        for hook in self.sms_sent_hooks:
            hook(pdu.upper())
        submit = pdu_bytes_safe(pdu)
        if submit is not None and self.report_status is not None:
            sca = submit[0]
            if len(submit) > sca + 2 and submit[sca + 1] & 0x20:  # TP-SRR (TS 23.040 9.2.3.5)
                mr, status = self.message_reference, self.report_status
                gen = self.generation
                self.host.call_later(
                    self.report_delay, lambda: self._status_report(gen, submit, mr, status)
                )
        self.host.write(port, self._frame(port, [f"+CMGS: {self.message_reference}"], "OK"))

    def _status_report(self, gen: int, submit: bytes, mr: int, status: int) -> None:
        """The SMSC's report on a message sent with TP-SRR, routed per +CNMI <ds>
        (TS 27.005 3.4.1: 1 as +CDS, 2 stored and announced as +CDSI)."""
        if gen != self.generation or not self.powered:
            return
        now = self.host.now()
        if now.tzinfo is None:
            now = now.astimezone()
        pdu = status_report_pdu(submit, mr, status, now) + self.report_trailer
        ds = self.cnmi[3]
        if ds == 1:
            if self.csms == 1:
                self.unacknowledged += 1
            self.urc(f"+CDS: {tpdu_length(pdu)}\r\n{pdu}")
        elif ds == 2:
            memory = self.cpms[2]
            index = self.memories[memory].store(pdu, REC_UNREAD)
            if index is not None:
                self.urc(f'+CDSI: "{memory}",{index}')

    def _cnma(self, port: int, cmd: Command) -> Reply:
        """TS 27.005 3.4.4: acknowledge a +CMT/+CDS routed to the TE (only with +CSMS=1)."""
        if cmd.form == "test":
            return ["+CNMA: (0-2)"], "OK"
        if self.csms != 1 or self.unacknowledged <= 0:
            raise self.cms(340)
        self.unacknowledged -= 1
        self.acknowledged += 1
        return [], "OK"

    def _cusd(self, port: int, cmd: Command) -> Reply:
        """TS 27.007 7.15: `AT+CUSD=1,"*100#",15` answers OK and then the network's reply
        as +CUSD: <m>,"<text>",<dcs> (REFERENCE.md 2: it may come before OK, and a
        +CUSD: 2 may follow)."""
        if cmd.form == "test":
            return ["+CUSD: (0-2)"], "OK"
        if cmd.form == "read":
            return ["+CUSD: 1"], "OK"
        args = split_args(cmd.args)
        if not args or args[0] not in ("0", "1", "2"):
            return [], "ERROR"
        if args[0] == "2" or len(args) < 2 or not args[1]:
            return [], "OK"
        self._require_sim()
        if self.registration not in (1, 5):
            raise self.cme(30)
        self.ussd_requests.append(args[1])
        if self.ussd_reply is None:  # the network never answers: OK, then nothing
            return [], "OK"
        text, dcs = self.ussd_reply
        reply = f'+CUSD: 0,"{text}",{dcs}'
        gen = self.generation
        if self.ussd_before_ok:
            lines = [reply]
        else:
            lines = []
            self.host.call_later(0.05, lambda: self._ussd_urc(gen, reply))
        if self.ussd_then_end:
            self.host.call_later(0.1, lambda: self._ussd_urc(gen, "+CUSD: 2"))
        return lines, "OK"

    def _ussd_urc(self, gen: int, text: str) -> None:
        if gen == self.generation and self.powered:
            self.urc(text)

    def deliver_sms(self, pdu_hex: str) -> int | None:
        """A message arrives from the network; stored and announced per +CNMI."""
        mt = self.cnmi[1]
        if mt == 2:
            # TS 27.005 3.4.1: <mt>=2 routes SMS-DELIVERs straight to the TE, unstored.
            if self.csms == 1:
                self.unacknowledged += 1
            self.urc(f"+CMT: ,{tpdu_length(pdu_hex)}\r\n{pdu_hex.strip().upper()}")
            return None
        memory = self.cpms[2]
        index = self.memories[memory].store(pdu_hex, REC_UNREAD)
        if index is None:
            # Memory full: the ME refuses the message (TS 23.040 9.2.3.22, memory capacity
            # exceeded) and the SMSC keeps it until the ME reports room again.
            log.debug("message memory %s full, the network holds the message", memory)
            self.waiting_delivery.append(pdu_hex)
            return None
        if mt in (1, 3):
            self.urc(f'+CMTI: "{memory}",{index}')
        return index


def _cut(pdu: str) -> str:
    """A PDU line that lost its second half on the way (noise, an overrun UART buffer)."""
    return pdu[: len(pdu) // 2]


__all__ = ["STO_SENT", "Engine", "Fail", "Host", "Network", "PortSession", "Sim"]
