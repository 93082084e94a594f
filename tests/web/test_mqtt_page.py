"""Settings > MQTT: the broker settings and the connection's state, against a real Mosquitto
on 127.0.0.1: nothing set, connected (with the events published), the broker gone (the
reason shown), and the same as JSON on /api/v1/mqtt."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_app.services import Services
from firmware_app.services.mqtt import MqttService

from ..mqtt_broker import Broker, have_mosquitto
from .conftest import Owner

pytestmark = pytest.mark.skipif(
    not have_mosquitto(), reason="needs Debian's mosquitto (apt-get install mosquitto)"
)


def wait(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def mqtt(services: Services) -> Iterator[MqttService]:
    service = MqttService(services)
    services.extra["mqtt"] = service
    off = service.subscribe()
    service.worker.start()
    yield service
    off()
    service.worker.stop()
    assert service.worker.join(5)


def test_the_page_shows_the_broker_connection(
    logged_in: Owner, services: Services, mqtt: MqttService, tmp_path: Path
) -> None:
    client = logged_in.client
    body = client.get("/mqtt/").get_data(as_text=True)
    assert "No broker set: nothing is published" in body
    assert client.get("/settings/mqtt").headers["Location"] == "/mqtt/"  # the generic URL
    assert "/mqtt/" in client.get("/settings/").get_data(as_text=True)
    broker = Broker(tmp_path).start()
    try:
        r = logged_in.post(
            "/mqtt/",
            {
                "host": "127.0.0.1",
                "port": str(broker.port),
                "base_topic": "fd",
                "discovery_prefix": "homeassistant",
            },
        )
        assert r.status_code == 302
        wait(lambda: mqtt.connected)
        body = client.get("/mqtt/").get_data(as_text=True)
        assert '<span class="badge badge-ok">Connected</span>' in body
        assert f"127.0.0.1:{broker.port}" in body and "events published" in body
        _, secret = services.auth.create_token("wallboard")
        got = client.get("/api/v1/mqtt", headers={"Authorization": f"Bearer {secret}"}).json
        assert got["connected"] is True and got["broker"] == f"127.0.0.1:{broker.port}"
    finally:
        broker.stop()
    wait(lambda: not mqtt.connected and mqtt.last_error)
    wait(lambda: "cannot reach" in mqtt.last_error)
    body = client.get("/mqtt/").get_data(as_text=True)
    assert '<span class="badge badge-danger">Not connected</span>' in body
    assert f"cannot reach 127.0.0.1:{broker.port}" in body
    r = logged_in.post("/mqtt/", {"host": "127.0.0.1", "port": "99999"})
    assert r.status_code == 422 and "Port" in r.get_data(as_text=True)
