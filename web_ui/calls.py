"""The Calls pages: every call with its outcome (filter by outcome, day, number; pages by a
`before` cursor, with how many match in all), one call's detail with the plan that ran and
why, and `GET /api/v1/calls`. Times are shown, and the day filter works, in the business
timezone (the office's day). The filters are answered by the history index, so a call a
year back is found as fast as today's.

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

from firmware_app.services.history import (
    CALL_OUTCOMES,
    Clause,
    HistoryService,
    Interaction,
    Page,
    channel_key,
    day_keys,
    number_key,
    outcome_key,
)

from .api import api_blueprint, register_api
from .registry import add_nav
from .security import services
from .timeline import views, zone

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


def call_query(
    history: HistoryService,
    outcome: str = "",
    day: str = "",
    number: str = "",
    tz: tzinfo | None = None,
) -> tuple[list[Clause], Callable[[Interaction], bool] | None]:
    """The index clauses for the filters (and a check for a day that does not start on a
    whole hour of UTC): outcome, the office's day, digits anywhere in the number."""
    clauses: list[Clause] = [[outcome_key("call", outcome)] if outcome else [channel_key("call")]]
    digits = re.sub(r"\D", "", number)
    if digits:
        clauses.append([number_key(n) for n in history.index.numbers_containing(digits)])
    where = None
    if day:
        try:
            when = date.fromisoformat(day)
        except ValueError:
            when = None
        if when is not None:
            keys, start, end = day_keys(when, tz or ZoneInfo("UTC"))
            clauses.append(keys)
            if start.minute or end.minute:
                where = call_filter(day=day, tz=tz)
    return clauses, where


def calls_page(n: int, before: str | None) -> Page:
    svc = services()
    clauses, where = call_query(svc.history, **_query(), tz=zone(svc))
    return svc.history.query(clauses, n, before=before, where=where)


def _query() -> dict[str, str]:
    outcome = request.args.get("outcome", "")
    return {
        "outcome": outcome if outcome in CALL_OUTCOMES else "",
        "day": request.args.get("day", "")[:10],
        "number": request.args.get("number", "")[:30],
    }


_RECORD = re.compile(r"^\d{4}-\d{2}:\d{1,9}$")


def _cursor() -> str | None:
    before = request.args.get("before", "")
    return before if _RECORD.match(before) else None


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
    before = _cursor()
    page = calls_page(PAGE, before)
    return render_template(
        "calls/index.html",
        items=page.items,
        rows=views(page.items, services()),
        page=page,
        q=q,
        more=page.next_before or "",
        first=before is None,
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
        v=views([item], services())[0],
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
    page = calls_page(limit, _cursor())
    return jsonify(
        calls=[as_dict(i) for i in page.items],
        next_before=page.next_before,
        total=page.total,
        total_exact=page.exact,
        complete=page.complete,
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_api(app, api)
    add_nav(app, "Calls", "calls.index", 20, prefix="/calls")
