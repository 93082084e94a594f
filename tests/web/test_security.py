"""Login required everywhere (walking the URL map), CSRF, headers, escaping, error pages."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, get_type_hints

import pytest
from flask import Flask
from flask.testing import FlaskClient

from firmware_app.services import Services
from firmware_app.settings.model import SECTIONS
from web_ui import create_app
from web_ui.registry import registry
from web_ui.security import CSP

from .conftest import Owner, csrf_token

PUBLIC = {"static", "auth.login", "auth.setup", "healthz"}
SAMPLE_ARGS = {
    "name": "business",
    "token_id": 1,
    "filename": "app.css",
    "msg_id": 1,
    "contact_id": 1,
    "note_id": 1,
    "number": "+441632960123",
    "record_id": "2025-01:1",
    "ref": "media/2025/01/abcdefgh1234.mp3",
    "draft_id": "abcdefghijkl",
    "page": 1,
    "n": 1,
}
# Pages of one stored thing: with none stored they answer 404 (tests/web/test_contacts_*.py).
NEEDS_DATA = {
    "timeline.contact",
    "timeline.record",
    "media.download",
    "contacts.edit",
    "calls.detail",
    "calls.recording",
    "voicemail.audio",
    "fax.draft",
    "fax.draft_page",
    "fax.page_one",
}
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "'><svg onload=alert(1)>"]


def _urls(app: Flask) -> list[tuple[str, str, str]]:
    out = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            args = {a: SAMPLE_ARGS[a] for a in rule.arguments}
            url = app.url_for(rule.endpoint, **args)
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                out.append((rule.endpoint, method, url))
    return out


def test_every_route_requires_login(logged_in: Owner, app: Flask) -> None:
    logged_in.logout()
    client = logged_in.client
    token = csrf_token(client, "/login")
    checked = 0
    for endpoint, method, url in _urls(app):
        if endpoint in PUBLIC:
            continue
        response = client.open(url, method=method, data={"csrf_token": token})
        if url.startswith("/api/"):
            assert response.status_code == 401, (method, url)
            assert response.is_json
        else:
            assert response.status_code == 302, (method, url, response.status_code)
            assert response.headers["Location"].startswith("/login"), (method, url)
        checked += 1
    assert checked >= 10


def test_public_routes_are_only_these(app: Flask) -> None:
    from web_ui.security import is_public

    with app.test_request_context():
        public = {rule.endpoint for rule in app.url_map.iter_rules() if is_public(rule.endpoint)}
    assert public == PUBLIC


def test_every_page_renders_for_the_owner(logged_in: Owner, app: Flask) -> None:
    for endpoint, method, url in _urls(app):
        if method != "GET" or endpoint in PUBLIC or url.startswith("/api/"):
            continue
        response = logged_in.client.get(url)
        assert response.status_code in ((200, 404) if endpoint in NEEDS_DATA else (200,)), url


@pytest.mark.parametrize(
    "path,data",
    [
        ("/settings/business", {"name": "Changed"}),
        ("/settings/api-tokens", {"name": "x"}),
        ("/settings/api-tokens/1/revoke", {}),
        ("/backup/restore/confirm", {"token": ""}),
        ("/logout", {}),
    ],
)
def test_state_changes_without_csrf_token_are_refused(
    logged_in: Owner, services: Services, path: str, data: dict[str, str]
) -> None:
    before = services.settings.export_toml()
    response = logged_in.client.post(path, data=data)
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    response = logged_in.client.post(path, data={**data, "csrf_token": "forged"})
    assert response.status_code == 400
    assert services.settings.export_toml() == before
    assert logged_in.client.get("/").status_code == 200  # still logged in


def test_csrf_token_of_another_session_is_refused(
    logged_in: Owner, app: Flask, services: Services
) -> None:
    other = app.test_client()
    foreign = csrf_token(other, "/login")
    response = logged_in.client.post(
        "/settings/business", data={"name": "X", "csrf_token": foreign}
    )
    assert response.status_code == 400
    assert services.settings.get().business.name == "Rossi Plumbing"


def test_security_headers(logged_in: Owner) -> None:
    for path in ("/", "/login", "/nope", "/static/app.css"):
        response = logged_in.client.get(path)
        h = response.headers
        assert h["Content-Security-Policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert "frame-ancestors 'none'" in CSP
        assert h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "same-origin"
        assert h["X-Content-Type-Options"] == "nosniff"
        response.close()
    assert logged_in.client.get("/").headers["Cache-Control"] == "no-store"


def test_no_inline_script_or_style_in_any_page(logged_in: Owner, app: Flask) -> None:
    for endpoint, method, url in _urls(app):
        if method != "GET" or url.startswith("/api/") or endpoint == "static":
            continue
        page = logged_in.client.get(url).get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", page):
            assert "src=" in tag, (url, tag)
        assert "<script>" not in page and "<style" not in page, url
        assert " style=" not in page and " on" + "click=" not in page, url


def _text_fields(cls: type) -> list[str]:
    hints = get_type_hints(cls)
    return [
        f.name
        for f in dataclasses.fields(cls)
        if hints[f.name] is str
        and not f.metadata.get("secret")
        and f.metadata.get("widget") not in ("timezone", "country")
    ]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_comes_back_escaped(
    logged_in: Owner, services: Services, hostile: str
) -> None:
    """Every text setting, whether saved (where allowed) or refused, is shown escaped."""
    own_pages = registry(logged_in.client.application).section_pages
    for section, cls in SECTIONS.items():
        if section in own_pages:
            continue  # a feature's own page: its tests post hostile text there
        for name in _text_fields(cls):
            response = logged_in.post(f"/settings/{section}", {name: hostile})
            page = (
                response.get_data(as_text=True)
                if response.status_code != 302
                else logged_in.client.get(f"/settings/{section}").get_data(as_text=True)
            )
            assert hostile not in page, (section, name)
            assert "<script>alert" not in page and "<img src=x" not in page, (section, name)
    # The business name shows on every page, in the header and the dashboard.
    svc_name = services.settings.get().business.name
    assert svc_name == hostile
    for path in ("/", "/settings/", "/system/", "/backup/", "/nope"):
        page = logged_in.client.get(path).get_data(as_text=True)
        assert hostile not in page, path
        assert "&lt;" in page, path


def test_hostile_text_in_lists_and_log_lines_is_escaped(
    logged_in: Owner, services: Services
) -> None:
    import logging

    logging.getLogger("tests.hostile").warning("caller said %s", HOSTILE[0])
    services.log_ring.emit(
        logging.makeLogRecord(
            {"name": "x", "levelname": "WARNING", "levelno": 30, "msg": HOSTILE[1]}
        )
    )
    page = logged_in.client.get("/system/?level=debug").get_data(as_text=True)
    assert HOSTILE[1] not in page and "&#34;&gt;&lt;img" in page
    response = logged_in.post("/email/", {"voicemail_to": HOSTILE[0] + "\n" + HOSTILE[1]})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert HOSTILE[0] not in page and HOSTILE[1] not in page


def test_hostile_token_name_is_escaped(logged_in: Owner) -> None:
    response = logged_in.post("/settings/api-tokens", {"name": HOSTILE[1]})
    assert response.status_code == 200
    assert HOSTILE[1] not in response.get_data(as_text=True)


def test_friendly_404_and_500(services: Services) -> None:
    app = create_app(services, {"TESTING": False})

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("kaput")

    client = app.test_client()
    services.auth.set_password("a long enough one")
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)
    token = csrf_token(client, "/login")
    client.post("/login", data={"password": "a long enough one", "csrf_token": token})
    response = client.get("/boom")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong" in page and "kaput" not in page and "Traceback" not in page


def test_upload_too_large_is_friendly(logged_in: Owner) -> None:
    app = logged_in.client.application
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = logged_in.post(
        "/backup/restore",
        {"file": (__import__("io").BytesIO(b"x" * 5000), "big.toml")},
        token_from="/backup/",
    )
    assert response.status_code == 413
    assert "File too large" in response.get_data(as_text=True)


def test_health_check_is_public(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json["status"] == "ok"
