"""Calls end to end in one process: Services + Line + simulated modem on a pty + CallService
+ CallRunner, emails to a local aiosmtpd server. The caller is scripted in the simulator."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from firmware_app.calls.analog_voice import Pacing
from firmware_app.calls.events import CallFinished, FaxToneDetected
from firmware_app.calls.runner import STOPPED_WHY, CallRunner
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.media import codecs, tones
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line
from firmware_app.modem.simulator import SimulatedModem, VoiceCaller, create
from firmware_app.services import Services
from firmware_app.services.calls import CallService
from firmware_app.services.history import Interaction
from firmware_app.settings.model import Email, Settings
from firmware_app.settings.routing import Menu, MenuOption, StaffMember
from firmware_app.store import Store
from tests.modem.conftest import FAST, Recorder
from tests.services.test_notify_delivery import Server

from .conftest import SPEED, ToneGreetings
from .test_analog_voice import similarity, speech

pytestmark = pytest.mark.timeout(60)

SATURDAY_NIGHT = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


def two_box_menu() -> Menu:
    """The closed-hours menu the call tests use: 1 for support's box, 2 for sales'."""
    return Menu(
        mode="closed",
        options=[
            MenuOption(digit="1", action="voicemail", target="support"),
            MenuOption(digit="2", action="voicemail", target="sales"),
        ],
    )


def closed_settings(port: int, **rules: Any) -> Settings:
    s = Settings()
    s.business.timezone = "UTC"
    s.business.country = "US"
    s.business.owner_email = "owner@example.com"
    s = s.replace(
        "email",
        Email(
            smtp_host="127.0.0.1", smtp_port=port, security="none", from_address="fd@example.com"
        ),
    )
    s.staff.members = [StaffMember(name="Anna", mobile="+15550001111", email="anna@example.com")]
    return s.replace("rules", dataclasses.replace(s.rules, office_phone=False, **rules))


@dataclasses.dataclass
class World:
    services: Services
    modem: SimulatedModem
    line: Line
    runner: CallRunner
    recorder: Recorder
    smtp: Server
    greetings: ToneGreetings

    def call(self, number: str, caller: VoiceCaller | None, timeout: float = 20.0) -> Interaction:
        self.modem.voice.caller = caller or VoiceCaller()
        mark = self.recorder.mark()
        self.modem.ring(number, rings=4, interval=0.3)
        done = self.recorder.wait(CallFinished, timeout=timeout, since=mark)
        item = self.services.history.get(done.record_id)
        assert item is not None
        return item

    def mails(self, n: int, timeout: float = 10.0) -> list[Any]:
        import time

        end = time.monotonic() + timeout
        while len(self.smtp.inbox.received) < n and time.monotonic() < end:
            time.sleep(0.05)
        return [r.msg for r in self.smtp.inbox.received]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    made: list[Any] = []

    def make(personality: str = "usr5637", **rules: Any) -> World:
        smtp = Server("none", None).start()
        made.append(smtp.stop)
        store = Store(tmp_path / "data")
        config = MachineConfig(store=StoreConfig(data_dir=str(store.data_dir)))
        services = Services.build(config, store)
        made.append(store.close)
        services.clock = lambda: SATURDAY_NIGHT
        services.settings.save(closed_settings(smtp.port, **rules))
        greetings = ToneGreetings()
        services.greetings = greetings  # type: ignore[assignment]
        services.notify.worker.start()
        made.append(lambda: services.notify.stop(timeout=5))
        recorder = Recorder(services.bus)
        modem = create(personality, tmp_path / "dev")
        modem.voice.speed = SPEED
        made.append(modem.close)
        line = Line(
            "line1",
            str(modem.path),
            bus=services.bus,
            settings=lambda: services.settings.get().lines,
            options=FAST,
        )
        line.start()
        made.append(lambda: (line.stop(), line.join(3), line.close()))
        recorder.wait(ev.LineUp, timeout=10)
        runner = CallRunner(services, pacing=Pacing(speed=SPEED))
        calls = CallService(
            services.bus,
            services.settings.get,
            {"line1": line}.get,
            lambda: services.clock(),
            runner=runner,
            contacts=services.contacts,
        )
        calls.subscribe()
        made.append(lambda: (calls.close(), runner.close()))
        return World(services, modem, line, runner, recorder, smtp, greetings)

    yield make
    for close in reversed(made):
        close()


def wav_samples(store: Store, ref: str) -> np.ndarray:
    data, rate = sf.read(io.BytesIO(store.media.read(ref)), dtype="int16")
    assert rate == 8000
    return np.asarray(data, dtype=np.int16)


def test_after_hours_greeting_voicemail_and_email_with_mp3(world: Callable[..., World]) -> None:
    w = world()
    message = speech(2.5)
    caller = VoiceCaller().say(message, at=0.3).hang_up(at=3.2, after="record", how=("dial_tone",))
    item = w.call("+15551234567", caller)
    # The closed greeting reached the line byte for byte (u-law, DLE doubling undone).
    played = w.modem.voice.played
    assert bytes(played[0].data) == codecs.encode(w.greetings.audio("closed"), "ulaw")
    assert bytes(played[1].data) == codecs.encode(w.greetings.audio("voicemail"), "ulaw")
    assert bytes(played[2].data) == codecs.encode(tones.beep(), "ulaw")
    # One record: a voicemail with its audio, the plan and its explanation.
    assert item.outcome == "voicemail" and item.number == "+15551234567"
    assert item.details["plan"]["rule"] == "schedule"
    assert "Closed" in item.details["plan"]["explanation"]
    assert item.details["heard"] is False and item.open
    (ref,) = item.media
    stored = wav_samples(w.services.store, ref)
    # What the caller sent after the codec round trip, trimmed where the dial tone began.
    sent = codecs.decode(bytes(w.modem.voice.recorded[-1].data), "ulaw")
    assert np.array_equal(stored, sent[: stored.size])
    assert 2.6 <= stored.size / 8000 <= 3.2, stored.size / 8000
    start = int(0.3 * 8000)
    assert similarity(stored, message, start) > 0.98
    assert item.duration == pytest.approx(stored.size / 8000, abs=0.01)
    (mail,) = w.mails(1)
    assert "voicemail" in mail["Subject"].lower() or "message" in mail["Subject"].lower()
    types = [p.get_content_type() for p in mail.walk()]
    assert "audio/mpeg" in types
    # The MP3 was made once, by the notifier, from the stored WAV.
    assert sum(1 for p in w.services.store.media.root.rglob("*.mp3")) == 1


def test_caller_hangs_up_during_the_greeting_gets_a_missed_call_email(
    world: Callable[..., World],
) -> None:
    w = world()
    caller = VoiceCaller().hang_up(at=0.2, after="play", how=("loop_break",))
    item = w.call("+15551234567", caller)
    assert item.outcome == "missed" and item.media == ()
    assert "greeting" in item.text
    assert len(w.modem.voice.recorded) == 0  # no recording was even started
    (mail,) = w.mails(1)
    assert "missed" in mail["Subject"].lower()
    assert not list(w.services.store.media.root.rglob("*.wav"))


class LongGreeting(ToneGreetings):
    """One greeting lasts `seconds` (the others are short): a call waits in it."""

    def __init__(self, key: str, seconds: float = 60.0) -> None:
        super().__init__()
        self.key, self.long = key, seconds

    def audio(self, key: str) -> np.ndarray:
        if key == self.key:
            self.asked.append(key)
            return tones.tone((self.PITCH.get(key, 450.0),), self.long, level_dbfs=-14.0)
        return super().audio(key)


def stop_during(w: World, greeting: str, plays: int, caller: VoiceCaller) -> Interaction:
    """Ring; once the call is in its `plays`-th greeting (the long `greeting`), close the
    runner as the daemon does when it stops; the call's record."""
    w.services.greetings = LongGreeting(greeting)  # type: ignore[assignment]
    w.runner.services.greetings = w.services.greetings
    w.modem.voice.caller = caller
    mark = w.recorder.mark()
    w.modem.ring("+15551234567", rings=4, interval=0.3)
    index = 0
    for _ in range(plays):  # the greeting is being played
        w.modem.wait_for_command(r"^AT\+VTX$", timeout=20, since=index)
        index = len(w.modem.commands)
    w.runner.close()
    done = w.recorder.wait(CallFinished, timeout=20, since=mark)
    assert "ATH" in w.modem.commands[index:]  # hung up while the line still ran
    item = w.services.history.get(done.record_id)
    assert item is not None
    assert w.services.history.calls_in_progress() == []  # recorded now, not at the next start
    return item


def test_a_call_frontdesk_stops_during_is_hung_up_and_recorded_as_interrupted(
    world: Callable[..., World],
) -> None:
    w = world()
    texted: list[str] = []
    w.runner.text_back = texted.append  # type: ignore[method-assign,assignment]
    item = stop_during(w, "closed", 1, VoiceCaller())
    assert item.outcome == "interrupted" and item.media == ()
    assert item.text == STOPPED_WHY and "caller hung up" not in item.text
    assert item.open  # the owner calls back
    (mail,) = w.mails(1)
    assert "missed" in mail["Subject"].lower()
    assert "cut off when Frontdesk restarted" in mail.get_body(("plain",)).get_content()
    assert texted == []  # no "sorry we missed your call": the caller did not give up


def test_a_message_left_before_frontdesk_stops_is_a_voicemail(
    world: Callable[..., World],
) -> None:
    w = world()
    caller = VoiceCaller().say(speech(1.5), at=0.2).press("#", at=2.0, after="record")
    item = stop_during(w, "goodbye", 4, caller)  # closed, voicemail, beep, goodbye
    assert item.outcome == "voicemail" and len(item.media) == 1
    assert item.text == f"message left; then {STOPPED_WHY}"
    (mail,) = w.mails(1)
    assert "audio/mpeg" in [p.get_content_type() for p in mail.walk()]


def test_blocked_caller_is_rejected_and_recorded(world: Callable[..., World]) -> None:
    w = world(block=["+15550000666"])
    mark = w.recorder.mark()
    item = w.call("+15550000666", None)
    assert item.outcome == "blocked" and not item.open
    assert "ATH1" in w.modem.commands and "AT+VTX" not in w.modem.commands
    w.recorder.wait(ev.CallEnded, since=mark)
    assert w.mails(0, timeout=0.5) == []


def test_blocked_caller_hears_not_accepted_when_the_owner_chose_it(
    world: Callable[..., World],
) -> None:
    w = world(block=["+15550000666"])
    w.services.settings.save_section("calls", {"blocked_message": True})
    mark = w.recorder.mark()
    item = w.call("+15550000666", VoiceCaller())
    assert item.outcome == "blocked" and not item.open
    assert item.text == "blocked number, told the call is not accepted"
    assert item.details["plan"]["steps"] == ["reject"]
    assert "say the call is not accepted" in item.details["plan"]["explanation"]
    assert item.details["answered"] is True
    (played,) = w.modem.voice.played  # the message, nothing else, then the hang-up
    assert bytes(played.data) == codecs.encode(w.greetings.audio("not_accepted"), "ulaw")
    assert "ATH1" not in w.modem.commands and "AT+VRX" not in w.modem.commands
    w.recorder.wait(ev.CallEnded, since=mark)
    assert w.modem.call_state == "idle"
    assert w.mails(0, timeout=0.5) == []  # blocked: no email


def test_vip_after_hours_on_a_single_analog_line_leaves_a_voicemail_for_staff(
    world: Callable[..., World],
) -> None:
    """One analog line and nothing to call staff on: the VIP hears the open greeting and
    leaves a voicemail naming Anna (tests/calls/test_daemon_call.py puts a VIP through)."""
    w = world(allow=["+15557770000"])
    caller = VoiceCaller().say(speech(1.5), at=0.2).hang_up(at=2.0, after="record")
    item = w.call("+15557770000", caller)
    plan = item.details["plan"]
    assert plan["rule"] == "allow"
    assert plan["steps"] == ["greet", "take_voicemail", "notify_staff"]
    assert "cannot put calls through" in plan["explanation"]
    assert item.outcome == "voicemail" and item.details["staff"] == ["Anna"]
    assert w.greetings.asked[0] == "open"  # VIPs hear the open greeting at any time
    (mail,) = w.mails(1)
    assert "anna@example.com" in str(mail["To"])


def test_ivr_digit_routes_to_the_right_box(world: Callable[..., World]) -> None:
    menu = two_box_menu()
    w = world(menus=[menu])
    caller = (
        VoiceCaller()
        .press("2", at=0.3, after="play", hold=0.2)  # during the menu prompt
        .say(speech(1.2), at=0.2, after="record")
        .hang_up(at=1.8, after="record")
    )
    item = w.call("+15551234567", caller)
    assert item.outcome == "voicemail" and item.details["box"] == "sales"
    assert item.details["digits"] == "2"
    assert w.greetings.asked[:2] == ["menu:closed", "voicemail"]


def test_the_owners_closed_greeting_is_heard_before_the_menu(
    world: Callable[..., World],
) -> None:
    """An owner who recorded (or wrote) a closed greeting has callers hear it, then the
    menu's choices (its default words without the welcome said twice), then the key."""
    from firmware_app.settings.greetings import Greeting

    menu = two_box_menu()
    w = world(menus=[menu])
    s = w.services.settings.get()
    s.greetings.items = [Greeting(key="closed", mode="text", text="Closed for stocktaking.")]
    w.services.settings.save(s)
    caller = (
        VoiceCaller()
        .press("2", at=0.3, after="play:2", hold=0.2)  # during the menu's choices
        .say(speech(1.2), at=0.2, after="record")
        .hang_up(at=1.8, after="record")
    )
    item = w.call("+15551234567", caller)
    assert item.outcome == "voicemail" and item.details["box"] == "sales"
    assert w.greetings.asked[:3] == ["closed", "menu:closed:choices", "voicemail"]
    assert item.details["plan"]["steps"][:2] == ["greet", "menu"]


def test_screening_hangs_up_on_a_withheld_caller_who_presses_nothing(
    world: Callable[..., World],
) -> None:
    w = world(withheld="screen")
    item = w.call("P", VoiceCaller())
    assert item.outcome == "screened" and item.number == ""
    assert "ATH" in w.modem.commands
    assert w.mails(0, timeout=0.5) == []


def test_fax_tone_ends_the_voice_call_as_a_fax(world: Callable[..., World]) -> None:
    w = world()
    item = w.call("+15551234567", VoiceCaller().send_fax_tone(at=0.1, after="play"))
    assert item.outcome == "fax"
    found = w.recorder.of(FaxToneDetected)
    assert found and found[0].line == "line1"


def test_long_dial_tone_is_trimmed(world: Callable[..., World]) -> None:
    """The caller speaks 1.5 s and hangs up; the exchange's dial tone follows (Conexant):
    the message is kept up to where the tone began, never minutes of it."""
    w = world("cx93010")
    message = speech(1.5)
    caller = VoiceCaller().say(message, at=0.1).hang_up(at=1.7, after="record", how=("dial_tone",))
    item = w.call("+15551234567", caller)
    assert item.outcome == "voicemail", item.text
    record = next(s for s in item.details["steps"] if s.get("do", "").startswith("record"))
    assert record["result"] == "hangup"
    stored = wav_samples(w.services.store, item.media[0])
    # Cut where the dial tone began (1.7 s into the recording), within a 20 ms frame or two.
    assert 1.64 <= stored.size / 8000 <= 1.76, stored.size / 8000
    sent = codecs.decode(bytes(w.modem.voice.recorded[-1].data), "ulaw")
    assert np.array_equal(stored, sent[: stored.size])
    assert similarity(stored, message, int(0.1 * 8000)) > 0.98
    # Detected within 2 s of the tone: never minutes of dial tone on the line.
    assert sum(len(r.data) for r in w.modem.voice.recorded) / 8000 < 4.0


def test_a_short_cough_then_dial_tone_is_no_message(world: Callable[..., World]) -> None:
    w = world("cx93010")
    caller = (
        VoiceCaller().say(speech(0.4), at=0.1).hang_up(at=0.6, after="record", how=("dial_tone",))
    )
    item = w.call("+15551234567", caller)
    assert item.outcome == "missed" and item.media == (), item.text
    assert "without leaving a message" in item.text
    (mail,) = w.mails(1)
    assert "missed" in mail["Subject"].lower()
