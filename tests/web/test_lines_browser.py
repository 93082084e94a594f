"""In headless Chromium: the Lines page follows its lines by itself. A simulated modem that
is unplugged shows as not working with the reason, and ready again once it is back, a
ringing line shows as ringing, all without reloading the page (static/lines.js fetches the
cards every few seconds). No CSP complaint, no script error."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_app.config import demo_config
from firmware_app.modem import events as ev
from firmware_app.services import Services
from firmware_app.services.lines import LinesService
from firmware_app.settings import Settings
from tests.modem.conftest import FAST, Recorder

from .browser import needs_chromium, shot
from .conftest import PASSWORD
from .test_browser import browser, server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, needs_chromium, pytest.mark.timeout(120)]

# A ringing call that nobody answers stays "ringing" until no RING came for idle_after:
# long enough for the page's 5 s refresh to see it on a loaded machine.
OPTIONS = dataclasses.replace(FAST, idle_after=30.0)


@pytest.fixture
def lines(services: Services, tmp_path: Path) -> Iterator[LinesService]:
    service = LinesService.from_config(
        demo_config(tmp_path / "demo"), services.bus, lambda: Settings().lines, options=OPTIONS
    )
    recorder = Recorder(services.bus)
    for worker in service.workers():
        worker.start()
    recorder.wait(ev.LineUp, lambda e: e.line == "line1", timeout=30)
    recorder.wait(ev.LineUp, lambda e: e.line == "line2", timeout=30)
    services.extra["lines"] = service
    yield service
    for worker in service.workers():
        worker.stop()
    for worker in service.workers():
        worker.join(5)
    service.close()


def card_text(page: Any, name: str, want: str, timeout: float = 40.0) -> str:
    """Wait until the line's card says `want` (the page refreshes itself every 5 s)."""
    card = page.locator(f"#line-{name}")
    deadline = time.monotonic() + timeout
    while True:
        text = str(card.inner_text())
        if want in text:
            return text
        assert time.monotonic() < deadline, f"line {name} never showed {want!r}: {text!r}"
        time.sleep(0.1)


def test_the_lines_page_follows_its_lines_without_a_reload(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    services: Services,
    lines: LinesService,
) -> None:
    services.auth.set_password(PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10000)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Security Policy" in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))
    page.goto(server + "/login")
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")

    page.goto(server + "/lines/", wait_until="networkidle")
    loads.clear()
    page.evaluate("document.body.dataset.marker = 'first load'")  # gone if the page reloads
    assert "Ready" in card_text(page, "line1", "Ready")
    assert "Ready" in card_text(page, "line2", "Ready")

    # Unplugged: the card says so, with the reason, once the page has fetched the cards.
    modem = lines._simulators["line1"]
    recorder = Recorder(services.bus)
    modem.unplug()
    recorder.wait(ev.LineDown, lambda e: e.line == "line1", timeout=30)
    text = card_text(page, "line1", "Not working")
    assert "Last problem" in text
    shot(page, "desktop-lines-unplugged")

    # Back: ready again.
    modem.replug()
    recorder.wait(ev.LineUp, lambda e: e.line == "line1", timeout=60)
    card_text(page, "line1", "Ready")

    # A call: ringing, and the card counts it.
    lines.demo_call("+15551234567", "BROWSER")
    recorder.wait(ev.IncomingCall, lambda e: e.line == "line1", timeout=30)
    card_text(page, "line1", "Ringing")
    seen = page.evaluate(
        "[...document.querySelectorAll('#line-line1 dt')]"
        ".find(dt => dt.textContent === 'Calls seen').nextElementSibling.textContent"
    )
    assert seen == "1"

    assert page.evaluate("document.body.dataset.marker") == "first load"
    assert loads == [], f"the page was reloaded: {loads}"
    assert problems == []
    context.close()
