"""Fixtures for call tests: simulated analog modems, lines on them, a test greeting source,
and one test asound.conf (ALSA's file plugin) for every GSM sound-card test in the run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from firmware_app.events import EventBus
from firmware_app.media import tones
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line
from firmware_app.modem.simulator import SimulatedModem, create
from firmware_app.modem.simulator.gsm_audio import AlsaFiles
from firmware_app.modem.simulator.gsm_audio import alsa_files as sim_alsa_files
from firmware_app.settings.lines import Lines
from tests.modem.conftest import FAST, Recorder

SPEED = 8.0  # the simulator and the playback run this much faster than real time


class ToneGreetings:
    """A GreetingSource for tests: each key is a different tone (told apart by pitch)."""

    PITCH: ClassVar[dict[str, float]] = {
        "open": 500.0,
        "closed": 600.0,
        "voicemail": 700.0,
        "goodbye": 800.0,
        "screen": 900.0,
        "not_accepted": 950.0,
        "connecting": 1150.0,
        "menu:closed": 1000.0,
        "menu:open": 1050.0,
    }

    def __init__(self, seconds: float = 0.6) -> None:
        self.seconds = seconds
        self.asked: list[str] = []

    def audio(self, key: str) -> np.ndarray:
        self.asked.append(key)
        return tones.tone((self.PITCH.get(key, 450.0),), self.seconds, level_dbfs=-14.0)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def recorder(bus: EventBus) -> Recorder:
    return Recorder(bus)


@pytest.fixture
def make_modem(tmp_path: Path) -> Iterator[Callable[..., SimulatedModem]]:
    made: list[SimulatedModem] = []

    def make(name: str = "usr5637", **options: object) -> SimulatedModem:
        modem = create(name, tmp_path / "dev", **options)
        modem.voice.speed = SPEED
        made.append(modem)
        return modem

    yield make
    for modem in made:
        modem.close()


@pytest.fixture
def make_line(bus: EventBus, recorder: Recorder) -> Iterator[Callable[..., Line]]:
    made: list[Line] = []

    def make(path: Path, settings: Lines | None = None, name: str = "line1") -> Line:
        line = Line(name, str(path), bus=bus, settings=lambda: settings or Lines(), options=FAST)
        line.start()
        made.append(line)
        recorder.wait(ev.LineUp, lambda e: e.line == name, timeout=10)
        return line

    yield make
    for line in made:
        line.stop()
    for line in made:
        line.join(3)
        line.close()


@pytest.fixture(scope="session")
def alsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlsaFiles]:
    """The simulator's ALSA file-plugin devices `tofile`, `fromfile` and `duplex` (both in
    one name, as `audio.device` gives it) with their playback and capture files. One
    asound.conf for the whole run: alsa-lib reads its configuration once per process."""
    files = sim_alsa_files(tmp_path_factory.mktemp("alsa"))
    old = os.environ.get("ALSA_CONFIG_PATH")
    os.environ["ALSA_CONFIG_PATH"] = str(files.conf)
    yield files
    if old is None:
        os.environ.pop("ALSA_CONFIG_PATH", None)
    else:
        os.environ["ALSA_CONFIG_PATH"] = old


@pytest.fixture(scope="session")
def alsa_files(alsa: AlsaFiles) -> tuple[Path, Path]:
    """(playback file, capture file) of `alsa`."""
    return alsa.playback, alsa.capture
