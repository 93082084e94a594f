"""Events a modem line publishes on the bus: calls arriving and ending, the line coming and
going, GSM signal changes and modem errors.

Frozen, keyword-only dataclasses (subclasses of `firmware_app.events.Event`). They are
published on the line's worker thread: handlers must return quickly and never wait on a
line's future there.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class LineEvent(Event):
    """Base of every line event. `line` is the line's name (``line1``)."""

    line: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRinging(LineEvent):
    """The first ring of a new incoming call, before its caller ID: published once per call
    (never for later rings, a call waiting or a ring during a call), before its
    `IncomingCall` with the same `call_id`. `since_up`: seconds the line had been up when
    it came (0 while the line was still being set up): a call ringing on from before a
    restart rings within one ring cycle of the line coming up."""

    call_id: int
    since_up: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingCall(LineEvent):
    """A call is ringing and its caller ID is complete (or known to be missing).

    `validity`: ok, withheld or unavailable; `reason` says why there is no number.
    `raw`: the caller-ID lines as the modem sent them. `rings`: rings counted so far.
    `caller_id_first`: the caller ID came before any ring the line heard of this call: its
    first ring went by before the port was opened (a call ringing on from before a restart,
    its caller ID read from what the port kept), or the network sends caller ID before
    ringing. An analog call heard from its first ring has its caller ID after that ring.
    """

    call_id: int
    number: str | None
    name: str | None
    validity: str
    reason: str | None = None
    raw: tuple[str, ...] = ()
    source: str = "none"
    rings: int = 0
    caller_id_first: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallWaiting(LineEvent):
    """Caller ID of a second caller while the line is in a call (never a new call)."""

    number: str | None
    name: str | None
    validity: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(LineEvent):
    call_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerHungUp(LineEvent):
    """The caller gave up before the call was answered, or ended an answered call."""

    call_id: int
    answered: bool
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPressed(LineEvent):
    """GSM: the modem heard a key during a call (`+DTMF`, `+RXDTMF`, `+QTONEDET` URCs)."""

    digit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(LineEvent):
    """We hung up (after answering or rejecting)."""

    call_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LineUp(LineEvent):
    """The modem answers and is initialised. `description` is the profile in words."""

    port: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LineDown(LineEvent):
    """The port went away (unplugged), or the modem stopped answering."""

    port: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectFailed(LineEvent):
    """Another attempt to bring a down line back (reopen, re-initialise) failed.

    `attempts` counts the failures since the line was last up; the front panel's relay
    power-cycles the modem after a few of them.
    """

    attempts: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalChanged(LineEvent):
    """GSM: signal (`rssi` 0-31, 99 unknown; `dbm`), registration or operator changed."""

    rssi: int | None
    dbm: int | None
    registration: str
    operator: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SimChanged(LineEvent):
    """GSM: the SIM card's state changed; `sim` as AT+CPIN? says it (READY, SIM PIN, SIM
    PUK, NOT INSERTED, ...) or "unknown" when the modem did not say."""

    sim: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsolicited(LineEvent):
    """A message-related unsolicited code for the SMS service: ``+CMTI``, ``+CMT``,
    ``+CDSI``, ``+CDS`` or ``+CUSD`` (TS 27.005 3.4.1, TS 27.007 7.15). `extra` holds the
    PDU line of ``+CMT``/``+CDS``."""

    name: str
    args: str
    text: str
    extra: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ModemError(LineEvent):
    """Something the owner may need to act on: wrong SIM PIN, caller ID not enabled, ..."""

    message: str
    code: str = ""
