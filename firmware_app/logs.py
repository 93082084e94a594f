"""Logging set-up: stderr for journald, plus a small in-memory ring for the system page.

Never log a password; log phone numbers only at debug level outside the call log.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class LogLine:
    at: datetime
    level: str
    logger: str
    message: str


class RingBufferHandler(logging.Handler):
    """Keeps the last `capacity` formatted records in memory (bounded)."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                msg += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            line = LogLine(
                datetime.fromtimestamp(record.created, UTC), record.levelname, record.name, msg
            )
        except Exception:  # a bad %s argument must not break logging
            self.handleError(record)
            return
        with self._lock2:
            self._lines.append(line)

    def lines(self, n: int = 100, min_level: int = logging.DEBUG) -> list[LogLine]:
        """The newest n lines at or above min_level, oldest first."""
        with self._lock2:
            chosen = [ln for ln in self._lines if logging.getLevelName(ln.level) >= min_level]
        return chosen[-n:]


def setup_logging(level: str = "info", ring: RingBufferHandler | None = None) -> RingBufferHandler:
    """Configure the root logger once for the daemon; returns the ring buffer handler."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_frontdesk", False):
            root.removeHandler(h)
    stream = logging.StreamHandler()
    # Under systemd the journal stamps each line itself.
    fmt = (
        "%(levelname)s %(name)s: %(message)s"
        if os.environ.get("JOURNAL_STREAM")
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stream.setFormatter(logging.Formatter(fmt))
    ring = ring or RingBufferHandler()
    handlers: tuple[logging.Handler, ...] = (stream, ring)
    for h in handlers:
        setattr(h, "_frontdesk", True)  # noqa: B010 - marks our handlers for the next set-up
        root.addHandler(h)
    root.setLevel(level.upper())
    for noisy in ("waitress.queue", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return ring
