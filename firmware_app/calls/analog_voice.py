"""`AnalogVoiceChannel`: the audio of an answered call on an analog voice modem (ITU-T V.253).

Plays with AT+VTX (DLE doubling, paced to real time a little ahead of the modem's buffer),
records and listens with AT+VRX (DLE events, in-band DTMF, silence, dial/busy tone and CNG
found in software), per-modem quirks from `protocol.voice`. Runs on the session's thread;
the line's thread only decodes bytes into a queue, so it is never blocked here.

Joined to another call (`calls.bridge`), it is an `AudioPort`: the first `receive`/`send`
(or `start_duplex`) enters V.253 voice duplex, `AT+VTR` (U.S. Robotics 56K command reference
and Conexant CX930xx AT command reference 102752B, "+VTR - Start Voice Transmission and
Reception"): the modem's audio and DLE events come in as with AT+VRX while our audio goes
out as with AT+VTX, 20 ms at a time, from the two pump threads of the bridge.
`stop_duplex` sends `DLE ^`, waits for the modem's `DLE ETX` and `OK`, and is back in
command mode; `hang_up` does that first when duplex is still on.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..events import EventBus
from ..media import codecs
from ..media.dsp import DialToneDetector, DtmfDigit, FaxCalling, LineMonitor, dbfs
from ..modem.events import CallerHungUp
from ..modem.line import Line
from ..protocol.at import Command, Response
from ..protocol.voice import (
    NEED_DATA,
    Audio,
    DleDecoder,
    Dtmf,
    End,
    Flow,
    HangupDetector,
    Tone,
    VoiceEvent,
    VoiceFormat,
    VoiceQuirks,
    abort_play,
    choose_format,
    chunks,
    duplex_commands,
    end_duplex,
    end_play,
    escape,
    ifc_offers,
    parse_ifc,
    quirks_for,
    record_commands,
    stop_record,
)
from .voice import RATE, DigitsResult, EndReason, Pcm, PlayResult, RecordResult

log = logging.getLogger(__name__)

ALL_KEYS = "0123456789*#ABCD"
HANGUP_TONES = {"loop_break", "busy", "dial_tone"}
SAME_KEY_WINDOW = 0.5  # a key heard in the audio and reported by the modem is one press
TAIL_SECONDS = 0.3  # quiet kept at the end of a trimmed recording
QUIET_DBFS = -45.0
FRAME = RATE // 50  # 20 ms: what a bridge moves at a time
DUPLEX_SILENCE = 120.0  # seconds of a silent line that end a joined call (no DLE l, no tone)
DUPLEX_END_WAIT = 2.0  # seconds to wait for DLE ETX after DLE ^ (then DLE ! is tried)
DUPLEX_KEEP = 0.5  # seconds of the caller's audio held when nobody takes it (then dropped)
XOFF_LIMIT = 2.0  # seconds to hold our audio after the modem's XOFF without its XON
# After a hook flash: this much steady dial tone in the audio confirms the exchange's (a
# recall tone's stutter comes before it; a burst of ringback or busy tone is shorter).
FLASH_DIAL_TONE = 0.5


@dataclass(frozen=True, slots=True)
class Pacing:
    """How playback is paced: `speed` > 1 runs faster than real time (tests, simulator);
    `lead` is how far ahead of the modem we stay, in seconds of audio."""

    speed: float = 1.0
    lead: float = 0.1
    chunk_ms: int = 20


class _Stream:
    """The modem's bytes in one voice data state: decoded on the line's thread into a queue."""

    def __init__(self, decoder: DleDecoder, clock: Callable[[], float]) -> None:
        self.decoder = decoder
        self.clock = clock
        self.events: queue.SimpleQueue[VoiceEvent] = queue.SimpleQueue()
        # What follows the data (the OK line): handed to leave_data(), and still growing until
        # leave_data() runs on the line's thread, so nothing that arrives in between is lost.
        self.after = bytearray()
        self.ended = threading.Event()
        self.text_only = False  # after our end of AT+VTX: only the result line follows
        self._dle = False

    def on_data(self, data: bytes) -> None:
        if self.text_only or self.decoder.ended:
            self._text(data)
            return
        self.decoder.receive_data(data, now=self.clock())
        while (ev := self.decoder.next_event()) is not NEED_DATA:
            assert isinstance(ev, VoiceEvent)
            self.events.put(ev)
        if self.decoder.ended:
            self.after += self.decoder.trailing_data
            self.ended.set()

    def _text(self, data: bytes) -> None:
        """Keep the result text; drop DLE codes the modem may still send before it."""
        for b in data:
            if self._dle:
                self._dle = False
            elif b == 0x10:
                self._dle = True
            else:
                self.after.append(b)

    def get(self, timeout: float) -> VoiceEvent | None:
        try:
            return self.events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None


class _AudioDecoder:
    """The modem's audio bytes as 16-bit 8 kHz samples, whatever sizes they come in: a
    16-bit sample can be split between two reads (or by an escaped 0x10 the DLE decoder
    holds back), so its first byte waits for the second."""

    def __init__(self, fmt: VoiceFormat) -> None:
        self.fmt = fmt
        self.carry = b""

    def __call__(self, data: bytes) -> Pcm:
        raw = self.carry + data
        cut = len(raw) - len(raw) % self.fmt.bytes_per_sample
        self.carry = raw[cut:]
        pcm = codecs.decode(raw[:cut], self.fmt.codec)
        if self.fmt.rate != RATE:
            pcm = codecs.resample(pcm, self.fmt.rate, RATE)
        return pcm


class _Duplex:
    """One AT+VTR data state: the stream, what was sent and heard, the line monitor."""

    def __init__(self, stream: _Stream, fmt: VoiceFormat, started: float) -> None:
        self.stream = stream
        self.fmt = fmt
        self.started = started
        self.sent = 0.0  # seconds of our audio written, on the modem's (stream) clock
        self.closing = False
        self.heard: deque[Pcm] = deque()
        self.held = 0  # samples in `heard`
        self.decode = _AudioDecoder(fmt)
        self.samples = 0  # samples heard in all
        self.monitor = LineMonitor(
            hangup=HangupDetector(start=0.0, silence_seconds=DUPLEX_SILENCE, modem_silence=False),
            silence_seconds=DUPLEX_SILENCE,
        )

    def frame(self) -> Pcm:
        """The next 20 ms heard (call only with `held >= FRAME`)."""
        parts: list[Pcm] = []
        need = FRAME
        while need:
            head = self.heard[0]
            if head.size <= need:
                parts.append(self.heard.popleft())
                need -= head.size
            else:
                parts.append(head[:need])
                self.heard[0] = head[need:]
                need = 0
        self.held -= FRAME
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class AnalogVoiceChannel:
    """A `VoiceChannel` over a `Line` whose modem is in voice mode (answered with +FCLASS=8)."""

    def __init__(
        self,
        line: Line,
        *,
        bus: EventBus | None = None,
        call_id: int = 0,
        pacing: Pacing | None = None,
        clock: Callable[[], float] = time.monotonic,
        command_timeout: float = 5.0,
    ) -> None:
        self.line = line
        self.call_id = call_id
        self.pacing = pacing or Pacing()
        self.clock = clock
        self.command_timeout = command_timeout
        profile = line.profile
        info = profile.info[0] if profile is not None and profile.info else ""
        model = f"{profile.manufacturer} {profile.model}" if profile is not None else ""
        self.quirks: VoiceQuirks = quirks_for(info, model)
        self.format: VoiceFormat | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._gone = threading.Event()
        self._gone_why = ""
        self._busy = False
        self._hang_up_after = False
        self._hung_up = False
        self._last_key: tuple[str, float, str] | None = None  # digit, clock, source:state
        self._states = 0  # data states entered (AT+VTX / AT+VRX / AT+VTR)
        self._duplex: _Duplex | None = None
        self._duplex_lock = threading.Lock()  # entering and leaving AT+VTR
        self._duplex_refused = False
        self._write_lock = threading.Lock()  # our audio and DLE ^ never interleave
        self._digits: deque[str] = deque()  # keys pressed during duplex
        # V.250 +IFC around our transmit state: (what to set, what to put back), when the
        # modem offers software flow control towards us and does not use it already.
        self._flow: tuple[tuple[int, int], tuple[int, int]] | None = None
        self.flow_control = "not asked"  # for logs: what the modem does to slow us down
        self._unsubscribe: Callable[[], None] | None = None
        if bus is not None:
            self._unsubscribe = bus.subscribe(CallerHungUp, self._on_caller_hung_up)

    # -- VoiceChannel -------------------------------------------------------------------------

    @property
    def description(self) -> str:
        fmt = self.format
        words = f"{fmt.name} {fmt.rate / 1000:g} kHz" if fmt else "format not chosen yet"
        return f"analog V.253 {words} ({self.quirks.name} modem)"

    @property
    def caller_gone(self) -> bool:
        return self._gone.is_set()

    def play(self, audio: Pcm, *, stop_digits: str = ALL_KEYS) -> PlayResult:
        self.stop_duplex()
        if not self._begin():
            return PlayResult(reason="hangup")
        try:
            return self._play(audio, stop_digits)
        except Exception as exc:  # a line gone mid-call must not kill the session
            log.warning("%s: playback failed: %s", self.line.name, exc)
            return PlayResult(reason="error")
        finally:
            self._end()

    def record(
        self, max_seconds: float, *, stop_digits: str = "#", silence_seconds: float = 6.0
    ) -> RecordResult:
        empty = np.zeros(0, dtype=np.int16)
        self.stop_duplex()
        if not self._begin():
            return RecordResult(reason="hangup", audio=empty)
        try:
            got = self._listen(
                max_seconds=max_seconds,
                stop_digits=stop_digits,
                silence_seconds=silence_seconds,
                keep=True,
            )
        except Exception as exc:
            log.warning("%s: recording failed: %s", self.line.name, exc)
            return RecordResult(reason="error", audio=empty, detail=str(exc))
        finally:
            self._end()
        return RecordResult(
            reason=got.reason,
            audio=got.audio,
            digits=got.digits,
            seconds=got.audio.size / RATE,
            detail=got.detail,
        )

    def collect_digits(self, count: int, timeout: float, *, end_digit: str = "#") -> DigitsResult:
        self.stop_duplex()
        if not self._begin():
            return DigitsResult(reason="hangup")
        try:
            got = self._listen(
                max_seconds=timeout,
                stop_digits=end_digit,
                silence_seconds=timeout + 60.0,
                keep=False,
                count=count,
            )
        except Exception as exc:
            log.warning("%s: waiting for keys failed: %s", self.line.name, exc)
            return DigitsResult(reason="error")
        finally:
            self._end()
        reason: EndReason = got.reason
        if reason == "digit" or (count and len(got.digits) >= count):
            reason = "done"
        elif reason == "done":
            reason = "silence"  # the time ran out
        return DigitsResult(
            reason=reason, digits=got.digits.rstrip(end_digit) if end_digit else got.digits
        )

    def wait_for_dial_tone(self, timeout: float) -> bool:
        """After a hook flash: listen to the line (`AT+VRX`) until the exchange's dial tone
        is heard, from the modem (`DLE d`) or in the audio (`FLASH_DIAL_TONE` s of a dial
        tone set, `DialToneDetector`). False when `timeout` s of audio passed without it,
        the line ended the state or failed. Back in command mode either way (`DLE !`)."""
        self.stop_duplex()
        if not self._begin():
            return False
        try:
            return self._dial_tone(timeout)
        except Exception as exc:
            log.warning("%s: listening for dial tone failed: %s", self.line.name, exc)
            return False
        finally:
            self._end()

    def hang_up(self) -> None:
        with self._lock:
            if self._hung_up:
                return
            self._stop.set()
            duplex = self._duplex is not None
            if self._busy:
                self._hang_up_after = True  # the running step hangs up once out of data mode
                if not duplex:
                    return
            else:
                self._hung_up = True
        if duplex:
            self.stop_duplex()  # back to command mode; its end hangs up
        else:
            self._do_hang_up()

    def close(self) -> None:
        """Stop listening to the bus; hang up if still on the line. Safe twice."""
        self.hang_up()
        self.release()

    def release(self) -> None:
        """Let go of the call without hanging up (another service, e.g. fax, took the line).

        Stops listening to the bus; safe twice."""
        self._stop.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- AudioPort (calls.bridge): voice duplex ------------------------------------------------

    def start_duplex(self) -> bool:
        """Enter voice duplex (`AT+VTR`) unless already in it; False when the modem refused
        (then it is not asked again for this call) or the call is over."""
        with self._duplex_lock:
            if self._duplex is not None:
                return not self._duplex.closing
            if self._duplex_refused or not self._begin():
                return False
            try:
                fmt = self._setup()
                for text in duplex_commands(self.quirks)[:-1]:
                    if not isinstance(self._command(text), Response):
                        log.info("%s: %s refused", self.line.name, text)
                stream = _Stream(DleDecoder(bytes_per_second=fmt.bytes_per_second), self.clock)
                entered = self._enter("AT+VTR", stream)
            except Exception as exc:
                log.warning("%s: voice duplex failed: %s", self.line.name, exc)
                entered = False
            if not entered:
                self._duplex_refused = True
                self._end()
                return False
            self._duplex = _Duplex(stream, fmt, self.clock())
            log.info("%s: voice duplex (AT+VTR), %s", self.line.name, fmt.name)
        if self._stop.is_set():  # hung up while the modem was answering
            self.stop_duplex()
            return False
        return True

    def stop_duplex(self) -> None:
        """Leave voice duplex: `DLE ^`, the modem's `DLE ETX` and `OK`, command mode again.
        Nothing when not in it; safe from any thread."""
        with self._duplex_lock:
            d = self._duplex
            if d is None:
                return
            with self._write_lock:
                d.closing = True
                try:
                    if not d.stream.ended.is_set():
                        self.line.write_data(end_duplex(self.quirks))
                except Exception as exc:
                    log.info("%s: ending voice duplex: %s", self.line.name, exc)
            if not d.stream.ended.wait(DUPLEX_END_WAIT):
                # Neither manual says what a modem does with DLE ^ it does not know; DLE ! is
                # V.253's receive abort, the nearest code every voice modem takes.
                log.info("%s: no DLE ETX after DLE ^; sending DLE !", self.line.name)
                with contextlib.suppress(Exception):
                    self.line.write_data(stop_record(self.quirks))
                d.stream.ended.wait(DUPLEX_END_WAIT)
            self._leave(d.stream, "AT+VTR")
            self._duplex = None
            log.info("%s: voice duplex ended after %.1f s", self.line.name, d.samples / RATE)
        self._end()

    def receive(self, timeout: float = 1.0) -> Pcm | None:
        """The caller's next 20 ms (16-bit 8 kHz), or None: nothing within `timeout`, the
        caller gone, or duplex refused. Enters duplex on first use. One reader at a time."""
        if not self.start_duplex():
            return None
        d = self._duplex
        if d is None:
            return None
        deadline = self.clock() + timeout
        while d.held < FRAME:
            if d.closing or self._gone.is_set() or self._stop.is_set():
                return None
            ev = d.stream.get(min(0.5, deadline - self.clock()))
            if ev is not None:
                self._duplex_event(d, ev)
            elif self.clock() >= deadline:
                return None
        return d.frame()

    def send(self, frame: Pcm, timeout: float = 1.0) -> bool:
        """20 ms for the caller (16-bit 8 kHz; shorter frames are padded): encoded in the
        +VSM format, DLE doubled, paced to stay at most `Pacing.lead` ahead of the modem
        (a frame that would have to wait longer than `timeout` is dropped: False)."""
        if not self.start_duplex():
            return False
        d = self._duplex
        if d is None or d.closing or self._gone.is_set():
            return False
        pcm = np.asarray(frame, dtype=np.int16)[:FRAME]
        if pcm.size < FRAME:
            pcm = np.pad(pcm, (0, FRAME - pcm.size))
        data = escape(self._encode(pcm, d.fmt))
        speed, lead = self.pacing.speed, self.pacing.lead
        played = (self.clock() - d.started) * speed
        if d.sent < played:
            d.sent = played  # the modem ran dry (it played silence): go on from now
        wait = (d.sent - played - lead) / speed
        if wait > timeout:
            return False
        if wait > 0 and self._stop.wait(wait):
            return False
        with self._write_lock:
            if d.closing:
                return False
            try:
                self.line.write_data(data)
            except Exception as exc:
                log.info("%s: duplex audio not sent: %s", self.line.name, exc)
                return False
        d.sent += FRAME / RATE
        return True

    def take_digit(self) -> str | None:
        """A key the caller pressed during duplex, oldest first."""
        return self._digits.popleft() if self._digits else None

    def _duplex_event(self, d: _Duplex, ev: VoiceEvent) -> None:
        t = d.samples / RATE
        if isinstance(ev, Audio):
            pcm = d.decode(ev.data)
            d.samples += pcm.size
            d.heard.append(pcm)
            d.held += pcm.size
            while d.held - d.heard[0].size >= DUPLEX_KEEP * RATE:
                d.held -= d.heard.popleft().size  # nobody takes it: keep the latency low
            for found in d.monitor.feed(pcm):
                if isinstance(found, DtmfDigit) and self._key(found.digit, found.start, "audio"):
                    self._digits.append(found.digit)
            gone = d.monitor.caller_gone
            if gone is not None:
                self._caller_left(_hangup_reason(gone.reason, gone.since)[2])
        elif isinstance(ev, Dtmf):
            if self._key(ev.digit, t, "modem"):
                self._digits.append(ev.digit)
        elif isinstance(ev, Tone):
            if ev.kind in HANGUP_TONES:
                self._caller_left(f"modem: DLE {ev.code}")
        elif isinstance(ev, End):
            # The modem left duplex by itself (its inactivity timer, +VIT): the call can
            # carry no more audio, so the bridge ends as if the caller had gone.
            self._caller_left("the modem ended voice duplex")

    # -- steps --------------------------------------------------------------------------------

    def _begin(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self._gone.is_set() or self._hung_up:
                return False
            self._busy = True
            return True

    def _end(self) -> None:
        with self._lock:
            self._busy = False
            after = self._hang_up_after and not self._hung_up
            if after:
                self._hung_up = True
        if after:
            self._do_hang_up()

    def _do_hang_up(self) -> None:
        try:
            self.line.hangup().result(timeout=self.command_timeout + 5)
        except Exception as exc:
            log.info("%s: hang-up: %s", self.line.name, exc)

    def _on_caller_hung_up(self, event: CallerHungUp) -> None:
        if event.line == self.line.name and (not self.call_id or event.call_id == self.call_id):
            self._caller_left(event.reason)

    def _caller_left(self, why: str) -> None:
        if not self._gone.is_set():
            self._gone_why = why
            log.info("%s: the caller is gone (%s)", self.line.name, why)
        self._gone.set()

    def _command(self, text: str) -> Any:
        fut: Future[Any] = self.line.command(Command(text, timeout=self.command_timeout))
        return fut.result(timeout=self.command_timeout + 5)

    def _setup(self) -> VoiceFormat:
        """Choose the audio format from what the modem offers (AT+VSM=?) and select it."""
        if self.format is not None:
            return self.format
        answer = self._command("AT+VSM=?")
        lines: tuple[str, ...] = answer.lines if isinstance(answer, Response) else ()
        fmt = choose_format(lines)
        if fmt is None:
            profile = self.line.profile
            offered = profile.voice_formats if profile is not None else ()
            fmt = choose_format(f'{f.code},"{f.name}",8,0,(8000)' for f in offered)
        if fmt is None:
            raise RuntimeError("the modem offers no audio format Frontdesk can decode")
        selected = self._command(fmt.command)
        if not isinstance(selected, Response):
            raise RuntimeError(f"the modem refused {fmt.command}")
        self.format = fmt
        log.info("%s: voice audio %s (%s)", self.line.name, fmt.name, fmt.command)
        self._flow_setup()
        return fmt

    def _flow_setup(self) -> None:
        """Which flow control the modem offers (V.250 6.2.12 `AT+IFC=?`) and uses (`AT+IFC?`).
        Software flow control (<DTE_by_DCE> 1: it sends XOFF/XON) works over any port, so
        while we play it is switched on (and put back after); the modem's XOFF then holds our
        audio until its XON. Without `+IFC` (USR5637) pacing is all there is, besides a USB
        modem's own (its endpoint takes no more than it can hold)."""
        current = self._command("AT+IFC?")
        now = parse_ifc(current.lines) if isinstance(current, Response) else None
        if now is None:
            self.flow_control = "none offered (+IFC): paced by the clock"
            return
        if now[1] == 1:
            self.flow_control = "XON/XOFF (the modem's setting)"
            return
        offered = self._command("AT+IFC=?")
        if isinstance(offered, Response) and ifc_offers(offered.lines, 1):
            # Never 1 the other way: our audio holds DC1/DC3 bytes the modem must not obey.
            self._flow = ((0 if now[0] == 1 else now[0], 1), now)
            self.flow_control = "XON/XOFF while playing (AT+IFC)"
        else:
            self.flow_control = f"+IFC {now[0]},{now[1]}: paced by the clock"
        log.info("%s: flow control: %s", self.line.name, self.flow_control)

    def _set_flow(self, values: tuple[int, int]) -> bool:
        answer = self._command(f"AT+IFC={values[0]},{values[1]}")
        if not isinstance(answer, Response):
            log.info("%s: AT+IFC=%d,%d refused", self.line.name, *values)
            return False
        return True

    def _enter(self, text: str, stream: _Stream) -> bool:
        self._states += 1
        fut = self.line.enter_data(Command(text, timeout=self.command_timeout), stream.on_data)
        result = fut.result(timeout=self.command_timeout + 5)
        ok = isinstance(result, Response) and result.result.upper().startswith("CONNECT")
        if not ok:
            log.warning(
                "%s: %s answered %s", self.line.name, text, getattr(result, "result", result)
            )
        return ok

    def _leave(self, stream: _Stream, command: str) -> None:
        fut = self.line.leave_data(
            stream.after,  # type: ignore[arg-type]  # grows until the line switches back
            await_result=Command(command, timeout=self.command_timeout),
        )
        try:
            fut.result(timeout=self.command_timeout + 5)
        except Exception as exc:
            log.info("%s: leaving %s: %s", self.line.name, command, exc)

    def _encode(self, audio: Pcm, fmt: VoiceFormat) -> bytes:
        pcm = np.asarray(audio, dtype=np.int16)
        if fmt.rate != RATE:
            pcm = codecs.resample(pcm, RATE, fmt.rate)
        return codecs.encode(pcm, fmt.codec)

    def _key(self, digit: str, at: float, source: str) -> bool:
        """True when `digit` is a new press: not the same key heard both in the audio and
        from the modem, nor a held key still repeating after the data state changed."""
        now = self.clock()
        last = self._last_key
        self._last_key = (digit, now, f"{source}:{self._states}")
        if last is None or last[0] != digit or last[2] == self._last_key[2]:
            return True  # within one data state and source the decoders count presses
        return (now - last[1]) * self.pacing.speed >= SAME_KEY_WINDOW

    def _play(self, audio: Pcm, stop_digits: str) -> PlayResult:
        fmt = self._setup()
        data = self._encode(audio, fmt)
        stream = _Stream(
            DleDecoder(keep_audio=False, bytes_per_second=fmt.bytes_per_second), self.clock
        )
        flow = self._flow is not None and self._set_flow(self._flow[0])
        try:
            if not self._enter("AT+VTX", stream):
                return PlayResult(reason="error")
            return self._transmit(data, fmt, stream, stop_digits)
        finally:
            if flow and self._flow is not None:
                self._set_flow(self._flow[1])

    def _transmit(
        self, data: bytes, fmt: VoiceFormat, stream: _Stream, stop_digits: str
    ) -> PlayResult:
        speed, lead = self.pacing.speed, self.pacing.lead
        start = self.clock()
        sent = 0.0
        digits = ""
        reason: EndReason = "done"
        paused: float | None = None  # since when the modem's XOFF holds us
        held = 0.0  # seconds the modem held us: its clock, not ours, paces the rest

        def resume() -> None:
            nonlocal paused, held
            if paused is not None:
                held += self.clock() - paused
                paused = None

        def drain(wait: float) -> EndReason:
            nonlocal digits, paused
            deadline = self.clock() + wait
            while True:
                ev = stream.get(deadline - self.clock())
                if ev is None:
                    return "hangup" if self._stop.is_set() or self._gone.is_set() else "done"
                if isinstance(ev, Flow):
                    if ev.paused and paused is None:
                        paused = self.clock()
                    elif not ev.paused:
                        resume()
                elif isinstance(ev, Dtmf):
                    t = (self.clock() - start) * speed
                    if self._key(ev.digit, t, "modem"):
                        digits += ev.digit
                        if ev.digit in stop_digits:
                            return "digit"
                elif isinstance(ev, Tone):
                    if ev.kind == "fax_calling":
                        return "fax"
                    if ev.kind in HANGUP_TONES:
                        self._caller_left(f"modem: DLE {ev.code}")
                        return "hangup"
                elif isinstance(ev, End):
                    return "error"

        for chunk in chunks(data, self.pacing.chunk_ms, fmt.rate, fmt.bytes_per_sample):
            ahead = sent - (self.clock() - start - held) * speed
            reason = drain(max(0.0, (ahead - lead) / speed))
            while reason == "done" and paused is not None:  # XOFF: wait for XON
                if self.clock() - paused > XOFF_LIMIT:
                    log.warning(
                        "%s: no XON %.0f s after XOFF; going on", self.line.name, XOFF_LIMIT
                    )
                    resume()
                    break
                reason = drain(0.02)
            if reason != "done":
                break
            self.line.write_data(chunk.data)
            sent += chunk.seconds
        stream.text_only = True
        self.line.write_data(end_play(self.quirks) if reason == "done" else abort_play(self.quirks))
        self._leave(stream, "AT+VTX")
        played = min(sent, (self.clock() - start - held) * speed)
        return PlayResult(reason=reason, digits=digits, seconds=round(played, 3))

    def _dial_tone(self, timeout: float) -> bool:
        fmt = self._setup()
        for text in record_commands(self.quirks)[:-1]:
            if not isinstance(self._command(text), Response):  # USR5637: AT+VLS=5
                log.info("%s: %s refused", self.line.name, text)
        stream = _Stream(DleDecoder(bytes_per_second=fmt.bytes_per_second), self.clock)
        if not self._enter("AT+VRX", stream):
            return False
        detector = DialToneDetector(seconds=FLASH_DIAL_TONE)
        decode = _AudioDecoder(fmt)
        heard = ""
        samples = 0
        wall_end = self.clock() + timeout / self.pacing.speed + 2.0
        while not heard and samples < timeout * RATE and not self._stop.is_set():
            if self.clock() > wall_end:
                break  # the modem stopped sending audio
            ev = stream.get(0.1)
            if isinstance(ev, Audio):
                pcm = decode(ev.data)
                samples += pcm.size
                found = detector.feed(pcm)
                if found:
                    heard = f"{found[0].tone} Hz after {found[0].start:.1f} s"
            elif isinstance(ev, Tone) and ev.kind == "dial_tone":
                heard = f"modem: DLE d after {samples / RATE:.1f} s"
            elif isinstance(ev, End):
                break
        if not stream.ended.is_set():
            self.line.write_data(stop_record(self.quirks))
            stream.ended.wait(2.0)
        self._leave(stream, "AT+VRX")
        if heard:
            log.info("%s: dial tone after the hook flash (%s)", self.line.name, heard)
        else:
            log.info("%s: no dial tone %.1f s after the hook flash", self.line.name, samples / RATE)
        return bool(heard)

    def _listen(
        self,
        *,
        max_seconds: float,
        stop_digits: str,
        silence_seconds: float,
        keep: bool,
        count: int = 0,
    ) -> _Heard:
        fmt = self._setup()
        for text in record_commands(self.quirks)[:-1]:
            answer = self._command(text)  # USR5637: AT+VLS=5 before AT+VRX
            if not isinstance(answer, Response):
                log.info("%s: %s refused", self.line.name, text)
        stream = _Stream(DleDecoder(bytes_per_second=fmt.bytes_per_second), self.clock)
        if not self._enter("AT+VRX", stream):
            return _Heard(reason="error", detail="the modem refused AT+VRX")
        listening = keep or silence_seconds < max_seconds
        hangup = HangupDetector(
            start=0.0,
            silence_seconds=silence_seconds,
            max_duration=max_seconds,
            modem_silence=self.quirks.modem_silence_works and listening,
        )
        monitor = LineMonitor(hangup=hangup, silence_seconds=silence_seconds)
        decode = _AudioDecoder(fmt)
        pieces: list[Pcm] = []
        samples = 0
        digits = ""
        reason: EndReason | None = None
        cut: float | None = None
        detail = ""
        wall_end = self.clock() + max_seconds / self.pacing.speed + 5.0

        def press(digit: str, at: float, source: str) -> None:
            nonlocal digits, reason, cut
            if not self._key(digit, at, source):
                return
            digits += digit
            if digit in stop_digits or (count and len(digits) >= count):
                reason, cut = "digit", at

        while reason is None:
            if self._stop.is_set() or self._gone.is_set():
                reason, detail = "hangup", self._gone_why or "hung up from our side"
                cut = samples / RATE
                break
            ev = stream.get(0.1)
            t = samples / RATE
            if ev is None:
                if self.clock() > wall_end:
                    reason, detail = "error", "the modem stopped sending audio"
                continue
            if isinstance(ev, Audio):
                pcm = decode(ev.data)
                if keep:
                    pieces.append(pcm)
                samples += pcm.size
                for found in monitor.feed(pcm):
                    if isinstance(found, DtmfDigit):
                        press(found.digit, found.start, "audio")
                    elif isinstance(found, FaxCalling):
                        reason, cut, detail = "fax", found.start, "fax calling tone (1100 Hz)"
                    if reason is not None:
                        break
                if reason is None and hangup.result is not None:
                    reason, cut, detail = _hangup_reason(hangup.result.reason, hangup.result.since)
            elif isinstance(ev, Dtmf):
                press(ev.digit, t, "modem")
            elif isinstance(ev, Tone):
                if ev.kind == "fax_calling":
                    reason, cut, detail = "fax", t, "modem: DLE c"
                    continue
                found_h = hangup.event(ev, t)
                if found_h is not None:
                    reason, cut, detail = _hangup_reason(found_h.reason, found_h.since)
                    detail = f"modem: DLE {ev.code}" if found_h.reason != "silence" else detail
            elif isinstance(ev, End):
                reason, cut, detail = "hangup", t, "the modem ended the recording"
        if reason == "hangup" and detail.startswith(("modem", "dial", "busy")):
            self._caller_left(detail)
        if not stream.ended.is_set():
            self.line.write_data(stop_record(self.quirks))
            stream.ended.wait(2.0)
        self._leave(stream, "AT+VRX")
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
        if keep:
            audio = trim(audio, cut if reason != "done" else None)
        return _Heard(reason=reason, audio=audio, digits=digits, detail=detail)


def _no_audio() -> Pcm:
    return np.zeros(0, dtype=np.int16)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Heard:
    reason: EndReason
    audio: Pcm = field(default_factory=_no_audio)
    digits: str = ""
    detail: str = ""


def _hangup_reason(reason: str, since: float) -> tuple[EndReason, float, str]:
    words = {
        "loop_break": "modem: loop current break",
        "busy": "modem: busy tone",
        "dial_tone": "modem: dial tone",
        "modem_silence": "modem: silence",
        "modem_quiet": "modem: quiet",
        "silence": f"silence from {since:.1f} s",
        "dial_tone_audio": f"dial tone after {since:.1f} s",
        "busy_tone_audio": f"busy tone after {since:.1f} s",
        "max_duration": "maximum length reached",
        "stream_end": "the modem ended the recording",
    }.get(reason, reason)
    if reason == "max_duration":
        return "done", since, words
    if reason in ("silence", "modem_silence", "modem_quiet"):
        return "silence", since, words
    return "hangup", since, words


def trim(audio: Pcm, cut: float | None) -> Pcm:
    """Cut the recording at `cut` seconds (where the caller left: tone or silence started),
    then drop trailing quiet, keeping `TAIL_SECONDS` of it."""
    if cut is not None:
        audio = audio[: max(0, int(cut * RATE))]
    frame = RATE // 50
    end = audio.size
    while end >= frame and dbfs(audio[end - frame : end]) <= QUIET_DBFS:
        end -= frame
    if end == 0:
        return audio[:0]
    keep = min(audio.size, end + int(TAIL_SECONDS * RATE))
    return audio[:keep]


__all__ = ["AnalogVoiceChannel", "Pacing", "trim"]
