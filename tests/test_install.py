"""The installer scripts: shell syntax, idempotence on a temporary prefix (no root, no network:
a stand-in Python records what would be built), dry runs, uninstall keeping data, the
pi-gen stage, and the udev rules (our own checker, plus `udevadm verify` where udev has it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.udev_lint import Device, apply_rules, lint_rules

ROOT = Path(__file__).parents[1]
IMAGE_BUILD = ROOT / "image-build"
RULES = sorted((ROOT / "hw" / "udev").glob("*.rules"))
SCRIPTS = sorted(
    p for p in IMAGE_BUILD.rglob("*") if p.suffix == ".sh" or p.name.startswith("frontdesk-")
)

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")

FAKE_PYTHON = """\
#!{python}
# Stands in for python3 and the virtualenv's python: records each call, builds nothing.
import os, sys
from pathlib import Path
with open(os.environ["FAKE_PYTHON_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[:1] == ["--version"]:
    print("Python 3.11.2")
elif args[:2] == ["-m", "venv"]:
    bin_dir = Path(args[2]) / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(Path(sys.argv[0]).read_text())
    (bin_dir / "python").chmod(0o755)
"""


def source_tree(tmp_path: Path) -> Path:
    """The files install.sh reads, in a tree of their own (so a test can change one)."""
    src = tmp_path / "src"
    for rel in (
        "image-build/install.sh",
        "image-build/uninstall.sh",
        "firmware_app/frontdesk.example.toml",
        "systemd/frontdesk.service",
        "README.md",
        "scripts/system-deps.sh",
        *[str(r.relative_to(ROOT)) for r in RULES],
    ):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    return src


def env_for(tmp_path: Path) -> dict[str, str]:
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    target = tmp_path / "target"
    return {
        **os.environ,
        "FRONTDESK_PREFIX": str(target / "opt" / "frontdesk"),
        "FRONTDESK_ETC": str(target / "etc" / "frontdesk"),
        "FRONTDESK_UNIT_DIR": str(target / "etc" / "systemd" / "system"),
        "FRONTDESK_UDEV_DIR": str(target / "etc" / "udev" / "rules.d"),
        "FRONTDESK_DATA": str(target / "var" / "lib" / "frontdesk"),
        "FRONTDESK_PYTHON": str(fake),
        "FAKE_PYTHON_LOG": str(tmp_path / "python.log"),
    }


def run(script: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def pip_installs(tmp_path: Path) -> int:
    log = tmp_path / "python.log"
    return log.read_text().count("-m pip install -q /") if log.exists() else 0


@needs_bash
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_parse(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0


@needs_bash
def test_install_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    src, env = source_tree(tmp_path), env_for(tmp_path)
    target = tmp_path / "target"
    first = run(src / "image-build/install.sh", env, "--no-system")
    assert "installed (" in first
    assert pip_installs(tmp_path) == 1
    assert (target / "etc/frontdesk/frontdesk.toml").read_bytes() == (
        ROOT / "firmware_app/frontdesk.example.toml"
    ).read_bytes()
    assert (target / "etc/systemd/system/frontdesk.service").is_file()
    assert (target / "etc/udev/rules.d/70-frontdesk-modems.rules").is_file()
    assert (target / "opt/frontdesk/src/systemd/frontdesk.service").is_file()

    second = run(src / "image-build/install.sh", env, "--no-system")
    assert "nothing to change" in second, second
    assert pip_installs(tmp_path) == 1  # the virtualenv was not rebuilt

    # The owner's config is kept; a changed source is reinstalled, the venv reused.
    config = target / "etc/frontdesk/frontdesk.toml"
    config.write_text('[log]\nlevel = "debug"\n')
    (src / "README.md").write_text("changed\n")
    third = run(src / "image-build/install.sh", env, "--no-system")
    assert "copy the source" in third and "create the virtualenv" not in third
    assert pip_installs(tmp_path) == 2
    assert config.read_text() == '[log]\nlevel = "debug"\n'
    assert "nothing to change" in run(src / "image-build/install.sh", env, "--no-system")


@needs_bash
def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    src, env = source_tree(tmp_path), env_for(tmp_path)
    out = run(src / "image-build/install.sh", env, "--no-system", "--dry-run")
    assert "would: install" in out and "dry run: nothing changed" in out
    assert not (tmp_path / "target").exists()
    assert not (tmp_path / "python.log").exists() or pip_installs(tmp_path) == 0


@needs_bash
def test_a_unit_change_is_installed_and_reported(tmp_path: Path) -> None:
    src, env = source_tree(tmp_path), env_for(tmp_path)
    run(src / "image-build/install.sh", env, "--no-system")
    unit = src / "systemd/frontdesk.service"
    unit.write_text(unit.read_text() + "# local change\n")
    out = run(src / "image-build/install.sh", env, "--no-system", "--dry-run")
    assert "would: install" in out and "frontdesk.service" in out


@needs_bash
def test_uninstall_keeps_data_unless_purged(tmp_path: Path) -> None:
    src, env = source_tree(tmp_path), env_for(tmp_path)
    target = tmp_path / "target"
    run(src / "image-build/install.sh", env, "--no-system")
    data = target / "var/lib/frontdesk"
    data.mkdir(parents=True)
    (data / "settings.json").write_text("{}")
    out = run(src / "image-build/uninstall.sh", env, "--no-system")
    assert "Kept:" in out
    assert not (target / "opt/frontdesk").exists()
    assert not (target / "etc/systemd/system/frontdesk.service").exists()
    assert not (target / "etc/udev/rules.d/70-frontdesk-modems.rules").exists()
    assert (data / "settings.json").exists() and (target / "etc/frontdesk/frontdesk.toml").exists()
    assert "nothing to remove" in run(src / "image-build/uninstall.sh", env, "--no-system")
    run(src / "image-build/uninstall.sh", env, "--no-system", "--purge")
    assert not data.exists() and not (target / "etc/frontdesk").exists()


@needs_bash
def test_install_needs_root_for_a_real_install(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: the refusal cannot be seen")
    result = subprocess.run(
        ["bash", str(IMAGE_BUILD / "install.sh")], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1 and "run me as root" in result.stderr


def test_pigen_stage_uses_the_installer_without_start() -> None:
    stage = IMAGE_BUILD / "stage-frontdesk"
    chroot = (stage / "00-frontdesk" / "00-run-chroot.sh").read_text()
    assert "install.sh --no-start" in chroot
    assert os.access(stage / "prerun.sh", os.X_OK)
    assert os.access(stage / "00-frontdesk" / "00-run.sh", os.X_OK)
    assert "avahi-daemon" in (stage / "00-frontdesk" / "00-packages").read_text()
    firstboot = (IMAGE_BUILD / "firstboot" / "frontdesk-firstboot.service").read_text()
    assert "Before=frontdesk.service" in firstboot and "ssh.service" in firstboot


# -- udev rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rules", RULES, ids=lambda p: p.name)
def test_udev_rules_pass_our_checker(rules: Path) -> None:
    assert lint_rules(rules.read_text()) == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('SUBSYSTEM=="tty", ATTRS{idVendor}=="0baf" GROUP="dialout"', "comma"),
        ('SUBSYSTEM="tty", GROUP="dialout"', "match key with ="),
        ('SUBSYSTEM=="tty", GROUP=="dialout"', "assignment key with =="),
        ('SUBSYSTEM=="tty", MODE="0660', "quote"),
        ('SUBSYSTEM=="tty", SYMLNK+="x"', "unknown key"),
        ('SUBSYSTEM=="tty", ATTRS{idVendor}=="0BAF", MODE="0660"', "lower-case"),
        ('ACTION=="add", GROUP="dialout"', "SUBSYSTEM"),
        ('SUBSYSTEM=="tty", ENV{ID_MODEL_ID}=="90A1", MODE="0660"', "lower-case"),
        ('SUBSYSTEM=="tty", GOTO="nowhere"', "no LABEL"),
        # The mistake that hid the SIM7600 and EC25 names: ids and interface in one rule.
        (
            'SUBSYSTEM=="tty", ATTRS{idVendor}=="1e0e", ATTRS{idProduct}=="9001", '
            'ATTRS{bInterfaceNumber}=="02", SYMLINK+="frontdesk-sim7600"',
            "same device",
        ),
    ],
)
def test_udev_checker_catches_mistakes(line: str, problem: str) -> None:
    found = lint_rules(line + "\n")
    assert found and problem in found[0], found


MODEMS = {  # name: (vendor, product, {interface: expected stable name})
    "usr5637": ("0baf", "0303", {"00": "frontdesk-usr5637"}),
    "zoom3095": ("0803", "3095", {"00": "frontdesk-cx93010"}),
    "cx93010": ("0572", "1329", {"00": "frontdesk-cx93010"}),
    "mt9234mu": ("06e0", "f114", {"00": "frontdesk-mt9234mu"}),
    "sim7600": (
        "1e0e",
        "9001",
        {"00": None, "01": None, "02": "frontdesk-sim7600", "03": None},
    ),
    "sim7600-audio": ("1e0e", "9001", {"04": "frontdesk-sim7600-audio"}),
    "ec25": ("2c7c", "0125", {"00": None, "01": None, "02": "frontdesk-ec25", "03": None}),
    "e1752": ("12d1", "1436", {"00": None, "01": None, "02": None}),
}


def tty(vendor: str, product: str, interface: str, *, imported: bool) -> Device:
    """A USB serial port as udev sees it: tty <- usb-serial <- usb_interface <- usb_device.
    `imported`: 60-serial.rules has run usb_id already (the properties are there)."""
    ids = {
        "ID_BUS": "usb",
        "ID_VENDOR_ID": vendor,
        "ID_MODEL_ID": product,
        "ID_USB_INTERFACE_NUM": interface,
    }
    return Device(
        "tty",
        attrs={"dev": "188:2"},
        parents=[
            ("usb-serial", {"port_number": "0"}),
            ("usb", {"bInterfaceNumber": interface, "bInterfaceClass": "ff"}),
            ("usb", {"idVendor": vendor, "idProduct": product, "busnum": "1"}),
        ],
        env=dict(ids) if imported else {},
        usb_id=ids,
    )


@pytest.mark.parametrize("imported", [True, False], ids=["after-60-serial", "on-its-own"])
@pytest.mark.parametrize("model", list(MODEMS))
def test_udev_rules_name_each_port_and_keep_modemmanager_away(model: str, imported: bool) -> None:
    rules = (ROOT / "hw" / "udev" / "70-frontdesk-modems.rules").read_text()
    vendor, product, ports = MODEMS[model]
    for interface, name in ports.items():
        result = apply_rules(rules, tty(vendor, product, interface, imported=imported))
        assert result.symlinks == ([name] if name else []), (model, interface, result)
        assert result.env.get("ID_MM_DEVICE_IGNORE") == "1", (model, interface)
        assert (result.group, result.mode) == ("dialout", "0660"), (model, interface)
    # The USB device itself: ModemManager leaves every port of it alone (QMI, wwan too).
    device = Device("usb", attrs={"idVendor": vendor, "idProduct": product})
    device.env["DEVTYPE"] = "usb_device"
    assert apply_rules(rules, device).env.get("ID_MM_DEVICE_IGNORE") == "1", model


def test_udev_rules_leave_other_devices_and_removals_alone() -> None:
    rules = (ROOT / "hw" / "udev" / "70-frontdesk-modems.rules").read_text()
    ftdi = apply_rules(rules, tty("0403", "6001", "00", imported=True))
    assert ftdi.symlinks == [] and "ID_MM_DEVICE_IGNORE" not in ftdi.env and not ftdi.group
    gone = tty("1e0e", "9001", "02", imported=True)
    gone.action = "remove"
    assert apply_rules(rules, gone).symlinks == []
    interface = Device("usb", attrs={"bInterfaceNumber": "02"}, env={"DEVTYPE": "usb_interface"})
    assert "ID_MM_DEVICE_IGNORE" not in apply_rules(rules, interface).env


def test_the_model_shows_why_the_old_rule_never_matched() -> None:
    old = (
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="1e0e", ATTRS{idProduct}=="9001", '
        'ATTRS{bInterfaceNumber}=="02", SYMLINK+="frontdesk-sim7600"\n'
    )
    assert apply_rules(old, tty("1e0e", "9001", "02", imported=True)).symlinks == []


def test_udev_rules_cover_the_supported_modems() -> None:
    text = "\n".join(r.read_text() for r in RULES)
    table = (ROOT / "hw" / "README.md").read_text()
    for usb_id in ("0baf:0303", "0572:1329", "06e0:f114", "1e0e:9001", "2c7c:0125", "12d1:1001"):
        vendor, product = usb_id.split(":")
        assert f'ATTR{{idVendor}}=="{vendor}"' in text and product in text, usb_id
        assert f'ENV{{ID_VENDOR_ID}}=="{vendor}"' in text, usb_id
        assert usb_id in table, usb_id


def _udevadm_has_verify() -> bool:
    if shutil.which("udevadm") is None:
        return False
    probe = subprocess.run(["udevadm", "verify", "--help"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(
    not _udevadm_has_verify(),
    reason="`udevadm verify` needs systemd/udev >= 254 (Debian bookworm has 252)",
)
@pytest.mark.parametrize("rules", RULES, ids=lambda p: p.name)
def test_udevadm_verify(rules: Path) -> None:
    result = subprocess.run(
        ["udevadm", "verify", "--resolve-names=never", str(rules)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_udev_lint_command_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rules"
    bad.write_text(textwrap.dedent('SUBSYSTEM="tty", MODE="0660"\n'))
    lint = [sys.executable, str(ROOT / "tests" / "udev_lint.py")]
    assert subprocess.run([*lint, str(RULES[0])], timeout=30).returncode == 0
    assert subprocess.run([*lint, str(bad)], capture_output=True, timeout=30).returncode == 1
