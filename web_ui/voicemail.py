"""The Voicemail inbox: messages with an audio player, heard and handled, download, delete;
the audio route serves only files that belong to a voicemail record; `GET /api/v1/voicemails`.

A message is heard when someone presses play (static/voicemail.js posts to the heard route on
the player's `play` event), never because its audio was fetched: a browser fetches audio to
preload it, for its length or in ranges without anybody listening.

Reads and changes history records through `services.history`; media paths come only from
`services.history.media_file(ref)` for a ref the record lists.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from werkzeug.wrappers import Response

from firmware_app.services.history import (
    HAS_MEDIA,
    OPEN,
    Clause,
    Interaction,
    Page,
    outcome_key,
)

from .api import api_blueprint, register_api
from .calls import _ID, MAX_LIMIT, PAGE, _cursor, as_dict
from .registry import add_nav
from .security import services
from .timeline import has_message, views, zone

bp = Blueprint("voicemail", __name__, url_prefix="/voicemail")
api = api_blueprint("voicemail_api", __name__)

TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


VOICEMAIL = outcome_key("call", "voicemail")
INTERRUPTED = outcome_key("call", "interrupted")
# A voicemail, or an interrupted call with a recording: (voicemail or interrupted) and
# (voicemail or has media), as index clauses.
MESSAGES: list[Clause] = [[VOICEMAIL, INTERRUPTED], [VOICEMAIL, HAS_MEDIA]]


def messages(n: int, before: str | None, only_open: bool) -> Page:
    """Voicemail messages newest first, from the history index (every month, not the newest
    few thousand records)."""
    clauses = [*MESSAGES, [OPEN]] if only_open else MESSAGES
    return services().history.query(clauses, n, before=before)


def _item(record_id: str) -> Interaction:
    item = services().history.get(record_id) if _ID.match(record_id) else None
    if item is None or not has_message(item):
        abort(404)
    return item


def _by() -> str:
    return request.form.get("by", "").strip()[:60] or "owner"


@bp.get("/")
def index() -> str:
    show = request.args.get("show", "open")
    if show != "all":
        show = "open"
    before = _cursor()
    page = messages(PAGE, before, show == "open")
    return render_template(
        "voicemail/index.html",
        items=page.items,
        rows=views(page.items, services()),
        page=page,
        show=show,
        more=page.next_before or "",
        first=before is None,
        tz=zone(services()),
    )


@bp.get("/<record_id>/audio")
def audio(record_id: str) -> Response:
    """The message's audio. Fetching it never marks it heard (the player's play does)."""
    item = _item(record_id)
    if not item.media:
        abort(404)
    ref = item.media[0]
    path = services().history.media_file(ref)
    if path is None:
        abort(404)
    download = request.args.get("download") == "1"
    ext = path.suffix.lstrip(".").lower()
    stamp = item.start.strftime("%Y-%m-%d-%H%M")
    response = send_file(
        path,
        mimetype=TYPES.get(ext, "application/octet-stream"),
        as_attachment=download,
        download_name=f"voicemail-{stamp}-{item.number.lstrip('+') or 'withheld'}.{ext}",
        conditional=True,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _set_heard(item: Interaction, heard: bool) -> None:
    details = dict(item.details)
    details["heard"] = heard
    services().history.update(item.id, details=details)


@bp.post("/<record_id>/heard")
def heard(record_id: str) -> Response:
    """Mark heard (`heard=1`, the default) or new again (`heard=0`). The buttons get a
    redirect; the player's script (Accept: application/json) gets `{"heard": true}`."""
    item = _item(record_id)
    now_heard = request.form.get("heard", "1") == "1"
    if bool(item.details.get("heard")) != now_heard:
        _set_heard(item, now_heard)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(heard=now_heard)
    return redirect(_next() or url_for("voicemail.index"))


def _next() -> str:
    """Where a button goes back to: a path on this site only."""
    target = request.form.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else ""


@bp.post("/<record_id>/handled")
def handled(record_id: str) -> Response:
    item = _item(record_id)
    if request.form.get("undo") == "1":
        services().history.reopen(item.id)
        flash("Marked as not handled.", "info")
    else:
        services().history.mark_handled([item.id], by=_by())
        flash("Marked as handled.", "success")
    return redirect(url_for("voicemail.index"))


@bp.post("/<record_id>/delete")
def delete(record_id: str) -> Response:
    """Delete the recording; the call's record stays (marked handled, audio deleted)."""
    item = _item(record_id)
    services().history.delete_media(item.id, by=_by())
    flash("The recording was deleted; the call stays in the call list.", "success")
    return redirect(url_for("voicemail.index"))


@api.get("/voicemails")
def api_voicemails() -> Response:
    """Voicemail newest first: ?open=1 for unhandled only, &before=&limit= (docs/api.md)."""
    try:
        limit = max(1, min(MAX_LIMIT, int(request.args.get("limit", PAGE))))
    except ValueError:
        limit = PAGE
    page = messages(limit, _cursor(), request.args.get("open") == "1")
    out: list[dict[str, Any]] = []
    for i in page.items:
        d = as_dict(i)
        d["audio_url"] = (
            url_for("voicemail.audio", record_id=i.id, _external=False) if i.media else None
        )
        out.append(d)
    return jsonify(
        voicemails=out, next_before=page.next_before, total=page.total, complete=page.complete
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_api(app, api)
    add_nav(app, "Voicemail", "voicemail.index", 21, prefix="/voicemail")
