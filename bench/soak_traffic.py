"""The soak's outside world: simulated lines on ptys, the callers and texters on them, and
the faults (unplug, a hung modem, garbage, SIM busy). Everything delivered is written down
in `Delivered` so the ledger can find it again in the store.
"""

from __future__ import annotations

import contextlib
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

from firmware_app.modem.simulator import SimulatedModem, VoiceCaller, create
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


@dataclass
class Delivered:
    """The simulator side of the ledger."""

    calls: list[Call] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)
    deletes: int = 0  # AT+CMGD of a message we delivered
    early_deletes: list[str] = field(default_factory=list)  # deleted before it was stored


def plan_traffic(
    calls: int, texts: int, seconds: float, rng: random.Random
) -> tuple[list[Call], list[Text]]:
    """Calls and texts spread evenly over `seconds`; three in five calls on analog lines."""
    out_calls = []
    for i in range(calls):
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
                due=seconds * i / max(1, calls),
            )
        )
    out_texts = []
    for i in range(texts):
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
                due=seconds * i / max(1, texts),
            )
        )
    return out_calls, out_texts


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
    journal), read as plain text and only as far as needed."""

    def __init__(self, data_dir: Path) -> None:
        self.snapshot = data_dir / "sms.json"
        self.journal = data_dir / "sms.json.journal"
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
            self._offset = 0  # a new journal: the old one went into the snapshot
            self._inode = st.st_ino if st else 0
            with contextlib.suppress(FileNotFoundError):
                self.known.update(re.findall(r"[0-9a-f]{32}", self.snapshot.read_text()))
        if st is None:
            return
        with self.journal.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        cut = data.rfind(b"\n") + 1  # a line still being written waits for the next look
        self._offset += cut
        self.known.update(re.findall(r"[0-9a-f]{32}", data[:cut].decode("utf-8", "replace")))


class Line:
    """One simulated modem and what the soak is doing to it."""

    def __init__(self, name: str, personality: str, folder: Path) -> None:
        self.name = name  # the daemon's name for it (line1, ...)
        self.kind = "gsm" if personality.startswith("sim") else "analog"
        self.modem: SimulatedModem = create(personality, folder, link_name=f"tty-soak-{name}")
        if self.kind == "gsm":
            for memory in self.modem.engine.memories.values():
                memory.capacity = max(memory.capacity, 30)
        self.faulted = threading.Event()  # unplugged, hung: no calls now
        self.busy = threading.Lock()  # one call at a time
        self.sim_busy_until = 0.0

    @property
    def path(self) -> Path:
        return self.modem.path

    def drop_dtr(self) -> None:
        """What a real modem does when the port's owner dies (DTR drops, &D2): the call is
        hung up and the modem returns to command mode. The simulator has no DTR line, so
        the soak does it by hand after a kill."""
        engine = self.modem.engine
        with self.modem._lock:
            if engine.call_state != "idle" or engine.voice.mode:
                engine.caller_hangs_up()
                engine.handlers["H"](0, None)  # type: ignore[arg-type]
            for session in engine.sessions:
                session.buffer.clear()
                session.pdu_command = ""

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


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


__all__ = [
    "EXPECTED",
    "Call",
    "Delivered",
    "Line",
    "StoreWatcher",
    "Text",
    "caller_script",
    "make_sim_busy",
    "now_utc",
    "plan_traffic",
    "text_pdus",
    "watch_deletes",
]
