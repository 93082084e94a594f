"""Backup and restore of the owner's settings as one TOML file.

Restore is two steps: upload (validated; problems listed by field; a summary of every change
shown) and confirm. The uploaded file waits on the server under a random token (it holds the
mail password: it is never sent back to the browser); nothing is stored until the owner
confirms a file that is still valid.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from firmware_app.errors import SettingsError
from firmware_app.settings.model import secret_fields

from .registry import add_nav
from .security import services

log = logging.getLogger(__name__)

bp = Blueprint("backup", __name__, url_prefix="/backup")
MAX_FILE = 512 * 1024
PENDING_SECONDS = 15 * 60
PENDING_MAX = 4


class PendingRestores:
    """Uploaded files waiting for the owner's confirmation: few, short-lived, in memory."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, text: str) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._items[token] = (time.monotonic(), text)
            while len(self._items) > PENDING_MAX:
                self._items.popitem(last=False)
        return token

    def take(self, token: str) -> str | None:
        with self._lock:
            item = self._items.pop(token, None)
        if item is None or time.monotonic() - item[0] > PENDING_SECONDS:
            return None
        return item[1]


def _pending() -> PendingRestores:
    from flask import current_app

    pending: PendingRestores = current_app.extensions["frontdesk_pending_restores"]
    return pending


def _problem_value(field: str, value: Any) -> str:
    """A bad value from an uploaded file, as shown on the page; never a password or a PIN
    (the file may hold the real one with a typo: it must not be echoed back)."""
    section, _, name = field.partition(".")
    if (section, name.split("[", 1)[0]) in secret_fields():
        return "(hidden)"
    return _show(value)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return "(table)"
    if value == "":
        return "(empty)"
    return str(value)


def _read_upload() -> tuple[str | None, str]:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return None, "Settings file: choose the .toml file you downloaded from this page."
    data = upload.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        return None, "Settings file: this file is too large to be a Frontdesk settings file."
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n"), ""
    except UnicodeDecodeError:
        return None, "Settings file: this is not a text file; choose the .toml file."


@bp.get("/")
def index() -> str:
    return render_template("backup/index.html")


@bp.get("/settings.toml")
def download() -> Response:
    secrets = request.args.get("secrets", "1") != "0"
    text = services().settings.export_toml(secrets=secrets)
    plain = "" if secrets else "-without-passwords"
    name = f"frontdesk-settings-{datetime.now():%Y-%m-%d}{plain}.toml"
    log.info("settings backup downloaded from %s", request.remote_addr)
    return Response(
        text,
        mimetype="application/toml",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.post("/restore")
def restore() -> Any:
    text, error = _read_upload()
    if text is None:
        return render_template("backup/index.html", upload_error=error), 422
    try:
        _, changes = services().settings.preview_import(text, "settings file")
    except SettingsError as exc:
        problems = [(p.field, _problem_value(p.field, p.value), p.allowed) for p in exc.problems]
        return render_template(
            "backup/index.html",
            problems=problems,
            upload_error="Settings file: this file cannot be restored; nothing was changed.",
        ), 422
    rows = [(name, _show(old), _show(new)) for name, old, new in changes]
    token = _pending().put(text) if changes else ""
    return render_template("backup/preview.html", changes=rows, token=token)


@bp.post("/restore/confirm")
def confirm() -> Any:
    text = _pending().take(request.form.get("token", ""))
    if text is None:
        flash("That restore has expired or was already used; upload the file again.", "error")
        return redirect(url_for("backup.index"))
    try:
        changes = services().settings.import_toml(text, "settings file")
    except SettingsError as exc:
        problems = [(p.field, _problem_value(p.field, p.value), p.allowed) for p in exc.problems]
        return render_template(
            "backup/index.html",
            problems=problems,
            upload_error="Settings file: this file cannot be restored; nothing was changed.",
        ), 422
    log.info("settings restored from a backup file: %d change(s)", len(changes))
    flash(
        f"Settings restored ({len(changes)} change{'s' if len(changes) != 1 else ''}).", "success"
    )
    return redirect(url_for("settings.index"))


def init_app(app: Flask) -> None:
    app.extensions["frontdesk_pending_restores"] = PendingRestores()
    app.register_blueprint(bp)
    add_nav(app, "Backup", "backup.index", 85, prefix="/backup")
