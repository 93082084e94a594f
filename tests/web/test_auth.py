"""First-run setup, login and logout, the rate limit, sessions and the password page."""

from __future__ import annotations

import os
import stat

import pytest
from flask import Flask
from flask.testing import FlaskClient

from firmware_app.services import Services
from web_ui import create_app

from .conftest import PASSWORD, Owner, csrf_token


def test_every_page_leads_to_setup_before_a_password_exists(client: FlaskClient) -> None:
    for path in ("/", "/settings/", "/settings/email", "/system/", "/backup/", "/login"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"] == "/setup", path
    assert client.get("/setup").status_code == 200


def test_setup_defaults_timezone_from_the_system(client: FlaskClient, services: Services) -> None:
    page = client.get("/setup").get_data(as_text=True)
    tz = services.settings.get().business.timezone
    assert f'<option value="{tz}" selected>' in page


def test_setup_stores_business_and_password_and_logs_in(owner: Owner, services: Services) -> None:
    response = owner.setup()
    assert response.status_code == 302 and response.headers["Location"] == "/"
    business = services.settings.get().business
    assert (business.name, business.timezone, business.country) == (
        "Rossi Plumbing",
        "Europe/London",
        "GB",
    )
    assert business.owner_email == "anna@rossi.example"
    assert services.auth.check_password(PASSWORD)
    home = owner.client.get("/")
    assert home.status_code == 200 and "Rossi Plumbing" in home.get_data(as_text=True)
    # Setup is closed once done.
    assert owner.client.get("/setup").headers["Location"] == "/"


def test_setup_errors_name_the_field_and_save_nothing(owner: Owner, services: Services) -> None:
    response = owner.setup(name="", owner_email="not-an-email", password="short", confirm="other")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Business name:" in page
    assert "Owner email: “not-an-email” is not allowed" in page
    assert "Password: expected at least 8 characters" in page
    assert "Repeat the password: expected the same password twice" in page
    assert 'aria-invalid="true"' in page
    assert not services.auth.has_password
    assert not services.settings.configured


def test_setup_rejects_mismatched_confirmation_only(owner: Owner, services: Services) -> None:
    response = owner.setup(confirm=PASSWORD + "x")
    assert response.status_code == 422
    assert not services.auth.has_password and not services.settings.configured


def test_login_and_logout(logged_in: Owner) -> None:
    client = logged_in.client
    response = logged_in.logout()
    assert response.headers["Location"] == "/login"
    assert client.get("/").headers["Location"].startswith("/login")
    assert logged_in.login("wrong password").status_code == 401
    response = logged_in.login()
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_login_returns_to_the_page_asked_for_but_never_offsite(logged_in: Owner) -> None:
    client = logged_in.client
    logged_in.logout()
    assert client.get("/system/").headers["Location"] == "/login?next=/system/"
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"password": PASSWORD, "csrf_token": token, "next": "/system/"}
    )
    assert response.headers["Location"] == "/system/"
    logged_in.logout()
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        token = csrf_token(client, "/login")
        response = client.post(
            "/login", data={"password": PASSWORD, "csrf_token": token, "next": evil}
        )
        assert response.headers["Location"] == "/", evil
        logged_in.logout()


@pytest.mark.parametrize(
    "evil", ["/\r\nX-Injected: 1", "/system/\n", "/a\tb", "/\x00", "/\x7f", "/%0d%0aX:1"]
)
def test_next_with_control_characters_goes_home(logged_in: Owner, evil: str) -> None:
    client = logged_in.client
    logged_in.logout()
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"password": PASSWORD, "csrf_token": token, "next": evil})
    assert response.status_code == 302
    # A percent-encoded CR/LF stays text in the path: harmless, kept; a raw one is refused.
    expected = evil if evil.startswith("/%0d") else "/"
    assert response.headers["Location"] == expected
    assert "X-Injected" not in response.headers
    # Already logged in, GET /login?next=... redirects the same way instead of failing.
    page = client.get("/login", query_string={"next": evil})
    assert page.status_code == 302 and page.headers["Location"] == expected


def test_safe_next_table() -> None:
    from web_ui.security import safe_next

    assert safe_next("/system/?level=info") == "/system/?level=info"
    for bad in ("", None, "system/", "//x", "https://x/", "/\\x", "/a\rb", "/a\nb", "/\x1b["):
        assert safe_next(bad) is None, bad


def test_logout_needs_post_with_csrf(logged_in: Owner) -> None:
    assert logged_in.client.get("/logout").status_code == 405
    assert logged_in.client.post("/logout").status_code == 400
    assert logged_in.client.get("/").status_code == 200


def test_rate_limit_after_five_wrong_passwords(logged_in: Owner) -> None:
    logged_in.logout()
    for _ in range(5):
        assert logged_in.login("nope nope nope").status_code == 401
    response = logged_in.login()  # even the right password waits
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    page = response.get_data(as_text=True)
    assert "Too many wrong passwords" in page and "Try again in" in page
    assert "command “sudo frontdesk passwd”." in page and "`" not in page
    # Another address is not affected.
    other = logged_in.client.application.test_client()
    token = csrf_token(other, "/login")
    response = other.post(
        "/login",
        data={"password": PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.status_code == 302


def test_rate_limit_window_expires(services: Services) -> None:
    from firmware_app.services.auth import LoginLimiter

    now = [1000.0]
    limiter = LoginLimiter(max_failures=5, window=60, clock=lambda: now[0])
    for _ in range(5):
        limiter.failed("a")
    assert limiter.retry_after("a") == 60
    now[0] += 30
    assert limiter.retry_after("a") == 30
    now[0] += 30
    assert limiter.retry_after("a") == 0
    limiter.failed("b")
    limiter.succeeded("b")
    assert limiter.retry_after("b") == 0


def test_rate_limiter_memory_is_bounded() -> None:
    from firmware_app.services.auth import LoginLimiter

    limiter = LoginLimiter(max_addresses=10)
    for i in range(100):
        limiter.failed(f"10.0.0.{i}")
    assert len(limiter._failures) <= 10


def test_session_cookie_flags(owner: Owner) -> None:
    response = owner.setup()
    cookie = response.headers["Set-Cookie"]
    assert "frontdesk_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_secret_is_made_once_and_private(services: Services) -> None:
    key = services.auth.secret_key()
    path = services.store.data_dir / "web-secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert services.auth.secret_key() == key
    app1 = create_app(services, {"TESTING": True})
    app2 = create_app(services, {"TESTING": True})
    assert app1.secret_key == app2.secret_key == key


def test_new_password_ends_other_sessions(logged_in: Owner, services: Services) -> None:
    services.auth.set_password("a completely new one")  # as `frontdesk passwd` does
    assert logged_in.client.get("/").headers["Location"].startswith("/login")
    assert logged_in.login("a completely new one").status_code == 302


def test_logout_ends_the_session_on_the_server(
    logged_in: Owner, app: Flask, services: Services
) -> None:
    client = logged_in.client
    stolen = client.get_cookie("frontdesk_session")
    assert stolen is not None
    other = Owner(app.test_client(), services)  # a second browser, logged in too
    assert other.login().status_code == 302
    assert logged_in.logout().status_code == 302
    # A copy of the logged-out cookie is refused...
    thief = app.test_client()
    thief.set_cookie("frontdesk_session", stolen.value)
    assert thief.get("/").headers["Location"].startswith("/login")
    # ...while the other browser's login goes on.
    assert other.client.get("/").status_code == 200


def test_logged_in_browsers_are_capped(app: Flask, services: Services, logged_in: Owner) -> None:
    from firmware_app.services.auth import MAX_SESSIONS

    browsers = [Owner(app.test_client(), services) for _ in range(MAX_SESSIONS)]
    for b in browsers:
        assert b.login().status_code == 302
    # The oldest login (the set-up browser) made way; the newest ones stay.
    assert logged_in.client.get("/").status_code == 302
    assert browsers[0].client.get("/").status_code == 200
    assert browsers[-1].client.get("/").status_code == 200


def test_password_page(logged_in: Owner, services: Services) -> None:
    response = logged_in.post(
        "/settings/password", {"current": "wrong", "password": "x", "confirm": "y"}
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Current password: that is not the owner password" in page
    assert "Password: expected at least 8 characters" in page
    response = logged_in.post(
        "/settings/password",
        {"current": PASSWORD, "password": "new password 1", "confirm": "new password 1"},
    )
    assert response.status_code == 302
    assert services.auth.check_password("new password 1")
    assert logged_in.client.get("/").status_code == 200  # this browser stays logged in


def test_password_is_stored_hashed_only(logged_in: Owner, services: Services) -> None:
    raw = b"".join(p.read_bytes() for p in services.store.data_dir.rglob("*") if p.is_file())
    assert PASSWORD.encode() not in raw
    assert b"scrypt:" in raw


def test_password_is_never_logged(logged_in: Owner, services: Services) -> None:
    logged_in.logout()
    logged_in.login("wrong but secret")
    logged_in.login()
    lines = " ".join(line.message for line in services.log_ring.lines(500))
    assert PASSWORD not in lines and "wrong but secret" not in lines
