"""The bytes of one fax call: a `Line` switched to data mode, read on the fax session thread.

The line's worker only hands bytes over (`on_data` puts them on a queue); the session thread
parses them with its own AT engine, so results, HDLC frames and page data never race with
the line's own parsing. Never call `read()` from a line's worker thread.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..protocol.at import (
    NEED_DATA,
    URC,
    ATEngine,
    Command,
    Data,
    ErrorResult,
    Mode,
    PeerError,
    Response,
    Timeout,
)

if TYPE_CHECKING:
    from ..modem.line import Line

log = logging.getLogger(__name__)

Result = Response | ErrorResult | Timeout


class PipeClosed(Exception):
    """The call's byte pipe is gone (line down or closed)."""


class CallGone(Exception):
    """The call is gone: the pipe closed, or the modem said so in command mode."""


class Pipe(Protocol):
    """What a fax driver needs from a line in data mode."""

    def read(self, timeout: float) -> bytes | None: ...

    def write(self, data: bytes) -> None: ...


class LinePipe:
    """A line in data mode for one fax call.

    `connect(command)` sends a command answered by CONNECT (``ATA``, ``ATD...``) and from then
    on every byte the modem sends comes out of `read()`; `close()` puts the line back into
    command mode (the session has parsed everything itself).
    """

    def __init__(self, line: Line) -> None:
        self.line = line
        self._q: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._open = False

    @property
    def connected(self) -> bool:
        """The line is in data mode for this call (after CONNECT, until `close()`)."""
        return self._open

    def on_data(self, data: bytes) -> None:  # the line's worker thread: hand over only
        self._q.put(data)

    def connect(self, command: Command) -> Result:
        result = self.line.enter_data(command, self.on_data).result(command.timeout + 10.0)
        self._open = isinstance(result, Response) and result.result.startswith("CONNECT")
        return result

    def read(self, timeout: float) -> bytes | None:
        """Bytes from the modem, or None when none came within `timeout` seconds."""
        try:
            data = self._q.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        chunks = [data]
        while True:  # hand out what is already queued in one piece
            try:
                chunks.append(self._q.get_nowait())
            except queue.Empty:
                break
        return b"".join(chunks) if len(chunks) > 1 else data

    def write(self, data: bytes) -> None:
        try:
            self.line.write_data(data)
        except Exception as exc:  # LineDownError, PortError
            raise PipeClosed(str(exc)) from exc

    def close(self, timeout: float = 5.0) -> None:
        """Back to command mode on the line (safe twice)."""
        if not self._open:
            return
        self._open = False
        try:
            self.line.leave_data(b"").result(timeout)
        except Exception as exc:  # a line that went down starts again in command mode
            log.debug("%s: leaving data mode: %s", self.line.name, exc)


class PipeModem:
    """AT commands and results over a pipe, parsed by an AT engine of the session's own (the
    line's engine only passes bytes through while the call is in data mode)."""

    def __init__(
        self,
        pipe: Pipe,
        *,
        online: bool = True,
        clock: Callable[[], float] = time.monotonic,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.pipe = pipe
        self.clock = clock
        self.engine = ATEngine(max_line=1024)
        self.online = online
        if online:
            self.engine.enter_data_mode()
        self._gone = ""
        self._trace = trace

    def _next(self, until: float) -> object | None:
        """The next engine event, reading from the pipe as needed; None at `until`."""
        engine = self.engine
        while True:
            event = engine.next_event()
            if event is not NEED_DATA:
                if isinstance(event, URC):
                    self._urc(event)
                    continue
                if isinstance(event, PeerError):
                    log.debug("fax: ignored from the modem (%s): %r", event.reason, event.raw[:40])
                    continue
                return event
            now = self.clock()
            if now >= until:
                return None
            data = self.pipe.read(min(until - now, 1.0))
            if data is not None:
                engine.receive_data(data)
            engine.tick(self.clock())

    def _urc(self, urc: URC) -> None:
        if urc.name in ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"):
            self._gone = f"the modem said {urc.name}"
        else:
            log.debug("fax: unsolicited %s", urc.line)

    def _result(self, until: float) -> Response | ErrorResult | Timeout:
        """Wait for the final result of the command in flight (Data before it is dropped)."""
        while True:
            event = self._next(until)
            if event is None:
                raise CallGone("the modem stopped answering")
            if isinstance(event, Response | ErrorResult | Timeout):
                return event
            if isinstance(event, Data):
                log.debug("fax: %d unexpected data bytes", len(event.data))

    def _command(self, text: str, timeout: float) -> Response | ErrorResult | Timeout:
        if self.engine.mode is Mode.DATA:  # defensive: never send a command into data mode
            self.engine.enter_command_mode(b"")
        cmd = Command(text, timeout=timeout)
        if self._trace is not None:
            self._trace(text)
        self.pipe.write(self.engine.send(cmd, self.clock()))
        return self._result(self.clock() + timeout + 1.0)

    def _await(
        self, text: str, timeout: float, leftover: bytes = b""
    ) -> Response | ErrorResult | Timeout:
        """Back to command mode after DLE ETX; wait for the result the modem sends then."""
        self.engine.enter_command_mode(
            leftover, await_result=Command(text, timeout=timeout), now=self.clock()
        )
        return self._result(self.clock() + timeout + 1.0)
