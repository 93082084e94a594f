"""In-progress markers shared by calls and faxes (the store's `calls.json`, table
`in_progress`; written through `HistoryService.begin_call`/`note_call`/`end_call`).

A call or a fax notes itself there when it starts and forgets itself once its record is
written; whatever a run leaves behind is recorded at the next start. Call markers have no
`kind`; fax markers have `kind = "fax"` and are settled by the fax service, not by the call
runner. A call the fax service answers (a fax-only line) keeps its one marker: it becomes the
fax's marker in one journal line, so there is never a moment with no marker or with two.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Protocol

FAX = "fax"


class _Outbox(Protocol):
    def search(self, cond: Any) -> list[Any]: ...


class _Store(Protocol):
    def table(self, database: str, table: str) -> Any: ...


def is_fax(marker: dict[str, Any]) -> bool:
    """A marker the fax service owns (a fax receive or a send job in progress)."""
    return marker.get("kind") == FAX


def new_key() -> str:
    """The random key that ties a marker to the record written for it."""
    return secrets.token_hex(8)


def media_ref(when: datetime, ext: str) -> str:
    """A fresh media reference for a file to be written later: named in a marker first, so a
    file on disk is always named by a marker or a record (`store.media.path(ref)`)."""
    return f"media/{when:%Y}/{when:%m}/{secrets.token_urlsafe(12)}.{ext}"


def email_queued(store: _Store, record_id: str, kinds: tuple[str, ...]) -> bool:
    """Whether an email of one of `kinds` for the record is in the outbox already."""
    outbox: _Outbox = store.table("outbox", "messages")
    found = outbox.search(lambda d: d.get("record_id") == record_id and d.get("kind") in kinds)
    return bool(found)


def when(value: Any) -> datetime | None:
    """A marker's ISO time, or None when missing, unreadable or without a zone."""
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None
    return at if at is not None and at.tzinfo is not None else None
