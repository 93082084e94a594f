"""Dashboard, inbox and timeline in headless Chromium, on a phone and a desktop screen.

Screenshots land in test-artifacts/screenshots/desk-*.png. The reply box shows only while a
(fake) SMS service is on the facade; hostile caller text stays text.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from firmware_app.services import Services
from firmware_app.services.contacts import Draft
from firmware_app.services.history import Interaction, channel_key, outcome_key
from firmware_app.services.sms import SmsService
from tests.web.browser import chromium, serve
from tests.web.browser import shot as save_shot
from web_ui import create_app

from .conftest import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists(),
        reason="needs Debian's chromium at /usr/bin/chromium",
    ),
]

VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}
EVIL = "<img src=x onerror=alert(1)>"


class FakeStatus:
    kind = "gsm"
    state = "idle"


class FakeLine:
    """A GSM line as the SMS service sees it; no worker runs, so a text stays queued."""

    name = "line1"

    def status(self) -> FakeStatus:
        return FakeStatus()


class FakeLines:
    def lines(self) -> list[Any]:
        return [FakeLine()]


def fill(svc: Services) -> dict[str, Any]:
    svc.settings.save_section(
        "business", {"name": "Rossi Plumbing", "timezone": "Europe/London", "country": "GB"}
    )
    svc.auth.set_password(PASSWORD)
    anna = svc.contacts.save(
        Draft(
            name="Anna Bianchi",
            company="Bianchi Bakery",
            numbers=(("020 7946 0958", "work"), ("07400 123456", "mobile")),
            email="anna@bianchi.example",
            tags=("customer", "bakery"),
            vip=True,
            notes="Oven service every spring.",
        )
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    audio = svc.store.media.write(b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav")
    pdf = svc.store.media.write(b"%PDF-1.4\n%%EOF\n", "pdf")

    def rec(minutes: int, **kw: Any) -> Interaction:
        base: dict[str, Any] = {
            "channel": "call",
            "direction": "in",
            "outcome": "answered",
            "start": now - timedelta(minutes=minutes),
            "line": "line1",
            "number": "+442079460958",
        }
        base.update(kw)
        return svc.history.record(Interaction(**base))

    for day in range(1, 30):  # a month of calls for the charts
        for k in range(day % 5 + 1):
            rec(day * 1440 + k * 97 + 60, outcome="missed" if k % 3 == 2 else "answered")
    svc.history.mark_handled([i.id for i in svc.history.open_items(500)], by="Maria")
    rec(200, outcome="answered", duration=184)
    rec(150, outcome="voicemail", duration=42, media=(audio,))
    rec(120, channel="sms", outcome="received", text="Can you come Tuesday? The oven " + EVIL)
    rec(110, channel="sms", direction="out", outcome="sent", text="Yes, Tuesday 10:00.")
    rec(60, outcome="missed", number="+441632960555", name=EVIL)
    rec(
        30,
        channel="fax",
        outcome="received",
        number="+441134960000",
        media=(pdf,),
        line="line2",
        details={"pages": 2},
    )
    svc.contacts.add_note("Prefers texts to calls.", "Maria", contact_id=anna.id)
    return {"anna": anna}


@pytest.fixture
def server(services: Services) -> Iterator[tuple[str, Services, dict[str, Any]]]:
    data = fill(services)
    with serve(create_app(services)) as url:
        yield url, services, data


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def shot(page: Any, name: str) -> None:
    save_shot(page, f"desk-{name}")


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_dashboard_inbox_timeline(browser: Any, server: Any, device: str) -> None:
    base, svc, data = server
    width, height = VIEWPORTS[device]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(5000)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: problems.append("dialog: " + d.message))

    page.goto(base + "/login")
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    assert page.locator(".desk-open strong").inner_text() == str(svc.history.open_count())
    assert page.locator(".desk-chart svg").count() == 2
    assert page.locator(".desk-chart rect.bar-answered").count() > 20
    shot(page, f"{device}-dashboard")

    page.goto(base + "/inbox/")
    assert page.locator(".desk-item").count() == 4
    assert page.locator(".desk-item", has_text=EVIL).count() == 2  # shown as text
    shot(page, f"{device}-inbox")
    page.check(f"input[name=id][value='{svc.history.open_items(1, channel='fax')[0].id}']")
    page.fill("#f-by", "Maria")
    page.click("text=Mark ticked as handled")
    page.wait_for_selector(".flash-success")
    assert page.locator(".desk-item").count() == 3

    page.goto(base + f"/contacts/{data['anna'].id}")
    assert page.locator("#reply").count() == 0  # no SMS service yet
    assert page.locator("audio.desk-audio").count() == 1
    shot(page, f"{device}-timeline")

    # The reply goes through the real SMS service: validated, recorded as queued (its
    # worker, which would hand it to the modem, is not running here) and shown.
    svc.sms = SmsService(
        svc.store, svc.bus, svc.settings.get, svc.history, FakeLines(), contacts=svc.contacts
    )
    try:
        page.reload()
        page.fill("#f-text", "See you Tuesday")
        page.click("text=Send text")
        page.wait_for_selector(".flash-success")
        sent = svc.history.query([[channel_key("sms")], [outcome_key("sms", "queued")]], 5)
        assert [(i.number, i.text) for i in sent.items] == [("+442079460958", "See you Tuesday")]
        assert page.locator(".desk-item", has_text="See you Tuesday").count() == 1
        answered = svc.history.query([[channel_key("sms")], [outcome_key("sms", "received")]], 1)
        assert answered.items[0].handled_at is not None  # the text it answers
        shot(page, f"{device}-timeline-reply")
    finally:
        svc.sms = None

    page.goto(base + "/numbers/+441632960555")
    assert "Unknown" in page.locator("h1").inner_text()
    shot(page, f"{device}-unknown")
    page.click("button:has-text('Save as contact')")  # one click: saved, on its page
    page.wait_for_selector(".flash-success")
    assert re.search(r"/contacts/\d+$", page.url), page.url
    page.click("a:has-text('Edit')")
    page.wait_for_url("**/edit")
    page.fill("#f-name", "Carlo")
    page.click("button:has-text('Save')")
    page.wait_for_selector(".flash-success")
    assert "Carlo" in page.locator("h1").inner_text()
    page.goto(base + "/contacts/")
    shot(page, f"{device}-contacts")
    assert not problems, problems
    context.close()
