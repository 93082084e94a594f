"""Settings pages: an index of sections, one generic page per section, API tokens.

Any section of the settings model renders from its dataclass fields (see forms.py); a
feature may register its own page for a section instead (registry.add_section_page). A save
validates the whole section and stores all of it or nothing, showing errors inline.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for

from firmware_app.errors import SettingsError, ValidationError
from firmware_app.settings.model import SECTIONS

from .forms import field_errors, parse_section_form, section_fields
from .registry import add_nav, registry
from .security import services

log = logging.getLogger(__name__)

bp = Blueprint("settings", __name__, url_prefix="/settings")

# Titles and one-line descriptions of the sections known today; others get a title made
# from their name and a summary made from their field labels.
SECTION_TITLES: dict[str, tuple[str, str]] = {
    "business": ("Business", "Name, timezone, country and the owner's email address."),
    "email": ("Email", "The mail server, and who gets voicemail, missed calls, texts and faxes."),
    "hours": ("Opening hours", "When the office is open, day by day, and special dates."),
    "holidays": ("Holidays and closures", "Public holidays and one-off closed periods."),
    "override": ("Open or closed now", "Open or close the office by hand until a set time."),
    "staff": ("Staff", "Who answers, their numbers, and when they are on duty."),
    "lines": ("Phone lines", "SIM PIN, the line's country, rings before answering, caller ID."),
    "rules": ("Call rules", "Allowed and blocked numbers, screening, ringing and menus."),
    "mqtt": ("MQTT", "Events out to an MQTT broker and Home Assistant, and whether it is up."),
    "notifications": (
        "Notifications",
        "The daily summary, and warnings when something goes wrong or is fixed.",
    ),
    "calls": ("Calls", "Longest voicemail, silence at its end, screening, texting missed callers."),
    "greetings": ("Greetings", "What callers hear, and the voice that speaks it."),
    "forwarding": (
        "Forwarding",
        "Forwarding by the mobile network, putting calls through, call recordings.",
    ),
    "sms": ("Text messages", "Answers to texts after hours, the line that sends, SIM balance."),
}


def section_title(name: str) -> str:
    return SECTION_TITLES.get(name, (name.replace("_", " ").capitalize(), ""))[0]


def section_summary(name: str) -> str:
    if name in SECTION_TITLES:
        return SECTION_TITLES[name][1]
    labels = [f.metadata.get("label", f.name) for f in dataclasses.fields(SECTIONS[name])]
    return ", ".join(labels[:4]) + ("…" if len(labels) > 4 else "")


def section_url(name: str) -> str:
    custom = registry().section_pages.get(name)
    return url_for(custom) if custom else url_for("settings.section", name=name)


def _labels(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("label", f.name) for f in dataclasses.fields(cls)}


@bp.get("/")
def index() -> Any:
    sections = [
        {"name": n, "title": section_title(n), "summary": section_summary(n), "url": section_url(n)}
        for n in SECTIONS
    ]
    return render_template(
        "settings/index.html", sections=sections, configured=services().settings.configured
    )


@bp.route("/<name>", methods=["GET", "POST"])
def section(name: str) -> Any:
    if name not in SECTIONS:
        abort(404)
    custom = registry().section_pages.get(name)
    if custom:
        return redirect(url_for(custom))
    svc = services()
    cls = SECTIONS[name]
    current = svc.settings.get().section(name)
    errors: dict[str, str] = {}
    other: list[str] = []
    posted: dict[str, str] | None = None
    if request.method == "POST":
        data = parse_section_form(cls, current, request.form)
        try:
            changes = svc.settings.save_section(name, data)
        except SettingsError as exc:
            secrets = frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("secret"))
            errors, other = field_errors(exc.problems, _labels(cls), secrets)
            posted = {k: v for k, v in request.form.items() if k not in secrets}
            log.info("settings %s not saved: %d problem(s)", name, len(exc.problems))
        else:
            if changes:
                flash(
                    f"{section_title(name)} saved ({len(changes)} change"
                    f"{'s' if len(changes) != 1 else ''}).",
                    "success",
                )
            else:
                flash(f"{section_title(name)}: nothing changed.", "info")
            return redirect(url_for("settings.section", name=name))
    views = section_fields(cls, current, posted, errors)
    return render_template(
        "settings/section.html",
        name=name,
        title=section_title(name),
        summary=section_summary(name),
        fields=views,
        other_errors=other,
        error_count=len(errors) + len(other),
        sections=[(n, section_title(n), section_url(n)) for n in SECTIONS],
    ), (422 if errors or other else 200)


@bp.route("/api-tokens", methods=["GET", "POST"])
def tokens() -> Any:
    auth = services().auth
    error = ""
    new_secret = ""
    new_name = ""
    if request.method == "POST":
        new_name = request.form.get("name", "")
        try:
            token, new_secret = auth.create_token(new_name)
        except ValidationError as exc:
            error = f"Name: expected {exc.problems[0].allowed}."
        else:
            new_name = token.name
    return render_template(
        "settings/tokens.html",
        tokens=auth.list_tokens(),
        error=error,
        new_secret=new_secret,
        new_name=new_name,
        sections=[(n, section_title(n), section_url(n)) for n in SECTIONS],
    ), (422 if error else 200)


@bp.post("/api-tokens/<int:token_id>/revoke")
def revoke_token(token_id: int) -> Any:
    if services().auth.revoke_token(token_id):
        flash("API token revoked: programs using it can no longer get in.", "success")
    else:
        flash("That API token was already revoked.", "info")
    return redirect(url_for("settings.tokens"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav(app, "Settings", "settings.index", 80, prefix="/settings")
