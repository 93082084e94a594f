"""Email pages: mail server settings with provider presets and a test email, the daily
summary and warnings, the outbox (retry, delete), and in `frontdesk demo` a mailbox that
shows what the demo's mail sink received. Pages call `services().notify` only.
The saved password is never put back into a page.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from firmware_app.errors import FieldProblem, SettingsError
from firmware_app.services.notify.prefs import NotifyPrefs
from firmware_app.services.notify.service import HOLD_MAX, HOLD_WITHOUT_SERVER
from firmware_app.settings.model import Email
from firmware_app.settings.schema import from_dict

from .api import api_blueprint, api_error, register_api
from .forms import FieldView, field_errors, parse_section_form, section_fields
from .registry import Card, add_card, add_nav, add_section_page
from .security import services

if TYPE_CHECKING:
    from firmware_app.services import Services
    from firmware_app.services.notify import OutboxEntry, TestResult

log = logging.getLogger(__name__)

bp = Blueprint("email", __name__, url_prefix="/email")
demo_bp = Blueprint("demo_mail", __name__, url_prefix="/demo-mail")

STATES = ("queued", "sending", "failed", "sent")
STATE_WORDS = {
    "queued": "Waiting",
    "sending": "Sending",
    "failed": "Failed",
    "sent": "Sent",
}
KIND_WORDS = {
    "voicemail": "Voicemail",
    "missed_call": "Missed call",
    "sms": "Text message",
    "fax": "Fax",
    "test": "Test",
    "digest": "Daily summary",
    "alert": "Warning",
}


@dataclass(frozen=True, slots=True)
class Preset:
    """Mail server values of a well-known provider; `note` tells what else is needed."""

    key: str
    label: str
    host: str
    port: int
    security: str
    note: str


PRESETS: tuple[Preset, ...] = (
    Preset(
        "gmail",
        "Gmail or Google Workspace",
        "smtp.gmail.com",
        587,
        "starttls",
        "User name: the full Gmail address. Password: an app password (Google Account, "
        "Security, 2-Step Verification, App passwords), not the normal one.",
    ),
    Preset(
        "outlook",
        "Outlook.com or Hotmail",
        "smtp-mail.outlook.com",
        587,
        "starttls",
        "User name: the full address. Accounts with two-step verification need an app password.",
    ),
    Preset(
        "office365",
        "Microsoft 365 (work or school)",
        "smtp.office365.com",
        587,
        "starttls",
        "User name: the full address. Your administrator may need to turn on "
        "“Authenticated SMTP” for this mailbox.",
    ),
    Preset(
        "fastmail",
        "Fastmail",
        "smtp.fastmail.com",
        465,
        "tls",
        "User name: the full address. Password: an app password (Settings, Privacy & "
        "Security, App passwords).",
    ),
    Preset(
        "icloud",
        "iCloud Mail",
        "smtp.mail.me.com",
        587,
        "starttls",
        "User name: the full iCloud address. Password: an app-specific password from "
        "account.apple.com. Send as: your iCloud address.",
    ),
    Preset(
        "yahoo",
        "Yahoo Mail",
        "smtp.mail.yahoo.com",
        465,
        "tls",
        "User name: the full address. Password: an app password (Account security, "
        "Generate app password).",
    ),
    Preset(
        "other",
        "Another provider",
        "",
        587,
        "starttls",
        "Your provider's help pages name the SMTP server. Port 587 with STARTTLS works "
        "almost everywhere; some use 465 with TLS.",
    ),
)
PRESET_BY_KEY = {p.key: p for p in PRESETS}

SERVER_FIELDS = (
    "smtp_host",
    "smtp_port",
    "security",
    "username",
    "password",
    "from_address",
    "reply_to",
)
RECIPIENT_FIELDS = ("voicemail_to", "missed_call_to", "sms_to", "fax_to")


# -- helpers -----------------------------------------------------------------------------------


def _zone(svc: Services) -> ZoneInfo:
    try:
        return ZoneInfo(svc.settings.get().business.timezone)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


@bp.app_template_filter("local_time")
def local_time(value: datetime | float | None) -> str:
    """A time in the business timezone, the way the pages show times."""
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value).astimezone()
    local = value.astimezone(_zone(services()))
    return f"{local:%a %d %b, %H:%M} {local.tzname()}"


def _labels(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("label", f.name) for f in dataclasses.fields(cls)}


def _groups(views: list[FieldView]) -> list[tuple[str, str, list[FieldView]]]:
    """The form's fields in fieldsets; fields added to the model later land in "More"."""
    by_name = {v.name: v for v in views}
    server = [by_name.pop(n) for n in SERVER_FIELDS if n in by_name]
    people = [by_name.pop(n) for n in RECIPIENT_FIELDS if n in by_name]
    for v in people:
        v.attrs.setdefault("placeholder", "Empty: the owner email")
    return [
        ("server", "Mail server", server),
        ("people", "Who gets what", people),
        ("more", "More", list(by_name.values())),
    ]


def _secrets(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("secret"))


def _validate(cls: type, data: dict[str, Any]) -> tuple[Any, list[FieldProblem]]:
    problems: list[FieldProblem] = []
    value = from_dict(cls, data, "", problems)
    return value, problems


def _render_settings(
    *,
    posted: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    other: list[str] | None = None,
    prefs_posted: dict[str, str] | None = None,
    prefs_errors: dict[str, str] | None = None,
    test: TestResult | None = None,
    test_to: str = "",
    preset: Preset | None = None,
    status: int = 200,
) -> Any:
    svc = services()
    current = svc.settings.get()
    views = section_fields(Email, current.email, posted, errors or {})
    for v in views:
        if v.name == "web_url" and svc.notify.page_url:
            v.attrs.setdefault("placeholder", f"Empty: {svc.notify.page_url}")
    prefs = svc.notify.prefs.get()
    prefs_views = section_fields(NotifyPrefs, prefs, prefs_posted, prefs_errors or {})
    body = render_template(
        "email/settings.html",
        groups=_groups(views),
        fields=views,
        other_errors=other or [],
        error_count=len(errors or {}) + len(other or []),
        prefs_fields=prefs_views,
        prefs_error_count=len(prefs_errors or {}),
        presets=PRESETS,
        preset=preset,
        test=test,
        test_to=test_to or current.business.owner_email,
        status=svc.notify.status(),
    )
    return body, status


# -- the settings page -------------------------------------------------------------------------


@bp.get("/")
def settings() -> Any:
    # ?preset=gmail: the provider's server, port and encryption filled in, not saved yet
    # (the no-script path of the provider picker; with script it fills the fields at once).
    preset = PRESET_BY_KEY.get(request.args.get("preset", ""))
    if preset is None:
        return _render_settings()
    posted = {"smtp_port": str(preset.port), "security": preset.security}
    if preset.host:
        posted["smtp_host"] = preset.host
    return _render_settings(posted=posted, preset=preset)


@bp.post("/")
def save() -> Any:
    svc = services()
    action = request.form.get("action", "save")
    current = svc.settings.get().email
    secrets = _secrets(Email)
    kept = {k: v for k, v in request.form.items() if k not in secrets}
    test_to = request.form.get("test_to", "").strip()

    data = parse_section_form(Email, current, request.form)
    new_host = str(data.get("smtp_host", "")).strip().casefold()
    if (
        new_host != current.smtp_host.strip().casefold()
        and current.password
        and not request.form.get("password")
        and not request.form.get("password__clear")
    ):
        # The saved password belongs to the old server: never send it to another one.
        if not str(data.get("username", "")).strip():
            data["password"] = ""  # no login on the new server: nothing to keep
        elif new_host:
            log.info("email settings not saved: a new mail server needs its password typed")
            errors = {
                "password": "Password: the mail server changed, so type its password again "
                "(the saved one is never sent to another server)."
            }
            return _render_settings(posted=kept, errors=errors, test_to=test_to, status=422)
    try:
        changes = svc.settings.save_section("email", data)
    except SettingsError as exc:
        errors, other = field_errors(exc.problems, _labels(Email), secrets)
        log.info("email settings not saved: %d problem(s)", len(exc.problems))
        return _render_settings(
            posted=kept, errors=errors, other=other, test_to=test_to, status=422
        )
    if action == "test":
        result = svc.notify.send_test(test_to)
        log.info("test email from the settings page: %s", result.answer)
        if changes:
            flash(f"Email saved ({len(changes)} change{'s' * (len(changes) != 1)}).", "success")
        return _render_settings(test=result, test_to=test_to, status=200 if result.ok else 422)
    if changes:
        flash(
            f"Email saved ({len(changes)} change{'s' * (len(changes) != 1)}). "
            "Waiting emails are tried again now.",
            "success",
        )
    else:
        flash("Email: nothing changed.", "info")
    return redirect(url_for("email.settings"))


@bp.post("/summary")
def save_prefs() -> Any:
    notify = services().notify
    current = notify.prefs.get()
    data = parse_section_form(NotifyPrefs, current, request.form)
    try:
        changes = notify.prefs.save(data)
    except SettingsError as exc:
        errors, _ = field_errors(exc.problems, _labels(NotifyPrefs))
        posted = dict(request.form.items())
        return _render_settings(prefs_posted=posted, prefs_errors=errors, status=422)
    if changes:
        flash("Summary and warnings saved.", "success")
    else:
        flash("Summary and warnings: nothing changed.", "info")
    return redirect(url_for("email.settings") + "#summary")


# -- the outbox --------------------------------------------------------------------------------


@bp.get("/outbox")
def outbox() -> Any:
    svc = services()
    state = request.args.get("state", "")
    if state not in STATES:
        state = ""
    entries = svc.notify.messages(100, state or None)
    return render_template(
        "email/outbox.html",
        entries=entries,
        state=state,
        states=STATES,
        state_words=STATE_WORDS,
        kind_words=KIND_WORDS,
        status=svc.notify.status(),
        hold_days=HOLD_WITHOUT_SERVER.days,
        hold_max=HOLD_MAX,
        incidents=svc.alerts.open_incidents(),
    )


@bp.post("/outbox/<int:msg_id>/retry")
def retry(msg_id: int) -> Any:
    if services().notify.retry(msg_id):
        flash("The email is being sent again.", "success")
    else:
        flash("That email was already sent or deleted.", "info")
    return redirect(url_for("email.outbox"))


@bp.post("/outbox/<int:msg_id>/delete")
def delete(msg_id: int) -> Any:
    if services().notify.delete(msg_id):
        flash("The email was deleted from the outbox; it will not be sent.", "success")
    else:
        flash("That email is being sent right now or was already deleted.", "info")
    return redirect(url_for("email.outbox"))


@bp.post("/outbox/retry-all")
def retry_all() -> Any:
    count = services().notify.retry_all()
    if count:
        flash(f"{count} email{'s are' if count != 1 else ' is'} being sent again.", "success")
    else:
        flash("No email was waiting.", "info")
    return redirect(url_for("email.outbox"))


# -- the demo mailbox --------------------------------------------------------------------------

_HTML_FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _sink() -> Any:
    sink = services().extra.get("demo_mail")
    if sink is None:
        abort(404)
    return sink


def _demo_message(key: str) -> EmailMessage:
    msg = _sink().message(key)
    if msg is None:
        abort(404)
    return msg  # type: ignore[no-any-return]


def _text_of(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body((subtype,))
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        return part.get_payload(decode=True).decode("utf-8", "replace")  # type: ignore[union-attr]


@demo_bp.get("/")
def index() -> Any:
    sink = _sink()
    return render_template("email/demo_list.html", received=sink.received(100), sink=sink)


@demo_bp.get("/<key>")
def message(key: str) -> Any:
    msg = _demo_message(key)
    attachments = [
        {
            "n": n,
            "name": part.get_filename() or f"attachment-{n}",
            "type": part.get_content_type(),
            "size": len(part.get_payload(decode=True) or b""),
        }
        for n, part in enumerate(msg.iter_attachments())
    ]
    headers = [
        (name, str(msg[name]))
        for name in ("From", "To", "Reply-To", "Date", "Message-ID", "X-Frontdesk-Kind")
        if msg[name]
    ]
    return render_template(
        "email/demo_message.html",
        key=key,
        subject=str(msg["Subject"] or "(no subject)"),
        headers=headers,
        text=_text_of(msg, "plain"),
        html=_text_of(msg, "html"),
        attachments=attachments,
    )


@demo_bp.get("/<key>/html")
def html(key: str) -> Response:
    """The HTML part alone, for a sandboxed frame: no script, no network, no forms."""
    body = _text_of(_demo_message(key), "html")
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _HTML_FRAME_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@demo_bp.get("/<key>/part/<int:n>")
def attachment(key: str, n: int) -> Response:
    parts = list(_demo_message(key).iter_attachments())
    if not 0 <= n < len(parts):
        abort(404)
    part = parts[n]
    name = _SAFE_NAME.sub("-", part.get_filename() or "").strip("-.") or f"attachment-{n}"
    response = Response(part.get_payload(decode=True) or b"", mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# -- dashboard card and API --------------------------------------------------------------------


def _card(svc: Services) -> dict[str, Any]:
    status = svc.notify.status()
    return {
        "status": status,
        "failing": status.retrying + status.counts.get("failed", 0),
        "incidents": svc.alerts.open_incidents(),
    }


api = api_blueprint("api_email", __name__, "/outbox")


def _entry_json(e: OutboxEntry) -> dict[str, Any]:
    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t else None

    return {
        "id": e.id,
        "kind": e.kind,
        "to": list(e.to),
        "subject": e.subject,
        "state": e.state,
        "created": iso(e.created),
        "attempts": e.attempts,
        "next_attempt": iso(e.next_attempt),
        "last_attempt": iso(e.last_attempt),
        "last_error": e.last_error,
        "sent_at": iso(e.sent_at),
        "message_id": e.message_id,
        "attachments": list(e.attachments),
        "rcpt": list(e.rcpt),
        "copy_of": e.copy_of,
    }


@api.get("")
def api_outbox() -> Any:
    notify = services().notify
    state = request.args.get("state") or None
    if state is not None and state not in STATES:
        return api_error(400, f"state must be one of {', '.join(STATES)}, not {state!r}")
    try:
        limit = int(request.args.get("limit", "50"))
        before = int(request.args["before"]) if request.args.get("before") else None
    except ValueError:
        return api_error(400, "limit and before must be whole numbers")
    if not 1 <= limit <= 500:
        return api_error(400, "limit must be from 1 to 500")
    status = notify.status()
    return jsonify(
        configured=status.configured,
        running=status.running,
        counts=status.counts,
        retrying=status.retrying,
        next_attempt=status.next_attempt.isoformat() if status.next_attempt else None,
        last_error=status.last_error,
        last_error_at=status.last_error_at.isoformat() if status.last_error_at else None,
        last_sent_at=status.last_sent_at.isoformat() if status.last_sent_at else None,
        messages=[_entry_json(e) for e in notify.messages(limit, state, before)],
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_api(app, api)
    add_section_page(app, "email", "email.settings")
    add_section_page(app, "notifications", "email.settings")  # summary and warnings: same page
    add_nav(app, "Email", "email.outbox", 70, prefix="/email")
    add_card(app, Card("email/card.html", 30, _card))
    if app.extensions["frontdesk"].extra.get("demo_mail") is not None:  # `frontdesk demo` only
        app.register_blueprint(demo_bp)
        add_nav(app, "Demo mailbox", "demo_mail.index", 95, prefix="/demo-mail")
