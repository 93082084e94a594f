"""The soak's outside world: simulated lines on ptys, the callers, texters and fax machines
on them, and the faults (unplug, a hung modem, garbage, SIM busy). Everything delivered is
written down in `Delivered` so the ledger can find it again in the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from firmware_app.modem.simulator import FaxMachine, SimulatedModem, VoiceCaller, create
from firmware_app.protocol.sms_pdu import (
    Concat,
    SmsDeliver,
    decode_pdu,
    encode_deliver,
    fingerprint,
    split_text,
)

CALLER_PREFIX = "+4477009"  # one number per call: the ledger finds the call by it
BLOCKED_PREFIX = "+4477008"  # on the block list
TEXTER_PREFIX = "+4477007"  # one number per text
FAX_PREFIX = "+4477006"  # one number per fax; its station id is "SOAK F<id>"

# What the caller does -> what the call's record must say.
ANALOG_KINDS = {"voicemail": 0.5, "missed": 0.2, "answered": 0.15, "blocked": 0.15}
GSM_KINDS = {"forwarded": 0.7, "blocked": 0.3}
EXPECTED = {k: k for k in (*ANALOG_KINDS, *GSM_KINDS)}


def speech(seconds: float) -> np.ndarray:
    """Voice-like audio: two tones with a slow level change (no DTMF, no dial tone)."""
    t = np.arange(int(seconds * 8000)) / 8000
    x = 0.2 * np.sin(2 * np.pi * 310 * t) + 0.15 * np.sin(2 * np.pi * 1230 * t)
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    return np.round(x * 32767).astype(np.int16)


@dataclass(slots=True)
class Call:
    id: int
    kind: str  # voicemail, missed, answered, blocked, forwarded
    line_kind: str  # analog or gsm
    number: str
    due: float  # seconds after the start
    line: str = ""
    rang: float = 0.0
    done: float = 0.0
    kills: tuple[int, int] = (0, 0)  # kill counter when it rang and when it was over
    result: str = ""  # "", "stuck" (the line never came back), "not placed"


@dataclass(slots=True)
class Text:
    id: int
    number: str
    text: str
    parts: int
    due: float
    line: str = ""
    delivered: float = 0.0
    fingerprints: tuple[str, ...] = ()


@dataclass(slots=True)
class Fax:
    id: int
    kind: str  # "fax_only" (a fax-only line answers as a fax) or "cng" (a voice call first)
    number: str
    pages: int
    due: float
    line: str = ""
    rang: float = 0.0
    done: float = 0.0
    kills: tuple[int, int] = (0, 0)
    result: str = ""  # "", "stuck", "not placed"

    @property
    def station(self) -> str:
        """The sender's station id (T.30 TSI): how the ledger finds its record."""
        return f"SOAK F{self.id:04d}"


@dataclass
class Delivered:
    """The simulator side of the ledger."""

    calls: list[Call] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    faxes: list[Fax] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)
    deletes: int = 0  # AT+CMGD of a message we delivered
    early_deletes: list[str] = field(default_factory=list)  # deleted before it was stored


def plan_traffic(
    calls: int,
    texts: int,
    seconds: float,
    rng: random.Random,
    *,
    first_call: int = 0,
    first_text: int = 0,
    start: float = 0.0,
) -> tuple[list[Call], list[Text]]:
    """Calls and texts spread evenly over `seconds` from `start`; three in five calls on
    analog lines. Numbers and tags count on from `first_call` and `first_text` (a second
    batch never reuses the first's)."""
    out_calls = []
    for n in range(calls):
        i = first_call + n
        analog = rng.random() < 0.6
        table = ANALOG_KINDS if analog else GSM_KINDS
        kind = rng.choices(list(table), weights=list(table.values()))[0]
        prefix = BLOCKED_PREFIX if kind == "blocked" else CALLER_PREFIX
        out_calls.append(
            Call(
                id=i,
                kind=kind,
                line_kind="analog" if analog else "gsm",
                number=f"{prefix}{i:05d}",
                due=start + seconds * n / max(1, calls),
            )
        )
    out_texts = []
    for n in range(texts):
        i = first_text + n
        tag = f"[S{i:05d}]"
        r = rng.random()
        if r < 0.55:
            body = f"{tag} Hello, is the surgery open on Saturday morning? Thanks, Pat {i}"
        elif r < 0.75:
            body = f"{tag} Grüße aus Zürich 😀 bis morgen, {i} 🦷"
        elif r < 0.9:
            body = f"{tag} " + " ".join(f"word{j}" for j in range(rng.randint(40, 90)))
        else:
            body = f"{tag} Danke 😀 " + "für den Termin, ich komme um 10 Uhr. " * rng.randint(3, 6)
        out_texts.append(
            Text(
                id=i,
                number=f"{TEXTER_PREFIX}{i:05d}",
                text=body,
                parts=len(split_text(body)),
                due=start + seconds * n / max(1, texts),
            )
        )
    return out_calls, out_texts


def plan_faxes(faxes: int, seconds: float, rng: random.Random) -> list[Fax]:
    """Faxes spread over `seconds`: half to the fax-only line, half as a calling tone on a
    voice call; one or two pages each."""
    return [
        Fax(
            id=i,
            kind="fax_only" if i % 2 == 0 else "cng",
            number=f"{FAX_PREFIX}{i:05d}",
            pages=rng.choice((1, 1, 2)),
            due=seconds * (i + 0.5) / max(1, faxes),
        )
        for i in range(faxes)
    ]


@functools.cache
def fax_page(fax_id: int, page: int) -> bytes:
    """A short page (T.4, MH, fine, first bit in the LSB as the simulated machine sends it)
    whose bars spell the fax id and page number."""
    from PIL import Image

    from firmware_app.media.fax_send import encode_page

    im = Image.new("1", (1728, 96), 1)
    bits = (fax_id << 2) | page
    for k in range(20):
        x = 40 + k * 80
        im.paste(0, (x, 16, x + (60 if bits >> k & 1 else 12), 80))
    return encode_page(im, fine=True, mr=False, min_scan_bits=0, fill_order=2)


def fax_machine(fax: Fax) -> FaxMachine:
    return FaxMachine(remote_id=fax.station, pages=[fax_page(fax.id, k) for k in range(fax.pages)])


def text_pdus(text: Text, when: datetime) -> list[str]:
    chunks = split_text(text.text)
    pdus = []
    for seq, chunk in enumerate(chunks, 1):
        concat = (
            Concat(reference=text.id & 0xFF, total=len(chunks), seq=seq)
            if len(chunks) > 1
            else None
        )
        pdus.append(
            encode_deliver(sender=text.number, payload=chunk, timestamp=when, concat=concat)
            .hex()
            .upper()
        )
    return pdus


class StoreWatcher:
    """Which SMS fingerprints are on disk in the daemon's `sms` database (snapshot and
    journal segments), read as plain text and only as far as needed."""

    def __init__(self, data_dir: Path) -> None:
        self.snapshot = data_dir / "sms.json"
        self.journal = data_dir / "sms.json.journal"
        self.old = data_dir / "sms.json.journal.old"  # while a snapshot is being written
        self.known: set[str] = set()
        self._offset = 0
        self._inode = 0
        self._lock = threading.Lock()

    def has(self, fp: str) -> bool:
        with self._lock:
            if fp in self.known:
                return True
            self._read()
            return fp in self.known

    def _read(self) -> None:
        try:
            st = self.journal.stat()
        except FileNotFoundError:
            st = None
        if st is None or st.st_ino != self._inode or st.st_size < self._offset:
            # A new journal: the old one is the old segment until the new snapshot holds it
            # (renamed into place before the segment is deleted: read in this order).
            self._offset = 0
            self._inode = st.st_ino if st else 0
            for earlier in (self.old, self.snapshot):
                with contextlib.suppress(FileNotFoundError):
                    self.known.update(re.findall(r"[0-9a-f]{32}", earlier.read_text()))
        if st is None:
            return
        with self.journal.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        cut = data.rfind(b"\n") + 1  # a line still being written waits for the next look
        self._offset += cut
        self.known.update(re.findall(r"[0-9a-f]{32}", data[:cut].decode("utf-8", "replace")))


class Line:
    """One simulated modem and what the soak is doing to it. `role`: "voice" takes calls
    (and, on a fax modem, calling tones), "fax" is a fax-only line."""

    def __init__(self, name: str, personality: str, folder: Path, role: str = "voice") -> None:
        self.name = name  # the daemon's name for it (line1, ...)
        self.kind = "gsm" if personality.startswith("sim") else "analog"
        self.role = role
        self.modem: SimulatedModem = create(personality, folder, link_name=f"tty-soak-{name}")
        self.fax = personality == "cx93010"
        if self.fax:  # Conexant firmware with Class 2.0 as well (MultiTech style), see fax.md
            engine = self.modem.engine
            engine.p = dataclasses.replace(engine.p, fclass_options_class2="0,1,1.0,2,2.0,8")
        if self.kind == "gsm":
            for memory in self.modem.engine.memories.values():
                memory.capacity = max(memory.capacity, 30)
        self.faulted = threading.Event()  # unplugged, hung: no calls now
        self.busy = threading.Lock()  # one call at a time
        self.sim_busy_until = 0.0

    @property
    def path(self) -> Path:
        return self.modem.path

    def close(self) -> None:
        self.modem.close()


def watch_deletes(line: Line, watcher: StoreWatcher, delivered: Delivered) -> None:
    """Check every AT+CMGD of a text we delivered: its fingerprint must be on disk first."""
    engine = line.modem.engine
    original = engine.handlers["+CMGD"]

    def cmgd(port: int, cmd: Any) -> Any:
        if cmd.form == "set":
            try:
                index = int(cmd.args.split(",")[0])
            except ValueError:
                index = -1
            memory = engine.memories.get(engine.cpms[0])
            slot = memory.read(index) if memory is not None else None
            if slot is not None:
                with contextlib.suppress(Exception):
                    msg = decode_pdu(slot.pdu)
                    ours = TEXTER_PREFIX.lstrip("+")
                    if isinstance(msg, SmsDeliver) and msg.sender.number.lstrip("+").startswith(
                        ours
                    ):
                        fp = fingerprint(msg)
                        delivered.deletes += 1
                        if not watcher.has(fp):
                            delivered.early_deletes.append(f"{line.name} slot {index}: {fp}")
        return original(port, cmd)

    engine.handlers["+CMGD"] = cmgd


SIM_BUSY_SMS = ("+CMGR", "+CMGL", "+CMGD", "+CPMS", "+CMGS")
SIM_BUSY_OTHER = ("+CPIN", "+COPS", "+CSQ")


def make_sim_busy(line: Line) -> None:
    """For as long as `line.sim_busy_until` lies ahead, SIM commands answer SIM busy
    (+CMS ERROR: 314 for SMS commands, +CME ERROR: 14 for the others)."""
    engine = line.modem.engine
    for name in SIM_BUSY_SMS + SIM_BUSY_OTHER:
        original = engine.handlers.get(name)
        if original is None:
            continue
        sms = name in SIM_BUSY_SMS

        def busy(
            port: int, cmd: Any, _orig: Callable[..., Any] = original, _sms: bool = sms
        ) -> Any:
            if time.monotonic() < line.sim_busy_until and cmd.form != "test":
                raise engine.cms(314) if _sms else engine.cme(14)
            return _orig(port, cmd)

        engine.handlers[name] = busy


def caller_script(kind: str) -> VoiceCaller | None:
    if kind == "voicemail":
        return (
            VoiceCaller()
            .say(speech(1.0), at=0.2)
            .hang_up(at=1.4, after="record", how=("dial_tone",))
        )
    if kind == "missed":
        return VoiceCaller().hang_up(at=0.3, after="play")
    return VoiceCaller()


def fax_tone_caller() -> VoiceCaller:
    """A fax machine that called a voice line: CNG (DLE c) once the greeting plays."""
    return VoiceCaller().send_fax_tone(at=0.1, after="play")


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


__all__ = [
    "EXPECTED",
    "Call",
    "Delivered",
    "Fax",
    "Line",
    "StoreWatcher",
    "Text",
    "caller_script",
    "fax_machine",
    "fax_tone_caller",
    "make_sim_busy",
    "now_utc",
    "plan_faxes",
    "plan_traffic",
    "text_pdus",
    "watch_deletes",
]
