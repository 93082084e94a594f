"""Backup/restore round trip, the JSON API with tokens, the System page and its probes."""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from flask.testing import FlaskClient

from firmware_app.services import Services
from firmware_app.services.system import (
    ClockSync,
    SystemService,
    default_clock_sync,
    human_bytes,
    human_duration,
    kernel_clock_sync,
)

from .conftest import Owner


def _upload(owner: Owner, text: str | bytes, name: str = "backup.toml") -> Any:
    data = text.encode() if isinstance(text, str) else text
    return owner.post(
        "/backup/restore",
        {"file": (io.BytesIO(data), name)},
        token_from="/backup/",
        content_type="multipart/form-data",
    )


def test_backup_restore_round_trip(logged_in: Owner, services: Services) -> None:
    logged_in.post(
        "/email/",
        {"smtp_host": "smtp.example.com", "smtp_port": "587", "password": "mail-secret"},
    )
    download = logged_in.client.get("/backup/settings.toml")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    assert download.headers["Cache-Control"] == "no-store"
    saved = download.get_data(as_text=True)
    assert 'smtp_host = "smtp.example.com"' in saved

    # Change things, then restore the file.
    logged_in.post(
        "/settings/business",
        {"name": "Someone Else", "timezone": "Europe/Rome", "country": "IT", "owner_email": ""},
    )
    logged_in.post("/email/", {"smtp_host": "", "smtp_port": "25", "password__clear": "1"})
    preview = _upload(logged_in, saved)
    assert preview.status_code == 200
    page = preview.get_data(as_text=True)
    assert "Restore these settings?" in page
    assert "business.name" in page and "Someone Else" in page and "Rossi Plumbing" in page
    assert "email.password" in page and "mail-secret" not in page.split("<textarea")[0]
    assert services.settings.get().business.name == "Someone Else"  # not yet restored

    assert "mail-secret" not in page  # the file waits on the server, not in the page
    token = re.search(r'name="token" value="([A-Za-z0-9_-]+)"', page).group(1)
    response = logged_in.post("/backup/restore/confirm", {"token": token}, token_from="/backup/")
    assert response.status_code == 302
    assert services.settings.export_toml() == saved
    assert services.settings.get().email.password == "mail-secret"


def test_restore_of_identical_file_changes_nothing(logged_in: Owner, services: Services) -> None:
    response = _upload(logged_in, services.settings.export_toml())
    assert "nothing to restore" in response.get_data(as_text=True)


def test_restore_rejects_bad_files_naming_problems(logged_in: Owner, services: Services) -> None:
    before = services.settings.export_toml()
    bad = before.replace("smtp_port = 587", 'smtp_port = "<b>x</b>"').replace(
        'country = "GB"', 'country = "XX"'
    )
    response = _upload(logged_in, bad)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "email.smtp_port" in page and "a whole number" in page
    assert "business.country" in page and "<b>x</b>" not in page
    assert "nothing was changed" in page
    for junk in (b"\xff\xfe\x00binary", "not = [valid toml"):
        assert _upload(logged_in, junk).status_code == 422
    response = logged_in.post("/backup/restore", {}, token_from="/backup/")
    assert response.status_code == 422 and "choose the .toml file" in response.get_data(
        as_text=True
    )
    assert services.settings.export_toml() == before


def test_restore_never_shows_a_bad_secret_value(logged_in: Owner, services: Services) -> None:
    before = services.settings.export_toml()
    bad = before.replace('password = ""', "password = 123456789", 1)
    bad = bad.replace('sim_pin = ""', 'sim_pin = "my-pin-99"', 1)
    assert "123456789" in bad and "my-pin-99" in bad
    response = _upload(logged_in, bad)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "email.password" in page and "lines.sim_pin" in page
    assert "123456789" not in page and "my-pin-99" not in page
    assert "(hidden)" in page
    assert services.settings.export_toml() == before


def test_restore_confirm_needs_a_live_token(logged_in: Owner, services: Services) -> None:
    before = services.settings.export_toml()
    response = logged_in.post(
        "/backup/restore/confirm", {"token": "made-up"}, token_from="/backup/"
    )
    assert response.status_code == 302
    assert services.settings.export_toml() == before
    # A token works once.
    preview = _upload(logged_in, before.replace("Rossi Plumbing", "Rossi Heating"))
    token = re.search(r'name="token" value="([A-Za-z0-9_-]+)"', preview.get_data(as_text=True))
    assert token is not None
    for _ in range(2):
        logged_in.post("/backup/restore/confirm", {"token": token.group(1)}, token_from="/backup/")
    assert services.settings.get().business.name == "Rossi Heating"
    services.settings.import_toml(before)
    again = logged_in.post(
        "/backup/restore/confirm", {"token": token.group(1)}, token_from="/backup/"
    )
    assert again.status_code == 302
    assert services.settings.export_toml() == before


# -- API ---------------------------------------------------------------------------------


def test_api_needs_a_token(client: FlaskClient, logged_in: Owner) -> None:
    anonymous = client.application.test_client()
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer fd_wrong"},
        {"Authorization": "Bearer "},
    ):
        response = anonymous.get("/api/v1/status", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "error" in response.json
    # A logged-in browser session is not an API credential.
    assert logged_in.client.get("/api/v1/status").status_code == 401


def test_api_tokens_created_used_and_revoked_in_the_ui(
    logged_in: Owner, services: Services
) -> None:
    response = logged_in.post("/settings/api-tokens", {"name": "Status screen"})
    page = response.get_data(as_text=True)
    secret = re.search(
        r'id="new-token" class="token-value" type="text" value="(fd_[^"]+)"', page
    ).group(1)
    # Stored hashed only.
    raw = b"".join(p.read_bytes() for p in services.store.data_dir.rglob("*.json*"))
    assert secret.encode() not in raw
    api = logged_in.client.application.test_client()
    response = api.get("/api/v1/status", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    body = response.json
    assert body["business"]["name"] == "Rossi Plumbing"
    assert body["clock"] == {"synchronized": True, "source": "kernel"}
    assert body["token"] == "Status screen" and body["configured"] is True
    assert set(body["disk"]) == {"total_bytes", "free_bytes", "low"}
    # Listed without the secret, then revoked.
    page = logged_in.client.get("/settings/api-tokens").get_data(as_text=True)
    assert "Status screen" in page and secret not in page and "Never" not in page
    token_id = services.auth.list_tokens()[0].id
    response = logged_in.post(
        f"/settings/api-tokens/{token_id}/revoke", {}, token_from="/settings/api-tokens"
    )
    assert response.status_code == 302
    assert (
        api.get("/api/v1/status", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    )


def test_api_token_name_is_validated(logged_in: Owner, services: Services) -> None:
    response = logged_in.post("/settings/api-tokens", {"name": "  "})
    assert response.status_code == 422 and "Name: expected" in response.get_data(as_text=True)
    assert services.auth.list_tokens() == []


def test_api_unknown_endpoint_is_json_404(logged_in: Owner) -> None:
    response = logged_in.client.get("/api/v1/nope")
    assert response.status_code == 404 and response.json["error"]


def test_api_post_needs_no_csrf_but_a_token(services: Services, logged_in: Owner) -> None:
    from web_ui import create_app
    from web_ui.api import api_blueprint, register_api

    app = create_app(services, {"TESTING": True})
    bp = api_blueprint("api_echo", __name__, "/echo")

    @bp.post("/")
    def echo() -> dict[str, object]:
        from flask import request

        return {"got": request.get_json()}

    register_api(app, bp)
    _, secret = services.auth.create_token("script")
    client = app.test_client()
    assert client.post("/api/v1/echo/", json={"a": 1}).status_code == 401
    response = client.post(
        "/api/v1/echo/", json={"a": 1}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 200 and response.json == {"got": {"a": 1}}


# -- System ------------------------------------------------------------------------------


def test_system_page_shows_the_facts(logged_in: Owner, services: Services) -> None:
    logging.getLogger("tests.system").warning("modem unplugged on line 1")
    page = logged_in.client.get("/system/?level=warning").get_data(as_text=True)
    assert services.system.version in page
    assert "Set from the internet" in page
    assert "modem unplugged on line 1" in page
    assert str(services.store.data_dir) in page
    assert "first-run setup done" not in page  # an info line, below the chosen level
    assert "first-run setup done" in logged_in.client.get("/system/?level=info").get_data(
        as_text=True
    )


def test_clock_warning_on_every_page_while_unsynchronised(
    logged_in: Owner, services: Services
) -> None:
    services.system.clock_probe = lambda: ClockSync(False, "kernel", "test")
    services.system._clock_cache = None
    for path in ("/", "/settings/", "/email/", "/backup/", "/system/"):
        page = logged_in.client.get(path).get_data(as_text=True)
        assert "The clock is not set from the internet yet." in page, path
    services.system.clock_probe = lambda: ClockSync(True, "kernel", "test")
    services.system._clock_cache = None
    assert "not set from the internet" not in logged_in.client.get("/").get_data(as_text=True)


def test_clock_warning_on_every_page_while_nothing_can_tell(
    logged_in: Owner, services: Services
) -> None:
    # What the hardened unit gave before timedated was asked: adjtimex refused, no answer.
    services.system.clock_probe = lambda: ClockSync(None, "unknown", "adjtimex failed (errno 1)")
    services.system._clock_cache = None
    for path in ("/", "/settings/", "/email/", "/backup/", "/system/"):
        page = logged_in.client.get(path).get_data(as_text=True)
        assert "Frontdesk cannot tell whether the clock is set from the internet." in page, path
        assert "not set from the internet yet" not in page, path
    assert "adjtimex failed (errno 1)" in logged_in.client.get("/system/").get_data(as_text=True)


def test_a_synchronised_clock_is_asked_again_less_often(services: Services) -> None:
    now = [0.0]
    answers = [ClockSync(False, "kernel"), ClockSync(True, "kernel"), ClockSync(False, "kernel")]
    calls = []

    def probe() -> ClockSync:
        calls.append(1)
        return answers[len(calls) - 1]

    system = SystemService(
        services.store, services.log_ring, 0.0, clock_sync=probe, monotonic=lambda: now[0]
    )
    assert system.clock_sync().synchronized is False
    now[0] += SystemService.CLOCK_CACHE
    assert system.clock_sync().synchronized is True
    now[0] += SystemService.CLOCK_CACHE  # synchronised: kept longer
    assert system.clock_sync().synchronized is True and len(calls) == 2
    now[0] += SystemService.CLOCK_CACHE_SYNCED
    assert system.clock_sync().synchronized is False and len(calls) == 3


def test_low_disk_warning(logged_in: Owner, services: Services) -> None:
    services.system.disk_probe = lambda path: (1000, 950, 50)
    page = logged_in.client.get("/system/").get_data(as_text=True)
    assert "Less than 10% of the storage is free" in page
    services.system.disk_probe = lambda path: (1000, 500, 500)
    assert "Less than 10%" not in logged_in.client.get("/system/").get_data(as_text=True)


def test_system_service_caches_and_survives_failing_probes(services: Services) -> None:
    now = [0.0]
    calls = []

    def probe() -> ClockSync:
        calls.append(1)
        raise OSError("no adjtimex here")

    system = SystemService(
        services.store, services.log_ring, 0.0, clock_sync=probe, monotonic=lambda: now[0]
    )
    assert system.clock_sync().synchronized is None
    assert system.clock_sync().synchronized is None and len(calls) == 1
    now[0] += 60
    system.clock_sync()
    assert len(calls) == 2
    assert system.uptime() == 60


def test_kernel_clock_probe_answers_on_linux() -> None:
    state = kernel_clock_sync()
    assert state.synchronized in (True, False, None)
    assert default_clock_sync().source in (
        "kernel",
        "systemd-timesyncd",
        "systemd-timedated",
        "chrony",
        "unknown",
    )


def test_human_units() -> None:
    assert human_bytes(512) == "512 bytes"
    assert human_bytes(1536) == "1.5 KB"
    assert human_bytes(5 * 1024**3) == "5.0 GB"
    assert human_duration(42) == "42 s"
    assert human_duration(3 * 3600 + 120) == "3 h 2 min"
    assert human_duration(2 * 86400 + 3600) == "2 d 1 h"


def test_dashboard_is_honest(logged_in: Owner) -> None:
    page = logged_in.client.get("/").get_data(as_text=True)
    assert "Rossi Plumbing" in page and "Europe/London" in page
    assert "Still to set up" in page and "No mail server yet" in page
    assert "coming soon" not in page.lower()
