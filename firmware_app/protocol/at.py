"""AT command engine for modem lines: bytes from the modem in, typed events out.

Sans-I/O like h11: no serial port, threads, sleeping or clock. The caller writes what `send()`
returns, feeds reads to `receive_data()`, pulls `next_event()` and passes time to `tick()`.
Nothing the modem sends may make it raise: bad input becomes a `PeerError` event.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Final, Literal

from firmware_app.protocol.errors import LocalProtocolError

# Response or URC? (see docs/protocol.md)
# How a line is classified while a command is in flight (first rule that matches wins):
#
# 1. echo: the command text itself, or (before any response line) a line starting with
#    ``AT`` (garbled echo); after the ``"> "`` prompt, the echoed body. Dropped.
# 2. final result code (OK, CONNECT [rate], ERROR, +CME ERROR, +CMS ERROR, NO CARRIER, BUSY,
#    NO ANSWER, NO DIALTONE, vendor forms such as COMMAND NOT SUPPORT): ends the command.
#    NO CARRIER / BUSY / NO ANSWER / NO DIALTONE end only a command that can end that way
#    (`Command.call_result`: ATD, ATA, ATO, A/, fax +F..., voice +VTX/+VRX/+VTR/+VLS); during
#    any other command (AT+CLCC, AT+CSQ in a call) the call ended: a URC, and the command
#    goes on waiting for its own result.
# 3. a line starting with one of the command's own response prefixes (derived from the
#    command: ``AT+CREG?`` -> ``+CREG:``; ``AT+CSQ`` -> ``+CSQ:``) is a response line, even
#    when that prefix is also a known URC.
# 4. a known unsolicited result code (RING, +CMTI, +CLIP, ^RSSI, caller-ID lines, ...) is a URC.
# 5. anything else is an intermediate response line (ATI text, a PDU after +CMGR, ...).
#
# With no command in flight: NO CARRIER / BUSY / NO ANSWER / NO DIALTONE are URCs (the call
# ended), CONNECT is a URC that switches to data mode, a ``+NAME:`` / ``^NAME:`` line is a URC
# (known or not), a bare hex line is a ``HEX`` URC (raw caller-ID packet), and any other final
# result or text is a `PeerError`.

__all__ = [
    "CME_ERRORS",
    "CMS_ERRORS",
    "NEED_DATA",
    "URC",
    "ATEngine",
    "Command",
    "Data",
    "ErrorResult",
    "Event",
    "Mode",
    "PeerError",
    "Prompt",
    "Response",
    "Timeout",
    "ends_like_a_call",
    "parse_cme_error",
    "parse_cmti",
    "parse_creg",
    "parse_csq",
    "parse_cusd",
    "split_params",
    "unquote",
]

DEFAULT_MAX_LINE: Final = 4096
CTRL_Z: Final = b"\x1a"


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _NeedData.NEED_DATA
"""Returned by `ATEngine.next_event()` when every event so far has been handed out."""


class Mode(enum.Enum):
    COMMAND = "command"
    DATA = "data"


# --- grammar -----------------------------------------------------------------------------

# Line ends: ITU-T V.250 5.7.1 says <CR><LF>; real modems also send \r\r\n, bare \n and a
# lone \r (echo). One terminator is "any CRs then LF" or "one or more CRs".
_EOL = re.compile(rb"\r*\n|\r+")
# Bytes stripped from both ends of a line: C0 controls, space, DEL (NULs after power-up,
# the Ctrl-Z echoed after an SMS body).
_JUNK = "".join(chr(c) for c in range(0x21)) + "\x7f"
# A control character left inside a line after stripping: the line is garbled.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Extended command names in a command line (V.250 5.4.1: "+" then a letter; vendors use
# ^, $, %, # and *). Quoted strings are removed first so "*100#" is not taken for a name.
_CMD_NAME = re.compile(r"[+^$%#*][A-Z][A-Z0-9]*")
_QUOTED = re.compile(r'"[^"]*"')
# A URC or response with a name and a colon: "+CMTI: ...", "^RSSI:...", "+CRING: VOICE".
_NAMED = re.compile(r"([+^$%#*][A-Za-z][A-Za-z0-9_]*)\s*:")
# Caller-ID lines from analog modems (V.253 +VCID=1; mgetty cnd.c; NCID test data;
# iaxmodem): "NMBR = 123", "DATE TIME=01/06 14:15", "NAME= NMBR=1 USER= NDID=2".
_CID_LINE = re.compile(r"(DATE TIME|DDN_NMBR|DATE|TIME|NMBR|NAME|MESG|NDID)\s*=", re.IGNORECASE)
# SIM7600 reports a call the caller gave up on as "MISSED_CALL: <time> <number>" (SIM7500/
# SIM7600 Series AT Command Manual, unsolicited codes): a name with a colon but no prefix.
_MISSED_CALL = re.compile(r"MISSED_CALL\s*:\s*(.*)", re.IGNORECASE)
# A bare hex line (raw SDMF/MDMF packet with +VCID=2, or a PDU after +CMT/+CDS).
_HEX = re.compile(r"[0-9A-Fa-f]+")
# Final result codes, V.250 5.7.1 table 1 and 3GPP TS 27.007 9.2 / TS 27.005 3.2.5.
_CONNECT = re.compile(r"CONNECT(?:\s+(?P<rate>.*))?", re.IGNORECASE)
_EXT_ERROR = re.compile(r"\+(?P<kind>CME|CMS) ERROR\s*:?\s*(?P<arg>.*)", re.IGNORECASE)
_ERROR_WORDS: Final[dict[str, str]] = {
    "ERROR": "error",
    "NO CARRIER": "no_carrier",
    "BUSY": "busy",
    "NO ANSWER": "no_answer",
    "NO DIALTONE": "no_dialtone",
    "NO DIAL TONE": "no_dialtone",
    "DELAYED": "delayed",
    "BLACKLISTED": "blacklisted",
    "ABORTED": "aborted",
    "+FCERROR": "fcerror",
    # vendor forms (Huawei E1xx)
    "COMMAND NOT SUPPORT": "not_supported",
    "TOO MANY PARAMETERS": "error",
}
# Results that mean "the call ended" when no command is in flight, or one that cannot end so.
_CALL_END_WORDS: Final = frozenset({"NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"})
# Commands whose final result may be one of those (V.250 6.3: D dial, A answer, O online;
# T.31/T.32 fax commands +F...; V.253 voice +VTX/+VRX/+VTR and +VLS, which goes off-hook).
_CALL_BASIC: Final = frozenset("ADO")
_CALL_EXTENDED: Final = frozenset({"+VTX", "+VRX", "+VTR", "+VLS"})
# Known unsolicited codes with a colon (3GPP TS 27.007 / 27.005; SIMCom, Quectel, Huawei).
_URC_NAMES: Final = frozenset(
    {
        "+CRING", "+CLIP", "+CCWA", "+CMTI", "+CDSI", "+CDS", "+CMT", "+CBM", "+CBMI",
        "+CUSD", "+CREG", "+CEREG", "+CGREG", "+C5GREG", "+CSSI", "+CSSU", "+CIEV",
        "+CPIN", "+CFUN", "+CTZV", "+CTZE", "+CGEV", "+CLCC", "+QIND", "+QUSIM", "+PACSP",
        "^RSSI", "^HCSQ", "^BOOT", "^MODE", "^SRVST", "^SIMST", "^CEND", "^ORIG", "^CONF",
        "^CONN", "^DSFLOWRPT", "^RFSWITCH", "^SYSSTART", "^STIN", "^CURC", "^NWTIME",
    }
)  # fmt: skip
# URCs followed by a second line holding a PDU (TS 27.005 3.4.1, PDU mode).
_TWO_LINE_URCS: Final = frozenset({"+CDS", "+CMT", "+CBM"})
# Known unsolicited codes without a colon, compared in upper case (SIMCom SIM800 manual;
# SMS DONE and PB DONE: SIM7500/SIM7600 manual).
_URC_WORDS: Final[dict[str, str]] = {
    w.upper(): w
    for w in (
        "RING", "Call Ready", "SMS Ready", "RDY", "PB DONE", "SMS DONE", "NORMAL POWER DOWN",
        "POWERED DOWN", "UNDER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE WARNING",
        "OVER-VOLTAGE POWER DOWN", "OVER-VOLTAGE WARNING",
        # SIM800 firmware spells it so (SIM800 Series AT Command Manual, 1.2.x URC list)
        "UNDER-VOLTAGE WARNNING", "OVER-VOLTAGE WARNNING",
    )
}  # fmt: skip
# One-byte reads that are not plain line text: line ends and the start of the "> " prompt.
_LINE_BYTES: Final = frozenset((b"\r", b"\n", b">"))
# Commands that answer with the "> " prompt (TS 27.005 3.5.1, 3.5.3, 3.5.5).
_PROMPT_COMMANDS: Final = frozenset({"+CMGS", "+CMGW", "+CMGC"})


# --- commands and events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One command line to send, with its own timeout (seconds).

    `body` is sent after the ``"> "`` prompt, followed by Ctrl-Z (SMS PDU).
    `prefixes` overrides the response prefixes derived from the text.
    """

    text: str
    timeout: float = 5.0
    body: bytes | None = field(default=None, kw_only=True)
    prefixes: tuple[str, ...] | None = field(default=None, kw_only=True)
    # May NO CARRIER / BUSY / NO ANSWER / NO DIALTONE be this command's final result? None:
    # derived from the text (`ends_like_a_call`).
    call_result: bool | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.text[:2].upper() not in ("AT", "A/"):
            raise LocalProtocolError(f"command {self.text!r} must start with AT")
        if "\r" in self.text or "\n" in self.text:
            raise LocalProtocolError(f"command {self.text!r} must not contain a line end")
        if not self.text.isascii():
            raise LocalProtocolError(f"command {self.text!r} must be ASCII")
        if not self.timeout > 0:
            raise LocalProtocolError(f"timeout {self.timeout!r} must be a positive number")
        if self.body is not None and (CTRL_Z in self.body or b"\x1b" in self.body):
            raise LocalProtocolError("an SMS body must not contain Ctrl-Z or ESC")
        if self.prefixes is None:
            object.__setattr__(self, "prefixes", command_prefixes(self.text))
        if self.call_result is None:
            object.__setattr__(self, "call_result", ends_like_a_call(self.text))

    @property
    def expects_prompt(self) -> bool:
        names = {p.rstrip(":") for p in self.prefixes or ()}
        return self.body is not None or bool(names & _PROMPT_COMMANDS)


def ends_like_a_call(text: str) -> bool:
    """Can this command line end with NO CARRIER, BUSY, NO ANSWER or NO DIALTONE?

    Basic commands D, A, O (V.250 6.3) and A/ can; so can fax (+F...) and voice data
    commands (+VTX, +VRX, +VTR, +VLS). ``AT+CLCC``, ``AT&D2``, ``AT+CMGD=1`` cannot.
    """
    upper = text.upper()
    if upper.startswith("A/"):
        return True
    body = _QUOTED.sub('""', upper[2:])
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c in "+^$%#*-":
            m = _CMD_NAME.match(body, i) if c != "-" else re.match(r"-[A-Z][A-Z0-9]*", body[i:])
            name = m.group(0) if m is not None else ""
            if name.startswith("+F") or name in _CALL_EXTENDED:
                return True
            end = body.find(";", i)
            if end < 0:
                return False
            i = end + 1
        elif c == "&":
            i += 2  # &C1, &D2, &F, &W: an ampersand command letter and its number
        elif c == "S" and i + 1 < n and body[i + 1].isdigit():
            i += 1  # S-register: S0=0, S7?
            while i < n and (body[i].isdigit() or body[i] in "=?"):
                i += 1
        elif c in _CALL_BASIC:
            return True
        else:
            i += 1
    return False


def command_prefixes(text: str) -> tuple[str, ...]:
    """Response prefixes of a command line: ``AT+CREG=2;+CREG?`` -> ``("+CREG:",)``."""
    names = _CMD_NAME.findall(_QUOTED.sub("", text[2:].upper()))
    return tuple(dict.fromkeys(n + ":" for n in names))


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of the engine's events."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(Event):
    """A command finished with OK or CONNECT. `lines` are its intermediate lines."""

    command: Command
    lines: tuple[str, ...]
    result: str
    rate: str | None = None
    raw_lines: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorResult(Event):
    """A command finished with an error result code.

    `kind`: error, cme, cms, no_carrier, busy, no_answer, no_dialtone, not_supported, ...
    `code`: the +CME/+CMS number when given; `message`: its meaning in words.
    """

    command: Command
    lines: tuple[str, ...]
    result: str
    kind: str
    code: int | None = None
    message: str | None = None
    raw_lines: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Prompt(Event):
    """The modem sent ``"> "``. When the command has a body it is queued in `pending_output`."""

    command: Command
    body_queued: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class URC(Event):
    """An unsolicited result code. `name`: ``+CMTI``, ``RING``, ``NMBR``, ``HEX``, ...

    `args`: the text after the name's ``:`` or ``=``; `extra`: a second line (PDU of +CDS/+CMT).
    `known`: False for a ``+NAME:`` line outside the table of known URCs.
    """

    name: str
    args: str
    line: str
    raw: bytes
    extra: tuple[str, ...] = ()
    known: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Data(Event):
    """Raw bytes received in data mode (after CONNECT), unchanged."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout(Event):
    """The command in flight got no final result before its deadline; it is dropped."""

    command: Command
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerError(Event):
    """The modem sent something wrong (garbled or endless line, stray result). Skipped."""

    reason: str
    raw: bytes


@dataclass(slots=True)
class _InFlight:
    command: Command
    deadline: float
    upper: str
    lines: list[str] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    prompted: bool = False


@dataclass(slots=True)
class _PendingUrc:
    name: str
    args: str
    line: str
    raw: bytes


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# --- the engine ----------------------------------------------------------------------------


class ATEngine:
    """One modem port's command/response state machine. Single-threaded; one command at a time."""

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 16:
            raise LocalProtocolError(f"max_line {max_line} is too small; use at least 16")
        self.max_line = max_line
        self._buf = b""
        self._events: deque[Event] = deque()
        self._out = bytearray()
        self._mode = Mode.COMMAND
        self._inflight: _InFlight | None = None
        self._pending_urc: _PendingUrc | None = None
        self._discarding = False
        self._skip_lf = False
        self._lone_cr = False
        # Command mode, no over-long line being dropped, no ">" waiting for its next byte:
        # a one-byte read inside a line is only appended (see `receive_data`).
        self._plain = True

    # -- state --

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def in_flight(self) -> Command | None:
        return self._inflight.command if self._inflight else None

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished line held back (never more than `max_line`)."""
        return len(self._buf)

    # -- host side --

    def send(self, command: Command, now: float) -> bytes:
        """Start `command`; returns the bytes to write. One command at a time."""
        if self._mode is Mode.DATA:
            raise LocalProtocolError(f"cannot send {command.text!r} in data mode")
        if self._inflight is not None:
            raise LocalProtocolError(
                f"cannot send {command.text!r}: {self._inflight.command.text!r} is in flight"
            )
        self._inflight = _InFlight(command, now + command.timeout, command.text.upper())
        return command.text.encode("ascii") + b"\r"

    def send_body(self, body: bytes) -> bytes:
        """Bytes to write after a `Prompt` for a command sent without `body=`."""
        if self._inflight is None or not self._inflight.prompted:
            raise LocalProtocolError("no '> ' prompt is waiting for a body")
        if CTRL_Z in body or b"\x1b" in body:
            raise LocalProtocolError("an SMS body must not contain Ctrl-Z or ESC")
        return body + CTRL_Z

    def pending_output(self) -> bytes:
        """Bytes the engine wants written (an SMS body after the prompt); empties the queue."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def tick(self, now: float) -> None:
        """Expire the command in flight when `now` is past its deadline."""
        inf = self._inflight
        if inf is not None and now >= inf.deadline:
            self._inflight = None
            self._events.append(Timeout(command=inf.command, lines=tuple(inf.lines)))

    def enter_data_mode(self) -> None:
        """Hand every following byte out as `Data` (the modem went online without CONNECT)."""
        self._flush_pending_urc()
        self._mode = Mode.DATA
        self._plain = False
        self._inflight = None

    def enter_command_mode(
        self, leftover: bytes = b"", *, await_result: Command | None = None, now: float = 0.0
    ) -> None:
        """Back to line parsing after data mode.

        `leftover`: bytes of the last `Data` that follow the data's end marker (they are
        parsed as lines). `await_result`: a command whose final result is still to come
        (``OK`` after ``DLE ETX`` of ``AT+VRX``); it is put in flight without being sent.
        """
        if self._mode is not Mode.DATA:
            raise LocalProtocolError("the engine is not in data mode")
        self._mode = Mode.COMMAND
        self._skip_lf = False
        self._discarding = False
        self._buf = b""
        self._plain = True
        if await_result is not None:
            self._inflight = _InFlight(
                await_result, now + await_result.timeout, await_result.text.upper()
            )
        self.receive_data(leftover)

    # -- modem side --

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the modem. Never raises on their content."""
        if self._plain and len(data) == 1:
            # A port read byte by byte: inside a line a byte is only appended, and a line
            # end with no line before it (the LF after a CR, the CR LF before a reply) is
            # nothing; a few operations instead of a pass through the parser.
            if data not in _LINE_BYTES:
                buf = self._buf
                if len(buf) < self.max_line:
                    self._buf = buf + data
                    return
            elif not self._buf and data != b">":
                return
        if not data:
            return
        self._receive(data)
        self._plain = self._mode is Mode.COMMAND and not self._discarding and self._buf[:1] != b">"

    def _receive(self, data: bytes) -> None:
        if self._mode is Mode.DATA:
            self._data(data)
            return
        if b"\r" not in data and b"\n" not in data and b">" not in data:
            # fast path for small reads inside a line: nothing to parse yet
            if self._discarding:
                return
            buf = self._buf + data
            if len(buf) <= self.max_line and buf[:1] != b">":
                self._buf = buf
                return
        buf = self._buf + data if self._buf else data
        pos = 0
        end = len(buf)
        eol = _EOL.search
        cap = self.max_line
        while pos < end:
            if self._data_mode():
                self._buf = b""
                self._data(buf[pos:])
                return
            inf = self._inflight
            if inf is not None and not inf.prompted and buf.startswith(b">", pos):
                if buf.startswith(b"> ", pos) and inf.command.expects_prompt:
                    pos += 2
                    self._prompt(inf)
                    continue
                if end - pos < 2:
                    break  # wait for the byte after ">"
            m = eol(buf, pos)
            if m is None:
                break
            start = m.start()
            if self._discarding:
                self._discarding = False
            elif start - pos > cap:
                self._events.append(
                    PeerError(
                        reason=f"line longer than {cap} bytes dropped", raw=buf[pos : pos + 64]
                    )
                )
            elif start > pos:
                # a line ended by CR at the very end of the input: its LF may still come
                self._lone_cr = m.end() == end and buf[end - 1] == 13
                self._line(buf[pos:start])
            pos = m.end()
        rest = buf[pos:]
        if len(rest) > cap:
            if not self._discarding:
                self._events.append(
                    PeerError(reason=f"line longer than {cap} bytes dropped", raw=rest[:64])
                )
            self._discarding = True
            rest = b""
        self._buf = rest

    def next_event(self) -> Event | Literal[_NeedData.NEED_DATA]:
        """The next event, or `NEED_DATA` when there is none yet."""
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def events(self) -> list[Event]:
        """Every event waiting, in order (a convenience over `next_event`)."""
        out = list(self._events)
        self._events.clear()
        return out

    # -- internals --

    def _data_mode(self) -> bool:
        return self._mode is Mode.DATA

    def _data(self, data: bytes) -> None:
        if self._skip_lf:
            # CONNECT ended with CR at the end of a read: the rest of its line end
            # (more CRs, one LF) may open this read; drop it as a whole read would.
            i, n = 0, len(data)
            while i < n and data[i] == 13:
                i += 1
            if i == n:
                return
            if data[i] == 10:
                i += 1
            self._skip_lf = False
            data = data[i:]
            if not data:
                return
        self._events.append(Data(data=data))

    def _prompt(self, inf: _InFlight) -> None:
        inf.prompted = True
        body = inf.command.body
        if body is not None:
            self._out += body + CTRL_Z
        self._events.append(Prompt(command=inf.command, body_queued=body is not None))

    def _flush_pending_urc(self) -> None:
        p = self._pending_urc
        if p is not None:
            self._pending_urc = None
            self._events.append(URC(name=p.name, args=p.args, line=p.line, raw=p.raw))

    def _line(self, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        text = text.strip(_JUNK)
        if not text:
            return
        pend = self._pending_urc
        if pend is not None:
            self._pending_urc = None
            if _HEX.fullmatch(text):
                self._events.append(
                    URC(name=pend.name, args=pend.args, line=pend.line, raw=pend.raw, extra=(text,))
                )
                return
            self._events.append(URC(name=pend.name, args=pend.args, line=pend.line, raw=pend.raw))
        if _CONTROL.search(text):
            self._events.append(PeerError(reason="garbled line", raw=raw))
            return
        inf = self._inflight
        if inf is not None:
            self._line_in_command(inf, text, raw)
        else:
            self._line_idle(text, raw)

    def _line_in_command(self, inf: _InFlight, text: str, raw: bytes) -> None:
        upper = text.upper()
        # 1. echo
        if not inf.lines and (upper == inf.upper or upper.startswith("AT")):
            return
        if (
            inf.prompted
            and inf.command.body is not None
            and raw.strip(b"\r\n\x1a> ") == (inf.command.body)
        ):
            return
        # 2. final result
        if upper in _CALL_END_WORDS and not inf.command.call_result:
            # The call ended while an unrelated command was in flight: tell the line now;
            # the command still gets its own OK or ERROR.
            self._events.append(URC(name=upper, args="", line=text, raw=raw))
            return
        if self._final(inf, text, upper):
            return
        # 3. the command's own response
        for p in inf.command.prefixes or ():
            if upper.startswith(p):
                inf.lines.append(text)
                inf.raw.append(raw)
                return
        # 4. unsolicited
        if self._urc(text, upper, raw, known_only=True):
            return
        # 5. intermediate line
        inf.lines.append(text)
        inf.raw.append(raw)

    def _final(self, inf: _InFlight, text: str, upper: str) -> bool:
        cmd = inf.command
        # VCON: the voice connection is up (ITU-T V.253 8.2.1, answer or dial in +FCLASS=8);
        # unlike CONNECT it does not start data mode.
        if upper in ("OK", "VCON"):
            self._inflight = None
            self._events.append(
                Response(command=cmd, lines=tuple(inf.lines), result=text, raw_lines=tuple(inf.raw))
            )
            return True
        kind = _ERROR_WORDS.get(upper)
        code: int | None = None
        message: str | None = None
        if kind is None:
            c0 = upper[:1]
            if c0 == "C":
                m = _CONNECT.fullmatch(text)
                if m is None:
                    return False
                self._inflight = None
                self._events.append(
                    Response(
                        command=cmd,
                        lines=tuple(inf.lines),
                        result=text,
                        rate=m.group("rate"),
                        raw_lines=tuple(inf.raw),
                    )
                )
                self._enter_data_after_connect()
                return True
            if c0 != "+":
                return False
            e = _EXT_ERROR.fullmatch(text)
            if e is None:
                return False
            kind = e.group("kind").lower()
            code, message = parse_cme_error(text)
        self._inflight = None
        self._events.append(
            ErrorResult(
                command=cmd,
                lines=tuple(inf.lines),
                result=text,
                kind=kind,
                code=code,
                message=message,
                raw_lines=tuple(inf.raw),
            )
        )
        return True

    def _enter_data_after_connect(self) -> None:
        self._mode = Mode.DATA
        self._skip_lf = self._lone_cr

    def _urc(self, text: str, upper: str, raw: bytes, *, known_only: bool) -> bool:
        c0 = text[0]
        if c0 in "+^$%#*":
            m = _NAMED.match(text)
            if m is None:
                return False
            name = m.group(1).upper()
            known = name in _URC_NAMES
            if known_only and not known:
                return False
            args = text[m.end() :].strip()
            if name in _TWO_LINE_URCS:
                self._pending_urc = _PendingUrc(name, args, text, raw)
                return True
            self._events.append(URC(name=name, args=args, line=text, raw=raw, known=known))
            return True
        word = _URC_WORDS.get(upper)
        if word is not None:
            self._events.append(URC(name=word, args="", line=text, raw=raw))
            return True
        m = _MISSED_CALL.fullmatch(text)
        if m is not None:
            self._events.append(
                URC(name="MISSED_CALL", args=m.group(1).strip(), line=text, raw=raw)
            )
            return True
        m = _CID_LINE.match(text)
        if m is not None:
            name = m.group(1).upper()
            self._events.append(URC(name=name, args=text[m.end() :].strip(), line=text, raw=raw))
            return True
        return False

    def _line_idle(self, text: str, raw: bytes) -> None:
        upper = text.upper()
        if upper in _CALL_END_WORDS:
            self._events.append(URC(name=upper, args="", line=text, raw=raw))
            return
        if upper.startswith("CONNECT"):
            m = _CONNECT.fullmatch(text)
            if m is not None:
                self._events.append(
                    URC(name="CONNECT", args=m.group("rate") or "", line=text, raw=raw)
                )
                self._enter_data_after_connect()
                return
        if upper == "OK" or upper in _ERROR_WORDS or _EXT_ERROR.fullmatch(text):
            self._events.append(PeerError(reason="result code with no command in flight", raw=raw))
            return
        if self._urc(text, upper, raw, known_only=False):
            return
        if len(text) >= 6 and _HEX.fullmatch(text):
            self._events.append(URC(name="HEX", args=text, line=text, raw=raw))
            return
        self._events.append(PeerError(reason="unexpected line with no command in flight", raw=raw))


# --- typed parsing of parameters -----------------------------------------------------------


def split_params(args: str) -> tuple[str, ...]:
    """Split ``1,"SM",,5`` into ``('1', '"SM"', '', '5')``; quotes are kept (see `unquote`).

    Parameters are comma-separated; strings are in double quotes and may hold commas
    (ITU-T V.250 5.4.2.2).
    """
    text = args.strip()
    if not text:
        return ()
    if '"' not in text:
        return tuple(p.strip() for p in text.split(","))
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return tuple(out)


def unquote(param: str) -> str:
    """``'"SM"'`` -> ``'SM'``; an unquoted parameter is returned unchanged."""
    if len(param) >= 2 and param[0] == '"' and param[-1] == '"':
        return param[1:-1]
    return param


def _int(param: str) -> int | None:
    p = unquote(param).strip()
    if p.isdigit() and p.isascii():
        return int(p)
    return None


def _args_of(line: str, name: str) -> str:
    text = line.strip()
    if text.upper().startswith(name + ":"):
        return text[len(name) + 1 :].strip()
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class Cmti:
    """``+CMTI: "SM",3``: a new SMS stored at `index` in `storage` (TS 27.005 3.4.1)."""

    storage: str
    index: int


def parse_cmti(line: str) -> Cmti | None:
    """Parse +CMTI (or +CDSI, same shape); None if it is not well formed."""
    text = line.strip()
    for name in ("+CMTI", "+CDSI"):
        text = _args_of(text, name)
    p = split_params(text)
    if len(p) < 2:
        return None
    index = _int(p[1])
    if index is None:
        return None
    return Cmti(storage=unquote(p[0]), index=index)


@dataclass(frozen=True, slots=True, kw_only=True)
class Creg:
    """Network registration (TS 27.007 7.2). `n` is only present in a query's answer."""

    stat: int
    n: int | None = None
    lac: str | None = None
    ci: str | None = None
    act: int | None = None

    @property
    def registered(self) -> bool:
        return self.stat in (1, 5)

    @property
    def roaming(self) -> bool:
        return self.stat == 5


def parse_creg(line: str) -> Creg | None:
    """Parse +CREG/+CGREG/+CEREG, as a query answer (``n,stat,...``) or a URC (``stat,...``).

    The forms are told apart by the second field: quoted (a LAC) means URC form.
    """
    text = line.strip()
    for name in ("+CREG", "+CGREG", "+CEREG", "+C5GREG"):
        text = _args_of(text, name)
    p = split_params(text)
    if not p:
        return None
    if len(p) >= 2 and not p[1].startswith('"') and _int(p[1]) is not None:
        n, rest = _int(p[0]), p[1:]
        if n is None:
            return None
    else:
        n, rest = None, p
    stat = _int(rest[0])
    if stat is None:
        return None
    lac = unquote(rest[1]) if len(rest) > 1 and rest[1] else None
    ci = unquote(rest[2]) if len(rest) > 2 and rest[2] else None
    act = _int(rest[3]) if len(rest) > 3 else None
    return Creg(stat=stat, n=n, lac=lac, ci=ci, act=act)


@dataclass(frozen=True, slots=True, kw_only=True)
class Csq:
    """Signal quality (TS 27.007 8.5): rssi 0-31 or 99 unknown; ber 0-7 or 99."""

    rssi: int
    ber: int

    @property
    def dbm(self) -> int | None:
        """-113 dBm at 0, 2 dB a step, -51 dBm at 31; None when unknown."""
        if 0 <= self.rssi <= 31:
            return -113 + 2 * self.rssi
        return None


def parse_csq(line: str) -> Csq | None:
    p = split_params(_args_of(line, "+CSQ"))
    if len(p) < 2:
        return None
    rssi, ber = _int(p[0]), _int(p[1])
    if rssi is None or ber is None:
        return None
    return Csq(rssi=rssi, ber=ber)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cusd:
    """USSD reply (TS 27.007 7.15): `m` 0 done, 1 more action needed, 2 ended by network."""

    m: int
    text: str | None = None
    dcs: int | None = None

    @property
    def decoded(self) -> str | None:
        """`text` decoded from UCS-2 hex when the DCS says UCS-2 (TS 23.038 5), else as is."""
        if self.text is None:
            return None
        ucs2 = self.dcs in (17, 72) or (self.dcs is not None and self.dcs & 0xCC == 0x48)
        if ucs2 and len(self.text) % 4 == 0 and _HEX.fullmatch(self.text):
            return bytes.fromhex(self.text).decode("utf-16-be", errors="replace")
        return self.text


def parse_cusd(line: str) -> Cusd | None:
    p = split_params(_args_of(line, "+CUSD"))
    if not p:
        return None
    m = _int(p[0])
    if m is None:
        return None
    text = unquote(p[1]) if len(p) > 1 and p[1] else None
    dcs = _int(p[2]) if len(p) > 2 else None
    return Cusd(m=m, text=text, dcs=dcs)


# 3GPP TS 27.007 9.2.1 (general) and 9.2.2 (GPRS) errors; 515 is a vendor code (SIMCom,
# Sierra Wireless: busy initialising or processing a command; retry with backoff).
CME_ERRORS: Final[dict[int, str]] = {
    0: "phone failure",
    1: "no connection to phone",
    2: "phone adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    6: "PH-FSIM PIN required",
    7: "PH-FSIM PUK required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    26: "dial string too long",
    27: "invalid characters in dial string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    40: "network personalisation PIN required",
    41: "network personalisation PUK required",
    42: "network subset personalisation PIN required",
    43: "network subset personalisation PUK required",
    44: "service provider personalisation PIN required",
    45: "service provider personalisation PUK required",
    46: "corporate personalisation PIN required",
    47: "corporate personalisation PUK required",
    48: "PH-SIM PUK required",
    100: "unknown",
    103: "illegal MS",
    106: "illegal ME",
    107: "GPRS services not allowed",
    111: "PLMN not allowed",
    112: "location area not allowed",
    113: "roaming not allowed in this location area",
    148: "unspecified GPRS error",
    149: "PDP authentication failure",
    150: "invalid mobile class",
    515: "please wait, initialisation or command processing in progress (vendor)",
}

# 3GPP TS 27.005 3.2.5: 1-127 are TS 24.011 RP causes, 128-255 TS 23.040 TP causes,
# 300-500 the TA's own.
CMS_ERRORS: Final[dict[int, str]] = {
    1: "unassigned (unallocated) number",
    8: "operator determined barring",
    10: "call barred",
    17: "network failure",
    21: "short message transfer rejected",
    22: "congestion",
    27: "destination out of service",
    28: "unidentified subscriber",
    29: "facility rejected",
    30: "unknown subscriber",
    38: "network out of order",
    41: "temporary failure",
    42: "congestion",
    47: "resources unavailable, unspecified",
    50: "requested facility not subscribed",
    69: "requested facility not implemented",
    81: "invalid short message transfer reference value",
    95: "invalid message, unspecified",
    96: "invalid mandatory information",
    97: "message type non-existent or not implemented",
    98: "message not compatible with short message protocol state",
    99: "information element non-existent or not implemented",
    111: "protocol error, unspecified",
    127: "interworking, unspecified",
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    312: "PH-SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    315: "SIM wrong",
    316: "SIM PUK required",
    317: "SIM PIN2 required",
    318: "SIM PUK2 required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}


def parse_cme_error(line: str) -> tuple[int | None, str | None]:
    """``+CME ERROR: 10`` -> ``(10, "SIM not inserted")``; verbose forms (+CMEE=2) give
    ``(None, text)``; works for +CMS ERROR with the TS 27.005 table."""
    m = _EXT_ERROR.fullmatch(line.strip())
    if m is None:
        return None, None
    arg = m.group("arg").strip()
    table = CME_ERRORS if m.group("kind").upper() == "CME" else CMS_ERRORS
    if arg.isdigit() and arg.isascii():
        code = int(arg)
        return code, table.get(code)
    return None, arg or None
