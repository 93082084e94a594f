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


def test_playing_a_message_in_the_inbox_marks_it_heard(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    services: Services,
) -> None:
    """The Inbox's player (and a caller's timeline's) marks a message heard as the Voicemail
    page's does: not on opening the page, on pressing play; its "new" badge goes at once.
    A missed call in the same list has no such badge."""
    services.auth.set_password(PASSWORD)
    vm = add(services, "voicemail", 1)
    add(services, "missed", 2)
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

    page.goto(server + "/inbox/", wait_until="networkidle")
    item = page.locator(f'[id="r-{vm.id}"]')
    assert item.locator(".js-new").count() == 1
    assert page.locator(".js-new").count() == 1  # the missed call has none
    assert not heard(services, vm.id)
    audio = item.locator("audio")
    box = audio.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 20, box["y"] + box["height"] / 2)  # the play button
    until(page, "[...document.querySelectorAll('audio')].some(a => !a.paused)")
    item.locator(".js-new").wait_for(state="detached")
    deadline = time.monotonic() + 10
    while not heard(services, vm.id):
        assert time.monotonic() < deadline, "play in the inbox did not mark the message heard"
        time.sleep(0.05)
    page.reload(wait_until="networkidle")
    assert page.locator(".js-new").count() == 0
    page.goto(server + f"/numbers/{vm.number}", wait_until="networkidle")
    assert page.locator("audio[data-heard-url]").count() == 1  # the caller's timeline too
    assert page.locator(".js-new").count() == 0
    shot(page, "desktop-inbox-heard")
    assert problems == []
    context.close()


def test_calls_and_voicemail_fit_a_phone(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    services: Services,
) -> None:
    """At a phone's width the Calls list is one card a call (caller and outcome on the first
    line, when and length under them), nothing wider than the screen, and a message's
    buttons sit side by side; Delete asks first."""
    services.auth.set_password(PASSWORD)
    services.settings.save_section("business", {"country": "GB"})
    vm = add(services, "voicemail", 1, number="+447400123456")
    add(services, "missed", 2, number="+447400123457")
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(10000)
    page = context.new_page()
    page.goto(server + "/login")
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")

    page.goto(server + "/calls/", wait_until="networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    row = page.locator(".calls-table tbody tr").first
    assert row.evaluate("r => getComputedStyle(r).display") == "grid"
    who = row.locator(".c-who").bounding_box()
    outcome = row.locator(".c-outcome").bounding_box()
    when = row.locator(".c-when").bounding_box()
    assert who and outcome and when
    assert abs(who["y"] - outcome["y"]) < 4 and outcome["x"] > who["x"]  # side by side
    assert when["y"] >= who["y"] + who["height"] - 1  # the time under the caller
    assert who["width"] > 150  # the caller's name is not squeezed to a letter a line
    assert "07400 123457" in row.inner_text()  # as people in the office write it
    shot(page, "phone-calls")

    page.goto(server + "/voicemail/", wait_until="networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    card = page.locator(f"li:has(a[href='/calls/{vm.id}'])")
    handled = card.get_by_role("button", name="Mark handled").bounding_box()
    heard_button = card.get_by_role("button", name="Mark as heard").bounding_box()
    assert handled and heard_button and abs(handled["y"] - heard_button["y"]) < 4
    player = card.locator("audio").bounding_box()
    panel = card.bounding_box()
    assert player and panel and player["x"] + player["width"] <= panel["x"] + panel["width"]
    asked: list[str] = []
    page.on("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    card.get_by_role("button", name="Delete recording").click()
    assert asked and "Delete this recording" in asked[0]
    assert services.history.get(vm.id).media  # type: ignore[union-attr]  # still there
    shot(page, "phone-voicemail")
    context.close()
