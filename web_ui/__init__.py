"""The owner's web page: Flask app factory. Pages call the services facade only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify

if TYPE_CHECKING:
    from firmware_app.services import Services


def create_app(services: Services, test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(test_config or {})
    app.extensions["frontdesk"] = services

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok", uptime=round(services.uptime, 1))

    return app
