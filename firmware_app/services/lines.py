"""The modem lines as the rest of the product sees them: status snapshots and the demo.

Built from the machine config: a device path or URL gives a line, ``sim:<personality>``
starts a simulated modem under <data_dir>/sim and a line on it, ``auto`` probes the USB
serial ports now and every minute for modems plugged in later. Pages call `statuses()`;
they never reach a line's port.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import MachineConfig
from ..errors import FrontdeskError
from ..events import EventBus
from ..modem.detect import DEFAULT_PATTERNS, find_modems, sibling_ports
from ..modem.line import Line, LineOptions, LineStatus
from ..settings.lines import Lines
from ..workers import Worker

log = logging.getLogger(__name__)

SIM_PREFIX = "sim:"
DEMO_RING_INTERVAL = 2.0  # seconds between demo rings (a real line: about 6)
# The simulated fax machine on each simulated analog line with fax: its own id (CSI) when it
# answers a fax Frontdesk sends, and the office's number it calls in a demo fax.
DEMO_FAX_ID = "+1 555 0199"
DEMO_OFFICE = "5550100"
DEMO_SAY_LIMIT = 300  # characters a demo caller may say (about 20 s of speech)
DEMO_HEARD_BYTES = 30 * 16000  # what a simulated PCM port keeps of the host's audio: 30 s
_STATUS_FIELDS = tuple(f.name for f in fields(LineStatus))


class LinesService:
    def __init__(
        self,
        bus: EventBus,
        settings: Callable[[], Lines],
        *,
        data_dir: Path,
        baudrate: int = 115200,
        options: LineOptions | None = None,
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._data_dir = Path(data_dir)
        self._baudrate = baudrate
        self._options = options
        self._lines: dict[str, Line] = {}
        self._simulators: dict[str, Any] = {}
        # line -> (virtual line, fax machine): the fax machine at the other end of each
        # simulated analog line with Class 1 fax (`_fax_peer`)
        self._fax_peers: dict[str, tuple[Any, Any]] = {}
        self._demo_reference = 0  # concatenation reference of the demo's long texts
        # Ports no probe may touch: PCM audio ports named in the machine config (a probe
        # written into a call's audio would be heard, and the audio read as AT answers).
        self.reserved: tuple[str, ...] = ()
        # line -> the PCM port of its simulated modem's call audio (`pcm_audio()`), for the
        # GSM personalities that carry it over a serial port: CallAudio's `known` ports.
        self.pcm_ports: dict[str, str] = {}
        self._lock = threading.Lock()
        self.finder: LineFinder | None = None
        # Called with each line found after start-up (the daemon supervises and starts it).
        self.adopt: Callable[[Line], None] = lambda line: line.start()

    @classmethod
    def from_config(
        cls,
        config: MachineConfig,
        bus: EventBus,
        settings: Callable[[], Lines],
        *,
        options: LineOptions | None = None,
        patterns: tuple[str, ...] = DEFAULT_PATTERNS,
    ) -> LinesService:
        service = cls(
            bus,
            settings,
            data_dir=config.data_dir,
            baudrate=config.modem.baudrate,
            options=options,
        )
        service.reserved = tuple(
            p for p in config.audio.pcm_port if p.strip() and p.strip() not in ("auto", "none")
        )
        for device in config.modem.devices:
            if device == "auto":
                service.finder = LineFinder(service, patterns)
            elif device.startswith(SIM_PREFIX):
                service.add_simulated(device.removeprefix(SIM_PREFIX))
            else:
                service.add_port(device)
        return service

    # -- building -------------------------------------------------------------------------------

    def _next_name(self) -> str:
        return f"line{len(self._lines) + 1}"

    def add_port(self, port: str, *, simulated: bool = False, ports: tuple[str, ...] = ()) -> Line:
        """A line on `port`; `ports` are every port of the same modem (from detection)."""
        with self._lock:
            name = self._next_name()
            line = Line(
                name,
                port,
                bus=self._bus,
                settings=self._settings,
                baudrate=self._baudrate,
                options=self._options,
                pin_file=self._data_dir / "lines" / f"{name}-rejected-pins.json",
                simulated=simulated,
                ports=ports,
            )
            self._lines[name] = line
        return line

    def add_simulated(self, personality: str) -> Line:
        from ..modem.simulator import create
        from ..modem.simulator.gsm_audio import serial_pcm

        folder = self._data_dir / "sim"
        modem = create(personality, folder, link_name=f"tty-{personality}-{len(self._lines) + 1}")
        line = self.add_port(str(modem.urc_path), simulated=True)
        self._simulators[line.name] = modem
        if modem.personality.fax1_modulations:
            self._fax_peers[line.name] = _fax_peer(modem)
        if serial_pcm(modem.personality):
            # The call audio: PCM over the module's audio port, in real time, with a
            # scripted caller at the far end (`demo_call`).
            audio = modem.pcm_audio()
            audio.heard_limit = DEMO_HEARD_BYTES
            self.pcm_ports[line.name] = str(audio.link)
            self.reserved = (*self.reserved, str(audio.link))
        return line

    def workers(self) -> list[Worker]:
        out: list[Worker] = list(self._lines.values())
        if self.finder is not None:
            out.append(self.finder)
        return out

    def close(self) -> None:
        for wire, machine in self._fax_peers.values():
            machine.close()
            wire.close()
        for line in list(self._lines.values()):
            line.close()
        for modem in self._simulators.values():
            modem.close()

    # -- reading --------------------------------------------------------------------------------

    def line(self, name: str) -> Line | None:
        with self._lock:
            return self._lines.get(name)

    def lines(self) -> list[Line]:
        with self._lock:
            return list(self._lines.values())

    def statuses(self) -> list[LineStatus]:
        return [line.status() for line in self.lines()]

    def as_dicts(self) -> list[dict[str, Any]]:
        """Statuses as plain JSON-ready data (times as ISO 8601 text)."""
        out = []
        for status in self.statuses():
            # A shallow copy (the fields are text, numbers, times and tuples of text):
            # `asdict` deep-copies every value, ten times the cost of a status poll.
            d = {name: getattr(status, name) for name in _STATUS_FIELDS}
            for key, value in d.items():
                if isinstance(value, datetime):
                    d[key] = value.isoformat()
                elif isinstance(value, tuple):
                    d[key] = list(value)
            out.append(d)
        return out

    @property
    def demo(self) -> bool:
        return bool(self._simulators)

    # -- demo -----------------------------------------------------------------------------------

    def demo_call(
        self,
        number: str,
        name: str | None = None,
        line: str | None = None,
        *,
        press: str = "",
        say: str = "",
        hang_up_after: float | None = None,
    ) -> str:
        """Ring a simulated line with caller ID `number`; returns the line's name. `line`
        is a line's name, or `analog` / `gsm` for the first simulated line of that kind
        (default: the analog one).

        The caller can be scripted: `press` keys 1.5 s into the first greeting (a key
        menu's choice, or 1 when screening asks), `say` words (spoken with espeak-ng) once
        the first recording starts (the message after the beep; with a key menu, choose
        with `press` first) and hang up a second after them, or `hang_up_after` seconds
        after the answer. Without any, the caller says nothing and waits. On a GSM line the
        caller is at the far end of the call audio (`pcm_audio()`) and speaks once it
        hears the beep."""
        from ..modem.simulator import CallerId

        number = number.strip()
        if not number or len(number) > 20 or not number.lstrip("+").isdigit():
            raise FrontdeskError(f"{number!r} is not a phone number; use digits, e.g. +15551234567")
        scripted = bool(press or say or hang_up_after is not None)
        kind = line if line in ("analog", "gsm") else None
        candidates = [line] if line and kind is None else list(self._simulators)
        for line_name in candidates:
            modem = self._simulators.get(line_name)
            if modem is None:
                continue
            analog = modem.personality.kind == "analog"
            wanted = kind or ("analog" if line is None else modem.personality.kind)
            if modem.personality.kind != wanted:
                continue
            audio = None if analog else modem.extras.audio
            if scripted and not analog and audio is None:
                raise FrontdeskError(
                    f"{line_name} has no simulated call audio: --press, --say and "
                    "--hang-up-after script callers on lines with it"
                )
            busy = self._busy(line_name, modem)  # never rung over a call (the demo fax's)
            if busy:
                raise FrontdeskError(busy)
            if analog:  # a fresh caller each call (a demo fax's calling tone is not kept)
                modem.voice.caller = _demo_caller(press, say, hang_up_after)
            elif audio is not None:  # a fresh far end each call
                audio.reset_script()
                _demo_far_end(audio, press, say, hang_up_after)
            modem.ring(CallerId(number=number, name=name), rings=6, interval=DEMO_RING_INTERVAL)
            log.info("demo: ringing %s", line_name)
            return line_name
        if kind is not None:
            raise FrontdeskError(f"no simulated {'GSM' if kind == 'gsm' else kind} line to call")
        if line is None and self._simulators and not scripted:
            line_name = next(iter(self._simulators))
            busy = self._busy(line_name, self._simulators[line_name])
            if busy:
                raise FrontdeskError(busy)
            self._simulators[line_name].ring(
                CallerId(number=number, name=name), rings=6, interval=DEMO_RING_INTERVAL
            )
            return line_name
        raise FrontdeskError(
            "no simulated line to call: demo calls work in `frontdesk demo` only"
            if line is None
            else f"{line} is not a simulated line"
        )

    def demo_fax(self, number: str = "+15551230100", line: str | None = None) -> str:
        """The simulated fax machine on a simulated analog line with Class 1 fax (over a
        virtual line, modem/simulator/fax_line.py) calls it as `number` and sends a sample
        page: the call is answered for voice, its calling tone hands it to the fax service,
        which receives the page in Class 1 (Frontdesk's own T.30). Returns the line's name."""
        from ..media.fax_send import encode_page
        from ..modem.simulator import VoiceCaller

        number = number.strip()
        if not number or len(number) > 20 or not number.lstrip("+").isdigit():
            raise FrontdeskError(f"{number!r} is not a phone number; use digits, e.g. +15551234567")
        names = [line] if line else list(self._simulators)
        for name in names:
            modem = self._simulators.get(name)
            peer = self._fax_peers.get(name)
            if modem is None or peer is None:
                continue
            busy = self._busy(name, modem)
            if busy:
                raise FrontdeskError(busy)
            wire, machine = peer
            page = encode_page(_demo_page(number), fine=True, mr=False, min_scan_bits=0)
            modem.voice.caller = VoiceCaller().send_fax_tone(at=0.5, after="play")
            machine.local_id = wire.ends[0].number = number  # its id, and its caller ID
            machine.send([[page]])
            log.info("demo: a fax machine calls %s", name)
            return name
        raise FrontdeskError(
            "no simulated line takes Class 1 faxes: demo faxes work in `frontdesk demo` only"
            if line is None
            else f"{line} is not a simulated line with Class 1 fax"
        )

    def _busy(self, name: str, modem: Any) -> str:
        """Why the demo cannot call simulated line `name` now, or "": a line ringing or in
        a call (the simulated fax machine's too) is not rung over."""
        peer = self._fax_peers.get(name)
        if peer is not None and (peer[1].busy or peer[0].ends[1].in_call):
            return (
                f"{name} is busy: its simulated fax machine is in a call; try again once it is over"
            )
        if modem.call_state != "idle":
            return f"{name} is busy: a call is on it; try again once it is over"
        return ""

    def demo_sms(self, number: str, text: str, line: str | None = None) -> dict[str, Any]:
        """A text from `number` reaches a simulated GSM line's SIM, as the network delivers
        it: the SUBMIT a phone would send (Frontdesk's codec; the demo tests nothing here),
        made into SMS-DELIVERs by the simulated service centre (`deliver_from_submit`);
        a long text's parts arrive in reverse order, as networks may. Returns the line's
        name and the SIM slots used."""
        from datetime import UTC

        from ..modem.simulator.sms import deliver_from_submit
        from ..protocol.sms_pdu import SmsEncodeError, build_submit_pdus

        number = number.strip()
        if not number or len(number) > 20 or not number.lstrip("+").isdigit():
            raise FrontdeskError(f"{number!r} is not a phone number; use digits, e.g. +15551234567")
        text = text.strip()
        if not text:
            raise FrontdeskError("the text is empty")
        names = [line] if line else list(self._simulators)
        for name in names:
            modem = self._simulators.get(name)
            if modem is None or modem.personality.kind != "gsm":
                continue
            self._demo_reference = (self._demo_reference + 1) % 256
            try:
                submits = build_submit_pdus(
                    "+15550100",  # the demo office's number; the network delivers it here
                    text,
                    reference=self._demo_reference,
                    max_parts=10,
                )
            except SmsEncodeError as exc:
                raise FrontdeskError(str(exc)) from exc
            now = datetime.now(UTC)
            delivers = [deliver_from_submit(pdu.pdu, number, now) for pdu in submits]
            slots = modem.deliver_parts(delivers, order=list(range(len(delivers)))[::-1])
            log.info("demo: a text from %s reaches %s (%d part(s))", number, name, len(slots))
            return {"line": name, "parts": len(slots), "slots": slots}
        raise FrontdeskError(
            "no simulated GSM line: demo texts work in `frontdesk demo` only"
            if line is None
            else f"{line} is not a simulated GSM line"
        )


def _fax_peer(modem: Any) -> tuple[Any, Any]:
    """A simulated fax machine on a virtual line with a simulated analog modem (fax_line.py),
    switched on: it answers every fax call out of the line (a fax Frontdesk sends in the
    demo, to any number, is received there and sent) and is the machine `demo_fax` calls
    in from. Line time runs at 0.2 of real time, so a page takes a few seconds."""
    from ..modem.simulator import LineFax, VirtualLine

    machine = LineFax(local_id=DEMO_FAX_ID).answer_calls()
    wire = VirtualLine(
        machine,
        modem,
        numbers=(DEMO_FAX_ID, DEMO_OFFICE),
        time_scale=0.2,
        rings=6,
        ring_interval=DEMO_RING_INTERVAL,
    )
    return wire, machine


def _demo_page(number: str) -> Any:
    """The demo fax's page: a letter with a heading, text and a box, A4-wide."""
    from PIL import Image, ImageDraw

    page = Image.new("L", (1728, 900), 255)
    draw = ImageDraw.Draw(page)
    draw.rectangle((80, 60, 1648, 200), outline=0, width=6)
    draw.text((120, 110), f"DEMO FAX from {number}", fill=0)
    for row in range(8):
        draw.text((120, 280 + row * 60), "Please confirm the order for next week. " * 3, fill=0)
    draw.rectangle((120, 780, 700, 840), fill=0)
    return page.convert("1", dither=Image.Dither.NONE)


class LineFinder(Worker):
    """``modem = "auto"``: probe for modems now and every `interval` s; new ones become lines."""

    def __init__(
        self, service: LinesService, patterns: tuple[str, ...], interval: float = 60.0
    ) -> None:
        super().__init__("line-finder", liveness=interval * 3 + 120)
        self.service = service
        self.patterns = patterns
        self.interval = interval

    def run(self) -> None:
        while not self.stopping.is_set():
            self.scan()
            if self.wait(self.interval):
                return

    def scan(self) -> list[Line]:
        known = [p for line in self.service.lines() for p in _ports_of(line)]
        known += self.service.reserved
        added = []
        try:
            profiles = find_modems(self.patterns, baudrate=self.service._baudrate, exclude=known)
        except Exception:
            log.exception("looking for modems failed")
            return []
        for profile in profiles:
            if self.stopping.is_set():
                break
            line = self.service.add_port(profile.port, ports=profile.ports)
            log.info("found %s", profile.describe())
            self.service.adopt(line)
            added.append(line)
        self.beat()
        return added


def _ports_of(line: Line) -> list[str]:
    """Every port that belongs to `line`'s modem: its own, the siblings detection found, and
    the other serial ports of the same USB device (by-id names or sysfs), PCM port included."""
    ports = [line.port, *line.ports]
    profile = line.profile
    if profile is not None:
        ports += list(profile.ports)
    for port in list(dict.fromkeys(ports)):
        ports += sibling_ports(port).values()
    return list(dict.fromkeys(ports))


def _demo_keys(press: str) -> str:
    keys = press.strip()
    if keys and (len(keys) > 10 or any(k not in "0123456789*#" for k in keys)):
        raise FrontdeskError(f"{press!r} are not keys to press; use 0-9, * and #")
    return keys


def _demo_words(say: str) -> Any:
    """The demo caller's words spoken (8 kHz samples), or None."""
    words = " ".join(say.split())
    if not words:
        return None
    if len(words) > DEMO_SAY_LIMIT:
        raise FrontdeskError(f"a demo caller says at most {DEMO_SAY_LIMIT} characters")
    from ..media.speech import SpeechError, Tts

    try:
        return Tts().speak(words, "en-us", 150)
    except SpeechError as exc:
        raise FrontdeskError(f"the caller's words could not be spoken: {exc}") from exc


def _demo_hang_up(hang_up_after: float | None) -> float | None:
    if hang_up_after is not None and not 0 <= hang_up_after <= 600:
        raise FrontdeskError("--hang-up-after takes 0 to 600 seconds")
    return None if hang_up_after is None else float(hang_up_after)


def _demo_caller(press: str, say: str, hang_up_after: float | None) -> Any:
    """The simulated analog caller of a demo call (`LinesService.demo_call`)."""
    from ..modem.simulator import VoiceCaller

    caller = VoiceCaller()
    keys = _demo_keys(press)
    if keys:
        caller.press(keys, at=1.5, after="play", hold=0.15)
    speech = _demo_words(say)
    if speech is not None:
        seconds = speech.size / 8000
        caller.say(speech, at=0.5, after="record")
        caller.hang_up(at=0.5 + seconds + 1.0, after="record")
    after = _demo_hang_up(hang_up_after)
    if after is not None:
        caller.hang_up(at=after, after="answer")
    return caller


def _demo_far_end(audio: Any, press: str, say: str, hang_up_after: float | None) -> None:
    """The far end of a demo call on a simulated GSM line with call audio: its script runs
    from the moment the call's audio is on (just after the answer). Keys 1.5 s in (tones
    and the model's key report); words half a second after it hears the voicemail beep,
    then a hang-up a second later; or a hang-up `hang_up_after` seconds in."""
    keys = _demo_keys(press)
    speech = _demo_words(say)
    after = _demo_hang_up(hang_up_after)
    if speech is not None and after is not None:
        raise FrontdeskError(
            "on a GSM line the caller either leaves a message (--say) or hangs up "
            "(--hang-up-after), not both"
        )
    spent = 0.0
    if keys:
        audio.pause(1.5).press(keys, urc=True)
        spent = 1.5 + 0.2 * len(keys)
    if speech is not None:
        audio.wait_for_tone(1000.0, 0.2).pause(0.5).say(speech).pause(1.0).hang_up()
    elif after is not None:
        audio.pause(max(0.0, after - spent)).hang_up()
