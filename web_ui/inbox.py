"""The shared inbox: everything not yet handled, newest first, filtered by channel and line.

Ticked items are marked handled in one POST (who and when are kept). Also the API's
`GET /api/v1/inbox` and `GET /api/v1/interactions?since=...`. Pages call the facade only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, render_template, request

from .api import api_blueprint, register_api
from .registry import add_nav
from .security import services
from .timeline import CHANNELS, staff_name, views

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
api = api_blueprint("api_inbox", __name__)

PAGE = 100
API_MAX = 500


def _filters() -> tuple[str | None, str | None, str]:
    channel = request.args.get("channel", "")
    line = request.args.get("line", "")[:40] or None
    if channel not in CHANNELS:
        channel = ""
    return (channel or None), line, channel


def _open(svc: Any, channel: str | None, line: str | None, n: int) -> list[Any]:
    if channel == "voicemail":
        items = svc.history.open_items(n * 2, channel="call", line=line)
        return [i for i in items if i.outcome == "voicemail"][:n]
    if channel == "call":
        items = svc.history.open_items(n * 2, channel="call", line=line)
        return [i for i in items if i.outcome != "voicemail"][:n]
    result: list[Any] = svc.history.open_items(n, channel=channel, line=line)
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
    items = _open(svc, channel, line, PAGE)
    return render_template(
        "inbox/index.html",
        items=views(items, svc),
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


@api.get("/inbox")
def api_inbox() -> Response:
    svc = services()
    channel, line, _ = _filters()
    items = _open(svc, channel, line, API_MAX)
    return jsonify(
        open_count=svc.history.open_count(), items=[interaction_json(svc, i) for i in items]
    )


@api.get("/interactions")
def api_interactions() -> Response:
    svc = services()
    since = _since()
    if request.args.get("since") and since is None:
        return _error("since must be an ISO 8601 time such as 2025-03-28T09:00:00Z", 400)
    limit = min(max(request.args.get("limit", 100, type=int) or 100, 1), API_MAX)
    where = None if since is None else (lambda i: i.start >= since)
    items = svc.history.newest(limit, where=where, max_scan=20000)
    return jsonify(items=[interaction_json(svc, i) for i in items], count=len(items))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_api(app, api)
    add_nav(app, "Inbox", "inbox.index", 30, prefix="/inbox")
