"""One timeline per contact and per bare number: calls, voicemail, texts, faxes, emails, notes.

Items can be marked handled (who and when) or reopened, notes added, and a text sent back
when an SMS service is on the facade. A timeline pages back by a cursor through the whole
history (the history index lists every record of a number or contact). Pages only call the
services facade; every text a caller sent is escaped by the templates.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from firmware_app.errors import FrontdeskError, ValidationError
from firmware_app.protocol.sms_pdu import count_text
from firmware_app.services.contacts import Draft, Timeline
from firmware_app.services.history import Interaction

from .security import services

if TYPE_CHECKING:
    from firmware_app.services import Services

bp = Blueprint("timeline", __name__)

LABELS = {
    ("call", "in", "answered"): "Call answered",
    ("call", "in", "forwarded"): "Call put through",
    ("call", "in", "voicemail"): "Voicemail",
    ("call", "in", "missed"): "Missed call",
    ("call", "in", "blocked"): "Blocked call",
    ("call", "in", "screened"): "Call screened out",
    ("call", "in", "fax"): "Fax call",
    ("call", "in", "interrupted"): "Interrupted (Frontdesk restarted)",
    ("sms", "in", "received"): "Text received",
    ("sms", "out", "queued"): "Text waiting to go",
    ("sms", "out", "sent"): "Text sent",
    ("sms", "out", "delivered"): "Text delivered",
    ("sms", "out", "failed"): "Text not sent",
    ("fax", "in", "received"): "Fax received",
    ("fax", "in", "partial"): "Fax received (incomplete)",
    ("fax", "out", "queued"): "Fax waiting to go",
    ("fax", "out", "sent"): "Fax sent",
    ("fax", "out", "failed"): "Fax not sent",
}
CHANNELS = {"call": "Calls", "voicemail": "Voicemail", "sms": "Texts", "fax": "Faxes"}
AUDIO = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "oga": "audio/ogg"}


def zone(svc: Services) -> ZoneInfo:
    try:
        return ZoneInfo(svc.settings.get().business.timezone or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def when_text(at: datetime, tz: ZoneInfo, now: datetime) -> str:
    local, today = at.astimezone(tz), now.astimezone(tz).date()
    if local.date() == today:
        return f"Today {local:%H:%M}"
    if (today - local.date()).days == 1:
        return f"Yesterday {local:%H:%M}"
    if local.year == today.year:
        return f"{local:%a %d %b, %H:%M}"
    return f"{local:%d %b %Y, %H:%M}"


def duration_text(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def label(item: Interaction) -> str:
    return LABELS.get(
        (item.channel, item.direction, item.outcome),
        f"{item.channel.upper() if item.channel == 'sms' else item.channel.capitalize()}"
        f" {item.outcome}",
    )


def kind(item: Interaction) -> str:
    """The icon and colour class: voicemail, missed, answered, out, sms, fax, blocked."""
    if item.channel == "call":
        if item.direction == "out":
            return "out"
        return {"forwarded": "answered", "screened": "missed", "interrupted": "missed"}.get(
            item.outcome, item.outcome
        )
    return item.channel


def has_message(i: Interaction) -> bool:
    """A voicemail, or an interrupted call whose recording was kept (docs/calls.md)."""
    kept = i.outcome == "interrupted" and bool(i.media)
    return i.channel == "call" and (i.outcome == "voicemail" or kept)


def view(item: Interaction, svc: Services, tz: ZoneInfo, now: datetime) -> dict[str, Any]:
    """What a page shows of one interaction."""
    contact = svc.contacts.by_number(item.number) if item.number else None
    if contact is None and item.contact_id is not None:
        contact = svc.contacts.get(item.contact_id)
    media = []
    for ref in item.media:
        ext = ref.rsplit(".", 1)[-1].lower()
        if item.channel == "fax" and ext == "png":
            continue  # page 1's picture for the Fax page, not a document of its own
        media.append(
            {
                "ref": ref,
                "url": url_for("media.download", ref=ref),
                "kind": "audio" if ext in AUDIO else ("pdf" if ext == "pdf" else "file"),
                "mime": AUDIO.get(ext, ""),
                "name": ref.rsplit("/", 1)[-1],
            }
        )
    return {
        "id": item.id,
        "item": item,
        "label": label(item),
        "kind": kind(item),
        "who": contact.title if contact else svc.contacts.caller(item.number, item.name),
        "contact": contact,
        "number": svc.contacts.display(item.number),
        "when": when_text(item.start, tz, now),
        "iso": item.start.isoformat(),
        "duration": duration_text(item.duration) if item.duration else "",
        "media": media,
        # A message's player marks it heard when played, as on the Voicemail page.
        "heard_url": url_for("voicemail.heard", record_id=item.id) if has_message(item) else "",
        "heard": bool(item.details.get("heard")),
        "open": item.open,
        "handled": item.handled_at is not None,
        "handled_when": when_text(item.handled_at, tz, now) if item.handled_at else "",
        "pages": item.details.get("pages"),
        "url": url_for("timeline.number", number=item.number)
        if contact is None and item.number
        else (url_for("timeline.contact", contact_id=contact.id) if contact else ""),
    }


def views(items: list[Interaction], svc: Services) -> list[dict[str, Any]]:
    tz, now = zone(svc), svc.clock()
    return [view(i, svc, tz, now) for i in items]


def entries(svc: Services, raw: list[Any]) -> list[dict[str, Any]]:
    tz, now = zone(svc), svc.clock()
    out = []
    for e in raw:
        if e.kind == "interaction":
            out.append({"kind": "interaction", "v": view(e.item, svc, tz, now)})
        else:
            handled = getattr(e.item, "handled_at", None) if e.kind == "note" else None
            out.append(
                {
                    "kind": e.kind,
                    "item": e.item,
                    "when": when_text(e.at, tz, now),
                    "handled_when": when_text(handled, tz, now) if handled else "",
                }
            )
    return out


def sms_service(svc: Services) -> Any:
    """The SMS channel when it exists on the facade (it needs `send(number, text)`)."""
    sms = getattr(svc, "sms", None)
    return sms if sms is not None and callable(getattr(sms, "send", None)) else None


def staff_name() -> str:
    """Who is marking things handled: the name given on this browser, else the owner."""
    name = str(session.get("desk_name", "")).strip()
    return name or "Owner"


def remember_name() -> None:
    name = " ".join(request.form.get("by", "").split())[:60]
    if name:
        session["desk_name"] = name


def back(default: str) -> Response:
    """Back to the page the form was on (same site only), else `default`."""
    target = request.form.get("next", "")
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return redirect(target)
    return redirect(default)


PAGE = 30  # timeline items per page; "Older" pages on by a cursor
_RECORD = re.compile(r"^\d{4}-\d{2}:\d{1,9}$")


def cursor() -> str | None:
    before = request.args.get("before", "")
    return before if _RECORD.match(before) else None


def _page(svc: Services, timeline: Timeline, **context: Any) -> str:
    from .sms import TEXT_MAX, count_words

    reply_text = str(g.get("reply_text", ""))
    return render_template(
        "timeline/index.html",
        entries=entries(svc, timeline.entries),
        timeline=timeline,
        more=timeline.next_before or "",
        first=cursor() is None,
        sms=sms_service(svc) is not None,
        reply_text=reply_text,
        reply_count=count_words(count_text(reply_text.strip())),
        reply_errors=g.get("reply_errors", {}),
        text_max=TEXT_MAX,
        next=g.get("reply_next", ""),  # shown again after a reply: forms go back there
        by=staff_name(),
        **context,
    )


@bp.get("/contacts/<int:contact_id>")
def contact(contact_id: int) -> str:
    svc = services()
    c = svc.contacts.get(contact_id)
    if c is None:
        abort(404)
    numbers = [(p, svc.contacts.display(p.number)) for p in c.phones]
    # a number the call rules' lists decide for (a prefix entry the contact's flag cannot undo)
    listed = [
        (svc.contacts.display(p.number), st)
        for p in c.phones
        if (st := svc.contacts.standing(p.number)).entry
    ]
    return _page(
        svc,
        svc.timeline.for_contact(c, PAGE, cursor()),
        contact=c,
        numbers=numbers,
        listed=listed,
        reply_to=c.numbers[0] if c.numbers else "",
        title=c.title,
    )


@bp.get("/numbers/<number>")
def number(number: str) -> Response | str:
    svc = services()
    normal = svc.contacts.normalise(number)
    c = svc.contacts.by_number(normal)
    if c is not None:
        return redirect(url_for("timeline.contact", contact_id=c.id))
    if normal != number:
        return redirect(url_for("timeline.number", number=normal))
    timeline = svc.timeline.for_number(normal, PAGE, cursor())
    names = [e.item.name for e in timeline.entries if e.kind == "interaction" and e.item.name]
    return _page(
        svc,
        timeline,
        contact=None,
        bare=normal,
        bare_display=svc.contacts.display(normal),
        standing=svc.contacts.standing(normal),
        caller_name=names[0] if names else "",
        reply_to=normal,
        title=svc.contacts.caller(normal),
    )


@bp.post("/numbers/<number>/flag")
def number_flag(number: str) -> Response:
    """Block or unblock a number, or make it VIP or not: on its contact when it has one,
    else on the call rules' list (the same lists live calls use)."""
    svc = services()
    flag = request.form.get("flag", "")
    if flag not in ("vip", "blocked"):
        abort(400)
    on = request.form.get("on") == "1"
    try:
        st = svc.contacts.set_number_flag(number, flag, on)  # type: ignore[arg-type]
    except ValidationError:
        abort(404)
    shown = svc.contacts.display(svc.contacts.normalise(number))
    if on:
        word = (
            "blocked: calls from it are turned away"
            if flag == "blocked"
            else ("VIP: put through at any time")
        )
        flash(f"{shown} is now {word}.", "success")
    elif st.flag == flag:
        flash(
            f"{shown} is still {'blocked' if flag == 'blocked' else 'VIP'}: the call rules' "
            f"entry {st.entry} covers it (change it on the Call rules page).",
            "warning",
        )
    else:
        flash(f"{shown} is no longer {'blocked' if flag == 'blocked' else 'VIP'}.", "success")
    return back(url_for("timeline.number", number=svc.contacts.normalise(number)))


@bp.post("/numbers/<number>/save")
def save_number(number: str) -> Response:
    """Save an unknown caller as a contact in one click: the number (and the caller-ID name
    it last came with); the contact's page then offers Edit for the rest."""
    svc = services()
    normal = svc.contacts.normalise(number)
    existing = svc.contacts.by_number(normal)
    if existing is not None:
        flash(f"{existing.title} is already in your contacts.", "info")
        return redirect(url_for("timeline.contact", contact_id=existing.id))
    names = [i.name for i in svc.history.for_number(normal, 20) if i.name and i.name != normal]
    try:
        c = svc.contacts.save(Draft(name=names[0] if names else "", numbers=((normal, "mobile"),)))
    except ValidationError:
        abort(404)
    flash(
        f"{svc.contacts.display(normal)} is saved as a contact"
        f"{' (' + c.name + ')' if c.name else ''}: Edit adds a name, a company or more numbers.",
        "success",
    )
    return back(url_for("timeline.contact", contact_id=c.id))


@bp.post("/history/notes/<int:note_id>/handled")
def note_handled(note_id: int) -> Response:
    """Mark a staff note handled (done), or not handled again with `undo=1`."""
    svc = services()
    remember_name()
    try:
        svc.contacts.mark_note_handled(
            note_id, staff_name(), handled=request.form.get("undo") != "1"
        )
    except FrontdeskError:
        abort(404)
    return back(url_for("contacts.index"))


@bp.get("/history/<record_id>")
def record(record_id: str) -> Response:
    """The link in notification emails: the record on its timeline."""
    svc = services()
    try:
        item = svc.history.get(record_id)
    except FrontdeskError:
        item = None
    if item is None:
        abort(404)
    c = svc.contacts.by_number(item.number) if item.number else None
    if c is not None:
        return redirect(url_for("timeline.contact", contact_id=c.id, _anchor=f"r-{item.id}"))
    if item.number:
        return redirect(url_for("timeline.number", number=item.number, _anchor=f"r-{item.id}"))
    return redirect(url_for("inbox.index", _anchor=f"r-{item.id}"))


@bp.post("/history/handled")
def handled() -> Response:
    """Mark one or more items handled (checkboxes `id`; with `all=1`, every `shown` item of
    the page), or reopen one (`reopen`)."""
    svc = services()
    remember_name()
    reopen = request.form.get("reopen", "")
    if reopen:
        try:
            svc.history.reopen(reopen)
            flash("Marked as not handled.", "success")
        except FrontdeskError:
            flash("That item no longer exists.", "error")
        return back(url_for("inbox.index"))
    field = "shown" if request.form.get("all") == "1" else "id"
    ids = [i for i in request.form.getlist(field) if i][:500]
    if not ids:
        flash("Nothing was ticked.", "warning")
        return back(url_for("inbox.index"))
    try:
        n = svc.history.mark_handled(ids, by=staff_name())
    except FrontdeskError:
        n = 0
    flash(f"{n} item{'s' if n != 1 else ''} marked as handled.", "success")
    return back(url_for("inbox.index"))


@bp.post("/history/note")
def note() -> Response:
    svc = services()
    remember_name()
    contact_id = request.form.get("contact_id", type=int)
    num = request.form.get("number", "")
    if contact_id is not None and svc.contacts.get(contact_id) is None:
        abort(404)
    try:
        svc.contacts.add_note(
            request.form.get("text", ""),
            staff_name(),
            contact_id=contact_id,
            number="" if contact_id is not None else svc.contacts.normalise(num),
        )
        flash("Note added.", "success")
    except ValidationError:
        flash("Write something in the note first.", "error")
    except FrontdeskError as exc:
        flash(str(exc), "error")
    return back(url_for("contacts.index"))


@bp.post("/history/reply")
def reply() -> Any:
    """Send a text from a timeline. The same rules as the Messages pages: at most 1600
    characters and `sms.max_parts` parts (the SMS service checks); a refused text, or a
    "Count characters" press without script, shows the timeline again with the text kept
    and the problem next to it."""
    from .sms import TEXT_MAX, clean_text

    svc = services()
    sms = sms_service(svc)
    if sms is None:
        abort(404)
    to = svc.contacts.normalise(request.form.get("to", ""))
    text = clean_text(request.form.get("text", ""))[: TEXT_MAX * 2]
    if request.form.get("action") == "preview":
        return _again(text, {})
    if not to:
        flash("Choose a number to send the text to.", "error")
        return back(url_for("contacts.index"))
    try:
        sent = sms.send(to, text)
    except ValidationError as exc:
        problems = {
            p.field: f"{p.value} is not allowed; expected {p.allowed}" for p in exc.problems
        }
        return _again(text, problems, 422)
    except FrontdeskError as exc:
        flash(f"The text was not sent: {exc}", "error")
        return back(url_for("timeline.number", number=to))
    from .sms import answered_words

    answered = getattr(sms, "answered", None)  # a reply answers the texts received
    done = answered(sent, staff_name()) if sent is not None and callable(answered) else 0
    flash(f"Text to {svc.contacts.display(to)} is on its way.{answered_words(done)}", "success")
    return back(url_for("timeline.number", number=to))


def _again(text: str, errors: dict[str, str], status: int = 200) -> Any:
    """The timeline the reply came from (`next`), with the text and its problems."""
    target = urlsplit(request.form.get("next", ""))
    try:
        endpoint, args = current_app.url_map.bind("localhost").match(target.path, method="GET")
    except HTTPException:
        endpoint, args = "", {}
    if endpoint not in ("timeline.contact", "timeline.number"):
        for problem in errors.values():
            flash(f"The text was not sent: {problem}", "error")
        return back(url_for("contacts.index"))
    g.reply_text, g.reply_errors = text, errors
    g.reply_next = target.path + (f"?{target.query}" if target.query else "")
    page = current_app.view_functions[endpoint](**args)
    return (page, status) if isinstance(page, str) else page


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
