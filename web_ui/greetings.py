"""Greetings and forwarding pages: every greeting with its words or recording, a preview
player, own text, uploads (CSRF, size cap, checked by content), back to the default; and
what each line can do to put calls through, with the GSM lines' network forwarding.

Calls `services.greetings` and `services.extra["forwarding"]` only.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from firmware_app.errors import SettingsError
from firmware_app.services.greetings import MAX_UPLOAD_BYTES, GreetingError

from .registry import add_nav, add_section_page
from .security import services

log = logging.getLogger(__name__)

bp = Blueprint("greetings", __name__, url_prefix="/greetings")
MODE_WORDS = {"default": "Default text", "text": "Own text", "recording": "Recording"}


def _info(key: str) -> Any:
    try:
        return services().greetings.info(key)
    except KeyError:
        abort(404)


@bp.get("/")
def index() -> str:
    svc = services()
    return render_template(
        "greetings/index.html",
        greetings=svc.greetings.all(),
        modes=MODE_WORDS,
        settings=svc.settings.get().greetings,
        voices=svc.greetings.voices(),
        tts=svc.greetings.tts.available,
    )


@bp.get("/edit")
def edit() -> Any:
    """The greeting's page; with `format=wav`, the greeting itself (the preview player)."""
    key = request.args.get("key", "") or "open"
    info = _info(key)
    if request.args.get("format") == "wav":
        return _wav(key)
    return _edit_page(info)


def _edit_page(info: Any, error: str = "", text: str | None = None, status: int = 200) -> Any:
    svc = services()
    page = render_template(
        "greetings/edit.html",
        g=info,
        modes=MODE_WORDS,
        voices=svc.greetings.voices(),
        error=error,
        text=info.own_text or info.default_text if text is None else text,
        max_mb=MAX_UPLOAD_BYTES // 1_000_000,
        tts=svc.greetings.tts.available,
    )
    return (page, status) if status != 200 else page


@bp.post("/edit")
def save() -> Any:
    key = request.form.get("key", "")
    info = _info(key)
    svc = services()
    action = request.form.get("action", "text")
    try:
        if action == "reset":
            svc.greetings.reset(key)
            flash(f"{info.label}: back to the default text.", "success")
        elif action == "upload":
            upload = request.files.get("recording")
            if upload is None or not upload.filename:
                raise GreetingError("choose a recording to upload (WAV, MP3, OGG or FLAC)")
            data = upload.stream.read(MAX_UPLOAD_BYTES + 1)
            svc.greetings.upload(key, data)
            flash(f"{info.label}: the recording is in use.", "success")
        else:
            svc.greetings.set_text(
                key, request.form.get("text", ""), request.form.get("voice", "").strip()
            )
            flash(f"{info.label}: your text is saved.", "success")
    except GreetingError as exc:
        return _edit_page(info, error=f"Not saved: {exc}.", status=422)
    except SettingsError as exc:
        words = "; ".join(f"{p.field}: {p.allowed}" for p in exc.problems)
        return _edit_page(
            info, error=f"Not saved: {words}.", text=request.form.get("text", ""), status=422
        )
    return redirect(url_for("greetings.index") + f"#g-{key.replace(':', '-')}")


@bp.post("/voice")
def voice() -> Any:
    try:
        speed = int(request.form.get("speed", "150"))
    except ValueError:
        speed = -1
    try:
        services().greetings.set_voice(request.form.get("voice", "").strip(), speed)
    except SettingsError as exc:
        flash("Not saved: " + "; ".join(f"{p.field}: {p.allowed}" for p in exc.problems), "error")
    else:
        flash("Voice saved; greetings are spoken again in the background.", "success")
    return redirect(url_for("greetings.index"))


def _wav(key: str) -> Response:
    data = services().greetings.wav(key)
    response = Response(data, mimetype="audio/wav")
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/forwarding")
def forwarding() -> str:
    svc = services()
    service = svc.extra.get("forwarding")
    s = svc.settings.get()
    return render_template(
        "greetings/forwarding.html",
        abilities=service.abilities() if service is not None else [],
        states=service.states() if service is not None else [],
        target=service.target() if service is not None else ("", 0),
        next_apply=getattr(service, "next_apply", None),
        forwarding=s.forwarding,
        rules=s.rules,
        country=s.business.country,
        example=_dial_example(s),
    )


def _dial_example(s: Any) -> str:
    """How a hook-flash transfer dials the first staff mobile, for the page."""
    from firmware_app.calls.bridge import dial_digits
    from firmware_app.routing.rules import e164

    country = s.business.country
    for member in s.staff.members:
        if member.mobile:
            number = e164(member.mobile, country) or member.mobile
            dialled = dial_digits(number, country, s.forwarding.transfer_prefix)
            return f"{member.name}'s {number} is dialled {dialled}" if dialled else ""
    return ""


@bp.post("/forwarding")
def save_forwarding() -> Any:
    form = request.form
    data = {
        "network": form.get("network") == "1",
        "record_calls": form.get("record_calls") == "1",
    }
    for name in ("no_reply_seconds", "flash_ms", "keep_recordings_days"):
        raw = form.get(name, "").strip()
        data[name] = int(raw) if raw.isdigit() else raw
    if "transfer_prefix" in form:
        data["transfer_prefix"] = form.get("transfer_prefix", "").strip()[:20]
    svc = services()
    current = dict(vars_of(svc.settings.get().forwarding))
    current.update(data)
    try:
        svc.settings.save_section("forwarding", current)
    except SettingsError as exc:
        flash("Not saved: " + "; ".join(str(p) for p in exc.problems), "error")
    else:
        flash("Forwarding saved.", "success")
    return redirect(url_for("greetings.forwarding"))


def vars_of(section: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(section)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav(app, "Greetings", "greetings.index", 45, prefix="/greetings")
    add_section_page(app, "greetings", "greetings.index")
    add_section_page(app, "forwarding", "greetings.forwarding")
