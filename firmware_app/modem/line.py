"""A modem line: one worker thread owns the port, the AT engine, the driver and caller ID.

Actor style: other threads call `answer()`, `hangup()`, `command()`... and get a Future;
the request and the reader thread's bytes arrive on one queue, so the worker wakes at once
for either. The line reconnects with backoff when the port goes away or the modem stops
answering, and initialises the modem again each time. Never blocks a writer behind a read.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import serial

from ..errors import FrontdeskError
from ..events import EventBus, SettingsChanged
from ..protocol.at import (
    NEED_DATA,
    URC,
    ATEngine,
    Command,
    Data,
    ErrorResult,
    Mode,
    PeerError,
    Prompt,
    Response,
    Timeout,
)
from ..protocol.callerid import CallerId, CallerIdCollector, CallWaiting, CollectorResult
from ..protocol.voice import parse_dtmf_urc
from ..routing import LineCapabilities
from ..settings.lines import Lines
from ..workers import Worker
from . import events as ev
from .analog import AnalogDriver
from .detect import Profile, probe
from .driver import Driver, Result
from .gsm import GsmDriver, PinGuard
from .transport import PortError, Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

# Codes that end the call (V.250 5.7.1; SIM7600 MISSED_CALL; Huawei ^CEND), as URCs: with
# nothing in flight, or during a command that cannot end that way (AT+CLCC in a call).
CALL_END_URCS = frozenset({"NO CARRIER", "BUSY", "NO ANSWER", "^CEND", "MISSED_CALL"})
# Codes the SMS service handles (new message, status report, USSD reply): published as
# `events.Unsolicited` on the line's thread.
# "SMS Ready" (SIM800 manual, URC list): SMS initialisation is over; the SMS service sweeps.
MESSAGE_URCS = frozenset({"+CMTI", "+CMT", "+CDSI", "+CDS", "+CUSD", "SMS Ready"})


class LineError(FrontdeskError):
    """A request to a line failed (the modem refused, or the line is in the wrong state)."""


class LineDownError(LineError):
    """The line is down (port gone or modem not answering); nothing was sent."""


class _Lost(Exception):
    """The port went away or the modem stopped answering: reconnect."""


class _Stopping(Exception):
    """The worker was asked to stop."""

    def __str__(self) -> str:  # the words a request still waiting fails with
        return "Frontdesk is stopping"


@dataclass(frozen=True, slots=True)
class LineOptions:
    """Timing of one line; tests shorten it, the defaults suit real modems."""

    health_interval: float = 30.0  # seconds between health checks / GSM monitoring
    health_failures: int = 3  # commands timing out in a row before reconnecting
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    probe_timeout: float = 1.5
    idle_after: float = 8.0  # no RING for this long: the caller gave up


@dataclass(frozen=True, slots=True)
class LineStatus:
    """A snapshot of one line for pages and the API. Plain data."""

    name: str
    port: str
    state: str  # starting, idle, ringing, in_call, down
    since: datetime
    kind: str = "unknown"
    model: str = ""
    firmware: str = ""
    description: str = ""
    capabilities: tuple[str, ...] = ()
    caller_id: bool = False
    sim: str = ""
    rssi: int | None = None
    dbm: int | None = None
    registration: str = ""
    operator: str = ""
    last_error: str = ""
    last_error_code: str = ""
    last_error_at: datetime | None = None
    calls: int = 0
    simulated: bool = False


@dataclass(slots=True)
class _Request:
    fn: Callable[[Line], Any]
    future: Future[Any]
    name: str
    at_ring: int = 0


@dataclass(slots=True)
class _Call:
    id: int
    rings: int = 0
    last_ring: float = 0.0
    answered: bool = False
    announced: bool = False
    caller: CallerId | None = None
    parked: list[_Request] = field(default_factory=list)
    outgoing: bool = False  # placed by us (ATD): a fax we send, a staff member we call
    # Its caller ID came before any RING this line heard of it: its first ring went by
    # before this run opened the port (or the network sends caller ID before ringing).
    caller_id_first: bool = False


def is_dial(text: str) -> bool:
    """Does this command line dial out? ``ATD<number>;``, ``ATDT<number>`` (V.250 6.3.1)."""
    return text[:3].upper() == "ATD"


def _utc() -> datetime:
    return datetime.now(UTC)


class Line(Worker):
    """One modem line. Start it like any worker; talk to it through the methods below."""

    def __init__(
        self,
        name: str,
        port: str,
        *,
        bus: EventBus,
        settings: Callable[[], Lines] = Lines,
        baudrate: int = 115200,
        options: LineOptions | None = None,
        pin_file: Path | None = None,
        opener: Callable[..., Any] = serial.serial_for_url,
        wall_clock: Callable[[], datetime] = _utc,
        simulated: bool = False,
        ports: tuple[str, ...] = (),
    ) -> None:
        self.options = options or LineOptions()
        liveness = 3 * max(self.options.health_interval, self.options.backoff_max) + 10
        super().__init__(name, liveness=liveness)
        self.port = port
        # Every serial port of the modem's USB device (detection found them; `port` among
        # them): kept in the profile across re-probes so a rescan never takes a sibling port
        # (the modem's other AT port, its PCM audio port) for another modem.
        self.ports = tuple(dict.fromkeys((port, *ports)))
        self.bus = bus
        self._settings = settings
        self.baudrate = baudrate
        self._opener = opener
        self._wall = wall_clock
        self._pins = PinGuard(pin_file)
        self._q: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._status_lock = threading.Lock()
        self._status = LineStatus(
            name=name, port=port, state="starting", since=wall_clock(), simulated=simulated
        )
        self._call_ids = itertools.count(1)
        self._thread_id: int | None = None
        self._down_announced = False
        self._failed_reconnects = 0
        self._timeouts: int = 0
        self.garbage = 0  # lines the modem sent that made no sense (logged and skipped)
        self._unsubscribe = bus.subscribe(SettingsChanged, self._on_settings_changed)
        self._reset_runtime()

    # -- public API (any thread) ----------------------------------------------------------------

    def status(self) -> LineStatus:
        with self._status_lock:
            return self._status

    @property
    def profile(self) -> Profile | None:
        return self._profile

    @property
    def capabilities(self) -> LineCapabilities | None:
        driver = self._driver
        return driver.capabilities if driver is not None else None

    def command(self, command: Command | str, timeout: float = 5.0) -> Future[Result]:
        """Send one AT command; the future holds its Response, ErrorResult or Timeout."""
        cmd = command if isinstance(command, Command) else Command(command, timeout=timeout)
        return self._submit(lambda line: line.chat(cmd), cmd.text)

    def answer(self, at_ring: int = 0) -> Future[Result]:
        """Pick up the ringing call (analog voice lines: in voice mode), at ring `at_ring`."""
        return self._submit(Line._do_answer, "answer", at_ring=at_ring)

    def hangup(self, after: float = 0.0) -> Future[Result]:
        """Hang up (after `after` seconds)."""
        if after > 0:
            fut: Future[Result] = Future()
            req = _Request(Line._do_hangup, fut, "hangup")
            self._q.put(("later", (after, req)))
            return fut
        return self._submit(Line._do_hangup, "hangup")

    def reject(self) -> Future[Result]:
        """Refuse the ringing call: decline (GSM) or pick up and put down at once (analog)."""
        return self._submit(Line._do_reject, "reject")

    def enter_data(self, command: Command, on_data: Callable[[bytes], None]) -> Future[Result]:
        """Send a command answered by CONNECT (AT+VRX, AT+VTX, AT+FRM=...); the bytes after
        it go to `on_data` on the line's thread until `leave_data()`."""

        def run(line: Line) -> Result:
            line._data_handler = on_data
            result = line.chat(command)
            if line._engine.mode is not Mode.DATA:
                line._data_handler = None
            return result

        return self._submit(run, command.text)

    def write_data(self, data: bytes) -> None:
        """Bytes for the modem in data mode (audio, fax data); any thread, never queued."""
        transport = self._transport
        if transport is None:
            raise LineDownError(f"{self.name} is down")
        transport.write(data)

    def leave_data(
        self, leftover: bytes = b"", await_result: Command | None = None
    ) -> Future[Result | None]:
        """Back to commands after the data's end marker; `await_result` waits for the OK
        V.253 sends after DLE ETX (see docs/protocol.md "Data mode")."""

        def run(line: Line) -> Result | None:
            line._data_handler = None
            line._engine.enter_command_mode(
                leftover, await_result=await_result, now=time.monotonic()
            )
            if await_result is None:
                return None
            return line._wait_result(time.monotonic() + await_result.timeout)

        return self._submit(run, "leave data mode")

    # -- Worker ---------------------------------------------------------------------------------

    def stop(self) -> None:
        super().stop()
        self._q.put(("wake", None))

    def close(self) -> None:
        self._unsubscribe()

    def run(self) -> None:
        self._thread_id = threading.get_ident()
        self._reset_runtime()
        backoff = self.options.backoff_initial
        try:
            while not self.stopping.is_set():
                try:
                    self._connect()
                    backoff = self.options.backoff_initial
                    self._serve()
                except (_Lost, PortError) as exc:
                    self._down(str(exc))
                    self._wait_down(backoff)
                    backoff = min(backoff * 2, self.options.backoff_max)
        except _Stopping:
            pass
        finally:
            self._close_transport()
            self._fail_all(LineDownError(f"{self.name} stopped"))

    # -- LineIO for drivers (worker thread only) ------------------------------------------------

    def chat(self, command: Command | str, timeout: float = 5.0) -> Result:
        """Send a command and wait for its result while URCs keep being handled."""
        cmd = command if isinstance(command, Command) else Command(command, timeout=timeout)
        if self._engine.mode is Mode.DATA:
            raise LineError(f"{self.name} is in data mode; {cmd.text} not sent")
        now = time.monotonic()
        data = self._engine.send(cmd, now)
        if log.isEnabledFor(logging.DEBUG):
            shown = "AT+CPIN=****" if cmd.text.upper().startswith("AT+CPIN=") else cmd.text
            log.debug("%s -> %s", self.name, shown)
        placed = self._place_call() if is_dial(cmd.text) and self._call is None else None
        self._write(data)
        result = self._wait_result(now + cmd.timeout)
        if placed is not None and placed is self._call and not isinstance(result, Response):
            self._call_not_placed(placed, result)
        if isinstance(result, Timeout) and not result.lines:
            self._timeouts += 1
            log.info(
                "%s: no answer to %s within %.1f s", self.name, cmd.text.split("=")[0], cmd.timeout
            )
            if self._timeouts >= self.options.health_failures:
                raise _Lost(f"the modem stopped answering ({self._timeouts} commands unanswered)")
        else:
            # An answer without a final result (no OK after AT+CPIN? on some modems,
            # REFERENCE.md 2) still shows the modem is alive.
            self._timeouts = 0
        return result

    def urc_seen(self, lines: frozenset[str], within: float) -> bool:
        cutoff = time.monotonic() - within
        return any(at >= cutoff and text in lines for at, text in self._recent_urcs)

    def wait_urc(self, lines: frozenset[str], timeout: float) -> bool:
        start = time.monotonic()
        deadline = start + timeout
        while True:
            if any(at >= start and text in lines for at, text in self._recent_urcs):
                return True
            if time.monotonic() >= deadline:
                return False
            self._pump(deadline)

    def pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._pump(end)

    def settings(self) -> Lines:
        return self._settings()

    def error(self, message: str, code: str = "") -> None:
        log.warning("%s: %s", self.name, message)
        self.update(last_error=message, last_error_code=code, last_error_at=self._wall())
        self.bus.publish(ev.ModemError(line=self.name, message=message, code=code))

    def update(self, **fields: Any) -> None:
        with self._status_lock:
            old = self._status
            if "rssi" in fields:
                rssi = fields["rssi"]
                fields["dbm"] = -113 + 2 * rssi if rssi is not None and 0 <= rssi <= 31 else None
            if "state" in fields and fields["state"] != old.state:
                fields["since"] = self._wall()
            new = replace(old, **fields)
            self._status = new
        if (new.rssi, new.registration, new.operator) != (old.rssi, old.registration, old.operator):
            self.bus.publish(
                ev.SignalChanged(
                    line=self.name,
                    rssi=new.rssi,
                    dbm=new.dbm,
                    registration=new.registration,
                    operator=new.operator,
                )
            )
        if new.sim != old.sim and new.sim:
            self.bus.publish(ev.SimChanged(line=self.name, sim=new.sim))

    # -- the worker's loop ----------------------------------------------------------------------

    def _reset_runtime(self) -> None:
        self._transport: Transport | None = None
        self._engine = ATEngine()
        self._collector = CallerIdCollector(idle_after=self.options.idle_after)
        self._driver: Driver | None = None
        self._profile: Profile | None = None
        self._requests: deque[_Request] = deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._result: Result | None = None
        self._timeouts = 0
        self._call: _Call | None = None
        self._data_handler: Callable[[bytes], None] | None = None
        self._up = False
        self._up_since = 0.0
        self._settings_pending = False
        self._reinit_queued = False
        self._ending = False  # hanging up or rejecting: call-end codes are our own doing
        self._recent_urcs: deque[tuple[float, str]] = deque(maxlen=32)  # (when, LINE)

    def _submit(self, fn: Callable[[Line], T], name: str, at_ring: int = 0) -> Future[T]:
        fut: Future[T] = Future()
        req = _Request(fn, fut, name, at_ring)
        if threading.get_ident() == self._thread_id:
            self._requests.append(req)  # from an event handler on this line: no queue hop
        else:
            self._q.put(("req", req))
        return fut

    def _connect(self) -> None:
        self._engine = ATEngine()
        self._collector = CallerIdCollector(
            timeout=self._settings().caller_id_timeout, idle_after=self.options.idle_after
        )
        self._timeouts = 0
        self._timers.clear()
        self._reinit_queued = False
        self._call = None
        self._data_handler = None
        self._set_state("starting")
        self._transport = Transport(
            self.port,
            self.baudrate,
            lambda data: self._q.put(("data", data)),
            lambda exc: self._q.put(("lost", exc)),
            opener=self._opener,
            name=self.name,
        )
        self._transport.open()
        profile = probe(self.chat, self.port, timeout=self.options.probe_timeout)
        if profile is None or profile.kind == "unknown":
            raise _Lost(f"no modem answers on {self.port}")
        profile = replace(profile, ports=self.ports)
        self._profile = profile
        driver: Driver = (
            GsmDriver(profile, self._pins) if profile.kind == "gsm" else AnalogDriver(profile)
        )
        self._driver = driver
        self.update(
            kind=profile.kind,
            model=profile.title,
            firmware=profile.revision,
            description=profile.describe(),
            capabilities=tuple(profile.capabilities),
            caller_id=profile.caller_id,
            sim=profile.sim,
        )
        driver.initialise(self)
        self._up = True
        self._up_since = time.monotonic()
        self._down_announced = False
        self._failed_reconnects = 0
        self._set_state("idle")
        log.info("%s up: %s", self.name, profile.describe())
        self.bus.publish(ev.LineUp(line=self.name, port=self.port, description=profile.describe()))
        self._schedule(self.options.health_interval, self._health_due)
        self._apply_settings()

    def _serve(self) -> None:
        while True:
            if self.stopping.is_set():
                raise _Stopping
            if self._requests:  # in data mode a command fails; leave_data() runs
                self._execute(self._requests.popleft())
                continue
            self._pump(None)

    def _execute(self, req: _Request) -> None:
        call = self._call
        if req.at_ring and call is not None and call.rings < req.at_ring:
            call.parked.append(req)  # answered when the line has rung often enough
            return
        if not req.future.set_running_or_notify_cancel():
            return
        try:
            result = req.fn(self)
        except (_Lost, PortError, _Stopping) as exc:
            req.future.set_exception(LineDownError(f"{self.name}: {exc}"))
            raise
        except Exception as exc:
            log.debug("%s: %s failed: %s", self.name, req.name, exc)
            req.future.set_exception(exc)
        else:
            req.future.set_result(result)

    def _wait_result(self, deadline: float) -> Result:
        self._result = None
        # The engine may hold the answer already: leave_data() hands it the bytes that came
        # with the data's end marker (DLE ETX, then OK in the same read), and nothing more
        # may come from the modem to wake _pump before the next timer.
        self._drain(time.monotonic())
        while self._result is None:
            self._pump(deadline + 0.0005)
        result, self._result = self._result, None
        return result

    def _pump(self, until: float | None) -> None:
        """Wait for one queue item (or until the next timer / `until`), then handle it."""
        if self.stopping.is_set():
            raise _Stopping
        wake = until
        if self._timers and (wake is None or self._timers[0][0] < wake):
            wake = self._timers[0][0]
        timeout = None if wake is None else max(0.0, wake - time.monotonic())
        try:
            item: tuple[str, Any] | None = self._q.get(timeout=timeout)
        except queue.Empty:
            item = None
        self.beat()
        while item is not None:
            self._handle(item)
            if item[0] == "req":
                # A request runs before any bytes queued after it: leave_data() must switch
                # the engine back to commands before the OK that follows DLE ETX is read.
                break
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                item = None
        now = time.monotonic()
        self._engine.tick(now)
        self._drain(now)
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            fn()

    def _handle(self, item: tuple[str, Any]) -> None:
        kind, value = item
        if kind == "data":
            self._engine.receive_data(value)
            self._drain(time.monotonic())
        elif kind == "req":
            self._requests.append(value)
        elif kind == "lost":
            raise _Lost(f"the port went away ({value})")
        elif kind == "later":
            delay, req = value
            self._schedule(delay, lambda: self._requests.append(req))
        elif kind == "settings":
            self._settings_pending = True
            self._apply_settings()
        elif kind == "wake" and self.stopping.is_set():
            raise _Stopping

    def _drain(self, now: float) -> None:
        engine = self._engine
        while (event := engine.next_event()) is not NEED_DATA:
            if isinstance(event, Response | ErrorResult | Timeout):
                self._result = event
            elif isinstance(event, URC):
                self._on_urc(event, now)
            elif isinstance(event, Data):
                handler = self._data_handler
                if handler is not None:
                    handler(event.data)
            elif isinstance(event, PeerError):
                self._peer_error(event, now)
            elif isinstance(event, Prompt):
                log.debug("%s: prompt for %s", self.name, event.command.text)
                body = engine.pending_output()  # the SMS PDU and Ctrl-Z (TS 27.005 3.5.1)
                if body:
                    self._write(body)

    def _peer_error(self, event: PeerError, now: float) -> None:
        raw = event.raw.strip()
        self.garbage += 1
        log.info("%s: ignored bytes from the modem (%s): %r", self.name, event.reason, raw[:80])

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        self._schedule_at(time.monotonic() + delay, fn)

    def _schedule_at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._timer_seq), fn))

    # -- calls ----------------------------------------------------------------------------------

    def _on_urc(self, urc: URC, now: float) -> None:
        name = urc.name
        self._recent_urcs.append((now, urc.line.strip().upper()))
        driver = self._driver
        if driver is not None:
            driver.on_urc(self, urc)
            if self._up:
                sign = driver.restart_sign(urc)
                if sign is not None:
                    self._restart_seen(urc.line, verify=sign == "check")
        if name in MESSAGE_URCS:
            self.bus.publish(
                ev.Unsolicited(
                    line=self.name, name=name, args=urc.args, text=urc.line, extra=urc.extra
                )
            )
            return
        digit = parse_dtmf_urc(name, urc.args)
        if digit is not None:
            self.bus.publish(ev.KeyPressed(line=self.name, digit=digit))
            return
        if name in ("RING", "+CRING"):
            self._ring(now)
        elif name in CALL_END_URCS and not self._ending:
            # Whether or not a command is in flight (the engine keeps NO CARRIER for the
            # commands that can end with it): the call is over. Not while we hang up
            # ourselves: then ^CEND or NO CARRIER is our own doing.
            call = self._call
            if name == "BUSY":
                why = "busy"
            elif call is not None and call.outgoing:
                why = "the other side hung up"
            else:
                why = "the caller hung up"
            self._call_ended(why)
            return
        result = self._collector.urc(name, urc.line, now)
        if self._collector.collecting:
            # The block is complete `timeout` after this line (the collector's deadline is
            # `now + timeout` from the same `now`): tick then, not a moment later.
            self._schedule_at(now + self._collector.timeout, self._collector_tick)
        if result is not None:
            self._caller_id(result)

    def _ring(self, now: float) -> None:
        call = self._call
        if call is None:
            # Caller-ID lines being collected before this first RING: they came first.
            call = self._new_call(caller_id_first=self._collector.collecting)
            since_up = max(0.0, now - self._up_since) if self._up else 0.0
            self.bus.publish(ev.CallRinging(line=self.name, call_id=call.id, since_up=since_up))
        if call.answered:
            return
        call.rings += 1
        call.last_ring = now
        self._schedule(self.options.idle_after + 0.001, self._ring_check)
        ready = [r for r in call.parked if r.at_ring <= call.rings]
        if ready:
            call.parked = [r for r in call.parked if r.at_ring > call.rings]
            for req in ready:
                req.at_ring = 0
            self._requests.extend(ready)

    def _new_call(self, *, caller_id_first: bool = False) -> _Call:
        call = _Call(
            id=next(self._call_ids), last_ring=time.monotonic(), caller_id_first=caller_id_first
        )
        self._call = call
        self._set_state("ringing")
        self._schedule(self.options.idle_after + 0.001, self._ring_check)
        return call

    def _caller_id(self, result: CollectorResult) -> None:
        if isinstance(result, CallWaiting):
            c = result.caller
            log.info("%s: call waiting (caller ID %s)", self.name, c.validity)
            self.bus.publish(
                ev.CallWaiting(line=self.name, number=c.number, name=c.name, validity=c.validity)
            )
            return
        call = self._call or self._new_call(caller_id_first=True)  # caller ID and no RING
        if call.announced:
            return
        call.announced = True
        call.caller = result
        with self._status_lock:
            self._status = replace(self._status, calls=self._status.calls + 1)
        if result.source == "none":
            log.info("%s: incoming call, no caller ID (%s)", self.name, result.reason)
        else:
            log.info("%s: incoming call, caller ID %s", self.name, result.validity)
        log.debug("%s: caller %s %s", self.name, result.number, result.name)
        self.bus.publish(
            ev.IncomingCall(
                line=self.name,
                call_id=call.id,
                number=result.number,
                name=result.name,
                validity=result.validity,
                reason=result.reason,
                raw=result.raw,
                source=result.source,
                rings=call.rings,
                caller_id_first=call.caller_id_first,
            )
        )

    def _collector_tick(self) -> None:
        result = self._collector.tick(time.monotonic())
        if result is not None:
            self._caller_id(result)

    def _ring_check(self) -> None:
        now = time.monotonic()
        self._collector_tick()
        call = self._call
        if call is None or call.answered:
            return
        if now - call.last_ring >= self.options.idle_after:
            self._call_ended("the caller stopped ringing")

    def _place_call(self) -> _Call:
        """We dial out: the line is in a call of its own from the dial on, so a RING or
        caller ID arriving meanwhile (glare on an analog line, a second caller on GSM) is
        call waiting, never a new incoming call, and the line is not free for another."""
        call = _Call(id=next(self._call_ids), answered=True, announced=True, outgoing=True)
        self._call = call
        self._collector.reset()
        self._collector.set_in_call(True)
        self._set_state("in_call")
        return call

    def _call_not_placed(self, call: _Call, result: Result) -> None:
        """The dial ended without a call (BUSY, NO ANSWER, NO DIALTONE, an error, no
        answer at all): the line is free again; nothing to tell anyone."""
        log.debug("%s: outgoing call %s not placed: %s", self.name, call.id, result)
        self._call = None
        self._collector.set_in_call(False)
        self._collector.reset()
        if self._up:
            self._set_state("idle")

    def _call_ended(self, reason: str) -> None:
        call = self._call
        self._call = None
        self._collector.set_in_call(False)
        self._collector.reset()
        if self._up:
            self._set_state("idle")
        if call is None:
            return
        for req in call.parked:
            req.future.set_exception(LineError(f"{self.name}: {reason} before the answer"))
        log.info("%s: call %s ended: %s", self.name, call.id, reason)
        self.bus.publish(
            ev.CallerHungUp(line=self.name, call_id=call.id, answered=call.answered, reason=reason)
        )

    def _do_answer(self) -> Result:
        driver = self._require_driver()
        call = self._call
        result = driver.answer(self)
        if isinstance(result, Response) and call is not None and call is self._call:
            call.answered = True
            self._collector.set_in_call(True)
            self._set_state("in_call")
            self.bus.publish(ev.CallAnswered(line=self.name, call_id=call.id))
        return result

    def _do_hangup(self) -> Result:
        driver = self._require_driver()
        self._ending = True
        try:
            result = driver.hangup(self)
        finally:
            self._ending = False
        self._end_by_us()
        return result

    def _do_reject(self) -> Result:
        driver = self._require_driver()
        self._ending = True
        try:
            result = driver.reject(self)
        finally:
            self._ending = False
        self._end_by_us()
        return result

    def _end_by_us(self) -> None:
        call = self._call
        self._call = None
        self._collector.set_in_call(False)
        self._set_state("idle")
        if call is not None:
            for req in call.parked:
                req.future.set_exception(LineError(f"{self.name}: the call was ended"))
            self.bus.publish(ev.CallEnded(line=self.name, call_id=call.id))

    def _require_driver(self) -> Driver:
        if self._driver is None or not self._up:
            raise LineDownError(f"{self.name} is not ready")
        return self._driver

    # -- health, settings, going down -----------------------------------------------------------

    def _health_due(self) -> None:
        """Timer: queue a health check (GSM: signal monitoring) unless busy with a call."""
        self._schedule(self.options.health_interval, self._health_due)
        if self._call is None and self._engine.mode is Mode.COMMAND and not self._requests:
            driver = self._driver
            if driver is not None:
                self._requests.append(_Request(Line._health, Future(), "health check"))

    def _health(self) -> None:
        driver = self._require_driver()
        if driver.periodic(self):
            self._reinitialise("the modem forgot its settings (caller ID was off)")

    # -- a modem that reset while its port stayed open ------------------------------------------

    def _restart_seen(self, what: str, *, verify: bool) -> None:
        """A boot code arrived (`verify`: one that may also follow a PIN): queue setting the
        modem up again, once for a burst of them."""
        if self._reinit_queued:
            return
        self._reinit_queued = True

        def run(line: Line) -> None:
            try:
                driver = line._require_driver()
                if not verify:
                    line._reinitialise(f"the modem started again ({what})")
                elif driver.settings_lost(line):
                    line._reinitialise(f"the modem forgot its settings (after {what})")
            finally:
                line._reinit_queued = False

        self._requests.append(_Request(run, Future(), "set up again"))

    def _reinitialise(self, reason: str) -> None:
        """The modem reset behind the port's back (brown-out, watchdog): its settings are
        the power-on ones, caller ID off. Run the driver's init again, as after a reconnect."""
        log.warning("%s: %s; initialising it again", self.name, reason)
        if self._call is not None:
            self._call_ended("the modem restarted")
        self._set_state("starting")
        self._require_driver().initialise(self)
        self._set_state("idle")
        self.error(f"{reason}; Frontdesk set it up again", "modem_restarted")
        profile = self._profile
        description = profile.describe() if profile is not None else ""
        self.bus.publish(ev.LineUp(line=self.name, port=self.port, description=description))

    def _apply_settings(self) -> None:
        """Let the driver act on changed settings once the line is up (SIM PIN corrected)."""
        driver = self._driver
        if self._settings_pending and driver is not None and self._up:
            self._settings_pending = False
            self._requests.append(
                _Request(lambda line: driver.settings_changed(line), Future(), "settings")
            )

    def _on_settings_changed(self, event: SettingsChanged) -> None:
        if "lines" in event.sections:
            self._q.put(("settings", None))

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            raise _Lost("the port is closed")
        try:
            transport.write(data)
        except PortError as exc:
            raise _Lost(str(exc)) from exc

    def _set_state(self, state: str) -> None:
        self.update(state=state)

    def _close_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def _down(self, reason: str) -> None:
        was_up = self._up
        self._up = False
        self._close_transport()
        call = self._call
        self._call = None
        if call is not None:
            for req in call.parked:
                req.future.set_exception(LineDownError(f"{self.name} went down"))
        self._fail_all(LineDownError(f"{self.name} is down: {reason}"))
        if was_up or not self._down_announced:
            self._down_announced = True
            log.warning("%s down: %s", self.name, reason)
            self.update(last_error=reason, last_error_code="down", last_error_at=self._wall())
            self._set_state("down")
            self.bus.publish(ev.LineDown(line=self.name, port=self.port, reason=reason))
        else:
            self._failed_reconnects += 1
            log.debug("%s still down (%d): %s", self.name, self._failed_reconnects, reason)
            self._set_state("down")
            self.bus.publish(
                ev.ReconnectFailed(line=self.name, attempts=self._failed_reconnects, reason=reason)
            )

    def _fail_all(self, exc: Exception) -> None:
        while self._requests:
            req = self._requests.popleft()
            if req.future.set_running_or_notify_cancel():
                req.future.set_exception(exc)
        while True:
            try:
                kind, value = self._q.get_nowait()
            except queue.Empty:
                break
            if kind == "req" and value.future.set_running_or_notify_cancel():
                value.future.set_exception(exc)

    def _wait_down(self, seconds: float) -> None:
        """Wait before reconnecting; requests arriving meanwhile fail at once."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0 or self.stopping.is_set():
                break
            try:
                kind, value = self._q.get(timeout=left)
            except queue.Empty:
                break
            self.beat()
            if kind == "req" and value.future.set_running_or_notify_cancel():
                value.future.set_exception(LineDownError(f"{self.name} is down"))
        if self.stopping.is_set():
            raise _Stopping
