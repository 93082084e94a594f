"""Opening hours end to end in headless Chromium: set the hours, add a closure, flip the
override from the dashboard and see the status change; screenshots of every hours page.

Served by a real waitress server, as the daemon serves it; the clock is fixed to a Monday
morning in London so the pictures and the status are the same on every run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from firmware_app.services import Services
from firmware_app.settings.routing import Menu as MenuSettings
from firmware_app.settings.routing import MenuOption, StaffMember

from .browser import SHOTS, VIEWPORTS
from .conftest import PASSWORD
from .test_browser import browser, server  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="needs Debian's chromium at /usr/bin/chromium",
    ),
]

NOW = dt.datetime(2026, 3, 23, 10, 0, tzinfo=dt.UTC)  # Monday 10:00 in London (GMT)


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _prepare(services: Services) -> None:
    services.clock = lambda: NOW
    services.auth.set_password(PASSWORD)
    s = services.settings.get()
    s = s.replace(
        "business",
        type(s.business)(
            name="Rossi Plumbing", timezone="Europe/London", country="GB", subdivision="ENG"
        ),
    )
    staff = type(s.staff)(
        members=[
            StaffMember(
                name="Anna", mobile="+447700900001", email="anna@rossi.example", groups=["sales"]
            ),
            StaffMember(name="Ben", mobile="+447700900002", groups=["support"]),
        ]
    )
    rules = type(s.rules)(
        allow=["+447700900999"],
        block=["+44870*"],
        menus=[
            MenuSettings(
                mode="open",
                options=[
                    MenuOption(digit="1", action="ring_staff", target="sales", label="for sales"),
                    MenuOption(digit="2", action="voicemail", label="to leave a message"),
                ],
            ),
        ],
    )
    services.settings.save(s.replace("staff", staff).replace("rules", rules))


def test_hours_closure_override_and_dashboard(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    services: Services,
) -> None:
    _prepare(services)
    problems: list[str] = []
    for device, (width, height) in VIEWPORTS.items():
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
        context.set_default_timeout(5000)
        page = context.new_page()
        page.on(
            "console", lambda m: problems.append(m.text) if "Security Policy" in m.text else None
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(server + "/login")
        page.fill("#f-password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(server + "/")

        if device == "phone":
            # Set the hours: Mon-Sat 8-18 preset, then a lunch break on Monday.
            page.click("nav.mainnav >> text=Hours")
            page.click("text=Mon–Sat 8–18")
            assert page.input_value("#f-sat-0-from") == "08:00"
            page.fill("#f-mon-0-to", "12:30")
            page.click("button[value='add:mon']")
            page.fill("#f-mon-1-from", "13:30")
            page.fill("#f-mon-1-to", "18:00")
            page.click("button.btn-primary[value=save]")
            assert "Opening hours saved" in page.locator(".flash-success").inner_text()
            assert services.settings.get().hours.mon == ["08:00-12:30", "13:30-18:00"]
            assert services.settings.get().hours.sat == ["08:00-18:00"]

            # Add a closure.
            page.click(".subnav >> text=Holidays & closures")
            page.fill("#f-closure-start", "2026-08-03")
            page.fill("#f-closure-end", "2026-08-14")
            page.fill("#f-closure-reason", "Summer break")
            page.click("text=Add closure")
            assert "Closure added" in page.locator(".flash-success").inner_text()
            assert [c.reason for c in services.settings.get().holidays.closures] == ["Summer break"]

            # Flip the override from the dashboard and see the status change.
            page.click("nav.mainnav >> text=Home")
            status = page.locator("#hours-card [data-status]")
            assert status.inner_text() == "Open now, closes 12:30"
            page.click("#hours-card button[data-choice=closed_next]")
            page.wait_for_url(server + "/")
            assert status.inner_text().startswith("Closed by override until 12:30")
            assert services.settings.get().override.since.startswith("2026-03-23T10:00:00")
            _shot(page, f"{device}-hours-01-dashboard-closed")
            page.click("#hours-card button[data-choice=off]")
            assert status.inner_text() == "Open now, closes 12:30"

        for name, path in (
            ("02-hours", "/hours/"),
            ("03-holidays", "/hours/holidays"),
            ("04-staff", "/hours/staff/"),
            ("05-rules", "/hours/rules/"),
            ("06-preview", "/hours/preview?at=2026-03-23T10%3A05&caller=%2B441632960123&line=gsm"),
            ("07-dashboard", "/"),
        ):
            page.goto(server + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, path
            _shot(page, f"{device}-hours-{name}")
        context.close()
    assert problems == []
