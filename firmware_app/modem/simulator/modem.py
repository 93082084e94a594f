"""A simulated modem on a pseudo-terminal, scriptable from tests and the demo.

One daemon thread owns the pty masters and a timer heap; it sleeps in poll() until bytes,
a timer or a wake-up arrive (no busy polling). A stable symlink per port stands in for
/dev/serial/by-id, so unplug/replug can swap the pty under the same path.

DTR: a pty has no modem control lines, so the last close of the host's side stands for DTR
going off (the host closed the port or its process died). The modem keeps its own handle on
the slave side until the host has sent something (the master would otherwise report a
hang-up all the time); then it lets go, and the master's hang-up is the host going away:
the engine's `dtr_off()` (V.250 &D), and the modem takes its handle back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import heapq
import itertools
import logging
import os
import re
import select
import termios
import threading
import time
import tty
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType

from .callerid import CallerId
from .engine import Engine, Sim
from .fax2 import Class2Sim, FaxMachine
from .gsm_audio import Extras, GsmAudio
from .personalities import PERSONALITIES, PERSONALITY_NAMES, Personality
from .voice import VoiceSim

log = logging.getLogger(__name__)

_MAX_PENDING = 64 * 1024  # bytes queued per port when nobody reads; more is dropped


@dataclass(slots=True)
class _Port:
    link: Path
    master: int = -1
    slave: int = -1
    slave_name: str = ""
    pending: bytearray = field(default_factory=bytearray)


class SimulatedModem:
    """A modem personality answering on a pty; open `path` with pyserial like a real port."""

    def __init__(
        self,
        personality: Personality | str,
        folder: str | os.PathLike[str],
        *,
        quirks: Mapping[str, bool] | None = None,
        pin: str | None = None,
        puk: str = "12345678",
        boot_delay: float = 0.0,
        urc_interval: float = 2.0,
        clock: Callable[[], datetime] = datetime.now,
        link_name: str | None = None,
        usb: bool = False,
        ready_delay: float = 0.0,
    ) -> None:
        if isinstance(personality, str):
            personality = personality_by_name(personality)
        if usb and personality.usb_roles:
            # Every serial interface of the USB module, as its vendor's Linux guide lists
            # them (diagnostics, NMEA, AT, modem, ...), instead of its AT port alone.
            personality = dataclasses.replace(
                personality,
                ports=len(personality.usb_roles),
                port_roles=personality.usb_roles,
                urc_port=personality.usb_urc_port,
            )
        self.personality = personality
        merged = dict(personality.quirks)
        for name, on in (quirks or {}).items():
            if name not in merged:
                known = ", ".join(sorted(merged)) or "none"
                raise ValueError(
                    f"quirk {name!r} is not known for {personality.name}; known: {known}"
                )
            merged[name] = on
        self.quirks = merged
        self.folder = Path(folder)
        self._clock = clock
        base = link_name or f"tty-{personality.name}"
        if personality.ports == 1:
            links = [self.folder / base]
        else:
            links = [self.folder / f"{base}-if{i:02d}" for i in range(personality.ports)]
        self._ports = [_Port(link=link) for link in links]
        self._lock = threading.RLock()
        self._commands_changed = threading.Condition(self._lock)
        self._commands: list[str] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self.plugged = False
        self.engine = Engine(
            personality,
            self,
            quirks=self.quirks,
            sim=Sim(pin=pin, puk=puk),
            boot_delay=boot_delay,
            urc_interval=urc_interval,
            ready_delay=ready_delay,
        )

    # --- paths -----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """Stable path of the first port (the one a user would configure)."""
        return self._ports[0].link

    @property
    def paths(self) -> list[Path]:
        """Stable paths of every port, in interface order."""
        return [p.link for p in self._ports]

    @property
    def urc_path(self) -> Path:
        """Stable path of the port that carries unsolicited result codes (the first of
        them when the modem sends them to several)."""
        return self._ports[self._urc_port].link

    @property
    def _urc_port(self) -> int:
        ports = self.engine.urc_ports
        return ports[0] if ports else self.personality.urc_port

    def _voice_port(self) -> int | None:
        roles = self.personality.port_roles
        return roles.index("voice") if "voice" in roles else None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> SimulatedModem:
        """Create the ptys, plug in, power on and start the thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this simulated modem was closed; create a new one")
            if self._thread is not None:
                return self
            self.folder.mkdir(parents=True, exist_ok=True)
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._plug()
            self.engine.power_on()
            self._thread = threading.Thread(
                target=self._run, name=f"sim-{self.personality.name}", daemon=True
            )
            self._thread.start()
        log.info("simulated %s on %s", self.personality.name, self.path)
        return self

    def close(self) -> None:
        """Stop the thread, close the ptys, remove the links. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._wake()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        audio = self.engine.extras.audio
        if audio is not None:
            audio.close()
        with self._lock:
            self._unplug()
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1
            self._timers.clear()

    def __enter__(self) -> SimulatedModem:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _plug(self) -> None:
        voice = self._voice_port()
        for index, port in enumerate(self._ports):
            if index == voice:
                continue  # the PCM audio port: `pcm_audio()` puts its pty there
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            port.master, port.slave = master, slave
            port.slave_name = os.ttyname(slave)
            port.pending.clear()
            tmp = port.link.with_name(port.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(port.slave_name)
            tmp.replace(port.link)
        self.plugged = True

    def _unplug(self) -> None:
        voice = self._voice_port()
        for index, port in enumerate(self._ports):
            if index == voice:
                continue
            for fd in (port.master, port.slave):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            port.master = port.slave = -1
            port.pending.clear()
            with contextlib.suppress(FileNotFoundError):
                port.link.unlink()
        self.plugged = False

    # --- Host interface for the engine ------------------------------------------------------

    def write(self, port: int, data: bytes) -> None:
        """Queue bytes for the host side of a port and send what the pty takes now."""
        with self._lock:
            p = self._ports[port]
            if p.master < 0:
                return
            room = _MAX_PENDING - len(p.pending)
            if len(data) > room:
                log.debug("port %s: %s bytes dropped, nobody reads", port, len(data) - room)
                data = data[:room]
            p.pending += data
            self._flush(p)
            if p.pending:
                self._wake()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._wake()

    def record(self, port: int, line: str) -> None:
        with self._lock:
            self._commands.append(line)
            self._commands_changed.notify_all()
        log.debug("port %s <- %s", port, line)

    def now(self) -> datetime:
        return self._clock()

    # --- the thread ------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"x")

    def _flush(self, p: _Port) -> None:
        while p.pending and p.master >= 0:
            try:
                n = os.write(p.master, p.pending)
            except BlockingIOError:
                return
            except OSError as exc:
                log.debug("write to pty failed: %s", exc)
                p.pending.clear()
                return
            del p.pending[:n]

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                poller = select.poll()
                poller.register(self._wake_r, select.POLLIN)
                for p in self._ports:
                    if p.master >= 0:
                        mask = select.POLLIN | (select.POLLOUT if p.pending else 0)
                        poller.register(p.master, mask)
                timeout_ms: int | None = None
                if self._timers:
                    delay = self._timers[0][0] - time.monotonic()
                    timeout_ms = max(0, int(delay * 1000) + 1)
            try:
                events = poller.poll(timeout_ms)
            except InterruptedError:
                continue
            with self._lock:
                if self._stopping:
                    return
                for fd, mask in events:
                    if fd == self._wake_r:
                        with contextlib.suppress(BlockingIOError, OSError):
                            os.read(self._wake_r, 4096)
                        continue
                    self._service(fd, mask)
                self._run_timers()

    def _service(self, fd: int, mask: int) -> None:
        for index, p in enumerate(self._ports):
            if p.master != fd:
                continue
            if mask & select.POLLOUT:
                self._flush(p)
            if mask & (select.POLLIN | select.POLLHUP | select.POLLERR):
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    return
                except OSError as exc:
                    if exc.errno == errno.EIO and p.slave < 0:
                        self._host_gone(index, p)
                    elif exc.errno != errno.EIO:
                        log.debug("read from pty failed: %s", exc)
                    return
                if data:
                    if p.slave >= 0:
                        self._host_holds(index, p)
                    self._guarded(functools.partial(self.engine.receive, index, data))
                elif p.slave < 0:
                    self._host_gone(index, p)
            return

    def _host_holds(self, index: int, p: _Port) -> None:
        """The host has the port open (it wrote to it): let go of our slave handle, so its
        last close shows as a hang-up on the master."""
        with contextlib.suppress(OSError):
            os.close(p.slave)
        p.slave = -1
        self.engine.dtr_on(index)

    def _host_gone(self, index: int, p: _Port) -> None:
        """Nobody holds the slave side any more: DTR off. Take our handle back (no hang-up
        reported in a loop), drop what the host never read, tell the engine."""
        try:
            p.slave = os.open(p.slave_name, os.O_RDWR | os.O_NOCTTY)
            termios.tcflush(p.slave, termios.TCIOFLUSH)
        except OSError as exc:
            log.debug("reopening %s failed: %s", p.slave_name, exc)
        p.pending.clear()
        log.debug("port %s: the host closed it (DTR off)", index)
        self._guarded(functools.partial(self.engine.dtr_off, index))

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            self._guarded(fn)

    def _guarded(self, fn: Callable[[], None]) -> None:
        """A bug in one command or timer is logged; it never kills the modem thread."""
        try:
            fn()
        except Exception:
            log.exception("simulated %s: internal error", self.personality.name)

    # --- scripting API (thread-safe) -------------------------------------------------------

    def pcm_audio(self, speed: float = 1.0) -> GsmAudio:
        """The serial PCM port (the module's "voice" interface, e.g. the Huawei's `-if01`;
        else `tty-<name>-pcm`) and the far end's script; created on first use. `speed` > 1
        sends frames faster than real time (tests)."""
        with self._lock:
            audio = self.engine.extras.audio
            if audio is None:
                voice = self._voice_port()
                if voice is not None:
                    link = self._ports[voice].link  # the module's own audio interface
                else:
                    link = self._ports[0].link.with_name(self._ports[0].link.name + "-pcm")
                audio = GsmAudio(self, link, speed=speed)
                self.engine.extras.audio = audio
            audio.speed = speed
            return audio

    @property
    def extras(self) -> Extras:
        """Forwarding (`forwards`), the called party (`callee`), `dialled`, `flashes`."""
        return self.engine.extras

    @property
    def commands(self) -> list[str]:
        """Every command line received so far (from `AT`, as typed), oldest first."""
        with self._lock:
            return list(self._commands)

    def wait_for_command(self, pattern: str, timeout: float = 5.0, since: int = 0) -> str:
        """First command at index >= `since` matching `pattern` (re.search, ignoring case)."""
        regex = re.compile(pattern, re.IGNORECASE)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for line in self._commands[since:]:
                    if regex.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no command matching {pattern!r} within {timeout} s")
                self._commands_changed.wait(left)

    def ring(
        self,
        caller_id: CallerId | str | None = None,
        *,
        rings: int = 3,
        interval: float = 6.0,
        name: str | None = None,
    ) -> None:
        """An incoming call: `rings` RINGs `interval` s apart, caller ID per the modem's mode."""
        if isinstance(caller_id, str):
            caller_id = CallerId(number=caller_id, name=name)
        with self._lock:
            self.engine.start_ringing(caller_id, rings, interval)

    def drop_dtr(self, port: int | None = None) -> None:
        """The host drops DTR on `port` (default: every port) without closing it: with the
        power-on `&D2` a call is hung up and the modem is in command mode (V.250 6.2.9)."""
        with self._lock:
            for index in range(len(self._ports)) if port is None else (port,):
                self.engine.dtr_off(index)
                self.engine.dtr_on(index)  # DTR is back on at once

    def caller_hangs_up(self) -> None:
        """The caller gives up (ringing stops) or ends an answered call."""
        with self._lock:
            self.engine.caller_hangs_up()

    @property
    def call_state(self) -> str:
        """idle, ringing or active."""
        with self._lock:
            return self.engine.call_state

    def unplug(self) -> None:
        """Like pulling the USB plug: the pty goes away and reads on the old port fail."""
        with self._lock:
            self.engine.generation += 1
            self.engine.ring_generation += 1
            self.engine.call_state = "idle"
            self.engine.powered = False
            self._timers.clear()
            self._unplug()
            self._wake()

    def replug(self) -> None:
        """Plug back in: a new pty behind the same path and a power-on (boot URCs included)."""
        with self._lock:
            if self.plugged:
                self.unplug()
            self._plug()
            self.engine.power_on()
            self._wake()

    def reset(self) -> None:
        """A power cycle without unplugging: state back to power-on, boot URCs again."""
        with self._lock:
            self._timers.clear()
            self.engine.power_on()

    def stop_answering(self) -> None:
        """The modem hangs: it still reads (and records) commands but never answers."""
        with self._lock:
            self.engine.answering = False

    hang = stop_answering

    def resume(self) -> None:
        """Answer again after `stop_answering()`."""
        with self._lock:
            self.engine.answering = True

    def send_garbage(self, data: bytes, port: int | None = None) -> None:
        """Raw bytes to the host (line noise, a half URC, binary junk)."""
        self.write(self._urc_port if port is None else port, data)

    def send_urc(self, text: str) -> None:
        """Any unsolicited line, framed as the modem frames URCs."""
        with self._lock:
            self.engine.urc(text)

    def under_voltage(self, power_down: bool = False) -> None:
        """SIM800 supply warnings; a power down stops the modem until reset() or replug()."""
        with self._lock:
            if power_down:
                # The spelling of the warning follows the SIM800 manual ("WARNNING").
                self.engine.urc("UNDER-VOLTAGE POWER DOWN")
                self.engine.powered = False
                self.engine.generation += 1
            else:
                self.engine.urc("UNDER-VOLTAGE WARNNING")

    def deliver_sms(self, pdu_hex: str) -> int | None:
        """A received SMS-DELIVER PDU (hex, SMSC address first); returns its slot or None."""
        with self._lock:
            return self.engine.deliver_sms(pdu_hex)

    def store_sms(self, pdu_hex: str, stat: int = 1, memory: str = "SM") -> int | None:
        """Put a message in a memory silently (a SIM that already holds messages)."""
        with self._lock:
            return self.engine.memories[memory].store(pdu_hex, stat)

    def messages(self, memory: str = "SM") -> dict[int, tuple[int, str]]:
        """Slot -> (status, PDU hex) of one message memory."""
        with self._lock:
            return {i: (s.stat, s.pdu) for i, s in self.engine.memories[memory].slots.items()}

    def deliver_parts(self, pdus: list[str], order: list[int] | None = None) -> list[int | None]:
        """Several received PDUs (the parts of a long message) in the given order of their
        indices (`order`, default as listed): networks do not keep parts in order."""
        with self._lock:
            return [self.engine.deliver_sms(pdus[i]) for i in (order or range(len(pdus)))]

    def fail_next_send(self, *codes: int) -> None:
        """The next AT+CMGS commands fail with these +CMS ERROR codes, one each (38 network
        out of order, 42 congestion: temporary; 21 rejected, 1 unassigned: permanent)."""
        with self._lock:
            self.engine.send_errors.extend(codes)

    def set_status_reports(
        self, status: int | None = 0x00, delay: float = 0.2, trailer: str = ""
    ) -> None:
        """Status reports for messages sent with TP-SRR: TP-ST `status` (0 delivered,
        0x41 incompatible destination, ...) after `delay` s; None sends none. `trailer`:
        hex appended after TP-ST, the optional part (TS 23.040 9.2.3.27), whole or broken."""
        with self._lock:
            self.engine.report_status = status
            self.engine.report_delay = delay
            self.engine.report_trailer = trailer.upper()

    def set_ussd_reply(
        self, text: str | None, dcs: int = 15, *, before_ok: bool = False, then_end: bool = False
    ) -> None:
        """What the network answers to AT+CUSD=1,"<code>": `text` (UCS-2 hex with dcs 72),
        before the OK or after it, optionally followed by +CUSD: 2. None: the modem says OK
        and the network never answers (no +CUSD at all)."""
        with self._lock:
            self.engine.ussd_reply = None if text is None else (text, dcs)
            self.engine.ussd_before_ok = before_ok
            self.engine.ussd_then_end = then_end

    @property
    def ussd_requests(self) -> list[str]:
        """USSD strings the host sent (`*100#`)."""
        with self._lock:
            return list(self.engine.ussd_requests)

    @property
    def acknowledged(self) -> int:
        """+CNMA acknowledgements received for +CMT/+CDS (TS 27.005 3.4.4)."""
        with self._lock:
            return self.engine.acknowledged

    @property
    def waiting_delivery(self) -> int:
        """Messages the network holds because the message memory was full."""
        with self._lock:
            return len(self.engine.waiting_delivery)

    def hold(self, pattern: str) -> None:
        """Commands matching `pattern` are recorded but never answered (a modem stuck in
        the middle of one command), until `release()`."""
        with self._lock:
            self.engine.held.append(re.compile(pattern, re.IGNORECASE))

    def release(self) -> None:
        """Answer every command again (held ones stay unanswered)."""
        with self._lock:
            self.engine.held.clear()

    def on_sms_sent(self, callback: Callable[[str], None]) -> None:
        """`callback(pdu_hex)` for every text the host sends (AT+CMGS), SMSC field first,
        called on the modem's thread with its lock held (hand the work to another thread)."""
        with self._lock:
            self.engine.sms_sent_hooks.append(callback)

    def garble(self, command: str, times: int = 1, how: str = "cut") -> None:
        """The next `times` answers to `command` ("+CMGR" or "+CMGL") are damaged on the
        serial line, not on the SIM: the PDU line loses its second half ("cut"), or the
        line is lost ("drop"; in a listing, the first message's). Reading again gives the
        message whole."""
        if command not in ("+CMGR", "+CMGL") or how not in ("cut", "drop"):
            raise ValueError(f"cannot garble {command!r} with {how!r}")
        with self._lock:
            self.engine.line_noise.extend([(command, how)] * times)

    def sim_busy(
        self, *commands: str, times: int | None = None, cms: int = 314, cme: int = 14
    ) -> None:
        """The SIM is busy: these commands (e.g. "+CMGR"; every command that needs the SIM
        when none are named) answer +CMS ERROR: `cms` (message service) or +CME ERROR: `cme`,
        `times` times or until `sim_ready()` (see sms.SimBusy)."""
        from .sms import SimBusy

        names = frozenset(c.upper() for c in commands)
        with self._lock:
            self.engine.sim_busy = SimBusy(commands=names, times=times, cms=cms, cme=cme)

    def sim_ready(self) -> None:
        """The SIM answers again after `sim_busy()`."""
        with self._lock:
            self.engine.sim_busy = None

    @property
    def sim_busy_answers(self) -> int:
        """How many SIM busy answers the current `sim_busy()` gave."""
        with self._lock:
            busy = self.engine.sim_busy
            return busy.answered if busy is not None else 0

    @property
    def refused_before_ready(self) -> int:
        """SMS commands answered SIM busy because they came before the modem's SMS ready
        report (`ready_delay=`)."""
        with self._lock:
            return self.engine.refused_before_ready

    @property
    def sent_sms(self) -> list[str]:
        """PDUs the host sent with AT+CMGS, oldest first."""
        with self._lock:
            return list(self.engine.sent_sms)

    def set_network(
        self,
        *,
        stat: int | None = None,
        rssi: int | None = None,
        ber: int | None = None,
        operator: str | None = None,
        lac: str | None = None,
        ci: str | None = None,
    ) -> None:
        """Registration state, signal and operator as the network would change them."""
        changes = {
            k: v
            for k, v in {
                "stat": stat,
                "rssi": rssi,
                "ber": ber,
                "operator": operator,
                "lac": lac,
                "ci": ci,
            }.items()
            if v is not None
        }
        with self._lock:
            self.engine.set_network(**changes)

    @property
    def voice(self) -> VoiceSim:
        """Analog voice data mode: set `voice.caller` (a `VoiceCaller`) and `voice.speed`
        before a call; read `voice.played` / `voice.recorded` after it."""
        return self.engine.voice

    @property
    def fax(self) -> Class2Sim:
        """Class 2/2.0 fax (fax2.py): `fax.machine` is the fax machine at the other end."""
        return self.engine.fax2

    def fax_call(
        self,
        machine: FaxMachine,
        caller_id: CallerId | str | None = None,
        *,
        rings: int = 3,
        interval: float = 6.0,
    ) -> None:
        """A fax machine calls: it rings like `ring()`; answered in Class 2/2.0 it sends
        `machine.pages`."""
        if isinstance(caller_id, str):
            caller_id = CallerId(number=caller_id)
        with self._lock:
            self.engine.fax2.machine = machine
            self.engine.start_ringing(caller_id, rings, interval)

    @property
    def sim(self) -> Sim:
        """The SIM card (PIN, attempts left); change it only while holding no port open."""
        return self.engine.sim


def personality_by_name(name: str) -> Personality:
    """The personality called `name`; the error lists the ones that exist."""
    try:
        return PERSONALITIES[name.lower()]
    except KeyError:
        known = ", ".join(PERSONALITY_NAMES)
        raise ValueError(f"no modem personality {name!r}; choose one of: {known}") from None


def create(
    personality_name: str, folder: str | os.PathLike[str], **options: object
) -> SimulatedModem:
    """A started simulated modem of the named personality, its links in `folder`."""
    modem = SimulatedModem(personality_name, folder, **options)  # type: ignore[arg-type]
    return modem.start()
