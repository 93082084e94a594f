"""Fixtures for line tests: simulated modems on ptys, lines with short timings, an event log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from firmware_app.events import Event, EventBus
from firmware_app.modem.line import Line, LineOptions
from firmware_app.modem.simulator import SimulatedModem, create
from firmware_app.settings.lines import Lines

E = TypeVar("E", bound=Event)

FAST = LineOptions(
    health_interval=0.3,
    health_failures=2,
    backoff_initial=0.1,
    backoff_max=0.4,
    probe_timeout=0.5,
    idle_after=1.5,
)


class Recorder:
    """Every event published on a bus, with waiting helpers."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()
        bus.subscribe(Event, self._add)

    def _add(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, kind: type[E]) -> list[E]:
        with self._cond:
            return [e for e in self.events if isinstance(e, kind)]

    def wait(
        self,
        kind: type[E],
        pred: Callable[[E], bool] = lambda e: True,
        timeout: float = 5.0,
        since: int = 0,
    ) -> E:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events[since:]:
                    if isinstance(e, kind) and pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [type(e).__name__ for e in self.events]
                    raise AssertionError(f"no {kind.__name__} within {timeout} s; saw {names}")
                self._cond.wait(left)

    def mark(self) -> int:
        with self._cond:
            return len(self.events)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def recorder(bus: EventBus) -> Recorder:
    return Recorder(bus)


@pytest.fixture
def make_modem(tmp_path: Path) -> Iterator[Callable[..., SimulatedModem]]:
    made: list[SimulatedModem] = []

    def factory(name: str, **options: Any) -> SimulatedModem:
        modem = create(name, tmp_path / "dev", **options)
        made.append(modem)
        return modem

    yield factory
    for modem in made:
        modem.close()


@pytest.fixture
def make_line(bus: EventBus, tmp_path: Path) -> Iterator[Callable[..., Line]]:
    made: list[Line] = []

    def factory(
        port: str | Path,
        settings: Lines | None = None,
        options: LineOptions = FAST,
        name: str = "line1",
    ) -> Line:
        current = settings or Lines()
        line = Line(
            name,
            str(port),
            bus=bus,
            settings=lambda: current,
            options=options,
            pin_file=tmp_path / "pins" / f"{name}.json",
        )
        made.append(line)
        line.start()
        return line

    yield factory
    for line in made:
        line.stop()
    for line in made:
        assert line.join(2.0), f"{line.name} did not stop"
        line.close()
