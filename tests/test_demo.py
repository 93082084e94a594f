"""`frontdesk demo`: the product on a local folder, with a real mail sink and the web page."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from firmware_app import demo
from firmware_app.config import demo_config
from firmware_app.daemon import Daemon
from firmware_app.sdnotify import Notifier
from tests.test_daemon import free_port

ROOT = Path(__file__).parents[1]


def test_demo_mail_reaches_the_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's email reaches its sink, and its links lead to the demo's own page
    (http://127.0.0.1:<port>, as --listen gives it), not to an appliance's address."""
    monkeypatch.setattr(demo, "SINK_PORT", free_port())
    config = demo_config(tmp_path / "demo")
    web_port = free_port()
    config.web.listen = f"127.0.0.1:{web_port}"
    daemon = Daemon(config, notifier=Notifier(None), web=False)
    services = daemon.start()
    try:
        assert services.settings.get().email.smtp_port == demo.SINK_PORT
        sink = services.extra["demo_mail"]
        deadline = time.monotonic() + 10
        result = services.extra["notify"].send_test(demo.DEMO_OWNER)
        while not result.ok and time.monotonic() < deadline:  # the sink may still be starting
            time.sleep(0.1)
            result = services.extra["notify"].send_test(demo.DEMO_OWNER)
        assert result.ok, result
        messages = sink.messages()
        assert len(messages) == 1 and messages[0]["To"] == demo.DEMO_OWNER
        text = messages[0].get_body(("plain",)).get_content()
        assert f"http://127.0.0.1:{web_port}" in text and "frontdesk.local" not in text
    finally:
        daemon.shutdown()


def test_mail_queued_at_a_demo_stop_goes_out_at_the_first_try_after_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An email still in the outbox when the demo stopped (queued with no sink listening)
    goes out at the outbox's first try when the demo starts again: the sink listens before
    the outbox starts, so the first try never meets a refused connection."""
    from datetime import UTC, datetime

    from firmware_app.events import EventBus
    from firmware_app.services.notify import Notifier as Mail
    from firmware_app.services.notify import SmsNotice
    from firmware_app.services.settings import SettingsService
    from firmware_app.store import Store

    monkeypatch.setattr(demo, "SINK_PORT", free_port())
    folder = tmp_path / "demo"
    daemon = Daemon(demo_config(folder), notifier=Notifier(None), web=False)
    daemon.start()
    daemon.shutdown()
    store = Store(folder)  # the demo is stopped: an email queued now waits in the outbox
    try:
        settings = SettingsService(store, EventBus())
        mail = Mail(store, settings.get)
        msg_id = mail.sms(SmsNotice(number="+15551234567", at=datetime.now(UTC), text="hi"))
        assert msg_id is not None
    finally:
        store.close()

    caplog.set_level("INFO")
    daemon = Daemon(demo_config(folder), notifier=Notifier(None), web=False)
    services = daemon.start()
    try:
        sink = services.extra["demo_mail"]
        deadline = time.monotonic() + 60
        while (entry := services.notify.outbox.entry(msg_id)) is None or entry.state != "sent":
            assert time.monotonic() < deadline, "the queued email was never sent"
            time.sleep(0.1)
        assert entry.attempts == 1
        assert [m["Subject"] for m in sink.messages()] == [entry.subject]
        assert "not sent" not in caplog.text and "refused" not in caplog.text
    finally:
        daemon.shutdown()


def test_a_demo_beside_another_gets_its_own_mail_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program (a second demo, a test run beside `make demo`) listens on the sink's
    port: this demo's sink takes a free port and its email follows it, so its mail stays in
    its own mailbox; the next run with the port free goes back to it."""
    import socket

    taken = free_port()
    monkeypatch.setattr(demo, "SINK_PORT", taken)
    with socket.socket() as other:
        other.bind(("127.0.0.1", taken))
        other.listen()
        daemon = Daemon(demo_config(tmp_path / "demo"), notifier=Notifier(None), web=False)
        services = daemon.start()
        try:
            sink = services.extra["demo_mail"]
            assert sink.port != taken
            assert services.settings.get().email.smtp_port == sink.port
            deadline = time.monotonic() + 10
            result = services.notify.send_test(demo.DEMO_OWNER)
            while not result.ok and time.monotonic() < deadline:  # the sink may be starting
                time.sleep(0.1)
                result = services.notify.send_test(demo.DEMO_OWNER)
            assert result.ok, result
            assert [m["To"] for m in sink.messages()] == [demo.DEMO_OWNER]
        finally:
            daemon.shutdown()
    daemon = Daemon(demo_config(tmp_path / "demo"), notifier=Notifier(None), web=False)
    services = daemon.start()
    try:
        assert services.extra["demo_mail"].port == taken
        assert services.settings.get().email.smtp_port == taken
    finally:
        daemon.shutdown()


def test_demo_command_serves_the_web_page(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_app",
            "demo",
            "--data-dir",
            str(tmp_path / "d"),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    status = resp.status
            except OSError:
                time.sleep(0.2)
        assert status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
