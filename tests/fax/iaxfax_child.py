"""Runs inside `unshare --net` for test_iaxmodem_fax.py: a fax over two real iaxmodems.

Scenarios: `fd2fd` (a Frontdesk line sends to a Frontdesk line), `efax2fd` (Debian's efax
sends, Frontdesk receives), `fd2efax` (Frontdesk sends, efax receives). Writes the pages as
PBM files to the folder and prints one JSON line with the outcome.
Usage: python iaxfax_child.py <folder> <scenario> <fine|normal> <page.png> [<page.png> ...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

from firmware_app.events import EventBus
from firmware_app.fax import session
from firmware_app.media.fax_image import decode_page
from firmware_app.media.fax_send import FaxPage
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line, LineOptions
from tests.fax.iaxpair import NUMBERS, pair


def _line(name: str, port: Path, bus: EventBus) -> Line:
    up = threading.Event()
    bus.subscribe(ev.LineUp, lambda e: up.set() if e.line == name else None)
    line = Line(name, str(port), bus=bus, options=LineOptions())
    line.start()
    if not up.wait(15):
        raise SystemExit(f"{name} not up: {line.status()}")
    return line


def _stop(*lines: Line) -> None:
    for line in lines:
        line.stop()
    for line in lines:
        line.join(3)
        line.close()


def _receive_on(line: Line, bus: EventBus, out: dict[str, Any], done: threading.Event) -> None:
    def on_call(e: ev.IncomingCall) -> None:
        if e.line != line.name or out.get("started"):
            return
        out["started"] = True
        out["caller"] = e.number

        def run() -> None:
            try:
                out["rx"] = session.receive(line, local_id="+1 555 2002")
            finally:
                done.set()

        threading.Thread(target=run, name="fax-rx", daemon=True).start()

    bus.subscribe(ev.IncomingCall, on_call)


def _save_rx(folder: Path, rx: session.ReceiveOutcome, got: dict[str, Any]) -> None:
    files = []
    for i, page in enumerate(rx.pages):
        decoded = decode_page(page.data, fine=page.fine, mr=page.mr, fill_order=page.fill_order)
        path = folder / f"rx-{i + 1}.png"
        (folder / f"rx-{i + 1}.t4").write_bytes(page.data)
        decoded.image.save(path)
        files.append({"path": str(path), "damaged": decoded.damaged_lines, "fine": page.fine})
    got["rx"] = {
        "ok": rx.ok,
        "reason": rx.reason,
        "remote_id": rx.remote_id,
        "rate": rx.rate,
        "seconds": round(rx.seconds, 2),
        "page_seconds": [round(s, 2) for s in rx.page_seconds],
        "pages": files,
        "trace": rx.trace,
    }


def _tx_dict(tx: session.SendOutcome) -> dict[str, Any]:
    return {
        "ok": tx.ok,
        "status": tx.status,
        "reason": tx.reason,
        "pages_sent": tx.pages_sent,
        "remote_id": tx.remote_id,
        "rate": tx.rate,
        "seconds": round(tx.seconds, 2),
        "page_seconds": [round(s, 2) for s in tx.page_seconds],
        "trace": tx.trace,
    }


def fd2fd(folder: Path, pages: list[Image.Image], fine: bool) -> dict[str, Any]:
    got: dict[str, Any] = {}
    with pair(folder) as ptys:
        bus = EventBus()
        office = _line("office", ptys["office"], bus)
        caller = _line("caller", ptys["caller"], bus)
        try:
            time.sleep(5.5)  # after ATZ iaxmodem refuses calls for 5 s (REFERENCE.md 5)
            rx: dict[str, Any] = {}
            done = threading.Event()
            _receive_on(office, bus, rx, done)
            tx = session.send(
                caller,
                NUMBERS["office"],
                [FaxPage(p) for p in pages],
                local_id="+1 555 1001",
                fine=fine,
            )
            got["tx"] = _tx_dict(tx)
            if not done.wait(30):
                got["error"] = "the receiving side did not finish"
            else:
                _save_rx(folder, rx["rx"], got)
        finally:
            _stop(office, caller)
    return got


def efax2fd(folder: Path, pages: list[Image.Image], fine: bool) -> dict[str, Any]:
    got: dict[str, Any] = {}
    tiffs = []
    for i, page in enumerate(pages):
        path = folder / f"src-{i + 1}.tif"
        dpi = (204, 196) if fine else (204, 98)
        im = page if fine else page.resize((page.width, page.height // 2))
        im.save(path, "TIFF", compression="group3", dpi=dpi, strip_size=1 << 30)
        tiffs.append(str(path))
    with pair(folder) as ptys:
        bus = EventBus()
        office = _line("office", ptys["office"], bus)
        try:
            time.sleep(5.5)
            rx: dict[str, Any] = {}
            done = threading.Event()
            _receive_on(office, bus, rx, done)
            efax = subprocess.run(
                [
                    "efax",
                    "-d",
                    str(ptys["caller"]),
                    "-o1",
                    "-v" + VERBOSE,
                    "-l",
                    "+1 555 1001",
                    "-t",
                    NUMBERS["office"],
                    *tiffs,
                ],
                capture_output=True,
                timeout=120,
                check=False,
            )
            got["efax"] = {"rc": efax.returncode, "log": efax.stderr.decode()[-3000:]}
            if not done.wait(30):
                got["error"] = "the receiving side did not finish"
            else:
                _save_rx(folder, rx["rx"], got)
        finally:
            _stop(office)
    return got


def fd2efax(folder: Path, pages: list[Image.Image], fine: bool) -> dict[str, Any]:
    got: dict[str, Any] = {}
    with pair(folder) as ptys:
        efax = subprocess.Popen(
            [
                "efax",
                "-d",
                str(ptys["office"]),
                "-o1",
                "-v" + VERBOSE,
                "-w",
                "-iS0=1",
                "-l",
                "+1 555 2002",
                "-r",
                str(folder / "efax"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        bus = EventBus()
        caller = _line("caller", ptys["caller"], bus)
        try:
            time.sleep(5.5)
            tx = session.send(
                caller,
                NUMBERS["office"],
                [FaxPage(p) for p in pages],
                local_id="+1 555 1001",
                fine=fine,
            )
            got["tx"] = _tx_dict(tx)
            try:
                _, err = efax.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                efax.kill()
                _, err = efax.communicate(timeout=5)
            got["efax"] = {"rc": efax.returncode, "log": err.decode()[-3000:]}
            got["files"] = sorted(str(p) for p in folder.glob("efax.*"))
        finally:
            _stop(caller)
            if efax.poll() is None:
                efax.kill()
                efax.wait(5)
    return got


VERBOSE = os.environ.get(
    "EFAX_VERBOSE", "ewin"
)  # efax -v: errors, warnings, session progress, negotiation ("c" adds commands)

SCENARIOS = {"fd2fd": fd2fd, "efax2fd": efax2fd, "fd2efax": fd2efax}


if __name__ == "__main__":
    where, scenario, fine_res = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "fine"
    src_pages = []
    for name in sys.argv[4:]:
        with Image.open(name) as src:
            src_pages.append(src.convert("1"))
    result = SCENARIOS[scenario](where, src_pages, fine_res)
    print(json.dumps(result), flush=True)
