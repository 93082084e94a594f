"""Contracts between a call session and the audio of one answered call.

A call session runs in its own thread and calls these blocking methods; each returns when the
audio is done, the caller pressed a key that ends it, or the caller hung up. Audio is 16-bit
signed mono PCM at 8000 Hz as numpy arrays (`Pcm`). Implementations must never block the
line's worker thread and must stop promptly when `hang_up()` is called from another thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Pcm = npt.NDArray[np.int16]
else:
    Pcm = object

RATE = 8000

EndReason = Literal[
    "done",  # the audio finished, or the recording reached its maximum length
    "digit",  # a key that ends the step was pressed (barge-in, '#' after a message)
    "silence",  # the caller said nothing for the silence limit
    "hangup",  # the caller hung up (loop break, busy or dial tone, NO CARRIER, silence)
    "fax",  # a fax calling tone (CNG) was heard
    "error",  # the line failed (modem error, port gone)
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayResult:
    reason: EndReason
    digits: str = ""  # keys pressed while playing, in order, each press once
    seconds: float = 0.0  # how much was played
    detail: str = ""  # words for the record when it ended in "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordResult:
    reason: EndReason
    audio: Pcm  # trimmed: no trailing silence, dial tone or busy tone
    digits: str = ""
    seconds: float = 0.0  # length of `audio`
    detail: str = ""  # words for the log: "dial tone after 12.3 s", "modem: DLE l"


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitsResult:
    reason: EndReason  # "done" when enough digits came, "silence" on timeout
    digits: str = ""
    detail: str = ""  # words for the record when it ended in "error"


@runtime_checkable
class VoiceChannel(Protocol):
    """The audio of one answered call, whatever carries it."""

    @property
    def description(self) -> str:
        """For logs and the call record: "analog V.253 u-law", "GSM sound card plughw:1"."""
        ...

    def play(self, audio: Pcm, *, stop_digits: str = "0123456789*#ABCD") -> PlayResult:
        """Play to the caller; a key in `stop_digits` stops playback (barge-in)."""
        ...

    def record(
        self, max_seconds: float, *, stop_digits: str = "#", silence_seconds: float = 6.0
    ) -> RecordResult:
        """Record the caller until the limit, a stop key, silence, hang-up or a fax tone."""
        ...

    def collect_digits(self, count: int, timeout: float, *, end_digit: str = "#") -> DigitsResult:
        """Wait for up to `count` keys (an IVR choice), `end_digit` ends early."""
        ...

    def hang_up(self) -> None:
        """End the call from our side; safe from any thread and safe twice."""
        ...

    @property
    def caller_gone(self) -> bool:
        """True once the caller hung up (known from the line or the audio)."""
        ...


class GreetingSource(Protocol):
    """Where a session gets the audio for a greeting key ("open", "closed", "holiday",
    "closure:<id>", "menu:<mode>", "voicemail", "connecting", "accept_call", "not_accepted",
    "recording_notice", "goodbye", "beep")."""

    def audio(self, key: str) -> Pcm:
        """The greeting as PCM at 8 kHz; a generated default when the owner set none."""
        ...
