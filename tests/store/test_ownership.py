"""Commands run with sudo keep the data dir's owner; a store file the daemon cannot use is
named in one clear error and the daemon stays down (exit 78, not a restart loop).

These need root (CI runs as root): they make a data dir owned by `nobody`, as the service's
`frontdesk` user owns /var/lib/frontdesk, and run the CLI as root against it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import firmware_app.daemon  # noqa: F401 - imported before forking (see as_nobody)
import firmware_app.services.auth as auth_module
from firmware_app.cli import main
from firmware_app.config import load_config
from firmware_app.errors import EXIT_STORE_FILE, StoreFileError
from firmware_app.events import EventBus
from firmware_app.services import Services
from firmware_app.store import Store
from firmware_app.store.durable import Database

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")


@pytest.fixture(autouse=True)
def fast_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_module, "HASH_METHOD", "scrypt:1024:8:1")


@pytest.fixture
def box() -> Iterator[Path]:
    """A folder `nobody` can reach, with a data dir owned by nobody (mode 0750) and a config."""
    base = Path(tempfile.mkdtemp(prefix="frontdesk-own-", dir="/tmp"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir(mode=0o750)
    os.chown(data, NOBODY, NOBODY)
    (base / "frontdesk.toml").write_text(
        f'[store]\ndata_dir = "{data}"\n[web]\nlisten = "127.0.0.1:1"\n'
    )
    yield base
    shutil.rmtree(base)


def as_nobody(work: Callable[[], int | None]) -> tuple[int, str]:
    """Run `work()` in a forked child as nobody (no groups); its exit code and output.

    A fork, not a new interpreter: the test's Python may live where nobody cannot read it.
    """
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the child writes, then the parent reads
    pid = os.fork()
    if pid == 0:  # the child
        code = 99
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            sys.stdout = sys.stderr = open(1, "w", closefd=False)  # noqa: SIM115 - until _exit
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = work() or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    out.seek(0)
    text = out.read().decode(errors="replace")
    out.close()
    return os.waitstatus_to_exitcode(status), text


def not_owned_by_nobody(data: Path) -> list[str]:
    return [
        f"{p} ({p.stat().st_uid})" for p in [data, *data.rglob("*")] if p.stat().st_uid != NOBODY
    ]


def check_password(config: Path, password: str) -> Callable[[], int]:
    def work() -> int:
        cfg = load_config(config)
        with Store(cfg.data_dir) as store:
            services = Services.build(cfg, store, EventBus())
            ok = services.auth.check_password(password)
            print("name:", services.settings.get().business.name)
        return 0 if ok else 5

    return work


def test_sudo_passwd_and_import_leave_everything_to_the_data_owner(
    box: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = box / "frontdesk.toml", box / "data"
    monkeypatch.setattr("sys.stdin", io.StringIO("set with sudo\n"))
    assert main(["passwd", "--stdin", "-c", str(config)]) == 0
    assert not not_owned_by_nobody(data)
    # A backup root can read but nobody cannot: read as root, stored as the data's owner.
    backup = box / "root-only" / "backup.toml"
    backup.parent.mkdir(mode=0o700)
    assert main(["settings", "export", "-c", str(config), "--out", str(backup)]) == 0
    text = re.sub(r'(?m)^(\[business\]\nname = )"[^"]*"', r'\1"Rossi Plumbing"', backup.read_text())
    assert 'name = "Rossi Plumbing"' in text
    backup.write_text(text)
    assert main(["settings", "import", "-c", str(config), str(backup)]) == 0
    assert "business.name" in capsys.readouterr().out
    assert not not_owned_by_nobody(data), not_owned_by_nobody(data)
    assert backup.stat().st_uid == 0  # the --out file is root's, where root asked for it
    code, output = as_nobody(check_password(config, "set with sudo"))
    assert code == 0, output
    assert "name: Rossi Plumbing" in output


def test_bad_input_from_the_dropped_child_comes_back_whole(
    box: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = box / "frontdesk.toml"
    bad = box / "bad.toml"
    bad.write_text("schema_version = 2\n[business]\ncountry = 'Narnia'\n")
    assert main(["settings", "import", "-c", str(config), str(bad)]) == 2
    assert "business.country" in capsys.readouterr().err


def open_store(data: Path) -> Callable[[], int]:
    def work() -> int:
        try:
            Store(data).close()
        except StoreFileError as exc:
            print("ERROR:", exc)
            return 3
        return 0

    return work


def open_database(path: Path) -> Callable[[], int]:
    def work() -> int:
        try:
            Database(path).close()
        except StoreFileError as exc:
            print("ERROR:", exc)
            return 3
        return 0

    return work


def test_a_file_the_daemon_cannot_read_is_named_with_the_fix(box: Path) -> None:
    data = box / "data"
    with Store(data) as store:  # as root, as a sudo command did before it knew better
        store.put_document("auth", "owner", {"hash": "x"})
    for p in [data, *data.rglob("*")]:  # only the auth files are in the way
        if not p.name.startswith("auth."):
            os.chown(p, NOBODY, NOBODY)
    code, message = as_nobody(open_store(data))
    assert code == 3, message
    assert "cannot write to" in message and "auth.json.journal" in message
    assert "permission denied" in message
    assert "owned by root, mode 640" in message and "runs as nobody" in message
    assert f"sudo chown -R nobody: {data}\n" in message
    # A database opened later (not there when the store was opened) says the same.
    code, message = as_nobody(open_database(data / "auth.json"))
    assert code == 3, message
    assert "auth.json" in message and "owned by root, mode 640" in message
    assert f"sudo chown -R nobody: {data}\n" in message


def test_the_daemon_stays_down_with_exit_78_and_says_why(box: Path) -> None:
    data = box / "data"
    with Store(data) as store:
        store.put_document("auth", "owner", {"hash": "x"})
    for p in [data, *data.rglob("*")]:
        if p.name != "auth.json.journal":
            os.chown(p, NOBODY, NOBODY)
    code, output = as_nobody(lambda: main(["run", "-c", str(box / "frontdesk.toml")]))
    assert code == EXIT_STORE_FILE, output
    assert "cannot start" in output and "auth.json.journal" in output
    assert "sudo chown -R nobody:" in output
    unit = (ROOT / "systemd" / "frontdesk.service").read_text()
    assert f"RestartPreventExitStatus={EXIT_STORE_FILE}" in unit
