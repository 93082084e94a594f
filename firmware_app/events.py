"""The event bus: typed, frozen events published by lines and services.

`publish` calls each subscriber of the event's class (and of its base classes) in the
publisher's thread, in subscription order. A handler that raises is logged and skipped;
the others still run. Handlers doing slow work hand it to their own worker thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E", bound="Event")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event. `at` is when it happened (UTC)."""

    at: datetime = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsChanged(Event):
    sections: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStarted(Event):
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStopping(Event):
    reason: str


Handler = Callable[[Any], None]


class EventBus:
    def __init__(self) -> None:
        self._subs: dict[type, list[Handler]] = {}
        self._lock = threading.Lock()
        self.handler_errors = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """Call `handler` for each event of `event_type` (or a subclass); returns an unsubscribe."""
        with self._lock:
            self._subs.setdefault(event_type, []).append(handler)

        def unsubscribe() -> None:
            with self._lock:
                handlers = self._subs.get(event_type, [])
                if handler in handlers:
                    handlers.remove(handler)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            handlers = [h for cls in type(event).__mro__ for h in self._subs.get(cls, ())]
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception(
                    "event handler %s failed on %s",
                    getattr(handler, "__qualname__", handler),
                    type(event).__name__,
                )
