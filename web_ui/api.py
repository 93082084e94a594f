"""The JSON API under /api/v1: bearer tokens made on the web page, no cookies, no CSRF.

A feature adds endpoints with its own `api_blueprint(...)`, registered by `register_api`:
every route in such a blueprint requires a valid token, so none can be forgotten.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Flask, g, jsonify, request
from werkzeug.wrappers import Response

from .security import API_BLUEPRINTS, csrf, services

F = TypeVar("F", bound=Callable[..., Any])
PREFIX = "/api/v1"


def api_error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify(error=message, status=status, **extra)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="frontdesk"'
    return response


def _check_token() -> Response | None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return api_error(
            401,
            "send an API token: Authorization: Bearer <token> "
            "(make one on the web page under Settings, API tokens)",
        )
    token = services().auth.verify_token(secret.strip())
    if token is None:
        return api_error(401, "this API token is not valid (revoked or mistyped)")
    g.api_token = token
    return None


def token_required(view: F) -> F:
    """For an API view outside an `api_blueprint`: require a valid bearer token."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refused = _check_token()
        return refused if refused is not None else view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def api_blueprint(name: str, import_name: str, url_prefix: str = "") -> Blueprint:
    """A blueprint for /api/v1<url_prefix>: every route in it needs a bearer token."""
    bp = Blueprint(name, import_name, url_prefix=PREFIX + url_prefix)
    bp.before_request(_check_token)
    return bp


def register_api(app: Flask, bp: Blueprint) -> None:
    """Register an API blueprint: token-checked and CSRF-exempt (it takes no cookies)."""
    app.register_blueprint(bp)
    app.extensions[API_BLUEPRINTS].add(bp.name)
    csrf.exempt(bp)


core = api_blueprint("api", __name__)


@core.get("/status")
def status() -> Response:
    """What the appliance is and whether it is healthy: see docs/api.md."""
    svc = services()
    system = svc.system
    clock = system.clock_sync()
    disk = system.disk()
    business = svc.settings.get().business
    return jsonify(
        version=system.version,
        uptime_s=round(system.uptime(), 1),
        time=datetime.now(UTC).isoformat(timespec="seconds"),
        business={
            "name": business.name,
            "timezone": business.timezone,
            "country": business.country,
        },
        configured=svc.settings.configured,
        clock={"synchronized": clock.synchronized, "source": clock.source},
        disk=None
        if disk is None
        else {"total_bytes": disk.total, "free_bytes": disk.free, "low": disk.low},
        token=g.api_token.name,
        hours=_hours(svc),
    )


def _hours(svc: Any) -> dict[str, Any]:
    """Open or closed now: mode, the sentence, the next change (see docs/api.md)."""
    from .hours import status_json

    return status_json(svc.routing.status())


def init_app(app: Flask) -> None:
    register_api(app, core)
