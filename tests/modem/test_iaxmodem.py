"""A real software modem: Debian's iaxmodem (SpanDSP) rings with caller ID when its twin
dials it (REFERENCE.md 5). Detection, init and the caller-ID path run against it unchanged.

Needs root, iaxmodem, unshare and ip: both modems and the line run in a private network
namespace (`unshare --net`) so their UDP sockets stay local.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

CHILD = Path(__file__).with_name("iaxmodem_child.py")
ROOT = Path(__file__).parents[2]


def _why_not() -> str:
    missing = [tool for tool in ("iaxmodem", "unshare", "ip", "stdbuf") if not shutil.which(tool)]
    if missing:
        return f"needs {', '.join(missing)} (Debian packages iaxmodem, util-linux, iproute2)"
    if os.geteuid() != 0:
        return "iaxmodem must run as root (and unshare --net needs it)"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"cannot make a network namespace: {probe.stderr.decode().strip()}"
    return ""


@pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "available")
def test_iaxmodem_caller_id_reaches_the_line() -> None:
    # iaxmodem cuts its device path short (about 60 characters): keep the folder short.
    folder = Path(tempfile.mkdtemp(prefix="fd-iax-", dir="/tmp"))
    try:
        proc = subprocess.run(
            ["unshare", "--net", sys.executable, str(CHILD), str(folder)],
            capture_output=True,
            timeout=55,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    got = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    port = folder / "tty-office"
    assert got["description"] == (
        f"SpanDSP software modem on {port}: analog line, no voice, fax Class 1/1.0, caller ID"
    )
    assert (got["kind"], got["voice"], got["fax_classes"]) == ("analog", False, ["1", "1.0"])
    assert got["caller_id"] is True
    assert (got["number"], got["validity"], got["source"]) == ("5551001", "ok", "formatted")
    assert got["name"] == "caller line"
