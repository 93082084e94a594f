"""What `frontdesk demo` adds around the daemon: a local mail sink and demo settings.

The sink is a real SMTP server on loopback that keeps every message in a Maildir under the
demo's data dir, so the emails Frontdesk sends can be read without a mail account. Nothing
here runs on an appliance.
"""

from __future__ import annotations

import logging
import mailbox
import socket
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from .services import Services
from .workers import Worker

log = logging.getLogger(__name__)

SINK_HOST = "127.0.0.1"
SINK_PORT = 8025
DEMO_OWNER = "owner@demo.invalid"


class _SinkHandler:
    def __init__(self, folder: Path) -> None:
        self.box = mailbox.Maildir(folder, create=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        self.box.add(raw)
        msg = message_from_bytes(raw, policy=policy.default)
        log.info("demo mail for %s: %s", ", ".join(envelope.rcpt_tos), msg.get("Subject", ""))
        return "250 Message accepted for delivery"


def sink_port() -> int:
    """SINK_PORT, or a free port when another program listens there (a second demo, a test
    run beside a running demo): each demo's mail stays in its own mailbox, and its sink
    starts at once instead of failing to bind again and again."""
    if _can_listen(SINK_HOST, SINK_PORT):
        return SINK_PORT
    with socket.socket() as s:
        s.bind((SINK_HOST, 0))
        port = int(s.getsockname()[1])
    log.info("demo mail sink: port %d is taken (another demo?); using %d", SINK_PORT, port)
    return port


def _can_listen(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class DemoMailSink(Worker):
    """An SMTP server on 127.0.0.1 that stores what it receives in `<data_dir>/demo-mail`."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__("demo-mail", liveness=60.0)
        self.folder = Path(data_dir) / "demo-mail"
        self.port = port or sink_port()
        self._controller: Any = None

    def listen(self) -> None:
        """Start the SMTP server now; it takes connections when this returns. The daemon
        calls it before the email outbox starts, so mail queued before a restart goes out
        at the outbox's first try instead of waiting out a backoff."""
        from aiosmtpd.controller import Controller

        if self._controller is not None:
            return
        controller = Controller(_SinkHandler(self.folder), hostname=SINK_HOST, port=self.port)
        controller.start()  # returns once the server answers
        self._controller = controller
        log.info("demo mail sink on %s:%d, messages in %s", SINK_HOST, self.port, self.folder)

    def run(self) -> None:
        self.listen()
        while not self.wait(5.0):
            pass
        # Left listening: the daemon's closers stop it once every worker has stopped, so an
        # email the outbox is handing over as the demo stops is taken, not cut off.

    def close(self) -> None:
        """Stop the SMTP server (the worker's end, or the daemon's closers when it never
        ran). Safe to call twice."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def messages(self) -> list[Any]:
        box = mailbox.Maildir(self.folder, create=True)
        return [message_from_bytes(m.as_bytes(), policy=policy.default) for m in box]

    def received(self, limit: int = 100) -> list[tuple[str, float, Any]]:
        """(key, time received, message) of the newest messages first, for the web page."""
        box = mailbox.Maildir(self.folder, create=True)
        dated = []
        for key in box.iterkeys():
            try:
                msg = box.get_message(key)
            except (KeyError, OSError):  # removed meanwhile
                continue
            dated.append((msg.get_date(), key))
        dated.sort(reverse=True)
        out = []
        for when, key in dated[:limit]:
            parsed = self.message(key)
            if parsed is not None:
                out.append((key, when, parsed))
        return out

    def message(self, key: str) -> Any:
        """One message by its Maildir key, or None. Keys not in the folder are refused."""
        box = mailbox.Maildir(self.folder, create=True)
        try:
            raw = box.get_bytes(key)
        except (KeyError, OSError):
            return None
        return message_from_bytes(raw, policy=policy.default)


DEMO_FROM = "frontdesk@demo.invalid"


def seed_settings(services: Services, sink_port: int | None = None) -> None:
    """Point email at the sink, once: the owner may change it afterwards. Email still set
    to a demo sink follows this run's sink to its port (`sink_port()`)."""
    current = services.settings.get()
    port = sink_port or SINK_PORT
    mail = current.email
    if mail.smtp_host:
        if (mail.smtp_host, mail.from_address) == (SINK_HOST, DEMO_FROM) and (
            mail.smtp_port != port
        ):
            services.settings.save_section("email", {**_plain(mail), "smtp_port": port})
        return
    email = {
        "smtp_host": SINK_HOST,
        "smtp_port": port,
        "security": "none",
        "from_address": DEMO_FROM,
    }
    services.settings.save_section("email", {**_plain(current.email), **email})
    if not current.business.owner_email:
        services.settings.save_section(
            "business", {**_plain(current.business), "owner_email": DEMO_OWNER}
        )


def _plain(section: Any) -> dict[str, Any]:
    from .settings.schema import to_dict

    result: dict[str, Any] = to_dict(section)
    return result
