"""The Calls pages: every call with its outcome (filter by outcome, day, number; pages by a
`before` cursor), one call's detail with the plan that ran and why, and `GET /api/v1/calls`.
Times are shown, and the day filter works, in the business timezone (the office's day).

Reads history records through `services.history` only; never the store or a modem.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, abort, jsonify, render_template, request, send_file, url_for
from werkzeug.wrappers import Response

from firmware_app.services.history import CALL_OUTCOMES, Interaction

from .api import api_blueprint, register_api
from .registry import add_nav
from .security import services
from .timeline import zone

bp = Blueprint("calls", __name__, url_prefix="/calls")
api = api_blueprint("calls_api", __name__)

PAGE = 50
MAX_LIMIT = 200
OUTCOME_WORDS = {
    "answered": "Answered by staff",
    "forwarded": "Put through",
    "voicemail": "Voicemail",
    "missed": "Missed",
    "blocked": "Blocked",
    "screened": "Screened out",
    "fax": "Fax",
    "interrupted": "Interrupted (Frontdesk restarted)",
}
_ID = re.compile(r"^[0-9A-Za-z:_-]{1,40}$")


def call_filter(
    outcome: str = "", day: str = "", number: str = "", tz: tzinfo | None = None
) -> Callable[[Interaction], bool]:
    """Calls only, narrowed by outcome, day and digits of the number. `day` (YYYY-MM-DD) is
    the office's day: the call's start in the business timezone `tz` (UTC when not given)."""
    local = tz or ZoneInfo("UTC")
    digits = re.sub(r"\D", "", number)
    when: date | None = None
    if day:
        try:
            when = date.fromisoformat(day)
        except ValueError:
            when = None

    def keep(i: Interaction) -> bool:
        if i.channel != "call":
            return False
        if outcome and i.outcome != outcome:
            return False
        if when is not None and i.start.astimezone(local).date() != when:
            return False
        return not (digits and digits not in re.sub(r"\D", "", i.number))

    return keep


def _query() -> dict[str, str]:
    outcome = request.args.get("outcome", "")
    return {
        "outcome": outcome if outcome in CALL_OUTCOMES else "",
        "day": request.args.get("day", "")[:10],
        "number": request.args.get("number", "")[:30],
    }


def _cursor() -> str | None:
    before = request.args.get("before", "")
    return before if _ID.match(before) else None


def _filter() -> Callable[[Interaction], bool]:
    return call_filter(**_query(), tz=zone(services()))


def recordings(i: Interaction) -> list[str]:
    """The media references of a call's recordings (calls put through and recorded)."""
    refs = i.details.get("recordings", ()) or ()
    return [str(r) for r in refs if isinstance(r, str)] if isinstance(refs, list | tuple) else []


def as_dict(i: Interaction) -> dict[str, Any]:
    return {
        "id": i.id,
        "number": i.number,
        "name": i.name,
        "contact_id": i.contact_id,
        "line": i.line,
        "start": i.start.isoformat(),
        "end": i.end.isoformat() if i.end else None,
        "duration": i.duration,
        "outcome": i.outcome,
        "reason": i.text,
        "answered": bool(i.details.get("answered", False)),
        "box": i.details.get("box", ""),
        "media": list(i.media),
        "heard": bool(i.details.get("heard", False)),
        "handled": i.handled_at is not None,
        "plan": i.details.get("plan", {}),
        "recordings": [
            url_for("calls.recording", record_id=i.id, n=n, _external=False)
            for n in range(len(recordings(i)))
        ],
        "recordings_deleted": int(i.details.get("recordings_deleted", 0) or 0),
    }


@bp.get("/")
def index() -> str:
    q = _query()
    items = services().history.newest(PAGE, before=_cursor(), where=_filter())
    more = items[-1].id if len(items) == PAGE else ""
    return render_template(
        "calls/index.html",
        items=items,
        q=q,
        more=more,
        outcomes=OUTCOME_WORDS,
        tz=zone(services()),
    )


@bp.get("/<record_id>")
def detail(record_id: str) -> str:
    item = services().history.get(record_id) if _ID.match(record_id) else None
    if item is None or item.channel != "call":
        abort(404)
    history = services().history
    kept = [(n, history.media_file(ref) is not None) for n, ref in enumerate(recordings(item))]
    return render_template(
        "calls/detail.html",
        item=item,
        outcomes=OUTCOME_WORDS,
        tz=zone(services()),
        recordings=kept,
        keep_days=services().settings.get().forwarding.keep_recordings_days,
    )


@bp.get("/<record_id>/recordings/<int:n>")
def recording(record_id: str, n: int) -> Response:
    """The call's `n`th recording (`details.recordings`): only files the record lists, so
    nothing else in the data dir can be named. `?download=1` downloads it."""
    item = services().history.get(record_id) if _ID.match(record_id) else None
    if item is None or item.channel != "call":
        abort(404)
    refs = recordings(item)
    if not 0 <= n < len(refs):
        abort(404)
    path = services().history.media_file(refs[n])
    if path is None:
        abort(404)  # deleted after the retention period
    stamp = item.start.strftime("%Y-%m-%d-%H%M")
    who = item.number.lstrip("+") or "withheld"
    response = send_file(
        path,
        mimetype="audio/wav",
        as_attachment=request.args.get("download") == "1",
        download_name=f"call-{stamp}-{who}-{n + 1}.wav",
        conditional=True,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@api.get("/calls")
def api_calls() -> Response:
    """Calls newest first: ?outcome=&day=&number=&before=&limit= (docs/api.md)."""
    try:
        limit = max(1, min(MAX_LIMIT, int(request.args.get("limit", PAGE))))
    except ValueError:
        limit = PAGE
    items = services().history.newest(limit, before=_cursor(), where=_filter())
    return jsonify(
        calls=[as_dict(i) for i in items],
        next_before=items[-1].id if len(items) == limit else None,
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_api(app, api)
    add_nav(app, "Calls", "calls.index", 20, prefix="/calls")
