"""The dashboard: what Frontdesk knows and does today, as cards features add to.

Only real facts: the business details, what is still to set up, the clock and the disk.
Later features (lines, calls, inbox) add their own cards with registry.add_card.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, render_template, url_for

from firmware_app.services.system import human_bytes, human_duration

from .forms import country_choices
from .registry import Card, add_card, add_nav, registry
from .security import services

if TYPE_CHECKING:
    from firmware_app.services import Services

bp = Blueprint("home", __name__)


def _welcome(svc: Services) -> dict[str, Any]:
    business = svc.settings.get().business
    try:
        local = datetime.now(UTC).astimezone(ZoneInfo(business.timezone))
    except (KeyError, ValueError):
        local = datetime.now(UTC)
    country = next(
        (c.label for c in country_choices() if c.value == business.country), business.country
    )
    return {"business": business, "local_time": local, "country_name": country}


def _checklist(svc: Services) -> dict[str, Any]:
    s = svc.settings.get()
    items: list[dict[str, Any]] = [
        {
            "done": svc.settings.configured,
            "title": "Business details",
            "text": f"{s.business.name}, {s.business.timezone}"
            if svc.settings.configured
            else "Name, timezone and country are not saved yet.",
            "url": url_for("settings.section", name="business"),
        },
        {
            "done": bool(s.business.owner_email),
            "title": "Owner email",
            "text": s.business.owner_email
            or "No address yet: Frontdesk cannot tell you about anything by email.",
            "url": url_for("settings.section", name="business"),
        },
        {
            "done": bool(s.email.smtp_host),
            "title": "Sending email",
            "text": f"Through {s.email.smtp_host}"
            if s.email.smtp_host
            else "No mail server yet: voicemail, missed calls, texts and faxes stay on this box.",
            "url": url_for("settings.section", name="email"),
        },
        # A reminder, never ticked: only the items above count as to-dos.
        {
            "done": None,
            "title": "Backup",
            "text": "Download a copy of the settings after changing them.",
            "url": url_for("backup.index"),
        },
    ]
    todo = sum(1 for i in items if i["done"] is False)
    return {"items": items, "todo": todo}


def _system(svc: Services) -> dict[str, Any]:
    system = svc.system
    disk = system.disk()
    return {
        "version": system.version,
        "uptime": human_duration(system.uptime()),
        "clock": system.clock_sync(),
        "disk": disk,
        "disk_free": human_bytes(disk.free) if disk else "",
        "disk_percent": round(disk.free_fraction * 100) if disk else 0,
    }


@bp.get("/")
def index() -> str:
    svc = services()
    cards = [
        (card, card.context(svc) if card.context else {}) for card in registry().visible_cards(svc)
    ]
    return render_template("home.html", cards=cards)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav(app, "Home", "home.index", 0, prefix="/")
    add_card(app, Card("cards/welcome.html", 0, _welcome))
    add_card(app, Card("cards/checklist.html", 10, _checklist))
    add_card(app, Card("cards/system.html", 90, _system))
