"""The daemon's holiday tables: computed by the real child process, kept in holidays.json,
served to the routing, following the business settings, and falling back to the package in
this process only when the child cannot answer."""

from __future__ import annotations

import datetime as dt
import json
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_app.events import EventBus, SettingsChanged
from firmware_app.routing import hours as hours_module
from firmware_app.services.holidays import FILE, HolidayTables
from firmware_app.settings import model
from firmware_app.settings.model import Settings
from tests.routing.helpers import at, hours, settings
from web_ui.forms import country_choices

pytestmark = pytest.mark.timeout(120)

BERLIN, LONDON, NEW_YORK = "Europe/Berlin", "Europe/London", "America/New_York"
NOW = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
WAIT = 60.0  # generous: the child needs a fraction of a second, a loaded machine longer


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[HolidayTables]:
    t = HolidayTables(tmp_path, clock=lambda: NOW)
    t.install()
    model._countries.cache_clear()
    country_choices.cache_clear()
    try:
        yield t
    finally:
        t.close()
        model._countries.cache_clear()
        country_choices.cache_clear()
    assert hours_module.holiday_provider() is hours_module.LIBRARY


@pytest.mark.parametrize(
    ("tz", "country", "subdivision", "local", "mode", "reason"),
    [
        (LONDON, "GB", "ENG", "2025-12-25 10:00", "holiday", "Christmas Day"),
        (LONDON, "GB", "ENG", "2025-12-26 10:00", "holiday", "Boxing Day"),
        (LONDON, "GB", "ENG", "2025-12-29 10:00", "open", ""),
        (BERLIN, "DE", "BY", "2025-01-06 10:00", "holiday", "Heilige Drei Könige"),
        (BERLIN, "DE", "BE", "2025-01-06 10:00", "open", ""),
        (NEW_YORK, "US", "", "2021-12-24 10:00", "holiday", "Christmas Day (observed)"),
    ],
)
def test_routing_closes_on_holidays_from_the_child(
    tables: HolidayTables,
    tz: str,
    country: str,
    subdivision: str,
    local: str,
    mode: str,
    reason: str,
) -> None:
    st = hours(settings(tz, country, subdivision)).status(at(local, tz))
    assert (st.mode, st.reason) == (mode, reason)
    assert tables.children >= 1 and tables.in_process == 0


def test_tables_are_kept_and_read_back_without_a_child(tmp_path: Path) -> None:
    first = HolidayTables(tmp_path, clock=lambda: NOW)
    try:
        assert first.ensure("DE", "BY")
        assert first.wait_idle(WAIT)
        assert first.has("DE", "BY", range(2024, 2028))
        assert first.in_process == 0
    finally:
        first.close()
    path = tmp_path / FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    doc = json.loads(path.read_text())
    assert [(t["country"], t["subdivision"]) for t in doc["tables"]] == [("DE", "BY")]
    assert sorted(doc["tables"][0]["years"]) == ["2024", "2025", "2026", "2027"]
    assert "BY" in doc["catalogue"]["DE"][1]

    again = HolidayTables(tmp_path, clock=lambda: NOW)
    try:
        assert not again.ensure("DE", "BY")  # nothing missing: no child
        assert (dt.date(2026, 1, 6), "Heilige Drei Könige") in again.year("DE", "BY", 2026)
        assert again.countries()["DE"][0] == "Germany"
        assert (again.children, again.in_process) == (0, 0)
    finally:
        again.close()


def test_settings_checks_and_the_country_list_use_the_cached_list(
    tables: HolidayTables,
) -> None:
    assert model.Business(country="DE", subdivision="BY").validate() == []
    problems = model.Business(country="DE", subdivision="QQ").validate()
    assert problems and problems[0].allowed.startswith("a region of DE: BB, BE")
    assert model._check_country("DE") is None and model._check_country("QQ") is not None
    labels = [c.label for c in country_choices()]
    assert "Germany (DE)" in labels and "United Kingdom (GB)" in labels
    assert labels == sorted(labels, key=str.casefold)
    assert tables.children == 1 and tables.in_process == 0


def test_changing_the_country_refreshes_the_tables(tables: HolidayTables) -> None:
    current = [settings(LONDON, "GB", "ENG")]
    bus = EventBus()
    unsubscribe = tables.follow(lambda: current[0], bus)
    try:
        assert tables.wait_idle(WAIT)
        assert tables.has("GB", "ENG", range(2024, 2028))
        changed = Settings()
        changed.business.country, changed.business.subdivision = "DE", "BY"
        current[0] = changed
        bus.publish(SettingsChanged(sections=("hours",)))  # not the business: nothing to do
        assert not tables.has("DE", "BY", [2025])
        bus.publish(SettingsChanged(sections=("business",)))
        assert tables.wait_idle(WAIT)
        assert tables.has("DE", "BY", range(2024, 2028))
        doc = json.loads(tables.path.read_text())
        assert doc["tables"][0]["country"] == "DE"  # the configured place first
        assert tables.in_process == 0
    finally:
        unsubscribe()


def test_a_new_year_is_fetched_when_the_calendar_moves_on(tmp_path: Path) -> None:
    now = [NOW]
    t = HolidayTables(tmp_path, clock=lambda: now[0])
    try:
        t.ensure("GB", "ENG")
        assert t.wait_idle(WAIT)
        assert not t.has("GB", "ENG", [2028])
        now[0] = dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)
        assert t.ensure("GB", "ENG")  # what the scheduled check does
        assert t.wait_idle(WAIT)
        assert t.has("GB", "ENG", [2025, 2026, 2027, 2028])
    finally:
        t.close()


def test_a_lookup_waits_for_the_child_already_working(tables: HolidayTables) -> None:
    tables.ensure("FR", "")
    # The routing asks while the child runs: it gets the child's answer, not its own import.
    table = tables.year("FR", "", 2025)
    assert (dt.date(2025, 7, 14), "Fête nationale") in table
    assert tables.in_process == 0


def test_a_damaged_or_foreign_cache_is_computed_again(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text("{not json")
    t = HolidayTables(tmp_path, clock=lambda: NOW)
    try:
        assert t.ensure("GB", "ENG") and t.wait_idle(WAIT)
        assert t.has("GB", "ENG", [2025])
    finally:
        t.close()
    doc = json.loads(path.read_text())
    doc["package"] = "0.1"  # made by another version of the holidays package
    doc["tables"][0]["years"]["2025"] = [["2025-05-05", "Made-up Day"]]
    path.write_text(json.dumps(doc))
    t = HolidayTables(tmp_path, clock=lambda: NOW)
    try:
        assert t.year("GB", "ENG", 2025)[0] == (dt.date(2025, 1, 1), "New Year's Day")
        assert t.children == 1
    finally:
        t.close()


def test_when_the_child_cannot_run_the_daemon_computes_the_table_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t = HolidayTables(tmp_path, clock=lambda: NOW, python=str(tmp_path / "no-such-python"))
    previous = hours_module.install_holiday_provider(t)
    try:
        st = hours(settings(LONDON, "GB", "ENG")).status(at("2025-12-25 10:00", LONDON))
        assert (st.mode, st.reason) == ("holiday", "Christmas Day")
        assert t.in_process >= 1
        assert "computed in the daemon itself" in caplog.text
        assert "GB" in t.countries()  # the country list too
        assert not (tmp_path / FILE).exists()
    finally:
        hours_module.install_holiday_provider(previous)
        t.close()


def test_a_child_past_its_time_is_killed_and_the_table_computed_here(tmp_path: Path) -> None:
    slow = tmp_path / "slow-python"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    t = HolidayTables(tmp_path, clock=lambda: NOW, timeout=1.0, python=str(slow))
    try:
        table = t.year("GB", "ENG", 2025)
        assert table[0] == (dt.date(2025, 1, 1), "New Year's Day")
        assert t.children == 1 and t.in_process == 1
    finally:
        t.close()


def test_closing_kills_a_running_child(tmp_path: Path) -> None:
    slow = tmp_path / "slow-python"
    started = tmp_path / "started"
    slow.write_text(f"#!/bin/sh\ntouch {started}\nexec sleep 30\n")
    slow.chmod(0o755)
    t = HolidayTables(tmp_path, clock=lambda: NOW, timeout=120.0, python=str(slow))
    t.ensure("GB", "ENG")
    deadline = time.monotonic() + WAIT
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists()
    worker = next(th for th in threading.enumerate() if th.name == "holiday-tables")
    t.close()
    worker.join(WAIT)
    assert not worker.is_alive()
    assert t.wait_idle(WAIT)


def test_the_child_runs_on_its_own() -> None:
    import subprocess

    request = {
        "tables": [{"country": "XX", "subdivision": "", "years": [2025]}],
        "catalogue": False,
    }
    done = subprocess.run(
        [sys.executable, "-m", "firmware_app.holiday_calendar"],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=WAIT,
        check=True,
    )
    reply = json.loads(done.stdout)
    assert reply["tables"][0]["country"] == "XX" and "error" in reply["tables"][0]
    assert "catalogue" not in reply
