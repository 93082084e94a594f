"""What a modem driver is: the AT sequences of one kind of line (analog or GSM).

A driver runs on its line's worker thread only, through `LineIO`: `chat()` sends one
command and waits for its result while URCs keep flowing, `pause()` waits while doing the
same. Drivers never touch the port, a thread or the bus directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..protocol.at import URC, Command, ErrorResult, Response, Timeout
from ..routing import LineCapabilities

if TYPE_CHECKING:
    from ..settings.lines import Lines
    from .detect import Profile

Result = Response | ErrorResult | Timeout

# 3GPP TS 27.007 9.2: 14 SIM busy; 515 (SIMCom, Sierra) busy initialising: retry later.
BUSY_CODES = frozenset({14, 515})
# 3GPP TS 27.005 3.2.5: +CMS ERROR 314 SIM busy (SMS commands while the SIM initialises).
CMS_BUSY_CODES = frozenset({314})
BUSY_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)


class LineIO(Protocol):
    """The worker-side face of a line that drivers use."""

    name: str

    def chat(self, command: Command | str, timeout: float = 5.0) -> Result: ...

    def pause(self, seconds: float) -> None: ...

    def urc_seen(self, lines: frozenset[str], within: float) -> bool:
        """Did one of these unsolicited lines (upper case, e.g. "SMS READY") arrive in the
        last `within` seconds?"""
        ...

    def wait_urc(self, lines: frozenset[str], timeout: float) -> bool:
        """Wait (handling everything else meanwhile) until one of these lines arrives;
        False after `timeout` seconds."""
        ...

    def settings(self) -> Lines: ...

    def error(self, message: str, code: str = "") -> None: ...

    def update(self, **fields: object) -> None: ...


class Driver:
    """Base: the analog and GSM drivers override what differs."""

    kind = "unknown"
    health_command = "AT"

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    @property
    def capabilities(self) -> LineCapabilities:
        raise NotImplementedError

    def initialise(self, io: LineIO) -> None:
        raise NotImplementedError

    def answer(self, io: LineIO) -> Result:
        raise NotImplementedError

    def hangup(self, io: LineIO) -> Result:
        return io.chat(Command("ATH", timeout=5.0))

    def reject(self, io: LineIO) -> Result:
        return self.hangup(io)

    def periodic(self, io: LineIO) -> bool:
        """Health check (and, on GSM, signal monitoring): a timeout counts as a failure.
        True when the modem forgot its settings (it was reset): the line sets it up again."""
        io.chat(Command(self.health_command, timeout=2.0))
        return False

    def settings_lost(self, io: LineIO) -> bool:
        """Ask the modem whether the settings init made are still in effect (caller ID on);
        True only on an answer that says they are not (a modem reset behind our back)."""
        return False

    def restart_sign(self, urc: URC) -> str | None:
        """What an unsolicited code says about a modem reset: "restart" (it booted: set it
        up again), "check" (it may have: ask with `settings_lost`) or None."""
        return None

    def on_urc(self, io: LineIO, urc: URC) -> None:
        """An unsolicited code besides rings and caller ID (registration, SIM, power)."""

    def settings_changed(self, io: LineIO) -> None:
        """The owner changed the lines settings."""


def busy(result: Result) -> bool:
    """+CME ERROR 14 / 515 or +CMS ERROR 314: the SIM or modem is busy, try again later."""
    if not isinstance(result, ErrorResult):
        return False
    codes = CMS_BUSY_CODES if result.kind == "cms" else BUSY_CODES
    return result.code in codes


def retry_busy(io: LineIO, command: Command) -> Result:
    """Send `command`; on SIM busy (+CME ERROR 14, 515, +CMS ERROR 314), wait and again."""
    result = io.chat(command)
    for delay in BUSY_BACKOFF:
        if not busy(result):
            break
        io.pause(delay)
        result = io.chat(command)
    return result
