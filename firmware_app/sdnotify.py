"""systemd's notify protocol: READY=1, WATCHDOG=1, STOPPING=1, STATUS=... on $NOTIFY_SOCKET.

A datagram per message to a Unix socket (abstract when the name starts with '@').
Outside systemd (no NOTIFY_SOCKET) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None, watchdog_usec: int = 0) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec

    @classmethod
    def from_env(cls) -> Notifier:
        address = os.environ.get("NOTIFY_SOCKET") or None
        usec = 0
        wd_pid = os.environ.get("WATCHDOG_PID")
        if wd_pid is None or wd_pid == str(os.getpid()):
            try:
                usec = int(os.environ.get("WATCHDOG_USEC", "0"))
            except ValueError:
                usec = 0
        return cls(address, usec)

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the systemd timeout), or None when off."""
        return self.watchdog_usec / 2_000_000 if self.watchdog_usec > 0 else None

    def notify(self, *lines: str) -> bool:
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(lines).encode(), target)
            return True
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", self.address, exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")
