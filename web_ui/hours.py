"""Opening hours pages: the weekly hours, special dates, the override switch, holidays and
closures (with an iCalendar import), the "what happens if someone calls" preview, the
dashboard card and /api/v1/override. Pages go through `services().routing` and the settings
service; every save is validated whole and stores all of it or nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from firmware_app.errors import FieldProblem, SettingsError
from firmware_app.routing import Menu, Plan, when
from firmware_app.settings.model import settings_to_dict
from firmware_app.settings.routing import DAY_NAMES, WEEKDAYS

from .api import api_blueprint, api_error, register_api
from .registry import Card, add_card, add_nav, add_section_page
from .security import services
from .table_forms import Errors, action, apply_action, map_problems, message, rows, split_list

if TYPE_CHECKING:
    from firmware_app.services import Services

log = logging.getLogger(__name__)

bp = Blueprint("hours", __name__, url_prefix="/hours")
api = api_blueprint("api_override", __name__, "/override")

PRESETS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "mon-fri-9-17": ("Mon–Fri 9–17", {d: ["09:00-17:00"] for d in WEEKDAYS[:5]}),
    "mon-fri-8-18": ("Mon–Fri 8–18", {d: ["08:00-18:00"] for d in WEEKDAYS[:5]}),
    "mon-sat-8-18": ("Mon–Sat 8–18", {d: ["08:00-18:00"] for d in WEEKDAYS[:6]}),
    "mon-fri-lunch": (
        "Mon–Fri 9–12:30, 13:30–17",
        {d: ["09:00-12:30", "13:30-17:00"] for d in WEEKDAYS[:5]},
    ),
    "always": ("Always open", {d: ["00:00-24:00"] for d in WEEKDAYS}),
}

OVERRIDE_CHOICES: dict[str, tuple[str, str, str]] = {
    # choice: (state, until, label)
    "closed_next": ("closed", "next_change", "Closed until the next scheduled change"),
    "open_next": ("open", "next_change", "Open until the next scheduled change"),
    "closed_time": ("closed", "time", "Closed until a date and time"),
    "open_time": ("open", "time", "Open until a date and time"),
    "closed_back": ("closed", "switched_back", "Closed until switched back"),
    "open_back": ("open", "switched_back", "Open until switched back"),
    "off": ("off", "next_change", "Back to normal: follow the hours"),
}

CLOSURE_LABELS = {"start": "First day", "end": "Last day", "reason": "Reason", "id": "Id"}
SPECIAL_LABELS = {"date": "Date", "hours": "Open", "note": "Note"}


# -- the weekly hours and special dates ---------------------------------------------------------


def _split(text: str) -> tuple[str, str]:
    start, _, end = text.partition("-")
    return start, "00:00" if end == "24:00" else end


def _draft_from_settings() -> dict[str, Any]:
    h = services().settings.get().hours
    week = {d: [_split(t) for t in getattr(h, d)] for d in WEEKDAYS}
    special = [{"date": s.date, "hours": ", ".join(s.hours), "note": s.note} for s in h.special]
    return {"week": week, "special": special}


def _draft_from_form() -> dict[str, Any]:
    form = request.form
    week = {
        d: [(r.get("from", "").strip(), r.get("to", "").strip()) for r in rows(form, d)]
        for d in WEEKDAYS
    }
    special = [
        {
            "date": r.get("date", "").strip(),
            "hours": r.get("hours", "").strip(),
            "note": r.get("note", "").strip(),
        }
        for r in rows(form, "special")
    ]
    return {"week": week, "special": special}


def _interval(start: str, end: str) -> str:
    if start == end == "00:00":
        return "00:00-24:00"
    return f"{start}-{end}"


def _hours_data(draft: dict[str, Any], errors: Errors) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for day in WEEKDAYS:
        texts = []
        for i, (start, end) in enumerate(draft["week"][day]):
            if not start and not end:
                continue
            if not start or not end:
                anchor = f"f-{day}-{i}-{'from' if not start else 'to'}"
                errors.add(anchor, f"{DAY_NAMES[day]}, hours {i + 1}: give a start and an end.")
                continue
            texts.append(_interval(start, end))
        data[day] = texts
    data["special"] = [
        {"date": s["date"], "hours": split_list(s["hours"]), "note": s["note"]}
        for s in draft["special"]
    ]
    return data


def _hours_problems(problems: list[FieldProblem], errors: Errors) -> None:
    fields = {d: (f"f-{d}", DAY_NAMES[d]) for d in WEEKDAYS}
    fields["special"] = ("f-special", "Special hours")
    map_problems(
        problems,
        errors,
        tables={"special": ("special", "Special date", SPECIAL_LABELS)},
        fields=fields,
    )


def _day_rows(draft: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": d, "name": DAY_NAMES[d], "intervals": draft["week"][d] or []} for d in WEEKDAYS]


def _override_choices() -> dict[str, tuple[str, str, str]]:
    """The override choices, "until the next scheduled change" labelled with what it does
    switched on now: when it ends and, when the hours are in that state already, the hours
    it also covers ("Closed until Mon 17:00, through the opening hours from Mon 09:00")."""
    routing = services().routing
    out: dict[str, tuple[str, str, str]] = {}
    for key, (state, until, label) in OVERRIDE_CHOICES.items():
        if until == "next_change" and state != "off":
            label = routing.override_end(state)
        out[key] = (state, until, label)
    return out


def _page(draft: dict[str, Any], errors: Errors | None = None, unsaved: bool = False) -> Any:
    svc = services()
    routing = svc.routing
    status = routing.status()
    return render_template(
        "hours/index.html",
        days=_day_rows(draft),
        special=draft["special"],
        presets=PRESETS,
        errors=errors or Errors(),
        unsaved=unsaved,
        status=status,
        upcoming=routing.upcoming(6),
        override=svc.settings.get().override,
        choices=_override_choices(),
        timezone=svc.settings.get().business.timezone,
        local_now=routing.local_now(),
    )


@bp.get("/")
def index() -> Any:
    return _page(_draft_from_settings())


@bp.post("/")
def save_hours() -> Any:
    draft = _draft_from_form()
    pressed = request.form.get("action", "save")
    if pressed.startswith("preset:"):
        preset = PRESETS.get(pressed.removeprefix("preset:"))
        if preset is not None:
            draft["week"] = {d: [_split(t) for t in preset[1].get(d, [])] for d in WEEKDAYS}
            flash(f"{preset[0]} filled in below; press Save hours to keep it.", "info")
        return _page(draft, unsaved=True)
    verb, table, index = action(request.form)
    if verb != "save":
        if table in WEEKDAYS:
            draft["week"][table] = apply_action(draft["week"][table], verb, index, ("", ""))
        elif table == "special":
            blank = {"date": "", "hours": "", "note": ""}
            draft["special"] = apply_action(draft["special"], verb, index, blank)
        return _page(draft, unsaved=True)
    errors = Errors()
    data = _hours_data(draft, errors)
    if not errors:
        try:
            changes = services().settings.save_section("hours", data)
        except SettingsError as exc:
            _hours_problems(exc.problems, errors)
        else:
            flash(_saved("Opening hours", changes), "success")
            return redirect(url_for("hours.index"))
    log.info("hours not saved: %d problem(s)", len(errors))
    return _page(draft, errors), 422


def _saved(what: str, changes: list[Any]) -> str:
    if not changes:
        return f"{what}: nothing changed."
    return f"{what} saved ({len(changes)} change{'s' if len(changes) != 1 else ''})."


# -- the override ----------------------------------------------------------------------------


def _return_to() -> str:
    return url_for("home.index") if request.form.get("back") == "home" else url_for("hours.index")


@bp.post("/override")
def override() -> Any:
    choice = request.form.get("choice", "")
    if choice not in OVERRIDE_CHOICES:
        flash("Choose how the office should be open or closed.", "error")
        return redirect(_return_to())
    state, until, _ = OVERRIDE_CHOICES[choice]
    until_time = request.form.get("until_time", "")
    if until == "time" and not until_time.strip():
        flash("Closed or open until when? Give a date and time.", "error")
        return redirect(url_for("hours.index", choice=choice) + "#override")
    try:
        status = services().routing.set_override(
            state,  # type: ignore[arg-type]
            until,  # type: ignore[arg-type]
            until_time,
            request.form.get("note", ""),
        )
    except SettingsError as exc:
        labels = {"until_time": "Until", "note": "Note"}
        for p in exc.problems:
            flash(message(labels.get(p.field, p.field), p), "error")
        return redirect(url_for("hours.index") + "#override")
    flash(f"{status.text}.", "success")
    return redirect(_return_to())


# -- holidays and closures ------------------------------------------------------------------


def _holidays_page(
    errors: Errors | None = None, closure: dict[str, str] | None = None, status: int = 200
) -> Any:
    from . import ical  # calendar files: loaded with the Holidays page, not at start

    svc = services()
    s = svc.settings.get()
    return render_template(
        "hours/holidays.html",
        holidays=svc.routing.upcoming_holidays(),
        observe=s.holidays.observe,
        business=s.business,
        closures=svc.routing.closures(),
        today=svc.routing.local_now().date(),
        errors=errors or Errors(),
        closure=closure or {"start": "", "end": "", "reason": ""},
        max_kb=ical.MAX_BYTES // 1024,
    ), status


@bp.get("/holidays")
def holidays() -> Any:
    return _holidays_page()


@bp.post("/holidays/observe")
def observe() -> Any:
    value = request.form.get("observe", "")
    if value not in ("all", "chosen", "none"):
        flash("Choose all, chosen or none.", "error")
        return redirect(url_for("hours.holidays"))
    data = settings_to_dict(services().settings.get())["holidays"]
    data["observe"] = value
    services().settings.save_section("holidays", data)
    flash(
        {
            "all": "Every public holiday now closes the office.",
            "none": "Public holidays are now ordinary days.",
            "chosen": "Only the holidays switched on below close the office.",
        }[value],
        "success",
    )
    return redirect(url_for("hours.holidays"))


@bp.post("/holidays/toggle")
def toggle_holiday() -> Any:
    name = request.form.get("name", "")
    closes = request.form.get("closes") == "1"
    try:
        services().routing.set_holiday(name, closes)
    except SettingsError as exc:
        flash(message("Holiday", exc.problems[0]), "error")
    else:
        flash(f"{name}: {'closed' if closes else 'open as usual'}.", "success")
    return redirect(url_for("hours.holidays") + "#public")


@bp.post("/closures/add")
def add_closure() -> Any:
    closure = {k: request.form.get(k, "").strip() for k in ("start", "end", "reason")}
    if closure["start"] and not closure["end"]:
        closure["end"] = closure["start"]
    errors = Errors()
    try:
        services().routing.add_closures([(closure["start"], closure["end"], closure["reason"])])
    except SettingsError as exc:
        for p in exc.problems:
            column = p.field.rsplit(".", 1)[-1]
            if column in CLOSURE_LABELS:
                errors.add(f"f-closure-{column}", message(CLOSURE_LABELS[column], p))
            else:
                errors.add("", message(p.field, p))
        return _holidays_page(errors, closure, 422)
    flash(f"Closure added: {closure['reason']}, {closure['start']} to {closure['end']}.", "success")
    return redirect(url_for("hours.holidays") + "#closures")


@bp.post("/closures/remove")
def remove_closure() -> Any:
    if services().routing.remove_closure(request.form.get("id", "")):
        flash("Closure removed.", "success")
    else:
        flash("That closure was already removed.", "info")
    return redirect(url_for("hours.holidays") + "#closures")


@bp.post("/holidays/import")
def import_calendar() -> Any:
    upload = request.files.get("file")
    errors = Errors()
    if upload is None or not upload.filename:
        errors.add("f-ics", "Calendar file: choose an .ics file exported from your calendar.")
        return _holidays_page(errors, status=422)
    from . import ical  # loaded by the first calendar import

    try:
        svc = services()
        found = ical.read_events(
            upload.read(ical.MAX_BYTES + 1),
            svc.routing.router().hours.tz,
            svc.routing.local_now().date(),
        )
    except ical.CalendarError as exc:
        errors.add("f-ics", f"Calendar file: {exc}")
        return _holidays_page(errors, status=422)
    known = {(c.start, c.end) for c in svc.settings.get().holidays.closures}
    return render_template(
        "hours/import.html",
        events=found.events,
        skipped=found.skipped,
        known=known,
        horizon=ical.HORIZON_DAYS,
    )


@bp.post("/holidays/import/confirm")
def confirm_import() -> Any:
    picked = [r for r in rows(request.form, "event") if r.get("pick") == "1"]
    if not picked:
        flash("No events were chosen: nothing was added.", "info")
        return redirect(url_for("hours.holidays") + "#closures")
    items = [
        (r.get("start", ""), r.get("end", ""), (r.get("reason", "") or "Closed")[:80].strip())
        for r in picked
    ]
    try:
        services().routing.add_closures(items)
    except SettingsError as exc:
        flash("Nothing was added: " + "; ".join(message(p.field, p) for p in exc.problems), "error")
        return redirect(url_for("hours.holidays") + "#closures")
    flash(
        f"{len(items)} closure{'s' if len(items) != 1 else ''} added from the calendar.", "success"
    )
    return redirect(url_for("hours.holidays") + "#closures")


# -- what happens if someone calls ---------------------------------------------------------


def outline(plan: Plan) -> list[dict[str, Any]]:
    """The plan's steps for a page: text, and for a menu its choices with their steps."""
    out: list[dict[str, Any]] = []
    for step in plan.steps:
        item: dict[str, Any] = {"text": step.describe(), "choices": []}
        if isinstance(step, Menu):
            item["choices"] = [
                {
                    "digit": c.digit,
                    "label": c.label,
                    "steps": ", then ".join(s.describe() for s in c.steps),
                }
                for c in step.choices
            ]
        out.append(item)
    return out


@bp.get("/preview")
def preview() -> Any:
    routing = services().routing
    args = request.args
    default_at = routing.local_now().strftime("%Y-%m-%dT%H:%M")
    choices = routing.line_choices()
    form = {
        "at": args.get("at", default_at)[:40],
        "caller": args.get("caller", "")[:40],
        "line": args.get("line", choices[0].key)[:40],
    }
    errors = Errors()
    plan = None
    chosen = None
    if args:
        try:
            plan, chosen = routing.preview_on(
                form["at"].replace("T", " "), form["caller"], form["line"]
            )
        except SettingsError as exc:
            labels = {"at": "When", "caller": "Calling number", "line": "Line"}
            for p in exc.problems:
                errors.add(f"f-{p.field}", message(labels.get(p.field, p.field), p))
    return render_template(
        "hours/preview.html",
        form=form,
        lines=choices,
        chosen=chosen,
        plan=plan,
        steps=outline(plan) if plan else [],
        errors=errors,
        timezone=services().settings.get().business.timezone,
    ), (422 if errors else 200)


# -- the dashboard card ------------------------------------------------------------------------


def _card(svc: Services) -> dict[str, Any]:
    routing = svc.routing
    status = routing.status()
    return {
        "status": status,
        "override": svc.settings.get().override,
        "upcoming": routing.upcoming(3),
    }


# -- /api/v1/override ---------------------------------------------------------------------------


def _override_json(svc: Services) -> dict[str, Any]:
    o = svc.settings.get().override
    st = svc.routing.status()
    return {
        "override": {
            "state": o.state,
            "until": o.until,
            "until_time": o.until_time,
            "since": o.since,
            "note": o.note,
        },
        "status": status_json(st),
    }


def status_json(st: Any) -> dict[str, Any]:
    """The opening status as the API shows it."""
    return {
        "mode": st.mode,
        "is_open": st.is_open,
        "text": st.text,
        "reason": st.reason,
        "next_change": st.next_change.isoformat() if st.next_change else None,
        "override_until": st.override_until.isoformat() if st.override_until else None,
    }


@api.get("")
def api_get_override() -> Response:
    return jsonify(_override_json(services()))


@api.post("")
def api_set_override() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return api_error(
            400,
            'send a JSON object, e.g. {"state": "closed", "until": "time", '
            '"until_time": "2026-12-24 18:00"}',
        )
    problems: list[FieldProblem] = []
    state = body.get("state")
    until = body.get("until", "next_change")
    until_time = body.get("until_time", "")
    note = body.get("note", "")
    if state not in ("off", "open", "closed"):
        problems.append(FieldProblem("state", state, "one of 'off', 'open', 'closed'"))
    if until not in ("next_change", "time", "switched_back"):
        problems.append(
            FieldProblem("until", until, "one of 'next_change', 'time', 'switched_back'")
        )
    for name, value in (("until_time", until_time), ("note", note)):
        if not isinstance(value, str):
            problems.append(FieldProblem(name, value, "a text"))
    if not problems:
        try:
            services().routing.set_override(state, until, until_time, note)
        except SettingsError as exc:
            problems = exc.problems
    if problems:
        return api_error(
            422,
            "; ".join(str(p) for p in problems),
            problems=[{"field": p.field, "value": p.value, "allowed": p.allowed} for p in problems],
        )
    return jsonify(_override_json(services()))


def _when(at: dt.datetime | None) -> str:
    """A time as an owner says it, relative to now: '17:30', 'tomorrow 09:00', 'Mon 09:00'."""
    if at is None:
        return ""
    routing = services().routing
    return when(at, routing.now(), routing.router().hours.tz)


def init_app(app: Flask) -> None:
    app.add_template_filter(_when, "when")
    app.register_blueprint(bp)
    register_api(app, api)
    add_nav(app, "Hours", "hours.index", 40, prefix="/hours")
    add_card(app, Card("cards/hours.html", 5, _card))
    add_section_page(app, "hours", "hours.index")
    add_section_page(app, "override", "hours.index")
    add_section_page(app, "holidays", "hours.holidays")
