"""`frontdesk passwd`: straight into the store, or through the running daemon's socket."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_app.cli import main
from firmware_app.config import load_config
from firmware_app.daemon import Daemon
from firmware_app.events import EventBus
from firmware_app.services import Services
from firmware_app.store import Store


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    p = tmp_path / "frontdesk.toml"
    p.write_text(f'[store]\ndata_dir = "{tmp_path / "data"}"\n')
    return p


def _check(config_file: Path, password: str) -> bool:
    config = load_config(config_file)
    store = Store(config.data_dir)
    try:
        return Services.build(config, store, EventBus()).auth.check_password(password)
    finally:
        store.close()


def test_passwd_from_stdin_without_daemon(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a new owner password\n"))
    assert main(["passwd", "--stdin", "-c", str(config_file)]) == 0
    assert "owner password set" in capsys.readouterr().out
    assert _check(config_file, "a new owner password")


def test_passwd_asks_twice_on_the_terminal(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["typed once ok", "typed twice no"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["passwd", "-c", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert "the same password twice" in err and "typed" not in err
    answers = iter(["same both times", "same both times"])
    assert main(["passwd", "-c", str(config_file)]) == 0
    assert _check(config_file, "same both times")


def test_passwd_too_short_changes_nothing(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["passwd", "--stdin", "-c", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert "at least 8 characters" in err and "short'" not in err


@pytest.fixture
def running_daemon(config_file: Path) -> Iterator[Daemon]:
    daemon = Daemon(load_config(config_file), web=False)
    daemon.start()
    yield daemon
    daemon.shutdown()


def test_passwd_through_the_running_daemon(
    running_daemon: Daemon, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert running_daemon.services is not None
    auth = running_daemon.services.auth
    auth.hash_method = "scrypt:1024:8:1"
    monkeypatch.setattr("sys.stdin", io.StringIO("through the socket\n"))
    assert main(["passwd", "--stdin", "-c", str(config_file)]) == 0
    assert auth.check_password("through the socket")
    monkeypatch.setattr("sys.stdin", io.StringIO("tiny\n"))
    assert main(["passwd", "--stdin", "-c", str(config_file)]) == 2
    assert auth.check_password("through the socket")
