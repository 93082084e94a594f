"""A real `frontdesk run` killed (SIGKILL) in the middle of sending an email: after a restart
the email arrives, with the same Message-ID (at-least-once; a second copy is recognisable).
The caller name tries to add a Bcc header: it never becomes a header or a recipient."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from firmware_app.events import EventBus
from firmware_app.services.notify import MissedCallNotice, Notifier
from firmware_app.services.settings import SettingsService
from firmware_app.store import Store

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EVIL = "Evil\r\nBcc: victim@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StallingInbox:
    """Keeps every message; the first time, it keeps it and then waits before replying
    (until the test releases it), so the daemon is killed mid-send with its copy taken."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []
        self.in_data = threading.Event()
        self.release = threading.Event()
        self.stall = True
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.arrived:
            self.received.append((list(envelope.rcpt_tos), envelope.original_content))
            self.arrived.notify_all()
        if self.stall:
            self.stall = False
            self.in_data.set()
            while not self.release.is_set():  # the daemon is killed while it waits here
                await asyncio.sleep(0.02)
        return "250 2.0.0 Ok: queued"

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.received) >= count, timeout)


@pytest.fixture
def inbox() -> Iterator[tuple[int, StallingInbox]]:
    handler = StallingInbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    yield port, handler
    handler.release.set()
    controller.stop()


def daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
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


def test_killed_mid_send_delivers_after_restart_with_the_same_message_id(
    tmp_path: Path, inbox: tuple[int, StallingInbox]
) -> None:
    port, handler = inbox
    data = tmp_path / "data"
    store = Store(data)
    settings = SettingsService(store, EventBus())
    current = settings.get()
    settings.save(
        current.replace(
            "business", type(current.business)(name="Rossi", owner_email="anna@rossi.example")
        ).replace(
            "email",
            type(current.email)(
                smtp_host="127.0.0.1",
                smtp_port=port,
                security="none",
                from_address="desk@rossi.example",
            ),
        )
    )
    notifier = Notifier(store, settings.get)
    msg_id = notifier.missed_call(
        MissedCallNotice(number="+442079460000", at=datetime.now(UTC), contact_name=EVIL)
    )
    assert msg_id is not None
    message_id = (notifier.outbox.get(msg_id) or {})["message_id"]
    store.close()

    config = tmp_path / "frontdesk.toml"
    config.write_text(
        f'[store]\ndata_dir = "{data}"\n[web]\nlisten = "127.0.0.1:{free_port()}"\n'
        '[log]\nlevel = "info"\n'
    )
    log = tmp_path / "daemon.log"
    first = daemon(config, log)
    try:
        assert handler.in_data.wait(20), log.read_text()
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(5)
    handler.release.set()
    assert len(handler.received) == 1  # the server kept the copy whose sender is gone

    second = daemon(config, log)
    try:
        assert handler.wait_for(2, 20), log.read_text()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "sent: 250" not in log.read_text():
            time.sleep(0.05)
        second.send_signal(signal.SIGTERM)
        assert second.wait(10) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(5)

    assert "interrupted while sending" in log.read_text()
    copies = [
        (rcpt, email.message_from_bytes(raw, policy=email.policy.default))
        for rcpt, raw in handler.received
    ]
    assert len(copies) == 2
    for rcpt, msg in copies:
        assert msg["Message-ID"] == message_id  # the same message, recognisably
        assert rcpt == ["anna@rossi.example"]  # nobody added
        assert [k.lower() for k in msg].count("bcc") == 0
        assert msg["Subject"] == "Missed call from Evil Bcc: victim@example.com"
    assert copies[0][1].as_bytes() == copies[1][1].as_bytes()  # byte for byte

    with Store(data) as reopened:
        entry = Notifier(reopened, SettingsService(reopened, EventBus()).get).message(msg_id)
        assert entry is not None and entry.state == "sent" and entry.attempts == 2
