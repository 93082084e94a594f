"""The shipped systemd unit passes `systemd-analyze verify` (where systemd is installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[1] / "systemd" / "frontdesk.service"


def test_unit_has_the_essentials() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=frontdesk",
        "SupplementaryGroups=dialout audio gpio",
        "StateDirectory=frontdesk",
        "ConfigurationDirectory=frontdesk",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
    ):
        assert line in text


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # Point ExecStart at this checkout's command and run as an existing user, so verify checks
    # the unit itself rather than the installed layout.
    frontdesk = Path(sys.executable).with_name("frontdesk")
    text = UNIT.read_text().replace("/opt/frontdesk/venv/bin/frontdesk", str(frontdesk))
    text = text.replace("User=frontdesk", "User=root").replace("Group=frontdesk", "Group=root")
    unit = tmp_path / "frontdesk.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [ln for ln in result.stderr.splitlines() if "frontdesk.service" in ln]
    assert result.returncode == 0 and not problems, result.stderr
