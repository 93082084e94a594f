"""End to end in headless Chromium: first-run setup, login, a setting, logout; screenshots.

The app is served by a real waitress server on a free loopback port, as the daemon serves it.
Screenshots (phone 390x844 and desktop 1280x800) land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_app.services import Services
from web_ui import create_app

from .conftest import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists(),
        reason="needs Debian's chromium at /usr/bin/chromium",
    ),
]

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}


@pytest.fixture
def server(services: Services) -> Iterator[str]:
    import waitress

    app = create_app(services)
    srv = waitress.create_server(app, host="127.0.0.1", port=0, threads=4, ident="Frontdesk")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()
    srv.task_dispatcher.shutdown(timeout=2)
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        yield b
        b.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_setup_login_change_a_setting_logout(
    browser: Any, server: str, services: Services, device: str
) -> None:
    width, height = VIEWPORTS[device]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(5000)
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda e: problems.append(str(e)))

    # First run: any page leads to setup.
    page.goto(server + "/settings/")
    assert page.url.endswith("/setup")
    _shot(page, f"{device}-01-setup")
    page.fill("#f-name", "Rossi & Sons Plumbing")
    page.select_option("#f-timezone", "Europe/London")
    page.select_option("#f-country", "GB")
    page.fill("#f-owner_email", "anna@rossi")  # no domain: refused, shown inline
    page.fill("#f-password", PASSWORD)
    page.fill("#f-confirm", PASSWORD)
    page.click("button[type=submit]")
    assert page.locator(".error-summary").is_visible()
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    assert "Owner email" in page.locator("#f-owner_email-error").inner_text()
    _shot(page, f"{device}-02-setup-error")
    page.fill("#f-owner_email", "anna@rossi.example")
    page.fill("#f-password", PASSWORD)
    page.fill("#f-confirm", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")
    assert page.locator(".flash-success").is_visible()
    assert "Rossi & Sons Plumbing" in page.locator(".card-hero h2").inner_text()
    _shot(page, f"{device}-03-home")

    # Log out and in again.
    page.click("text=Log out")
    page.wait_for_url("**/login")
    _shot(page, f"{device}-04-login")
    page.fill("#f-password", "not the password")
    page.click("button[type=submit]")
    assert "not the owner password" in page.locator(".field-error").inner_text()
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")

    # Change a setting through the navigation.
    page.click("nav.mainnav >> text=Settings")
    _shot(page, f"{device}-05-settings")
    page.click('.tile strong:text-is("Email")')
    page.fill("#f-smtp_host", "smtp.rossi.example")
    page.fill("#f-smtp_port", "five")
    page.click("form.form button[type=submit]")
    assert "Port: “five” is not allowed" in page.locator("#f-smtp_port-error").inner_text()
    assert page.get_attribute("#f-smtp_port", "aria-invalid") == "true"
    _shot(page, f"{device}-06-email-error")
    page.fill("#f-smtp_port", "465")
    page.select_option("#f-security", "tls")
    page.click("form.form button[type=submit]")
    assert "Email saved" in page.locator(".flash-success").inner_text()
    assert services.settings.get().email.smtp_host == "smtp.rossi.example"
    assert services.settings.get().email.smtp_port == 465

    for name, path in (
        ("07-system", "/system/"),
        ("08-backup", "/backup/"),
        ("09-tokens", "/settings/api-tokens"),
        ("10-business", "/settings/business"),
        ("11-not-found", "/no-such-page"),
    ):
        page.goto(server + path)
        _shot(page, f"{device}-{name}")

    # Nothing overflows sideways on a phone.
    page.goto(server + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    page.click("text=Log out")
    page.wait_for_url("**/login")
    page.goto(server + "/system/")
    assert "/login" in page.url
    assert problems == []
    context.close()
