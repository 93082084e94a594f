"""In headless Chromium: opening the Voicemail page (and the call's page) does not mark a
message heard; pressing play does, and the page shows it at once. No CSP complaint."""

from __future__ import annotations

import time
from typing import Any

import pytest

from firmware_app.services import Services

from .browser import needs_chromium, shot
from .conftest import PASSWORD
from .test_browser import browser, server  # noqa: F401 - fixtures
from .test_calls_pages import add

pytestmark = [pytest.mark.browser, needs_chromium]


def heard(services: Services, record_id: str) -> bool:
    item = services.history.get(record_id)
    assert item is not None
    return bool(item.details.get("heard"))


def until(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Poll an expression with `evaluate` (wait_for_function's polling would need eval,
    which the page's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"never true: {expression}"
        time.sleep(0.05)


def test_opening_the_page_is_not_hearing_pressing_play_is(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    services: Services,
) -> None:
    services.auth.set_password(PASSWORD)
    vm = add(services, "voicemail", 1)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10000)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Security Policy" in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server + "/login")
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")

    for path in (f"/calls/{vm.id}", "/voicemail/"):
        page.goto(server + path, wait_until="networkidle")
        assert page.locator("audio").get_attribute("preload") == "none"
        assert not heard(services, vm.id), path
    # Asking for the length (what a metadata preload does) is no listen either.
    page.evaluate("document.querySelector('audio').load()")
    until(page, "document.querySelector('audio').readyState >= 1")
    assert not heard(services, vm.id)
    assert page.locator(".js-new").count() == 1

    box = page.locator("audio").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 20, box["y"] + box["height"] / 2)  # the play button
    until(page, "!document.querySelector('audio').paused")
    page.locator(".js-new").wait_for(state="detached")
    deadline = time.monotonic() + 10
    while not heard(services, vm.id):
        assert time.monotonic() < deadline, "play did not mark the message heard"
        time.sleep(0.05)
    assert page.locator("form[data-heard-form] button").inner_text() == "Mark as new"
    shot(page, "desktop-voicemail-heard")
    assert problems == []
    context.close()
