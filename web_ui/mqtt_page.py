"""Settings > MQTT (`/mqtt/`): the broker settings (the settings model's `mqtt` section) and whether
the broker connection works: connected since when, or the last error, and how many events
went out. The connection itself is the daemon's MQTT worker (services.mqtt).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from firmware_app.errors import SettingsError
from firmware_app.settings.model import SECTIONS

from .api import api_blueprint, register_api
from .forms import field_errors, parse_section_form, section_fields
from .registry import add_section_page
from .security import services
from .settings_pages import section_title, section_url
from .timeline import zone

log = logging.getLogger(__name__)

bp = Blueprint("mqtt", __name__, url_prefix="/mqtt")
api = api_blueprint("api_mqtt", __name__)

TITLE = "MQTT and Home Assistant"
SUMMARY = (
    "Publish calls, texts, faxes, line states and counters to an MQTT broker, with Home "
    "Assistant discovery; optionally take commands (override, send a text)."
)


def connection() -> dict[str, Any]:
    """The MQTT worker's view of the broker, with times in the business timezone."""
    svc = services()
    mqtt = svc.extra.get("mqtt")
    cfg = svc.settings.get().mqtt
    if mqtt is None:  # a web page without the daemon (tests, a CLI tool)
        return {
            "configured": bool(cfg.host),
            "broker": f"{cfg.host}:{cfg.port}" if cfg.host else "",
            "running": False,
            "connected": False,
            "last_error": "",
        }
    status: dict[str, Any] = mqtt.status()
    tz = zone(svc)
    for key in ("connected_at", "last_error_at"):
        at = status.get(key)
        status[key] = (
            datetime.fromtimestamp(at, UTC).astimezone(tz).strftime("%a %d %b %H:%M:%S")
            if at
            else ""
        )
    return status


@bp.route("/", methods=["GET", "POST"])
def settings() -> Any:
    svc = services()
    cls = SECTIONS["mqtt"]
    current = svc.settings.get().mqtt
    errors: dict[str, str] = {}
    other: list[str] = []
    posted: dict[str, str] | None = None
    if request.method == "POST":
        data = parse_section_form(cls, current, request.form)
        try:
            changes = svc.settings.save_section("mqtt", data)
        except SettingsError as exc:
            labels = {f.name: f.metadata.get("label", f.name) for f in dataclasses.fields(cls)}
            secrets = frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("secret"))
            errors, other = field_errors(exc.problems, labels, secrets)
            posted = {k: v for k, v in request.form.items() if k not in secrets}
            log.info("settings mqtt not saved: %d problem(s)", len(exc.problems))
        else:
            n = len(changes)
            flash(
                f"MQTT saved ({n} change{'s' if n != 1 else ''}); connecting again."
                if n
                else "MQTT: nothing changed.",
                "success" if n else "info",
            )
            return redirect(url_for("mqtt.settings"))
    return render_template(
        "mqtt/settings.html",
        name="mqtt",
        title=TITLE,
        summary=SUMMARY,
        fields=section_fields(cls, current, posted, errors),
        other_errors=other,
        error_count=len(errors) + len(other),
        sections=[(n, section_title(n), section_url(n)) for n in SECTIONS],
        status=connection(),
    ), (422 if errors or other else 200)


@api.get("/mqtt")
def api_status() -> Response:
    """The broker connection as JSON (docs/api.md)."""
    return jsonify(connection())


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_api(app, api)
    add_section_page(app, "mqtt", "mqtt.settings")
