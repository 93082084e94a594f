"""Web UI fixtures: services on a fresh data dir, the app, a client and an owner helper."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import firmware_app.services.auth as auth_module
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.logs import RingBufferHandler
from firmware_app.services import Services
from firmware_app.services.system import ClockSync
from firmware_app.store import Store
from web_ui import create_app

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def fast_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production cost is N=2^15; tests only need the same code path.
    monkeypatch.setattr(auth_module, "HASH_METHOD", "scrypt:1024:8:1")


@pytest.fixture
def services(store: Store) -> Iterator[Services]:
    config = MachineConfig(store=StoreConfig(data_dir=str(store.data_dir)))
    ring = RingBufferHandler()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(ring)  # as setup_logging does in the daemon
    root.setLevel(logging.INFO)
    svc = Services.build(config, store, log_ring=ring)
    svc.system.clock_probe = lambda: ClockSync(True, "kernel", "test")
    yield svc
    root.removeHandler(ring)
    root.setLevel(old_level)


@pytest.fixture
def app(services: Services) -> Flask:
    return create_app(services, {"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    m = CSRF.search(page)
    assert m, f"no CSRF token on {path}"
    return m.group(1)


class Owner:
    """Drives the first-run setup and the login form like a person would."""

    def __init__(self, client: FlaskClient, services: Services) -> None:
        self.client = client
        self.services = services

    def setup(self, **fields: str) -> Any:
        data = {
            "name": "Rossi Plumbing",
            "timezone": "Europe/London",
            "country": "GB",
            "owner_email": "anna@rossi.example",
            "password": PASSWORD,
            "confirm": PASSWORD,
        }
        data.update(fields)
        data["csrf_token"] = csrf_token(self.client, "/setup")
        return self.client.post("/setup", data=data)

    def login(self, password: str = PASSWORD) -> Any:
        token = csrf_token(self.client, "/login")
        return self.client.post("/login", data={"password": password, "csrf_token": token})

    def logout(self) -> Any:
        return self.client.post("/logout", data={"csrf_token": csrf_token(self.client, "/")})

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = dict(data or {})
        body["csrf_token"] = csrf_token(self.client, kw.pop("token_from", path))
        return self.client.post(path, data=body, **kw)


@pytest.fixture
def owner(client: FlaskClient, services: Services) -> Owner:
    return Owner(client, services)


@pytest.fixture
def logged_in(owner: Owner) -> Iterator[Owner]:
    """An app that went through setup, with the owner logged in."""
    response = owner.setup()
    assert response.status_code == 302
    yield owner
