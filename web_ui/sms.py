"""Messages: texts grouped by contact or number, one conversation in both directions with
each message's state, a compose page with a live part counter (static/sms.js, mirrored by a
server-side preview), the balance check, and `GET`/`POST /api/v1/sms`.

Calls `services.sms` (firmware_app.services.sms.SmsService) and the history only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from firmware_app.errors import FrontdeskError, ValidationError
from firmware_app.protocol.sms_pdu import SmsCount, count_text

from .api import api_blueprint, api_error, register_api
from .registry import add_nav
from .security import services
from .timeline import staff_name

bp = Blueprint("sms", __name__, url_prefix="/messages")
api = api_blueprint("api_sms", __name__)

TEXT_MAX = 1600
_PHONE = re.compile(r"\+?[0-9]{3,20}")
API_MAX = 500
STATE_WORDS = {
    "received": ("Received", ""),
    "queued": ("Waiting to go", "badge-warning"),
    "sent": ("Sent", ""),
    "delivered": ("Delivered", "badge-ok"),
    "failed": ("Not sent", "badge-danger"),
}


def _sms() -> Any:
    return getattr(services(), "sms", None)


def _zone() -> ZoneInfo:
    try:
        return ZoneInfo(services().settings.get().business.timezone)
    except Exception:
        return ZoneInfo("UTC")


def when_text(at: datetime, now: datetime | None = None) -> str:
    tz = _zone()
    local = at.astimezone(tz)
    today = (now or datetime.now(UTC)).astimezone(tz).date()
    if local.date() == today:
        return f"{local:%H:%M}"
    if local.year == today.year:
        return f"{local:%a %d %b, %H:%M}"
    return f"{local:%d %b %Y, %H:%M}"


def count_words(count: SmsCount) -> str:
    """The counter's sentence; static/sms.js writes exactly the same one."""
    parts = f"{count.parts} part" + ("" if count.parts == 1 else "s")
    enc = "GSM-7" if count.encoding == "gsm7" else "Unicode (UCS-2)"
    return f"{parts} · {count.remaining} characters left · {enc}"


def reason(item: Any) -> str:
    """Why an outgoing text is not delivered yet, or failed, in words."""
    d = item.details
    if item.outcome == "failed":
        return str(d.get("error") or d.get("last_error") or "")
    if item.outcome == "queued" and d.get("last_error"):
        return f"trying again: {d['last_error']}"
    if item.outcome == "sent" and d.get("report"):
        return str(d["report"])
    return ""


def _display(number: str) -> str:
    svc = services()
    if not number:
        return ""
    try:
        return str(svc.contacts.display(number))
    except Exception:
        return number


def message_view(item: Any) -> dict[str, Any]:
    words, badge = STATE_WORDS.get(item.outcome, (item.outcome, ""))
    d = item.details
    return {
        "id": item.id,
        "direction": item.direction,
        "text": item.text,
        "when": when_text(item.start),
        "state": words,
        "badge": badge,
        "reason": reason(item),
        "parts": d.get("parts", 1),
        "incomplete": d.get("complete") is False,
        "flash": bool(d.get("class0")),
        "auto": bool(d.get("auto_reply")),
        "unreadable": bool(d.get("unreadable")),
        "pdu": str(d.get("pdu", "")),
        "error": str(d.get("error", "")),
        "reads": d.get("reads", 1),
    }


def _who(key: str, name: str, number: str) -> str:
    from firmware_app.services.sms import UNKNOWN

    if key == UNKNOWN and not (name or number):
        return "Unknown sender"
    return name or _display(number) or key


def _form_count(text: str) -> tuple[SmsCount, str]:
    count = count_text(text.strip())
    return count, count_words(count)


def clean_text(raw: str) -> str:
    """Line ends from a browser's form (CR LF) as they are sent (LF)."""
    return raw.replace("\r\n", "\n").replace("\r", "\n")


# -- pages ---------------------------------------------------------------------------------------


@bp.get("/")
def index() -> str:
    sms = _sms()
    convs = []
    if sms is not None:
        for c in sms.conversations(100):
            convs.append(
                {
                    "key": c.key,
                    "who": _who(c.key, c.name, c.number),
                    "number": _display(c.number) if c.name and c.number else "",
                    "last": c.last.text,
                    "outgoing": c.last.direction == "out",
                    "when": when_text(c.last.start),
                    "count": c.count,
                    "unread": c.unread,
                    "state": STATE_WORDS.get(c.last.outcome, ("", ""))[0]
                    if c.last.direction == "out"
                    else "",
                }
            )
    return render_template(
        "sms/index.html",
        sms=sms is not None,
        conversations=convs,
        balances=_balances(sms),
        ussd_code=services().settings.get().sms.ussd_code,
    )


def _balances(sms: Any) -> list[tuple[str, dict[str, Any]]]:
    """Each GSM line's last balance check, as the Lines page shows it."""
    from .lines_page import balance_view

    if sms is None:
        return []
    return [(line.name, balance_view(sms, line.name)) for line in sms.gsm_lines()]


@bp.get("/with/<path:number>")
def conversation(number: str) -> Any:
    """One conversation; a number without texts yet shows an empty one to start."""
    sms = _sms()
    items = sms.conversation(number) if sms is not None else []
    if not items and not _PHONE.fullmatch(number):
        abort(404)
    return _conversation_with(number, "", {})


def _key_of(item: Any) -> str:
    from firmware_app.services.sms import conversation_key

    return conversation_key(item)


@bp.get("/new")
def compose() -> Any:
    to = request.args.get("to", "")[:40]
    return _compose_page(to, "", {})


def _compose_page(to: str, text: str, errors: dict[str, str], status: int = 200) -> Any:
    count, words = _form_count(text)
    page = render_template(
        "sms/compose.html",
        sms=_sms() is not None,
        to=to,
        text=text,
        count=words,
        parts=count.parts,
        errors=errors,
        text_max=TEXT_MAX,
    )
    return page if status == 200 else (page, status)


@bp.post("/send")
def send() -> Any:
    sms = _sms()
    to = request.form.get("to", "").strip()[:40]
    text = clean_text(request.form.get("text", ""))[: TEXT_MAX * 2]
    back_to = request.form.get("back", "")
    if request.form.get("action") == "preview":
        if back_to:
            return _conversation_with(back_to, text, {})
        return _compose_page(to, text, {})
    if sms is None:
        flash("Texts need a GSM line: none is set up.", "error")
        return redirect(url_for("sms.index"))
    try:
        item = sms.send(to, text)
    except ValidationError as exc:
        errors = {p.field: f"{p.value} is not allowed; expected {p.allowed}" for p in exc.problems}
        if back_to:
            return _conversation_with(back_to, text, errors, 422)
        return _compose_page(to, text, errors, 422)
    except FrontdeskError as exc:
        flash(f"The text was not sent: {exc}", "error")
        return redirect(url_for("sms.index"))
    done = sms.answered(item, staff_name()) if back_to else 0  # a reply answers the texts
    flash(f"Text to {_display(item.number)} is on its way.{answered_words(done)}", "success")
    return redirect(url_for("sms.conversation", number=_key_of(item)))


def answered_words(count: int) -> str:
    """The sentence after "is on its way." when a reply marked received texts handled."""
    if not count:
        return ""
    texts = "text" if count == 1 else f"{count} texts"
    return f" The {texts} it answers {'is' if count == 1 else 'are'} marked as handled."


def _conversation_with(key: str, text: str, errors: dict[str, str], status: int = 200) -> Any:
    sms = _sms()
    items = sms.conversation(key) if sms is not None else []
    # Reply to the number the customer used last (a contact may text from several).
    number = next((i.number for i in reversed(items) if i.number), "")
    number = number or (key if _PHONE.fullmatch(key) else "")
    name = next((i.name for i in items if i.name), "")
    page = render_template(
        "sms/conversation.html",
        key=key,
        who=_who(key, name, number),
        number=number,
        shown_number=_display(number),
        messages=[message_view(i) for i in items],
        sms=sms is not None,
        text=text,
        count=_form_count(text)[1],
        errors=errors,
        text_max=TEXT_MAX,
    )
    return page if status == 200 else (page, status)


@bp.post("/balance")
def balance() -> Response:
    sms = _sms()
    if sms is None:
        flash("The balance check needs a GSM line.", "error")
    else:
        sms.check_balance()  # every GSM line's
        flash("Asking the network for the balance; the answer shows here in a few seconds.", "info")
    return redirect(url_for("sms.index") + "#balance")


# -- API -----------------------------------------------------------------------------------------


def _json(item: Any) -> dict[str, Any]:
    d = item.details
    return {
        "id": item.id,
        "direction": item.direction,
        "state": item.outcome,
        "number": item.number,
        "name": item.name,
        "text": item.text,
        "time": item.start.astimezone(UTC).isoformat(timespec="seconds"),
        "line": item.line,
        "parts": d.get("parts", 1),
        "encoding": d.get("encoding"),
        "error": reason(item) if item.outcome == "failed" else "",
        "complete": d.get("complete", True),
    }


@api.get("/sms")
def api_list() -> Response:
    """Texts newest first; `number` (E.164 or sender name) and `limit` filter."""
    sms = _sms()
    raw_limit = request.args.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= API_MAX:
        return api_error(400, f"limit: {raw_limit!r} is not allowed; expected 1 to {API_MAX}")
    if sms is None:
        return jsonify(messages=[])
    limit = int(raw_limit)
    key = request.args.get("number", "").strip()
    items = list(reversed(sms.conversation(key, n=limit))) if key else sms.texts(limit)
    return jsonify(messages=[_json(i) for i in items])


@api.post("/sms")
def api_send() -> Response:
    """Queue a text: JSON {"to": "+44...", "text": "..."}; 202 with the message."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return api_error(400, 'send a JSON object: {"to": "+44...", "text": "..."}')
    sms = _sms()
    problems = []
    for name in ("to", "text"):
        if not isinstance(body.get(name), str):
            problems.append({"field": name, "value": body.get(name), "allowed": "text"})
    if problems:
        first = problems[0]
        return api_error(422, f"{first['field']}: expected text", problems=problems)
    if sms is None:
        return api_error(503, "texts need a GSM line and the running daemon")
    try:
        item = sms.send(body["to"], clean_text(body["text"]))
    except ValidationError as exc:
        items = [{"field": p.field, "value": p.value, "allowed": p.allowed} for p in exc.problems]
        return api_error(422, str(exc), problems=items)
    except FrontdeskError as exc:
        return api_error(503, str(exc))
    response = jsonify(message=_json(item))
    response.status_code = 202
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_api(app, api)
    add_nav(app, "Messages", "sms.index", 35, prefix="/messages")
