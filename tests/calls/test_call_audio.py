"""Which audio path a GSM line's calls take: the configured PCM port, the one detection finds
beside the AT port (by-id names or sysfs), or the sound card; none for analog lines."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from firmware_app.calls.audio import AudioPath, CallAudio
from firmware_app.config import AudioConfig
from firmware_app.events import EventBus
from firmware_app.modem.detect import Profile, pcm_port_for, sibling_ports


def profile(vendor: str, model: str, kind: str = "gsm") -> Profile:
    return Profile(port="", kind=kind, title=model, model=model, vendor=vendor)  # type: ignore[arg-type]


def by_id(tmp_path: Path, device: str, interfaces: range) -> dict[int, Path]:
    folder = tmp_path / "by-id"
    folder.mkdir(exist_ok=True)
    out = {}
    for n in interfaces:
        path = folder / f"{device}-if{n:02d}-port0"
        path.write_text("")
        out[n] = path
    return out


@pytest.mark.parametrize(
    ("vendor", "model", "at_port", "audio_port"),
    [
        ("simcom", "SIMCOM_SIM7600E-H", 2, 4),
        ("quectel", "EC25", 2, 1),
        ("huawei", "E1752", 2, 1),
        ("simcom", "SIMCOM_SIM800", 0, None),  # analog audio: a sound card, no PCM port
    ],
)
def test_pcm_port_beside_the_at_port_by_id(
    tmp_path: Path, vendor: str, model: str, at_port: int, audio_port: int | None
) -> None:
    ports = by_id(tmp_path, f"usb-Maker_{model}_0123", range(5))
    found = pcm_port_for(profile(vendor, model), str(ports[at_port]))
    assert found == ("" if audio_port is None else str(ports[audio_port]))


def test_pcm_port_through_sysfs(tmp_path: Path) -> None:
    sys = tmp_path / "sys"
    usb = sys / "devices" / "usb1" / "1-1"
    for n in range(5):
        interface = usb / f"1-1:1.{n}"
        (interface / f"ttyUSB{n}").mkdir(parents=True)
        (interface / "bInterfaceNumber").write_text(f"{n:02x}\n")
    (sys / "class" / "tty" / "ttyUSB2").mkdir(parents=True)
    (sys / "class" / "tty" / "ttyUSB2" / "device").symlink_to(usb / "1-1:1.2" / "ttyUSB2")
    assert sibling_ports("/dev/ttyUSB2", sys_root=sys)[4] == "/dev/ttyUSB4"
    found = pcm_port_for(profile("simcom", "SIM7600"), "/dev/ttyUSB2", sys_root=sys)
    assert found == "/dev/ttyUSB4"
    assert sibling_ports("/dev/ttyUSB9", sys_root=sys) == {}


def line(name: str, prof: Profile | None, port: str = "/dev/ttyUSB2") -> Any:
    return SimpleNamespace(name=name, profile=prof, port=port)


def test_which_path_a_line_takes(tmp_path: Path) -> None:
    config = AudioConfig(device="plughw:CARD=Device", pcm_port=["/dev/pcm1", "none", "auto"])
    audio = CallAudio(EventBus(), config, sys_root=tmp_path)
    sim7600 = profile("simcom", "SIM7600")
    assert audio.path(line("line1", sim7600)) == AudioPath("serial", "/dev/pcm1", "simcom")
    sound = AudioPath("sound_card", "plughw:CARD=Device", "simcom")
    assert audio.path(line("line2", sim7600)) == sound  # "none": the sound card
    assert audio.path(line("line3", sim7600)) == sound  # "auto", nothing found
    assert audio.path(line("line1", profile("usr", "USR5637", "analog"))) is None
    assert audio.path(line("line1", None)) is None
    assert audio.can_carry(line("line2", sim7600))
    nothing = CallAudio(EventBus(), AudioConfig(), sys_root=tmp_path)
    assert nothing.path(line("line1", profile("simcom", "SIM800"))) is None
    assert "audio.pcm_port" in nothing.describe(line("line1", profile("simcom", "SIM800")))
    assert nothing.channel(line("line1", profile("simcom", "SIM800"))) is None
