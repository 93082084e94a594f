"""MQTT events out and commands in, against a real Mosquitto broker on 127.0.0.1.

The broker runs from a temporary config on a free port; a second paho client watches every
topic. Checks: interactions and line states published, discovery configs valid JSON on the
expected topics, the override command applied (open and closed by hand shown apart), today's
counters, every line's state (up, ringing, in a call, down) from a simulated SIM800 whose
line came up before the MQTT worker started, a text sent through the broker reaching the
modem, the connection's status, commands ignored when switched off.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.modem.events import LineDown, LineUp
from firmware_app.services import Services
from firmware_app.services.history import Interaction
from firmware_app.services.mqtt import MqttService
from firmware_app.store import Store

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
pytestmark = pytest.mark.skipif(
    not Path(MOSQUITTO).exists(), reason="needs Debian's mosquitto (apt-get install mosquitto)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
    )
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=5)


class Watcher:
    """A second client that records everything the broker passes on."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda _c, _u, m: self._got(m)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("#")
        self.client.loop_start()

    def _got(self, m: Any) -> None:
        with self.lock:
            self.messages.append((m.topic, m.payload.decode(), bool(m.retain)))

    def last(self, topic: str) -> str | None:
        with self.lock:
            found = [p for t, p, _ in self.messages if t == topic]
        return found[-1] if found else None

    def wait(self, check: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out; seen: {[t for t, _, _ in self.messages]}")

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(2)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def desk(store: Store, broker: int) -> Iterator[tuple[Services, MqttService, Watcher]]:
    svc = Services.build(MachineConfig(store=StoreConfig(data_dir=str(store.data_dir))), store)
    svc.settings.save_section(
        "business", {"name": "Rossi", "timezone": "Europe/London", "country": "GB"}
    )
    svc.settings.save_section(
        "mqtt", {"host": "127.0.0.1", "port": broker, "base_topic": "office/fd", "commands": True}
    )
    watcher = Watcher(broker)
    mqtt = MqttService(svc)
    off = mqtt.subscribe()
    mqtt.worker.start()
    yield svc, mqtt, watcher
    off()
    mqtt.worker.stop()
    assert mqtt.worker.join(5)
    watcher.close()


def test_discovery_states_events_and_override_command(
    desk: tuple[Services, MqttService, Watcher],
) -> None:
    svc, mqtt, w = desk
    w.wait(lambda: w.last("office/fd/status") == "online")
    w.wait(lambda: w.last("office/fd/state/calls_today") == "0")
    configs = {t: json.loads(p) for t, p, _ in w.messages if t.startswith("homeassistant/")}
    counters = [
        "answered_today",
        "missed_today",
        "voicemail_today",
        "texts_in_today",
        "texts_out_today",
        "faxes_in_today",
        "faxes_out_today",
    ]
    assert set(configs) == {
        "homeassistant/sensor/office_fd/mode/config",
        "homeassistant/sensor/office_fd/open_items/config",
        "homeassistant/sensor/office_fd/calls_today/config",
        *(f"homeassistant/sensor/office_fd/{c}/config" for c in counters),
        "homeassistant/switch/office_fd/override/config",
        "homeassistant/select/office_fd/override_mode/config",
    }
    switch = configs["homeassistant/switch/office_fd/override/config"]
    assert switch["command_topic"] == "office/fd/cmd/override"
    assert switch["availability_topic"] == "office/fd/status"
    select = configs["homeassistant/select/office_fd/override_mode/config"]
    assert select["options"] == ["off", "open", "closed"]
    assert select["state_topic"] == "office/fd/state/override"
    assert select["command_topic"] == "office/fd/cmd/override"
    assert all(c["device"]["identifiers"] == ["office_fd"] for c in configs.values())
    w.wait(lambda: all(w.last(f"office/fd/state/{c}") == "0" for c in counters))
    late = Watcher(svc.settings.get().mqtt.port)  # retained: a late subscriber gets them too
    try:
        n = len(configs)
        late.wait(lambda: len([t for t, _, r in late.messages if r and "/config" in t]) == n)
        assert late.last("office/fd/status") == "online"
    finally:
        late.close()

    # A line comes up: its state, and a discovery config for it.
    svc.bus.publish(LineUp(line="line1", port="/dev/ttyACM0", description="USR5637"))
    line = w.wait(lambda: w.last("office/fd/line/line1"))
    assert json.loads(line)["state"] == "up"
    cfg = json.loads(
        w.wait(lambda: w.last("homeassistant/binary_sensor/office_fd/line_line1/config"))
    )
    assert cfg["state_topic"] == "office/fd/line/line1" and cfg["device_class"] == "connectivity"
    assert cfg["value_template"] == "{{ value_json.connected }}" and cfg["payload_on"] == "ON"
    assert json.loads(line)["connected"] == "ON"
    svc.bus.publish(LineDown(line="line1", port="/dev/ttyACM0", reason="unplugged"))
    w.wait(lambda: json.loads(w.last("office/fd/line/line1") or "{}").get("state") == "down")
    assert json.loads(w.last("office/fd/line/line1") or "{}")["connected"] == "OFF"

    # Every interaction goes out, with the counters after it.
    item = svc.history.record(
        Interaction(
            channel="call",
            direction="in",
            outcome="missed",
            start=datetime.now(UTC),
            number="+442079460958",
            name="<script>",
        )
    )
    sent = json.loads(w.wait(lambda: w.last("office/fd/interaction")))
    assert sent["id"] == item.id and sent["outcome"] == "missed" and sent["open"] is True
    w.wait(lambda: w.last("office/fd/state/open_items") == "1")
    w.wait(lambda: w.last("office/fd/state/calls_today") == "1")
    w.wait(lambda: w.last("office/fd/state/missed_today") == "1")
    assert w.last("office/fd/state/answered_today") == "0"

    # The override switch from Home Assistant.
    w.publish("office/fd/cmd/override", "ON")
    w.wait(lambda: svc.settings.get().override.state == "closed")
    w.wait(lambda: w.last("office/fd/state/override_switch") == "ON")
    assert w.last("office/fd/state/mode") in ("open", "closed")
    w.wait(lambda: w.last("office/fd/state/override") == "closed")
    # Open by hand: the override shows "open", and the "Closed by hand" switch is off.
    w.publish("office/fd/cmd/override", "open")
    w.wait(lambda: svc.settings.get().override.state == "open")
    w.wait(lambda: w.last("office/fd/state/override") == "open")
    assert w.last("office/fd/state/override_switch") == "OFF"
    w.wait(lambda: w.last("office/fd/state/mode") == "open")
    w.publish("office/fd/cmd/override", "OFF")
    w.wait(lambda: svc.settings.get().override.state == "off")
    w.wait(lambda: w.last("office/fd/state/override") == "off")
    w.publish("office/fd/cmd/override", "sideways")
    w.wait(lambda: any("sideways" in d for d in mqtt.worker.commands_done))
    w.publish("office/fd/cmd/sms", '{"to": "020 7946 0958", "text": "hi"}')
    w.wait(lambda: "ignored: no SMS line" in mqtt.worker.commands_done)
    status = mqtt.status()
    assert status["connected"] and status["connected_at"] and status["published"] >= 2
    assert status["broker"] == f"127.0.0.1:{svc.settings.get().mqtt.port}"


def test_commands_off_and_reconnect_after_settings_change(
    desk: tuple[Services, MqttService, Watcher],
) -> None:
    svc, mqtt, w = desk
    w.wait(lambda: w.last("office/fd/status") == "online")
    port = svc.settings.get().mqtt.port
    svc.settings.save_section(
        "mqtt", {"host": "127.0.0.1", "port": port, "base_topic": "fd2", "commands": False}
    )
    w.wait(lambda: w.last("fd2/status") == "online")
    w.wait(lambda: w.last("homeassistant/binary_sensor/fd2/override/config"))
    w.publish("fd2/cmd/override", "ON")
    time.sleep(0.3)
    assert svc.settings.get().override.state == "off"
    assert mqtt.connected


def test_every_line_state_and_a_text_sent_through_the_broker(
    store: Store, broker: int, tmp_path: Path
) -> None:
    """A simulated SIM800's line is up before the MQTT worker starts (no LineUp seen): it is
    published all the same, rings and goes back to idle with a call, and a text asked for on
    <base>/cmd/sms goes out through the real SMS service to the modem."""
    from firmware_app.modem import events as ev
    from firmware_app.modem.line import LineOptions
    from firmware_app.protocol.sms_pdu import SmsSubmit, decode_pdu
    from firmware_app.services.lines import LinesService
    from firmware_app.services.sms import SmsOptions, SmsService

    svc = Services.build(MachineConfig(store=StoreConfig(data_dir=str(store.data_dir))), store)
    svc.settings.save_section(
        "business", {"name": "Rossi", "timezone": "Europe/London", "country": "GB"}
    )
    up = threading.Event()
    svc.bus.subscribe(ev.LineUp, lambda e: up.set())
    lines = LinesService(
        svc.bus,
        lambda: svc.settings.get().lines,
        data_dir=tmp_path / "lines",
        options=LineOptions(backoff_initial=0.1, backoff_max=0.4, probe_timeout=0.5),
    )
    line = lines.add_simulated("sim800")
    modem = lines._simulators[line.name]
    svc.extra["lines"] = lines
    sms = SmsService(
        store,
        svc.bus,
        svc.settings.get,
        svc.history,
        lines,
        contacts=svc.contacts,
        options=SmsOptions(retry_initial=0.2, retry_max=0.5, no_line_retry=0.2, tick=0.5),
    )
    svc.sms = sms
    sms.subscribe()
    sms.worker.start()
    line.start()
    watcher: Watcher | None = None
    mqtt: MqttService | None = None
    off: Callable[[], None] | None = None
    try:
        assert up.wait(10), "the simulated line did not come up"
        svc.settings.save_section(
            "mqtt", {"host": "127.0.0.1", "port": broker, "base_topic": "fd", "commands": True}
        )
        watcher = w = Watcher(broker)
        mqtt = MqttService(svc)
        off = mqtt.subscribe()
        mqtt.worker.start()

        def line1() -> dict[str, Any]:
            return dict(json.loads(w.last("fd/line/line1") or "{}"))

        w.wait(lambda: line1().get("state") == "up")
        assert line1()["connected"] == "ON" and line1()["kind"] == "gsm"
        assert line1()["status"] == "idle"
        w.wait(lambda: w.last("homeassistant/binary_sensor/fd/line_line1/config"))
        state = json.loads(
            w.wait(lambda: w.last("homeassistant/sensor/fd/line_line1_state/config"))
        )
        assert state["value_template"] == "{{ value_json.state }}"
        # A call rings (nobody answers here) and ends: ringing, then up again.
        lines.demo_call("+447700900123")
        w.wait(lambda: line1().get("state") == "ringing", timeout=15)
        w.wait(lambda: line1().get("state") == "up", timeout=60)
        # A text through the broker.
        w.publish("fd/cmd/sms", json.dumps({"to": "07700 900123", "text": "On our way"}))
        w.wait(lambda: modem.sent_sms, timeout=30)
        sent = decode_pdu(modem.sent_sms[0])
        assert isinstance(sent, SmsSubmit) and sent.text == "On our way"
        assert sent.destination.number == "+447700900123"
        done = [d for d in mqtt.worker.commands_done if d.startswith("sms queued as ")]
        assert done
        queued = json.loads(w.wait(lambda: w.last("fd/interaction")))
        assert queued["channel"] == "sms" and queued["direction"] == "out"
        assert queued["text"] == "On our way" and done[0].endswith(queued["id"])
        w.wait(
            lambda: json.loads(w.last("fd/interaction/updated") or "{}").get("outcome") == "sent",
            timeout=30,
        )
        w.wait(lambda: w.last("fd/state/texts_out_today") == "1")
        w.publish("fd/cmd/sms", "call me")  # not JSON: said in words, nothing sent
        w.wait(lambda: any("cmd/sms takes JSON like" in d for d in mqtt.worker.commands_done))
        w.publish("fd/cmd/sms", '{"to": "07700 900123"}')
        w.wait(lambda: any('\'{"to": "07700 900123"}\'' in d for d in mqtt.worker.commands_done))
        assert len(modem.sent_sms) == 1
        modem.unplug()  # the USB stick pulled out
        w.wait(lambda: line1().get("state") == "down", timeout=15)
        assert line1()["connected"] == "OFF"
    finally:
        if off is not None:
            off()
        if mqtt is not None:
            mqtt.worker.stop()
            assert mqtt.worker.join(5)
        if watcher is not None:
            watcher.close()
        line.stop()
        line.join(3)
        sms.worker.stop()
        sms.worker.join(5)
        sms.close()
        lines.close()


def test_the_status_says_why_the_broker_is_not_connected(store: Store) -> None:
    svc = Services.build(MachineConfig(store=StoreConfig(data_dir=str(store.data_dir))), store)
    port = free_port()  # nothing listens there
    svc.settings.save_section("mqtt", {"host": "127.0.0.1", "port": port})
    mqtt = MqttService(svc)
    mqtt.worker.start()
    try:
        deadline = time.monotonic() + 10
        while not mqtt.last_error and time.monotonic() < deadline:
            time.sleep(0.02)
        status = mqtt.status()
        assert not status["connected"] and status["configured"]
        assert status["last_error"].startswith(f"cannot reach 127.0.0.1:{port}")
        assert status["last_error_at"]
    finally:
        mqtt.worker.stop()
        assert mqtt.worker.join(5)
