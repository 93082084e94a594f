"""`frontdesk demo sms`: a text reaches the running demo's simulated SIM7600 as the network
delivers it (a long one in parts, the last first: 4 UCS-2 parts here); the daemon takes it
from the SIM, stores it once and empties the SIM, as for any text. `frontdesk sms send` and
`fax send` reach the demo's daemon with --data-dir."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from firmware_app import cli, demo
from firmware_app.config import demo_config
from firmware_app.daemon import Daemon
from firmware_app.errors import FrontdeskError
from firmware_app.sdnotify import Notifier
from tests.fax.fakes import page_png
from tests.test_daemon import free_port

pytestmark = pytest.mark.timeout(120)

LONG = "Can we move Thursday's appointment to 10:00? The € price stays [the same] 😀 " * 3


def test_demo_sms_from_the_cli_reaches_the_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "SINK_PORT", free_port())
    daemon = Daemon(demo_config(tmp_path / "demo"), notifier=Notifier(None), web=False)
    svc = daemon.start()
    try:
        lines = svc.extra["lines"]
        deadline = time.monotonic() + 15
        while any(s.state != "idle" for s in lines.statuses()):
            assert time.monotonic() < deadline, lines.statuses()
            time.sleep(0.05)
        with pytest.raises(FrontdeskError, match="not a phone number"):
            lines.demo_sms("text me", "hi")
        with pytest.raises(FrontdeskError, match="not a simulated GSM line"):
            lines.demo_sms("+15551234567", "hi", line="line1")  # the USR5637
        argv = ["demo", "sms", "+447700900123", *LONG.split(" ")]
        code = cli.main([*argv, "--data-dir", str(tmp_path / "demo")])
        out = capsys.readouterr().out
        assert code == 0 and "(4 parts) reaches line2" in out, out
        deadline = time.monotonic() + 60
        while not (texts := svc.history.newest(5, where=lambda i: i.channel == "sms")):
            assert time.monotonic() < deadline, "no text record"
            time.sleep(0.1)
        (text,) = texts
        assert (text.direction, text.number, text.line) == ("in", "+447700900123", "line2")
        assert text.text == " ".join(LONG.split(" ")).strip()
        modem = lines._simulators["line2"]
        deadline = time.monotonic() + 30
        while modem.messages():  # each part deleted once it is stored
            assert time.monotonic() < deadline, modem.messages()
            time.sleep(0.1)
        # The demo's daemon answers `sms send` and `fax send` given its --data-dir.
        demo_dir = str(tmp_path / "demo")
        code = cli.main(["sms", "send", "--data-dir", demo_dir, "--to", "+447700900123", "OK!"])
        assert code == 0 and "queued (1 part, GSM-7)" in capsys.readouterr().out
        doc = tmp_path / "letter.png"
        doc.write_bytes(page_png())
        code = cli.main(["fax", "send", "--data-dir", demo_dir, "--to", "+15550100", str(doc)])
        assert code == 0 and "queued (1 page)" in capsys.readouterr().out
    finally:
        daemon.shutdown()
