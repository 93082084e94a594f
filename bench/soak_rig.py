"""The soak's rig: a real `frontdesk run` child process, read from /proc, and an SMTP sink.

The daemon is started as systemd would start it (READY=1 on a notify socket of our own), so
start-to-ready is measured the way the appliance sees it, and SIGKILL is a real one. Every
figure about the daemon comes from /proc/<pid>: RSS, threads, CPU times, bytes written.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class Sample:
    """One look at a process in /proc."""

    at: float
    rss_kb: int = 0
    threads: int = 0
    cpu_s: float = 0.0  # user + system
    write_bytes: int = 0  # bytes this process sent to the block layer (its data dir, its logs)
    ok: bool = False


def sample(pid: int) -> Sample:
    s = Sample(at=time.monotonic())
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                s.rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                s.threads = int(line.split()[1])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        s.cpu_s = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                s.write_bytes = int(line.split()[1])
        s.ok = True
    except (OSError, ValueError, IndexError):
        pass
    return s


@dataclass(slots=True)
class Lifetime:
    """One run of the daemon, from start to kill or stop."""

    pid: int
    started: float
    ready_s: float = 0.0  # start to READY=1
    at_ready: Sample | None = None
    last: Sample | None = None
    how_ended: str = ""


class DaemonProcess:
    """`python -m firmware_app run --config <file>`; stdout/stderr drained into a log file
    by this process (so the daemon's own writes are only its data dir's)."""

    def __init__(self, config: Path, data_dir: Path, log: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.lifetimes: list[Lifetime] = []
        self._notify_dir = Path(tempfile.mkdtemp(prefix="fd-notify-"))
        self._notify_path = self._notify_dir / "notify"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(self._notify_path))
        self._pump: threading.Thread | None = None
        self.up = threading.Event()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 60.0) -> Lifetime:
        """Start and wait for READY=1; returns the new lifetime."""
        assert self.proc is None
        # MALLOC_ARENA_MAX=2 as in the systemd unit: with glibc's default (8 arenas a core)
        # every short-lived call thread may get an arena of its own, whose freed pages stay
        # resident; measured, it is most of the RSS growth over a run.
        env = {
            "MALLOC_ARENA_MAX": "2",
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "NOTIFY_SOCKET": str(self._notify_path),
        }
        env.pop("WATCHDOG_USEC", None)
        while True:  # drop notifications of a previous life
            self._notify.settimeout(0)
            try:
                self._notify.recv(4096)
            except OSError:
                break
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware_app", "run", "--config", str(self.config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        life = Lifetime(pid=self.proc.pid, started=started)
        self.lifetimes.append(life)
        self._pump = threading.Thread(target=self._drain, args=(self.proc,), daemon=True)
        self._pump.start()
        deadline = started + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"the daemon did not get ready; see {self.log}")
            self._notify.settimeout(min(left, 0.5))
            try:
                msg = self._notify.recv(4096).decode(errors="replace")
            except TimeoutError:
                continue
            if "READY=1" in msg.split("\n"):
                break
        life.ready_s = time.monotonic() - started
        life.at_ready = life.last = sample(life.pid)
        self.up.set()
        return life

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with self.log.open("ab") as out:
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
                out.write(chunk)

    def look(self) -> Sample | None:
        """A fresh sample of the running daemon (kept as its lifetime's last)."""
        if self.proc is None or not self.lifetimes:
            return None
        s = sample(self.proc.pid)
        if s.ok:
            self.lifetimes[-1].last = s
        return s

    def kill(self) -> None:
        """SIGKILL, after a last look at /proc (the figures of a life end with it)."""
        assert self.proc is not None
        self.up.clear()
        self.look()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._end("SIGKILL")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        self.up.clear()
        self.look()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._end(f"SIGTERM (exit {code})")
        return code

    def _end(self, how: str) -> None:
        self.lifetimes[-1].how_ended = how
        if self._pump is not None:
            self._pump.join(5)
        self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._notify.close()
        with contextlib.suppress(OSError):
            self._notify_path.unlink()
            self._notify_dir.rmdir()

    def control(self, command: str, timeout: float = 5.0, **args: Any) -> Any:
        """One request on the daemon's control socket; None when it does not answer."""
        path = self.data_dir / "control.sock"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(str(path))
                s.sendall((json.dumps({"command": command, "args": args}) + "\n").encode())
                with s.makefile("rb") as fh:
                    reply = json.loads(fh.readline() or b"{}")
        except (OSError, ValueError):
            return None
        return reply.get("result") if reply.get("ok") else None


@dataclass(slots=True)
class Received:
    message_id: str
    kind: str
    subject: str
    at: float
    attachments: tuple[str, ...] = ()  # content types of the attached parts


@dataclass
class MailSink:
    """aiosmtpd on 127.0.0.1 that keeps each message's Message-ID; `down()`/`up()` stop and
    start it on the same port (the mail server unreachable for a stretch)."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    _controller: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        item = Received(
            message_id=str(msg.get("Message-ID", "")).strip(),
            kind=str(msg.get("X-Frontdesk-Kind", "")),
            subject=str(msg.get("Subject", "")),
            at=time.monotonic(),
            attachments=tuple(part.get_content_type() for part in msg.iter_attachments()),
        )
        with self._lock:
            self.received.append(item)
        return "250 2.0.0 Ok: queued"

    def up(self) -> None:
        from aiosmtpd.controller import Controller

        if self._controller is None:
            self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
            self._controller.start()

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def is_up(self) -> bool:
        return self._controller is not None

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)
