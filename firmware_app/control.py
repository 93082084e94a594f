"""The daemon's control socket: how CLI commands change data while the daemon runs.

TinyDB has one writer, the daemon; `frontdesk settings import`, `passwd` and friends send
one JSON request line over `<data_dir>/control.sock` (mode 0600, root/owner only) and get
one JSON reply line. Handlers are registered by name; an error reply carries its message.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import DaemonNotRunning, FrontdeskError, ValidationError
from .workers import Worker

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST = 4 << 20  # a settings file or an SMS, never more
Handler = Callable[..., Any]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handlers: dict[str, Handler]
    worker: Worker

    def service_actions(self) -> None:
        self.worker.beat()


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
                    "problems": [[p.field, repr(p.value), p.allowed] for p in exc.problems],
                }
            )
        except (FrontdeskError, TypeError) as exc:
            self._reply({"ok": False, "error": str(exc)})
        except Exception as exc:
            log.exception("control command %s failed", command)
            self._reply({"ok": False, "error": f"internal error: {type(exc).__name__}"})

    def _reply(self, body: dict[str, Any]) -> None:
        self.wfile.write((json.dumps(body, default=str) + "\n").encode())


class ControlServer(Worker):
    def __init__(self, data_dir: Path, handlers: dict[str, Handler]) -> None:
        super().__init__("control", liveness=30.0)
        self.path = Path(data_dir) / SOCKET_NAME
        self.path.unlink(missing_ok=True)
        old_umask = os.umask(0o177)
        try:
            self._server = _Server(str(self.path), _RequestHandler)
        finally:
            os.umask(old_umask)
        self._server.handlers = handlers
        self._server.worker = self

    def run(self) -> None:
        self._server.serve_forever(poll_interval=1.0)

    def stop(self) -> None:
        super().stop()
        if self.alive:
            self._server.shutdown()

    def close(self) -> None:
        self._server.server_close()
        self.path.unlink(missing_ok=True)


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
            raise FrontdeskError(reply.get("error", "the daemon refused the request"))
        return reply.get("result")
