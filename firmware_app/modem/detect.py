"""Modem detection: ask a port what it is and build a capability profile in the user's words.

`probe(chat, port)` sends ATI, AT+GMI/+GMM/+GMR, AT+FCLASS=?, AT+VSM=?, AT+VCID=?,
AT+CPIN? and reads the answers; it never assumes a class or format (REFERENCE.md 1: "ask
the modem"). `find_modems()` probes /dev/serial/by-id, /dev/ttyACM*, /dev/ttyUSB* and, for
modems with several ports, picks the one that carries unsolicited result codes.
"""

from __future__ import annotations

import glob
import logging
import os
import queue
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Literal

from ..protocol.at import (
    NEED_DATA,
    URC,
    ATEngine,
    Command,
    ErrorResult,
    PeerError,
    Response,
    Timeout,
    split_params,
    unquote,
)
from .transport import PortError, Transport

log = logging.getLogger(__name__)

Result = Response | ErrorResult | Timeout
Chat = Callable[[Command], Result]
Kind = Literal["analog", "gsm", "unknown"]

DEFAULT_PATTERNS: tuple[str, ...] = ("/dev/serial/by-id/*", "/dev/ttyACM*", "/dev/ttyUSB*")
PROBE_TIMEOUT = 1.5  # seconds per probe command; real modems answer in well under 100 ms

# +VSM=? format names (ITU-T V.253 10.1.x; USR5637 and CX93001 lists in REFERENCE.md 1) to
# words, in order of preference for telephone audio: G.711 first, then linear, then ADPCM.
_VOICE_WORDS: tuple[tuple[str, str], ...] = (
    ("ULAW", "u-law"),
    ("ALAW", "A-law"),
    ("16-BIT LINEAR", "16-bit linear"),
    ("8-BIT LINEAR", "8-bit linear"),
    ("UNSIGNED PCM", "8-bit unsigned linear"),
    ("SIGNED PCM", "8-bit signed linear"),
    ("ADPCM", "IMA ADPCM"),
)

# GSM audio paths (REFERENCE.md 2 table), matched on manufacturer + model text.
_GSM_AUDIO: tuple[tuple[str, str, str], ...] = (
    ("SIM7", "simcom", "PCM over USB serial (AT+CPCMREG)"),
    ("SIM", "simcom", "analog audio through a USB sound card"),
    ("QUECTEL", "quectel", "PCM over USB (AT+QPCMV) or USB sound card"),
    ("EC2", "quectel", "PCM over USB (AT+QPCMV) or USB sound card"),
    ("EG2", "quectel", "PCM over USB (AT+QPCMV) or USB sound card"),
    ("HUAWEI", "huawei", "PCM on a separate USB port (AT^DDSETEX)"),
    ("E17", "huawei", "PCM on a separate USB port (AT^DDSETEX)"),
    ("E15", "huawei", "PCM on a separate USB port (AT^DDSETEX)"),
)
# 3GPP TS 27.007 8.3 <code> values of +CPIN: READY, SIM PIN, SIM PUK, PH-SIM PIN, ...
_SIM_STATE = re.compile(r"(READY|SIM |PH[-_]|NOT |CORP |NET )", re.IGNORECASE)
_GSM_VENDORS = ("SIMCOM", "QUECTEL", "HUAWEI", "ZTE", "SIERRA", "TELIT", "U-BLOX", "FIBOCOM")

# Short model names people know, matched on ATI/+GMI/+GMM text.
_TITLES: tuple[tuple[str, str], ...] = (
    ("USR5637", "USR5637"),
    ("U.S. ROBOTICS", "U.S. Robotics modem"),
    ("CX9300", "Conexant CX93001"),
    ("CONEXANT", "Conexant modem"),
    ("MT9234MU", "MultiTech MT9234MU"),
    ("MT9234", "MultiTech MT9234"),
    ("MULTI-TECH", "MultiTech modem"),
    ("SIM800", "SIMCom SIM800"),
    ("SIM900", "SIMCom SIM900"),
    ("SIM7600", "SIMCom SIM7600"),
    ("EC25", "Quectel EC25"),
    ("EG25", "Quectel EG25"),
    ("E1752", "Huawei E1752"),
    ("E173", "Huawei E173"),
    ("SPANDSP", "SpanDSP software modem"),
)


@dataclass(frozen=True, slots=True)
class VoiceFormat:
    """One +VSM compression method: `code` for AT+VSM=<code>, `words` for people."""

    code: int
    name: str
    words: str
    rates: tuple[int, ...] = (8000,)

    def __str__(self) -> str:
        khz = "/".join(f"{r / 1000:g}" for r in self.rates)
        return f"{self.words} {khz} kHz"


@dataclass(frozen=True, slots=True)
class Profile:
    """What one modem can do, as found by `probe`."""

    port: str
    kind: Kind
    title: str
    manufacturer: str = ""
    model: str = ""
    revision: str = ""
    info: tuple[str, ...] = ()
    vendor: str = ""
    fax_classes: tuple[str, ...] = ()
    voice_formats: tuple[VoiceFormat, ...] = ()
    caller_id: bool = False
    caller_id_command: str = ""
    sim: str = ""
    lte: bool = False
    audio_path: str = ""
    ports: tuple[str, ...] = field(default_factory=tuple)
    cpin_no_ok: bool = False  # answers AT+CPIN? without a final OK (REFERENCE.md 2)

    @property
    def voice(self) -> bool:
        return bool(self.voice_formats)

    @property
    def gsm(self) -> bool:
        return self.kind == "gsm"

    @property
    def voice_format(self) -> VoiceFormat | None:
        """The preferred audio format (G.711 first), or None without voice."""
        return self.voice_formats[0] if self.voice_formats else None

    @property
    def capabilities(self) -> list[str]:
        """Capabilities in words: ``["analog line", "voice (u-law 8 kHz)", ...]``."""
        out: list[str] = []
        if self.kind == "analog":
            out.append("analog line")
            vf = self.voice_format
            out.append(f"voice ({vf})" if vf else "no voice")
            if self.fax_classes:
                out.append("fax Class " + "/".join(self.fax_classes))
            out.append("caller ID" if self.caller_id else "no caller ID")
        elif self.kind == "gsm":
            out.append("GSM line" + (" (LTE)" if self.lte else ""))
            out += ["caller ID", "SMS"]
            if self.audio_path:
                out.append("call audio: " + self.audio_path)
        else:
            out.append("not a modem Frontdesk can use")
        return out

    def describe(self) -> str:
        """``USR5637 on /dev/ttyACM0: analog line, voice (u-law 8 kHz), fax Class 1, caller ID``."""
        words = self.capabilities
        if self.kind == "gsm" and self.sim:
            words.append(_sim_words(self.sim))
        return f"{self.title} on {self.port}: " + ", ".join(words)


def _sim_words(sim: str) -> str:
    return {
        "READY": "SIM ready",
        "SIM PIN": "SIM needs its PIN",
        "SIM PUK": "SIM blocked (needs the PUK)",
        "NOT INSERTED": "no SIM card",
    }.get(sim.upper(), f"SIM: {sim}")


# --- parsing answers -------------------------------------------------------------------------


def parse_fclass(lines: Sequence[str]) -> tuple[str, ...]:
    """``0,1,1.0,8`` or ``(0,1,8)`` -> service classes, in the order given."""
    text = ",".join(lines).replace("(", "").replace(")", "")
    text = text.split(":", 1)[1] if ":" in text else text
    out: list[str] = []
    for part in text.split(","):
        p = part.strip()
        if re.fullmatch(r"\d+(\.\d+)?", p) and p not in out:
            out.append(p)
    return tuple(out)


def fax_classes(classes: Iterable[str]) -> tuple[str, ...]:
    """Fax service classes among +FCLASS options (0 is data, 8 voice, 80 VoiceView)."""
    return tuple(c for c in classes if c in ("1", "1.0", "2", "2.0", "2.1"))


def parse_vsm(lines: Sequence[str]) -> tuple[VoiceFormat, ...]:
    """+VSM=? lines, preferred format first: the V.253 form
    (``131,"8-BIT ULAW",8,0,(8000),(0),(0)``) or the short form of MultiTech's MT9234 series
    (``131,"8-BIT ULAW",(8000)``)."""
    found: list[tuple[int, VoiceFormat]] = []
    for line in lines:
        text = line.split(":", 1)[1] if line.upper().startswith("+VSM:") else line
        params = split_params(text.replace("(", '"(').replace(")", ')"'))
        if len(params) < 2 or not unquote(params[0]).isdigit():
            continue
        code = int(unquote(params[0]))
        name = unquote(params[1]).strip()
        rates: tuple[int, ...] = (8000,)
        rate_field = params[4] if len(params) > 4 else params[2] if len(params) == 3 else ""
        if rate_field:
            nums = tuple(int(n) for n in re.findall(r"\d+", unquote(rate_field)))
            rates = nums or rates
        upper = name.upper()
        for rank, (key, words) in enumerate(_VOICE_WORDS):
            if key in upper:
                found.append((rank, VoiceFormat(code, name, words, rates)))
                break
    found.sort(key=lambda f: (f[0], f[1].code))
    return tuple(f for _, f in found)


def _first_line(result: Result) -> str:
    if isinstance(result, Response) and result.lines:
        return result.lines[0].strip()
    return ""


def _strip_name(line: str, name: str) -> str:
    """``+GMR: 1.0`` or ``+CGMR: 1.0`` -> ``1.0``."""
    m = re.match(r"[+^][A-Z]*" + re.escape(name.lstrip("+^")) + r"\s*:\s*", line, re.IGNORECASE)
    return line[m.end() :].strip() if m else line


def _title(texts: Iterable[str]) -> tuple[str, str]:
    joined = " ".join(texts).upper()
    for key, title in _TITLES:
        if key in joined:
            upper = title.upper()
            vendor = ""
            if "ROBOTICS" in upper or "USR" in upper:
                vendor = "usr"
            elif "CONEXANT" in upper:
                vendor = "conexant"
            elif "MULTITECH" in upper:
                vendor = "multitech"
            elif "SPANDSP" in upper:
                vendor = "spandsp"
            return title, vendor
    return "", ""


# --- probing ---------------------------------------------------------------------------------


def probe(chat: Chat, port: str, *, timeout: float = PROBE_TIMEOUT) -> Profile | None:
    """Ask the modem on `port` what it is; None when nothing answers like a modem."""

    def ask(text: str) -> Result:
        return chat(Command(text, timeout=timeout))

    if not any(isinstance(ask("AT"), Response) for _ in range(2)):
        return None
    ask("ATE0V1Q0")
    info = tuple(ln for r in (ask("ATI"), ask("ATI3")) if isinstance(r, Response) for ln in r.lines)
    manufacturer = _strip_name(_first_line(ask("AT+GMI")), "+GMI")
    model = _strip_name(_first_line(ask("AT+GMM")), "+GMM")
    revision = _strip_name(_first_line(ask("AT+GMR")), "+GMR")
    texts = (manufacturer, model, *info)
    upper = " ".join(texts).upper()

    ask("AT+CMEE=1")
    cpin = ask("AT+CPIN?")
    sim = ""
    gsm = False
    cpin_no_ok = False
    if isinstance(cpin, Response):
        # Only a real SIM state counts: SpanDSP (iaxmodem) answers "+CPIN:0".
        sim = next((_strip_name(ln, "+CPIN") for ln in cpin.lines if ":" in ln), "")
        gsm = bool(_SIM_STATE.match(sim))
        sim = sim if gsm else ""
    elif isinstance(cpin, ErrorResult) and cpin.kind == "cme":
        gsm = True
        sim = "NOT INSERTED" if cpin.code == 10 else (cpin.message or "error")
    elif isinstance(cpin, Timeout) and any("+CPIN" in ln.upper() for ln in cpin.lines):
        gsm = cpin_no_ok = True  # some modems send no OK after +CPIN? (REFERENCE.md 2)
        sim = _strip_name(next(ln for ln in cpin.lines if "+CPIN" in ln.upper()), "+CPIN")
    gsm = gsm or any(v in upper for v in _GSM_VENDORS)

    if gsm:
        title, _ = _title(texts)
        vendor, audio = "", ""
        for key, ven, path in _GSM_AUDIO:
            if key in upper:
                vendor, audio = ven, path
                break
        lte = isinstance(ask("AT+CEREG=?"), Response)
        return Profile(
            port=port,
            kind="gsm",
            title=title or (model or manufacturer or "GSM modem"),
            manufacturer=manufacturer,
            model=model,
            revision=revision,
            info=info,
            vendor=vendor,
            caller_id=True,
            caller_id_command="AT+CLIP=1",
            sim=sim.strip().upper(),
            lte=lte,
            audio_path=audio,
            ports=(port,),
            cpin_no_ok=cpin_no_ok,
        )

    fclass = ask("AT+FCLASS=?")
    classes = parse_fclass(fclass.lines) if isinstance(fclass, Response) else ()
    voice: tuple[VoiceFormat, ...] = ()
    if "8" in classes:
        vsm = ask("AT+VSM=?")
        if isinstance(vsm, Response):
            voice = parse_vsm(vsm.lines)
    title, vendor = _title(texts)
    cid_command = ""
    if isinstance(ask("AT+VCID=?"), Response):
        cid_command = "AT+VCID=1"
        # REFERENCE.md 1: Conexant form AT-SCID=1;+VCID=1.
        if vendor == "conexant" and isinstance(ask("AT-SCID=?"), Response):
            cid_command = "AT-SCID=1;+VCID=1"
    elif isinstance(ask("AT#CID=?"), Response):
        cid_command = "AT#CID=1"  # old Rockwell form
    if not classes and not cid_command:
        return Profile(port=port, kind="unknown", title=title or model or "device", info=info)
    return Profile(
        port=port,
        kind="analog",
        title=title or model or manufacturer or "analog modem",
        manufacturer=manufacturer,
        model=model,
        revision=revision,
        info=info,
        vendor=vendor,
        fax_classes=fax_classes(classes),
        voice_formats=voice,
        caller_id=bool(cid_command),
        caller_id_command=cid_command,
        audio_path="modem voice mode (V.253)" if voice else "",
        ports=(port,),
    )


# --- the PCM audio port of multi-port GSM modems ---------------------------------------------

# USB interface that carries call audio as PCM for modems whose audio goes over a serial port:
# SIM7600 "USB audio" interface 4 (ttyUSB4 of 0-4), EC25 AT+QPCMV=1,0 on the NMEA interface 1,
# Huawei E173/E1752 voice on interface 1 (ttyUSB1, beside the AT port ttyUSB2). Keyed on the
# `vendor` of the profile and a model fragment; a modem that differs needs `audio.pcm_port`.
PCM_INTERFACE: tuple[tuple[str, str, int], ...] = (
    ("simcom", "SIM7", 4),
    ("quectel", "", 1),
    ("huawei", "", 1),
)


def pcm_interface(profile: Profile) -> int | None:
    """The USB interface number of the modem's PCM audio port, or None (no such port)."""
    text = f"{profile.manufacturer} {profile.model} {profile.title}".upper()
    for vendor, fragment, interface in PCM_INTERFACE:
        if profile.vendor == vendor and fragment in text:
            return interface
    return None


def sibling_ports(port: str, *, sys_root: str | os.PathLike[str] = "/sys") -> dict[int, str]:
    """Serial ports of the same USB device as `port`, by interface number.

    A `/dev/serial/by-id/...-ifNN-port0` name gives its siblings by name; otherwise sysfs
    (`/sys/class/tty/<tty>/device` is the interface, its parent the USB device) does.
    """
    out: dict[int, str] = {}
    m = _INTERFACE.match(Path(port).name)
    if m:
        for path in sorted(Path(port).parent.glob(m.group("device") + "-if*")):
            mm = _INTERFACE.match(path.name)
            if mm and mm.group("device") == m.group("device"):
                out.setdefault(int(mm.group("n")), str(path))
        if out:
            return out
    tty = Path(os.path.realpath(port)).name
    device = Path(sys_root) / "class" / "tty" / tty / "device"
    try:
        here = device.resolve()
        while here.parent != here and not (here / "bInterfaceNumber").is_file():
            here = here.parent  # usb-serial: .../1-1:1.2/ttyUSB2; cdc-acm: .../1-1:1.0
        if not (here / "bInterfaceNumber").is_file():
            return {}
        usb = here.parent
        for interface in sorted(usb.iterdir()):
            number = interface / "bInterfaceNumber"
            if not number.is_file():
                continue
            n = int(number.read_text(encoding="ascii").strip(), 16)
            for child in sorted(interface.iterdir()):
                name = child.name
                if name.startswith(("ttyUSB", "ttyACM")):
                    out.setdefault(n, f"/dev/{name}")
                elif name == "tty" and child.is_dir():
                    for sub in sorted(child.iterdir()):
                        out.setdefault(n, f"/dev/{sub.name}")
    except (OSError, ValueError):
        return {}
    return out


def pcm_port_for(profile: Profile, port: str, *, sys_root: str | os.PathLike[str] = "/sys") -> str:
    """The modem's PCM audio port next to its AT port `port`, or "" when it has none or
    it cannot be found (then `audio.pcm_port` in the machine config names it)."""
    interface = pcm_interface(profile)
    if interface is None:
        return ""
    found = sibling_ports(port, sys_root=sys_root).get(interface, "")
    if found and os.path.realpath(found) == os.path.realpath(port):
        return ""  # the AT port itself: never send audio there
    return found


# --- a blocking chat for the CLI and detection ----------------------------------------------


class BlockingChat:
    """A port, an AT engine and a queue: `chat(command)` waits for the result.

    For `frontdesk modem probe` and `find_modems()`; the daemon's lines have their own loop.
    """

    def __init__(self, url: str, baudrate: int = 115200) -> None:
        self.url = url
        self._q: queue.SimpleQueue[bytes | BaseException] = queue.SimpleQueue()
        self._engine = ATEngine()
        self._transport = Transport(url, baudrate, self._q.put, self._q.put, name="probe")
        self.urcs: list[URC] = []

    def __enter__(self) -> BlockingChat:
        self._transport.open()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def _feed(self, item: bytes | BaseException) -> None:
        if isinstance(item, BaseException):
            raise PortError(f"{self.url} went away: {item}")
        self._engine.receive_data(item)

    def _events(self) -> Result | None:
        result: Result | None = None
        while (ev := self._engine.next_event()) is not NEED_DATA:
            if isinstance(ev, URC):
                self.urcs.append(ev)
            elif isinstance(ev, Response | ErrorResult | Timeout):
                result = ev
            elif isinstance(ev, PeerError):
                log.debug("probe %s: ignored %r (%s)", self.url, ev.raw, ev.reason)
        return result

    def __call__(self, command: Command) -> Result:
        deadline = time.monotonic() + command.timeout
        self._transport.write(self._engine.send(command, deadline - command.timeout))
        while True:
            now = time.monotonic()
            self._engine.tick(now)
            result = self._events()
            if result is not None:
                return result
            try:
                item = self._q.get(timeout=max(0.0, deadline - now) + 0.005)
            except queue.Empty:
                continue
            self._feed(item)

    def listen(self, seconds: float) -> list[URC]:
        """Collect unsolicited codes for up to `seconds` (returns early on the first)."""
        deadline = time.monotonic() + seconds
        while not self.urcs:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._feed(self._q.get(timeout=left))
            except queue.Empty:
                break
            self._events()
        return list(self.urcs)


# --- the port that carries URCs --------------------------------------------------------------

# USB interface numbers by role, from the vendors' Linux USB guides: Quectel LTE modules
# (EC25/EG25: 0 DM, 1 NMEA, 2 AT, 3 modem) and SIMCom SIM7500/SIM7600 (0 diagnostics,
# 1 NMEA, 2 AT, 3 modem, 4 audio).
_AT_INTERFACE = 2
_MODEM_INTERFACE = 3
# Quectel AT+QURCCFG="urcport" values (EC25&EC21 AT Commands Manual 2.25) and SIMCom
# AT+CATR values (SIM7500/SIM7600 AT Command Manual V1.12 4.11: 0 all ports, 1 UART,
# 2 modem port, 3 AT port, 4-7 CMUX channels) -> the interface that gets URCs.
_QURCCFG_INTERFACE = {"usbat": _AT_INTERFACE, "usbmodem": _MODEM_INTERFACE, "all": _AT_INTERFACE}
_CATR_INTERFACE = {0: _AT_INTERFACE, 2: _MODEM_INTERFACE, 3: _AT_INTERFACE}
_PCUI = re.compile(r"PCUI\s*:\s*(\d+)", re.IGNORECASE)
_QURCCFG = re.compile(r'\+QURCCFG:\s*"urcport"\s*,\s*"([^"]*)"', re.IGNORECASE)


def interface_number(port: str, *, sys_root: str | os.PathLike[str] = "/sys") -> int | None:
    """The USB interface number of a serial port (by-id ``...-ifNN`` name, else sysfs)."""
    m = _INTERFACE.match(Path(port).name)
    if m:
        return int(m.group("n"))
    for number, path in sibling_ports(port, sys_root=sys_root).items():
        if os.path.realpath(path) == os.path.realpath(port):
            return number
    return None


def urc_port(
    profiles: Sequence[tuple[Profile, Chat]], *, timeout: float = PROBE_TIMEOUT
) -> Profile | None:
    """Of the answering ports of one modem, the one its vendor's documentation says gets the
    unsolicited codes, asked on the modem itself; None when that cannot be told.

    - Huawei: ``AT^GETPORTMODE`` lists each port's interface number; URCs go to the PCUI
      port (Huawei AT command interface specification; chan_dongle uses it for AT).
    - Quectel: ``AT+QURCCFG="urcport"`` (``usbat`` by default: interface 2; ``usbmodem``:
      interface 3). Set to ``uart1`` (a UART the USB host does not see), it is set to
      ``usbat`` so calls and texts are announced at all.
    - SIMCom (SIM7500/SIM7600): ``AT+CATR?`` (0 every port, the AT interface 2 is used;
      2 the modem port 3; 3 the AT port 2). On 1 (UART) it is set to 3.
    """
    by_interface: dict[int, tuple[Profile, Chat]] = {}
    for profile, chat in profiles:
        number = interface_number(profile.port)
        if number is None:
            return None
        by_interface[number] = (profile, chat)
    first, chat = profiles[0]
    vendor = first.vendor

    def ask(text: str) -> Result:
        return chat(Command(text, timeout=timeout))

    wanted: int | None = None
    if vendor == "huawei":
        answer = ask("AT^GETPORTMODE")
        if isinstance(answer, Response):
            m = _PCUI.search(" ".join(answer.lines))
            wanted = int(m.group(1)) if m else None
    elif vendor == "quectel":
        answer = ask('AT+QURCCFG="urcport"')
        if isinstance(answer, Response):
            m = _QURCCFG.search(" ".join(answer.lines))
            value = m.group(1).lower() if m else ""
            if value.startswith("uart"):
                log.info("%s: URCs went to the module's UART; now to its USB AT port", first.port)
                if isinstance(ask('AT+QURCCFG="urcport","usbat"'), Response):
                    value = "usbat"
            wanted = _QURCCFG_INTERFACE.get(value)
    elif vendor == "simcom":
        answer = ask("AT+CATR?")
        if isinstance(answer, Response):
            text = " ".join(answer.lines).split(":", 1)[-1].strip()
            catr = int(text) if text.isdigit() else None
            if catr == 1 and isinstance(ask("AT+CATR=3"), Response):
                log.info("%s: URCs went to the module's UART; now to its USB AT port", first.port)
                catr = 3
            wanted = _CATR_INTERFACE.get(catr) if catr is not None else None
    if wanted is None or wanted not in by_interface:
        return None
    return by_interface[wanted][0]


# --- finding modems --------------------------------------------------------------------------


def candidate_ports(patterns: Sequence[str] = DEFAULT_PATTERNS) -> list[str]:
    """Existing ports matching `patterns`, each device once (a by-id link wins)."""
    seen: dict[str, str] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):  # noqa: PTH207 - absolute patterns
            real = os.path.realpath(path)
            if real not in seen and Path(real).exists():
                seen[real] = path
    return list(seen.values())


_INTERFACE = re.compile(r"^(?P<device>.+?)-if(?P<n>\d+)(?:-port\d+)?$")


def group_ports(paths: Iterable[str]) -> list[list[str]]:
    """Ports of one USB device together (by-id names ``...-if00-port0``, ``...-if01``)."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        m = _INTERFACE.match(Path(path).name)
        key = str(Path(path).parent / m.group("device")) if m else path
        groups.setdefault(key, []).append(path)
    return [sorted(g) for g in groups.values()]


def find_modems(
    patterns: Sequence[str] = DEFAULT_PATTERNS,
    *,
    baudrate: int = 115200,
    listen: float = 3.0,
    timeout: float = PROBE_TIMEOUT,
    exclude: Iterable[str] = (),
) -> list[Profile]:
    """Probe every candidate port; one profile per modem (several = several lines).

    A modem with several ports is probed on each; the line uses the port that carries
    unsolicited codes (python-gsmmodem #44): the one the vendor's own command names
    (`urc_port`), else the first where one arrives within `listen` seconds, else the last
    one that answers. A USB device with any port in `exclude` is skipped as a whole (it is
    some line's modem).
    """
    skip = {os.path.realpath(p) for p in exclude}
    found: list[Profile] = []
    for group in group_ports(candidate_ports(patterns)):
        if any(os.path.realpath(p) in skip for p in group):
            # A port of this USB device is in use (a line's AT port, or its PCM audio port
            # during a call): the whole device belongs to that line; never probe its ports.
            continue
        profiles: list[tuple[Profile, BlockingChat]] = []
        try:
            for path in group:
                chat = BlockingChat(path, baudrate)
                try:
                    chat.__enter__()
                except PortError as exc:
                    log.info("%s: %s", path, exc)
                    continue
                try:
                    profile = probe(chat, path, timeout=timeout)
                except PortError as exc:
                    log.info("%s: %s", path, exc)
                    profile = None
                if profile is None or profile.kind == "unknown":
                    chat.close()
                    continue
                profiles.append((profile, chat))
            if not profiles:
                continue
            best = profiles[-1][0]
            if len(profiles) > 1:
                chosen = urc_port(profiles, timeout=timeout)
                deadline = time.monotonic() + listen
                while chosen is None and time.monotonic() < deadline:
                    for profile, chat in profiles:
                        if chat.listen(0.05):
                            chosen = profile
                            break
                best = chosen or best
            # Every port of the device (the silent ones too: diagnostics, NMEA, PCM audio)
            # belongs to the line.
            ports = tuple(dict.fromkeys([*group, *(p.port for p, _ in profiles)]))
            found.append(replace(best, ports=ports))
        finally:
            for _, chat in profiles:
                chat.close()
    return found
