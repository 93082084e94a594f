"""The web page is built by its first request (LazyWebApp), through the daemon's real
waitress server: the server listens from the start, the first request builds the app once,
later requests share it, and an app that cannot be built is a logged 500 that the next
request tries again."""

from __future__ import annotations

import http.client
import logging
import threading
from typing import Any

import pytest

import web_ui
from firmware_app.services import Services

from .test_https_proxy import web_server


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def test_the_first_request_builds_the_app_once_for_every_later_one(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []
    real = web_ui.create_app

    def counting(s: Services) -> Any:
        built.append(s)
        return real(s)

    monkeypatch.setattr(web_ui, "create_app", counting)
    with web_server(services, "") as port:
        assert built == []  # listening, nothing built yet
        statuses: list[int] = []
        threads = [
            threading.Thread(target=lambda: statuses.append(get(port, "/healthz")))
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert statuses == [200] * 6
        assert get(port, "/static/app.css") == 200
    assert built == [services]  # once, though six requests came together


def test_an_app_that_cannot_be_built_is_a_500_and_the_next_request_tries_again(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = web_ui.create_app
    attempts: list[int] = []

    def broken_once(s: Services) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("a page module is missing")
        return real(s)

    monkeypatch.setattr(web_ui, "create_app", broken_once)
    with caplog.at_level(logging.ERROR), web_server(services, "") as port:
        assert get(port, "/healthz") == 500
        assert "the web page could not be built" in caplog.text
        assert get(port, "/healthz") == 200
        assert get(port, "/healthz") == 200
    assert len(attempts) == 2
