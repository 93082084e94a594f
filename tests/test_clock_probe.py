"""Clock-sync probes: the kernel where the process may ask, and what answers when the
hardened unit's sandbox refuses adjtimex (ProtectClock=, SystemCallFilter=): timesyncd's flag
file, systemd-timedated (`timedatectl show`) and chrony (`chronyc tracking`).

The sandbox is reproduced with a real seccomp filter in a child process that makes adjtimex and
clock_adjtime fail with EPERM, as the unit's SystemCallErrorNumber=EPERM does. timedatectl and
chronyc are small scripts on PATH printing what the real tools print (this machine has no
system bus or chronyd to ask).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from firmware_app.services import system
from firmware_app.services.system import (
    ClockSync,
    chrony_clock_sync,
    default_clock_sync,
    timedated_clock_sync,
)

ROOT = Path(__file__).resolve().parents[1]

# chronyc -c tracking: the 14th field is the leap status.
CHRONY_SYNCED = (
    "C0A80101,192.168.1.1,3,1700000000.000000000,0.000012345,0.000001,0.000020,"
    "-1.234,0.001,0.020,0.010000,0.001000,64.5,Normal"
)
CHRONY_UNSYNCED = "00000000,,0,0.000000000,0.0,0.0,0.0,0.0,0.0,0.0,1.0,1.0,0.0,Not synchronised"


def tool(folder: Path, name: str, stdout: str, code: int = 0, stderr: str = "") -> None:
    path = folder / name
    path.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' '{stdout}'\n"
        + (f"printf '%s\\n' '{stderr}' >&2\n" if stderr else "")
        + f"exit {code}\n"
    )
    path.chmod(0o755)


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder first on PATH (no timedatectl, no chronyc unless a test adds them)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setattr(system, "TIMESYNCD_FLAG", tmp_path / "no-such-flag")
    return folder


def sandboxed_kernel() -> ClockSync:
    return ClockSync(None, "unknown", "adjtimex failed (errno 1)")


def test_timedated_answers(tools: Path) -> None:
    tool(tools, "timedatectl", "no")
    assert timedated_clock_sync() == ClockSync(False, "systemd-timedated", "NTPSynchronized=no")
    tool(tools, "timedatectl", "yes")
    assert timedated_clock_sync().synchronized is True


def test_timedated_without_a_bus_cannot_tell(tools: Path) -> None:
    tool(tools, "timedatectl", "", code=1, stderr="Failed to connect to bus: Host is down")
    state = timedated_clock_sync()
    assert state.synchronized is None
    assert "Failed to connect to bus" in state.detail


def test_chrony_answers(tools: Path) -> None:
    tool(tools, "chronyc", CHRONY_UNSYNCED)
    assert chrony_clock_sync() == ClockSync(False, "chrony", "leap status Not synchronised")
    tool(tools, "chronyc", CHRONY_SYNCED)
    assert chrony_clock_sync() == ClockSync(True, "chrony", "leap status Normal")
    tool(tools, "chronyc", "506 Cannot talk to daemon", code=1)
    assert chrony_clock_sync().synchronized is None


def test_under_the_sandbox_the_other_probes_answer(
    tools: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(system, "kernel_clock_sync", sandboxed_kernel)
    # Nothing to ask: "cannot tell", saying why each probe could not.
    state = default_clock_sync()
    assert state.synchronized is None and state.source == "unknown"
    assert "errno 1" in state.detail and "timedatectl is not installed" in state.detail
    assert "chronyc is not installed" in state.detail
    # chrony only (no D-Bus).
    tool(tools, "timedatectl", "", code=1, stderr="Failed to connect to bus")
    tool(tools, "chronyc", CHRONY_UNSYNCED)
    assert default_clock_sync().source == "chrony"
    # timedated answers first.
    tool(tools, "timedatectl", "no")
    assert default_clock_sync() == ClockSync(False, "systemd-timedated", "NTPSynchronized=no")
    # timesyncd's flag file wins without starting any process.
    flag = tmp_path / "synchronized"
    flag.touch()
    monkeypatch.setattr(system, "TIMESYNCD_FLAG", flag)
    (tools / "timedatectl").unlink()
    assert default_clock_sync().source == "systemd-timesyncd"


def test_a_hanging_tool_is_cut_off(tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "PROBE_TIMEOUT", 0.5)
    path = tools / "timedatectl"
    path.write_text("#!/bin/sh\nexec sleep 60\n")
    path.chmod(0o755)
    state = timedated_clock_sync()
    assert state.synchronized is None and "did not answer" in state.detail


# -- the real sandbox: seccomp in a child ----------------------------------------------------

# (AUDIT_ARCH_*, (adjtimex, clock_adjtime)) from linux/audit.h and the syscall tables.
SECCOMP_ARCHES = {"x86_64": (0xC000003E, (159, 305)), "aarch64": (0xC00000B7, (171, 266))}

CHILD = textwrap.dedent(
    """
    import ctypes, json, sys
    audit, (adjtimex, clock_adjtime) = json.loads(sys.argv[1])

    class Insn(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                    ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]

    LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
    ALLOW, EPERM = 0x7FFF0000, 0x00050000 | 1
    insns = [
        Insn(LD_ABS, 0, 0, 4),            # seccomp_data.arch
        Insn(JEQ, 0, 3, audit),           # another ABI: allow
        Insn(LD_ABS, 0, 0, 0),            # seccomp_data.nr
        Insn(JEQ, 2, 0, adjtimex),
        Insn(JEQ, 1, 0, clock_adjtime),
        Insn(RET, 0, 0, ALLOW),
        Insn(RET, 0, 0, EPERM),           # as SystemCallErrorNumber=EPERM
    ]
    table = (Insn * len(insns))(*insns)
    prog = Prog(len(insns), table)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, as NoNewPrivileges=yes
        sys.exit("no_new_privs: errno %d" % ctypes.get_errno())
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        sys.exit("seccomp: errno %d" % ctypes.get_errno())

    from firmware_app.services import system
    system.TIMESYNCD_FLAG = system.Path(sys.argv[2])
    kernel = system.kernel_clock_sync()
    state = system.default_clock_sync()
    print(json.dumps([kernel.synchronized, kernel.detail, state.synchronized, state.source]))
    """
)


def test_the_warning_works_where_adjtimex_is_refused(tmp_path: Path) -> None:
    arch = SECCOMP_ARCHES.get(platform.machine())
    if arch is None:
        pytest.skip(f"no seccomp table for {platform.machine()}")
    import json

    folder = tmp_path / "bin"
    folder.mkdir()
    tool(folder, "timedatectl", "no")
    env = {**os.environ, "PATH": f"{folder}:{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(arch), str(tmp_path / "no-flag")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    kernel_synced, kernel_detail, synced, source = json.loads(done.stdout)
    assert kernel_synced is None and "errno 1" in kernel_detail  # the sandbox bites
    assert (synced, source) == (False, "systemd-timedated")  # and the warning still comes
