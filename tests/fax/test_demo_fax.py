"""`frontdesk demo fax`: a simulated fax machine calls the running demo's USR5637 line over a
virtual line; the call is answered for voice, its calling tone hands it to the fax service,
and the sample page is received in Class 1 (a fax record with the page, and its email)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from firmware_app import cli, demo
from firmware_app.config import demo_config
from firmware_app.daemon import Daemon
from firmware_app.errors import FrontdeskError
from firmware_app.sdnotify import Notifier
from tests.calls.test_daemon_call import lines_idle
from tests.fax.fakes import page_png
from tests.test_daemon import free_port

pytestmark = pytest.mark.timeout(120)


def test_demo_fax_from_the_cli_arrives_in_class_1(
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
            lines.demo_fax("fax me")
        with pytest.raises(FrontdeskError, match="Class 1"):
            lines.demo_fax(line="line2")  # the GSM line: no fax
        code = cli.main(["demo", "fax", "+15551239999", "--data-dir", str(tmp_path / "demo")])
        assert code == 0 and "calls line1" in capsys.readouterr().out
        deadline = time.monotonic() + 60
        while True:
            faxes = svc.history.newest(5, where=lambda i: i.channel == "fax")
            if faxes:
                break
            assert time.monotonic() < deadline, "no fax record"
            time.sleep(0.1)
        (fax,) = faxes
        assert (fax.outcome, fax.name, fax.line) == ("received", "+15551239999", "line1")
        assert fax.details["fax_class"] == "1" and fax.details["pages"] == 1
        assert fax.details["damaged_lines"] == 0 and fax.media
        calls = svc.history.newest(5, where=lambda i: i.channel == "call")
        assert [c.outcome for c in calls] == ["fax"]
    finally:
        daemon.shutdown()


def test_a_fax_sent_in_the_demo_is_answered_by_the_simulated_fax_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The demo's analog line has a fax machine at its other end that answers every fax
    call out of it (to any number): `frontdesk fax send` against the demo's daemon dials,
    the machine answers and takes the page, and the fax is sent at the first try."""
    caplog.set_level(logging.INFO, logger="firmware_app.modem.simulator.fax_machine")
    monkeypatch.setattr(demo, "SINK_PORT", free_port())
    folder = tmp_path / "demo"
    daemon = Daemon(demo_config(folder), notifier=Notifier(None), web=False)
    svc = daemon.start()
    try:
        lines_idle(svc)
        doc = tmp_path / "letter.png"
        doc.write_bytes(page_png())
        argv = ["fax", "send", "--to", "+15557654321", str(doc), "--data-dir", str(folder)]
        assert cli.main(argv) == 0
        deadline = time.monotonic() + 90
        while True:
            faxes = svc.history.newest(5, where=lambda i: i.channel == "fax")
            if faxes and faxes[0].outcome in ("sent", "failed"):
                break
            assert time.monotonic() < deadline, faxes
            time.sleep(0.1)
        (fax,) = faxes
        assert (fax.direction, fax.outcome, fax.line) == ("out", "sent", "line1"), fax.details
        assert fax.details["attempts"] == 1 and fax.details["pages"] == 1, fax.details
        assert "simulated fax machine +1 555 0199: received 1 page(s)" in caplog.text
    finally:
        daemon.shutdown()


def test_a_demo_call_after_a_demo_fax_is_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fax machine's calling tone belongs to its call: a demo call while the demo fax
    is still on the line is refused (it would ring over it, and take the fax's place), and
    a demo call once it is over is a call like any other (a silent caller: a missed call),
    not a fax. The daemon keeps nothing of the fax for the next call."""
    monkeypatch.setattr(demo, "SINK_PORT", free_port())
    daemon = Daemon(demo_config(tmp_path / "demo"), notifier=Notifier(None), web=False)
    svc = daemon.start()
    try:
        lines_idle(svc)
        lines = svc.extra["lines"]
        assert lines.demo_fax("+15551239999") == "line1"
        with pytest.raises(FrontdeskError, match="line1 is busy"):
            lines.demo_call("+15551234567")
        deadline = time.monotonic() + 90
        while not (faxes := svc.history.newest(5, where=lambda i: i.channel == "fax")):
            assert time.monotonic() < deadline, "no fax record"
            time.sleep(0.1)
        assert [(f.outcome, f.name) for f in faxes] == [("received", "+15551239999")]
        while True:  # the line is free again once the fax machine has hung up
            try:
                lines.demo_call("+15551234567")
                break
            except FrontdeskError as exc:
                assert "busy" in str(exc) and time.monotonic() < deadline, exc
                time.sleep(0.2)
        while True:
            calls = svc.history.newest(5, where=lambda i: i.channel == "call")
            if len(calls) == 2:
                break
            assert time.monotonic() < deadline, calls
            time.sleep(0.2)
        assert [(c.outcome, c.number) for c in calls] == [
            ("missed", "+15551234567"),
            ("fax", "+15551239999"),
        ]
        assert len(svc.history.newest(5, where=lambda i: i.channel == "fax")) == 1
    finally:
        daemon.shutdown()
