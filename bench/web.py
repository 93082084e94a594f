"""Render time of the main web pages: p50/p95 over 200 requests each (Flask test client).

The pages are the ones the owner reaches: every navigation entry (from the app's registry,
so a new feature is measured without editing this file), a generic settings section, the API
tokens page and the login page. Run: `python bench/web.py`. Target: p95 <= 30 ms per page on
a 2-core x86 machine (a Pi 4 is roughly 3-4x slower). Prints figures only; no assertions.
"""

from __future__ import annotations

import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import firmware_app.services.auth as auth_module
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.services import Services
from firmware_app.services.system import ClockSync
from firmware_app.store import Store
from web_ui import create_app
from web_ui.registry import registry

# Besides the navigation: a generic settings form, the API tokens page, the login page.
EXTRA_PAGES = [
    ("settings.section", {"name": "business"}),
    ("settings.tokens", {}),
    ("auth.login", {}),
]
REQUESTS = 200
TARGET_MS = 30.0


def pages(app: Any) -> list[str]:
    """The URLs measured: each navigation entry, then EXTRA_PAGES, without repeats."""
    from flask import url_for

    with app.test_request_context():
        urls = [url_for(item.endpoint) for item in registry(app).nav_items()]
        urls += [url_for(endpoint, **values) for endpoint, values in EXTRA_PAGES]
    return list(dict.fromkeys(urls))


def logged_in_app(tmp: str) -> tuple[Any, Any, Store]:
    """An app on an empty data dir after the first-run setup; its logged-in test client."""
    store = Store(Path(tmp))
    services = Services.build(MachineConfig(store=StoreConfig(data_dir=tmp)), store)
    services.system.clock_probe = lambda: ClockSync(True, "kernel", "bench")
    app = create_app(services)
    client = app.test_client()
    page = client.get("/setup").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    password = "benchmark password"
    client.post(
        "/setup",
        data={
            "csrf_token": token,
            "name": "Bench Ltd",
            "timezone": "Europe/London",
            "country": "GB",
            "owner_email": "owner@example.com",
            "password": password,
            "confirm": password,
        },
    )
    services.auth.create_token("bench")
    return app, client, store


def main() -> int:
    logging.disable(logging.WARNING)  # the bench measures pages, not log handlers
    auth_module.HASH_METHOD = "scrypt:1024:8:1"  # login cost is not what is measured
    with tempfile.TemporaryDirectory() as tmp:
        app, client, store = logged_in_app(tmp)
        anonymous = app.test_client()
        print(f"{'page':28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        worst = 0.0
        for path in pages(app):
            c = anonymous if path == "/login" else client
            c.get(path)  # warm templates and caches
            times = []
            for _ in range(REQUESTS):
                t0 = time.perf_counter()
                response = c.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    print(f"{path}: HTTP {response.status_code}", file=sys.stderr)
                    return 1
            times.sort()
            p50 = statistics.median(times)
            p95 = times[int(len(times) * 0.95) - 1]
            worst = max(worst, p95)
            print(f"{path:28} {p50:8.2f} {p95:8.2f} {times[-1]:8.2f}")
        verdict = "within" if worst <= TARGET_MS else "OVER"
        print(f"worst p95 {worst:.2f} ms: {verdict} the {TARGET_MS:.0f} ms target")
        print(f"FIGURE\tweb pages worst p95\t{worst:.2f}\tms\t{TARGET_MS:g}\t<=")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
