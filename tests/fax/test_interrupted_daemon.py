"""A real `frontdesk run` is killed (SIGKILL) in the middle of a fax: the simulated Class 2.0
fax machine sends a 2-page fax to a fax-only line and the kill comes once the daemon has the
first page on disk. The next run records that fax once (partial, the page as its PDF) and
emails it once."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

from firmware_app.events import EventBus
from firmware_app.modem.simulator import FaxMachine, create
from firmware_app.services.history import HistoryService
from firmware_app.services.settings import SettingsService
from firmware_app.store import Store
from tests.calls.test_calls_e2e import closed_settings
from tests.calls.test_interrupted_daemon import free_port, start, stop, wait_until
from tests.services.test_notify_delivery import Server

from .test_class2_sim import _data, _page

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def fax_pages_on_disk(data: Path) -> int:
    """How many pages the daemon's fax marker says are on disk (read from its journal)."""
    journal = data / "calls.json.journal"
    if not journal.exists():
        return 0
    most = 0
    for line in journal.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the line being written
        docs = (entry.get("set") or {}).values() if entry.get("t") == "in_progress" else ()
        for doc in docs:
            if doc.get("kind") == "fax":
                most = max(most, len(doc.get("pages") or ()))
    return most


def test_killed_mid_fax_the_restart_records_it_once(tmp_path: Path) -> None:
    smtp = Server("none", None).start()
    modem = create("cx93010", tmp_path / "dev")
    # Conexant firmware with Class 2.0 as well (MultiTech style; docs/fax.md).
    modem.engine.p = dataclasses.replace(modem.engine.p, fclass_options_class2="0,1,1.0,2,2.0,8")
    data = tmp_path / "data"
    try:
        with Store(data) as store:
            settings = closed_settings(smtp.port)
            settings.lines.fax_only = ["line1"]
            SettingsService(store, EventBus()).save(settings)
        config = tmp_path / "frontdesk.toml"
        config.write_text(
            f'[store]\ndata_dir = "{data}"\n[web]\nlisten = "127.0.0.1:{free_port()}"\n'
            f'[modem]\ndevices = ["{modem.path}"]\n[log]\nlevel = "info"\n'
        )
        log = tmp_path / "daemon.log"
        # The remote machine sends page 1, then stalls before page 2 (as a jammed sheet
        # would): the kill comes while the fax is in progress, whatever the machine's load.
        fax = modem.fax
        send_page = fax._send_page

        def stalls_before_page_two() -> None:
            if fax._page < 1:
                send_page()

        fax._send_page = stalls_before_page_two  # type: ignore[method-assign]

        first = start(config, log)
        try:
            wait_until("the line never came up", lambda: " up: " in log.read_text(), log)
            machine = FaxMachine(remote_id="+1 555 1001", pages=[_data(_page(1)), _data(_page(2))])
            modem.fax_call(machine, "5551001", rings=4, interval=0.5)
            wait_until(
                "the first page never reached the disk", lambda: fax_pages_on_disk(data), log
            )
        finally:
            assert stop(first, signal.SIGKILL) == -signal.SIGKILL

        second = start(config, log)
        try:
            wait_until("no email after the restart", lambda: smtp.inbox.received, log)
        finally:
            assert stop(second, signal.SIGTERM) == 0

        with Store(data) as store:
            history = HistoryService(store, EventBus())
            records = history.newest(50)
            assert [(r.channel, r.outcome) for r in records] == [("fax", "partial")], (
                log.read_text()
            )
            (item,) = records
            assert item.number == "+15551001" and item.name == "+1 555 1001"
            assert item.details["pages"] == 1 and item.details["interrupted"] is True
            assert history.calls_in_progress() == []
            pdf = pdfium.PdfDocument(store.media.read(item.media[0]))
            try:
                assert len(pdf) == 1
            finally:
                pdf.close()
            leftovers = [p for p in (data / "media").rglob("*.g3")]
            assert leftovers == []  # the page files went once the record was written
        (mail,) = [r.msg for r in smtp.inbox.received]
        assert mail["Subject"].startswith("Fax from") and "incomplete" in mail["Subject"]
        attached: list[Any] = [
            part for part in mail.iter_attachments() if part.get_content_type() == "application/pdf"
        ]
        assert len(attached) == 1
        assert "was being received when Frontdesk stopped" in log.read_text()
    finally:
        modem.close()
        smtp.stop()
