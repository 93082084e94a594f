"""End to end in headless Chromium: first-run setup, login, a setting, logout; screenshots.

The app is served by a real waitress server on a free loopback port, as the daemon serves it.
Screenshots (phone 390x844 and desktop 1280x800) land in test-artifacts/screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from firmware_app.services import Services
from web_ui import create_app

from .browser import VIEWPORTS, chromium, needs_chromium, serve, shot
from .conftest import PASSWORD

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture
def server(services: Services) -> Iterator[str]:
    with serve(create_app(services)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _shot(page: Any, name: str) -> None:
    """A screenshot, after checking nothing on the page sticks out sideways (a phone would
    scroll the whole page; a hidden field or a grid too wide did): `browser.shot`."""
    shot(page, name)


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
    check_navigation(page, server, device, width)

    page.click("text=Log out")
    page.wait_for_url("**/login")
    page.goto(server + "/system/")
    assert "/login" in page.url
    assert problems == []
    context.close()


NAV_BOXES = """() => {
  const list = document.querySelector('.mainnav ul');
  const box = list.getBoundingClientRect();
  return {
    scrolls: list.scrollWidth > list.clientWidth,
    list: [box.left, box.right],
    links: [...list.querySelectorAll('a')].map(a => {
      const r = a.getBoundingClientRect();
      return [a.textContent.trim(), r.left, r.right, r.top, r.bottom];
    }),
  };
}"""


def check_navigation(page: Any, server: str, device: str, width: int) -> None:
    """Every navigation entry can be seen: all of them at once on a desktop; on a phone the
    row scrolls (with a fade saying so) and the current page's entry is scrolled into view."""
    nav = page.evaluate(NAV_BOXES)
    labels = [label for label, *_ in nav["links"]]
    assert {"Home", "Settings", "Backup", "System"} <= set(labels), labels
    if device == "desktop":
        assert not nav["scrolls"], "the desktop navigation must not need scrolling"
        for label, left, right, _top, _bottom in nav["links"]:
            assert left >= 0 and right <= width, (label, left, right)
            assert nav["list"][0] <= left and right <= nav["list"][1], (label, nav["list"])
        return
    assert nav["scrolls"]  # 14 entries do not fit a phone: the row scrolls
    fade = page.evaluate(
        "getComputedStyle(document.querySelector('.mainnav'), '::after').backgroundImage"
    )
    assert "gradient" in fade
    for path, label in (("/system/", "System"), ("/backup/", "Backup")):
        page.goto(server + path)
        nav = page.evaluate(NAV_BOXES)
        (box,) = [b for b in nav["links"] if b[0] == label]
        assert box[1] >= 0 and box[2] <= width, (label, box)
        shot(page, f"{device}-12-nav-{label.lower()}")
