"""Lines as the product uses them: the call decision, the lines service, the demo call from
the CLI through the daemon's control socket, and the Lines page and API."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware_app import cli, demo
from firmware_app.config import demo_config
from firmware_app.daemon import Daemon
from firmware_app.events import EventBus
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line
from firmware_app.modem.simulator import CallerId, SimulatedModem
from firmware_app.sdnotify import Notifier
from firmware_app.services import Services
from firmware_app.services.calls import CallService, HangUpAfter
from firmware_app.services.lines import LineFinder, LinesService
from firmware_app.settings import Settings
from tests.modem.conftest import FAST, Recorder
from tests.test_daemon import free_port
from tests.web.conftest import (  # noqa: F401 - fixtures
    Owner,
    app,
    client,
    fast_hash,
    logged_in,
    owner,
    services,
)

pytestmark = pytest.mark.timeout(30)

DEMO = dataclasses.replace(FAST, idle_after=3.0)  # demo rings come 2 s apart


def settings_with(**rules: object) -> Settings:
    s = Settings()
    return dataclasses.replace(s, rules=dataclasses.replace(s.rules, **rules))


@pytest.mark.parametrize(
    ("personality", "number", "expected"),
    [
        ("usr5637", "5551234567", ["AT+FCLASS=8;+VLS=1", "ATH", "AT+FCLASS=0"]),
        ("usr5637", "5550000666", ["ATH1", "ATH0"]),  # blocked: pick up and put down
        ("sim800", "+15550000666", ["AT+CHUP"]),  # blocked: declined
        ("sim800", "+15551234567", ["ATA", "AT+CHUP"]),
    ],
)
def test_call_service_answers_or_rejects(
    personality: str,
    number: str,
    expected: list[str],
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    bus: EventBus,
    recorder: Recorder,
) -> None:
    settings = settings_with(block=["5550000666", "+15550000666"], office_phone=False)
    modem = make_modem(personality)
    line = make_line(modem.path, settings.lines)
    calls = CallService(
        bus,
        lambda: settings,
        {"line1": line}.get,
        lambda: datetime.now(UTC),
        session=HangUpAfter(0.2),
    )
    calls.subscribe()
    recorder.wait(ev.LineUp)
    seen = len(modem.commands)
    modem.ring(CallerId(number=number), rings=4, interval=0.3)
    recorder.wait(ev.CallEnded, timeout=8)
    health = ("AT", "AT+VCID?", "AT+CSQ", "AT+CREG?", "AT+COPS?", "AT+CLIP?")
    sent = [c for c in modem.commands[seen:] if c not in health]
    assert sent == expected
    decision = calls.recent()[0]
    assert decision.action == ("reject" if "0666" in number else "answer")
    assert decision.rule == ("block" if "0666" in number else "schedule")
    calls.close()


def test_lines_service_builds_simulated_lines_and_rings_the_demo(tmp_path: Path) -> None:
    bus = EventBus()
    recorder = Recorder(bus)
    config = demo_config(tmp_path)
    service = LinesService.from_config(config, bus, Settings().lines.__class__, options=DEMO)
    try:
        assert [line.name for line in service.lines()] == ["line1", "line2"]
        for worker in service.workers():
            worker.start()
        recorder.wait(ev.LineUp, lambda e: e.line == "line1")
        recorder.wait(ev.LineUp, lambda e: e.line == "line2")
        assert (tmp_path / "sim" / "tty-usr5637-1").is_symlink()
        assert service.demo_call("+15551234567", "DEMO") == "line1"
        call = recorder.wait(ev.IncomingCall)
        assert (call.line, call.number, call.name) == ("line1", "+15551234567", "DEMO")
        states = {d["name"]: d for d in service.as_dicts()}
        assert states["line1"]["kind"] == "analog" and states["line2"]["kind"] == "gsm"
        assert states["line2"]["operator"] == "Frontdesk Mobile"
        with pytest.raises(Exception, match="not a phone number"):
            service.demo_call("call me")
    finally:
        for worker in service.workers():
            worker.stop()
        for worker in service.workers():
            worker.join(2)
        service.close()


def test_demo_call_from_the_cli_reaches_a_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "SINK_PORT", free_port())
    daemon = Daemon(demo_config(tmp_path / "demo"), notifier=Notifier(None), web=False)
    svc = daemon.start()
    try:
        recorder = Recorder(svc.bus)
        deadline = time.monotonic() + 10
        while any(s.state != "idle" for s in svc.extra["lines"].statuses()):
            assert time.monotonic() < deadline, svc.extra["lines"].statuses()
            time.sleep(0.05)
        code = cli.main(["demo", "call", "+15551234567", "--data-dir", str(tmp_path / "demo")])
        assert code == 0
        assert "ringing line1" in capsys.readouterr().out
        call = recorder.wait(ev.IncomingCall, timeout=10)
        assert call.number == "+15551234567"
        recorder.wait(ev.CallAnswered, timeout=10)
        assert svc.extra["calls"].recent()[0].action == "answer"
        assert cli.main(["modem", "probe", "--config", str(_config_file(tmp_path))]) == 0
        assert "line1 (in_call): USR5637" in capsys.readouterr().out
    finally:
        daemon.shutdown()


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "frontdesk.toml"
    path.write_text(f'[store]\ndata_dir = "{tmp_path / "demo"}"\n', encoding="utf-8")
    return path


# --- auto detection --------------------------------------------------------------------------


def _finder(
    tmp_path: Path, bus: EventBus, reserved: tuple[str, ...] = ()
) -> tuple[LinesService, LineFinder]:
    service = LinesService(bus, lambda: Settings().lines, data_dir=tmp_path, options=FAST)
    service.reserved = reserved
    return service, LineFinder(service, (str(tmp_path / "dev" / "tty-*"),))


def _stop_all(service: LinesService) -> None:
    for line in service.lines():
        line.stop()
    for line in service.lines():
        line.join(2)
    service.close()


def test_a_multi_port_modem_is_one_line_scan_after_scan(
    make_modem: Callable[..., SimulatedModem], tmp_path: Path, bus: EventBus, recorder: Recorder
) -> None:
    modem = make_modem("e1752", urc_interval=0.2)
    service, finder = _finder(tmp_path, bus)
    try:
        first = finder.scan()
        assert [(line.name, line.port) for line in first] == [("line1", str(modem.urc_path))]
        recorder.wait(ev.LineUp, lambda e: e.line == "line1")
        # Once the line is up (and has probed its port again), later scans leave the
        # modem's other ports alone: still one line, and no probe on them.
        seen = len(modem.commands)
        assert finder.scan() == []
        assert finder.scan() == []
        assert [line.name for line in service.lines()] == ["line1"]
        profile = service.lines()[0].profile
        ports = {str(p) for p in modem.paths if p.exists()}
        assert profile is not None and set(profile.ports) == ports
        assert "ATI" not in modem.commands[seen:]
    finally:
        _stop_all(service)


def test_the_finder_never_probes_a_reserved_pcm_port(
    make_modem: Callable[..., SimulatedModem], tmp_path: Path, bus: EventBus, recorder: Recorder
) -> None:
    modem = make_modem("sim7600")
    audio = modem.pcm_audio()  # tty-sim7600-pcm: call audio, named in audio.pcm_port
    service, finder = _finder(tmp_path, bus, reserved=(str(audio.link),))
    try:
        assert [line.port for line in finder.scan()] == [str(modem.path)]
        recorder.wait(ev.LineUp, lambda e: e.line == "line1")
        assert finder.scan() == []
        assert bytes(audio.heard) == b""
    finally:
        _stop_all(service)


def test_pcm_ports_in_the_config_are_reserved(tmp_path: Path) -> None:
    from firmware_app.config import AudioConfig, MachineConfig, ModemConfig, StoreConfig

    config = MachineConfig(
        modem=ModemConfig(devices=["auto"]),
        store=StoreConfig(data_dir=str(tmp_path)),
        audio=AudioConfig(pcm_port=["/dev/ttyUSB4", "auto", "none", ""]),
    )
    service = LinesService.from_config(config, EventBus(), lambda: Settings().lines)
    assert service.reserved == ("/dev/ttyUSB4",)
    assert service.finder is not None


# --- frontdesk modem probe with no daemon running ----------------------------------------


def _probe_config(tmp_path: Path, devices: list[str]) -> Path:
    path = tmp_path / "probe.toml"
    listed = ", ".join(f'"{d}"' for d in devices)
    path.write_text(
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n[modem]\ndevices = [{listed}]\n',
        encoding="utf-8",
    )
    return path


def test_modem_probe_describes_the_devices_given(
    make_modem: Callable[..., SimulatedModem],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    modem = make_modem("sim800", pin="1234")
    missing = tmp_path / "no-such-port"
    config = _probe_config(tmp_path, ["auto"])
    code = cli.main(["modem", "probe", "--config", str(config), str(modem.path), str(missing)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"SIMCom SIM800 on {modem.path}: GSM line, caller ID, SMS" in out
    assert "SIM needs its PIN" in out
    assert f"{missing}: cannot open {missing}: there is no such port" in out


def test_modem_probe_says_why_a_port_does_not_open(
    make_modem: Callable[..., SimulatedModem],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A port another program holds (here: the running daemon, which locks its data dir
    and its ports) is said to be in use, with the way to see the daemon's lines; nothing
    probed is a failure."""
    import fcntl

    import serial

    modem = make_modem("usr5637")
    config = _probe_config(tmp_path, ["auto"])
    holder = serial.Serial(str(modem.path), 115200, exclusive=True)
    (tmp_path / "data").mkdir()
    with open(tmp_path / "data" / "frontdesk.lock", "w") as lock:  # the daemon's data lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            code = cli.main(["modem", "probe", "--config", str(config), str(modem.path)])
        finally:
            holder.close()
    out = capsys.readouterr().out
    assert code == 1
    assert f"{modem.path}: cannot open {modem.path}: another program has it open" in out
    assert "without a DEVICE shows its lines" in out
    # Free again: probed, and a success.
    assert cli.main(["modem", "probe", "--config", str(config), str(modem.path)]) == 0
    assert f"USR5637 on {modem.path}: analog line" in capsys.readouterr().out


def test_modem_probe_auto_finds_every_modem(
    make_modem: Callable[..., SimulatedModem],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from firmware_app.modem import detect

    real = detect.find_modems
    looked: list[Path] = []

    def find_here(**options: object) -> list[detect.Profile]:
        # /dev/serial/by-id, /dev/ttyACM*, /dev/ttyUSB* stand for the simulator's folder
        folder = looked[-1]
        return real([str(folder / "tty-*")], listen=0.3, timeout=0.3)

    monkeypatch.setattr(detect, "find_modems", find_here)
    config = _probe_config(tmp_path, ["auto"])
    looked.append(tmp_path / "empty")
    assert cli.main(["modem", "probe", "--config", str(config)]) == 1
    assert "No modem found" in capsys.readouterr().out
    usr = make_modem("usr5637")
    huawei = make_modem("e1752", quirks={"urc_flood": False})
    looked.append(tmp_path / "dev")
    assert cli.main(["modem", "probe", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"USR5637 on {usr.path}: analog line, voice (u-law 8 kHz), fax Class 1, caller ID" in out
    assert any(line.startswith(f"Huawei E1752 on {huawei.urc_path}: GSM line") for line in out)
    assert len(out) == 2  # one line per modem, not per port


# --- the Lines page and API -----------------------------------------------------------------


@pytest.fixture
def with_lines(services: Services, tmp_path: Path) -> Iterator[LinesService]:  # noqa: F811
    config = demo_config(tmp_path / "d")
    lines = LinesService.from_config(config, services.bus, lambda: Settings().lines, options=DEMO)
    recorder = Recorder(services.bus)
    for worker in lines.workers():
        worker.start()
    recorder.wait(ev.LineUp, lambda e: e.line == "line1")
    recorder.wait(ev.LineUp, lambda e: e.line == "line2")
    services.extra["lines"] = lines
    yield lines
    for worker in lines.workers():
        worker.stop()
    for worker in lines.workers():
        worker.join(2)
    lines.close()


def test_lines_page_shows_each_line(logged_in: Owner, with_lines: LinesService) -> None:  # noqa: F811
    page = logged_in.client.get("/lines/").get_data(as_text=True)
    assert "USR5637" in page and "SIMCom SIM7600" in page
    assert "voice (u-law 8 kHz)" in page and "Frontdesk Mobile" in page
    assert "-73 dBm" in page and "Ready" in page
    assert "lines.js" in page and "<script>" not in page
    fragment = logged_in.client.get("/lines/list").get_data(as_text=True)
    assert "USR5637" in fragment and "<html" not in fragment
    home = logged_in.client.get("/").get_data(as_text=True)
    assert 'href="/lines/"' in home


def test_demo_button_rings_the_line(
    logged_in: Owner,  # noqa: F811
    with_lines: LinesService,
    services: Services,  # noqa: F811
) -> None:
    recorder = Recorder(services.bus)
    response = logged_in.post(
        "/lines/demo-call", {"number": "+15557654321", "name": "WEB"}, token_from="/lines/"
    )
    assert response.status_code == 302
    assert recorder.wait(ev.IncomingCall).number == "+15557654321"
    page = logged_in.client.get("/lines/").get_data(as_text=True)
    assert "Ringing line1" in page
    response = logged_in.post("/lines/demo-call", {"number": "nope"}, token_from="/lines/")
    page = logged_in.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "No call placed" in page


def test_lines_api(
    logged_in: Owner,  # noqa: F811
    with_lines: LinesService,
    services: Services,  # noqa: F811
) -> None:
    _, secret = services.auth.create_token("lines test")
    api = logged_in.client.application.test_client()
    assert api.get("/api/v1/lines").status_code == 401
    body = api.get("/api/v1/lines", headers={"Authorization": f"Bearer {secret}"}).json
    names = [(line["name"], line["kind"], line["state"]) for line in body["lines"]]
    assert names == [("line1", "analog", "idle"), ("line2", "gsm", "idle")]
    assert re.match(r"\d{4}-\d\d-\d\dT", body["lines"][0]["since"])
