"""Public holidays in a running daemon (`frontdesk run`), through the CLI and the control
socket: the office closes on the configured region's holiday, follows a change of region,
keeps its tables in the data dir, and never computes them in the daemon itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware_app.cli import main
from tests.test_daemon import ROOT, NotifySocket, free_port

pytestmark = pytest.mark.timeout(120)


def explain(cfg: Path, at: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["routing", "explain", "--at", at, "-c", str(cfg)]) == 0
    return capsys.readouterr().out


def business(cfg: Path, tmp_path: Path, subdivision: str) -> None:
    f = tmp_path / "business.toml"
    f.write_text(
        '[business]\nname = "Shop"\ntimezone = "Europe/Berlin"\n'
        f'country = "DE"\nsubdivision = "{subdivision}"\n'
    )
    assert main(["settings", "import", str(f), "-c", str(cfg)]) == 0


def test_a_running_daemon_closes_on_the_regions_holidays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    cfg = tmp_path / "frontdesk.toml"
    cfg.write_text(
        f'[store]\ndata_dir = "{data}"\n[web]\nlisten = "127.0.0.1:{free_port()}"\n'
        '[modem]\ndevices = ["auto"]\n'
    )
    notify = NotifySocket(tmp_path / "notify.sock")
    log = tmp_path / "daemon.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "firmware_app", "run", "--config", str(cfg)],
            env={**os.environ, "NOTIFY_SOCKET": str(notify.path)},
            cwd=ROOT,
            stderr=err,
        )
    try:
        notify.wait_for("READY=1", timeout=60)
        business(cfg, tmp_path, "BY")
        out = explain(cfg, "2026-01-06 10:00", capsys)  # Epiphany: a holiday in Bavaria only
        assert "Closed: Heilige Drei Könige" in out, out
        business(cfg, tmp_path, "BE")
        out = explain(cfg, "2026-01-06 10:00", capsys)
        assert "Heilige Drei Könige" not in out and "Open now" in out, out
        out = explain(cfg, "2027-03-08 11:00", capsys)  # a Monday: Women's Day in Berlin only
        assert "Closed: Frauentag" in out, out
        # The tables of the configured region are kept for a restart (the file is written
        # before the tables are served, and the refresh runs in the background).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            doc = json.loads((data / "holidays.json").read_text())
            places = [(t["country"], t["subdivision"]) for t in doc["tables"]]
            if places[0] == ("DE", "BE") and len(doc["tables"][0]["years"]) >= 4:
                break
            time.sleep(0.1)
        assert places[0] == ("DE", "BE"), places
        assert "BE" in doc["catalogue"]["DE"][1]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            notify.sock.close()
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "computed in the daemon itself" not in text
    assert "built in the daemon itself" not in text
    assert "holiday tables ready" in text
