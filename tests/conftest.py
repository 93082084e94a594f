"""Shared fixtures: a fresh data dir and store per test; the browser-test requirement."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_app.store import Store

CHROMIUM = "/usr/bin/chromium"
# Set by .ci/run: a missing Chromium fails the browser tests instead of skipping them.
REQUIRE_BROWSER = "FRONTDESK_REQUIRE_BROWSER"


def chromium_missing() -> bool:
    return shutil.which("chromium") is None and not Path(CHROMIUM).exists()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any skip mark is looked at: with FRONTDESK_REQUIRE_BROWSER=1 a browser test
    without Chromium is a failure that says what to install, never a silent skip."""
    if (
        os.environ.get(REQUIRE_BROWSER) == "1"
        and item.get_closest_marker("browser") is not None
        and chromium_missing()
    ):
        pytest.fail(
            f"{REQUIRE_BROWSER}=1 and Chromium is missing ({CHROMIUM}): the browser tests "
            "must run. Install it: `sudo apt-get install -y chromium` (`make test` does that "
            "when run as root, as in CI).",
            pytrace=False,
        )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def store(data_dir: Path) -> Iterator[Store]:
    s = Store(data_dir)
    yield s
    s.close()
