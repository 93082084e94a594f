"""A real `frontdesk run` on a simulated USR5637 is killed (SIGKILL) in the middle of a call;
the next run records that call once, as interrupted, and emails the owner once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware_app.events import EventBus
from firmware_app.modem.simulator import VoiceCaller, create
from firmware_app.services.history import HistoryService
from firmware_app.services.settings import SettingsService
from firmware_app.settings.routing import WEEKDAYS
from firmware_app.store import Store
from tests.services.test_notify_delivery import Server

from .test_analog_voice import speech
from .test_calls_e2e import closed_settings

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "firmware_app", "run", "--config", str(config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_until(what: str, check: object, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}; log:\n{log.read_text()}"
        time.sleep(0.05)


def answered_marker(data: Path) -> bool:
    """The daemon's in-progress marker says the call was answered (read from its journal)."""
    journal = data / "calls.json.journal"
    if not journal.exists():
        return False
    for line in journal.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the line being written
        docs = (entry.get("set") or {}).values() if entry.get("t") == "in_progress" else ()
        if any(doc.get("answered") for doc in docs):
            return True
    return False


def stop(proc: subprocess.Popen[bytes], sig: int) -> int:
    try:
        proc.send_signal(sig)
        return proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_killed_mid_call_the_restart_records_it_once(tmp_path: Path) -> None:
    smtp = Server("none", None).start()
    modem = create("usr5637", tmp_path / "dev")
    data = tmp_path / "data"
    try:
        with Store(data) as store:
            settings = closed_settings(smtp.port)
            for day in WEEKDAYS:
                setattr(settings.hours, day, [])  # closed all week: greeting, voicemail
            SettingsService(store, EventBus()).save(settings)
        config = tmp_path / "frontdesk.toml"
        config.write_text(
            f'[store]\ndata_dir = "{data}"\n[web]\nlisten = "127.0.0.1:{free_port()}"\n'
            f'[modem]\ndevices = ["{modem.path}"]\n[log]\nlevel = "info"\n'
        )
        log = tmp_path / "daemon.log"

        first = start(config, log)
        try:
            wait_until("the line never came up", lambda: " up: " in log.read_text(), log)
            modem.voice.caller = VoiceCaller().say(speech(30.0), at=0.2)  # talks on and on
            modem.ring("+15551234567", rings=4, interval=0.5)
            wait_until("the call was not answered", lambda: answered_marker(data), log)
        finally:
            assert stop(first, signal.SIGKILL) == -signal.SIGKILL

        second = start(config, log)
        try:
            wait_until("no email after the restart", lambda: smtp.inbox.received, log)
        finally:
            assert stop(second, signal.SIGTERM) == 0

        with Store(data) as store:
            history = HistoryService(store, EventBus())
            records = history.newest(50, where=lambda i: i.channel == "call")
            assert [r.outcome for r in records] == ["interrupted"], log.read_text()
            (item,) = records
            assert item.number == "+15551234567" and item.details["answered"] is True
            assert history.calls_in_progress() == []
            assert item.open
        (mail,) = [r.msg for r in smtp.inbox.received]
        assert mail["Subject"].startswith("Missed call from")
        assert "Interrupted (Frontdesk restarted)" in mail.get_body(("plain",)).get_content()
        assert "was in progress when Frontdesk stopped" in log.read_text()
    finally:
        modem.close()
        smtp.stop()
