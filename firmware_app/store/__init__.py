"""The data store: one process writes it, a power cut at any moment leaves it readable.

Layout under data_dir: `settings.json`, `contacts.json`, `outbox.json` and other named
databases, `history/YYYY-MM.json` (one record per interaction, partitioned by month so a
write never touches old months), `media/YYYY/MM/<id>.<ext>`. Each database file has a journal
beside it (see durable.py). The daemon holds `frontdesk.lock` while it runs.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError, StoreFileError, StoreLockedError
from .durable import (
    Collection,
    Database,
    file_problem,
    is_permission_problem,
    move_aside,
    remove_leftover_temps,
)
from .media import MediaStore

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
SCAN_PAGE = 500  # records a scan takes from a month in memory at a time
RecordFilter = Callable[[Mapping[str, Any]], bool]


class History:
    """Interaction records by month. Ids look like `2026-11:42` and never change.

    Memory stays bounded however long the history: the current month (UTC), the one being
    written, stays in memory once opened; at most `old_months` older months are kept besides
    (least recently used first out), and an older month nobody used for `idle_seconds` is
    let go at the next access. Pages read old records through the history index, which has a
    copy of every month on disk (firmware_app/services/history_index.py), so an older month
    is opened here only to change one of its records or when the index is not there.
    """

    def __init__(
        self,
        folder: Path,
        old_months: int = 1,
        idle_seconds: float = 300.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._open: OrderedDict[str, Database] = OrderedDict()
        self._used: dict[str, float] = {}  # month -> monotonic time of its last use
        self._max_old = max(0, old_months)
        self._idle = idle_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()

    def current_month(self) -> str:
        return f"{self._clock().astimezone(UTC):%Y-%m}"

    def _db(self, month: str) -> Database:
        with self._lock:
            db = self._open.get(month)
            if db is None:
                db = self._open_month(month)
                self._open[month] = db
            self._open.move_to_end(month)
            self._used[month] = time.monotonic()
            self._trim(keep=month)
            return db

    def _trim(self, keep: str = "") -> None:
        """Close older months beyond `old_months` (least recently used first) and those idle
        for `idle_seconds`; the current month and `keep` (in use now) stay, and so does a
        month whose snapshot is being written until it is (closing would wait for it)."""
        current = self.current_month()
        now = time.monotonic()
        others = [m for m in self._open if m not in (current, keep)]  # least recent first
        room = self._max_old - (1 if keep and keep != current else 0)
        excess = len(others) - max(0, room)
        for month in others:
            if excess > 0 or now - self._used.get(month, now) > self._idle:
                excess -= 1
                if self._open[month].writing_snapshot():
                    continue
                self._open.pop(month).close()
                self._used.pop(month, None)

    def trim(self) -> None:
        """Let go of older months idle for `idle_seconds` (also done at every access)."""
        with self._lock:
            self._trim()

    def open_months(self) -> list[str]:
        """Months in memory now, least recently used first (diagnostics, tests)."""
        with self._lock:
            return list(self._open)

    def read_month(self, month: str) -> list[tuple[int, dict[str, Any]]]:
        """Every record of a month, oldest first, as (number, record) pairs, without keeping
        the month in memory: an open month is copied, any other is read from its files and
        let go (rebuilding the history index reads each month once this way)."""
        with self._lock:
            db = self._open.get(month)
            if db is not None:
                return sorted((d.doc_id, dict(d)) for d in db.table("records").all())
            if not self._exists(month):
                return []
            db = self._open_month(month)
            try:
                raw = db.storage.read().get("records", {})
                return sorted((int(k), v) for k, v in raw.items() if k.isdigit())
            finally:
                db.close()

    def _exists(self, month: str) -> bool:
        names = (".json", ".json.journal", ".json.journal.old")
        return any((self.folder / f"{month}{ext}").exists() for ext in names)

    def _open_month(self, month: str) -> Database:
        """A month's database. One that cannot be read (an I/O error on a failing SD card) is
        moved aside with a log line and the month starts empty: the other months, and new
        records, go on working. A permission problem is raised as it is (a chown fixes it)."""
        path = self.folder / f"{month}.json"
        try:
            return Database(path)
        except StoreFileError as exc:
            if is_permission_problem(exc):
                raise
            move_aside(path, str(exc))
            return Database(path)

    def _table(self, month: str) -> Collection:
        return self._db(month).table("records")

    @staticmethod
    def _split(record_id: str) -> tuple[str, int]:
        month, _, num = str(record_id).partition(":")
        if not _MONTH.match(month) or not num.isdigit():
            raise StoreError(f"{record_id!r} is not a history record id")
        return month, int(num)

    def months(self) -> list[str]:
        """Months that have records, newest first."""
        names = {p.name.split(".", 1)[0] for p in self.folder.glob("????-??.json*")}
        return sorted((m for m in names if _MONTH.match(m)), reverse=True)

    def add(self, record: Mapping[str, Any], when: datetime | None = None) -> str:
        """Store a record durably; returns its id. `when` (default now) picks the month."""
        month = f"{(when or self._clock()).astimezone(UTC):%Y-%m}"
        with self._lock:
            num = self._table(month).insert({k: v for k, v in record.items() if k != "id"})
        return f"{month}:{num}"

    def get(self, record_id: str) -> dict[str, Any] | None:
        month, num = self._split(record_id)
        if month not in self._open and not self._exists(month):
            return None
        with self._lock:
            doc = self._table(month).get(num)
        return None if doc is None else {**doc, "id": record_id}

    def update(self, record_id: str, fields: Mapping[str, Any]) -> bool:
        month, num = self._split(record_id)
        with self._lock:
            return self._table(month).update(num, {k: v for k, v in fields.items() if k != "id"})

    def newest(
        self, n: int = 50, where: RecordFilter | None = None, before: str | None = None
    ) -> list[dict[str, Any]]:
        """Up to n records newest first, across months; `before` pages on from a record id."""
        out: list[dict[str, Any]] = []
        start_month, start_num = self._split(before) if before else (None, None)
        for month in self.months():
            if start_month and month > start_month:
                continue
            limit = start_num if month == start_month else None
            with self._lock:
                docs = self._table(month).newest(n - len(out), where, before=limit)
            out.extend({**d, "id": f"{month}:{d.doc_id}"} for d in docs)
            if len(out) >= n:
                break
        return out

    def scan(self, before: str | None = None) -> Iterator[dict[str, Any]]:
        """Records newest first, across months, from `before` (a record id) on: for a scan
        that stops after some records. The current month and any month already in memory
        are read from memory a page at a time; any other month is read from its files as a
        whole and let go, so a scan never brings an older month into memory."""
        start_month, start_num = self._split(before) if before else (None, None)
        current = self.current_month()
        for month in self.months():
            if start_month and month > start_month:
                continue
            below = start_num if month == start_month else None
            with self._lock:
                cached = month == current or month in self._open
            if not cached:
                for num, doc in reversed(self.read_month(month)):
                    if below is None or num < below:
                        yield {**doc, "id": f"{month}:{num}"}
                continue
            while True:
                with self._lock:
                    docs = self._table(month).newest(SCAN_PAGE, before=below)
                for d in docs:
                    yield {**d, "id": f"{month}:{d.doc_id}"}
                if len(docs) < SCAN_PAGE:
                    break
                below = docs[-1].doc_id

    def close(self) -> None:
        with self._lock:
            for db in self._open.values():
                db.close()
            self._open.clear()


class Store:
    """Owns the data dir. Open it once per process; `close()` releases the lock."""

    def __init__(self, data_dir: Path | str, *, lock: bool = True) -> None:
        self.data_dir = Path(data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data dir {self.data_dir}: {exc.strerror}") from None
        self._lock_fd = -1
        if lock:
            self._take_lock()
        remove_leftover_temps(self.data_dir)
        self.check_files()
        self._dbs: dict[str, Database] = {}
        self._dbs_lock = threading.Lock()
        self.history = History(self.data_dir / "history")
        self.media = MediaStore(self.data_dir)

    def _take_lock(self) -> None:
        path = self.data_dir / "frontdesk.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise file_problem(path, exc, "open", self.data_dir) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise StoreLockedError(
                f"{self.data_dir} is in use by another Frontdesk process (pid {pid or 'unknown'})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def check_files(self) -> None:
        """Fail now, naming the file, if any store file or folder is not ours to read and
        write (a root-owned journal left by a command run with sudo): databases open lazily,
        and a page or a call should not be the first to find out. Opens, reads nothing."""
        folders = [self.data_dir, self.data_dir / "history", self.data_dir / "media"]
        for folder in folders:
            if folder.exists() and not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
                denied = PermissionError(13, "Permission denied")
                raise file_problem(folder, denied, "write in", self.data_dir)
        files = [*self.data_dir.glob("*.json*"), *self.data_dir.glob("history/*.json*")]
        for path in files:
            journal = path.name.endswith(".journal")
            if not (journal or path.name.endswith((".json", ".journal.old"))):
                continue  # moved-aside copies are not opened
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND if journal else os.O_RDONLY)
            except FileNotFoundError:
                continue
            except OSError as exc:
                doing = "write to" if journal else "read"
                raise file_problem(path, exc, doing, self.data_dir) from None
            os.close(fd)

    @staticmethod
    def is_locked(data_dir: Path | str) -> bool:
        """True while another process (the daemon) holds the data dir."""
        path = Path(data_dir) / "frontdesk.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def database(self, name: str) -> Database:
        """A named database file (`settings`, `contacts`, `outbox`, ...), opened once."""
        if not _NAME.match(name):
            raise StoreError(f"{name!r} is not a database name")
        with self._dbs_lock:
            if name not in self._dbs:
                self._dbs[name] = Database(self.data_dir / f"{name}.json")
            return self._dbs[name]

    def table(self, database: str, table: str) -> Collection:
        return self.database(database).table(table)

    def get_document(self, database: str, key: str) -> dict[str, Any] | None:
        """A single named document (settings, counters...) kept in a database's `docs` table."""
        docs = self.table(database, "docs").search(lambda d: d.get("_key") == key)
        if not docs:
            return None
        doc = dict(docs[0])
        doc.pop("_key", None)
        return doc

    def put_document(self, database: str, key: str, doc: Mapping[str, Any]) -> None:
        table = self.table(database, "docs")
        with self.database(database).lock:
            found = table.search(lambda d: d.get("_key") == key)
            body = {**doc, "_key": key}
            if found:
                table.put(found[0].doc_id, body)
            else:
                table.insert(body)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.data_dir.rglob("*") if p.is_file())

    def close(self) -> None:
        with self._dbs_lock:
            for db in self._dbs.values():
                db.close()
            self._dbs.clear()
        self.history.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Collection", "Database", "History", "MediaStore", "Store"]
