"""Friendly error pages (and JSON errors under /api): 400, 403, 404, 405, 413, 429, 500.

A 500 page says something went wrong and that it was logged; it never shows a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from .api import PREFIX, api_error

log = logging.getLogger(__name__)

MESSAGES: dict[int, tuple[str, str]] = {
    400: ("That request was not understood", "Go back, reload the page and try again."),
    403: ("Not allowed", "This page is not available to you."),
    404: ("Page not found", "The address may be mistyped, or the page has moved."),
    405: ("Not allowed that way", "Go back and use the page's buttons."),
    413: ("File too large", "Choose a smaller file and try again."),
    429: ("Too many attempts", "Wait a moment and try again."),
    500: (
        "Something went wrong",
        "The problem was written to the log (System page). "
        "Try again; if it keeps happening, restart Frontdesk.",
    ),
}


def render_error(code: int, title: str | None = None, message: str | None = None) -> Any:
    default_title, default_message = MESSAGES.get(code, ("Error", ""))
    if request.path.startswith(PREFIX + "/") or request.path == PREFIX:
        return api_error(code, message or title or default_title)
    return render_template(
        "errors/error.html",
        code=code,
        title=title or default_title,
        message=message or default_message,
    ), code


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        log.warning("form refused from %s: %s", request.remote_addr, exc.description)
        return render_error(
            400,
            "This form has expired",
            "For your safety each form works only from this web page and for this "
            "login. Go back, reload the page and send it again.",
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        response = render_error(code, None, exc.description if code in (429,) else None)
        return response

    @app.errorhandler(InternalServerError)
    def server_error(exc: InternalServerError) -> Any:
        # Flask has already logged the exception with its traceback (into the System page's log).
        return render_error(500)
