"""Shared plumbing for the browser tests: Debian's Chromium through Playwright, a live server.

Chromium is started with the flags that keep it off the network and out of the sandbox
(REFERENCE.md section 4); screenshots go to test-artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium at /usr/bin/chromium",
)


def run_quietly(srv: Any) -> Any:
    """The server's loop for a thread: a socket closed under it at shutdown is not an error."""

    def run() -> None:
        # EBADF: close() raced the loop's select; the test is over anyway.
        with contextlib.suppress(OSError):
            srv.run()

    return run


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """The app on a real waitress server on a free loopback port; yields its base URL."""
    import waitress

    srv = waitress.create_server(app, host="127.0.0.1", port=0, threads=4, ident="Frontdesk")
    thread = threading.Thread(target=run_quietly(srv), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.effective_port}"
    finally:
        srv.close()
        srv.task_dispatcher.shutdown(timeout=2)
        thread.join(timeout=5)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright) that is closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


# What sticks out: the page wider than the window, or a control (button, field, link drawn
# as a button) reaching past the right edge of its card or panel. The navigation row is
# left out: it scrolls on its own.
STICKING_OUT = """(width) => {
  const out = [];
  if (document.documentElement.scrollWidth > width)
    out.push('page ' + document.documentElement.scrollWidth + ' px wide');
  for (const el of document.querySelectorAll('.btn, input, select, textarea')) {
    if (el.closest('.mainnav ul') || el.closest('.visually-hidden')) continue;
    const r = el.getBoundingClientRect();
    if (!r.width) continue;
    const box = el.closest('.card, .panel');
    const edge = box ? box.getBoundingClientRect().right : width;
    if (r.right > edge + 0.5)
      out.push(el.tagName + '.' + el.className + ' "' + (el.textContent || el.name).trim()
        + '" ends at ' + Math.round(r.right) + ' past ' + Math.round(edge));
  }
  return out;
}"""


def sticking_out(page: Any) -> list[str]:
    """What on the page sticks out sideways (see STICKING_OUT); [] when everything fits."""
    found: list[str] = page.evaluate(STICKING_OUT, page.viewport_size["width"])
    return found


def shot(page: Any, name: str) -> None:
    """A full-page screenshot, after checking that nothing on the page sticks out."""
    wide = sticking_out(page)
    assert not wide, (name, wide)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
