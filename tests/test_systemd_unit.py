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


def _security_offline_supported() -> bool:
    if shutil.which("systemd-analyze") is None:
        return False
    probe = subprocess.run(
        ["systemd-analyze", "security", "--help"], capture_output=True, text=True, timeout=30
    )
    return "--offline" in probe.stdout


@pytest.mark.skipif(
    not _security_offline_supported(),
    reason="systemd-analyze security --offline needs systemd >= 250",
)
def test_security_exposure_stays_low(tmp_path: Path) -> None:
    # hw/README.md reports the score and explains every exposure left; keep them in step.
    unit = tmp_path / "frontdesk.service"
    unit.write_text(UNIT.read_text())
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    score = float(last.split("level for")[1].split(":")[1].split()[0])
    assert score <= 1.5, last
    documented = (Path(__file__).parents[1] / "hw" / "README.md").read_text()
    assert f"{score:.1f}" in documented, "update the score in hw/README.md"


def test_unit_is_ordered_after_time_sync() -> None:
    text = UNIT.read_text()
    assert "time-sync.target" in text
    # Calls are answered from boot: nothing waits for the network to be online.
    directives = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    assert not [ln for ln in directives if "network-online" in ln]
    for line in ("UMask=0077", "SystemCallErrorNumber=EPERM", "DeviceAllow=char-gpiochip rw"):
        assert line in text
