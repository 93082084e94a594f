"""Faxes: received and sent faxes with page 1's picture, state, pages and the PDF (view or
download); retry or cancel a queued one; "Send a fax" (upload checked by content, cover page,
resolution, dither), drawn in the render child and shown page by page before it is queued;
`GET /api/v1/faxes` and `POST /api/v1/fax` (multipart upload).

Calls `services.fax` (firmware_app.fax.service.FaxService) and the history only.
"""

from __future__ import annotations

import re
from datetime import UTC
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

from firmware_app.errors import FrontdeskError

from .api import api_blueprint, api_error, register_api
from .registry import add_nav
from .security import services
from .sms import when_text

bp = Blueprint("fax", __name__, url_prefix="/fax")
api = api_blueprint("api_fax", __name__)

UPLOAD_MAX = 15 * 1024 * 1024  # under the web server's 16 MB request limit
API_MAX = 200
_NUMBER = re.compile(r"[0-9+*#()\-. ]{3,40}")
STATE_WORDS = {
    "received": ("Received", "badge-ok"),
    "partial": ("Incomplete", "badge-warning"),
    "queued": ("Waiting to go", "badge-warning"),
    "sent": ("Sent", "badge-ok"),
    "failed": ("Not sent", "badge-danger"),
}


def _fax() -> Any:
    return getattr(services(), "fax", None)


def _display(number: str) -> str:
    if not number:
        return ""
    try:
        return str(services().contacts.display(number))
    except Exception:
        return number


def reason(item: Any) -> str:
    d = item.details
    if item.direction == "in":
        return "" if item.outcome == "received" else str(item.text or d.get("reason", ""))
    if item.outcome == "queued":
        if d.get("status") == "sending":
            return "sending now"
        if d.get("status") == "drawing":
            return "drawing its pages"
        if d.get("last_status"):
            return f"trying again: {d.get('reason', d['last_status'])}"
        return ""
    if item.outcome == "failed":
        return str(d.get("reason", ""))
    return ""


def fax_view(item: Any) -> dict[str, Any]:
    words, badge = STATE_WORDS.get(item.outcome, (item.outcome, ""))
    if item.direction == "in" and item.outcome == "failed":
        words = "Not received"
    d = item.details
    pdf = next((m for m in item.media if m.endswith(".pdf")), "")
    return {
        "id": item.id,
        "direction": item.direction,
        "who": _display(item.number) or item.name or "unknown number",
        "remote_id": item.name,
        "when": when_text(item.start),
        "state": words,
        "badge": badge,
        "reason": reason(item),
        "pages": d.get("pages", 0),
        "pages_sent": d.get("pages_sent"),
        "attempts": d.get("attempts"),
        "rate": d.get("rate", ""),
        "pdf": pdf,
        "queued": item.outcome == "queued",
        "sending": d.get("status") == "sending",
        "drawing": d.get("status") == "drawing",
        "can_retry": item.direction == "out"
        and item.outcome == "failed"
        and d.get("status") != "not drawn",
    }


@bp.get("/")
def index() -> str:
    fax = _fax()
    items = fax.faxes(100) if fax is not None else []
    lines = [line.name for line in fax.fax_lines()] if fax is not None else []
    return render_template(
        "fax/index.html",
        fax=fax is not None,
        lines=lines,
        faxes=[fax_view(i) for i in items],
    )


def _send_page(form: dict[str, Any], errors: dict[str, str], status: int = 200) -> Any:
    fax = _fax()
    page = render_template(
        "fax/send.html",
        fax=fax is not None,
        can_send=bool(fax is not None and fax.fax_lines()),
        form=form,
        errors=errors,
        upload_mb=UPLOAD_MAX // (1024 * 1024),
    )
    return page if status == 200 else (page, status)


@bp.get("/send")
def send_form() -> Any:
    return _send_page({"to": request.args.get("to", "")[:40], "resolution": "fine"}, {})


@bp.post("/send")
def send() -> Any:
    """Check the form, then have the upload drawn (in the render child, off this request)
    and show its pages before anything is queued."""
    fax = _fax()
    form = {
        "to": request.form.get("to", "").strip()[:40],
        "cover": request.form.get("cover") == "1",
        "note": request.form.get("note", "")[:600],
        "resolution": "normal" if request.form.get("resolution") == "normal" else "fine",
        "dither": request.form.get("dither", "auto"),
    }
    errors: dict[str, str] = {}
    if not _NUMBER.fullmatch(form["to"]) or not any(c.isdigit() for c in form["to"]):
        errors["to"] = f"{form['to']!r} is not a fax number; expected one like +1 555 010 0100"
    upload = request.files.get("file")
    data = upload.read(UPLOAD_MAX + 1) if upload is not None else b""
    if not data:
        errors["file"] = "choose a PDF, PNG, JPEG or TIFF file to send"
    elif len(data) > UPLOAD_MAX:
        errors["file"] = f"the file is larger than {UPLOAD_MAX // 1048576} MB; send a smaller one"
    if fax is None:
        errors["to"] = "faxes need a fax line and the running daemon"
    if errors:
        return _send_page(form, errors, 422)
    dither = {"yes": True, "no": False}.get(form["dither"])
    try:
        draft = fax.prepare(
            form["to"],
            data,
            cover_note=form["note"] if form["cover"] else None,
            fine=form["resolution"] == "fine",
            dither=dither,
            filename=(upload.filename or "") if upload is not None else "",
        )
    except FrontdeskError as exc:
        return _send_page(form, {"file": str(exc)}, 422)
    return redirect(url_for("fax.draft", draft_id=draft.id), code=303)


def _draft_form(draft: Any) -> dict[str, Any]:
    dither = {True: "yes", False: "no"}.get(draft.dither, "auto")
    return {
        "to": draft.number,
        "cover": draft.cover_note is not None,
        "note": draft.cover_note or "",
        "resolution": "fine" if draft.fine else "normal",
        "dither": dither,
    }


GONE = (
    "that fax is no longer waiting to be sent (an upload is kept for an hour, and not across "
    "a restart): upload it again"
)


def _the_draft(draft_id: str) -> Any:
    fax = _fax()
    return fax.draft(draft_id) if fax is not None else None


@bp.get("/draft/<draft_id>")
def draft(draft_id: str) -> Any:
    """The pages as they will be sent, then Send or Start again; while the pages are being
    drawn, a progress page that reloads itself every two seconds."""
    found = _the_draft(draft_id)
    if found is None:
        return _send_page({"to": "", "resolution": "fine"}, {"file": GONE}, 404)
    if found.state == "failed":
        _fax().discard(found.id)
        return _send_page(_draft_form(found), {"file": found.error}, 422)
    page = render_template(
        "fax/preview.html",
        draft=found,
        who=_display(found.number) or found.number,
        previews=list(range(1, found.done + 1)),
    )
    response = Response(page, mimetype="text/html")
    if found.state == "drawing":
        response.headers["Refresh"] = "2"
    return response


@bp.get("/draft/<draft_id>/page/<int:page>.png")
def draft_page(draft_id: str, page: int) -> Response:
    found = _the_draft(draft_id)
    path = found.preview(page) if found is not None else None
    if path is None:
        abort(404)
    return send_file(path, mimetype="image/png", max_age=0)


@bp.post("/draft/<draft_id>/send")
def draft_send(draft_id: str) -> Response:
    found = _the_draft(draft_id)
    if found is None:
        flash(GONE[0].upper() + GONE[1:] + ".", "error")
        return redirect(url_for("fax.send_form"))
    try:
        item = _fax().queue_draft(found.id)
    except FrontdeskError as exc:
        flash(str(exc), "error")
        return redirect(url_for("fax.draft", draft_id=found.id))
    pages = item.details.get("pages", 0)
    who = _display(item.number) or found.number
    flash(f"Fax to {who} queued ({pages} page{'s' if pages != 1 else ''}).", "success")
    return redirect(url_for("fax.index"))


@bp.post("/draft/<draft_id>/discard")
def draft_discard(draft_id: str) -> Response:
    found = _the_draft(draft_id)
    if found is not None:
        _fax().discard(found.id)
        flash("The fax was not sent; its pages are gone.", "success")
    return redirect(url_for("fax.send_form"))


@bp.get("/<record_id>/page1.png")
def page_one(record_id: str) -> Response:
    """Page 1 of a fax, small, for the list (drawn from the PDF the first time if need be)."""
    fax = _fax()
    path = fax.thumbnail(record_id) if fax is not None else None
    if path is None:
        abort(404)
    response = send_file(path, mimetype="image/png", max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/<record_id>/retry")
def retry(record_id: str) -> Response:
    fax = _fax()
    try:
        if fax is None:
            raise FrontdeskError("faxes need the running daemon")
        fax.retry(record_id)
        flash("The fax goes out again as soon as a line is free.", "success")
    except FrontdeskError as exc:
        flash(str(exc), "error")
    return redirect(url_for("fax.index"))


@bp.post("/<record_id>/cancel")
def cancel(record_id: str) -> Response:
    fax = _fax()
    try:
        if fax is None:
            raise FrontdeskError("faxes need the running daemon")
        fax.cancel(record_id)
        flash("The fax was cancelled.", "success")
    except FrontdeskError as exc:
        flash(str(exc), "error")
    return redirect(url_for("fax.index"))


# -- API -----------------------------------------------------------------------------------------


def _json(item: Any) -> dict[str, Any]:
    d = item.details
    pdf = next((m for m in item.media if m.endswith(".pdf")), "")
    return {
        "id": item.id,
        "direction": item.direction,
        "state": item.outcome,
        "number": item.number,
        "remote_id": item.name,
        "time": item.start.astimezone(UTC).isoformat(timespec="seconds"),
        "line": item.line,
        "pages": d.get("pages", 0),
        "resolution": d.get("resolution", ""),
        "rate": d.get("rate", ""),
        "attempts": d.get("attempts"),
        "drawing": d.get("status") == "drawing",
        "reason": reason(item),
        "pdf": url_for("media.download", ref=pdf) if pdf else None,
    }


@api.get("/faxes")
def api_list() -> Response:
    """Faxes newest first, received and sent; `limit` 1-200 (default 50)."""
    raw = request.args.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= API_MAX:
        return api_error(400, f"limit: {raw!r} is not allowed; expected 1 to {API_MAX}")
    fax = _fax()
    if fax is None:
        return jsonify(faxes=[])
    return jsonify(faxes=[_json(i) for i in fax.faxes(int(raw))])


@api.post("/fax")
def api_send() -> Response:
    """Queue a fax: multipart form with `to`, `file` and optional `cover` (a note),
    `resolution` (fine/normal), `dither` (yes/no/auto). 202 with the queued fax at once
    (`drawing` true: its pages are drawn next, then it is dialled)."""
    fax = _fax()
    to = request.form.get("to", "").strip()
    upload = request.files.get("file")
    problems = []
    if not _NUMBER.fullmatch(to) or not any(c.isdigit() for c in to):
        problems.append({"field": "to", "value": to, "allowed": "a fax number"})
    if upload is None:
        problems.append({"field": "file", "value": None, "allowed": "a PDF, PNG, JPEG or TIFF"})
    if problems:
        first = problems[0]
        return api_error(422, f"{first['field']}: expected {first['allowed']}", problems=problems)
    if fax is None:
        return api_error(503, "faxes need a fax line and the running daemon")
    assert upload is not None
    data = upload.read(UPLOAD_MAX + 1)
    if len(data) > UPLOAD_MAX:
        return api_error(413, f"the file is larger than {UPLOAD_MAX // 1048576} MB")
    resolution = request.form.get("resolution", "fine")
    if resolution not in ("fine", "normal"):
        return api_error(422, f"resolution: {resolution!r} is not allowed; expected fine or normal")
    dither = {"yes": True, "no": False}.get(request.form.get("dither", "auto"))
    cover = request.form.get("cover")
    try:
        item = fax.send(
            to,
            data,
            cover_note=cover[:600] if cover is not None else None,
            fine=resolution == "fine",
            dither=dither,
            filename=upload.filename or "",
        )
    except FrontdeskError as exc:
        return api_error(422, str(exc))
    response = jsonify(fax=_json(item))
    response.status_code = 202
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_api(app, api)
    add_nav(app, "Fax", "fax.index", 37, prefix="/fax")
