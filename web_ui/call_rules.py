"""Call rules page: allow (VIP) and block lists, withheld numbers, screening, ringing, the
office phone, putting calls through, and the key menus per mode (key -> ring a staff group,
voicemail box, message, repeat). One form; a save stores all of it or nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for

from firmware_app import numbers
from firmware_app.errors import SettingsError
from firmware_app.settings.routing import Rules

from .forms import parse_section_form, section_fields
from .registry import add_section_page
from .security import services
from .table_forms import Errors, action, apply_action, map_problems, message, rows

log = logging.getLogger(__name__)

bp = Blueprint("rules", __name__, url_prefix="/hours/rules")

MODES = {
    "open": "While open",
    "closed": "While closed",
    "holiday": "On public holidays (else the closed menu)",
    "closure": "During closures (else the closed menu)",
}
ACTIONS = {
    "ring_staff": "Ring a staff group",
    "voicemail": "Take a voicemail",
    "message": "Play a message",
    "repeat": "Say the menu again",
}
KEYS = [*"1234567890", "*", "#"]
OPTION_LABELS = {
    "digit": "Key",
    "action": "Does",
    "target": "Group, box or message",
    "label": "Said as",
    "email_to": "Email to",
}
_MENU_PROBLEM = re.compile(r"^(?:rules\.)?menus\[(\d+)\]\.options\[(\d+)\]\.(\w+)$")


def _menus_from_settings(rules: Rules) -> dict[str, list[dict[str, str]]]:
    menus: dict[str, list[dict[str, str]]] = {m: [] for m in MODES}
    for menu in rules.menus:
        menus[menu.mode] = [
            {**dataclasses.asdict(o), "email_to": ", ".join(o.email_to)} for o in menu.options
        ]
    return menus


def _addresses(text: str) -> list[str]:
    """The "Email to" cell: addresses separated by commas, semicolons or spaces."""
    return [a for a in re.split(r"[\s,;]+", text) if a]


def _menus_from_form() -> dict[str, list[dict[str, str]]]:
    return {
        mode: [
            {k: str(r.get(k, "")).strip() for k in OPTION_LABELS}
            for r in rows(request.form, f"menu_{mode}")
        ]
        for mode in MODES
    }


def _flagged(contact: Any, region: str) -> dict[str, Any]:
    """A contact marked VIP or blocked, for the lists beside the allow and block lists."""
    return {
        "id": contact.id,
        "title": contact.title,
        "numbers": [numbers.display(n, region) for n in contact.numbers],
    }


def _page(
    menus: dict[str, list[dict[str, str]]],
    errors: Errors | None = None,
    posted: Any = None,
    unsaved: bool = False,
) -> Any:
    errors = errors or Errors()
    current = services().settings.get().rules
    by_field = {k.removeprefix("f-"): v for k, v in errors.by_id.items()}
    views = [v for v in section_fields(Rules, current, posted, by_field) if v.name != "menus"]
    s = services().settings.get()
    groups = sorted({g for m in s.staff.members for g in m.groups})
    contacts = services().contacts.all()
    region = s.business.country or "US"
    return render_template(
        "rules/index.html",
        fields=views,
        menus=menus,
        modes=MODES,
        actions=ACTIONS,
        keys=KEYS,
        groups=groups,
        vip_contacts=[_flagged(c, region) for c in contacts if c.vip],
        blocked_contacts=[_flagged(c, region) for c in contacts if c.blocked],
        errors=errors,
        unsaved=unsaved,
    )


@bp.get("/")
def index() -> Any:
    return _page(_menus_from_settings(services().settings.get().rules))


@bp.post("/")
def save() -> Any:
    menus = _menus_from_form()
    verb, table, index = action(request.form)
    mode = table.removeprefix("menu_")
    if verb != "save" and mode in MODES:
        blank = {"digit": "", "action": "ring_staff", "target": "", "label": "", "email_to": ""}
        if verb == "add":
            used = {o["digit"] for o in menus[mode]}
            blank["digit"] = next((k for k in KEYS if k not in used), "")
        menus[mode] = apply_action(menus[mode], verb, index, blank)
        return _page(menus, posted=request.form, unsaved=True)
    current = services().settings.get().rules
    data = parse_section_form(Rules, current, request.form)
    order = [m for m in MODES if menus[m]]
    data["menus"] = [
        {"mode": m, "options": [{**o, "email_to": _addresses(o["email_to"])} for o in menus[m]]}
        for m in order
    ]
    errors = Errors()
    try:
        changes = services().settings.save_section("rules", data)
    except SettingsError as exc:
        labels = {f.name: f.metadata.get("label", f.name) for f in dataclasses.fields(Rules)}
        rest = []
        for p in exc.problems:
            m = _MENU_PROBLEM.match(p.field)
            if m and int(m.group(1)) < len(order):
                menu_mode, j, column = order[int(m.group(1))], int(m.group(2)), m.group(3)
                label = f"{MODES[menu_mode].split(' (')[0]}, option {j + 1}, "
                label += OPTION_LABELS.get(column, column)
                errors.add(f"f-menu_{menu_mode}-{j}-{column}", message(label, p))
            else:
                rest.append(p)
        map_problems(
            rest, errors, tables={}, fields={n: (f"f-{n}", lab) for n, lab in labels.items()}
        )
        log.info("call rules not saved: %d problem(s)", len(errors))
        return _page(menus, errors, posted=request.form), 422
    flash(
        f"Call rules saved ({len(changes)} change{'s' if len(changes) != 1 else ''})."
        if changes
        else "Call rules: nothing changed.",
        "success" if changes else "info",
    )
    return redirect(url_for("rules.index"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_section_page(app, "rules", "rules.index")
