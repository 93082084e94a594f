"""Durable TinyDB files: a snapshot plus an append-only journal, cached in memory.

Every change is one JSON line appended to `<name>.journal` and fsync'd before the call
returns, so a power cut loses at most a torn last line (ignored on open). When the journal
outgrows the snapshot, the snapshot is rewritten atomically (temp file, fsync, rename, fsync
folder) and the journal emptied. Reads come from the in-memory cache and never parse JSON.
An insert writes one record's bytes, not the whole file: kind to an SD card.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

from ..errors import StoreError, StoreFileError

log = logging.getLogger(__name__)

TEMP_MARK = ".tmp-"
COMPACT_MIN_BYTES = 1 << 20  # never compact a journal smaller than this


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, chunks: bytes | Iterator[bytes], mode: int = 0o640) -> int:
    """Write a file so that it is either wholly there or not at all. Returns bytes written."""
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{threading.get_ident()}")
    written = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        for chunk in [chunks] if isinstance(chunks, bytes | bytearray) else chunks:
            view = memoryview(chunk)
            while view:
                n = os.write(fd, view)
                view = view[n:]
                written += n
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return written


def file_problem(
    path: Path, exc: OSError, doing: str = "open", data_dir: Path | None = None
) -> StoreFileError:
    """A clear error for a store file the process cannot use: who owns it, who we are, and
    what to do (a root-owned file after a command run with sudo; a failing SD card).
    `data_dir` is what to give back; by default the file's folder (or the one above
    `history/`)."""
    import errno

    if data_dir is None:
        data_dir = path.parent.parent if path.parent.name == "history" else path.parent

    if exc.errno in (errno.EACCES, errno.EPERM):
        me = _user_name(os.geteuid())
        try:
            st = path.stat()
            owner = f"owned by {_user_name(st.st_uid)}, mode {st.st_mode & 0o777:o}"
        except OSError:
            owner = "its folder is not accessible"
        return StoreFileError(
            f"cannot {doing} {path}: permission denied ({owner}; Frontdesk runs as {me}). "
            f"Give the data back to {me}: sudo chown -R {me}: {data_dir}",
            exc.errno,
        )
    return StoreFileError(
        f"cannot {doing} {path}: {exc.strerror or exc} (errno {exc.errno}); if this is a read "
        "error the SD card may be failing: copy the data dir elsewhere now",
        exc.errno,
    )


def is_permission_problem(exc: StoreFileError) -> bool:
    import errno

    return exc.errno in (errno.EACCES, errno.EPERM)


def aside_name(path: Path, label: str) -> Path:
    """`<name>.<label>-<time>`, with `-2`, `-3`... when that is taken: never overwrites an
    earlier copy, even two in the same second."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    dest = path.with_name(f"{path.name}.{label}-{stamp}")
    n = 1
    while dest.exists() or dest.is_symlink():
        n += 1
        dest = path.with_name(f"{path.name}.{label}-{stamp}-{n}")
    return dest


def move_aside(path: Path, why: str) -> list[Path]:
    """Rename a database's snapshot and journal out of the way (kept for recovery), with a
    log line each; the folder is fsync'd so the renames survive a power cut."""
    moved = []
    for p in (path, path.with_name(path.name + ".journal")):
        if p.exists() or p.is_symlink():
            dest = aside_name(p, "unreadable")
            os.replace(p, dest)
            moved.append(dest)
            log.error("%s is unreadable (%s); moved aside to %s, starting it empty", p, why, dest)
    fsync_dir(path.parent)
    return moved


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def remove_leftover_temps(root: Path) -> int:
    """Delete temp files a power cut left behind (never complete data: those were renamed)."""
    count = 0
    for p in root.rglob(f".*{TEMP_MARK}*"):
        try:
            p.unlink()
            count += 1
            log.info("removed unfinished temp file %s", p)
        except OSError as exc:  # pragma: no cover - permissions
            log.warning("cannot remove temp file %s: %s", p, exc)
    return count


class JournalStorage(Storage):
    """TinyDB storage: snapshot `<path>` + journal `<path>.journal`, write-through cache."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.bytes_written = 0
        self._data: dict[str, dict[str, Any]] = {}
        self._snapshot_size = 0
        self._journal_size = 0
        self._journal_fd = -1
        try:
            self._load()
            self._open_journal()
        except OSError as exc:
            problem = file_problem(Path(exc.filename or self.path), exc)
            log.error("%s", problem)
            raise problem from None

    # -- opening ---------------------------------------------------------------------------

    def _move_aside(self, why: str) -> None:
        move_aside(self.path, why)

    def _load(self) -> None:
        data: dict[str, dict[str, Any]] = {}
        try:
            raw = self.path.read_bytes()
            self._snapshot_size = len(raw)
            loaded = json.loads(raw) if raw.strip() else {}
            if not isinstance(loaded, dict) or not all(
                isinstance(v, dict) for v in loaded.values()
            ):
                raise ValueError("top level is not a table map")
            data = loaded
        except FileNotFoundError:
            pass
        except (ValueError, UnicodeDecodeError) as exc:
            self._move_aside(str(exc))
            self._data = {}
            return
        self._data = data
        self._replay()

    def _replay(self) -> None:
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        good = 0
        pos = 0
        while pos < len(raw):
            end = raw.find(b"\n", pos)
            if end < 0:
                break  # torn last line: the write was never acknowledged
            try:
                self._apply(json.loads(raw[pos:end]))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                if raw.find(b"\n", end + 1) < 0 and end + 1 >= len(raw):
                    break  # a damaged last line is a torn write too
                log.error(
                    "%s: damaged journal line at byte %d (%s); later changes kept aside",
                    self.journal_path,
                    pos,
                    exc,
                )
                # On disk (fsync'd, folder too) before the journal is cut back below.
                atomic_write(aside_name(self.journal_path, "damaged"), raw[pos:])
                break
            pos = end + 1
            good = pos
        if good < len(raw):
            log.warning(
                "%s: dropped %d bytes of an unfinished write", self.journal_path, len(raw) - good
            )
            with open(self.journal_path, "r+b") as fh:
                fh.truncate(good)
                os.fsync(fh.fileno())
        self._journal_size = good

    def _apply(self, entry: dict[str, Any]) -> None:
        if "snapshot" in entry:  # a whole-database write
            self._data = entry["snapshot"]
            return
        table = self._data.setdefault(entry["t"], {})
        for key, doc in entry.get("set", {}).items():
            table[key] = doc
        for key in entry.get("del", []):
            table.pop(key, None)

    def _open_journal(self) -> None:
        created = not self.journal_path.exists()
        self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        if created:
            fsync_dir(self.path.parent)

    # -- TinyDB storage interface ----------------------------------------------------------

    def read(self) -> dict[str, dict[str, Any]]:
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """A whole-database write (drop_tables and the like): snapshot at once."""
        self._data = data
        self.compact()

    def close(self) -> None:
        if self._journal_fd >= 0:
            os.close(self._journal_fd)
            self._journal_fd = -1

    # -- journal -----------------------------------------------------------------------------

    def append(self, table: str, changed: dict[str, Any], deleted: list[str]) -> None:
        entry: dict[str, Any] = {"t": table}
        if changed:
            entry["set"] = changed
        if deleted:
            entry["del"] = deleted
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        if self._journal_fd < 0:
            raise StoreError(f"{self.path} is closed")
        os.write(self._journal_fd, line)
        os.fsync(self._journal_fd)
        self._journal_size += len(line)
        self.bytes_written += len(line)
        if self._journal_size > max(COMPACT_MIN_BYTES, self._snapshot_size):
            self.compact()

    def compact(self) -> None:
        body = json.dumps(self._data, ensure_ascii=False, separators=(",", ":")).encode()
        self.bytes_written += atomic_write(self.path, body)
        self._snapshot_size = len(body)
        # The snapshot now holds every journalled change; replaying them again is harmless
        # (set and delete are idempotent), so a cut before this truncate loses nothing.
        os.ftruncate(self._journal_fd, 0)
        os.fsync(self._journal_fd)
        self._journal_size = 0


class _TrackedTable(MutableMapping[int, Any]):
    """The int-keyed view TinyDB's updaters expect, recording what they touch."""

    __slots__ = ("deleted", "raw", "touched")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.touched: set[str] = set()
        self.deleted: set[str] = set()

    def __getitem__(self, key: int) -> Any:
        k = str(key)
        doc = self.raw[k]
        self.touched.add(k)  # updaters change documents in place
        return doc

    def __setitem__(self, key: int, value: Any) -> None:
        k = str(key)
        self.raw[k] = value
        self.touched.add(k)
        self.deleted.discard(k)

    def __delitem__(self, key: int) -> None:
        k = str(key)
        del self.raw[k]
        self.deleted.add(k)
        self.touched.discard(k)

    def __contains__(self, key: object) -> bool:
        return str(key) in self.raw

    def __iter__(self) -> Iterator[int]:
        return (int(k) for k in list(self.raw))

    def __len__(self) -> int:
        return len(self.raw)

    def keys(self) -> Any:  # TinyDB calls list(table.keys())
        return [int(k) for k in self.raw]


class JournalTable(Table):
    """A TinyDB table whose changes cost O(changed documents), journalled."""

    def _update_table(self, updater: Callable[[dict[int, Mapping[str, Any]]], None]) -> None:
        storage: JournalStorage = self._storage  # type: ignore[assignment]
        raw = storage.read().setdefault(self.name, {})
        view = _TrackedTable(raw)
        updater(view)  # type: ignore[arg-type]
        changed = {k: raw[k] for k in view.touched if k in raw}
        if changed or view.deleted:
            storage.append(self.name, changed, sorted(view.deleted))
        self.clear_cache()


class _TinyDB(TinyDB):
    table_class = JournalTable


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class Collection:
    """One table of a Database, safe to share between threads. Returns copies."""

    def __init__(self, table: Table, lock: threading.RLock) -> None:
        self._table = table
        self._lock = lock

    @staticmethod
    def _doc(doc_id: int | str, doc: Mapping[str, Any]) -> Document:
        return Document(_copy(doc), int(doc_id))

    def insert(self, doc: Mapping[str, Any]) -> int:
        with self._lock:
            return self._table.insert(dict(doc))

    def get(self, doc_id: int) -> Document | None:
        with self._lock:
            doc = self._table._read_table().get(str(doc_id))
            return None if doc is None else self._doc(doc_id, doc)

    def update(self, doc_id: int, fields: Mapping[str, Any]) -> bool:
        with self._lock:
            if str(doc_id) not in self._table._read_table():
                return False
            self._table.update(dict(fields), doc_ids=[doc_id])
            return True

    def put(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        """Store `doc` under `doc_id`, replacing whatever was there."""
        with self._lock:
            self._table.upsert(Document(dict(doc), doc_id))

    def remove(self, doc_id: int) -> bool:
        with self._lock:
            if str(doc_id) not in self._table._read_table():
                return False
            self._table.remove(doc_ids=[doc_id])
            return True

    def search(self, cond: Callable[[Mapping[str, Any]], bool]) -> list[Document]:
        with self._lock:
            return [self._doc(k, d) for k, d in self._table._read_table().items() if cond(d)]

    def all(self) -> list[Document]:
        with self._lock:
            return [self._doc(k, d) for k, d in self._table._read_table().items()]

    def newest(
        self,
        n: int,
        where: Callable[[Mapping[str, Any]], bool] | None = None,
        before: int | None = None,
    ) -> list[Document]:
        """Up to n documents, newest first (by insertion), optionally below id `before`."""
        out: list[Document] = []
        with self._lock:
            raw = self._table._read_table()
            for k in reversed(raw):
                if before is not None and int(k) >= before:
                    continue
                doc = raw[k]
                if where is None or where(doc):
                    out.append(self._doc(k, doc))
                    if len(out) >= n:
                        break
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._table._read_table())


class Database:
    """One durable file with named tables."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        self.storage = JournalStorage(self.path)
        self._db = _TinyDB(storage=lambda: self.storage)
        self._tables: dict[str, Collection] = {}

    def table(self, name: str) -> Collection:
        with self.lock:
            if name not in self._tables:
                self._tables[name] = Collection(self._db.table(name, cache_size=0), self.lock)
            return self._tables[name]

    def close(self) -> None:
        with self.lock:
            self.storage.close()
