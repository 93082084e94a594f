"""Backup and restore of the owner's settings as one TOML file.

Restore is two steps: upload (validated; problems listed by field; a summary of every change
shown) and confirm. Nothing is stored until the owner confirms a file that is still valid.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from firmware_app.errors import SettingsError

from .registry import add_nav
from .security import services

log = logging.getLogger(__name__)

bp = Blueprint("backup", __name__, url_prefix="/backup")
MAX_FILE = 512 * 1024


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
    text = services().settings.export_toml()
    name = f"frontdesk-settings-{datetime.now():%Y-%m-%d}.toml"
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
        problems = [(p.field, _show(p.value), p.allowed) for p in exc.problems]
        return render_template(
            "backup/index.html",
            problems=problems,
            upload_error="Settings file: this file cannot be restored; nothing was changed.",
        ), 422
    rows = [(name, _show(old), _show(new)) for name, old, new in changes]
    digest = hashlib.sha256(text.encode()).hexdigest()
    return render_template("backup/preview.html", changes=rows, text=text, digest=digest)


@bp.post("/restore/confirm")
def confirm() -> Any:
    text = request.form.get("text", "").replace("\r\n", "\n")
    if hashlib.sha256(text.encode()).hexdigest() != request.form.get("digest", ""):
        flash("The file changed on the way; upload it again.", "error")
        return redirect(url_for("backup.index"))
    try:
        changes = services().settings.import_toml(text, "settings file")
    except SettingsError as exc:
        problems = [(p.field, _show(p.value), p.allowed) for p in exc.problems]
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
    app.register_blueprint(bp)
    add_nav(app, "Backup", "backup.index", 85, prefix="/backup")
