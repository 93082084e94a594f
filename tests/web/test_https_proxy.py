"""HTTPS through a reverse proxy: the daemon's real waitress server, spoken to over a socket.

Frontdesk serves plain HTTP. The session cookie is Secure exactly when the browser's request
was HTTPS, which only a proxy at `web.trusted_proxy` can say (X-Forwarded-Proto); anybody
else's forwarded headers are dropped.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

from firmware_app.daemon import WebServer
from firmware_app.services import Services
from tests.test_daemon import free_port

from .conftest import CSRF, PASSWORD

PUBLIC_HOST = "frontdesk.example"


@contextmanager
def web_server(services: Services, trusted_proxy: str) -> Iterator[int]:
    services.config.web.listen = f"127.0.0.1:{free_port()}"
    services.config.web.trusted_proxy = trusted_proxy
    server = WebServer(services)
    server.start()
    try:
        yield int(server.address.rpartition(":")[2])
    finally:
        server.stop()
        assert server.join(10)


class Browser:
    """A cookie jar and one connection, sending what a proxy in front of us would add."""

    def __init__(self, port: int, forwarded_proto: str | None) -> None:
        self.port = port
        self.proto = forwarded_proto
        self.cookie = ""
        self.set_cookies: list[str] = []

    def request(self, method: str, path: str, body: dict[str, str] | None = None) -> tuple:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Host": f"127.0.0.1:{self.port}"}
        scheme = "http"
        if self.proto:
            scheme = self.proto
            headers.update(
                {
                    "X-Forwarded-Proto": self.proto,
                    "X-Forwarded-For": "192.0.2.7",
                    "X-Forwarded-Host": PUBLIC_HOST,
                }
            )
        host = PUBLIC_HOST if self.proto else headers["Host"]
        if self.cookie:
            headers["Cookie"] = self.cookie
        data = None
        if body is not None:
            data = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"{scheme}://{host}{path}"  # as browsers send same-origin
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        cookies = response.headers.get_all("Set-Cookie") or []
        self.set_cookies += cookies
        for c in cookies:
            if c.startswith("frontdesk_session="):
                self.cookie = c.split(";", 1)[0]
        conn.close()
        return response.status, response.headers, text

    def log_in(self) -> int:
        status, _, page = self.request("GET", "/login")
        assert status == 200, page
        m = CSRF.search(page)
        assert m
        status, _, _ = self.request(
            "POST", "/login", {"password": PASSWORD, "csrf_token": m.group(1)}
        )
        return int(status)


def session_cookie_flags(browser: Browser) -> set[str]:
    found = [c for c in browser.set_cookies if c.startswith("frontdesk_session=")]
    assert found, browser.set_cookies
    return {part.strip().split("=")[0].lower() for part in found[-1].split(";")[1:]}


def test_https_through_the_trusted_proxy_gives_a_secure_cookie_and_a_working_login(
    services: Services,
) -> None:
    services.auth.set_password(PASSWORD)
    with web_server(services, "127.0.0.1") as port:
        browser = Browser(port, "https")
        assert browser.log_in() == 302
        assert {"secure", "httponly"} <= session_cookie_flags(browser)
        status, _, page = browser.request("GET", "/system/")
        assert status == 200
        # The login limit and the log see the browser's address, not the proxy's.
        assert any("192.0.2.7" in line.message for line in services.system.recent_logs(20))
        # Over HTTPS a form posted without a same-site Referer is refused (CSRF, strict).
        m = CSRF.search(page)
        assert m
        browser_no_ref = Browser(port, "https")
        browser_no_ref.cookie = browser.cookie
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(
            "POST",
            "/logout",
            body=urlencode({"csrf_token": m.group(1)}),
            headers={
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": PUBLIC_HOST,
                "Cookie": browser.cookie,
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": "https://elsewhere.example/",
            },
        )
        assert conn.getresponse().status == 400
        conn.close()


def test_plain_http_gives_a_cookie_without_secure(services: Services) -> None:
    services.auth.set_password(PASSWORD)
    with web_server(services, "127.0.0.1") as port:
        browser = Browser(port, None)
        assert browser.log_in() == 302
        assert "secure" not in session_cookie_flags(browser)
        assert browser.request("GET", "/system/")[0] == 200


def test_forwarded_headers_from_anyone_else_are_ignored(services: Services) -> None:
    services.auth.set_password(PASSWORD)
    # The proxy is said to be elsewhere: our own connection's X-Forwarded-Proto is a lie.
    with web_server(services, "127.0.0.2") as port:
        browser = Browser(port, "https")
        assert browser.log_in() == 302
        assert "secure" not in session_cookie_flags(browser)
    with web_server(services, "") as port:
        browser = Browser(port, "https")
        assert browser.request("GET", "/login")[0] == 200
        assert "secure" not in session_cookie_flags(browser)


def test_login_address_comes_from_the_proxy_only_when_trusted(services: Services) -> None:
    services.auth.set_password(PASSWORD)
    with web_server(services, "127.0.0.2") as port:
        browser = Browser(port, "https")
        browser.request("GET", "/login")
        m = CSRF.search(browser.request("GET", "/login")[2])
        assert m
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(
            "POST",
            "/login",
            body=urlencode({"password": "wrong password", "csrf_token": m.group(1)}),
            headers={
                "X-Forwarded-For": "192.0.2.99",
                "Cookie": browser.cookie,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert conn.getresponse().status == 401
        conn.close()
    lines = [line.message for line in services.system.recent_logs(20)]
    assert any(re.search(r"wrong password from 127\.0\.0\.1", x) for x in lines), lines
    assert not any("192.0.2.99" in x for x in lines)
