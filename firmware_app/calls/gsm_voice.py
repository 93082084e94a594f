"""GSM call audio as `VoiceChannel`s: a USB sound card through ALSA, or PCM over a USB serial
port (SIMCom SIM7600 `AT+CPCMREG`, Quectel EC25 `AT+QPCMV`, Huawei `AT^DDSETEX`).

A pump thread per call reads 20 ms frames (8 kHz, 16-bit LE) and writes one frame back for
each, so the device's clock paces everything; session threads block in play/record/collect.
Keys come from the modem's DTMF URCs where it reports them, else from Goertzel detection on
the audio; silence is found in software; hang-up from the line's CallerHungUp event.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..events import EventBus
from ..media.dsp import CngDetector, DtmfDetector, FaxCalling, LineMonitor
from ..modem import events as ev
from ..protocol.at import Command, Response
from ..protocol.voice import HangupDetector
from .voice import RATE, DigitsResult, EndReason, Pcm, PlayResult, RecordResult

log = logging.getLogger(__name__)

FRAME = 160  # samples per 20 ms frame
FRAME_BYTES = FRAME * 2
FRAME_SECONDS = FRAME / RATE
CAPTURE_FRAMES = 50  # 1 s of caller audio kept while no operation reads it
PLAY_AHEAD = 5  # frames queued for playback (100 ms of latency)
STALL_SECONDS = 3.0  # no audio from the device this long (wall clock): the path failed
DUPLICATE_GAP = 0.6  # a modem DTMF URC this soon after the same key heard in the audio


class FrameIO(Protocol):
    """A duplex audio path carrying 20 ms frames of 16-bit LE PCM at 8 kHz."""

    def read_frame(self) -> bytes | None: ...

    def write_frame(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class LinePort(Protocol):
    """What a channel needs from a `modem.line.Line`."""

    name: str

    def command(self, command: Command | str, timeout: float = 5.0) -> Any: ...

    def hangup(self, after: float = 0.0) -> Any: ...


@dataclass(frozen=True, slots=True)
class AudioCommands:
    """AT commands around a call's audio: `start` once connected, `stop` on hang-up, and
    `dtmf` to make the modem report keys (URCs may follow; until the first one arrives keys
    are taken from the audio)."""

    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    dtmf: tuple[str, ...] = ()


# Vendor audio paths (REFERENCE.md 2; vendor manuals named in docs/voice.md):
# SIM7600 AT+CPCMREG=1 only once connected, =0 on hang-up (SIM7500/SIM7600 AT Command Manual,
# "AT+CPCMREG"; SIMCom 3G PCM application note); EC25 AT+QPCMV=1,0 USB serial, =1,2 UAC sound
# card, AT+QPCMV=0 off (Quectel EC25&EC21 AT Commands Manual V1.3, AT+QPCMV); Huawei
# AT^DDSETEX=2 after connect, voice on its own port (E173/E1752 AT command interface spec).
# DTMF reports: SIM800 AT+DDET=1 -> +DTMF: <key> (SIM800 Series AT Command Manual V1.09,
# AT+DDET); EC25 AT+QTONEDET=1 -> +QTONEDET: <ascii>; SIM7600 reports +RXDTMF: <key>.
SERIAL_PCM: dict[str, AudioCommands] = {
    "simcom": AudioCommands(start=("AT+CPCMREG=1",), stop=("AT+CPCMREG=0",)),
    "quectel": AudioCommands(
        start=("AT+QPCMV=1,0",), stop=("AT+QPCMV=0",), dtmf=("AT+QTONEDET=1",)
    ),
    "huawei": AudioCommands(start=("AT^DDSETEX=2",)),
}
SOUND_CARD: dict[str, AudioCommands] = {
    "simcom": AudioCommands(dtmf=("AT+DDET=1",)),
    "quectel": AudioCommands(
        start=("AT+QPCMV=1,2",), stop=("AT+QPCMV=0",), dtmf=("AT+QTONEDET=1",)
    ),
}


class SerialPcm:
    """PCM frames over a USB serial port (opened with pyserial, by path or URL)."""

    def __init__(
        self, port: str, *, baudrate: int = 115200, opener: Callable[..., Any] | None = None
    ) -> None:
        import serial

        self.port = port
        self._serial: Any = (opener or serial.serial_for_url)(port, baudrate, timeout=1.0)

    def read_frame(self) -> bytes | None:
        try:
            data = bytes(self._serial.read(FRAME_BYTES))
            while data and len(data) < FRAME_BYTES:
                more = bytes(self._serial.read(FRAME_BYTES - len(data)))
                if not more:
                    break
                data += more
        except Exception as exc:  # serial.SerialException: unplugged or closed
            log.debug("PCM port %s: %s", self.port, exc)
            return None
        if len(data) < FRAME_BYTES:
            return b"" if not data else data.ljust(FRAME_BYTES, b"\0")
        return data

    def write_frame(self, data: bytes) -> None:
        try:
            self._serial.write(data)
        except Exception as exc:
            log.debug("PCM port %s: %s", self.port, exc)

    def close(self) -> None:
        try:
            self._serial.close()
        except Exception:
            log.debug("closing %s", self.port, exc_info=True)


class GsmVoiceChannel:
    """Common body of the GSM channels; use `GsmSoundCardChannel` or `GsmSerialPcmChannel`."""

    def __init__(
        self,
        line: LinePort,
        io: Callable[[], FrameIO],
        *,
        bus: EventBus,
        description: str,
        commands: AudioCommands = AudioCommands(),
        command_timeout: float = 5.0,
        stall_seconds: float = STALL_SECONDS,
        silence_dbfs: float = -45.0,
        realtime: bool = True,
    ) -> None:
        """`realtime=False` (tests with ALSA's file plugin, whose capture runs as fast as it
        is read): the pump waits for the call's audio to be used instead of dropping it."""
        self.line = line
        self._realtime = realtime
        self._open_io = io
        self._bus = bus
        self._description = description
        self._commands = commands
        self._command_timeout = command_timeout
        self._stall = stall_seconds
        self._silence_dbfs = silence_dbfs
        self._cond = threading.Condition()
        self._capture: collections.deque[Pcm] = collections.deque(maxlen=CAPTURE_FRAMES)
        self._playback: collections.deque[bytes] = collections.deque()
        self._digits: collections.deque[str] = collections.deque()
        self._frames_in = 0
        self._frames_out = 0
        self._gone = threading.Event()
        self._stopping = threading.Event()
        self._failed = False
        self.failure = ""  # why the audio path failed, in words (for the call's record)
        self._writing = False
        self._playing = False
        self._modem_dtmf = False
        self._last_audio_digit: tuple[str, float] = ("", -10.0)
        self._detector = DtmfDetector()
        self._cng = CngDetector()  # a fax machine calling, also while a greeting plays
        self._fax = False
        self._io: FrameIO | None = None
        self._thread: threading.Thread | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._hung_up = False
        self.gone_reason = ""
        self.taps: list[Callable[[Pcm, Pcm], None]] = []  # (heard, sent) per frame: recording
        self.closed_callbacks: list[Callable[[], None]] = []  # once the audio is closed

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> GsmVoiceChannel:
        """Switch the modem's audio on, open the audio path and start the pump thread."""
        self._unsubscribe.append(self._bus.subscribe(ev.KeyPressed, self._on_key))
        self._unsubscribe.append(self._bus.subscribe(ev.CallerHungUp, self._on_hung_up))
        for text in self._commands.dtmf:
            # An OK is no promise: keys come from the audio until the first report arrives
            # (_on_key), so a modem that accepts the command but never reports loses none.
            if not self._ok(text):
                log.info("%s: %s refused; keys come from the audio", self.line.name, text)
        for text in self._commands.start:
            if not self._ok(text):
                log.warning("%s: %s refused; call audio may not flow", self.line.name, text)
        self._io = self._open_io()
        self._thread = threading.Thread(
            target=self._pump, name=f"audio-{self.line.name}", daemon=True
        )
        self._thread.start()
        return self

    def _ok(self, text: str) -> bool:
        try:
            result = self.line.command(Command(text, timeout=self._command_timeout)).result(
                self._command_timeout + 1.0
            )
        except Exception as exc:
            log.info("%s: %s failed: %s", self.line.name, text, exc)
            return False
        return isinstance(result, Response)

    def hang_up(self) -> None:
        """End the call from our side; safe from any thread and safe twice."""
        with self._cond:
            if self._hung_up:
                return
            self._hung_up = True
            self._cond.notify_all()
        self._close_audio()
        try:
            self.line.hangup().result(15.0)
        except Exception as exc:
            log.info("%s: hang-up: %s", self.line.name, exc)

    def close(self) -> None:
        """Stop the audio without hanging up (the call goes on elsewhere, or already ended)."""
        self._close_audio()

    def _close_audio(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)
        io, self._io = self._io, None
        if io is not None:
            io.close()
            for text in self._commands.stop:
                self._ok(text)
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        with self._cond:
            self._cond.notify_all()
        callbacks, self.closed_callbacks = self.closed_callbacks, []
        for callback in callbacks:
            callback()

    # -- VoiceChannel -----------------------------------------------------------------------

    @property
    def description(self) -> str:
        return self._description

    @property
    def caller_gone(self) -> bool:
        return self._gone.is_set()

    @property
    def seconds_heard(self) -> float:
        """Stream time: how much audio came from the call so far."""
        return self._frames_in * FRAME_SECONDS

    def play(self, audio: Pcm, *, stop_digits: str = "0123456789*#ABCD") -> PlayResult:
        pcm = np.asarray(audio, dtype=np.int16)
        pad = (-pcm.size) % FRAME
        data = np.concatenate([pcm, np.zeros(pad, dtype=np.int16)]).astype("<i2").tobytes()
        frames = [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
        start_out = self._frames_out
        digits = ""
        reason: EndReason = "done"
        i = 0
        with self._cond:
            self._playing = True
            while True:
                end = self._end_reason()
                if end is not None:
                    reason = end
                    break
                if self._fax:
                    reason = "fax"
                    break
                while self._digits:
                    d = self._digits.popleft()
                    digits += d
                    if d in stop_digits:
                        reason = "digit"
                if reason == "digit":
                    break
                self._capture.clear()  # nobody records while we play: keep the pump moving
                if i < len(frames) and len(self._playback) < PLAY_AHEAD:
                    self._playback.append(frames[i])
                    self._cond.notify_all()
                    i += 1
                    continue
                if i >= len(frames) and not self._playback and not self._writing:
                    break
                if not self._wait():
                    reason = "error"
                    break
            self._playing = False
            if reason != "done":
                self._playback.clear()
            played = min(self._frames_out - start_out, len(frames)) * FRAME_SECONDS
        detail = self._why(reason) if reason == "error" else ""
        return PlayResult(reason=reason, digits=digits, seconds=played, detail=detail)

    def record(
        self, max_seconds: float, *, stop_digits: str = "#", silence_seconds: float = 6.0
    ) -> RecordResult:
        monitor = LineMonitor(
            hangup=HangupDetector(
                start=0.0,
                silence_seconds=silence_seconds,
                silence_dbfs=self._silence_dbfs,
                max_duration=max_seconds,
            ),
            silence_dbfs=self._silence_dbfs,
            silence_seconds=silence_seconds,
        )
        kept: list[Pcm] = []
        digits = ""
        reason: EndReason = "done"
        detail = ""
        keep_until: float | None = None
        with self._cond:
            while True:
                end = self._end_reason()
                if end is not None:
                    reason, detail = end, self._why(end)
                    break
                if self._fax:
                    reason, detail = "fax", "fax calling tone"
                    break
                if self._digits:
                    d = self._digits.popleft()
                    if d in stop_digits:
                        reason, detail = "digit", f"key {d}"
                        keep_until = max(0.0, len(kept) * FRAME_SECONDS - 0.15)
                        break
                    digits += d
                    continue
                if not self._capture:
                    if not self._wait():
                        reason, detail = "error", self._why("error")
                        break
                    continue
                frame = self._capture.popleft()
                kept.append(frame)
                found = monitor.feed(frame)
                if any(isinstance(f, FaxCalling) for f in found):
                    reason, detail = "fax", "fax calling tone"
                    break
                gone = monitor.caller_gone
                if gone is not None:
                    if gone.reason == "max_duration":
                        reason, detail = "done", f"{max_seconds:g} s reached"
                    elif gone.reason == "silence":
                        reason, detail = "silence", f"silence from {gone.since:.1f} s"
                        keep_until = gone.since
                    else:
                        reason = "hangup"
                        detail = f"{gone.reason.replace('_', ' ')} after {gone.since:.1f} s"
                        keep_until = gone.since
                    break
        audio = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int16)
        if keep_until is not None:
            audio = audio[: int(keep_until * RATE)]
        return RecordResult(
            reason=reason,
            audio=audio.astype(np.int16),
            digits=digits,
            seconds=audio.size / RATE,
            detail=detail,
        )

    def collect_digits(self, count: int, timeout: float, *, end_digit: str = "#") -> DigitsResult:
        digits = ""
        waited = 0
        limit = max(1, round(timeout / FRAME_SECONDS))
        with self._cond:
            while True:
                end = self._end_reason()
                if end is not None:
                    detail = self._why(end) if end == "error" else ""
                    return DigitsResult(reason=end, digits=digits, detail=detail)
                if self._fax:
                    return DigitsResult(reason="fax", digits=digits)
                while self._digits:
                    d = self._digits.popleft()
                    if end_digit and d == end_digit:
                        return DigitsResult(reason="done", digits=digits)
                    digits += d
                    if len(digits) >= count:
                        return DigitsResult(reason="done", digits=digits)
                if waited >= limit:
                    return DigitsResult(reason="silence", digits=digits)
                if self._capture:
                    self._capture.popleft()
                    waited += 1
                    continue
                if not self._wait():
                    return DigitsResult(reason="error", digits=digits, detail=self._why("error"))

    # -- bridging (calls.bridge) ------------------------------------------------------------

    def receive(self, timeout: float = 1.0) -> Pcm | None:
        """The next 20 ms of the far end's audio, or None (nothing within `timeout`, or gone)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._capture:
                if self._end_reason() is not None:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._capture.popleft()

    def send(self, frame: Pcm, timeout: float = 1.0) -> bool:
        """Queue 20 ms for the far end (blocks while PLAY_AHEAD frames wait)."""
        data = np.asarray(frame, dtype=np.int16)[:FRAME]
        data = np.pad(data, (0, FRAME - data.size)) if data.size < FRAME else data
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._playback) >= PLAY_AHEAD:
                if self._end_reason() is not None:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    self._playback.popleft()  # drop the oldest rather than fall behind
                    break
                self._cond.wait(left)
            self._playback.append(data.astype("<i2").tobytes())
            return True

    def take_digit(self) -> str | None:
        with self._cond:
            return self._digits.popleft() if self._digits else None

    # -- events from the line (its worker thread: quick) --------------------------------------

    def _on_key(self, event: ev.KeyPressed) -> None:
        if event.line != self.line.name:
            return
        with self._cond:
            self._modem_dtmf = True
            last, at = self._last_audio_digit
            if last == event.digit and time.monotonic() - at < DUPLICATE_GAP:
                return  # the same press, already heard in the audio
            self._digits.append(event.digit)
            self._cond.notify_all()

    def _on_hung_up(self, event: ev.CallerHungUp) -> None:
        if event.line != self.line.name:
            return
        self.gone_reason = event.reason
        self._gone.set()
        with self._cond:
            self._cond.notify_all()

    # -- the pump thread --------------------------------------------------------------------

    def _pump(self) -> None:
        io = self._io
        silence = bytes(FRAME_BYTES)
        for _ in range(PLAY_AHEAD // 2):
            if io is not None:
                io.write_frame(silence)  # a little ahead, so playback never runs dry
        while not self._stopping.is_set() and io is not None:
            data = io.read_frame()
            if data is None:
                with self._cond:
                    self.failure = self.failure or f"the call audio stopped ({self._description})"
                    self._failed = True
                    self._cond.notify_all()
                return
            if not data:
                continue
            with self._cond:
                while not self._realtime and self._playing and not self._playback:
                    if self._stopping.is_set() or self._hung_up:
                        break
                    self._cond.wait(0.05)  # not clocked by a device: wait for the player
                out = self._playback.popleft() if self._playback else silence
                self._writing = True
            io.write_frame(out)
            with self._cond:
                self._writing = False
                self._frames_out += 1
                self._cond.notify_all()
            heard = np.frombuffer(data[:FRAME_BYTES], dtype="<i2").astype(np.int16)
            for tap in self.taps:
                tap(heard, np.frombuffer(out, dtype="<i2").astype(np.int16))
            found = self._detector.feed(heard)
            fax = bool(self._cng.feed(heard))
            with self._cond:
                if fax and not self._fax:
                    log.info("%s: fax calling tone (CNG) heard", self.line.name)
                    self._fax = True
                while (
                    not self._realtime
                    and len(self._capture) >= CAPTURE_FRAMES
                    and not self._stopping.is_set()
                    and not self._hung_up
                ):
                    self._cond.wait(0.05)  # paced by whoever listens, not by a clock
                self._frames_in += 1
                self._capture.append(heard)
                for press in found:
                    if not self._modem_dtmf:
                        self._digits.append(press.digit)
                        self._last_audio_digit = (press.digit, time.monotonic())
                self._cond.notify_all()

    # -- helpers (called with the condition held) -------------------------------------------

    def _wait(self) -> bool:
        """Wait for the pump; False when no audio came for `stall` seconds (path failed)."""
        before = (self._frames_in, self._frames_out)
        deadline = time.monotonic() + self._stall
        while (self._frames_in, self._frames_out) == before:
            if self._end_reason() is not None:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("%s: no call audio for %.0f s", self.line.name, self._stall)
                self.failure = self.failure or (
                    f"no call audio for {self._stall:.0f} s from {self._description} (check "
                    "audio.pcm_port or audio.device in the machine config)"
                )
                return False
            self._cond.wait(min(left, 0.25))
        return True

    def _end_reason(self) -> EndReason | None:
        if self._gone.is_set() or self._hung_up:
            return "hangup"
        if self._failed or self._stopping.is_set():
            return "error"
        return None

    def _why(self, reason: EndReason) -> str:
        if reason == "hangup":
            return f"line: {self.gone_reason}" if self.gone_reason else "hung up"
        return self.failure or "the audio path stopped"


class GsmSoundCardChannel(GsmVoiceChannel):
    """Call audio through a USB sound card wired to the modem (SIM800) or a modem's own USB
    audio (EC25 UAC), via ALSA (`audio.device` in the machine config)."""

    def __init__(
        self,
        line: LinePort,
        device: str,
        *,
        bus: EventBus,
        vendor: str = "",
        capture_device: str | None = None,
        **options: Any,
    ) -> None:
        from ..media.alsa import AlsaDuplex

        def opener() -> FrameIO:
            return AlsaDuplex(device, capture_device=capture_device).open()

        super().__init__(
            line,
            opener,
            bus=bus,
            description=f"GSM sound card {device}",
            commands=options.pop("commands", SOUND_CARD.get(vendor, AudioCommands())),
            **options,
        )
        self.device = device


class GsmSerialPcmChannel(GsmVoiceChannel):
    """Call audio as 8 kHz 16-bit LE PCM on a modem's extra USB serial port."""

    def __init__(
        self,
        line: LinePort,
        port: str,
        *,
        bus: EventBus,
        vendor: str,
        baudrate: int = 115200,
        **options: Any,
    ) -> None:
        if vendor not in SERIAL_PCM:
            raise ValueError(
                f"{vendor or 'this modem'} offers no PCM over USB serial; "
                f"known: {', '.join(sorted(SERIAL_PCM))}"
            )
        super().__init__(
            line,
            lambda: SerialPcm(port, baudrate=baudrate),
            bus=bus,
            description=f"GSM PCM over USB serial {port}",
            commands=options.pop("commands", SERIAL_PCM[vendor]),
            **options,
        )
        self.port = port


def mix(tracks: Sequence[Sequence[Pcm]]) -> Pcm:
    """Frames of several directions summed into one track (call recording)."""
    n = max((len(t) for t in tracks), default=0)
    out = np.zeros(n * FRAME, dtype=np.int32)
    for track in tracks:
        for i, frame in enumerate(track):
            f = np.asarray(frame, dtype=np.int32)
            out[i * FRAME : i * FRAME + f.size] += f
    mixed: Pcm = np.clip(out, -32768, 32767).astype(np.int16)
    return mixed


__all__ = [
    "SERIAL_PCM",
    "SOUND_CARD",
    "AudioCommands",
    "FrameIO",
    "GsmSerialPcmChannel",
    "GsmSoundCardChannel",
    "GsmVoiceChannel",
    "SerialPcm",
    "mix",
]
