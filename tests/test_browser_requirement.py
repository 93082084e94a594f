"""CI cannot pass without the browser tests: with FRONTDESK_REQUIRE_BROWSER=1 (set by .ci/run)
a browser test that would be skipped for want of Chromium fails with what to install."""

from __future__ import annotations

import pytest

import tests.conftest as root_conftest

pytest_plugins = ["pytester"]

BROWSER_TEST = """
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.skipif(True, reason="needs chromium")]


def test_in_a_browser():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeconftest("from tests.conftest import pytest_runtest_setup  # noqa: F401\n")
    pytester.makeini("[pytest]\nmarkers =\n    browser: headless Chromium\n")
    pytester.makepyfile(test_page=BROWSER_TEST)
    monkeypatch.setattr(root_conftest, "chromium_missing", lambda: True)
    return pytester


def test_required_and_missing_fails_with_what_to_install(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(root_conftest.REQUIRE_BROWSER, "1")
    result = project.runpytest_inprocess()
    result.assert_outcomes(errors=1)  # an error at set-up: pytest exits non-zero
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*Chromium is missing*apt-get install -y chromium*"])


def test_not_required_the_skip_stands(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(root_conftest.REQUIRE_BROWSER, raising=False)
    project.runpytest_inprocess().assert_outcomes(skipped=1)


def test_ci_requires_the_browser_tests() -> None:
    from pathlib import Path

    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert f"export {root_conftest.REQUIRE_BROWSER}=1" in ci
