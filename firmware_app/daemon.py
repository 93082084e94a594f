"""The composition root: reads the machine config, builds everything, runs, stops cleanly.

One process: the store (sole writer), the event bus, the services, worker threads (control
socket, web server, and the lines and channels as they are added), a supervisor that
restarts dead workers, and systemd notify (READY, WATCHDOG from a real liveness check,
STOPPING). SIGTERM or SIGINT stops everything within 2 seconds.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import MachineConfig
from .control import ControlServer
from .errors import EXIT_STORE_FILE, FrontdeskError, StoreFileError
from .events import DaemonStarted, DaemonStopping, EventBus
from .logs import RingBufferHandler
from .sdnotify import Notifier
from .services import Services
from .services.holidays import HolidayTables
from .store import Store
from .workers import Supervisor, Worker

if TYPE_CHECKING:
    from .panel import Panel

log = logging.getLogger(__name__)

# A stop (SIGTERM) ends within 2 s, with margin: calls in progress are hung up first, while
# the lines still run, and their records written (CALLS_BUDGET); then the workers get
# WORKERS_BUDGET to finish their loops, then the closers run until STOP_DEADLINE (from the
# start of the stop); whatever is still closing then is left (every acknowledged write is
# already on disk, and a call not recorded yet keeps its in-progress marker) and the process
# exits. WEB_DRAIN: how long requests being served may take to finish.
STOP_DEADLINE = 1.5
CALLS_BUDGET = 0.6
WORKERS_BUDGET = 0.9
WEB_DRAIN = 0.5
WEB_LOOP_SECONDS = 30  # the web server's select() timeout (see WebServer)


# What a trusted reverse proxy may tell us: the scheme the browser used (HTTPS), the
# browser's address (login limits) and the host name it asked for (CSRF referrer check).
PROXY_HEADERS = frozenset({"x-forwarded-proto", "x-forwarded-for", "x-forwarded-host"})


def proxy_options(trusted_proxy: str) -> dict[str, Any]:
    """waitress options: forwarded headers are believed from `trusted_proxy` only, and
    removed from every other request, so nobody else can claim to be on HTTPS."""
    options: dict[str, Any] = {"clear_untrusted_proxy_headers": True}
    if trusted_proxy:
        options.update(
            trusted_proxy=trusted_proxy,
            trusted_proxy_count=1,
            trusted_proxy_headers=set(PROXY_HEADERS),
        )
    return options


class LazyWebApp:
    """The Flask app as a WSGI callable built by the first request, not at start: Flask,
    werkzeug (with the ssl and http modules it brings), jinja2, wtforms and the pages are
    about 14 MB an idle daemon does not hold until somebody opens the page. Once built it
    stays. A build that fails is logged, that request gets a 500 and the next one tries
    again; `build()` builds it now."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._app is not None

    def build(self) -> Any:
        app = self._app
        if app is not None:
            return app
        with self._lock:
            if self._app is None:
                from web_ui import create_app

                began = time.monotonic()
                try:
                    self._app = create_app(self._services)
                except Exception:
                    log.exception("the web page could not be built")
                    raise
                log.info("web page loaded in %.2f s", time.monotonic() - began)
            return self._app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.build()(environ, start_response)


class WebServer(Worker):
    """waitress serving the Flask app (built on the first request, `LazyWebApp`) on the
    configured address, in this process."""

    def __init__(self, services: Services) -> None:
        super().__init__("web", liveness=3600.0)
        import waitress

        host, port = services.config.listen_host_port
        self.app = LazyWebApp(services)
        self._server: Any = waitress.create_server(
            self.app,
            host=host,
            port=port,
            threads=4,
            ident="Frontdesk",
            # The server's loop wakes for connections and for its workers' replies (its
            # trigger pipe); otherwise only for the idle-connection sweep, every 30 s
            # (waitress's cleanup_interval). Its default, every second, was two thirds of
            # an idle daemon's CPU.
            asyncore_loop_timeout=WEB_LOOP_SECONDS,
            **proxy_options(services.config.web.trusted_proxy),
        )
        self.address = f"{host}:{self._server.effective_port}"

    def run(self) -> None:
        self._server.run()

    def stop(self) -> None:
        """Stop accepting connections (in the server's own loop thread); never blocks."""
        super().stop()
        from waitress import wasyncore

        server = self._server
        try:
            server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))
        except OSError:  # the loop is gone already
            log.debug("web server close", exc_info=True)

    def join(self, timeout: float) -> bool:
        """Let requests being served finish (up to WEB_DRAIN), then close every connection,
        kept-alive ones included, so the loop thread ends."""
        from waitress import wasyncore

        end = time.monotonic() + timeout
        server = self._server
        try:
            server.task_dispatcher.shutdown(
                cancel_pending=True, timeout=max(0.0, min(WEB_DRAIN, end - time.monotonic()))
            )
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        except OSError:
            log.debug("web server close", exc_info=True)
        return super().join(max(0.0, end - time.monotonic()))

    def healthy(self, now: float | None = None) -> bool:
        return self.alive


def build_panel(config: MachineConfig, services: Services | None) -> Panel | None:
    """The GPIO front panel when `[panel]` names a pin; None otherwise (gpiozero stays unloaded).

    A panel that cannot be built (no GPIO, no permission) is logged and left out: the lines
    matter more than the LEDs.
    """
    if not config.panel.fitted:
        return None
    from .panel import Panel, routing_toggle

    routing = getattr(services, "routing", None)
    toggle = routing_toggle(routing) if routing is not None else None
    try:
        return Panel(config.panel, toggle_override=toggle)
    except Exception as exc:
        log.error("front panel left out: %s: %s", type(exc).__name__, exc)
        return None


class Daemon:
    def __init__(
        self,
        config: MachineConfig,
        *,
        notifier: Notifier | None = None,
        log_ring: RingBufferHandler | None = None,
        web: bool = True,
    ) -> None:
        self.config = config
        self.notifier = notifier or Notifier.from_env()
        self.log_ring = log_ring or RingBufferHandler()
        self.web_enabled = web
        self.stop_requested = threading.Event()
        self.stop_reason = ""
        self.supervisor = Supervisor()
        self.store: Store | None = None
        self.services: Services | None = None
        self.web: WebServer | None = None
        self.panel: Panel | None = None
        self._closers: list[Callable[[], None]] = []
        self._hang_ups: list[Callable[[], None]] = []  # run first: calls hung up, recorded
        self.stopped_cleanly = True  # False: a closer was still running at STOP_DEADLINE

    # -- building ----------------------------------------------------------------------------

    def _clock(self) -> datetime:
        return self.services.clock() if self.services is not None else datetime.now(UTC)

    def start(self, on_ready: Callable[[], None] | None = None) -> Services:
        """Build and start everything; `on_ready` is called once calls can be handled (the
        daemon's READY=1), before work that can wait starts: the history index's rebuild."""
        self.store = Store(self.config.data_dir)
        self._closers.append(self.store.close)
        # Holiday tables come from a short-lived child, never the 10 MB package in here.
        tables = HolidayTables(self.config.data_dir, clock=lambda: self._clock())
        tables.install()
        self._closers.append(tables.close)
        bus = EventBus()
        services = Services.build(self.config, self.store, bus, self.log_ring)
        self.services = services
        # The history index: its snapshot is read now; months it lacks (the first start
        # after an upgrade) are read from the store on a thread, started once ready.
        services.history.start_index(background=True, hold=True)
        self._closers.append(services.history.close)
        services.extra["holidays"] = tables
        self._closers.append(tables.follow(services.settings.get, bus, services.scheduler))
        from .timesync import TimeSync

        services.extra["timesync"] = TimeSync(
            self.config.clock.require_time_sync, services.system.clock_sync
        )
        self.panel = build_panel(self.config, services)
        if self.panel is not None:
            self.panel.subscribe(bus)
            self._closers.append(self.panel.close)
            services.extra["panel"] = self.panel
        if self.config.demo:
            # The sink listens before the outbox's first try: mail queued when the demo
            # last stopped goes out at once, not after a backoff.
            from .demo import DemoMailSink, seed_settings

            sink = DemoMailSink(self.config.data_dir)
            services.extra["demo_mail"] = sink
            seed_settings(services, sink.port)
            sink.listen()
            self._closers.append(sink.close)
            self.supervisor.add(sink)
        notify = services.notify
        notify.subscribe(bus)
        services.extra["notify"] = notify  # older callers; new code uses services.notify
        self.supervisor.add(notify.worker)
        self._schedule(services)
        self._start_lines(services)
        from .services.mqtt import MqttService

        mqtt = MqttService(services)  # idle until the owner sets a broker
        self._closers.append(mqtt.subscribe())
        services.extra["mqtt"] = mqtt
        self.supervisor.add(mqtt.worker)
        control = ControlServer(self.config.data_dir, self.control_handlers(services))
        self._closers.append(control.close)
        self.supervisor.add(control)
        if self.web_enabled:
            self.web = WebServer(services)
            self.supervisor.add(self.web)
        self.supervisor.start_all()
        history = services.extra.get("history")
        if self.panel is not None and hasattr(history, "open_count"):
            self.panel.set_unhandled(history.open_count())
        bus.publish(DaemonStarted(version=__version__))
        if on_ready is not None:
            on_ready()
        # What start-up loaded (modules, settings, the web app) stays for the daemon's life:
        # moved out of the collector's reach, a full collection does not walk it again.
        gc.collect()
        gc.freeze()
        services.history.release_index()
        return services

    def _start_lines(self, services: Services) -> None:
        """Modem lines from the machine config, and the service that decides their calls."""
        from .services.calls import CallService
        from .services.lines import LinesService

        lines = LinesService.from_config(
            self.config, services.bus, lambda: services.settings.get().lines
        )
        self._closers.append(lines.close)

        def adopt(line: Worker) -> None:  # lines found by `auto` after start-up
            self.supervisor.add(line)
            line.start()

        lines.adopt = adopt
        for worker in lines.workers():
            self.supervisor.add(worker)
        from .calls.audio import CallAudio
        from .calls.runner import CallRunner

        # GSM call audio; a simulated modem's PCM port is known without detection.
        services.call_audio = CallAudio(services.bus, self.config.audio, known=lines.pcm_ports)
        runner = CallRunner(services)  # sessions, voicemail, the call's record and emails
        calls = CallService(
            services.bus,
            services.settings.get,
            lines.line,
            services.clock,
            runner=runner,
            contacts=services.contacts,
            timesync=services.extra.get("timesync"),
        )
        calls.subscribe()
        self._closers.append(calls.close)
        # Hung up before the lines stop: a line must still carry the hang-up and the call's
        # record is written then, not left to the next start as "interrupted".
        self._hang_ups.append(runner.close)
        services.extra["call_runner"] = runner
        services.extra["lines"] = lines
        services.extra["calls"] = calls
        self._start_greetings_and_forwarding(services, lines)
        calls.forwarding = services.forwarding  # what each line can do, for the routing
        self._start_sms(services, lines)
        self._start_fax(services, lines)

    def _start_fax(self, services: Services, lines: Any) -> None:
        """Faxes: calling tones on voice calls, the send queue (docs/fax.md)."""
        from .fax.service import FaxService

        fax = FaxService(
            services.store,
            services.bus,
            services.settings.get,
            services.history,
            lines,
            notify=services.notify,
            clock=lambda: services.clock(),
        )
        fax.subscribe()
        self._closers.append(fax.close)
        services.fax = fax
        services.extra["fax"] = fax
        self.supervisor.add(fax.worker)

    def _start_sms(self, services: Services, lines: Any) -> None:
        """Text messages: intake from the SIM, the send queue, the balance check."""
        from .events import SettingsChanged
        from .services.sms import SmsService

        sms = SmsService(
            services.store,
            services.bus,
            services.settings.get,
            services.history,
            lines,
            clock=lambda: services.clock(),
            notify=services.notify,
            alerts=services.alerts,
            routing=services.routing,
            contacts=services.contacts,
        )
        sms.subscribe()
        self._closers.append(sms.close)
        services.sms = sms
        services.extra["sms"] = sms
        self.supervisor.add(sms.worker)
        sms.schedule(services.scheduler)

        def changed(event: SettingsChanged) -> None:
            if "sms" in event.sections:
                sms.schedule(services.scheduler)

        services.bus.subscribe(SettingsChanged, changed)

    def _start_greetings_and_forwarding(self, services: Services, lines: Any) -> None:
        """Greetings prepared off the line threads; GSM network forwarding kept in step with
        the hours and rota; call recordings pruned after their retention period."""
        from .services.forwarding import CallRecordings, ForwardingService

        services.greetings.start()
        self._closers.append(services.greetings.close)
        recordings = CallRecordings(
            services.store, services.settings, services.clock, history=services.history
        )
        forwarding = ForwardingService(
            services.settings,
            services.routing,
            lines.lines,
            bus=services.bus,
            scheduler=services.scheduler,
            call_audio=services.call_audio,
            greetings=services.greetings,
            recordings=recordings,
        )
        forwarding.subscribe()
        forwarding.submit()
        self._closers.append(forwarding.close)
        recordings.add_job(services.scheduler)
        services.forwarding = forwarding  # the runner's put_through
        services.extra["forwarding"] = forwarding
        services.extra["recordings"] = recordings

    def _schedule(self, services: Services) -> None:
        """The scheduler thread with its jobs: the daily email summary and the alert checks."""
        from .events import SettingsChanged

        scheduler, notify = services.scheduler, services.notify
        notify.schedule_digest(scheduler)

        def moved(event: SettingsChanged) -> None:  # the summary time is in the business zone
            if "business" in event.sections or "notifications" in event.sections:
                notify.schedule_digest(scheduler)

        services.bus.subscribe(SettingsChanged, moved)
        # A summary missed while the box was off goes out once it is back (up to 12 h late).
        scheduler.every(1).seconds.named("summary catch-up").do(self._catch_up, notify)
        services.alerts.subscribe(services.bus)
        services.alerts.add_jobs(scheduler)
        # Freed memory goes back to the system once traffic has settled (memory.py).
        from .memory import Trimmer
        from .services.history import InteractionRecorded

        trimmer = Trimmer()
        services.bus.subscribe(InteractionRecorded, trimmer.note)
        scheduler.every(1).minutes.named("memory trim").do(trimmer.tick)
        self.supervisor.add(scheduler.worker)

    @staticmethod
    def _catch_up(notify: Any) -> Any:
        import schedule

        notify.catch_up_digest()
        return schedule.CancelJob

    def control_handlers(self, services: Services) -> dict[str, Callable[..., Any]]:
        def routing_explain(at: str, number: str = "", line: str | None = None) -> dict[str, Any]:
            """`frontdesk routing explain`: what happens if `number` calls `at` (local time)
            on `line` (a line's name or kind; default the first line), as a live call."""
            return services.routing.explain(at, number, line)

        def sms_send(to: str, text: str, line: str | None = None) -> dict[str, Any]:
            """`frontdesk sms send`: queue a text; the reply says how it will go."""
            if services.sms is None:
                raise FrontdeskError("this daemon has no text messages (no lines)")
            item = services.sms.send(to, text, line)
            return {
                "id": item.id,
                "to": item.number,
                "parts": item.details.get("parts"),
                "encoding": item.details.get("encoding"),
            }

        def fax_send(
            to: str, content: str, cover: str | None = None, fine: bool = True, name: str = ""
        ) -> dict[str, Any]:
            """`frontdesk fax send`: the file comes base64 over the socket (the daemon runs
            as another user and does not read the caller's files)."""
            import base64
            import binascii

            if services.fax is None:
                raise FrontdeskError("this daemon has no fax service (no lines)")
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise FrontdeskError(f"the file did not arrive intact: {exc}") from exc
            item = services.fax.send(to, data, cover_note=cover, fine=fine, filename=name)
            return _fax_state(item)

        def fax_status(id: str, wait: float = 0.0) -> dict[str, Any]:
            """`frontdesk fax send` waiting for the pages: the fax once they are drawn (or
            could not be), or as it is after `wait` seconds (at most 25)."""
            if services.fax is None:
                raise FrontdeskError("this daemon has no fax service (no lines)")
            item = services.fax.wait_drawn(str(id), max(0.0, min(float(wait), 25.0)))
            if item is None:
                raise FrontdeskError(f"no outgoing fax {id}")
            return _fax_state(item)

        def _fax_state(item: Any) -> dict[str, Any]:
            return {
                "id": item.id,
                "to": item.number,
                "state": item.outcome,
                "status": item.details.get("status"),
                "pages": item.details.get("pages"),
                "reason": item.details.get("reason", ""),
            }

        def settings_import(text: str, context: str = "settings file") -> list[list[Any]]:
            return [list(c) for c in services.settings.import_toml(text, context)]

        return {
            "ping": lambda: {"version": __version__, "uptime": services.uptime},
            "settings.export": services.settings.export_toml,
            "settings.import": settings_import,
            # `frontdesk passwd`: the password arrives over the 0600 socket and is never logged.
            "passwd": lambda password: services.auth.set_password(password),
            "routing.explain": routing_explain,
            "lines.status": lambda: services.extra["lines"].as_dicts(),
            "demo.call": lambda number, name=None, line=None, **script: services.extra[
                "lines"
            ].demo_call(number, name, line, **script),
            "demo.fax": lambda number="+15551230100", line=None: services.extra["lines"].demo_fax(
                number, line
            ),
            "demo.sms": lambda number, text, line=None: services.extra["lines"].demo_sms(
                number, text, line
            ),
            "sms.send": sms_send,
            "fax.send": fax_send,
            "fax.status": fax_status,
        }

    # -- running -----------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if not self.stop_requested.is_set():
            self.stop_reason = reason
            self.stop_requested.set()

    def _ready(self) -> None:
        where = f", web page on http://{self.web.address}/" if self.web else ""
        log.info("Frontdesk %s running, data in %s%s", __version__, self.config.data_dir, where)
        self.notifier.ready(f"running{where}")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(signal.Signals(signum).name)

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the process exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        try:
            self.start(on_ready=self._ready)
        except StoreFileError as exc:  # a restart cannot fix it: say so once and stay down
            log.critical("cannot start: %s", exc)
            self.shutdown()
            return EXIT_STORE_FILE
        except (FrontdeskError, OSError) as exc:
            log.error("cannot start: %s", exc)
            self.shutdown()
            return 1
        interval = min(5.0, self.notifier.watchdog_interval or 5.0)
        while not self.stop_requested.wait(interval):
            self.supervisor.check()
            stuck = self.supervisor.unhealthy()
            if self.panel is not None:
                self.panel.set_ready("trouble" if stuck else "running")
            if self.notifier.watchdog_interval:
                if stuck:
                    # No ping: systemd restarts us if this lasts past WatchdogSec.
                    log.error("not healthy (%s); withholding the watchdog ping", ", ".join(stuck))
                else:
                    self.notifier.watchdog()
        log.info("stopping (%s)", self.stop_reason)
        self.shutdown()
        return 0

    def shutdown(self) -> None:
        """Stop within STOP_DEADLINE: calls in progress hung up and recorded first (up to
        CALLS_BUDGET, while the lines still run), then the workers (their loops end), then
        the closers in reverse order of creation, in a thread of their own that is left
        behind at the deadline. `stopped_cleanly` says whether everything finished."""
        started = time.monotonic()
        deadline = started + STOP_DEADLINE
        self.notifier.stopping()
        if self.services is not None:
            # A rebuild of the history index stops now, so its snapshot is written in time.
            self.services.history.stop_indexing()
            self.services.bus.publish(DaemonStopping(reason=self.stop_reason or "shutdown"))
        current = [""]
        hang_ups, self._hang_ups = list(self._hang_ups), []
        hanging = threading.Thread(
            target=_close_all, args=(hang_ups, current), name="hanging-up", daemon=True
        )
        hanging.start()
        hanging.join(CALLS_BUDGET)
        if hanging.is_alive():
            log.warning("calls not hung up within %.1f s; stopping the lines", CALLS_BUDGET)
        self.supervisor.stop_all(min(WORKERS_BUDGET, max(0.0, deadline - time.monotonic())))
        closers, self._closers = list(reversed(self._closers)), []

        def close_all() -> None:
            hanging.join()  # the calls' records before the store closes
            _close_all(closers, current)

        closing = threading.Thread(target=close_all, name="closing", daemon=True)
        closing.start()
        closing.join(max(0.0, deadline - time.monotonic()))
        if closing.is_alive():
            self.stopped_cleanly = False
            log.warning(
                "still closing %s at the %.1f s stop deadline: left running (every "
                "acknowledged write is already on disk)",
                current[0] or "?",
                STOP_DEADLINE,
            )
        log.info("stopped in %.2f s", time.monotonic() - started)


def _close_all(closers: list[Callable[[], None]], current: list[str]) -> None:
    """Run each closer in turn (an error is logged, the rest still run); `current[0]` names
    the one running, for the deadline's log line."""
    for close in closers:
        current[0] = _name(close)
        t0 = time.monotonic()
        try:
            close()
        except Exception:
            log.exception("error while closing %s", current[0])
        if time.monotonic() - t0 > 0.25:
            log.info("closing %s took %.2f s", current[0], time.monotonic() - t0)
    current[0] = ""


def _name(close: Callable[[], None]) -> str:
    owner = getattr(close, "__self__", None)
    name = getattr(close, "__name__", repr(close))
    return f"{type(owner).__name__}.{name}" if owner is not None else name


def exit_code(daemon: Daemon, code: int) -> int:
    """The process's exit code after `daemon.run()`. A daemon that ran leaves at once
    (os._exit) once its logs are flushed: everything is closed and on disk by then, and the
    interpreter's own teardown (collecting every object, joining leftover threads, a closer
    left running) can take a second or more on a Pi, which would break the 2-second promise."""
    if daemon.services is not None:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    return code
