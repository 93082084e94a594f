"""Greetings: spoken times and hours, defaults from the settings, espeak-ng generation and its
cache, uploads converted to 8 kHz mono (WAV 44.1 kHz stereo, MP3), bad uploads refused by
content and size, defaults regenerated when the hours change."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from firmware_app.errors import SettingsError
from firmware_app.events import EventBus
from firmware_app.media import tones
from firmware_app.media.codecs import read_wav
from firmware_app.services.greetings import (
    GreetingError,
    GreetingsService,
    convert_upload,
    default_text,
    say_hours,
    say_interval,
    say_time,
)
from firmware_app.services.settings import SettingsService
from firmware_app.settings.model import Settings
from firmware_app.settings.routing import Hours
from firmware_app.store import Store

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng")


@pytest.fixture
def service(store: Store) -> Iterator[GreetingsService]:
    bus = EventBus()
    settings = SettingsService(store, bus)
    s = settings.get()
    s.business.name = "Acme"
    settings.save(s)
    svc = GreetingsService(store, settings, bus)
    yield svc
    svc.close()


@pytest.mark.parametrize(
    ("minutes", "said"),
    [
        (540, "nine"),
        (1050, "five thirty"),
        (725, "twelve oh five"),
        (720, "noon"),
        (0, "midnight"),
        (1440, "midnight"),
        (795, "one fifteen"),
        (1305, "nine forty-five"),
    ],
)
def test_times_are_said_the_way_people_say_them(minutes: int, said: str) -> None:
    assert say_time(minutes) == said


@pytest.mark.parametrize(
    ("interval", "said"),
    [
        ("09:00-17:30", "nine to five thirty"),
        ("08:30-12:00", "eight thirty to noon"),
        ("18:00-02:00", "six in the evening to two at night"),
        ("00:00-24:00", "all day"),
    ],
)
def test_intervals(interval: str, said: str) -> None:
    assert say_interval(interval) == said


def test_hours_sentences() -> None:
    assert say_hours(
        Hours(
            fri=["09:00-17:30"],
            mon=["09:00-17:30"],
            tue=["09:00-17:30"],
            wed=["09:00-17:30"],
            thu=["09:00-17:30"],
        )
    ) == ("We are open Monday to Friday, nine to five thirty.")
    split = Hours(
        mon=["09:00-12:30", "13:30-17:00"],
        tue=[],
        wed=["09:00-12:30", "13:30-17:00"],
        thu=[],
        fri=[],
        sat=["10:00-13:00"],
    )
    assert say_hours(split) == (
        "We are open Monday and Wednesday, nine to twelve thirty and one thirty to five, "
        "and Saturday, ten to one."
    )
    every = ["00:00-24:00"]
    assert (
        say_hours(
            Hours(mon=every, tue=every, wed=every, thu=every, fri=every, sat=every, sun=every)
        )
        == "We are open around the clock."
    )
    assert say_hours(Hours(mon=[], tue=[], wed=[], thu=[], fri=[])) == (
        "We have no regular opening hours."
    )


def test_default_texts_come_from_the_settings() -> None:
    s = Settings()
    s.business.name = "Acme"
    s.hours.fri = ["09:00-17:30"]
    for day in ("mon", "tue", "wed", "thu"):
        setattr(s.hours, day, ["09:00-17:30"])
    assert default_text("closed", s) == (
        "Thanks for calling Acme. We are closed. We are open Monday to Friday, nine to five thirty."
    )
    assert "Press 1 to accept" in default_text("accept_call", s)
    assert "pound" in default_text("voicemail", s)  # US business
    s.business.country = "GB"
    assert "the hash key" in default_text("voicemail", s)


def test_keys_follow_closures_and_menus(service: GreetingsService) -> None:
    from firmware_app.settings.routing import Closure, Menu, MenuOption

    s = service._settings.get()
    s.holidays.closures = [
        Closure(id="summer", start="2025-08-04", end="2025-08-15", reason="our summer break")
    ]
    s.rules.menus = [
        Menu(
            mode="open",
            options=[
                MenuOption(digit="1", action="ring_staff", target="", label="For sales"),
                MenuOption(digit="2", action="voicemail", target="main", label=""),
            ],
        )
    ]
    service._settings.save(s)
    keys = service.keys()
    assert "closure:summer" in keys and "menu:open" in keys
    assert service.info("closure:summer").text == (
        "Thanks for calling Acme. We are closed for our summer break. "
        "We are back on Saturday, the sixteenth of August."
    )
    # A menu is said instead of the mode's greeting: it starts with that greeting's welcome.
    assert service.info("menu:open").text == (
        "Thanks for calling Acme. For sales, press 1. To leave a message, press 2."
    )
    note = "A key menu is set for this time: with your own words or recording this greeting"
    assert note in service.info("open").purpose
    assert note not in service.info("closed").purpose
    s = service._settings.get()
    s.rules.menus.append(
        Menu(mode="closed", options=[MenuOption(digit="2", action="voicemail", target="urgent")])
    )
    service._settings.save(s)
    closed_menu = service.info("menu:closed").text
    assert closed_menu.startswith(default_text("closed", s))  # closed, and the hours
    assert "We are closed" in closed_menu and closed_menu.endswith(", press 2.")
    # Holidays and closures without a menu of their own use the closed menu.
    for key in ("closed", "holiday", "closure:summer"):
        assert note in service.info(key).purpose, key
    # After the owner's own greeting for the time the menu says its choices only; a menu
    # with the owner's own words says them as they are.
    choices = service._spec("menu:closed:choices", service._settings.get()).text
    assert choices == "To leave a message, press 2."
    shown = list(service.keys())
    assert "menu:closed:choices" not in shown  # not a greeting of its own
    service.set_text("menu:open", "Sales: one. Messages: two.")
    assert service._spec("menu:open:choices", service._settings.get()).text == (
        "Sales: one. Messages: two."
    )


@needs_espeak
def test_text_to_speech_is_generated_once_and_cached(
    store: Store, service: GreetingsService
) -> None:
    pcm = service.audio("closed")
    assert pcm.dtype == np.int16 and 2.0 < pcm.size / 8000 < 15.0
    assert service.generated == 1
    assert service.audio("closed") is pcm  # memory
    again = GreetingsService(store, service._settings)
    assert np.array_equal(again.audio("closed"), pcm)  # media store, no espeak-ng run
    assert again.generated == 0
    wav = service.wav("closed")
    back, rate = read_wav(wav)
    assert rate == 8000 and back.size == pcm.size


@needs_espeak
def test_own_text_and_voice(service: GreetingsService) -> None:
    service.set_text("goodbye", "See you soon.", voice="en-gb")
    info = service.info("goodbye")
    assert (info.mode, info.text, info.voice) == ("text", "See you soon.", "en-gb")
    assert service.audio("goodbye").size > 4000
    with pytest.raises(SettingsError):
        service.set_text("goodbye", "   ")
    with pytest.raises(SettingsError):
        service.set_text("goodbye", "hi", voice="../../etc")


def _wav(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format=fmt, subtype=subtype)
    return out.getvalue()


def _speechlike(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.05 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t))


def test_upload_44k_stereo_wav_becomes_8k_mono(store: Store, service: GreetingsService) -> None:
    mono = _speechlike(2.0, 44100)
    data = _wav(np.stack([mono, mono], axis=1).astype(np.float32), 44100, subtype="PCM_16")
    ref = service.upload("open", data)
    info = service.info("open")
    assert (info.mode, info.recording) == ("recording", ref)
    stored, rate = read_wav(store.media.path(ref))
    assert rate == 8000 and abs(stored.size - 16000) < 50
    rms = np.sqrt(np.mean((stored / 32768.0) ** 2))
    assert 10 ** (-21 / 20) < rms < 10 ** (-15 / 20)  # normalised near -18 dBFS
    assert service.audio("open").size == stored.size
    service.reset("open")
    assert service.info("open").mode == "default"
    assert not store.media.path(ref).exists()  # the old recording is deleted


def test_upload_mp3(service: GreetingsService) -> None:
    data = _wav(_speechlike(3.0, 22050).astype(np.float32), 22050, fmt="MP3")
    assert data[:3] == b"ID3" or data[0] == 0xFF
    pcm = convert_upload(data)
    assert abs(pcm.size / 8000 - 3.0) < 0.2


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"hello, this is text pretending to be audio", "not a WAV, MP3"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "not a WAV, MP3"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "could not be read"),
        (_wav(tones.silence(2.0), 8000, subtype="PCM_16"), "silent"),
    ],
)
def test_bad_uploads_are_refused(data: bytes, words: str, service: GreetingsService) -> None:
    with pytest.raises(GreetingError, match=words):
        service.upload("closed", data)
    assert service.info("closed").mode == "default"


def test_upload_size_cap(service: GreetingsService) -> None:
    data = _wav(_speechlike(2.0, 8000).astype(np.float32), 8000, subtype="PCM_16")
    with pytest.raises(GreetingError, match="MB"):
        service.upload("closed", data, max_bytes=1000)


@needs_espeak
def test_defaults_regenerate_when_hours_change(service: GreetingsService) -> None:
    service.start().result(timeout=60)
    before = service.audio("closed")
    made = service.generated
    s = service._settings.get()
    service._settings.save_section(
        "hours", {**{d: ["10:00-16:00"] for d in ("mon", "tue", "wed", "thu", "fri")}}
    )
    assert "ten to four" in service.info("closed").text
    deadline = time.monotonic() + 30
    while service.generated <= made and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.generated > made  # regenerated in the background, not per call
    with service._lock:
        pass
    after = service.audio("closed")
    assert after.size != before.size or not np.array_equal(after, before)
    assert s is not service._settings.get()


def test_closing_ends_speech_being_generated(tmp_path: Path) -> None:
    import threading
    import time

    from firmware_app.services.greetings import SpeechError, Tts

    slow = tmp_path / "slow-tts"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    tts = Tts(program=str(slow), timeout=60)
    errors: list[Exception] = []

    def speak() -> None:
        try:
            tts.speak("Hello", "en", 150)
        except SpeechError as exc:
            errors.append(exc)

    worker = threading.Thread(target=speak)
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    tts.stop()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - started < 2
    assert errors and "failed" in str(errors[0])
    with pytest.raises(SpeechError, match="stopped"):
        tts.speak("Again", "en", 150)


@needs_espeak
def test_start_speaks_every_greeting_in_a_child_process(
    store: Store, service: GreetingsService
) -> None:
    """The daemon keeps nothing in memory from start-up: a child process speaks each text and
    sends back WAV files, which are stored and named in the cache."""
    keys = service.keys()
    texts = {service.info(k).text for k in keys}
    assert service.start().result(timeout=120) == len(texts)
    assert service.generated == len(texts) and not service._memory
    assert service.prepare().result(timeout=60) == 0  # all cached: no child is started
    cached = service._cache()
    assert len(cached) == len(texts)
    ref = cached[service._spec("closed", service._settings.get()).tts_hash()]
    assert service.wav("closed") == store.media.read(ref)  # the file as stored
    assert not service._memory  # the preview did not load the audio into memory
    pcm, rate = read_wav(store.media.read(ref))
    assert rate == 8000 and 2.0 < pcm.size / 8000 < 15.0
    rms = np.sqrt(np.mean((pcm / 32768.0) ** 2))
    assert 10 ** (-24 / 20) < rms < 10 ** (-12 / 20)  # normalised as in-process speech is
    again = GreetingsService(store, service._settings)
    assert np.array_equal(again.audio("closed"), pcm) and again.generated == 0


@needs_espeak
def test_the_first_ring_loads_every_greeting(service: GreetingsService) -> None:
    from firmware_app.modem.events import IncomingCall

    service.start().result(timeout=120)
    made = service.generated
    assert service._warming is None
    service._bus.publish(  # type: ignore[union-attr]
        IncomingCall(line="line1", call_id=1, number="+15551234567", name=None, validity="ok")
    )
    assert service._warming is not None
    assert service._warming.result(timeout=60) == len(service.keys())
    assert set(service._memory) == set(service.keys())
    assert service.audio("closed") is service._memory["closed"][1]  # no file read on answer
    assert service.generated == made


def test_a_broken_speech_program_leaves_silence(store: Store, tmp_path: Path) -> None:
    from firmware_app.services.greetings import Tts

    broken = tmp_path / "broken-tts"
    broken.write_text("#!/bin/sh\necho 'no voice data' >&2\nexit 1\n")
    broken.chmod(0o755)
    bus = EventBus()
    svc = GreetingsService(store, SettingsService(store, bus), bus, tts=Tts(program=str(broken)))
    try:
        assert svc.start().result(timeout=120) == 0
        assert svc._cache() == {} and svc.generated == 0
        assert np.array_equal(svc.audio("closed"), tones.silence(0.3))
    finally:
        svc.close()


def test_closing_ends_the_speech_child_process(tmp_path: Path) -> None:
    import threading

    from firmware_app.media.speech import SpeechError, SpeechJob, SpeechRenderer

    slow = tmp_path / "slow-tts"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    renderer = SpeechRenderer(program=str(slow), timeout=60)
    errors: list[Exception] = []
    results: list[tuple[str, bytes | None, str]] = []

    def render() -> None:
        try:
            renderer.render([SpeechJob("a", "Hello", "en", 150)], lambda *r: results.append(r))
        except SpeechError as exc:
            errors.append(exc)

    worker = threading.Thread(target=render)
    worker.start()
    while renderer._proc is None and worker.is_alive():
        time.sleep(0.01)
    renderer.stop()
    worker.join(20)
    assert not worker.is_alive()
    assert errors and "ended early" in str(errors[0]) and results == []
    with pytest.raises(SpeechError, match="stopped"):
        renderer.render([SpeechJob("b", "Again", "en", 150)], lambda *r: None)
