"""The `frontdesk` command: each command, its help, and bad input."""

from __future__ import annotations

import argparse
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_app import __version__
from firmware_app.cli import build_parser, main


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "frontdesk.toml"
    p.write_text(f'[store]\ndata_dir = "{tmp_path / "data"}"\n')
    return p


def run(*argv: str) -> int:
    return main(list(argv))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("version") == 0
    assert capsys.readouterr().out.strip() == f"frontdesk {__version__}"


def test_console_script_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "firmware_app", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("run", "demo", "settings", "version"):
        assert command in out


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command and sub-command of the parser, with its own parser."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*path, name))
    return found


COMMANDS = [path for path, _ in _commands(build_parser())]


def test_the_command_walk_finds_every_command() -> None:
    for expected in [("run",), ("demo", "call"), ("settings", "import"), ("passwd",)]:
        assert expected in COMMANDS
    assert len(COMMANDS) >= 17


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda p: " ".join(p) or "frontdesk")
def test_every_command_has_help(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` works on every command and says what it does and what each option is."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage: frontdesk" in capsys.readouterr().out
    parser = dict(_commands(build_parser()))[argv]
    assert parser.description, argv
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            assert action.help, (argv, action.dest)


def test_demo_usage_shows_the_action_is_optional(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--help"])
    assert "[ACTION ...]" in capsys.readouterr().out


def test_export_to_stdout_and_file(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("settings", "export", "--config", str(config)) == 0
    assert "[business]" in capsys.readouterr().out
    out = tmp_path / "backup.toml"
    assert run("settings", "export", "-c", str(config), "--out", str(out)) == 0
    assert "[email]" in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_export_before_the_first_start_prints_the_defaults_and_makes_no_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "not-yet"
    config = tmp_path / "machine.toml"
    config.write_text(f'[store]\ndata_dir = "{data}"\n')
    assert run("settings", "export", "--config", str(config)) == 0
    out = capsys.readouterr()
    assert "[business]" in out.out and "schema_version" in out.out
    assert "does not exist yet" in out.err and "default settings" in out.err
    assert not data.exists()


def test_export_without_passwords_and_import_keeps_the_saved_ones(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        '[email]\nsmtp_host = "smtp.example.com"\nusername = "fd@example.com"\n'
        'password = "pässwörd-1"\n[mqtt]\nhost = "broker"\npassword = "mq-secret"\n'
        '[lines]\nsim_pin = "4321"\n'
    )
    assert run("settings", "import", str(f), "-c", str(config)) == 0
    capsys.readouterr()
    assert run("settings", "export", "-c", str(config)) == 0
    full = capsys.readouterr().out
    assert 'password = "pässwörd-1"' in full and 'sim_pin = "4321"' in full
    out = tmp_path / "shared.toml"
    args = ["settings", "export", "-c", str(config), "--without-passwords", "--out", str(out)]
    assert run(*args) == 0
    shared = out.read_text()
    assert "pässwörd-1" not in shared and "mq-secret" not in shared and "4321" not in shared
    assert 'smtp_host = "smtp.example.com"' in shared and 'username = "fd@example.com"' in shared
    assert "This copy leaves out the passwords and the SIM PIN" in shared
    # Restoring the copy keeps what the box has.
    assert run("settings", "import", str(out), "-c", str(config)) == 0
    capsys.readouterr()
    assert run("settings", "export", "-c", str(config)) == 0
    again = capsys.readouterr().out
    assert 'password = "pässwörd-1"' in again and 'password = "mq-secret"' in again
    assert 'sim_pin = "4321"' in again


def test_import_then_export(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[business]\nname = "Corner Shop"\ncountry = "GB"\ntimezone = "Europe/London"\n')
    assert run("settings", "import", str(f), "-c", str(config)) == 0
    assert "business.name: 'My Business' -> 'Corner Shop'" in capsys.readouterr().out
    assert run("settings", "export", "-c", str(config)) == 0
    assert 'name = "Corner Shop"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '[business]\nname = ""\n',
            "business.name: '' is not allowed; expected 1 to 80 characters",
        ),
        ("[business]\nmotto = 'x'\n", "business.motto: 'x' is not allowed; expected a known field"),
        ("[business\n", "valid TOML"),
        (
            "[email]\nsmtp_port = 'x'\n",
            "email.smtp_port: 'x' is not allowed; expected a whole number",
        ),
        (
            "schema_version = 99\n",
            "bad.toml is not valid; nothing was changed:\n  - schema_version: 99 is not "
            "allowed; expected 1 to 3 (a file from a newer Frontdesk: update this one first)",
        ),
    ],
)
def test_import_bad_file_changes_nothing(
    config: Path, tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(content)
    assert run("settings", "import", str(f), "-c", str(config)) == 2
    err = capsys.readouterr().err
    assert message in err and "nothing was changed" in err
    assert not (tmp_path / "data").exists()  # nothing was even opened


def test_import_missing_file(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("settings", "import", "/nonexistent/s.toml", "-c", str(config)) == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_machine_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("[web]\nport = 80\n")
    assert run("run", "--config", str(bad)) == 2
    err = capsys.readouterr().err
    assert f"frontdesk: the machine config {bad} is not valid:\n" in err
    assert "web.port: 80 is not allowed" in err and "nothing was changed" not in err
    assert run("settings", "export", "-c", str(tmp_path / "missing.toml")) == 2
    assert "an existing file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "data_dir"),
    [
        (["demo", "--data-dir", "/tmp/X", "call", "123"], "/tmp/X"),
        (["demo", "call", "123", "--data-dir", "/tmp/Y"], "/tmp/Y"),
        (["demo", "call", "123"], "demo-data"),
        (["demo", "--data-dir", "/tmp/X"], "/tmp/X"),
    ],
)
def test_demo_call_rings_the_demo_in_the_given_data_dir(argv: list[str], data_dir: str) -> None:
    from firmware_app.cli import build_parser

    assert build_parser().parse_args(argv).data_dir == data_dir


@pytest.mark.parametrize("action", [["call", "+15551234567"], ["fax"], ["sms", "+1555", "hi"]])
def test_demo_actions_without_a_running_demo_say_how_to_start_one(
    tmp_path: Path, action: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("demo", "--data-dir", str(tmp_path / "d"), *action) == 1
    err = capsys.readouterr().err
    assert f"no demo is running in {tmp_path / 'd'}: start it first" in err
    assert f"`frontdesk demo --data-dir {tmp_path / 'd'}`" in err
