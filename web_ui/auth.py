"""First-run setup, login, logout and the owner's password page.

Setup is open only while no owner password exists; afterwards every page needs a login.
Wrong passwords are limited per address (services.auth.limiter); a password is never logged.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from firmware_app.errors import SettingsError
from firmware_app.services.auth import MIN_PASSWORD, password_problems
from firmware_app.settings.model import SECTIONS

from .errors import render_error
from .forms import FieldView, field_errors, section_fields
from .security import log_in, log_out, logged_in, public, safe_next, services

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

SETUP_FIELDS = ("name", "timezone", "country", "owner_email")


def _password_views(errors: dict[str, str], current: bool = False) -> list[FieldView]:
    views = []
    if current:
        views.append(
            FieldView(
                name="current",
                label="Current password",
                kind="password",
                input_type="password",
                error=errors.get("current", ""),
                attrs={"autocomplete": "current-password"},
                required=True,
            )
        )
    views += [
        FieldView(
            name="password",
            label="New password" if current else "Password",
            kind="password",
            input_type="password",
            error=errors.get("password", ""),
            help=f"At least {MIN_PASSWORD} characters. A short sentence is easy to "
            "remember and hard to guess.",
            attrs={"autocomplete": "new-password", "minlength": str(MIN_PASSWORD)},
            required=True,
        ),
        FieldView(
            name="confirm",
            label="Repeat the password",
            kind="password",
            input_type="password",
            error=errors.get("confirm", ""),
            attrs={"autocomplete": "new-password"},
            required=True,
        ),
    ]
    return views


def _password_errors(password: str, confirm: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in password_problems(password, confirm):
        label = "Password" if p.field == "password" else "Repeat the password"
        out.setdefault(p.field, f"{label}: expected {p.allowed}.")
    return out


@bp.route("/setup", methods=["GET", "POST"])
@public
def setup() -> Any:
    svc = services()
    if svc.auth.has_password:
        return redirect(url_for("home.index") if logged_in() else url_for("auth.login"))
    business_cls = SECTIONS["business"]
    current = svc.settings.get().business
    errors: dict[str, str] = {}
    other: list[str] = []
    posted: dict[str, str] | None = None
    if request.method == "POST":
        posted = {k: request.form.get(k, "").strip() for k in SETUP_FIELDS}
        password = request.form.get("password", "")
        confirm = request.form.get("confirm", "")
        data = {**dataclasses.asdict(current), **posted}
        try:
            # Both checked before either is stored: nothing half-done.
            from firmware_app.settings.model import section_from_dict

            section_from_dict("business", data)
        except SettingsError as exc:
            labels = {
                f.name: f.metadata.get("label", f.name) for f in dataclasses.fields(business_cls)
            }
            errors, other = field_errors(exc.problems, labels)
        errors.update(_password_errors(password, confirm))
        if not errors and not other:
            svc.settings.save_section("business", data)
            svc.auth.set_password(password)
            log.info("first-run setup done from %s", request.remote_addr)
            log_in()
            flash("Frontdesk is set up. Next: tell it how to send you email.", "success")
            return redirect(url_for("home.index"))
    views = [
        v for v in section_fields(business_cls, current, posted, errors) if v.name in SETUP_FIELDS
    ]
    for v in views:
        if v.name in ("name", "owner_email"):
            v.required = v.name == "name"
    return render_template(
        "auth/setup.html",
        fields=views,
        password_fields=_password_views(errors),
        other_errors=other,
        error_count=len(errors) + len(other),
    ), (422 if errors or other else 200)


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    svc = services()
    if not svc.auth.has_password:
        return redirect(url_for("auth.setup"))
    target = safe_next(request.values.get("next"))
    if logged_in():
        return redirect(target or url_for("home.index"))
    error = ""
    address = request.remote_addr or "unknown"
    if request.method == "POST":
        wait = svc.auth.limiter.retry_after(address)
        if wait:
            log.warning("login refused from %s: too many wrong passwords", address)
            response = render_error(
                429,
                "Too many wrong passwords",
                f"For safety, logging in from this device is paused. Try again in {wait} "
                "seconds. Forgot the password? Reset it on the Frontdesk box with the "
                "command “sudo frontdesk passwd”.",
            )
            body, code = response if isinstance(response, tuple) else (response, 429)
            return body, code, {"Retry-After": str(wait)}
        if svc.auth.check_password(request.form.get("password", "")):
            svc.auth.limiter.succeeded(address)
            log_in()
            log.info("owner logged in from %s", address)
            return redirect(target or url_for("home.index"))
        svc.auth.limiter.failed(address)
        log.warning("wrong password from %s", address)
        error = "Password: that is not the owner password. Check it and try again."
    return render_template("auth/login.html", error=error, next=target or ""), (
        401 if error else 200
    )


@bp.post("/logout")
def logout() -> Response:
    log_out()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/settings/password", methods=["GET", "POST"])
def password() -> Any:
    svc = services()
    errors: dict[str, str] = {}
    if request.method == "POST":
        new, confirm = request.form.get("password", ""), request.form.get("confirm", "")
        address = request.remote_addr or "unknown"
        if svc.auth.limiter.retry_after(address):
            abort(429, "Too many wrong passwords. Wait a minute and try again.")
        if not svc.auth.check_password(request.form.get("current", "")):
            svc.auth.limiter.failed(address)
            errors["current"] = "Current password: that is not the owner password."
        errors.update(_password_errors(new, confirm))
        if not errors:
            svc.auth.set_password(new)
            log_in()  # this browser stays logged in; every other session ends
            flash(
                "Password changed. Other browsers that were logged in must log in again.", "success"
            )
            return redirect(url_for("settings.index"))
    return render_template(
        "auth/password.html",
        password_fields=_password_views(errors, current=True),
        error_count=len(errors),
    ), (422 if errors else 200)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
