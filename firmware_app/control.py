"""The daemon's control socket: how CLI commands change data while the daemon runs.

TinyDB has one writer, the daemon; `frontdesk settings import`, `passwd` and friends send
one JSON request line over `<data_dir>/control.sock` (mode 0600, root/owner only) and get
one JSON reply line. Handlers are registered by name; an error reply carries its message.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import selectors
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import memory
from .errors import DaemonNotRunning, FieldProblem, FrontdeskError, ValidationError
from .workers import Worker

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST = 4 << 20  # a settings file or an SMS, never more
Handler = Callable[..., Any]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    timeout = 0  # handle_request() is called once select() saw a connection: never block
    handlers: dict[str, Handler]
    worker: Worker


class _RequestHandler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.request.settimeout(30)
        try:
            line = self.rfile.readline(MAX_REQUEST + 1)
            if len(line) > MAX_REQUEST:
                raise ValueError("request too large")
            request = json.loads(line)
            command = request["command"]
            args = request.get("args", {})
            if not isinstance(command, str) or not isinstance(args, dict):
                raise ValueError("command must be text and args an object")
        except (ValueError, KeyError, TypeError) as exc:
            self._reply({"ok": False, "error": f"bad request: {exc}"})
            return
        handler = self.server.handlers.get(command)
        if handler is None:
            self._reply({"ok": False, "error": f"unknown command {command!r}"})
            return
        try:
            result = handler(**args)
            self._reply({"ok": True, "result": result})
        except ValidationError as exc:
            self._reply(
                {
                    "ok": False,
                    "error": str(exc),
                    "context": exc.context,
                    "problems": [[p.field, p.value, p.allowed] for p in exc.problems],
                }
            )
        except (FrontdeskError, TypeError) as exc:
            self._reply({"ok": False, "error": str(exc)})
        except Exception as exc:
            log.exception("control command %s failed", command)
            self._reply({"ok": False, "error": f"internal error: {type(exc).__name__}"})

    def _reply(self, body: dict[str, Any]) -> None:
        self.wfile.write((json.dumps(body, default=str) + "\n").encode())


class Diagnostics:
    """`debug.memory` and `debug.threads`: what the daemon holds and which threads use the CPU,
    asked of a running daemon over the control socket (docs/architecture.md shows how).

    Memory tracing costs CPU and RAM while it is on, so it is off until the first
    `debug.memory` call starts it; each later call compares a new snapshot with the previous
    one (the allocation sites that grew since) and counts live objects by type.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Any = None
        self._types: Counter[str] = Counter()

    def memory(self, top: int = 20, frames: int = 1, stop: bool = False) -> dict[str, Any]:
        import tracemalloc

        with self._lock:
            if stop:
                tracemalloc.stop()
                self._snapshot = None
                return {"tracing": False}
            types = Counter(type(o).__qualname__ for o in gc.get_objects())
            grown = types.copy()
            grown.subtract(self._types)
            self._types = types
            result: dict[str, Any] = {
                "rss_kb": memory.rss_kb(),
                "mapped_kb": _mapped_kb(top),
                "gc_objects": sum(types.values()),
                "types": types.most_common(top),
                "types_grown": [(k, v) for k, v in grown.most_common(top) if v > 0],
            }
            if not tracemalloc.is_tracing():
                tracemalloc.start(max(1, frames))
                result["tracing"] = "started: ask again after some traffic"
                return result
            snapshot = tracemalloc.take_snapshot().filter_traces(
                (tracemalloc.Filter(False, tracemalloc.__file__),)
            )
            key = "traceback" if frames > 1 else "lineno"
            stats = snapshot.statistics(key)
            result["traced_kb"] = sum(s.size for s in stats) // 1024
            result["top"] = [_site(s.traceback, s.size, s.count) for s in stats[:top]]
            if self._snapshot is not None:
                diff = snapshot.compare_to(self._snapshot, key)
                result["grown"] = [
                    _site(d.traceback, d.size_diff, d.count_diff) for d in diff[:top] if d.size_diff
                ]
            self._snapshot = snapshot
            result["tracing"] = True
            return result

    def threads(self) -> list[dict[str, Any]]:
        """Each thread's name and its CPU seconds so far (user + system, from /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        out = []
        for t in threading.enumerate():
            cpu = None
            try:
                stat = Path(f"/proc/self/task/{t.native_id}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, ValueError, IndexError):
                pass
            out.append({"name": t.name, "id": t.native_id, "cpu_s": cpu})
        return sorted(out, key=lambda d: -(d["cpu_s"] or 0))


def _mapped_kb(top: int) -> list[tuple[str, int]]:
    """Resident kB by what is mapped (a library's file, `[heap]`, or anonymous memory, where
    glibc's thread arenas and numpy's buffers live), largest first."""
    sizes: Counter[str] = Counter()
    name = ""
    try:
        with open("/proc/self/smaps") as fh:
            for line in fh:
                head = line.split(maxsplit=6)
                if "-" in head[0] and len(head) >= 5:  # a mapping's first line
                    name = head[5].strip() if len(head) > 5 else "[anonymous]"
                elif head[0] == "Rss:":
                    sizes[name] += int(head[1])
    except (OSError, ValueError, IndexError):
        pass
    return sizes.most_common(top)


def _site(traceback: Any, size: int, count: int) -> dict[str, Any]:
    return {
        "where": [f"{f.filename}:{f.lineno}" for f in traceback],
        "kb": round(size / 1024, 1),
        "count": count,
    }


class ControlServer(Worker):
    """Accepts requests on the socket; waits in select() on the socket and a wake-up pipe, so
    an idle daemon's control thread wakes only to beat (every `liveness / 3` seconds)."""

    def __init__(self, data_dir: Path, handlers: dict[str, Handler]) -> None:
        super().__init__("control", liveness=30.0)
        self.path = Path(data_dir) / SOCKET_NAME
        self.path.unlink(missing_ok=True)
        old_umask = os.umask(0o177)
        try:
            self._server = _Server(str(self.path), _RequestHandler)
        finally:
            os.umask(old_umask)
        self.diagnostics = Diagnostics()
        self._server.handlers = {
            "debug.memory": self.diagnostics.memory,
            "debug.threads": self.diagnostics.threads,
            "debug.trim": memory.trim,
            **handlers,
        }
        self._server.worker = self
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)

    def run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self.stopping.is_set():
                self.beat()
                for key, _ in selector.select(self.liveness / 3):
                    if key.fileobj is self._server and not self.stopping.is_set():
                        self._server.handle_request()  # accept; a thread answers
                    elif key.fileobj == self._wake_r:
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 64)

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        self._server.server_close()
        self.path.unlink(missing_ok=True)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class ControlClient:
    def __init__(self, data_dir: Path, timeout: float = 30.0) -> None:
        self.path = Path(data_dir) / SOCKET_NAME
        self.timeout = timeout

    def call(self, command: str, **args: Any) -> Any:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(str(self.path))
                s.sendall((json.dumps({"command": command, "args": args}) + "\n").encode())
                with s.makefile("rb") as fh:
                    reply = json.loads(fh.readline() or b"{}")
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning(f"no Frontdesk daemon answers on {self.path}") from None
        except (OSError, ValueError) as exc:
            raise FrontdeskError(f"the daemon did not answer properly: {exc}") from None
        if not reply.get("ok"):
            problems = reply.get("problems")
            if isinstance(problems, list) and problems:
                # Bad input named field by field, as the command would say without a daemon
                # (the CLI exits with 2 for it).
                raise ValidationError(
                    [
                        FieldProblem(str(p[0]), p[1], str(p[2]))
                        for p in problems
                        if isinstance(p, list) and len(p) == 3
                    ],
                    str(reply.get("context") or ""),
                )
            raise FrontdeskError(reply.get("error", "the daemon refused the request"))
        return reply.get("result")
