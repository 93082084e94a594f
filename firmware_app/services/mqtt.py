"""Events out to an MQTT broker: interactions, line states, the mode and counters, with Home
Assistant discovery; commands in (override, send a text) when the owner allows them.

Event handlers only queue; one worker thread owns the connection, reconnects with backoff and
follows settings changes. Never blocks a line or the web page; never logs the password.
`status()` says whether the broker is connected, since when, and the last error (the MQTT
settings page shows it).

Every line is published, from the lines service's statuses as well as from line events:
`up` (idle), `down`, `ringing` or `in_call`, with `connected` ON or OFF for Home Assistant's
connectivity sensor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import FrontdeskError
from ..events import SettingsChanged
from ..modem.events import (
    CallAnswered,
    CallEnded,
    CallerHungUp,
    IncomingCall,
    LineDown,
    LineEvent,
    LineUp,
    ModemError,
    SignalChanged,
)
from ..settings.model import Mqtt
from ..workers import Worker
from .history import InboxChanged, Interaction, InteractionRecorded, InteractionUpdated

if TYPE_CHECKING:
    from . import Services

log = logging.getLogger(__name__)

QUEUE_MAX = 1000
REFRESH_SECONDS = 60.0
BACKOFF_MAX = 30.0
_SLUG = re.compile(r"[^a-z0-9_]+")
# A line's state as published: from the lines service's status words.
LINE_STATES = {
    "idle": "up",
    "ready": "up",
    "up": "up",
    "ringing": "ringing",
    "in_call": "in_call",
    "starting": "down",
    "down": "down",
}
# Fields of a line status worth publishing (the rest is for the Lines page).
LINE_FIELDS = (
    "port",
    "kind",
    "model",
    "description",
    "dbm",
    "registration",
    "operator",
    "last_error",
    "calls",
)
# Today's counters: state topic -> (the day counters it adds, the name in Home Assistant).
COUNTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "answered_today": (("call:answered",), "Calls answered today"),
    "missed_today": (("call:missed",), "Missed calls today"),
    "voicemail_today": (("call:voicemail",), "Voicemail today"),
    "texts_in_today": (("sms:in",), "Texts received today"),
    "texts_out_today": (("sms:out",), "Texts sent today"),
    "faxes_in_today": (("fax:in",), "Faxes received today"),
    "faxes_out_today": (("fax:out",), "Faxes sent today"),
}
OVERRIDE_OPTIONS = ["off", "open", "closed"]


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: str
    retain: bool = False


def interaction_payload(item: Interaction) -> dict[str, Any]:
    return {"id": item.id, **item.to_record(), "open": item.open}


class MqttService:
    """What goes to the broker and what comes back; the connection lives in `worker`."""

    def __init__(self, services: Services) -> None:
        self.svc = services
        self.queue: queue.Queue[Message] = queue.Queue(QUEUE_MAX)
        self.lines: dict[str, dict[str, Any]] = {}  # what line events said, per line
        self.worker = MqttWorker(self)
        self.connected = False
        self.connected_at: float | None = None  # time.time() of the last connect
        self.last_error = ""
        self.last_error_at: float | None = None
        self.published = 0

    def status(self) -> dict[str, Any]:
        """The broker connection for the settings page: configured, connected, since when,
        the last error, how many events went out."""
        cfg = self.config()
        return {
            "configured": bool(cfg.host),
            "broker": f"{cfg.host}:{cfg.port}" if cfg.host else "",
            "connected": self.connected,
            "connected_at": self.connected_at if self.connected else None,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at if self.last_error else None,
            "published": self.published,
            "waiting": self.queue.qsize(),
            "commands": list(self.worker.commands_done[-5:]),
            "running": self.worker.alive,
        }

    def error(self, text: str) -> None:
        self.last_error = text
        self.last_error_at = time.time()

    # -- what is published -------------------------------------------------------------------

    def config(self) -> Mqtt:
        return self.svc.settings.get().mqtt

    def base(self) -> str:
        return self.config().base_topic or "frontdesk"

    def node(self) -> str:
        return _SLUG.sub("_", self.base().lower()).strip("_") or "frontdesk"

    def put(self, topic: str, payload: Any, retain: bool = False) -> None:
        """Queue a message (from any thread); the oldest waiting one goes when the queue is full."""
        if not self.config().host:
            return
        text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        msg = Message(f"{self.base()}/{topic}", text, retain)
        while True:
            try:
                self.queue.put_nowait(msg)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.queue.get_nowait()

    def states(self) -> list[Message]:
        """The retained state topics: mode, override, counters, lines."""
        base = self.base()
        out: list[Message] = []
        try:
            status = self.svc.routing.status()
            mode = "open" if status.is_open else "closed"
            out.append(Message(f"{base}/state/mode", mode, True))
            out.append(
                Message(
                    f"{base}/state/hours",
                    json.dumps(
                        {
                            "mode": mode,
                            "why": str(status.mode),
                            "reason": status.reason,
                            "text": status.text,
                            "next_change": status.next_change.isoformat()
                            if getattr(status, "next_change", None)
                            else None,
                        }
                    ),
                    True,
                )
            )
        except Exception as exc:  # routing settings mid-edit must not stop the events
            log.warning("mqtt: cannot tell the opening-hours state: %s", exc)
        override = self.svc.settings.get().override.state
        out.append(Message(f"{base}/state/override", override, True))
        # The "Closed by hand" switch: ON only while closed by hand (open by hand is OFF,
        # and shows as "open" on the override select and sensor).
        out.append(
            Message(f"{base}/state/override_switch", "ON" if override == "closed" else "OFF", True)
        )
        out.append(Message(f"{base}/state/open_items", str(self.svc.history.open_count()), True))
        day = self.svc.stats.day(self.svc.stats.today())
        calls = sum(n for k, n in day.counts.items() if k.startswith("call:") and k != "call:out")
        out.append(Message(f"{base}/state/calls_today", str(calls), True))
        for topic, (keys, _name) in COUNTERS.items():
            out.append(Message(f"{base}/state/{topic}", str(sum(map(day.get, keys))), True))
        for name, state in sorted(self.current_lines().items()):
            out.append(Message(f"{base}/line/{name}", json.dumps(state), True))
        return out

    def current_lines(self) -> dict[str, dict[str, Any]]:
        """Every line: the lines service's status (the truth) over what events said."""
        lines = self.svc.extra.get("lines") or getattr(self.svc, "lines", None)
        known = {name: dict(state) for name, state in self.lines.items()}
        if lines is not None and hasattr(lines, "as_dicts"):
            try:
                for d in lines.as_dicts():
                    name = str(d.get("name", ""))
                    if not name:
                        continue
                    state = known.setdefault(name, {})
                    status = str(d.get("state", ""))
                    state.update({k: d.get(k) for k in LINE_FIELDS if k in d})
                    state.update(status=status, state=LINE_STATES.get(status, "down"))
            except Exception as exc:
                log.debug("mqtt: lines not readable: %s", exc)
        for state in known.values():
            state.setdefault("state", "down")
            state["connected"] = "OFF" if state["state"] == "down" else "ON"
        return known

    def discovery(self) -> list[Message]:
        """Home Assistant discovery configs (retained): lines, mode, override, counters."""
        cfg = self.config()
        if not cfg.discovery_prefix:
            return []
        base, node, prefix = self.base(), self.node(), cfg.discovery_prefix
        device = {
            "identifiers": [node],
            "name": self.svc.settings.get().business.name or "Frontdesk",
            "manufacturer": "Frontdesk",
            "model": "Call handling box",
            "sw_version": self.svc.system.version,
        }
        common = {
            "availability_topic": f"{base}/status",
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        }
        out: list[Message] = []

        def add(component: str, object_id: str, body: dict[str, Any]) -> None:
            body = {**body, "unique_id": f"{node}_{object_id}", **common}
            topic = f"{prefix}/{component}/{node}/{object_id}/config"
            out.append(Message(topic, json.dumps(body), True))

        add("sensor", "mode", {"name": "Mode", "state_topic": f"{base}/state/mode"})
        add(
            "sensor",
            "open_items",
            {
                "name": "Open items",
                "state_topic": f"{base}/state/open_items",
                "state_class": "measurement",
            },
        )
        add(
            "sensor",
            "calls_today",
            {
                "name": "Calls today",
                "state_topic": f"{base}/state/calls_today",
                "state_class": "total_increasing",
            },
        )
        for topic, (_keys, name) in COUNTERS.items():
            add(
                "sensor",
                topic,
                {
                    "name": name,
                    "state_topic": f"{base}/state/{topic}",
                    "state_class": "total_increasing",
                },
            )
        override = {
            "name": "Closed by hand",
            "state_topic": f"{base}/state/override_switch",
            "payload_on": "ON",
            "payload_off": "OFF",
        }
        mode: dict[str, Any] = {"name": "Override", "state_topic": f"{base}/state/override"}
        if cfg.commands:
            override |= {"command_topic": f"{base}/cmd/override", "state_on": "ON"}
            add("switch", "override", override)
            mode |= {"command_topic": f"{base}/cmd/override", "options": OVERRIDE_OPTIONS}
            add("select", "override_mode", mode)
        else:
            add("binary_sensor", "override", override)
            add("sensor", "override_mode", mode)
        for name in sorted(self.current_lines()):
            slug = _SLUG.sub("_", name.lower())
            add(
                "binary_sensor",
                f"line_{slug}",
                {
                    "name": f"Line {name}",
                    "state_topic": f"{base}/line/{name}",
                    "value_template": "{{ value_json.connected }}",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "device_class": "connectivity",
                },
            )
            add(
                "sensor",
                f"line_{slug}_state",
                {
                    "name": f"Line {name} state",
                    "state_topic": f"{base}/line/{name}",
                    "value_template": "{{ value_json.state }}",
                },
            )
        return out

    # -- events in from the bus --------------------------------------------------------------

    def subscribe(self) -> Callable[[], None]:
        bus = self.svc.bus
        offs = [
            bus.subscribe(InteractionRecorded, self._recorded),
            bus.subscribe(InteractionUpdated, self._updated),
            bus.subscribe(InboxChanged, self._inbox),
            bus.subscribe(LineEvent, self._line),
            bus.subscribe(SettingsChanged, self._settings),
        ]

        def unsubscribe() -> None:
            for off in offs:
                off()

        return unsubscribe

    def _recorded(self, event: InteractionRecorded) -> None:
        self.put("interaction", interaction_payload(event.interaction))
        self.refresh()

    def _updated(self, event: InteractionUpdated) -> None:
        self.put("interaction/updated", interaction_payload(event.interaction))

    def _inbox(self, event: InboxChanged) -> None:
        self.put("state/open_items", str(event.open_count), retain=True)

    def _line(self, event: LineEvent) -> None:
        state = dict(self.lines.get(event.line, {"state": "down"}))
        if isinstance(event, LineUp):
            state.update(state="up", port=event.port, description=event.description)
            state.pop("reason", None)
        elif isinstance(event, LineDown):
            state.update(state="down", port=event.port, reason=event.reason)
        elif isinstance(event, IncomingCall):
            state.update(state="ringing")
        elif isinstance(event, CallAnswered):
            state.update(state="in_call")
        elif isinstance(event, CallerHungUp | CallEnded):
            state.update(state="up")
        elif isinstance(event, SignalChanged):
            state.update(dbm=event.dbm, registration=event.registration, operator=event.operator)
        elif isinstance(event, ModemError):
            state.update(error=event.message)
        else:
            return
        state["status"] = {"up": "idle"}.get(state["state"], state["state"])
        state["connected"] = "OFF" if state["state"] == "down" else "ON"
        state["at"] = event.at.isoformat()
        new_line = event.line not in self.lines
        self.lines[event.line] = state
        self.put(f"line/{event.line}", state, retain=True)
        if new_line:
            self.worker.rediscover.set()

    def _settings(self, event: SettingsChanged) -> None:
        if "mqtt" in event.sections:
            self.worker.reconnect.set()
        elif {"override", "hours", "holidays", "business"} & set(event.sections):
            self.refresh()

    def refresh(self) -> None:
        self.worker.refresh.set()

    # -- commands in -------------------------------------------------------------------------

    def command(self, topic: str, payload: bytes) -> str:
        """Apply a command from the broker; returns what was done (for the log and tests)."""
        if not self.config().commands:
            return "ignored: commands are off"
        what = topic.rsplit("/cmd/", 1)[-1]
        text = payload.decode("utf-8", errors="replace").strip()
        try:
            if what == "override":
                state = {"ON": "closed", "OFF": "off"}.get(text.upper(), text.lower())
                if state not in ("open", "closed", "off"):
                    return f"ignored: override {text!r} is not open, closed, off, ON or OFF"
                self.svc.routing.set_override(state)  # type: ignore[arg-type]
                self.refresh()
                return f"override {state}"
            if what == "sms":
                sms = getattr(self.svc, "sms", None)
                if sms is None:
                    return "ignored: no SMS line"
                try:
                    body = json.loads(text)
                except ValueError:
                    body = None
                if not (
                    isinstance(body, dict)
                    and isinstance(body.get("to"), str)
                    and isinstance(body.get("text"), str)
                ):
                    return f"ignored: cmd/sms takes JSON like {SMS_EXAMPLE}, not {text[:60]!r}"
                to, message = body["to"], body["text"]
                item = sms.send(self.svc.contacts.normalise(to), message)
                return f"sms queued as {getattr(item, 'id', '?')}"
        except (FrontdeskError, ValueError, KeyError, TypeError) as exc:
            log.warning("mqtt command %s failed: %s", what, exc)
            return f"failed: {exc}"
        return f"ignored: unknown command {what!r}"


SMS_EXAMPLE = '{"to": "+447700900123", "text": "On our way"}'


class MqttWorker(Worker):
    """Owns the paho client: connect, publish the queue, reconnect with backoff."""

    def __init__(self, service: MqttService) -> None:
        super().__init__("mqtt", liveness=60.0)
        self.service = service
        self.refresh = threading.Event()
        self.reconnect = threading.Event()
        self.rediscover = threading.Event()
        self.commands_done: list[str] = []
        self.refused = ""  # the broker's reason when it refused the last connection

    def _client(self, cfg: Mqtt) -> Any:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"frontdesk-{self.service.node()}"
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password or None)
        if cfg.tls:
            import ssl  # with a broker that uses TLS: about 5 MB an idle daemon does not hold

            client.tls_set_context(ssl.create_default_context())
        client.will_set(f"{self.service.base()}/status", "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, int(BACKOFF_MAX))

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            done = self.service.command(msg.topic, msg.payload)
            self.commands_done.append(done)
            del self.commands_done[:-50]
            log.info("mqtt command on %s: %s", msg.topic, done)

        def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
            if getattr(reason, "is_failure", False):  # a CONNACK refusal: keep its words
                self.refused = f"the broker refused the connection: {reason}"
                self.service.error(self.refused)

        client.on_message = on_message
        client.on_connect = on_connect
        return client

    def _on_connect(self, client: Any, cfg: Mqtt) -> None:
        svc, base = self.service, self.service.base()
        svc.connected = True
        svc.connected_at = time.time()
        svc.last_error = ""
        log.info("mqtt: connected to %s:%s", cfg.host, cfg.port)
        client.publish(f"{base}/status", "online", qos=1, retain=True)
        for m in [*svc.discovery(), *svc.states()]:
            client.publish(m.topic, m.payload, qos=0, retain=m.retain)
        if cfg.commands:
            client.subscribe(f"{base}/cmd/#", qos=1)

    def run(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            cfg = self.service.config()
            if not cfg.host:
                self.service.connected = False
                if self.wait(5.0):
                    return
                continue
            self.reconnect.clear()
            self.refused = ""
            client = self._client(cfg)
            try:
                client.connect(cfg.host, cfg.port, keepalive=30)
            except (OSError, ValueError) as exc:
                self.service.error(f"cannot reach {cfg.host}:{cfg.port}: {exc}")
                log.warning("mqtt: %s; trying again in %.0f s", self.service.last_error, backoff)
                if self.wait(backoff):
                    return
                backoff = min(BACKOFF_MAX, backoff * 2)
                continue
            try:
                backoff = 1.0 if self._serve(client, cfg) else min(BACKOFF_MAX, backoff * 2)
            finally:
                self.service.connected = False
                try:
                    client.publish(f"{self.service.base()}/status", "offline", qos=0, retain=True)
                    client.loop(0.1)
                    client.disconnect()
                except Exception as exc:
                    log.debug("mqtt: disconnect: %s", exc)
            if not self.stopping.is_set() and not self.reconnect.is_set() and self.wait(backoff):
                return

    def _serve(self, client: Any, cfg: Mqtt) -> bool:
        """Run one connection until it drops, settings change or we stop. True if it was up."""
        import paho.mqtt.client as mqtt

        was_up = False
        next_refresh = 0.0
        while not self.stopping.is_set() and not self.reconnect.is_set():
            rc = client.loop(0.2)
            self.beat()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self.service.error(self.refused or f"connection lost ({mqtt.error_string(rc)})")
                log.warning("mqtt: %s", self.service.last_error)
                return was_up
            if not client.is_connected():
                continue
            if not was_up:
                was_up = True
                self._on_connect(client, cfg)
                next_refresh = time.monotonic() + REFRESH_SECONDS
            if self.rediscover.is_set():
                self.rediscover.clear()
                for m in self.service.discovery():
                    client.publish(m.topic, m.payload, retain=True)
            if self.refresh.is_set() or time.monotonic() >= next_refresh:
                self.refresh.clear()
                next_refresh = time.monotonic() + REFRESH_SECONDS
                for m in self.service.states():
                    client.publish(m.topic, m.payload, retain=m.retain)
            for _ in range(100):
                try:
                    m = self.service.queue.get_nowait()
                except queue.Empty:
                    break
                client.publish(m.topic, m.payload, qos=0, retain=m.retain)
                self.service.published += 1
        return was_up


__all__ = ["Message", "MqttService", "MqttWorker", "interaction_payload"]
