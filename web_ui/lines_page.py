"""The Lines page: each modem line with its model, capabilities, state, GSM signal, the SIM
card's balance (USSD check, run from here too) and the last problem; refreshes itself
(static/lines.js, no inline script). In the demo, a form rings the simulated analog line.
Also `GET /api/v1/lines`.

Reads `services.extra["lines"]` (firmware_app.services.lines.LinesService) and the SMS
service's balance checks (firmware_app.services.sms.SmsService).
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


def _sms() -> Any:
    return getattr(services(), "sms", None)


def balance_view(sms: Any, line: str) -> dict[str, Any]:
    """What a GSM line's card says about its SIM card's balance."""
    from .sms import when_text

    last = sms.balance(line)
    return {
        "last": last,
        "when": when_text(last.at) if last is not None else "",
        "pending": sms.balance_pending(line),
        "low": sms.low_balance(last),
    }


def _view() -> dict[str, Any]:
    service = _lines_service()
    lines = service.statuses() if service is not None else []
    sms = _sms()
    settings = services().settings.get().sms
    balances = {}
    if sms is not None:
        balances = {ln.name: balance_view(sms, ln.name) for ln in lines if ln.kind == "gsm"}
    return {
        "lines": lines,
        "states": STATE_WORDS,
        "demo": bool(service is not None and service.demo),
        "now": datetime.now(UTC),
        "balances": balances,
        "ussd_code": settings.ussd_code,
        "ussd_hours": settings.ussd_interval_hours,
        "low_balance": settings.low_balance,
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


@bp.post("/<name>/balance")
def check_balance(name: str) -> Response:
    """Ask the network for this line's SIM card balance; the card shows the answer."""
    service, sms = _lines_service(), _sms()
    known = service is not None and any(
        ln.name == name and ln.kind == "gsm" for ln in service.statuses()
    )
    if sms is None or not known:
        flash(f"{name} is not a mobile (GSM) line: it has no SIM card balance.", "error")
    elif not services().settings.get().sms.ussd_code:
        flash("No balance check code is set: Settings, Text messages, Balance check code.", "error")
    else:
        sms.check_balance(name)
        flash(f"Asking the network for the balance of {name}; it shows here when it comes.", "info")
    return redirect(url_for("lines.index") + f"#line-{name}")


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
