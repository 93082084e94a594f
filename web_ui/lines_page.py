"""The Lines page: each modem line with its model, capabilities, state, GSM signal and the
last problem; refreshes itself (static/lines.js, no inline script). In the demo, a form
rings the simulated analog line. Also `GET /api/v1/lines`.

Reads `services.extra["lines"]` (firmware_app.services.lines.LinesService) only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from firmware_app.errors import FrontdeskError

from .api import api_blueprint, register_api
from .registry import Card, add_card, add_nav
from .security import services

bp = Blueprint("lines", __name__, url_prefix="/lines")
api = api_blueprint("lines_api", __name__)

STATE_WORDS = {
    "starting": ("Starting", ""),
    "idle": ("Ready", "badge-ok"),
    "ringing": ("Ringing", "badge-warning"),
    "in_call": ("In a call", "badge-warning"),
    "down": ("Not working", "badge-warning"),
}


def _lines_service() -> Any:
    return services().extra.get("lines")


def _view() -> dict[str, Any]:
    service = _lines_service()
    lines = service.statuses() if service is not None else []
    return {
        "lines": lines,
        "states": STATE_WORDS,
        "demo": bool(service is not None and service.demo),
        "now": datetime.now(UTC),
    }


@bp.get("/")
def index() -> str:
    return render_template("lines/index.html", **_view())


@bp.get("/list")
def fragment() -> str:
    """The line cards alone, for the page's own refresh."""
    return render_template("lines/_list.html", **_view())


@bp.post("/demo-call")
def demo_call() -> Response:
    service = _lines_service()
    number = request.form.get("number", "").strip()
    name = request.form.get("name", "").strip()[:15] or None
    try:
        if service is None:
            raise FrontdeskError("there are no lines")
        line = service.demo_call(number, name)
    except FrontdeskError as exc:
        flash(f"No call placed: {exc}", "error")
    else:
        flash(f"Ringing {line} with caller ID {number}.", "success")
    return redirect(url_for("lines.index"))


@api.get("/lines")
def api_lines() -> Response:
    """Every line's status (docs/lines.md)."""
    service = _lines_service()
    return jsonify(lines=service.as_dicts() if service is not None else [])


def _card(svc: Any) -> dict[str, Any]:
    service = svc.extra.get("lines")
    return {"lines": service.statuses() if service is not None else [], "states": STATE_WORDS}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_api(app, api)
    add_nav(app, "Lines", "lines.index", 10, prefix="/lines")
    add_card(
        app,
        Card("cards/lines.html", 15, _card, visible=lambda svc: svc.extra.get("lines") is not None),
    )
