"""Who gets in: first-run redirect, login required by default, CSRF, security headers.

Every endpoint needs a logged-in owner unless its view is marked `@public`; API blueprints
check bearer tokens instead (see api.py). Nothing here logs a password or a cookie.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app, g, has_request_context, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from firmware_app.services import Services

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
csrf = CSRFProtect()

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SESSION_KEY = "owner"  # the password epoch the login was made under
SESSION_ID = "sid"  # the server-side session (services.auth); logout removes it
API_BLUEPRINTS = "frontdesk.api_blueprints"


def services() -> Services:
    """The services facade of the running app: what every page calls."""
    svc: Services = current_app.extensions["frontdesk"]
    return svc


def public(view: F) -> F:
    """Mark a view as reachable without logging in (login, setup, health)."""
    view._frontdesk_public = True  # type: ignore[attr-defined]
    return view


def is_public(endpoint: str | None) -> bool:
    if endpoint is None:
        return True  # 404 and 405 pages
    if endpoint == "static":
        return True
    view = current_app.view_functions.get(endpoint)
    return bool(getattr(view, "_frontdesk_public", False))


def logged_in() -> bool:
    cached = g.get("logged_in")
    if cached is None:
        cached = services().auth.session_valid(session.get(SESSION_KEY), session.get(SESSION_ID))
        g.logged_in = cached
    return bool(cached)


def log_in() -> None:
    auth = services().auth
    auth.end_session(session.get(SESSION_ID))  # the session it replaces, if any
    session.clear()  # a fresh session: nothing carried over from before the login
    session[SESSION_KEY] = auth.session_epoch
    session[SESSION_ID] = auth.start_session()
    session.permanent = True
    g.logged_in = True


def log_out() -> None:
    """End this login on the server too: a copy of the cookie no longer works."""
    services().auth.end_session(session.get(SESSION_ID))
    session.clear()
    g.logged_in = False


def safe_next(target: str | None) -> str | None:
    """A local path to return to after login, or None (never another site, and never a
    control character: CR/LF in a Location header would be a 500, not a redirect)."""
    if not target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target:
        return None
    return target


def _gate() -> Response | None:
    endpoint = request.endpoint
    if is_public(endpoint):
        return None
    if request.blueprint in current_app.extensions[API_BLUEPRINTS]:
        return None  # API blueprints check a bearer token instead (api.py)
    auth = services().auth
    if not auth.has_password:
        return redirect(url_for("auth.setup"))
    if not logged_in():
        nxt = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("auth.login", next=nxt))
    return None


def _headers(response: Response) -> Response:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.endpoint != "static" and "Cache-Control" not in h:
        # Pages hold the owner's data: never from a shared cache or the back button after logout.
        h["Cache-Control"] = "no-store"
    return response


class SessionCookies(SecureCookieSessionInterface):
    """Signed session cookies, marked Secure when the request itself came over HTTPS.

    Frontdesk serves plain HTTP; HTTPS comes from a reverse proxy whose X-Forwarded-Proto
    waitress believes only from `web.trusted_proxy`. A Secure cookie on a plain-HTTP page
    would be dropped by the browser and lock the owner out, so the flag follows the request.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config["SESSION_COOKIE_SECURE"]:
            return True
        return has_request_context() and request.is_secure


def config_defaults(services: Services) -> dict[str, Any]:
    """Cookie and CSRF settings; create_app applies them before any test overrides."""
    return {
        "SESSION_COOKIE_NAME": "frontdesk_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # False: Secure is decided per request (SessionCookies), from the request's scheme.
        "SESSION_COOKIE_SECURE": False,
        "PERMANENT_SESSION_LIFETIME": timedelta(days=14),
        # Tokens are bound to the session: a phone left on a form for hours can still save it.
        "WTF_CSRF_TIME_LIMIT": None,
    }


def init_app(app: Flask) -> None:
    auth = app.extensions["frontdesk"].auth
    app.secret_key = app.config.get("SECRET_KEY") or auth.secret_key()
    app.session_interface = SessionCookies()
    app.extensions[API_BLUEPRINTS] = set()
    csrf.init_app(app)
    app.before_request(_gate)
    app.after_request(_headers)
