"""Reassembly of concatenated SMS (TS 23.040 9.2.3.24.1/.8): parts in any order, several
messages at once, duplicates ignored, incomplete ones given up after a timeout (24 h).

A pure state machine: time comes in as `now` (epoch seconds, since the state outlives a
restart); `to_state()` is plain JSON data, one record per part, for the store. No I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from firmware_app.protocol.errors import LocalProtocolError
from firmware_app.protocol.sms_pdu import (
    Address,
    Concat,
    Encoding,
    SmsDeliver,
    decode_units,
    fingerprint,
)

__all__ = [
    "DEFAULT_MAX_PENDING",
    "DEFAULT_TIMEOUT",
    "MISSING_MARK",
    "STATE_VERSION",
    "CompletedMessage",
    "Reassembler",
    "ReassemblyStateError",
    "part_from_record",
    "part_to_record",
]

DEFAULT_TIMEOUT: Final = 24 * 3600.0  # smstools' default; gammu-smsd waits 600 s
DEFAULT_MAX_PENDING: Final = 100
MISSING_MARK: Final = "[…]"  # stands in the text where a part never arrived
STATE_VERSION: Final = 1

# (sender number, reference bits, reference, total): TS 23.040 9.2.3.24.1 says parts of one
# message share the originator, reference and maximum number.
Key = tuple[str, int, int, int]


class ReassemblyStateError(LocalProtocolError):
    """A stored reassembly record is not one `part_to_record` wrote; names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletedMessage:
    """A whole message (or what arrived of it, `complete=False`), ready to store.

    `text` joins the parts in order (an escape or surrogate pair split across two parts is
    joined too); where parts are missing it holds `MISSING_MARK`. `data` joins 8-bit parts.
    `fingerprints` are the parts' fingerprints (seq order), `fingerprint` the message's.
    `received_at` is when the first part arrived (the `now` given to `add`).
    """

    sender: Address
    text: str
    data: bytes = b""
    encoding: Encoding
    message_class: int | None = None
    timestamp: datetime | None
    received_at: float
    complete: bool
    reference: int | None = None
    total: int = 1
    received: tuple[int, ...] = (1,)
    missing: tuple[int, ...] = ()
    fingerprint: str
    fingerprints: tuple[str, ...]
    parts: tuple[SmsDeliver, ...]


@dataclass(slots=True)
class _Pending:
    key: Key
    first_received: float
    parts: dict[int, tuple[SmsDeliver, float, str]] = field(default_factory=dict)


def _key(concat: Concat, sender: Address) -> Key:
    return (sender.number, concat.bits, concat.reference, concat.total)


def _join(parts: dict[int, SmsDeliver], total: int) -> tuple[str, bytes]:
    """Text and data of the parts in order; runs of consecutive parts in the same text
    coding are joined as units first so pairs split across parts survive."""
    texts: list[str] = []
    data = bytearray()
    run: list[SmsDeliver] = []

    def flush() -> None:
        if run:
            units = b"".join(p.units for p in run)
            texts.append(decode_units(run[0].encoding, units))
            run.clear()

    for seq in range(1, total + 1):
        part = parts.get(seq)
        if part is None:
            flush()
            if not texts or texts[-1] != MISSING_MARK:
                texts.append(MISSING_MARK)
            continue
        if part.encoding == "8bit" or part.compressed:
            flush()
            data += part.data
            continue
        if run and (run[-1].encoding != part.encoding):
            flush()
        run.append(part)
    flush()
    return "".join(texts), bytes(data)


def _message_fingerprint(key: Key, fps: list[str]) -> str:
    h = hashlib.sha256(repr(key).encode("utf-8", "surrogatepass"))
    for fp in fps:
        h.update(fp.encode())
    return h.hexdigest()[:32]


def _single(part: SmsDeliver, now: float, fp: str) -> CompletedMessage:
    return CompletedMessage(
        sender=part.sender,
        text=part.text,
        data=part.data,
        encoding=part.encoding,
        message_class=part.message_class,
        timestamp=part.timestamp,
        received_at=now,
        complete=True,
        fingerprint=fp,
        fingerprints=(fp,),
        parts=(part,),
    )


def _finish(pending: _Pending, *, complete: bool) -> CompletedMessage:
    _sender, _bits, reference, total = pending.key
    by_seq = {seq: p for seq, (p, _t, _f) in pending.parts.items()}
    seqs = sorted(by_seq)
    first = by_seq[seqs[0]]
    text, data = _join(by_seq, total)
    fps = [pending.parts[s][2] for s in seqs]
    return CompletedMessage(
        sender=first.sender,
        text=text,
        data=data,
        encoding=first.encoding,
        message_class=first.message_class,
        timestamp=first.timestamp,
        received_at=pending.first_received,
        complete=complete,
        reference=reference,
        total=total,
        received=tuple(seqs),
        missing=tuple(s for s in range(1, total + 1) if s not in by_seq),
        fingerprint=_message_fingerprint(pending.key, fps),
        fingerprints=tuple(fps),
        parts=tuple(by_seq[s] for s in seqs),
    )


class Reassembler:
    """Collects parts of concatenated messages until each is whole.

    `add(part, now)` returns the finished message (a single-part message at once) or None.
    `expire(now)` returns messages given up on: older than `timeout`, pushed out by
    `max_pending` (oldest first), or displaced by a new message reusing the same reference;
    and whole messages found by `from_state`.
    Call `expire(now)` after each `add` and from a timer (`next_deadline()`).
    Store each part with `part_to_record` when `add` returns None; drop the records of the
    `fingerprints` of every message that comes out.
    """

    def __init__(
        self, *, timeout: float = DEFAULT_TIMEOUT, max_pending: int = DEFAULT_MAX_PENDING
    ) -> None:
        if timeout <= 0:
            raise LocalProtocolError(f"timeout must be positive, not {timeout!r}")
        if max_pending < 1:
            raise LocalProtocolError(f"max_pending must be at least 1, not {max_pending!r}")
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: dict[Key, _Pending] = {}
        self._out: list[tuple[_Pending, bool]] = []  # (message, complete) for expire()

    def __len__(self) -> int:
        """Messages still waiting for parts (including those given up but not yet expired)."""
        return len(self._pending) + len(self._out)

    def add(self, part: SmsDeliver, now: float) -> CompletedMessage | None:
        fp = fingerprint(part)
        concat = part.concat
        if concat is None or concat.total == 1:
            return _single(part, now, fp)
        key = _key(concat, part.sender)
        pending = self._pending.get(key)
        if pending is not None:
            old = pending.parts.get(concat.seq)
            if old is not None:
                if old[2] == fp or old[0].units == part.units:
                    return None  # the same part again (re-read, or resent with a new time)
                # Same reference, same part number, other content: a new message reuses
                # the reference; give up on the old one.
                self._out.append((self._pending.pop(key), False))
                pending = None
        if pending is None:
            pending = _Pending(key=key, first_received=now)
            self._pending[key] = pending
            self._enforce_cap(keep=key)
        pending.parts[concat.seq] = (part, now, fp)
        if len(pending.parts) == concat.total:
            del self._pending[key]
            return _finish(pending, complete=True)
        return None

    def _enforce_cap(self, keep: Key | None = None) -> None:
        while len(self._pending) > self.max_pending:
            candidates = [p for p in self._pending.values() if p.key != keep]
            oldest = min(candidates, key=lambda p: p.first_received)
            self._out.append((self._pending.pop(oldest.key), False))

    def expire(self, now: float) -> list[CompletedMessage]:
        """Messages given up on, marked incomplete with their missing part numbers."""
        out = [_finish(p, complete=complete) for p, complete in self._out]
        self._out.clear()
        for key in [k for k, p in self._pending.items() if now - p.first_received >= self.timeout]:
            out.append(_finish(self._pending.pop(key), complete=False))
        return out

    def next_deadline(self) -> float | None:
        """When `expire` will next have something to give (None: nothing pending)."""
        if self._out:
            return min(p.first_received for p, _c in self._out)
        if not self._pending:
            return None
        return min(p.first_received for p in self._pending.values()) + self.timeout

    def pending_fingerprints(self) -> set[str]:
        """Fingerprints of all parts held: the store's part records should match these."""
        return {fp for p in self._all() for (_pt, _t, fp) in p.parts.values()}

    def _all(self) -> list[_Pending]:
        return [*self._pending.values(), *(p for p, _c in self._out)]

    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot: {"version": 1, "parts": [part record, ...]}."""
        records = [
            part_to_record(part, received)
            for pending in self._all()
            for (part, received, _fp) in pending.parts.values()
        ]
        return {"version": STATE_VERSION, "parts": records}

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> Reassembler:
        """Rebuild from `to_state()` output (or {"parts": records} from the store)."""
        version = state.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise ReassemblyStateError(f"state version {version!r} is not {STATE_VERSION}")
        records = state.get("parts", [])
        if not isinstance(records, list):
            raise ReassemblyStateError(f"state 'parts' is {type(records).__name__}, not a list")
        return cls.from_records(records, timeout=timeout, max_pending=max_pending)

    @classmethod
    def from_records(
        cls,
        records: list[dict[str, Any]],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> Reassembler:
        """Rebuild from part records in any order. A message whose parts are all there (the
        process stopped before storing it) comes out of the next `expire` call, complete."""
        r = cls(timeout=timeout, max_pending=max_pending)
        parts = sorted((part_from_record(rec) for rec in records), key=lambda x: x[1])
        for part, received in parts:
            concat = part.concat
            if concat is None:
                raise ReassemblyStateError("a part record has no concatenation reference")
            key = _key(concat, part.sender)
            pending = r._pending.get(key)
            if pending is None:
                pending = r._pending[key] = _Pending(key=key, first_received=received)
            pending.parts[concat.seq] = (part, received, fingerprint(part))
        for key in [k for k, p in r._pending.items() if len(p.parts) >= k[3]]:
            r._out.append((r._pending.pop(key), True))
        r._enforce_cap()
        return r


# --- part records (one JSON document per part) -------------------------------------------------


def part_to_record(part: SmsDeliver, received_at: float) -> dict[str, Any]:
    """A plain-data record of one part: enough to rebuild it and its fingerprint."""
    c = part.concat
    if c is None:
        raise ReassemblyStateError("only parts of concatenated messages are stored as parts")
    return {
        "fingerprint": fingerprint(part),
        "received_at": received_at,
        "sender": part.sender.number,
        "toa": part.sender.toa,
        "scts": part.timestamp_raw.hex(),
        "timestamp": part.timestamp.isoformat() if part.timestamp else None,
        "pid": part.pid,
        "dcs": part.dcs,
        "encoding": part.encoding,
        "compressed": part.compressed,
        "message_class": part.message_class,
        "reference": c.reference,
        "total": c.total,
        "seq": c.seq,
        "bits": c.bits,
        "units": part.units.hex(),
        "data": part.data.hex(),
        "ud": part.user_data_raw.hex(),
    }


def part_from_record(record: dict[str, Any]) -> tuple[SmsDeliver, float]:
    """Inverse of `part_to_record`; raises `ReassemblyStateError` naming a bad field."""

    def get(name: str, kind: type | tuple[type, ...]) -> Any:
        if name not in record:
            raise ReassemblyStateError(f"part record has no {name!r}")
        value = record[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise ReassemblyStateError(f"part record {name!r} is {value!r}")
        return value

    def hexfield(name: str) -> bytes:
        try:
            return bytes.fromhex(get(name, str))
        except ValueError:
            raise ReassemblyStateError(f"part record {name!r} is not hex") from None

    encoding = get("encoding", str)
    if encoding not in ("gsm7", "ucs2", "8bit"):
        raise ReassemblyStateError(f"part record 'encoding' is {encoding!r}")
    bits = get("bits", int)
    if bits not in (8, 16):
        raise ReassemblyStateError(f"part record 'bits' is {bits!r}")
    ts = record.get("timestamp")
    try:
        timestamp = datetime.fromisoformat(ts) if isinstance(ts, str) else None
        concat = Concat(
            reference=get("reference", int), total=get("total", int), seq=get("seq", int), bits=bits
        )
    except (ValueError, LocalProtocolError) as exc:
        raise ReassemblyStateError(f"part record: {exc}") from None
    units = hexfield("units")
    compressed = bool(record.get("compressed", False))
    cls = record.get("message_class")
    part = SmsDeliver(
        smsc=None,
        sender=Address(number=get("sender", str), toa=get("toa", int)),
        text="" if compressed else decode_units(encoding, units),
        data=hexfield("data"),
        encoding=encoding,
        compressed=compressed,
        message_class=cls if isinstance(cls, int) else None,
        pid=get("pid", int),
        dcs=get("dcs", int),
        timestamp=timestamp,
        timestamp_raw=hexfield("scts"),
        concat=concat,
        units=units,
        user_data_raw=hexfield("ud"),
    )
    fp = record.get("fingerprint")
    if fp is not None and fp != fingerprint(part):
        raise ReassemblyStateError(f"part record fingerprint {fp!r} does not match its fields")
    return part, float(get("received_at", (int, float)))
