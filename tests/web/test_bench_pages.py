"""bench/web.py measures pages that exist: each one it would time answers 200 once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "web.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_web", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_web", module)
    spec.loader.exec_module(module)
    return module


def test_every_benchmarked_page_answers_200(tmp_path: Path) -> None:
    bench = load_bench()
    app, client, store = bench.logged_in_app(str(tmp_path))
    try:
        urls = bench.pages(app)
        # The navigation is in it (so a new feature page is measured), and the shell's pages.
        for expected in ("/", "/settings/", "/backup/", "/system/", "/login"):
            assert expected in urls
        anonymous = app.test_client()
        for url in urls:
            response = (anonymous if url == "/login" else client).get(url)
            assert response.status_code == 200, (url, response.status_code)
    finally:
        store.close()
