"""Durable TinyDB files: a snapshot plus an append-only journal, cached in memory.

Every change is one JSON line appended to `<name>.journal` and fsync'd before the call
returns, so a power cut loses at most a torn last line (ignored on open). When the journal
outgrows the snapshot, the journal so far becomes `<name>.journal.old`, a new one takes the
writes, and a thread of its own writes the snapshot (temp file, fsync, rename, fsync folder)
and then deletes the old segment: no reader or writer waits for the rewrite. Reads come from
the in-memory cache and never parse JSON. An insert writes one record's bytes, not the whole
file: kind to an SD card.
"""

from __future__ import annotations

import contextlib
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
# The snapshot is rewritten once the journal outgrows COMPACT_RATIO times it: less writes less
# (an SD card wears by the bytes written), more makes opening replay longer journals.
COMPACT_RATIO = 1.0
SNAPSHOT_BATCH = 100  # records encoded in one go while a snapshot is written
WRITE_CHUNK = 1 << 18  # bytes of a snapshot handed to the kernel at a time
# A file being written is flushed every SYNC_EVERY bytes: the journal's fsync, waiting behind
# the disk's queue (and, on ext4, behind a file's blocks allocated in the same transaction),
# then never waits for more than this, and dirty pages never pile up on a 512 MB Pi.
SYNC_EVERY = 1 << 20
RETRY_SECONDS = 60.0  # after a snapshot that could not be written, before the next try
CLOSE_WAIT_SECONDS = 30.0  # close() waits this long for a snapshot being written


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """Where `path` is written before it is renamed into place (deleted at start-up)."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{threading.get_ident()}")


def write_temp(path: Path, chunks: bytes | Iterator[bytes], mode: int = 0o640) -> tuple[Path, int]:
    """Write `chunks` to a temp file beside `path` and fsync it; returns it and its size.
    `commit` puts it in place."""
    tmp = temp_name(path)
    written = synced = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        for chunk in [chunks] if isinstance(chunks, bytes | bytearray) else chunks:
            view = memoryview(chunk)
            while view:
                n = os.write(fd, view)
                view = view[n:]
                written += n
            if written - synced >= SYNC_EVERY:
                os.fdatasync(fd)
                synced = written
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp, written


def commit(tmp: Path, path: Path) -> None:
    """Rename a written temp file over `path`, durably (the folder is fsync'd)."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, chunks: bytes | Iterator[bytes], mode: int = 0o640) -> int:
    """Write a file so that it is either wholly there or not at all. Returns bytes written."""
    tmp, written = write_temp(path, chunks, mode)
    commit(tmp, path)
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


def journal_segments(path: Path) -> tuple[Path, Path]:
    """A database's journal segments, oldest first: `<name>.journal.old` (there while a
    snapshot is being written, or after a cut or a failure stopped one) and `<name>.journal`,
    the one being written. Both are read at opening, in this order."""
    journal = path.with_name(path.name + ".journal")
    return journal.with_name(journal.name + ".old"), journal


def move_aside(path: Path, why: str) -> list[Path]:
    """Rename a database's snapshot and journal segments out of the way (kept for
    recovery), with a log line each; the folder is fsync'd so the renames survive a power
    cut."""
    moved = []
    for p in (path, *journal_segments(path)):
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


class _SnapshotJob:
    """A snapshot being written on a thread of its own."""

    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        self.tables = tables  # the live tables themselves: read record by record, not copied
        self.superseded = False  # a whole-database write wrote a newer snapshot meanwhile
        self.thread: threading.Thread | None = None


# Snapshots being written, by file. A database opened again while its last snapshot is
# still being written (a history month let go and asked for again) waits for it first, so
# two never change the same files at once. Entries go when their thread ends.
_writing: dict[Path, threading.Thread] = {}
_writing_lock = threading.Lock()


def wait_for_snapshot(path: Path, timeout: float | None = None) -> bool:
    """Wait for the snapshot of the database at `path` being written, if any; False if it
    is still being written after `timeout` seconds."""
    with _writing_lock:
        thread = _writing.get(Path(path))
    if thread is None or thread is threading.current_thread():
        return True
    thread.join(timeout)
    return not thread.is_alive()


def encode_tables(tables: Mapping[str, Mapping[str, Any]]) -> Iterator[bytes]:
    """A snapshot's JSON (what json.dumps gives), in chunks of about WRITE_CHUNK bytes.

    Records are encoded SNAPSHOT_BATCH at a time, and after each batch any other thread
    waiting for the interpreter goes first: one json.dumps of a whole month would hold the
    interpreter, and every other thread with it, for its whole length (0.6 s for 100,000
    records on a 2-core x86), and otherwise a waiting thread would wait for the interpreter's
    switch interval (5 ms) each time. A month is never in memory as one string. Each table's
    keys are listed when the table is reached (one step, no writer runs during it) and each
    record is read when its batch is: one removed since is left out, one changed since is
    written as it is now. The journal segments replayed over the snapshot end the same
    either way (see JournalStorage)."""
    enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    parts: list[str] = ["{"]
    size = 0
    for n, (name, table) in enumerate(tables.items()):
        parts.append(("," if n else "") + enc.encode(name) + ":{")
        keys = list(table)
        sep = ""
        for i in range(0, len(keys), SNAPSHOT_BATCH):
            batch = {}
            for key in keys[i : i + SNAPSHOT_BATCH]:
                doc = table.get(key)
                if doc is not None:
                    batch[key] = doc
            if not batch:
                continue
            text = enc.encode(batch)[1:-1]
            parts.append(sep + text)
            sep = ","
            size += len(text)
            time.sleep(0)  # a thread waiting for the interpreter goes first
            if size >= WRITE_CHUNK:
                yield "".join(parts).encode()
                parts, size = [], 0
        parts.append("}")
    parts.append("}")
    yield "".join(parts).encode()


class JournalStorage(Storage):
    """TinyDB storage: snapshot `<path>` + journal `<path>.journal`, write-through cache.

    Writers hold their database's lock around each change (Collection does); the snapshot
    thread never takes it. Rewriting the snapshot (`_start_snapshot`), under the writers'
    lock: the journal gets a second name, `<path>.journal.old`, and a new empty journal is
    renamed into place (the folder fsync'd after each step); the thread is started with the
    tables. On the thread: the tables are encoded batch by batch and written to a temp file,
    fsync'd, renamed over the snapshot (folder fsync'd), and the old segment deleted (folder
    fsync'd). Opening reads the snapshot, then the old segment, then the journal.

    Why a cut anywhere leaves every acknowledged write once: every change after the journal
    was renamed is in the new journal, and every change before it in the old segment; the
    snapshot holds every change before the rename and, per record, maybe some after it.
    Replaying a change is setting or deleting a record, so replaying the segments over any
    such snapshot gives the same data: each record ends as its last change in the segments
    says, or as the snapshot has it if the segments never changed it. Until the new
    snapshot is renamed into place the old one is read with both segments; the old segment
    is deleted only after that rename is on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.old_path, self.journal_path = journal_segments(self.path)
        self.bytes_written = 0
        self._data: dict[str, dict[str, Any]] = {}
        self._snapshot_size = 0
        self._journal_size = 0  # bytes in the journal
        self._old_size = 0  # bytes in the old segment, while there is one
        self._journal_fd = -1
        self._job: _SnapshotJob | None = None
        self._retry_at = 0.0
        self._state = threading.Lock()  # the fields above shared with the snapshot thread
        self._files = threading.Lock()  # renaming a snapshot into place, deleting segments
        wait_for_snapshot(self.path)
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
        """Replay the old segment, then the journal. A torn last line of either (a write
        never acknowledged) is cut off. A damaged line in the middle stops the replay: what
        follows it, in that segment and the next, is kept aside before anything is cut."""
        old, journal = self.old_path, self.journal_path
        if old.exists() and journal.exists() and old.samefile(journal):
            # A cut between giving the journal its second name and replacing it.
            old.unlink()
            fsync_dir(self.path.parent)
        segments: list[tuple[Path, bytes]] = []
        for seg in (old, journal):
            with contextlib.suppress(FileNotFoundError):
                segments.append((seg, seg.read_bytes()))
        sizes = {old: 0, journal: 0}
        for i, (seg, raw) in enumerate(segments):
            good, damaged = self._replay_segment(seg, raw)
            sizes[seg] = good
            if damaged:
                later = segments[i + 1 :]
                # On disk (fsync'd, folder too) before any segment is cut back below.
                atomic_write(
                    aside_name(self.journal_path, "damaged"),
                    raw[good:] + b"".join(r for _, r in later),
                )
                for seg_after, _ in reversed(later):
                    self._cut(seg_after, 0)
                self._cut(seg, good)
                break
            if good < len(raw):
                log.warning("%s: dropped %d bytes of an unfinished write", seg, len(raw) - good)
                self._cut(seg, good)
        self._old_size, self._journal_size = sizes[old], sizes[journal]

    def _replay_segment(self, seg: Path, raw: bytes) -> tuple[int, bool]:
        """Apply a segment's lines; returns how many bytes were good and whether a damaged
        line (not the last) stopped it."""
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
                    seg,
                    pos,
                    exc,
                )
                return good, True
            pos = end + 1
            good = pos
        return good, False

    @staticmethod
    def _cut(seg: Path, size: int) -> None:
        with open(seg, "r+b") as fh:
            fh.truncate(size)
            os.fsync(fh.fileno())

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
        """Close the journal; a snapshot being written gets up to CLOSE_WAIT_SECONDS to
        finish (one cut short is like a power cut: the next opening reads the segments)."""
        if self._journal_fd >= 0:
            os.close(self._journal_fd)
            self._journal_fd = -1
        if not self.wait_snapshot(CLOSE_WAIT_SECONDS):
            log.warning(
                "%s: the snapshot is still being written after %.0f s; it goes on (a stop "
                "before it ends is like a power cut: the next start reads the journal segments)",
                self.path,
                CLOSE_WAIT_SECONDS,
            )

    # -- journal -----------------------------------------------------------------------------

    def append(self, table: str, changed: dict[str, Any], deleted: list[str]) -> None:
        """Journal one change (the caller holds the writers' lock); fsync'd on return."""
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
        with self._state:
            self.bytes_written += len(line)
            due = (
                self._job is None
                and self._journal_size + self._old_size
                > max(COMPACT_MIN_BYTES, COMPACT_RATIO * self._snapshot_size)
                and time.monotonic() >= self._retry_at
            )
        if due:
            self._start_snapshot()

    def _start_snapshot(self) -> None:
        """Under the writers' lock: rotate the journal (unless an old segment is still there:
        a snapshot that failed or was cut short; the new one will cover it) and start the
        thread that writes the snapshot. Never raises: the change that got here is on disk."""
        try:
            if not self.old_path.exists():
                self._rotate()
            job = _SnapshotJob(dict(self._data))
            thread = threading.Thread(
                target=self._write_snapshot,
                args=(job,),
                name=f"snapshot {self.path.name}",
                daemon=True,  # a stop that does not wait is a power cut: nothing is lost
            )
            job.thread = thread
            with self._state:
                self._job = job
            with _writing_lock:
                _writing[self.path] = thread
            thread.start()
        except (OSError, RuntimeError) as exc:
            with self._state:
                self._job = None
                self._retry_at = time.monotonic() + RETRY_SECONDS
            with _writing_lock:
                _writing.pop(self.path, None)
            log.error(
                "%s: cannot start rewriting the snapshot (%s); will try again", self.path, exc
            )

    def _rotate(self) -> None:
        """The journal becomes the old segment and a new empty journal takes its place.
        The old segment is named on disk before the journal is replaced, and the journal
        always exists (a hard link; a file system without them gets two renames)."""
        folder = self.path.parent
        tmp = temp_name(self.journal_path)
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            try:
                os.link(self.journal_path, self.old_path)
                linked = True
            except OSError:
                os.replace(self.journal_path, self.old_path)
                linked = False
            fsync_dir(folder)
            try:
                os.replace(tmp, self.journal_path)
                fsync_dir(folder)
            except OSError:
                if linked:
                    self.old_path.unlink()
                else:
                    os.replace(self.old_path, self.journal_path)
                fsync_dir(folder)
                raise
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(self._journal_fd)
        self._journal_fd = fd
        with self._state:
            self._old_size = self._journal_size
        self._journal_size = 0

    def _write_snapshot(self, job: _SnapshotJob) -> None:
        """The snapshot thread: write, rename into place, delete the old segment."""
        try:
            tmp, written = write_temp(self.path, encode_tables(job.tables))
            with self._files:
                if job.superseded:
                    tmp.unlink(missing_ok=True)
                    return
                commit(tmp, self.path)
                self._retire_old()
                with self._state:
                    self._snapshot_size = written
                    self._old_size = 0
                    self.bytes_written += written
        except Exception as exc:  # an I/O error, a full disk: the segments still hold it all
            with self._state:
                self._retry_at = time.monotonic() + RETRY_SECONDS
            log.error(
                "%s: the snapshot could not be written (%s); the journal segments keep every "
                "change, trying again in %.0f s",
                self.path,
                exc,
                RETRY_SECONDS,
            )
        finally:
            with self._state:
                if self._job is job:
                    self._job = None
            with _writing_lock:
                if _writing.get(self.path) is job.thread:
                    del _writing[self.path]

    def _retire_old(self) -> None:
        """Delete the old segment once a snapshot holding it is on disk; fsync'd, so it can
        never come back after the journal has been emptied."""
        try:
            self.old_path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.path.parent)

    def writing_snapshot(self) -> bool:
        """True while a snapshot is being written on its thread."""
        with self._state:
            return self._job is not None

    def wait_snapshot(self, timeout: float | None = None) -> bool:
        """Wait for the snapshot being written, if any; False if still at it."""
        with self._state:
            job = self._job
        thread = job.thread if job else None
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def compact(self) -> None:
        """Write the snapshot now, on this thread, and empty the journal segments (a
        whole-database write, which no journal line describes). A snapshot being written on
        the thread meanwhile is dropped: this one is newer."""
        with self._files:
            with self._state:
                if self._job is not None:
                    self._job.superseded = True
            written = atomic_write(self.path, encode_tables(self._data))
            # The snapshot now holds every journalled change; replaying them again is
            # harmless (set and delete are idempotent), so a cut before the segments are
            # emptied loses nothing. The old segment goes first, for good, then the journal.
            self._retire_old()
            os.ftruncate(self._journal_fd, 0)
            os.fsync(self._journal_fd)
            self._journal_size = 0
            with self._state:
                self._snapshot_size = written
                self._old_size = 0
                self.bytes_written += written


class _TrackedTable(MutableMapping[int, Any]):
    """The int-keyed view TinyDB's updaters expect, recording what they touch.

    Updaters change documents in place: they get a copy, put in the table once the updater
    is done, so a stored document is never changed (a snapshot being written on another
    thread reads the tables meanwhile)."""

    __slots__ = ("copies", "deleted", "raw", "touched")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.touched: set[str] = set()
        self.deleted: set[str] = set()
        self.copies: dict[str, Any] = {}

    def __getitem__(self, key: int) -> Any:
        k = str(key)
        doc = self.copies.get(k)
        if doc is None:
            doc = self.copies[k] = _copy(self.raw[k])
            self.touched.add(k)
        return doc

    def __setitem__(self, key: int, value: Any) -> None:
        k = str(key)
        self.raw[k] = value
        self.copies.pop(k, None)
        self.touched.add(k)
        self.deleted.discard(k)

    def __delitem__(self, key: int) -> None:
        k = str(key)
        del self.raw[k]
        self.copies.pop(k, None)
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
        try:
            updater(view)  # type: ignore[arg-type]
        finally:
            raw.update(view.copies)  # what the updater changed, even if it then failed
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
            return self._table.insert(_copy(dict(doc)))

    def get(self, doc_id: int) -> Document | None:
        with self._lock:
            doc = self._table._read_table().get(str(doc_id))
            return None if doc is None else self._doc(doc_id, doc)

    def update(self, doc_id: int, fields: Mapping[str, Any]) -> bool:
        with self._lock:
            if str(doc_id) not in self._table._read_table():
                return False
            self._table.update(_copy(dict(fields)), doc_ids=[doc_id])
            return True

    def put(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        """Store `doc` under `doc_id`, replacing whatever was there."""
        with self._lock:
            self._table.upsert(Document(_copy(dict(doc)), doc_id))

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

    def writing_snapshot(self) -> bool:
        """True while the snapshot is being rewritten on a thread of its own."""
        return self.storage.writing_snapshot()

    def close(self) -> None:
        with self.lock:
            self.storage.close()
