"""The System page: version, uptime, disk, clock sync and the most recent log lines.

Also puts the clock warning in every page's context: business hours are only right once
the clock is NTP-synchronised (the Pi has no battery-backed clock).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, render_template, request

from firmware_app.services.system import human_bytes, human_duration

from .registry import add_nav
from .security import logged_in, services

bp = Blueprint("system", __name__, url_prefix="/system")

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@bp.get("/")
def index() -> str:
    system = services().system
    level_name = request.args.get("level", "info")
    if level_name not in LEVELS:
        level_name = "info"
    disk = system.disk()
    return render_template(
        "system/index.html",
        version=system.version,
        uptime=human_duration(system.uptime()),
        data_dir=str(system.data_dir),
        data_size=human_bytes(system.data_size()),
        disk=disk,
        disk_free=human_bytes(disk.free) if disk else "",
        disk_total=human_bytes(disk.total) if disk else "",
        disk_percent=round(disk.free_fraction * 100) if disk else 0,
        clock=system.clock_sync(),
        now_utc=datetime.now(UTC),
        logs=system.recent_logs(200, LEVELS[level_name]),
        level=level_name,
        levels=list(LEVELS),
    )


def clock_context() -> dict[str, Any]:
    """`clock_unsynced` for the layout's warning banner (only for a logged-in owner): True
    while the clock is not synchronised, "unknown" while nothing can tell (also a warning:
    business hours depend on it)."""
    if request.endpoint in (None, "static") or not logged_in():
        return {}
    synced = services().system.clock_sync().synchronized
    return {"clock_unsynced": "unknown" if synced is None else not synced}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(clock_context)
    add_nav(app, "System", "system.index", 90, prefix="/system")
