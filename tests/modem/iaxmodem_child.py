"""Runs inside `unshare --net` for test_iaxmodem.py: two iaxmodems back to back on loopback
(REFERENCE.md 5), a Frontdesk line on the callee, a call dialled from the caller's pty.

Prints one JSON line with what the line found and the IncomingCall it published.
Usage: python iaxmodem_child.py <folder>
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import serial

from firmware_app.events import EventBus
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line, LineOptions

CONFIG = """device {device}
owner root:root
mode 660
port {port}
refresh 0
server 127.0.0.1:{peer}
peername {name}
secret {name}
cidname {cidname}
cidnumber {cidnumber}
codec slinear
"""


def main(folder: Path) -> dict[str, object]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    Path("/etc/iaxmodem").mkdir(parents=True, exist_ok=True)  # iaxmodem reads configs there
    modems = []
    for name, port, peer, cid in (
        ("caller", 4570, 4571, "5551001"),
        ("office", 4571, 4570, "5552002"),
    ):
        (folder / name).write_text(
            CONFIG.format(
                device=folder / f"tty-{name}",
                port=port,
                peer=peer,
                name=name,
                cidname=f"{name} line",
                cidnumber=cid,
            ),
            encoding="utf-8",
        )
        log = (folder / f"{name}.log").open("wb")
        modems.append(
            subprocess.Popen(
                ["stdbuf", "-oL", "iaxmodem", f"../..{folder / name}"],
                cwd="/etc/iaxmodem",
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        deadline = time.monotonic() + 10
        while not all((folder / f"tty-{n}").exists() for n in ("caller", "office")):
            if time.monotonic() > deadline:
                raise SystemExit("iaxmodem made no pty")
            time.sleep(0.05)
        bus = EventBus()
        got: dict[str, object] = {}
        up, incoming = threading.Event(), threading.Event()

        def on_up(e: ev.LineUp) -> None:
            up.set()

        def on_call(e: ev.IncomingCall) -> None:
            got.update(
                number=e.number,
                name=e.name,
                validity=e.validity,
                source=e.source,
                dialled_raw=list(e.raw),
            )
            incoming.set()

        bus.subscribe(ev.LineUp, on_up)
        bus.subscribe(ev.IncomingCall, on_call)
        line = Line("fax1", str(folder / "tty-office"), bus=bus, options=LineOptions())
        line.start()
        try:
            if not up.wait(15):
                raise SystemExit(f"line not up: {line.status()}")
            profile = line.profile
            assert profile is not None
            got.update(
                description=profile.describe(),
                kind=profile.kind,
                voice=profile.voice,
                fax_classes=list(profile.fax_classes),
                caller_id=line.status().caller_id,
            )
            time.sleep(5.5)  # after ATZ iaxmodem refuses calls for 5 s (REFERENCE.md 5)
            caller = serial.Serial(str(folder / "tty-caller"), 115200, timeout=0.2)
            caller.write(b"ATDT5552002\r")
            if not incoming.wait(20):
                raise SystemExit("no IncomingCall")
            caller.write(b"ATH\r")
            caller.close()
        finally:
            line.stop()
            line.join(2)
            line.close()
        return got
    finally:
        for proc in modems:
            proc.terminate()
        for proc in modems:
            proc.wait(5)


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))), flush=True)
