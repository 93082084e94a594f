"""Two Debian iaxmodems back to back on loopback: a real Class 1 fax line (REFERENCE.md 5).

Used inside `unshare --net` by iaxfax_child.py. `pair(folder)` yields the two pty paths
(`caller` dials the number of `office`); both iaxmodems are stopped on exit.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

CONFIG = """device {device}
owner root:root
mode 660
port {port}
refresh 0
server 127.0.0.1:{peer}
peername {name}
secret {name}
cidname {name} line
cidnumber {cidnumber}
codec slinear
"""

NUMBERS = {"caller": "5551001", "office": "5552002"}


@contextlib.contextmanager
def pair(folder: Path) -> Iterator[dict[str, Path]]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    Path("/etc/iaxmodem").mkdir(parents=True, exist_ok=True)  # iaxmodem reads configs there
    procs = []
    for name, port, peer in (("caller", 4570, 4571), ("office", 4571, 4570)):
        (folder / name).write_text(
            CONFIG.format(
                device=folder / f"tty-{name}",
                port=port,
                peer=peer,
                name=name,
                cidnumber=NUMBERS[name],
            ),
            encoding="utf-8",
        )
        log = (folder / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                ["stdbuf", "-oL", "iaxmodem", f"../..{folder / name}"],
                cwd="/etc/iaxmodem",
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        ptys = {n: folder / f"tty-{n}" for n in ("caller", "office")}
        deadline = time.monotonic() + 10
        while not all(p.exists() for p in ptys.values()):
            if time.monotonic() > deadline:
                raise SystemExit("iaxmodem made no pty")
            time.sleep(0.05)
        yield ptys
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
