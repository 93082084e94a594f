"""Footprint of a fresh `frontdesk run`, production-like (`modem.devices = ["auto"]`, web on):
RSS and threads once it is ready and has idled 10 s, idle CPU over 60 s, which heavy modules
it has loaded, the first page request (which builds the web page) and RSS after it, and
start-to-ready (systemd's READY=1) with 100,000 history records stored.

The daemon runs with MALLOC_ARENA_MAX=2, as systemd/frontdesk.service starts it (glibc would
otherwise give each busy thread a malloc arena of its own); a second, shorter run without it
shows what the setting is worth. Greetings are spoken at start-up in a child process: the
RSS sample waits until that child is gone, so it is the daemon's own steady state.

The source tree is byte-compiled first (`compileall`, into the git-ignored __pycache__
folders), as `pip install` does on the appliance: a checkout run with PYTHONDONTWRITEBYTECODE
would otherwise compile every module at every start, which costs start time and leaves about
1.5 MB more resident than the installed daemon has.

Run: .venv/bin/python bench/footprint.py (about 2 minutes; FOOTPRINT_IDLE=20 for a shorter look).
Targets: RSS idle <= 40 MB, idle CPU <= 0.05 % of a core, start-to-ready at 100k <= 2 s.
Prints figures; asserts nothing. Which heavy libraries are loaded is read from the process's
memory map, so it names those with shared objects of their own (numpy, Pillow, soxr, ...).
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak_rig import DaemonProcess, free_port, sample

HEAVY = ("numpy", "PIL", "soundfile", "soxr", "img2pdf", "pypdfium2", "pikepdf", "lxml")
RECORDS = 100_000
ARENAS = "2"  # MALLOC_ARENA_MAX of systemd/frontdesk.service


def byte_compile() -> None:
    """Our modules as the installed daemon has them: compiled once, not at every start."""
    root = Path(__file__).resolve().parents[1]
    for package in ("firmware_app", "web_ui"):
        compileall.compile_dir(root / package, quiet=1)


def figure(name: str, value: float, unit: str, target: str, op: str) -> None:
    print(f"FIGURE\t{name}\t{value:.6g}\t{unit}\t{target}\t{op}", flush=True)


def config(folder: Path) -> Path:
    path = folder / "frontdesk.toml"
    path.write_text(
        f'[store]\ndata_dir = "{folder / "data"}"\n'
        f'[web]\nlisten = "127.0.0.1:{free_port()}"\n'
        '[modem]\ndevices = ["auto"]\n[log]\nlevel = "info"\n'
    )
    return path


def loaded_heavy(pid: int) -> list[str]:
    """Heavy libraries mapped into the process (their shared objects in /proc/<pid>/maps)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name in HEAVY if f"/{name}" in maps or f"{name}." in maps]


def history_record(i: int) -> dict[str, object]:
    return {
        "channel": "call",
        "direction": "in",
        "outcome": "voicemail",
        "start": "2026-11-25T14:03:11+00:00",
        "end": "2026-11-25T14:04:02+00:00",
        "number": f"+1555{i:07d}",
        "name": "JOHN SMITH",
        "line": "line1",
        "duration": 51.0,
        "text": "Closed: opens Monday 09:00.",
        "media": [f"media/2026/11/{i:016d}.wav"],
        "details": {"plan": {"rule": "schedule"}, "answered": True},
    }


def arenas(value: str | None) -> None:
    """MALLOC_ARENA_MAX for daemons started from now on (None: glibc's default)."""
    if value is None:
        os.environ.pop("MALLOC_ARENA_MAX", None)
    else:
        os.environ["MALLOC_ARENA_MAX"] = value


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(x) for x in path.read_text().split()]
    except (OSError, ValueError):
        return []


def settle(pid: int, timeout: float = 120.0) -> None:
    """Wait until the daemon's start-up children (the greetings' speech process) are gone."""
    deadline = time.monotonic() + timeout
    while children(pid) and time.monotonic() < deadline:
        time.sleep(0.5)


def idle(idle_seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="frontdesk-footprint-"))
    daemon = DaemonProcess(config(folder), folder / "data", folder / "daemon.log")
    try:
        life = daemon.start()
        time.sleep(10)
        settle(life.pid)
        s0 = sample(life.pid)
        time.sleep(idle_seconds)
        s1 = sample(life.pid)
        heavy = loaded_heavy(life.pid)
        first_ms, again_ms = first_page(folder / "frontdesk.toml")
        s2 = sample(life.pid)
        daemon.stop()
    finally:
        daemon.close()
        shutil.rmtree(folder, ignore_errors=True)
    cpu = (s1.cpu_s - s0.cpu_s) / (s1.at - s0.at) * 100
    print(f"fresh daemon, auto modems, web on: ready in {life.ready_s:.2f} s")
    print(
        f"RSS idle: {s0.rss_kb / 1024:.1f} MB (target <= 40 MB, MALLOC_ARENA_MAX="
        f"{os.environ.get('MALLOC_ARENA_MAX', 'unset')}); threads {s0.threads}"
    )
    print(f"idle CPU over {s1.at - s0.at:.0f} s: {cpu:.3f} % of a core (target <= 0.05 %)")
    print(f"heavy modules loaded at idle: {', '.join(heavy) or 'none'}")
    print(
        f"first page request (the web page is built by it): {first_ms:.0f} ms, the next "
        f"{again_ms:.1f} ms; RSS with the page loaded {s2.rss_kb / 1024:.1f} MB"
    )
    figure("RSS idle (fresh daemon)", s0.rss_kb / 1024, "MB", "40", "<=")
    figure("first page request after start", first_ms, "ms", "-", "")
    figure("RSS once the web page is loaded", s2.rss_kb / 1024, "MB", "-", "")
    figure("threads idle (fresh daemon)", s0.threads, "threads", "-", "")
    figure("idle CPU (fresh daemon)", cpu, "% core", "0.05", "<=")
    figure("start-to-ready (empty store)", life.ready_s, "s", "2", "<=")


def first_page(config_path: Path) -> tuple[float, float]:
    """The login page twice, as a browser asks for it: (first ms, next ms). The first
    request builds the web page (Flask and the pages load then, not at start)."""
    import re
    import urllib.request

    listen = re.search(r'listen = "([^"]+)"', config_path.read_text())
    assert listen is not None
    url = f"http://{listen.group(1)}/login"
    took = []
    for _ in range(2):
        began = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as answer:
            answer.read()
        took.append((time.perf_counter() - began) * 1000)
    return took[0], took[1]


def rss_only() -> float:
    """RSS of a fresh daemon after 10 s (and its start-up children gone), in MB."""
    folder = Path(tempfile.mkdtemp(prefix="frontdesk-footprint-"))
    daemon = DaemonProcess(config(folder), folder / "data", folder / "daemon.log")
    try:
        life = daemon.start()
        time.sleep(10)
        settle(life.pid)
        rss = sample(life.pid).rss_kb / 1024
        daemon.stop()
    finally:
        daemon.close()
        shutil.rmtree(folder, ignore_errors=True)
    return rss


def startup(records: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="frontdesk-footprint-"))
    try:
        history = folder / "data" / "history"
        history.mkdir(parents=True)
        month = f"{datetime.now(UTC):%Y-%m}"
        body = {"records": {str(i + 1): history_record(i) for i in range(records)}}
        (history / f"{month}.json").write_text(json.dumps(body))
        daemon = DaemonProcess(config(folder), folder / "data", folder / "daemon.log")
        try:
            times = []
            for _ in range(3):
                life = daemon.start()
                times.append(life.ready_s)
                daemon.stop()
        finally:
            daemon.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    best, worst = min(times), max(times)
    print(
        f"start-to-ready with {records:,} history records in this month: best {best:.2f} s, "
        f"worst {worst:.2f} s of 3 (target <= 2 s)"
    )
    figure(f"start-to-ready ({records // 1000}k records)", worst, "s", "2", "<=")


if __name__ == "__main__":
    byte_compile()
    arenas(ARENAS)
    idle(float(os.environ.get("FOOTPRINT_IDLE", "60")))
    arenas(None)
    default = rss_only()
    print(f"RSS idle without MALLOC_ARENA_MAX (glibc default arenas): {default:.1f} MB")
    figure("RSS idle (default malloc arenas)", default, "MB", "-", "")
    arenas(ARENAS)
    startup(RECORDS)
