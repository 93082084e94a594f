"""One serial port: a reader thread that hands bytes on, and writes under their own lock.

Ports are opened by path or pyserial URL (`serial.serial_for_url`). The reader blocks in
pyserial's select() with no timeout and holds no lock while it waits, so a writer never
waits behind a read; `close()` wakes it with `cancel_read()`. A failed read or write (USB
unplug, pty gone) is reported once through `on_lost`; reconnecting is the line's job.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
from collections.abc import Callable
from typing import Any

import serial

from ..errors import FrontdeskError

log = logging.getLogger(__name__)

WRITE_TIMEOUT = 2.0  # seconds; a modem that takes no bytes for this long is gone
URL_READ_TIMEOUT = 0.5  # socket:// and loop:// ports cannot always be woken: bounded reads

Opener = Callable[..., Any]


class PortError(FrontdeskError):
    """A serial port cannot be opened, read or written."""


def open_port(url: str, baudrate: int, opener: Opener = serial.serial_for_url) -> Any:
    """Open a device path or pyserial URL; a plain path is opened exclusively (flock)."""
    is_url = "://" in url
    kwargs: dict[str, Any] = {
        "baudrate": baudrate,
        "timeout": URL_READ_TIMEOUT if is_url else None,
        "write_timeout": WRITE_TIMEOUT,
        "do_not_open": True,
    }
    try:
        port = opener(url, **kwargs)
        if not is_url:
            port.exclusive = True
        port.open()
    except (serial.SerialException, OSError, ValueError) as exc:
        words = open_error_words(exc)
        raise PortError(
            f"cannot open {url}: {words}" if words else f"cannot open {url}: {exc}"
        ) from exc
    return port


def open_error_words(exc: BaseException) -> str:
    """Why a port did not open, in words an owner can act on ("" when there are none);
    pyserial's own text follows in brackets."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if "exclusively lock" in text or code in (errno.EAGAIN, errno.EBUSY):
        why = (
            "another program has it open (the Frontdesk service, ModemManager or a terminal "
            "program); stop that program first"
        )
    elif code == errno.ENOENT or "No such file" in text:
        why = "there is no such port (is the modem plugged in?)"
    elif code == errno.EACCES or "Permission denied" in text:
        why = "permission denied (the user must be in the dialout group)"
    else:
        return ""
    return f"{why} [{text}]"


class Transport:
    """A open serial port with its reader thread.

    `on_data(bytes)` and `on_lost(exception)` are called on the reader thread; they must
    only hand the data on (put it in a queue). `on_lost` is called at most once.
    """

    def __init__(
        self,
        url: str,
        baudrate: int,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[BaseException], None],
        *,
        opener: Opener = serial.serial_for_url,
        name: str = "",
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self._on_data = on_data
        self._on_lost = on_lost
        self._opener = opener
        self._name = name or url
        self._port: Any = None
        self._write_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._closing = threading.Event()
        self._lost_reported = False
        self._lost_lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._port is not None and not self._closing.is_set()

    def open(self) -> None:
        """Open the port and start reading. Raises `PortError`."""
        self._closing.clear()
        self._lost_reported = False
        self._port = open_port(self.url, self.baudrate, self._opener)
        with contextlib.suppress(serial.SerialException, OSError, AttributeError):
            self._port.reset_input_buffer()
        self._reader = threading.Thread(
            target=self._read_loop, args=(self._port,), name=f"{self._name}-reader", daemon=True
        )
        self._reader.start()

    def _read_loop(self, port: Any) -> None:
        while not self._closing.is_set():
            try:
                data = port.read(port.in_waiting or 1)
                # Woken by the first byte of a burst (audio comes every 20 ms or so): take
                # the rest of it too, so the line and the call see one piece, not a lone
                # byte and then the others (twice the hand-offs and numpy calls per second).
                more = port.in_waiting
                if more:
                    data += port.read(more)
            except Exception as exc:  # serial.SerialException, OSError, TypeError on close
                if not self._closing.is_set():
                    self._lost(exc)
                return
            if data:
                self._on_data(bytes(data))

    def _lost(self, exc: BaseException) -> None:
        with self._lost_lock:
            if self._lost_reported:
                return
            self._lost_reported = True
        log.debug("%s lost: %s", self._name, exc)
        self._on_lost(exc)

    def write(self, data: bytes) -> None:
        """Write all of `data`; a failure reports the port lost and raises `PortError`."""
        port = self._port
        if port is None or self._closing.is_set():
            raise PortError(f"{self.url} is not open")
        try:
            with self._write_lock:
                port.write(data)
        except Exception as exc:  # SerialTimeoutException, SerialException, OSError
            self._lost(exc)
            raise PortError(f"cannot write to {self.url}: {exc}") from exc

    def close(self, timeout: float = 1.0) -> None:
        """Stop the reader and close the port. Safe to call twice."""
        self._closing.set()
        port, self._port = self._port, None
        if port is None:
            return
        with contextlib.suppress(Exception):
            port.cancel_read()
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)
        with contextlib.suppress(Exception):
            port.close()
