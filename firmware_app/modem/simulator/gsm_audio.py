"""GSM call audio, call forwarding, the called party and hook flash for the simulated modems.

- Serial PCM (SIM7600 `AT+CPCMREG=1`, EC25 `AT+QPCMV=1,0`, Huawei `AT^DDSETEX=2`): a second
  pty (`tty-<name>-pcm`) carrying 8 kHz 16-bit LE frames of 320 bytes every 20 ms (faster with
  `speed`) while the call's audio is on; what the host sends is kept in `heard`.
- A USB sound card (SIM800's analog audio, EC25 UAC `AT+QPCMV=1,2`) over ALSA's file plugin:
  the capture file is a FIFO written live at the call's pace (`SoundCardAudio`), playback
  lands in a file.
- On both, a scripted far end (`FarEnd`) says audio or a sound file, presses keys (tones, and
  the model's DTMF URC), sends a fax calling tone, hangs up at a chosen moment of the stream.
- `AT+CCFC` per 3GPP TS 27.007 7.11; the party an `ATD` calls (answers, presses keys, or not);
  `AT+VTS={!,<n>}` hook flash on analog lines (REFERENCE.md 1, not checked on hardware).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import select
import struct
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...media import tones
from .commandline import Command, split_args

if TYPE_CHECKING:
    from .engine import Engine, Reply

log = logging.getLogger(__name__)

FRAME_BYTES = 320
FRAME_SECONDS = 0.02
# DTMF URC of each model when a far-end key is heard (vendor AT manuals: SIM800 +DTMF after
# AT+DDET=1; SIM7600 +RXDTMF; EC25 +QTONEDET with the key's ASCII code after AT+QTONEDET=1).
DTMF_URC = {
    "sim800": "+DTMF: {digit}",
    "sim7600": "+RXDTMF: {digit}",
    "ec25": "+QTONEDET: {code}",
}
# Models that report keys only once asked to, and the command that asks (SIM800 Series AT
# Command Manual V1.09 AT+DDET=<mode>[,<interval>,<reportMode>,<ssdet>], mode 1 enables
# DTMF detection; Quectel EC25&EC21 AT Commands Manual AT+QTONEDET=<enable>). The SIM7600
# sends +RXDTMF without a command here (no enabling command is named for it).
DTMF_ENABLE = {"sim800": "+DDET", "ec25": "+QTONEDET"}

# The commands that switch a call's audio onto a serial PCM port (SIM7600 AT+CPCMREG, EC25
# AT+QPCMV, Huawei AT^DDSETEX): the models `pcm_audio()` is for.
SERIAL_PCM_COMMANDS = frozenset({"+CPCMREG", "+QPCMV", "^DDSETEX"})


def serial_pcm(personality: Any) -> bool:
    """Whether a simulated model carries call audio over a serial PCM port."""
    return personality.kind == "gsm" and bool(SERIAL_PCM_COMMANDS & set(personality.commands))


# 3GPP TS 27.007 7.11: <reason> 0 unconditional, 1 busy, 2 no reply, 3 not reachable, 4 all
# call forwarding, 5 all conditional; <mode> 0 disable, 1 enable, 2 query, 3 registration,
# 4 erasure; <class> 1 voice (7 = voice, data and fax: the default); <time> 1-30 s, default 20.
CCFC_REASONS = range(6)


@dataclass(slots=True)
class Forward:
    number: str = ""
    type: int = 129
    active: bool = False
    time: int = 20


@dataclass(slots=True)
class Callee:
    """The party an `ATD<number>;` reaches: answers after `answer_after` s (0: at once, None:
    never),
    then presses `press` after `press_after` s (tones and, optionally, a DTMF URC), says
    `say_after_press` (with a PCM port), and hangs up after `hang_up_after` s (None: stays).
    `busy` rejects the call at once."""

    answer_after: float | None = 0.0
    press: str = ""
    press_after: float = 0.3
    urc: bool = True
    hang_up_after: float | None = None
    busy: bool = False
    say: np.ndarray | None = None
    say_after_press: np.ndarray | None = None


@dataclass(slots=True)
class Extras:
    """State of one simulated modem beyond the engine's own: forwarding, dialled calls,
    hook flashes, tones sent with +VTS."""

    forwards: dict[int, Forward] = field(
        default_factory=lambda: {r: Forward() for r in CCFC_REASONS}
    )
    ccfc_refused: bool = False  # the network refuses forwarding changes (+CME ERROR: 30)
    callee: Callee = field(default_factory=Callee)
    dialled: list[str] = field(default_factory=list)
    flashes: list[int] = field(default_factory=list)  # hook flash lengths in ms
    # An analog line on a PBX or Centrex: a hook flash puts the caller on hold and the
    # exchange gives recall dial tone (simulator/voice.py); a second flash takes the caller
    # back. False: a plain line, where the exchange ignores a flash.
    flash_transfers: bool = True
    flash_dial_tone: str = "na"  # the exchange's dial tone plan (media.tones: na, eu, uk)
    flash_reports_dle_d: bool = False  # the modem reports that dial tone as DLE d too
    tones_sent: list[str] = field(default_factory=list)  # +VTS digits, in order
    dtmf_reports: bool = False  # AT+DDET=1 / AT+QTONEDET=1: far-end keys are reported
    diverted: list[str] = field(default_factory=list)  # where the network forwarded calls
    audio: GsmAudio | SoundCardAudio | None = None


def ccfc(engine: Engine, port: int, cmd: Command) -> Reply:
    """AT+CCFC=<reason>,<mode>[,<number>[,<type>[,<class>[,<subaddr>[,<satype>[,<time>]]]]]]."""
    x = engine.extras
    if cmd.form == "test":
        return ["+CCFC: (0-5)"], "OK"
    if cmd.form != "set":
        return [], "ERROR"
    args = split_args(cmd.args)
    try:
        reason, mode = int(args[0]), int(args[1])
    except (ValueError, IndexError):
        return [], "ERROR"
    if reason not in CCFC_REASONS or mode not in range(5):
        return [], "ERROR"
    engine._require_sim()
    if engine.registration not in (1, 5):
        raise engine.cme(30)  # no network service
    number = args[2].strip('"') if len(args) > 2 else ""
    targets = [reason] if reason < 4 else ([0, 1, 2, 3] if reason == 4 else [1, 2, 3])
    if mode == 2:
        lines = []
        for r in targets:
            f = x.forwards[r]
            if f.active and f.number:
                tail = f",,,{f.time}" if r == 2 else ""
                lines.append(f'+CCFC: 1,1,"{f.number}",{f.type}{tail}')
            else:
                lines.append("+CCFC: 0,7")
        return lines[:1] if reason < 4 else lines, "OK"
    if x.ccfc_refused:
        raise engine.cme(30)
    for r in targets:
        f = x.forwards[r]
        if mode == 3:
            if not number:
                return [], "ERROR"
            f.number = number
            f.type = (
                int(args[3]) if len(args) > 3 and args[3] else (145 if number[:1] == "+" else 129)
            )
            if len(args) > 7 and args[7]:
                seconds = int(args[7])
                if not 1 <= seconds <= 30:
                    raise engine.cme(3)
                f.time = seconds
            f.active = True
        elif mode == 1:
            if not f.number:
                raise engine.cme(3)  # nothing registered to enable
            f.active = True
        elif mode == 0:
            f.active = False
        elif mode == 4:
            x.forwards[r] = Forward()
    return [], "OK"


def watch_no_reply(engine: Engine, gen: int) -> None:
    """A call starts ringing: with no-reply forwarding active (<reason> 2), the network
    forwards it once it has rung `<time>` s unanswered (3GPP TS 22.082 CFNRy): the line
    stops ringing as when the caller gives up, and the call goes to the registered number."""
    if engine.p.kind != "gsm":
        return
    f = engine.extras.forwards[2]
    if not (f.active and f.number):
        return

    def divert() -> None:
        now = engine.extras.forwards[2]
        if gen != engine.ring_generation or engine.call_state != "ringing" or not now.active:
            return
        engine.extras.diverted.append(now.number)
        engine.caller_hangs_up()

    engine.host.call_later(float(f.time), divert)


def dialled(engine: Engine, number: str) -> str | None:
    """After `ATD<number>;` on a GSM model: the call alerts; the callee script decides."""
    x = engine.extras
    x.dialled.append(number)
    c = x.callee
    gen = engine.ring_generation
    if c.busy:
        engine.call_state = "idle"
        return "BUSY"
    engine.call_state = "alerting"
    if c.answer_after == 0:
        _callee_answers(engine, gen)  # the default: connected at once, as before
    elif c.answer_after is not None:
        engine.host.call_later(c.answer_after, lambda: _callee_answers(engine, gen))
    return None


def _callee_answers(engine: Engine, gen: int) -> None:
    if gen != engine.ring_generation or engine.call_state != "alerting":
        return
    engine.call_state = "active"
    c = engine.extras.callee
    audio = engine.extras.audio
    if audio is not None:
        audio.reset_script()
        if c.say is not None:
            audio.say(c.say)
        if c.press:
            audio.pause(c.press_after)
            audio.press(c.press, urc=c.urc)
        if c.say_after_press is not None:
            audio.say(c.say_after_press)
        if c.hang_up_after is not None:
            audio.pause(c.hang_up_after)
            audio.hang_up()
    elif c.press and c.urc:
        for d in c.press:
            text = key_report(engine, d)
            if text:
                engine.host.call_later(c.press_after, lambda t=text: engine.urc(t))
    if audio is None and c.hang_up_after is not None:
        engine.host.call_later(c.hang_up_after, lambda: _far_end_hangs_up(engine, gen))


def _far_end_hangs_up(engine: Engine, gen: int) -> None:
    if gen == engine.ring_generation and engine.call_state == "active":
        engine.caller_hangs_up()


def key_report(engine: Engine, digit: str) -> str | None:
    """The model's DTMF report of a far-end key, or None when it reports none now (no
    report at all, or detection not switched on with AT+DDET=1 / AT+QTONEDET=1)."""
    fmt = DTMF_URC.get(engine.p.name)
    if fmt is None or (engine.p.name in DTMF_ENABLE and not engine.extras.dtmf_reports):
        return None
    return fmt.format(digit=digit, code=ord(digit))


def dtmf_detection(engine: Engine, port: int, cmd: Command) -> Reply:
    """AT+DDET (SIM800) and AT+QTONEDET (EC25): switch far-end DTMF reports on or off."""
    name = DTMF_ENABLE.get(engine.p.name, "")
    x = engine.extras
    if cmd.form == "test":
        ranges = "(0,1),(0-10000),(0,1),(0,1)" if name == "+DDET" else "(0,1)"
        return [f"{name}: {ranges}"], "OK"
    if cmd.form == "read":
        value = f"{int(x.dtmf_reports)},0,0,0" if name == "+DDET" else str(int(x.dtmf_reports))
        return [f"{name}: {value}"], "OK"
    args = split_args(cmd.args) if cmd.form == "set" else []
    if not args or args[0].strip() not in ("0", "1"):
        return [], "ERROR"
    x.dtmf_reports = args[0].strip() == "1"
    return [], "OK"


def vts(engine: Engine, port: int, cmd: Command) -> Reply:
    """+VTS: DTMF tones (3GPP TS 27.007 C.11 / V.253 10.1.7); `{!,<n>}` is a hook flash of
    n x 10 ms on analog lines (REFERENCE.md 1); the exchange then gives dial tone."""
    if cmd.form == "test":
        return ["+VTS: (0-9,*,#,A,B,C,D)"], "OK"
    if cmd.form != "set" or engine.call_state != "active":
        return [], "ERROR"
    x = engine.extras
    text = cmd.args.strip()
    if text.startswith("{!") and engine.p.kind == "analog":
        inner = text.strip("{}").split(",")
        try:
            ms = int(inner[1]) * 10 if len(inner) > 1 and inner[1] else 500
        except ValueError:
            return [], "ERROR"
        x.flashes.append(ms)
        engine.voice.flash()
        return [], "OK"
    for part in split_args(text.strip('"')):
        part = part.strip().strip("[]{}")
        digit = part.split(",")[0]
        if len(digit) != 1 or digit not in "0123456789*#ABCD":
            return [], "ERROR"
        x.tones_sent.append(digit)
    return [], "OK"


class FarEnd:
    """The far end's script for a GSM call's audio, shared by the serial PCM port
    (`GsmAudio`) and the sound card (`SoundCardAudio`): 20 ms frames of what the caller (or
    the staff member an `ATD` reached) says, in order.

    `say(pcm or a sound file)`, `pause(s)`, `press(digits, urc=)` (DTMF tones and/or the
    model's report), `send_fax_tone(s)` (CNG, T.30), `hang_up()` (NO CARRIER or the model's
    end-of-call report, at that moment of the stream); silence when the script is empty.
    """

    def __init__(self, modem: Any) -> None:
        self.modem = modem
        self._script: collections.deque[tuple[str, Any]] = collections.deque()
        self._pending = np.zeros(0, dtype=np.int16)
        self._lock = threading.Lock()

    # -- scripting (any thread) -------------------------------------------------------------

    def say(self, audio: Any) -> FarEnd:
        """Audio as int16 samples at 8 kHz, or a sound file (WAV, FLAC, OGG, MP3: any rate,
        mono or stereo; converted as an uploaded greeting is)."""
        if isinstance(audio, str | os.PathLike):
            from ...media.codecs import to_telephone

            pcm = to_telephone(Path(audio))
        else:
            pcm = np.asarray(audio, dtype=np.int16)
        with self._lock:
            self._script.append(("audio", pcm))
        return self

    def pause(self, seconds: float) -> FarEnd:
        with self._lock:
            self._script.append(("audio", tones.silence(seconds)))
        return self

    def press(self, digits: str, *, urc: bool = False, tone: bool = True) -> FarEnd:
        """Keys as DTMF tones (100 ms on, 100 ms off) and, with `urc`, the model's report
        as the tone starts."""
        with self._lock:
            for d in digits:
                if urc:
                    self._script.append(("urc", d))
                if tone:
                    self._script.append(("audio", tones.dtmf(d, on_ms=100, off_ms=100)))
        return self

    def send_fax_tone(self, seconds: float = 4.0) -> FarEnd:
        """A fax machine calling: CNG, 1100 Hz 0.5 s on, 3 s off (T.30 5.2.1)."""
        with self._lock:
            self._script.append(("audio", tones.cng(seconds)))
        return self

    def hang_up(self) -> FarEnd:
        with self._lock:
            self._script.append(("hangup", None))
        return self

    def wait_for_tone(self, freq: float = 1000.0, seconds: float = 0.2) -> FarEnd:
        """Say nothing until the host's audio carries a steady `freq` tone for `seconds`
        (a caller who speaks after the voicemail beep), then go on with the script. Only
        where what the host sends is heard (`GsmAudio`, the serial PCM port)."""
        if not self.hears_host:
            raise TypeError(
                f"{type(self).__name__} does not hear what the host plays (the host's "
                "playback goes to a file): script a caller who waits for the beep on the serial "
                "PCM port (pcm_audio) instead"
            )
        wait = _ToneWait(freq=freq, blocks=max(1, round(seconds / FRAME_SECONDS)))
        with self._lock:
            if not self._script and self._pending.size == 0:
                self._reached()  # nothing before it: listening starts now
            self._script.append(("tone", wait))
        return self

    hears_host = False  # True where `_tone_heard` listens to what the host sent

    def _tone_heard(self, wait: _ToneWait) -> bool:
        """Whether the tone `wait` waits for was heard (called with the lock held)."""
        return False

    def _reached(self) -> None:
        """The script's next step is reached now, in the host's stream: what came before has
        been said (called with the lock held)."""

    def reset_script(self) -> None:
        with self._lock:
            self._script.clear()
            self._pending = np.zeros(0, dtype=np.int16)
            self._reached()

    @property
    def script_done(self) -> bool:
        """Everything scripted went out (tests wait on it)."""
        with self._lock:
            return not self._script and self._pending.size == 0

    # -- one frame of the stream ------------------------------------------------------------

    def _next_frame(self) -> bytes:
        actions: list[tuple[str, Any]] = []
        with self._lock:
            while self._pending.size < 160 and self._script:
                kind, value = self._script[0]
                if kind == "audio":
                    self._script.popleft()
                    self._pending = np.concatenate([self._pending, value])
                elif kind == "tone":
                    if self._pending.size or not self._tone_heard(value):
                        break  # silence until the tone is heard
                    self._script.popleft()
                elif self._pending.size == 0:
                    self._script.popleft()
                    actions.append((kind, value))
                else:
                    break
            frame = self._pending[:160]
            self._pending = self._pending[160:]
            if frame.size and self._pending.size == 0:
                self._reached()  # its words are said: a tone step after them listens from here
        for kind, value in actions:
            if kind == "urc":
                text = key_report(self.modem.engine, value)
                if text:
                    self.modem.send_urc(text)
            elif kind == "hangup":
                self.modem.caller_hangs_up()
        if frame.size < 160:
            frame = np.concatenate([frame, np.zeros(160 - frame.size, dtype=np.int16)])
        return frame.astype("<i2").tobytes()


@dataclass(slots=True)
class _ToneWait:
    """A `wait_for_tone` step: the tone, how many 20 ms blocks in a row it must fill, and
    how far the host's stream was looked at."""

    freq: float
    blocks: int
    position: int | None = None
    run: int = 0


def _tone_block(block: np.ndarray, freq: float) -> bool:
    """One 20 ms block of 8 kHz audio is the tone `freq`: loud enough (above -40 dBFS)
    and most of its energy at that frequency (the voicemail beep, not speech)."""
    x = block.astype(np.float64) / 32768.0
    if float(np.sqrt(np.mean(x**2))) < 0.01:
        return False
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    at = round(freq * x.size / 8000)
    band = spectrum[max(0, at - 1) : at + 2].sum()
    return bool(band > 0.8 * spectrum.sum())


class GsmAudio(FarEnd):
    """The serial PCM port of a simulated GSM modem and the far end's scripted audio.

    Frames flow only while `enabled` (the model's audio command during an active call); what
    the host sends is kept in `heard`.
    """

    def __init__(self, modem: Any, link: Path, *, speed: float = 1.0) -> None:
        super().__init__(modem)
        self.link = link
        self.speed = speed
        self.enabled = False
        self.heard = bytearray()  # what the host sent on the PCM port (see heard_limit)
        self.heard_total = 0  # bytes the host sent since the port was made
        self._listen_from = 0  # heard_total when the script's next step was reached
        # Keep only the newest this many bytes of `heard` (None: all; tests read it whole):
        # a long-running demo's port does not grow with every call.
        self.heard_limit: int | None = None
        self.frames_sent = 0
        self._stop = threading.Event()
        self._master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(self._master, False)
        self._slave = slave
        tmp = link.with_name(link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(link)
        self._thread = threading.Thread(target=self._run, name="sim-pcm", daemon=True)
        self._thread.start()

    def heard_pcm(self) -> np.ndarray:
        with self._lock:
            data = bytes(self.heard[: len(self.heard) & ~1])
        return np.frombuffer(data, dtype="<i2").astype(np.int16)

    def set_enabled(self, on: bool) -> None:
        with self._lock:
            if on and not self.enabled:
                self._reached()  # the call's audio starts: a first tone step listens from here
            self.enabled = on

    hears_host = True

    def _reached(self) -> None:
        self._listen_from = self.heard_total

    def _tone_heard(self, wait: _ToneWait) -> bool:
        total = self.heard_total
        if wait.position is None:
            # Listen from the moment the step was reached in the host's stream (the call's
            # audio starting, the words before it said), not from when this thread first
            # looks: a host that sends the beep at once is heard even when this thread was
            # not scheduled meanwhile.
            start = min(self._listen_from, total)
            wait.position = start - start % 2  # on a sample's first byte
        start = max(0, len(self.heard) - (total - wait.position))
        data = bytes(self.heard[start:])
        whole = len(data) - len(data) % FRAME_BYTES
        for i in range(0, whole, FRAME_BYTES):
            block = np.frombuffer(data[i : i + FRAME_BYTES], dtype="<i2")
            wait.run = wait.run + 1 if _tone_block(block, wait.freq) else 0
            if wait.run >= wait.blocks:
                return True
        wait.position = total - (len(data) - whole)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            tick = FRAME_SECONDS / max(self.speed, 0.01)
            ready, _, _ = select.select(
                [self._master], [], [], max(0.0, next_at - time.monotonic())
            )
            if ready:
                with contextlib.suppress(BlockingIOError, OSError):
                    data = os.read(self._master, 65536)
                    with self._lock:
                        self.heard += data
                        self.heard_total += len(data)
                        limit = self.heard_limit
                        if limit is not None and len(self.heard) > limit:
                            del self.heard[: len(self.heard) - limit]
            now = time.monotonic()
            if now < next_at:
                continue
            next_at = max(next_at + tick, now - 5 * tick)
            if not self.enabled:
                continue
            frame = self._next_frame()
            try:
                os.write(self._master, frame)
                self.frames_sent += 1
            except BlockingIOError:
                pass  # nobody reads: the frame is lost, as on a real port
            except OSError:
                return


# A USB sound card wired to the module's analog audio (SIM800: no PCM on USB) carries the
# call whenever one is connected; a module's own USB audio (EC25 UAC, AT+QPCMV=1,2) only once
# its audio command is on.
SOUND_CARD_ALWAYS = frozenset({"sim800"})
CAPTURE_BACKLOG = 4  # frames a sound card holds before it overruns (the oldest are lost)


@dataclass(frozen=True, slots=True)
class AlsaFiles:
    """An ALSA configuration whose devices are files: `playback` (what the host plays lands
    in this file), `capture` (where the host's capture reads: a regular file, or the FIFO a
    `SoundCardAudio` writes live), and the device names: `tofile`, `fromfile` and `duplex`
    (playback and capture in one name, as `audio.device` gives it)."""

    conf: Path
    playback: Path
    capture: Path


def alsa_files(folder: Path, base: Path = Path("/usr/share/alsa/alsa.conf")) -> AlsaFiles:
    """Write an asound.conf in `folder` for ALSA's file plugin (set ALSA_CONFIG_PATH to its
    `conf`; alsa-lib reads its configuration once per process)."""
    folder.mkdir(parents=True, exist_ok=True)
    out, infile = folder / "out.raw", folder / "in.raw"
    infile.write_bytes(b"")
    conf = folder / "asound.conf"
    conf.write_text(
        base.read_text(encoding="utf-8")
        + f'\npcm.tofile {{ type file; slave.pcm "null"; file "{out}"; format "raw" }}\n'
        + f'pcm.fromfile {{ type file; slave.pcm "null"; file "/dev/null"; infile "{infile}";'
        + ' format "raw" }\n'
        + 'pcm.duplex { type asym; playback.pcm "tofile"; capture.pcm "fromfile" }\n',
        encoding="utf-8",
    )
    return AlsaFiles(conf, out, infile)


class SoundCardAudio(FarEnd):
    """The far end of a GSM call through a USB sound card, over ALSA's file plugin (see
    `alsa_files`): the capture file becomes a FIFO this writes 20 ms frames into at the
    call's pace (`speed` times real time), so the host's capture is a live stream, clocked
    like a card; what the host plays lands in the playback file (`heard_pcm`).

    The stream is silence outside a call; the script runs while the call is connected (for a
    module's own USB audio, once its audio command is on). A key pressed with `urc=True`
    sends the model's DTMF report as its tone starts, `hang_up()` the model's call-end report
    at that moment of the stream. Like a real card it holds at most `CAPTURE_BACKLOG` frames
    nobody read: older ones are lost. Attach it with `SoundCardAudio.attach(modem, files)`:
    it is the modem's `extras.audio`, so the party an `ATD` reaches talks through it too.
    """

    def __init__(self, modem: Any, files: AlsaFiles, *, speed: float = 1.0) -> None:
        super().__init__(modem)
        self.files = files
        self.speed = speed
        self.frames_sent = 0
        self._flag = False
        self._always = modem.personality.name in SOUND_CARD_ALWAYS
        self._heard_from = files.playback.stat().st_size if files.playback.exists() else 0
        self._stop = threading.Event()
        fifo = files.capture
        with contextlib.suppress(FileNotFoundError):
            fifo.unlink()
        os.mkfifo(fifo)
        # Read and write ends both ours: opening never blocks, the host's open finds a
        # writer, and we can drop what nobody read (a card's overrun).
        self._fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="sim-sound-card", daemon=True)
        self._thread.start()

    @classmethod
    def attach(cls, modem: Any, files: AlsaFiles, *, speed: float = 1.0) -> SoundCardAudio:
        audio = cls(modem, files, speed=speed)
        modem.extras.audio = audio
        return audio

    @property
    def enabled(self) -> bool:
        if self.modem.call_state != "active":
            return False
        return self._always or self._flag

    def set_enabled(self, on: bool) -> None:
        self._flag = on

    def heard_pcm(self) -> np.ndarray:
        """What the host played since this far end was made (the playback file)."""
        try:
            data = self.files.playback.read_bytes()[self._heard_from :]
        except FileNotFoundError:
            data = b""
        return np.frombuffer(data[: len(data) & ~1], dtype="<i2").astype(np.int16)

    def close(self) -> None:
        """Stop, and leave an empty regular capture file (other tests write it)."""
        self._stop.set()
        self._thread.join(2.0)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            self.files.capture.unlink()
        self.files.capture.write_bytes(b"")
        if self.modem.extras.audio is self:
            self.modem.extras.audio = None

    def _run(self) -> None:
        silence = bytes(FRAME_BYTES)
        next_at = time.monotonic()
        while not self._stop.is_set():
            tick = FRAME_SECONDS / max(self.speed, 0.01)
            wait = next_at - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            next_at = max(next_at + tick, time.monotonic() - 5 * tick)
            self._overrun()
            frame = self._next_frame() if self.enabled else silence
            try:
                os.write(self._fd, frame)
                self.frames_sent += 1
            except BlockingIOError:
                pass
            except OSError:
                return

    def _overrun(self) -> None:
        """Drop all but the newest `CAPTURE_BACKLOG` frames nobody read."""
        waiting = struct.unpack("i", fcntl.ioctl(self._fd, termios.FIONREAD, b"\0" * 4))[0]
        extra = waiting - CAPTURE_BACKLOG * FRAME_BYTES
        while extra > 0:
            try:
                got = os.read(self._fd, min(extra, 65536))
            except BlockingIOError:
                return
            if not got:
                return
            extra -= len(got)


__all__ = [
    "DTMF_URC",
    "AlsaFiles",
    "Callee",
    "Extras",
    "FarEnd",
    "Forward",
    "GsmAudio",
    "SoundCardAudio",
    "alsa_files",
    "ccfc",
    "dialled",
    "vts",
    "watch_no_reply",
]
