"""Who may use the web page and the API: the owner password, sessions, API tokens, login limits.

The password is stored only as a salted scrypt hash; API tokens only as SHA-256 digests (they
are long random strings). The session signing secret lives 0600 in the data dir. Never log or
return a password or a token except the one time a new token is shown to the owner.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import FieldProblem, FrontdeskError, ValidationError
from ..store import Store
from ..store.durable import Collection, atomic_write

log = logging.getLogger(__name__)

DB = "auth"
OWNER_KEY = "owner"
TOKENS_TABLE = "api_tokens"
SECRET_FILE = "web-secret"  # noqa: S105 - a file name
TOKEN_PREFIX = "fd_"  # noqa: S105 - marks Frontdesk tokens
MIN_PASSWORD = 8
MAX_PASSWORD = 256
MAX_TOKEN_NAME = 60
# scrypt with N=2^15, r=8, p=1: 32 MiB and a fraction of a second on a Raspberry Pi 3.
HASH_METHOD = "scrypt:32768:8:1"
TOKEN_TOUCH_INTERVAL = 300.0  # seconds between `last_used` writes for one token
SESSIONS_TABLE = "sessions"
MAX_SESSIONS = 20  # logged-in browsers kept; the oldest login ends when a 21st begins


def password_problems(password: str, confirm: str | None = None) -> list[FieldProblem]:
    """Why a new password is not acceptable; empty when it is. Never echoes the password."""
    problems: list[FieldProblem] = []
    shown = f"{len(password)} characters"
    if len(password) < MIN_PASSWORD:
        problems.append(FieldProblem("password", shown, f"at least {MIN_PASSWORD} characters"))
    elif len(password) > MAX_PASSWORD:
        problems.append(FieldProblem("password", shown, f"at most {MAX_PASSWORD} characters"))
    elif password.strip() == "":
        problems.append(FieldProblem("password", shown, "more than spaces"))
    if confirm is not None and confirm != password:
        problems.append(FieldProblem("confirm", "a different password", "the same password twice"))
    return problems


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as listed in the UI: never the secret itself."""

    id: int
    name: str
    hint: str  # the first characters, so the owner can tell tokens apart
    created_at: str
    last_used_at: str


class LoginLimiter:
    """At most `max_failures` wrong passwords per address within `window` seconds.

    In memory only (a restart clears it); bounded to `max_addresses` entries.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 4096,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, address: str, now: float) -> deque[float]:
        q = self._failures.get(address, deque())
        while q and now - q[0] >= self.window:
            q.popleft()
        return q

    def retry_after(self, address: str) -> int:
        """Seconds until `address` may try again; 0 when it may try now."""
        with self._lock:
            now = self._clock()
            q = self._prune(address, now)
            if len(q) < self.max_failures:
                return 0
            return max(1, int(q[0] + self.window - now + 0.999))

    def failed(self, address: str) -> None:
        with self._lock:
            now = self._clock()
            if address not in self._failures and len(self._failures) >= self._max_addresses:
                stale = [
                    a for a, q in self._failures.items() if not q or now - q[-1] >= self.window
                ]
                for a in stale:
                    del self._failures[a]
                if len(self._failures) >= self._max_addresses:
                    self._failures.pop(next(iter(self._failures)))
            q = self._prune(address, now)
            q.append(now)
            self._failures[address] = q

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(
        self,
        store: Store,
        data_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._data_dir = Path(data_dir) if data_dir is not None else store.data_dir
        self._lock = threading.Lock()
        self._clock = clock
        self._touched: dict[int, float] = {}
        self.hash_method = HASH_METHOD
        self.limiter = LoginLimiter(clock=clock)

    # -- owner password ----------------------------------------------------------------------

    def _owner(self) -> dict[str, str]:
        doc = self._store.get_document(DB, OWNER_KEY)
        return {k: str(v) for k, v in doc.items()} if doc else {}

    @property
    def has_password(self) -> bool:
        return bool(self._owner().get("hash"))

    def set_password(self, password: str) -> None:
        """Store a new owner password; every existing login session ends."""
        problems = password_problems(password)
        if problems:
            raise ValidationError(problems, "new password")
        from werkzeug.security import generate_password_hash  # with the web page, not at start

        body = {
            "hash": generate_password_hash(password, method=self.hash_method),
            "epoch": secrets.token_urlsafe(16),
            "changed_at": _now_iso(),
        }
        with self._lock:
            self._store.put_document(DB, OWNER_KEY, body)
            self._end_all_sessions()
        log.info("owner password changed; existing sessions ended")

    def check_password(self, password: str) -> bool:
        stored = self._owner().get("hash", "")
        if not stored:
            return False
        from werkzeug.security import check_password_hash

        try:
            return check_password_hash(stored, password)
        except ValueError:  # an unreadable hash never lets anyone in
            log.error("stored owner password hash is not readable; use `frontdesk passwd`")
            return False

    @property
    def session_epoch(self) -> str:
        """Changes with every new password; a session made under another epoch is void."""
        return self._owner().get("epoch", "")

    # -- login sessions ----------------------------------------------------------------------
    # A login cookie carries the password epoch and a session id; the id must be listed here
    # (as a SHA-256 digest). Logging out removes it, so a copied cookie is void afterwards;
    # a new password ends them all. Written at login and logout only.

    def _sessions(self) -> Collection:
        return self._store.table(DB, SESSIONS_TABLE)

    def start_session(self) -> str:
        """A new login session's id (for the cookie); only its digest is kept."""
        sid = secrets.token_urlsafe(24)
        with self._lock:
            table = self._sessions()
            table.insert({"digest": _digest(sid), "started_at": _now_iso()})
            docs = table.all()
            for old in sorted(docs, key=lambda d: d.doc_id)[: max(0, len(docs) - MAX_SESSIONS)]:
                table.remove(old.doc_id)
        return sid

    def end_session(self, sid: object) -> None:
        """Log out: the session's cookie is void from now on, wherever a copy of it is."""
        if not isinstance(sid, str) or not sid:
            return
        digest = _digest(sid)
        with self._lock:
            table = self._sessions()
            for d in table.search(lambda doc: doc.get("digest") == digest):
                table.remove(d.doc_id)

    def _end_all_sessions(self) -> None:
        table = self._sessions()
        for d in table.all():
            table.remove(d.doc_id)

    def session_valid(self, epoch: object, sid: object = None) -> bool:
        current = self.session_epoch
        if not (current and isinstance(epoch, str) and hmac.compare_digest(epoch, current)):
            return False
        if not isinstance(sid, str) or not sid:
            return False
        digest = _digest(sid)
        found = False
        for d in self._sessions().all():
            if hmac.compare_digest(str(d.get("digest", "")), digest):
                found = True
        return found

    # -- session secret ----------------------------------------------------------------------

    def secret_key(self) -> bytes:
        """The key that signs login cookies: made once, kept 0600 in the data dir."""
        path = self._data_dir / SECRET_FILE
        with self._lock:
            try:
                data = path.read_bytes().strip()
                if len(data) >= 32:
                    return data
                log.warning("%s is too short; making a new one (everyone logs in again)", path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise FrontdeskError(f"cannot read {path}: {exc.strerror}") from None
            data = secrets.token_hex(32).encode()
            atomic_write(path, data + b"\n", mode=0o600)
            path.chmod(0o600)
            return data

    # -- API tokens --------------------------------------------------------------------------

    def _tokens(self) -> Collection:
        return self._store.table(DB, TOKENS_TABLE)

    def create_token(self, name: str) -> tuple[ApiToken, str]:
        """A new token: returns its listing and the secret, which is shown once and not kept."""
        name = name.strip()
        if not 1 <= len(name) <= MAX_TOKEN_NAME or any(ord(c) < 32 for c in name):
            raise ValidationError(
                [FieldProblem("name", name, f"1 to {MAX_TOKEN_NAME} characters")], "API token"
            )
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = _now_iso()
        doc = {
            "name": name,
            "digest": _digest(secret),
            "hint": secret[:7],
            "created_at": created,
            "last_used_at": "",
        }
        token_id = self._tokens().insert(doc)
        log.info("API token %d (%s) created", token_id, name)
        return ApiToken(token_id, name, doc["hint"], created, ""), secret

    def list_tokens(self) -> list[ApiToken]:
        return [
            ApiToken(
                d.doc_id,
                d.get("name", ""),
                d.get("hint", ""),
                d.get("created_at", ""),
                d.get("last_used_at", ""),
            )
            for d in self._tokens().all()
        ]

    def revoke_token(self, token_id: int) -> bool:
        removed = self._tokens().remove(token_id)
        if removed:
            log.info("API token %d revoked", token_id)
        return removed

    def verify_token(self, secret: str) -> ApiToken | None:
        """The token this secret belongs to, or None. Compares digests in constant time."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        digest = _digest(secret)
        found = None
        for d in self._tokens().all():
            if hmac.compare_digest(str(d.get("digest", "")), digest):
                found = d
        if found is None:
            return None
        now = self._clock()
        if now - self._touched.get(found.doc_id, -TOKEN_TOUCH_INTERVAL) >= TOKEN_TOUCH_INTERVAL:
            self._touched[found.doc_id] = now
            self._tokens().update(found.doc_id, {"last_used_at": _now_iso()})
        return ApiToken(
            found.doc_id,
            found.get("name", ""),
            found.get("hint", ""),
            found.get("created_at", ""),
            found.get("last_used_at", ""),
        )
