"""The owner's web page: the Flask app factory, its blueprints and the page shell.

Pages call the services facade (app.extensions["frontdesk"]) only, never TinyDB or a modem.
A feature is a module with `init_app(app)` listed in FEATURES: it registers its blueprint,
navigation entry and dashboard cards (see registry.py) and API routes (see api.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify

from . import security
from .registry import KEY as REGISTRY_KEY
from .registry import Registry, registry

if TYPE_CHECKING:
    from firmware_app.services import Services

# Order matters only for error handlers and context processors; the nav has its own order.
FEATURES: tuple[str, ...] = (
    "web_ui.errors",
    "web_ui.auth",
    "web_ui.home",
    "web_ui.settings_pages",
    "web_ui.backup",
    "web_ui.system_page",
    "web_ui.lines_page",
    "web_ui.api",
    "web_ui.hours",
    "web_ui.staff",
    "web_ui.call_rules",
    "web_ui.email_pages",
    "web_ui.media",
    "web_ui.timeline",
    "web_ui.contacts",
    "web_ui.inbox",
    "web_ui.sms",
    "web_ui.fax",
    "web_ui.dashboard",
    "web_ui.greetings",
    "web_ui.calls",
    "web_ui.voicemail",
    "web_ui.mqtt_page",
)

MAX_UPLOAD = 16 * 1024 * 1024


def create_app(services: Services, test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web app around `services`; `test_config` overrides Flask config keys."""
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_UPLOAD,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
        TEMPLATES_AUTO_RELOAD=False,
        **security.config_defaults(services),
    )
    app.config.update(test_config or {})
    app.jinja_env.autoescape = True  # every template, whatever its file name
    app.extensions["frontdesk"] = services
    app.extensions[REGISTRY_KEY] = Registry()
    security.init_app(app)

    @app.get("/healthz")
    @security.public
    def healthz() -> Any:
        return jsonify(status="ok", uptime=round(services.uptime, 1))

    for name in FEATURES:
        importlib.import_module(name).init_app(app)

    @app.context_processor
    def shell() -> dict[str, Any]:
        return {
            "nav_items": registry().nav_items(),
            "business_name": services.settings.get().business.name,
            "logged_in": security.logged_in(),
            "version": services.system.version,
        }

    return app


__all__ = ["FEATURES", "create_app"]
