"""The history's index and record copies, kept in step as records are written.

The store keeps history by month and holds at most three months in memory, so a question
about the whole history ("every call from this number", "open voicemail", "texts with the
word boiler", "calls on 5 March") would otherwise read every month. This index answers it
from sorted lists of record ids per key, and gives a record back with one `pread` from a
copy of its month instead of loading the month.

Keys of a record (see `record_keys`):

    ch:<channel>            o:<channel>:<outcome>   n:<number>   c:<contact id>
    l:<line>                t:<YYYY-MM-DDTHH>  (UTC hour of the start)
    w:<word>  (folded words of the caller name, and of the text of texts and faxes)
    m  (has media)          open  (needs a person and is not handled)

Files in `data_dir/index/`, all derived from the store and rebuilt from it when missing,
damaged or out of step:

    YYYY-MM.jsonl   every version of every record of the month, one JSON line each,
                    appended (no fsync) right after the store's durable write; the newest
                    line of a record wins; rewritten without old versions when they
                    outnumber the live ones
    history.idx     the lists and the line offsets in binary, with a checksum: written
                    atomically every SNAPSHOT_EVERY changes and at shutdown, together with
                    the size and time of each month's store files at that moment

At start the snapshot is read and the lines appended after it replayed, which is fast (at
most REPLAY_MAX bytes a month: a snapshot is written every SNAPSHOT_EVERY changes). A copy
with a longer tail (a rebuild stopped before its first snapshot, a copy rewritten or cut
since the snapshot) is deleted and its month indexed again from the store: replaying it
would hold up the start for seconds at 100,000 records. A
month of the store whose files changed since the snapshot (the daemon did not stop cleanly,
or the folder was restored) is compared record by record with its copy; a month the index
has never seen (the first start after an upgrade), or whose reading was stopped, is read
whole. Both happen on a thread: while months are missing, `ready` is False and callers fall
back to a bounded scan.

Record ids `YYYY-MM:N` are kept as one integer, `(year * 12 + month - 1) << 32 | N`, so the
lists sort in the store's own order: by month, then by order of writing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import unicodedata
import zlib
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from heapq import merge
from pathlib import Path
from typing import Any

from ..store import Store
from ..store.durable import atomic_write

log = logging.getLogger(__name__)

FOLDER = "index"
SNAPSHOT = "history.idx"
MAGIC = b"FDHX1\n"
SNAPSHOT_EVERY = 2000  # changes between snapshots
REPLAY_MAX = 2 << 20  # bytes of a copy replayed at start; a longer tail: indexed again
COMPACT_MIN = 1000  # old versions of a month's records before its copy may be rewritten
WORD_MIN, WORD_MAX = 2, 32
PREFIX_MIN = 3  # shorter search words match whole words only
PREFIX_WORDS = 2000  # words one search word may expand to
CATCH_UP_CHUNK = 500  # records compared per hold of the lock

_ID = re.compile(r"^(\d{4})-(\d{2}):(\d{1,9})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WORD = re.compile(r"\w+")

Attention = Callable[[str, str, str], bool]  # channel, outcome, direction -> needs a person


def month_base(month: str) -> int:
    m = _MONTH.match(month)
    if m is None:
        raise ValueError(f"{month!r} is not a month")
    return (int(m[1]) * 12 + int(m[2]) - 1) << 32


def encode(record_id: str) -> int:
    """`2026-11:42` -> one sortable integer."""
    m = _ID.match(str(record_id))
    if m is None:
        raise ValueError(f"{record_id!r} is not a history record id")
    return ((int(m[1]) * 12 + int(m[2]) - 1) << 32) | int(m[3])


def decode(code: int) -> str:
    year, month = divmod(code >> 32, 12)
    return f"{year:04d}-{month + 1:02d}:{code & 0xFFFFFFFF}"


def month_of(code: int) -> str:
    year, month = divmod(code >> 32, 12)
    return f"{year:04d}-{month + 1:02d}"


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _plain_number(number: str) -> bool:
    """Only digits, after an optional leading + (E.164, a short code)."""
    digits = number[1:] if number.startswith("+") else number
    return digits.isascii() and digits.isdigit()


def fold(text: str) -> str:
    """Lower case without accents: "Zoë" and "ZOE" are both "zoe"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words_of(text: str) -> set[str]:
    return {w[:WORD_MAX] for w in _WORD.findall(fold(text)) if len(w) >= WORD_MIN}


def hour_key(at: datetime) -> str:
    return f"t:{at.astimezone(UTC):%Y-%m-%dT%H}"


def record_keys(rec: Mapping[str, Any], attention: Attention) -> set[str]:
    """Every key a stored record is listed under."""
    channel = str(rec.get("channel", "call"))
    outcome = str(rec.get("outcome", ""))
    direction = str(rec.get("direction", "in"))
    keys = {f"ch:{channel}", f"o:{channel}:{outcome}"}
    if rec.get("number"):
        keys.add(f"n:{rec['number']}")
    if rec.get("contact_id") is not None:
        keys.add(f"c:{rec['contact_id']}")
    if rec.get("line"):
        keys.add(f"l:{rec['line']}")
    with contextlib.suppress(ValueError):
        keys.add(hour_key(datetime.fromisoformat(str(rec.get("start")))))
    if rec.get("media"):
        keys.add("m")
    text = str(rec.get("name") or "")
    if channel in ("sms", "fax"):
        text += " " + str(rec.get("text") or "")
    keys.update(f"w:{w}" for w in words_of(text))
    if attention(channel, outcome, direction) and not rec.get("handled_at"):
        keys.add("open")
    return keys


def _line(num: int, rec: Mapping[str, Any]) -> bytes:
    """A record's line in its month's copy (without the newline)."""
    return json.dumps({"n": num, "r": rec}, ensure_ascii=False, separators=(",", ":")).encode()


def _signature(folder: Path, month: str) -> list[int]:
    """Size and change time of a store month's files: changes whenever the month is written."""
    out: list[int] = []
    for name in (f"{month}.json", f"{month}.json.journal"):
        try:
            st = (folder / name).stat()
            out += [st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            out += [-1, -1]
    return out


class HistoryIndex:
    """Sorted id lists per key and the month copies; thread-safe.

    Writers call `put` while holding `writer_lock` (the history service's lock, taken around
    each store write), so a snapshot taken under that lock matches the store exactly.
    """

    def __init__(self, store: Store, attention: Attention, writer_lock: threading.RLock) -> None:
        self._store = store
        self._attention = attention
        self._writer_lock = writer_lock
        self.folder = store.data_dir / FOLDER
        self._lock = threading.RLock()
        self._snap_lock = threading.Lock()
        self._reset()
        self.state = "closed"  # "open" once loaded; see `ready`
        self._missing: set[str] = set()  # store months not indexed yet
        self.progress = (0, 0)  # store months read / to read

    def _reset(self) -> None:
        self._keys: dict[str, array[int]] = {}
        self._odd: set[str] = set()  # number keys with more than "+" and digits (rare)
        self._words: list[str] = []  # sorted
        self._offsets: dict[str, array[int]] = {}  # month -> line offset by record number
        self._sizes: dict[str, int] = {}  # month -> bytes of its copy
        self._dead: dict[str, int] = {}  # month -> old versions in its copy
        self._recorded: dict[str, Any] = {}  # month -> its store files' signature at the snapshot
        self._pending: set[str] = set()  # store months to compare with their copies
        self._touched: tuple[str, set[int]] = ("", set())  # records put during a catch-up
        self._changes = 0

    @property
    def ready(self) -> bool:
        """Every month of the store is indexed: queries are complete."""
        return self.state == "open" and not self._missing

    # -- keys and lists ----------------------------------------------------------------------

    def _add(self, key: str, code: int) -> None:
        a = self._keys.get(key)
        if a is None:
            a = self._keys[key] = array("q")
            if key.startswith("w:"):
                insort(self._words, key[2:])
            elif key.startswith("n:") and not _plain_number(key[2:]):
                self._odd.add(key)
        if not a or a[-1] < code:
            a.append(code)
            return
        i = bisect_left(a, code)
        if i == len(a) or a[i] != code:
            a.insert(i, code)

    def _remove(self, key: str, code: int) -> None:
        a = self._keys.get(key)
        if a is None:
            return
        i = bisect_left(a, code)
        if i < len(a) and a[i] == code:
            del a[i]
        if not a:
            del self._keys[key]
            self._odd.discard(key)
            if key.startswith("w:"):
                j = bisect_left(self._words, key[2:])
                if j < len(self._words) and self._words[j] == key[2:]:
                    del self._words[j]

    def _drop_month(self, month: str) -> None:
        """Forget a month entirely (its copy is gone or cannot be trusted)."""
        lo, hi = month_base(month), month_base(month) + (1 << 32)
        for key in list(self._keys):
            a = self._keys[key]
            i, j = bisect_left(a, lo), bisect_left(a, hi)
            if i < j:
                del a[i:j]
                if not a:
                    self._remove(key, -1)  # drops the empty list and its vocabulary entry
        self._offsets.pop(month, None)
        self._sizes.pop(month, None)
        self._dead.pop(month, None)

    # -- the month copies --------------------------------------------------------------------

    def _path(self, month: str) -> Path:
        return self.folder / f"{month}.jsonl"

    def _offset(self, month: str, num: int) -> int:
        offs = self._offsets.get(month)
        return offs[num] if offs is not None and 0 <= num < len(offs) else -1

    def _line_at(self, month: str, offset: int) -> bytes | None:
        """The line of a month's copy at `offset`, without its newline."""
        if offset < 0:
            return None
        try:
            fd = os.open(self._path(month), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            buf = os.pread(fd, 4096, offset)
            while b"\n" not in buf:
                more = os.pread(fd, 65536, offset + len(buf))
                if not more:
                    return None
                buf += more
        finally:
            os.close(fd)
        return buf[: buf.index(b"\n")]

    def _read_at(self, month: str, offset: int) -> dict[str, Any] | None:
        line = self._line_at(month, offset)
        if line is None:
            return None
        try:
            rec = json.loads(line)["r"]
        except (ValueError, KeyError, TypeError):
            return None
        return rec if isinstance(rec, dict) else None

    def _set(self, month: str, num: int, rec: dict[str, Any] | None, offset: int) -> None:
        """Record `num` of `month` is now `rec` (at `offset` of the copy): move its keys."""
        code = month_base(month) | num
        old_off = self._offset(month, num)
        old = self._read_at(month, old_off) if old_off >= 0 else None
        old_keys = record_keys(old, self._attention) if old is not None else set()
        new_keys = record_keys(rec, self._attention) if rec is not None else set()
        for key in old_keys - new_keys:
            self._remove(key, code)
        for key in new_keys - old_keys:
            self._add(key, code)
        offs = self._offsets.setdefault(month, array("q"))
        if num >= len(offs):
            offs.extend(array("q", [-1]) * (num + 1 - len(offs)))
        offs[num] = offset
        if old_off >= 0:
            self._dead[month] = self._dead.get(month, 0) + 1

    def _append(self, month: str, num: int, line: bytes) -> None:
        rec = json.loads(line)["r"]
        data = line + b"\n"
        path = self._path(month)
        offset = self._sizes.get(month)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            if offset is None:
                offset = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                os.ftruncate(fd, offset)  # never leave half a line
                raise
        finally:
            os.close(fd)
        self._sizes[month] = offset + len(data)
        self._set(month, num, rec, offset)

    def _compact(self, month: str) -> None:
        """Rewrite a month's copy with only the newest line of each record."""
        offs = self._offsets.get(month)
        if offs is None:
            return
        lines: list[bytes] = []
        new = array("q", [-1]) * len(offs)
        pos = 0
        for num, off in enumerate(offs):
            if off < 0:
                continue
            raw = self._line_at(month, off)
            if raw is None:
                continue
            line = raw + b"\n"
            new[num] = pos
            pos += len(line)
            lines.append(line)
        atomic_write(self._path(month), b"".join(lines))
        self._offsets[month] = new
        self._sizes[month] = pos
        self._dead[month] = 0
        log.info("history index: %s copy rewritten (%d records)", month, len(lines))

    def _maybe_compact(self, month: str) -> None:
        dead = self._dead.get(month, 0)
        if dead > COMPACT_MIN and dead > sum(1 for o in self._offsets.get(month, ()) if o >= 0):
            self._compact(month)

    # -- writing -----------------------------------------------------------------------------

    def put(self, record_id: str, rec: Mapping[str, Any]) -> None:
        """A record was stored or changed (called with `writer_lock` held)."""
        code = encode(record_id)
        month, num = month_of(code), code & 0xFFFFFFFF
        line = _line(num, {k: v for k, v in rec.items() if k != "id"})
        with self._lock:
            if self.state == "closed":
                return
            if self._touched[0] == month:
                self._touched[1].add(num)  # catch_up leaves it alone: this is newer
            if self._line_at(month, self._offset(month, num)) == line:
                return
            self._append(month, num, line)
            self._maybe_compact(month)
            self._changes += 1
            due = self._changes >= SNAPSHOT_EVERY
        if due:
            self.snapshot(background=True)

    # -- reading -----------------------------------------------------------------------------

    def get(self, record_id: str) -> dict[str, Any] | None:
        try:
            code = encode(record_id)
        except ValueError:
            return None
        month, num = month_of(code), code & 0xFFFFFFFF
        with self._lock:  # held while reading: a rewrite of the copy moves every offset
            off = self._offset(month, num)
            return self._read_at(month, off) if off >= 0 else None

    def count(self, key: str) -> int:
        with self._lock:
            a = self._keys.get(key)
            return len(a) if a is not None else 0

    def numbers(self) -> list[str]:
        with self._lock:
            return sorted(k[2:] for k in self._keys if k.startswith("n:"))

    def numbers_containing(self, digits: str) -> list[str]:
        """Numbers seen in the history whose digits contain `digits`: found in the keys
        themselves (`n:+<digits>`: a match can only be among the digits), the few numbers
        with other characters checked digit by digit."""
        if not digits.isdigit():
            return []
        with self._lock:
            found = {
                k[2:]
                for k in self._keys
                if digits in k and k.startswith("n:") and k not in self._odd
            }
            found.update(k[2:] for k in self._odd if digits in _digits(k[2:]))
            return sorted(found)

    def expand(self, word: str) -> tuple[list[str], bool]:
        """The word keys a search word matches (whole word, or as a prefix from PREFIX_MIN
        letters); False when the prefix matched more than PREFIX_WORDS words (cut)."""
        with self._lock:
            if len(word) < PREFIX_MIN:
                return ([f"w:{word}"] if f"w:{word}" in self._keys else []), True
            i = bisect_left(self._words, word)
            out: list[str] = []
            while i < len(self._words) and self._words[i].startswith(word):
                if len(out) >= PREFIX_WORDS:
                    return out, False
                out.append(f"w:{self._words[i]}")
                i += 1
            return out, True

    def _member(self, arrays: list[array[int]]) -> Callable[[int], bool]:
        if len(arrays) == 1:
            a = arrays[0]

            def one(code: int) -> bool:
                i = bisect_left(a, code)
                return i < len(a) and a[i] == code

            return one
        return set().union(*arrays).__contains__

    def select(
        self,
        clauses: Sequence[Sequence[str]],
        limit: int,
        *,
        before: int | None = None,
        after: int | None = None,
        oldest_first: bool = False,
        count: bool = True,
    ) -> tuple[list[int], int]:
        """Ids in every clause (a clause: any of its keys), newest first unless
        `oldest_first`, strictly between `after` and `before`; and how many match in all."""
        with self._lock:
            sets = [[a for k in dict.fromkeys(c) if (a := self._keys.get(k))] for c in clauses]
            if not sets or any(not s for s in sets):
                return [], 0
            order = sorted(range(len(sets)), key=lambda i: sum(map(len, sets[i])))
            first = sets[order[0]]
            driver: Sequence[int] = first[0] if len(first) == 1 else sorted(set().union(*first))
            tests = [self._member(sets[i]) for i in order[1:]]
            lo = 0 if after is None else bisect_right(driver, after)
            hi = len(driver) if before is None else bisect_left(driver, before)
            steps = range(lo, hi) if oldest_first else range(hi - 1, lo - 1, -1)
            out: list[int] = []
            for i in steps:
                code = driver[i]
                if all(t(code) for t in tests):
                    out.append(code)
                    if len(out) >= limit:
                        break
            if not count:
                total = -1
            elif not tests:
                total = len(driver)
            else:
                total = sum(1 for c in driver if all(t(c) for t in tests))
            return out, total

    def since(
        self, at: datetime, limit: int, after: int | None = None
    ) -> tuple[list[int], int, list[int]]:
        """Ids of records started at or after `at` (to the hour: the caller checks the ones
        of the first hour, also returned), oldest first, after `after`; how many in all."""
        at = at.astimezone(UTC)
        hour = at.replace(minute=0, second=0, microsecond=0)
        nxt = (hour.replace(day=1, hour=0) + timedelta(days=32)).replace(day=1)
        with self._lock:
            arrays = []
            h = hour
            while h < nxt:
                a = self._keys.get(hour_key(h))
                if a:
                    arrays.append(a)
                h += timedelta(hours=1)
            head = sorted(set().union(*arrays)) if arrays else []
            first = list(self._keys.get(hour_key(hour), ()))
            later_base = month_base(f"{nxt:%Y-%m}")
            tails = [
                a[bisect_left(a, max(later_base, (after or -1) + 1)) :]
                for k in ("ch:call", "ch:sms", "ch:fax")
                if (a := self._keys.get(k))
            ]
            total = len(head) + sum(
                len(a) - bisect_left(a, later_base)
                for k in ("ch:call", "ch:sms", "ch:fax")
                if (a := self._keys.get(k))
            )
            start = 0 if after is None else bisect_right(head, after)
            out = head[start : start + limit]
            if len(out) < limit:
                for code in merge(*tails):
                    out.append(code)
                    if len(out) >= limit:
                        break
        return out, total, first

    # -- opening -----------------------------------------------------------------------------

    def open(self) -> list[str]:
        """Load the snapshot and the copies' newer lines (no store month is read here).
        Returns the store months to read with `catch_up`, oldest first."""
        with self._writer_lock, self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._reset()
            months, unfinished = self._load_snapshot()
            for path in sorted(self.folder.glob("????-??.jsonl")):
                month = path.stem
                if _MONTH.match(month) and month not in months:
                    months[month] = 0  # a copy the snapshot does not know
            for month, covered in sorted(months.items()):
                if self._tail(month, covered) <= REPLAY_MAX:
                    self._replay(month, covered)
                else:  # read again from the store, on the thread, not replayed here
                    self._forget(month)
            store_months = self._store.history.months()
            folder = self._store.history.folder
            stale = []
            self._missing = set()
            for month in sorted(store_months):
                if month not in self._offsets or month in unfinished:
                    self._missing.add(month)
                    stale.append(month)
                elif self._recorded.get(month) != _signature(folder, month):
                    stale.append(month)
            self._pending = set(stale)
            self._recorded = {}
            for month in [m for m in self._offsets if m not in store_months]:
                log.warning("history index: %s is not in the store any more; dropped", month)
                self._drop_month(month)
                self._path(month).unlink(missing_ok=True)
            self.state = "open"
            self.progress = (0, len(stale))
        if self._missing:
            log.info("history index: %d month(s) to index", len(self._missing))
        return stale

    def _tail(self, month: str, covered: int) -> int:
        """Bytes of a month's copy written after the snapshot."""
        try:
            return self._path(month).stat().st_size - covered
        except FileNotFoundError:
            return 0

    def _forget(self, month: str) -> None:
        """Drop a month and delete its copy: it is indexed again from the store."""
        log.info("history index: %s to be indexed again from the store", month)
        self._drop_month(month)
        self._recorded.pop(month, None)
        self._path(month).unlink(missing_ok=True)

    def _load_snapshot(self) -> tuple[dict[str, int], set[str]]:
        """Read history.idx; returns the bytes of each month's copy it covers, and the
        months whose reading from the store had not finished when it was written."""
        path = self.folder / SNAPSHOT
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}, set()
        try:
            if not raw.startswith(MAGIC):
                raise ValueError("not an index snapshot")
            at = len(MAGIC)
            size = int.from_bytes(raw[at : at + 8], "little")
            header = json.loads(raw[at + 8 : at + 8 + size])
            payload = memoryview(raw)[at + 8 + size :]
            if header.get("byteorder") != sys.byteorder or header.get("v") != 1:
                raise ValueError("written by another kind of machine or version")
            if zlib.crc32(payload) != header["crc"]:
                raise ValueError("checksum does not match")
            pos = 0
            keys: dict[str, array[int]] = {}
            for key, n in header["keys"]:
                a = array("q")
                a.frombytes(payload[pos : pos + 8 * n])
                pos += 8 * n
                keys[key] = a
            offsets: dict[str, array[int]] = {}
            for month, n in header["offsets"]:
                a = array("q")
                a.frombytes(payload[pos : pos + 8 * n])
                pos += 8 * n
                offsets[month] = a
            if pos != len(payload):
                raise ValueError("lengths do not add up")
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("history index: %s is unusable (%s); building it again", path, exc)
            return {}, set()
        self._keys = keys
        self._words = sorted(k[2:] for k in keys if k.startswith("w:"))
        self._odd = {k for k in keys if k.startswith("n:") and not _plain_number(k[2:])}
        self._offsets = offsets
        covered: dict[str, int] = {}
        unfinished: set[str] = set()
        for month, info in header["months"].items():
            self._recorded[month] = info.get("store")
            if info.get("unfinished"):
                unfinished.add(month)
            self._dead[month] = int(info.get("dead", 0))
            try:
                st = self._path(month).stat()
            except FileNotFoundError:
                st = None
            if st is None or st.st_ino != info.get("ino") or st.st_size < info["size"]:
                # the copy was rewritten, replaced or cut after the snapshot: read it again
                log.info("history index: %s copy changed since the snapshot; reading it", month)
                self._drop_month(month)
                self._recorded.pop(month, None)  # and compare it with the store
                covered[month] = 0
                continue
            self._sizes[month] = info["size"]
            covered[month] = info["size"]
        return covered, unfinished

    def _replay(self, month: str, start: int) -> None:
        """Apply the lines of a month's copy from byte `start` (written after the snapshot)."""
        path = self._path(month)
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read()
        except FileNotFoundError:
            return
        pos, good = 0, 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                break
            try:
                entry = json.loads(data[pos:end])
                num, rec = int(entry["n"]), entry["r"]
                if not isinstance(rec, dict) or num < 0:
                    raise ValueError("not a record line")
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("history index: %s damaged at byte %d (%s)", path, start + pos, exc)
                self._recorded.pop(month, None)  # compare the month with the store
                break
            self._set(month, num, rec, start + pos)
            pos = end + 1
            good = pos
        if good < len(data):
            with open(path, "r+b") as fh:
                fh.truncate(start + good)
        self._sizes[month] = start + good
        self._offsets.setdefault(month, array("q"))

    # -- catching up with the store ----------------------------------------------------------

    def catch_up(self, months: Iterable[str], stop: threading.Event | None = None) -> None:
        """Read store months and index what their copies lack or have wrong.

        A month is read once from its files and let go (`History.read_month`: a rebuild never
        holds more than one month). A record written while its month is being compared was
        indexed by its writer (`put`), so its copy is newer than what was read: such records
        are noted as they are put and left alone here."""
        done = 0
        for month in months:
            if stop is not None and stop.is_set():
                return
            with self._lock:
                self._touched = (month, set())
            try:
                records = self._store.history.read_month(month)
                seen: set[int] = set()
                for i in range(0, len(records), CATCH_UP_CHUNK):
                    if stop is not None and stop.is_set():
                        return  # the month stays to compare at the next start
                    with self._lock:
                        if self.state == "closed":
                            return
                        touched = self._touched[1]
                        for num, rec in records[i : i + CATCH_UP_CHUNK]:
                            seen.add(num)
                            if num in touched:
                                continue
                            line = _line(num, rec)
                            if self._line_at(month, self._offset(month, num)) != line:
                                self._append(month, num, line)
                del records
                with self._lock:
                    touched = self._touched[1]
                    for num, off in enumerate(self._offsets.get(month, ())):
                        if off >= 0 and num not in seen and num not in touched:
                            self._set(month, num, None, -1)  # not in the store (any more)
                    self._offsets.setdefault(month, array("q"))
                    self._pending.discard(month)
                    self._missing.discard(month)
                    self._maybe_compact(month)
                    done += 1
                    self.progress = (done, self.progress[1])
            finally:
                with self._lock:
                    self._touched = ("", set())
        log.info("history index: up to date (%d month(s) read)", done)
        self.snapshot()
        legacy = self._store.data_dir / "timeline.json"
        if self.ready and legacy.exists():  # the number index this one replaces
            for p in (legacy, legacy.with_name("timeline.json.journal")):
                p.unlink(missing_ok=True)
            log.info("history index: removed the old number index timeline.json")

    # -- snapshots ---------------------------------------------------------------------------

    def _capture(self) -> tuple[dict[str, Any], list[bytes]]:
        folder = self._store.history.folder
        chunks: list[bytes] = []
        keys = []
        for key, a in self._keys.items():
            keys.append([key, len(a)])
            chunks.append(a.tobytes())
        offsets = []
        for month, a in self._offsets.items():
            offsets.append([month, len(a)])
            chunks.append(a.tobytes())
        months = {}
        for month in self._offsets:
            try:
                ino = self._path(month).stat().st_ino
            except FileNotFoundError:
                ino = -1
            # in step with the store unless it still waits to be compared with it
            store = None if month in self._pending else _signature(folder, month)
            months[month] = {
                "size": self._sizes.get(month, 0),
                "ino": ino,
                "dead": self._dead.get(month, 0),
                "store": store,
                # still being read from the store (a stop cut the rebuild): read it whole
                "unfinished": month in self._missing,
            }
        crc = 0
        for c in chunks:
            crc = zlib.crc32(c, crc)
        header = {
            "v": 1,
            "byteorder": sys.byteorder,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "months": months,
            "keys": keys,
            "offsets": offsets,
            "crc": crc,
        }
        self._changes = 0
        return header, chunks

    def snapshot(self, background: bool = False) -> None:
        """Write history.idx (atomically). Taken under the writers' lock, so it matches the
        store; written outside it (on a thread when `background`)."""
        if not self._snap_lock.acquire(blocking=not background):
            return
        try:
            with self._writer_lock, self._lock:
                if self.state == "closed":
                    self._snap_lock.release()
                    return
                header, chunks = self._capture()
        except BaseException:
            self._snap_lock.release()
            raise

        def write() -> None:
            try:
                head = json.dumps(header, separators=(",", ":")).encode()
                body = [MAGIC, len(head).to_bytes(8, "little"), head, *chunks]
                atomic_write(self.folder / SNAPSHOT, iter(body))
            except OSError as exc:
                log.warning("history index: snapshot not written: %s", exc)
            finally:
                self._snap_lock.release()

        if background:
            threading.Thread(target=write, name="history-index-snapshot", daemon=True).start()
        else:
            write()

    def close(self) -> None:
        """Write the final snapshot; further puts are ignored."""
        if self.state == "closed":
            return
        self.snapshot()
        with self._lock:
            self.state = "closed"

    def memory(self) -> dict[str, int]:
        """Rough figures for the footprint page and the benchmark."""
        with self._lock:
            return {
                "keys": len(self._keys),
                "ids": sum(len(a) for a in self._keys.values()),
                "records": sum(sum(1 for o in a if o >= 0) for a in self._offsets.values()),
            }


__all__ = [
    "HistoryIndex",
    "decode",
    "encode",
    "fold",
    "hour_key",
    "month_of",
    "record_keys",
    "words_of",
]
