"""Putting a caller through to staff on a second line: dial, "press 1 to accept", then join the
two calls' audio (a pump thread per direction, bounded buffers), optionally recorded; and the
hook-flash blind transfer of analog PBX/Centrex lines (not verified on hardware).

Runs on the call session's thread; it talks to lines only through their futures.

While staff are rung and asked to press 1, the caller hears ringback (`Waiting`, its own
thread) and is listened to, so a caller hanging up ends the staff call at once.

The caller's channel may be a GSM channel or an analog V.253 one: the analog channel carries
audio both ways only in voice duplex (`AT+VTR`), entered before staff are dialled
(`start_duplex`: the ringback goes out through it and the caller's `DLE l`, dial or busy tone
come in) and left when the two part or staff do not take the call (`stop_duplex`), so
anything after the bridge (the voicemail) uses its ordinary play and record states.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from ..protocol.at import Command, ErrorResult, Response, split_params
from .gsm_voice import mix
from .voice import GreetingSource, Pcm, VoiceChannel

log = logging.getLogger(__name__)

FRAME = 160  # 20 ms at 8 kHz: what moves between the two calls at a time

Outcome = Literal[
    "bridged",  # someone took the call and the two were joined
    "declined",  # the staff member answered but did not press 1 (or pressed another key)
    "no_answer",  # nobody answered within the ring time
    "busy",  # the number was busy or refused the call at once
    "caller_gone",  # the caller hung up while we were ringing staff
    "failed",  # the line could not dial
    "unsupported",  # the caller's channel cannot be joined to another call
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeResult:
    outcome: Outcome
    number: str
    seconds: float = 0.0  # how long the two were joined
    ended_by: str = ""  # caller | staff | limit
    recordings: tuple[str, ...] = ()  # media references (the call record keeps them)
    detail: str = ""


@runtime_checkable
class AudioPort(Protocol):
    """A channel whose audio can be joined to another call, 20 ms at a time."""

    @property
    def caller_gone(self) -> bool: ...

    def receive(self, timeout: float = 1.0) -> Pcm | None: ...

    def send(self, frame: Pcm, timeout: float = 1.0) -> bool: ...

    def hang_up(self) -> None: ...


def _duplex(channel: Any, name: str) -> Any:
    """The channel's `start_duplex`/`stop_duplex` (analog V.253 channels), else None."""
    method = getattr(channel, name, None)
    return method if callable(method) else None


def _chat(line: Any, text: str, timeout: float = 10.0) -> Any:
    try:
        return line.command(Command(text, timeout=timeout)).result(timeout + 2.0)
    except Exception as exc:
        return exc


def outgoing_state(line: Any) -> int | None:
    """<stat> of our outgoing call from AT+CLCC (3GPP TS 27.007 7.18): 0 active, 2 dialling,
    3 alerting; None when there is no outgoing call (it ended or was refused)."""
    result = _chat(line, "AT+CLCC", 5.0)
    if not isinstance(result, Response):
        return None
    for text in result.lines:
        if text.upper().startswith("+CLCC:"):
            params = split_params(text.split(":", 1)[1])
            if len(params) > 2 and params[1].strip() == "0" and params[2].strip().isdigit():
                return int(params[2])
    return None


def bridge_call(
    inbound_channel: VoiceChannel,
    outbound_line: Any,
    number: str,
    ring_seconds: float,
    confirm: bool = True,
    *,
    greetings: GreetingSource,
    open_channel: Callable[[Any], Any],
    accept_seconds: float = 10.0,
    recorder: Callable[[Pcm], str] | None = None,
    ringback: Pcm | None = None,
    max_seconds: float = 3600.0,
    poll: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> BridgeResult:
    """Call `number` on `outbound_line`; when the staff member takes it (presses 1 when
    `confirm`), join their audio to the caller's until one side hangs up.

    `open_channel(line)` returns a started voice channel for the answered outgoing call (a
    GSM channel); `recorder(pcm)` stores the mixed recording and returns its reference.
    While staff are rung and asked to press 1 the caller hears `ringback` (one cadence,
    repeated), and a caller who hangs up ends the staff call at once (`caller_gone`).
    The caller's channel is a GSM channel or an analog one that can enter voice duplex: an
    analog line enters it before staff are dialled (a modem that refuses: `unsupported`,
    nobody is called) and is back in command mode when this returns.
    """
    if not isinstance(inbound_channel, AudioPort):
        return BridgeResult(
            outcome="unsupported",
            number=number,
            detail=f"{inbound_channel.description} cannot be joined to another call",
        )
    start = _duplex(inbound_channel, "start_duplex")
    if start is not None and not start():
        if inbound_channel.caller_gone:
            return BridgeResult(outcome="caller_gone", number=number)
        return BridgeResult(
            outcome="unsupported",
            number=number,
            detail=f"{inbound_channel.description}: the modem refused voice duplex (AT+VTR)",
        )
    waiting = Waiting(inbound_channel, ringback).start()
    try:
        return _call_staff(
            inbound_channel,
            waiting,
            outbound_line,
            number,
            ring_seconds,
            confirm,
            greetings=greetings,
            open_channel=open_channel,
            accept_seconds=accept_seconds,
            recorder=recorder,
            max_seconds=max_seconds,
            poll=poll,
            sleep=sleep,
        )
    finally:
        waiting.stop()
        stop = _duplex(inbound_channel, "stop_duplex")
        if stop is not None:
            stop()  # back to command mode before anything else happens on that line


def _call_staff(
    caller: AudioPort,
    waiting: Waiting,
    outbound_line: Any,
    number: str,
    ring_seconds: float,
    confirm: bool,
    *,
    greetings: GreetingSource,
    open_channel: Callable[[Any], Any],
    accept_seconds: float,
    recorder: Callable[[Pcm], str] | None,
    max_seconds: float,
    poll: float,
    sleep: Callable[[float], None],
) -> BridgeResult:
    gone = BridgeResult(outcome="caller_gone", number=number)
    dial = _chat(outbound_line, f"ATD{number};", 20.0)
    if str(getattr(dial, "result", "")).upper() in ("BUSY", "NO CARRIER", "NO ANSWER"):
        return BridgeResult(outcome="busy", number=number, detail="busy")
    if not isinstance(dial, Response) or dial.result.upper() != "OK":
        return BridgeResult(outcome="failed", number=number, detail=_words(dial))
    log.info("%s: calling staff for %.0f s", outbound_line.name, ring_seconds)
    waited = 0.0
    while True:
        if caller.caller_gone or waiting.gone.is_set():
            _hang_up(outbound_line)
            return gone
        state = outgoing_state(outbound_line)
        if state == 0:
            break
        if state is None:
            return BridgeResult(outcome="busy", number=number, detail="the call was refused")
        if waited >= ring_seconds:
            _hang_up(outbound_line)
            return BridgeResult(outcome="no_answer", number=number, detail=f"{ring_seconds:g} s")
        if waiting.listening:
            waiting.gone.wait(poll)  # the caller leaving ends the wait at once
        else:
            sleep(poll)
        waited += poll
    staff = open_channel(outbound_line)
    waiting.when_gone(staff.hang_up)  # a caller leaving while staff listen ends their call
    if confirm:
        played = staff.play(greetings.audio("accept_call"), stop_digits="0123456789*#")
        key = played.digits[:1]
        if not key and played.reason == "done" and not waiting.gone.is_set():
            key = staff.collect_digits(1, accept_seconds, end_digit="").digits[:1]
        if caller.caller_gone or waiting.gone.is_set():
            staff.hang_up()
            return gone
        if key != "1":
            staff.hang_up()
            why = f"pressed {key}" if key else "no key pressed"
            return BridgeResult(outcome="declined", number=number, detail=why)
    waiting.when_gone(None)
    waiting.stop()  # the ringback fades out within 20 ms
    if recorder is not None and not caller.caller_gone:
        say(caller, greetings.audio("recording_notice"))
    if caller.caller_gone:
        staff.hang_up()
        return gone
    for side in (caller, staff):
        while side.receive(0.0) is not None:
            pass  # what each heard before the join (the caller waiting, staff pressing 1)
    seconds, ended_by, tracks = _join(
        caller, staff, outbound_line, max_seconds=max_seconds, poll=poll, sleep=sleep
    )
    stop = _duplex(caller, "stop_duplex")
    if stop is not None:
        stop()  # back to command mode before the staff call is hung up
    staff.hang_up()
    refs: tuple[str, ...] = ()
    if recorder is not None and tracks[0]:
        try:
            refs = (recorder(mix(tracks)),)
        except Exception as exc:
            log.error("call recording not stored: %s", exc)
    log.info("bridged %.0f s, ended by %s", seconds, ended_by)
    return BridgeResult(
        outcome="bridged", number=number, seconds=seconds, ended_by=ended_by, recordings=refs
    )


def say(channel: AudioPort, audio: Pcm) -> bool:
    """Send `audio` to the call 20 ms at a time (reading what comes back, so a hang-up is
    seen); False when the caller left first."""
    pcm = np.asarray(audio, dtype=np.int16)
    for i in range(0, pcm.size, FRAME):
        if channel.caller_gone:
            return False
        channel.send(pcm[i : i + FRAME], 1.0)
        while channel.receive(0.0) is not None:
            pass
    return not channel.caller_gone


class Waiting:
    """The caller's side while staff are called and asked to press 1, on its own thread:
    `ringback` (one cadence, repeated) sent 20 ms at a time, and the caller's audio read
    and dropped, so that a hang-up (analog: `DLE l`, dial or busy tone in the voice duplex
    stream) is seen as it happens. `gone` is set then and the `when_gone` action runs.
    `stop()` ends the ringback with a 20 ms fade, never a cut mid-wave (no click)."""

    def __init__(self, channel: AudioPort, ringback: Pcm | None) -> None:
        self.channel = channel
        signal = None if ringback is None else np.asarray(ringback, dtype=np.int16)
        self.signal = signal if signal is not None and signal.size >= FRAME else None
        self.gone = threading.Event()
        self.frames = 0  # ringback frames sent
        self._action: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pos = 0
        self._thread = threading.Thread(target=self._run, name="ringback", daemon=True)

    @property
    def listening(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> Waiting:
        self._thread.start()
        return self

    def when_gone(self, action: Callable[[], None] | None) -> None:
        """Run `action` when the caller leaves (at once when they already have)."""
        with self._lock:
            self._action = action
            now = action is not None and self.gone.is_set()
        if now and action is not None:
            action()

    def stop(self) -> None:
        """End the ringback (faded) and the listening; waits for the thread (and for the
        `when_gone` action when one is running). Safe twice."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(30.0)

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                if self.channel.caller_gone:
                    self._left()
                    return
                if self.signal is None:
                    self.channel.receive(0.1)
                    continue
                if self.channel.send(self._next(), 0.5):
                    failures = 0
                    self.frames += 1
                else:
                    failures += 1
                    if failures >= 20:
                        log.info("the caller's line takes no ringback; the caller waits in silence")
                        self.signal = None
                    elif self._stop.wait(0.05):
                        break
                while self.channel.receive(0.0) is not None:
                    pass
            if self.signal is not None and not self.channel.caller_gone:
                fade = np.linspace(1.0, 0.0, FRAME)
                self.channel.send(np.round(self._next() * fade).astype(np.int16), 0.5)
        except Exception as exc:  # the caller's line failed: the call goes on without us
            log.warning("ringback: %s", exc)
        if self.channel.caller_gone:
            self._left()

    def _next(self) -> Pcm:
        signal = self.signal
        assert signal is not None
        idx = (self._pos + np.arange(FRAME)) % signal.size
        self._pos = int(idx[-1]) + 1
        return signal[idx]

    def _left(self) -> None:
        with self._lock:
            if self.gone.is_set():
                return
            self.gone.set()
            action = self._action
        log.info("the caller hung up while staff were called")
        if action is not None:
            try:
                action()
            except Exception as exc:
                log.info("ending the staff call: %s", exc)


def _join(
    caller: AudioPort,
    staff: Any,
    staff_line: Any,
    *,
    max_seconds: float,
    poll: float,
    sleep: Callable[[float], None],
) -> tuple[float, str, list[list[Pcm]]]:
    stop = threading.Event()
    tracks: list[list[Pcm]] = [[], []]

    def pump(src: Any, dst: Any, track: list[Pcm]) -> None:
        while not stop.is_set():
            frame = src.receive(0.5)
            if frame is None:
                if src.caller_gone:
                    break
                continue
            dst.send(frame, 0.5)
            track.append(frame)
        stop.set()

    threads = [
        threading.Thread(target=pump, args=(caller, staff, tracks[0]), daemon=True),
        threading.Thread(target=pump, args=(staff, caller, tracks[1]), daemon=True),
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    ended_by = ""
    checks = 0
    while not stop.is_set():
        sleep(poll)
        checks += 1
        if caller.caller_gone:
            ended_by = "caller"
        elif staff.caller_gone or (checks % 4 == 0 and outgoing_state(staff_line) is None):
            ended_by = "staff"  # the line publishes no hang-up for calls we made: ask it
        elif time.monotonic() - started > max_seconds:
            ended_by = "limit"
        if ended_by:
            stop.set()
    for t in threads:
        t.join(2.0)
    if not ended_by:
        ended_by = "caller" if caller.caller_gone else "staff"
    n = min(len(tracks[0]), len(tracks[1])) or max(len(tracks[0]), len(tracks[1]))
    return n * 0.02, ended_by, tracks


def _hang_up(line: Any) -> None:
    try:
        line.hangup().result(15.0)
    except Exception as exc:
        log.info("%s: hang-up: %s", getattr(line, "name", "line"), exc)


def _words(result: Any) -> str:
    if isinstance(result, ErrorResult):
        return result.message or result.result
    if isinstance(result, Response):
        return result.result
    if isinstance(result, Exception):
        return str(result) or type(result).__name__
    return "no answer from the modem"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferResult:
    ok: bool
    commands: tuple[str, ...]
    detail: str = ""


PAUSE_SECONDS = 2.0  # a comma in a dial string (V.250 S8's usual 2 s)


def dial_digits(number: str, country: str, prefix: str = "") -> str:
    """What a line in `country` dials to reach `number` (E.164, "+447700900001"), as the
    exchange wants it: the national form inside the country (GB "07700900001"; NANP "1" and
    ten digits, also between NANP countries), else its international prefix and the full
    number (from the US "011447700900001", from GB "0015550109999"); `prefix` first (a
    PBX's outside line, "9" or "9," with a pause). Digits, `*`, `#` and commas only; ""
    when `number` is no phone number. A number that could not be read as E.164 (no "+", an
    extension of the phone system such as "204") is dialled as written, without `prefix`."""
    raw = number.strip()
    if not raw.startswith("+"):
        return re.sub(r"[^0-9*#]", "", raw)
    import phonenumbers  # only when a transfer dials

    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return ""
    if not country or phonenumbers.country_code_for_region(country.upper()) == 0:
        text = raw  # the office's country is unknown: nothing better than the digits
    else:
        text = phonenumbers.format_out_of_country_calling_number(parsed, country.upper())
    digits = re.sub(r"[^0-9*#]", "", text)
    return prefix + digits if digits else ""


DIAL_TONE_TIMEOUT = 4.0  # seconds of the line's audio after a hook flash to hear dial tone


def hook_flash_transfer(
    line: Any,
    number: str,
    flash_ms: int = 500,
    *,
    listen: Callable[[float], bool] | None = None,
    dial_tone_timeout: float = DIAL_TONE_TIMEOUT,
    dial_tone_wait: float = 1.5,
    pause: float = PAUSE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> TransferResult:
    """Blind transfer on a PBX/Centrex line: hook flash (`AT+VTS={!,<ms/10>}`), wait for the
    exchange's dial tone, dial `number` with `AT+VTS=`, hang up (REFERENCE.md 1).

    `listen(timeout)` hears the line after the flash (`AnalogVoiceChannel.wait_for_dial_tone`:
    AT+VRX, the modem's `DLE d` or the tone found in the audio) and says whether dial tone
    came within `dial_tone_timeout` s. When it did not, the exchange did not take the flash
    (a plain line, or a flash length it does not accept): a second flash takes the caller
    back from hold, nothing is dialled, and the result says so (the call goes on to its next
    step, the voicemail). Without `listen` a fixed `dial_tone_wait` stands in for the tone.

    `number` is dialled as given (`dial_digits` makes it): digits, `*`, `#`, and commas,
    each a `pause` (a PBX's second dial tone after its outside-line prefix "9,"): every
    group between pauses is one `AT+VTS`. Not verified on hardware.
    """
    groups = re.findall(r"[0-9*#ABCD]+|,", number)
    if not any(g != "," for g in groups):
        return TransferResult(ok=False, commands=(), detail=f"{number!r} has no digits to dial")
    flash = f"AT+VTS={{!,{max(1, round(flash_ms / 10))}}}"
    sent: list[str] = [flash]
    result = _chat(line, flash, 30.0)
    if not isinstance(result, Response):
        return TransferResult(ok=False, commands=tuple(sent), detail=_words(result))
    if listen is None:
        sleep(dial_tone_wait)
    else:
        heard = listen(dial_tone_timeout)
        sent.append("dial tone" if heard else "no dial tone")
        if not heard:
            sent.append(flash)
            back = _chat(line, flash, 30.0)  # take the held caller back
            words = f"no dial tone within {dial_tone_timeout:g} s of the hook flash"
            if isinstance(back, Response):
                words += " (the line is not on a phone system that transfers, or the flash "
                words += "length is wrong); flashed again to take the caller back"
            else:
                words += f"; the second flash failed: {_words(back)}"
            return TransferResult(ok=False, commands=tuple(sent), detail=words)
    for group in groups:
        if group == ",":
            sleep(pause)
            continue
        step = "AT+VTS=" + ",".join(group)
        sent.append(step)
        result = _chat(line, step, 30.0)
        if not isinstance(result, Response):
            return TransferResult(ok=False, commands=tuple(sent), detail=_words(result))
    sleep(dial_tone_wait)  # let the exchange hear the last digit before we let go
    _hang_up(line)
    sent.append("hang up")
    return TransferResult(ok=True, commands=tuple(sent))


__all__ = [
    "DIAL_TONE_TIMEOUT",
    "AudioPort",
    "BridgeResult",
    "TransferResult",
    "Waiting",
    "bridge_call",
    "dial_digits",
    "hook_flash_transfer",
    "outgoing_state",
    "say",
]
