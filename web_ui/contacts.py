"""Contacts pages: the list, add and edit, VIP and blocked, import and export, search.

Also `GET /api/v1/contacts`. Numbers are typed the local way and stored in E.164; import
keeps every good row and lists the bad ones by line. Pages only call the services facade.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from firmware_app.errors import FrontdeskError, ValidationError
from firmware_app.services.contacts import LABELS, Contact, Draft

from .api import api_blueprint, register_api
from .registry import add_nav
from .security import services
from .timeline import cursor, views

bp = Blueprint("contacts", __name__, url_prefix="/contacts")
api = api_blueprint("api_contacts", __name__, "/contacts")
search_bp = Blueprint("search", __name__)

PAGE = 100
ROWS = 4  # number rows on the form


def _draft(form: Any) -> Draft:
    nums = form.getlist("number")
    labels = form.getlist("label")
    return Draft(
        name=form.get("name", ""),
        company=form.get("company", ""),
        numbers=tuple(
            (n, labels[i] if i < len(labels) else "mobile") for i, n in enumerate(nums) if n.strip()
        ),
        email=form.get("email", ""),
        notes=form.get("notes", ""),
        tags=tuple(t.strip() for t in form.get("tags", "").split(",")),
        vip=bool(form.get("vip")),
        blocked=bool(form.get("blocked")),
    )


def _form(draft: Draft, errors: dict[str, str], contact: Contact | None) -> str:
    rows = list(draft.numbers) + [("", "mobile")] * max(1, ROWS - len(draft.numbers))
    return render_template(
        "contacts/form.html",
        d=draft,
        rows=rows,
        labels=LABELS,
        errors=errors,
        contact=contact,
    )


def _as_draft(svc: Any, c: Contact) -> Draft:
    return Draft(
        name=c.name,
        company=c.company,
        numbers=tuple((svc.contacts.display(p.number), p.label) for p in c.phones),
        email=c.email,
        notes=c.notes,
        tags=c.tags,
        vip=c.vip,
        blocked=c.blocked,
    )


@bp.get("/")
def index() -> str:
    svc = services()
    q = request.args.get("q", "").strip()[:100]
    tag = request.args.get("tag", "")[:40]
    found = svc.contacts.search(q, PAGE + 1, tag=tag) if (q or tag) else svc.contacts.all()
    return render_template(
        "contacts/index.html",
        contacts=found[:PAGE],
        more=len(found) > PAGE,
        total=svc.contacts.count(),
        q=q,
        tag=tag,
        tags=svc.contacts.tags(),
        display=svc.contacts.display,
    )


@bp.route("/new", methods=["GET", "POST"])
def new() -> Any:
    svc = services()
    if request.method == "POST":
        draft = _draft(request.form)
        try:
            c = svc.contacts.save(draft)
        except ValidationError as exc:
            return _form(draft, exc.by_field(), None), 400
        flash(f"{c.title} saved.", "success")
        return redirect(url_for("timeline.contact", contact_id=c.id))
    number = request.args.get("number", "")
    # a number on the call rules' lists keeps its flag once it is a contact's
    st = svc.contacts.standing(number) if number else None
    exact = st is not None and bool(st.entry) and not st.by_prefix
    draft = Draft(
        name=request.args.get("name", "")[:120],
        numbers=((svc.contacts.display(number), "mobile"),) if number else (),
        vip=exact and st is not None and st.flag == "vip",
        blocked=exact and st is not None and st.flag == "blocked",
    )
    return _form(draft, {}, None)


@bp.route("/<int:contact_id>/edit", methods=["GET", "POST"])
def edit(contact_id: int) -> Any:
    svc = services()
    c = svc.contacts.get(contact_id)
    if c is None:
        abort(404)
    if request.method == "POST":
        draft = _draft(request.form)
        try:
            c = svc.contacts.save(draft, contact_id)
        except ValidationError as exc:
            return _form(draft, exc.by_field(), c), 400
        flash(f"{c.title} saved.", "success")
        return redirect(url_for("timeline.contact", contact_id=c.id))
    return _form(_as_draft(svc, c), {}, c)


@bp.post("/<int:contact_id>/delete")
def delete(contact_id: int) -> Any:
    svc = services()
    c = svc.contacts.get(contact_id)
    if c is None:
        abort(404)
    svc.contacts.delete(contact_id)
    flash(f"{c.title} deleted. Their calls and messages stay in the history.", "success")
    return redirect(url_for("contacts.index"))


@bp.post("/<int:contact_id>/flags")
def flags(contact_id: int) -> Any:
    svc = services()
    which = request.form.get("flag", "")
    on = request.form.get("on") == "1"
    try:
        if which == "vip":
            c = svc.contacts.set_flags(contact_id, vip=on, blocked=False if on else None)
        elif which == "blocked":
            c = svc.contacts.set_flags(contact_id, blocked=on, vip=False if on else None)
        else:
            abort(400)
    except FrontdeskError:
        abort(404)
    word = {"vip": "VIP: put through at any time", "blocked": "blocked"}[which]
    flash(f"{c.title} is {'now' if on else 'no longer'} {word}.", "success")
    return redirect(url_for("timeline.contact", contact_id=contact_id))


@bp.route("/import", methods=["GET", "POST"])
def import_() -> Any:
    if request.method == "GET":
        return render_template("contacts/import.html", result=None)
    svc = services()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a .csv or .vcf file first.", "error")
        return render_template("contacts/import.html", result=None), 400
    from firmware_app import contacts_io  # loaded by the first import or export

    text = contacts_io.decode(upload.read())
    name = upload.filename.lower()
    if name.endswith((".vcf", ".vcard")) or text.lstrip().upper().startswith("BEGIN:VCARD"):
        drafts, problems = contacts_io.read_vcard(text)
    else:
        drafts, problems = contacts_io.read_csv(text)
    result = svc.contacts.import_drafts(drafts, problems)
    return render_template("contacts/import.html", result=result, filename=upload.filename)


@bp.get("/export.csv")
def export_csv() -> Response:
    """For spreadsheets (numbers kept as text), or `?plain=1` for other programs."""
    plain = request.args.get("plain") == "1"
    from firmware_app import contacts_io  # loaded by the first import or export

    body = contacts_io.write_csv(services().contacts.all(), spreadsheet=not plain)
    name = "contacts-plain.csv" if plain else "contacts.csv"
    return Response(
        body.encode("utf-8-sig"),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/export.vcf")
def export_vcf() -> Response:
    from firmware_app import contacts_io  # loaded by the first import or export

    body = contacts_io.write_vcard(services().contacts.all())
    return Response(
        body.encode(),
        mimetype="text/vcard",
        headers={"Content-Disposition": 'attachment; filename="contacts.vcf"'},
    )


@search_bp.get("/search")
def search() -> str:
    svc = services()
    q = request.args.get("q", "").strip()[:100]
    before = cursor()
    result = svc.timeline.search(q, before=before) if q else None
    return render_template(
        "contacts/search.html",
        q=q,
        result=result,
        first=before is None,
        items=views(result.interactions, svc) if result else [],
        display=svc.contacts.display,
    )


def contact_json(svc: Any, c: Contact) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "company": c.company,
        "numbers": [
            {"number": p.number, "label": p.label, "display": svc.contacts.display(p.number)}
            for p in c.phones
        ],
        "email": c.email,
        "notes": c.notes,
        "tags": list(c.tags),
        "vip": c.vip,
        "blocked": c.blocked,
        "updated": c.updated,
    }


@api.get("")
def api_list() -> Response:
    svc = services()
    q = request.args.get("q", "")
    found = svc.contacts.search(q, 10000) if q else svc.contacts.all()
    return jsonify(contacts=[contact_json(svc, c) for c in found], count=len(found))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(search_bp)
    register_api(app, api)
    add_nav(app, "Contacts", "contacts.index", 35, prefix="/contacts")
