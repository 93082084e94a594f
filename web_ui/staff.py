"""Staff and rota page: who answers, their mobile numbers (checked and stored in E.164 with
the business's country as the default region), email, groups, and who is on duty when.
Rows are added and removed with plain form buttons; a save stores all of it or nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for

from firmware_app.errors import SettingsError
from firmware_app.settings.model import section_from_dict
from firmware_app.settings.routing import DAY_NAMES, WEEKDAYS

from .registry import add_section_page
from .security import services
from .table_forms import Errors, action, apply_action, map_problems, rows, split_list

log = logging.getLogger(__name__)

bp = Blueprint("staff", __name__, url_prefix="/hours/staff")

MEMBER_LABELS = {"name": "Name", "mobile": "Mobile", "email": "Email", "groups": "Groups"}
ROTA_LABELS = {"name": "Who", "days": "Days", "hours": "Hours"}


def pretty_number(number: str, region: str) -> str:
    """+447700900001 -> +44 7700 900001 for showing; unreadable text comes back as it is."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, region or None)
    except phonenumbers.NumberParseException:
        return number
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL))


def mobile_problem(number: str, region: str) -> tuple[str, str]:
    """(E.164 form, '') for a valid number, else (the text, what is allowed)."""
    import phonenumbers

    allowed = f"a phone number possible in {region or 'its country'}, like +44 7700 900123"
    try:
        parsed = phonenumbers.parse(number, region or None)
    except phonenumbers.NumberParseException:
        return number, allowed
    if not phonenumbers.is_possible_number(parsed):
        return number, allowed
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)), ""


def _draft_from_settings() -> dict[str, Any]:
    s = services().settings.get()
    region = s.business.country
    return {
        "members": [
            {
                "name": m.name,
                "mobile": pretty_number(m.mobile, region) if m.mobile else "",
                "email": m.email,
                "groups": ", ".join(m.groups),
            }
            for m in s.staff.members
        ],
        "rota": [
            {"name": r.name, "days": list(r.days), "hours": ", ".join(r.hours)}
            for r in s.staff.rota
        ],
    }


def _draft_from_form() -> dict[str, Any]:
    form = request.form
    members = [{k: str(r.get(k, "")).strip() for k in MEMBER_LABELS} for r in rows(form, "members")]
    rota = [
        {
            "name": str(r.get("name", "")).strip(),
            "days": [d for d in r.get("days", []) if d in WEEKDAYS],
            "hours": str(r.get("hours", "")).strip(),
        }
        for r in rows(form, "rota", lists=("days",))
    ]
    return {"members": members, "rota": rota}


def _page(draft: dict[str, Any], errors: Errors | None = None, unsaved: bool = False) -> Any:
    return render_template(
        "staff/index.html",
        members=draft["members"],
        rota=draft["rota"],
        names=[m["name"] for m in draft["members"] if m["name"]],
        days=[(d, DAY_NAMES[d][:3]) for d in WEEKDAYS],
        errors=errors or Errors(),
        unsaved=unsaved,
        country=services().settings.get().business.country,
        on_call_when_closed=services().settings.get().rules.on_call_when_closed,
    )


@bp.get("/")
def index() -> Any:
    return _page(_draft_from_settings())


@bp.post("/")
def save() -> Any:
    draft = _draft_from_form()
    verb, table, index = action(request.form)
    if verb != "save" and table in ("members", "rota"):
        blank: dict[str, Any] = (
            {"name": "", "mobile": "", "email": "", "groups": ""}
            if table == "members"
            else {"name": "", "days": list(WEEKDAYS[:5]), "hours": "09:00-17:00"}
        )
        draft[table] = apply_action(draft[table], verb, index, blank)
        return _page(draft, unsaved=True)
    errors = Errors()
    region = services().settings.get().business.country
    members = []
    for i, m in enumerate(draft["members"]):
        mobile = m["mobile"]
        if mobile:
            mobile, allowed = mobile_problem(mobile, region)
            if allowed:
                errors.add(
                    f"f-members-{i}-mobile",
                    f"Staff member {i + 1}, Mobile: “{m['mobile']}” is not allowed. "
                    f"Expected {allowed}.",
                )
        members.append({**m, "mobile": mobile, "groups": split_list(m["groups"])})
    data = {
        "members": members,
        "rota": [{**r, "hours": split_list(r["hours"])} for r in draft["rota"]],
    }
    changes: list[Any] = []
    try:
        if errors:  # report the other problems too; store nothing
            section_from_dict("staff", data)
        else:
            changes = services().settings.save_section("staff", data)
    except SettingsError as exc:
        map_problems(
            exc.problems,
            errors,
            tables={
                "members": ("members", "Staff member", MEMBER_LABELS),
                "rota": ("rota", "Rota row", ROTA_LABELS),
            },
            fields={},
        )
    if errors:
        log.info("staff not saved: %d problem(s)", len(errors))
        return _page(draft, errors), 422
    flash(
        f"Staff saved ({len(changes)} change{'s' if len(changes) != 1 else ''})."
        if changes
        else "Staff: nothing changed.",
        "success" if changes else "info",
    )
    return redirect(url_for("staff.index"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_section_page(app, "staff", "staff.index")
