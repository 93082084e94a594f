"""The Fax pages in headless Chromium over a real waitress server: a document uploaded on Send
a fax, its pages shown (drawn by the render child) before it is queued, page-1 pictures in
the list, and "View PDF" shown by Chromium's own viewer although the PDF is served with
`Content-Security-Policy: sandbox`; "Download" saves it. Screenshots in test-artifacts/."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from firmware_app.fax.service import FaxService
from firmware_app.services import Services
from tests.fax.fakes import FakeLine, FakeLines, FakeSend
from tests.fax.test_service import _received
from tests.web.browser import ARGS, CHROMIUM, SHOTS, needs_chromium, serve
from tests.web.conftest import PASSWORD
from web_ui import create_app

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180), needs_chromium]


@pytest.fixture
def fax(services: Services) -> FaxService:
    service = FaxService(
        services.store,
        services.bus,
        services.settings.get,
        services.history,
        FakeLines(FakeLine()),
        send=FakeSend(),
    )
    services.fax = service  # the worker is not started: faxes stay queued
    return service


@pytest.fixture
def server(services: Services, fax: FaxService) -> Iterator[str]:
    with serve(create_app(services)) as url:
        yield url


def order_pdf(path: Path) -> Path:
    """A two-page letter, made here: a heading bar and some lines on each page."""
    pages = []
    for n in (1, 2):
        im = Image.new("L", (1240, 1754), 255)
        draw = ImageDraw.Draw(im)
        draw.rectangle((100, 100, 1140, 260), fill=0)
        for y in range(400, 1500, 60):
            draw.line((100, y, 100 + (y * 7 + n * 90) % 1000, y), fill=0, width=6)
        pages.append(im)
    buf = io.BytesIO()
    pages[0].save(buf, "PDF", resolution=150, save_all=True, append_images=pages[1:])
    path.write_bytes(buf.getvalue())
    return path


# An image's natural width once it has loaded (0 if it failed), waiting for a lazy one.
LOADED = """img => img.complete && img.naturalWidth ? img.naturalWidth : new Promise(done => {
    img.addEventListener("load", () => done(img.naturalWidth));
    img.addEventListener("error", () => done(0));
})"""


# Width and height of each "From ..." / "To ..." on the Fax page.
WHO_BOXES = """() => {
    const who = e => /^(From|To) \\+/.test(e.textContent.trim());
    return [...document.body.querySelectorAll('*')]
        .filter(e => who(e) && ![...e.children].some(who))
        .map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; });
}"""


def dark_pixels(png: bytes) -> int:
    """Pure black pixels in a screenshot (the viewer's own toolbar and margins are grey)."""
    with Image.open(io.BytesIO(png)) as shot:
        return sum(shot.convert("L").histogram()[:8])


def test_send_with_preview_list_with_pictures_and_view_the_pdf(
    server: str, services: Services, fax: FaxService, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    services.auth.set_password(PASSWORD)
    received = fax.store_received(_received(), line="line1", number="5551001")
    document = order_pdf(tmp_path / "order.pdf")
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 800}, accept_downloads=True
            )
            context.set_default_timeout(60_000)  # the render child on a loaded machine
            page = context.new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "console",
                lambda m: problems.append(m.text) if "Content Security" in m.text else None,
            )
            page.goto(server + "/login")
            page.fill("#f-password", PASSWORD)
            page.click("button[type=submit]")

            page.goto(server + "/fax/send")
            page.fill("#f-to", "+1 555 010 0100")
            page.set_input_files("#f-file", str(document))
            page.check("input[name=cover]")
            page.fill("#f-note", "Order 42 attached")
            page.click("button:has-text('Show the pages')")
            page.wait_for_selector("h1:has-text('Check the fax, then send it')")
            assert fax.queued() == []  # shown, not queued
            previews = page.locator(".fax-pages img")
            assert previews.count() == 3  # the cover and two pages
            for i in range(3):
                previews.nth(i).scroll_into_view_if_needed()
                assert previews.nth(i).evaluate(LOADED) == 432, f"page {i + 1} did not load"
            page.screenshot(path=str(SHOTS / "desktop-fax-preview.png"), full_page=True)
            page.click("button:has-text('Send 3 pages')")
            page.wait_for_selector("text=queued (3 pages)")
            (item,) = fax.queued()
            assert item.details["pages"] == 3 and item.text == "Order 42 attached"

            thumbs = page.locator(".fax-thumb img")
            assert thumbs.count() == 2
            for i in range(2):
                thumbs.nth(i).scroll_into_view_if_needed()
                assert thumbs.nth(i).evaluate(LOADED) == 432, f"page-1 picture {i} did not load"
            page.screenshot(path=str(SHOTS / "desktop-fax-list.png"), full_page=True)

            # On a phone each fax is a card as wide as the screen: nothing sideways, the
            # words laid out in lines (a table squeezed them to a letter a line).
            page.set_viewport_size({"width": 390, "height": 844})
            page.reload()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            boxes = page.evaluate(WHO_BOXES)
            assert len(boxes) == 2, boxes  # the received fax and the queued one
            for width, height in boxes:
                assert width > 150 and height < 60, boxes
            page.screenshot(path=str(SHOTS / "phone-fax-list.png"), full_page=True)
            page.set_viewport_size({"width": 1280, "height": 800})
            page.reload()

            link = page.locator(f"a[href='/media/{received.media[0]}']:has-text('View PDF')")
            assert link.count() == 1
            url = server + f"/media/{received.media[0]}"
            served = context.request.get(url)  # as sent (Chromium hides a PDF's CSP header)
            assert served.headers["content-security-policy"] == "sandbox; default-src 'none'"
            assert served.headers["content-disposition"].startswith("inline;")
            viewer = context.new_page()
            response = viewer.goto(url)
            assert response is not None and response.status == 200
            shown = 0
            for _ in range(120):  # poll: the viewer draws the page when it is ready (<= 60 s)
                shown = dark_pixels(viewer.screenshot())
                if shown > 5000:
                    break
                viewer.wait_for_timeout(500)
            viewer.screenshot(path=str(SHOTS / "desktop-fax-pdf-view.png"))
            assert shown > 5000, "Chromium's viewer did not show the fax's page"
            viewer.close()

            with page.expect_download() as saved:
                page.locator("a:has-text('Download')").first.click()
            assert saved.value.suggested_filename.endswith(".pdf")
            assert Path(saved.value.path()).read_bytes().startswith(b"%PDF-")
            assert problems == [], problems
            context.close()
        finally:
            browser.close()
