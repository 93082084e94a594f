"""`frontdesk demo call` with a scripted caller, through a demo daemon in real time: the
caller presses a key menu's choice and leaves a spoken message, or hangs up during the
greeting; a fresh caller each call."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from firmware_app import cli, demo
from firmware_app.calls.events import CallFinished
from firmware_app.config import demo_config
from firmware_app.daemon import Daemon
from firmware_app.errors import FrontdeskError
from firmware_app.media.speech import Tts
from firmware_app.sdnotify import Notifier
from firmware_app.services import Services
from tests.modem.conftest import Recorder
from tests.test_daemon import free_port

from .test_calls_e2e import two_box_menu
from .test_daemon_call import lines_idle

pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng"),
]

WORDS = "Hello, this is Jane. Please call me back."


def closed_with_a_menu(svc: Services) -> None:
    """Closed whenever the test runs, no office phone, and a key menu: 1 support, 2 sales."""
    s = svc.settings.get()
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        setattr(s.hours, day, [])
    s.rules.office_phone = False
    s.rules.menus = [two_box_menu()]
    svc.settings.save(s)


def test_demo_call_presses_a_menu_key_and_leaves_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "SINK_PORT", free_port())
    folder = tmp_path / "demo"
    daemon = Daemon(demo_config(folder), notifier=Notifier(None), web=False)
    svc = daemon.start()
    try:
        recorder = Recorder(svc.bus)
        closed_with_a_menu(svc)
        lines_idle(svc)
        lines = svc.extra["lines"]
        with pytest.raises(FrontdeskError, match="not keys"):
            lines.demo_call("+15551234567", press="9x")
        with pytest.raises(FrontdeskError, match="not both"):
            lines.demo_call("+15551234567", line="gsm", say="hi", hang_up_after=3)

        mark = recorder.mark()
        argv = ["demo", "call", "+12015550123", "--name", "JANE DOE", "--press", "2"]
        code = cli.main([*argv, "--say", WORDS, "--data-dir", str(folder)])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "ringing line1" in out and "presses 2" in out and "leaves a message" in out
        done = recorder.wait(CallFinished, timeout=90, since=mark)
        item = svc.history.get(done.record_id)
        assert item is not None and item.outcome == "voicemail", item
        assert item.details["box"] == "sales" and item.details["digits"] == "2"
        data, rate = sf.read(io.BytesIO(svc.store.media.read(item.media[0])), dtype="int16")
        spoken = Tts().speak(WORDS, "en-us", 150).size / 8000
        # The words, after the half second the caller waits, and nothing of the hang-up.
        assert rate == 8000 and spoken <= np.asarray(data).size / 8000 <= spoken + 1.2
        lines_idle(svc)

        mark = recorder.mark()
        code = cli.main(
            ["demo", "call", "+12015550124", "--hang-up-after", "1", "--data-dir", str(folder)]
        )
        assert code == 0 and "hangs up after 1 s" in capsys.readouterr().out
        done = recorder.wait(CallFinished, timeout=60, since=mark)
        item = svc.history.get(done.record_id)
        assert item is not None and item.outcome == "missed", item
        assert item.text == "the caller hung up during the menu" and not item.media
    finally:
        daemon.shutdown()


def test_a_demo_call_on_the_gsm_line_is_heard_like_a_real_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's GSM line (a simulated SIM7600) carries its calls' audio as PCM over its
    USB audio port: the caller hears the greeting and the menu, presses a key (tone and
    +RXDTMF), speaks after the beep and the message is kept and emailed, with a link to
    the demo's page; a silent caller is a missed call "left no message", never "no call
    audio"."""
    monkeypatch.setattr(demo, "SINK_PORT", free_port())
    folder = tmp_path / "demo"
    daemon = Daemon(demo_config(folder), notifier=Notifier(None), web=False)
    svc = daemon.start()
    try:
        recorder = Recorder(svc.bus)
        closed_with_a_menu(svc)
        lines_idle(svc)
        line2 = svc.extra["lines"].line("line2")
        assert "PCM over USB serial" in svc.call_audio.describe(line2)

        mark = recorder.mark()
        argv = ["demo", "call", "+12015550123", "--line", "gsm", "--press", "2"]
        code = cli.main([*argv, "--say", WORDS, "--data-dir", str(folder)])
        out = capsys.readouterr().out
        assert code == 0 and "ringing line2" in out and "leaves a message" in out, out
        done = recorder.wait(CallFinished, timeout=90, since=mark)
        item = svc.history.get(done.record_id)
        assert item is not None and item.outcome == "voicemail", item
        assert item.line == "line2" and item.details["box"] == "sales"
        assert "PCM over USB serial" in item.details["audio"]
        data, rate = sf.read(io.BytesIO(svc.store.media.read(item.media[0])), dtype="int16")
        spoken = Tts().speak(WORDS, "en-us", 150).size / 8000
        # The words, from half a second after the beep, and the second before the hang-up.
        assert rate == 8000 and spoken <= np.asarray(data).size / 8000 <= spoken + 2.5
        sink = svc.extra["demo_mail"]
        deadline = time.monotonic() + 30
        while not sink.messages():
            assert time.monotonic() < deadline, "no voicemail email"
            time.sleep(0.1)
        (mail,) = sink.messages()
        assert mail["Subject"].startswith("Voicemail from (201) 555-0123")
        assert f"http://127.0.0.1:8080/history/{item.id.replace(':', '%3A')}" in (
            mail.get_body(("plain",)).get_content()
        )
        lines_idle(svc)

        mark = recorder.mark()
        assert (
            cli.main(["demo", "call", "+12015550124", "--line", "line2", "--data-dir", str(folder)])
            == 0
        )
        done = recorder.wait(CallFinished, timeout=90, since=mark)
        item = svc.history.get(done.record_id)
        assert item is not None and item.outcome == "missed", item
        assert item.text == "the caller left no message" and "audio" not in item.text
    finally:
        daemon.shutdown()


def test_demo_call_script_options_are_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["demo", "call", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--press KEYS" in text and "--say TEXT" in text and "--hang-up-after SECONDS" in text
