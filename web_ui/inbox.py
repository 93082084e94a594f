"""The shared inbox: everything not yet handled, newest first, filtered by channel and line,
a page at a time (the history index's `open` list: every open item, however many).

Ticked items, or every item of the page, are marked handled in one POST (who and when are
kept). Also the API's `GET /api/v1/inbox` and `GET /api/v1/interactions?since=...` (oldest
first with a cursor, for a system collecting every branch's records). Pages call the facade
only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, render_template, request

from firmware_app.services.history import ALL, Page

from .api import api_blueprint, register_api
from .registry import add_nav
from .security import services
from .timeline import CHANNELS, cursor, staff_name, views

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
api = api_blueprint("api_inbox", __name__)

PAGE = 100
API_MAX = 500
_RECORD = re.compile(r"^\d{4}-\d{2}:\d{1,9}$")


def _filters() -> tuple[str | None, str | None, str]:
    channel = request.args.get("channel", "")
    line = request.args.get("line", "")[:40] or None
    if channel not in CHANNELS:
        channel = ""
    return (channel or None), line, channel


def _open(svc: Any, channel: str | None, line: str | None, n: int) -> Page:
    """A page of open items; the page's "Calls" are the open calls without a message."""
    wanted = "missed" if channel == "call" else channel
    result: Page = svc.history.inbox(n, channel=wanted, line=line, before=cursor())
    return result


def _lines(svc: Any) -> list[str]:
    lines = svc.extra.get("lines") or getattr(svc, "lines", None)
    try:
        return [str(s.name) for s in lines.statuses()] if lines is not None else []
    except Exception:  # a channel being built must never take the inbox down
        return []


@bp.get("/")
def index() -> str:
    svc = services()
    channel, line, chosen = _filters()
    page = _open(svc, channel, line, PAGE)
    return render_template(
        "inbox/index.html",
        items=views(page.items, svc),
        page=page,
        more=page.next_before or "",
        first=cursor() is None,
        total=svc.history.open_count(),
        channels=CHANNELS,
        channel=chosen,
        line=line or "",
        lines=_lines(svc),
        by=staff_name(),
    )


def interaction_json(svc: Any, item: Any) -> dict[str, Any]:
    record = item.to_record()
    contact = svc.contacts.by_number(item.number) if item.number else None
    return {
        "id": item.id,
        **record,
        "open": item.open,
        "contact": None if contact is None else {"id": contact.id, "name": contact.title},
        "display_number": svc.contacts.display(item.number) if item.number else "",
    }


def _since() -> datetime | None:
    text = request.args.get("since", "")
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _error(message: str, status: int) -> Response:
    response = jsonify(error=message, status=status)
    response.status_code = status
    return response


def _limit(default: int) -> int | Response:
    """`limit` 1 to API_MAX, or the 400 that says what is allowed (as /api/v1/sms and
    /api/v1/faxes): a client asking for more learns to page instead of silently getting less."""
    raw = request.args.get("limit", "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= API_MAX:
        return _error(f"limit: {raw!r} is not allowed; expected 1 to {API_MAX}", 400)
    return int(raw)


@api.get("/inbox")
def api_inbox() -> Response:
    svc = services()
    channel, line, _ = _filters()
    limit = _limit(API_MAX)
    if isinstance(limit, Response):
        return limit
    page = _open(svc, channel, line, limit)
    return jsonify(
        open_count=svc.history.open_count(),
        total=page.total,
        items=[interaction_json(svc, i) for i in page.items],
        next_before=page.next_before,
        complete=page.complete,
    )


@api.get("/interactions")
def api_interactions() -> Response:
    """With `since`: records started at or after it, oldest first, `after` pages on. Without:
    the newest, `before` pages back. Either way `total` counts every match (docs/api.md)."""
    svc = services()
    since = _since()
    if request.args.get("since") and since is None:
        return _error("since must be an ISO 8601 time such as 2025-03-28T09:00:00Z", 400)
    limit = _limit(100)
    if isinstance(limit, Response):
        return limit
    after = request.args.get("after", "")
    before = request.args.get("before", "")
    if (after and not _RECORD.match(after)) or (before and not _RECORD.match(before)):
        return _error("after and before take a record id such as 2026-11:42", 400)
    if since is not None:
        page = svc.history.since(since, limit, after=after or None)
    else:
        page = svc.history.query([ALL], limit, before=before or None)
    return jsonify(
        items=[interaction_json(svc, i) for i in page.items],
        count=len(page.items),
        total=page.total,
        next_after=page.next_after,
        next_before=page.next_before,
        complete=page.complete,
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_api(app, api)
    add_nav(app, "Inbox", "inbox.index", 30, prefix="/inbox")
