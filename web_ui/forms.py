"""Forms made from the settings model: any section renders from its dataclass fields.

`section_fields` turns a section (its fields' types and `setting(...)` metadata) into field
views for the templates; `parse_section_form` turns a posted form back into the plain dict
the settings service validates. Nested tables are shown read-only (edited on their own page
or through a backup file). Pure: no store, no request globals.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin, get_type_hints

from firmware_app.errors import FieldProblem

# Widgets named in the settings model that map onto an HTML input type.
INPUT_TYPES = {
    "date": "date",
    "datetime": "datetime-local",
    "time": "time",
    "tel": "tel",
    "email": "email",
    "url": "url",
    "number": "number",
}


@dataclass(slots=True)
class Choice:
    value: str
    label: str


@dataclass(slots=True)
class ChoiceGroup:
    label: str
    choices: list[Choice]


@dataclass(slots=True)
class FieldView:
    """What a template needs to draw one form field accessibly."""

    name: str
    label: str
    help: str = ""
    kind: str = "text"  # text, number, select, checkbox, textarea, secret, readonly
    input_type: str = "text"
    value: Any = ""
    error: str = ""
    choices: list[Choice] = field(default_factory=list)
    groups: list[ChoiceGroup] = field(default_factory=list)
    step: str = ""
    secret_set: bool = False
    attrs: dict[str, str] = field(default_factory=dict)
    readonly_note: str = ""
    readonly_items: list[str] = field(default_factory=list)
    required: bool = False

    @property
    def id(self) -> str:
        return "f-" + self.name

    @property
    def described_by(self) -> str:
        ids = []
        if self.error:
            ids.append(self.id + "-error")
        if self.help:
            ids.append(self.id + "-help")
        return " ".join(ids)


# -- choices -------------------------------------------------------------------------------


@functools.cache
def timezone_groups() -> list[ChoiceGroup]:
    """IANA timezones grouped by region ("Europe", "America"...), for a native picker."""
    import zoneinfo

    groups: dict[str, list[Choice]] = {}
    for name in sorted(zoneinfo.available_timezones()):
        region, _, place = name.partition("/")
        # The closed picker shows only the option, so it carries the whole name.
        if not place or region in {"Etc", "SystemV", "US", "Canada", "Brazil", "Mexico", "Chile"}:
            region, place = "Other", name
        groups.setdefault(region, []).append(Choice(name, name.replace("_", " ")))
    return [ChoiceGroup(region, choices) for region, choices in sorted(groups.items())]


@functools.cache
def country_choices() -> list[Choice]:
    """Countries the holiday calendar knows, by name (the daemon's cached list)."""
    from firmware_app.routing.hours import holiday_provider

    countries = holiday_provider().countries()
    out = [Choice(code, f"{name} ({code})") for code, (name, _) in countries.items()]
    return sorted(out, key=lambda c: c.label.casefold())


# -- section -> field views ------------------------------------------------------------------


def _is_table(hint: Any) -> bool:
    if dataclasses.is_dataclass(hint):
        return True
    return get_origin(hint) is list and dataclasses.is_dataclass(get_args(hint)[0])


def _editable(hint: Any) -> bool:
    if hint in (str, int, float, bool) or get_origin(hint) is Literal:
        return True
    return get_origin(hint) is list and get_args(hint)[0] is str


def _summarise(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items[:20]:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            parts = [f"{f.name}: {_short(getattr(item, f.name))}" for f in dataclasses.fields(item)]
            out.append(", ".join(parts))
        else:
            out.append(_short(item))
    if len(items) > 20:
        out.append(f"… and {len(items) - 20} more")
    return out


def _short(v: Any) -> str:
    if isinstance(v, list):
        text = ", ".join(_short(x) for x in v) or "none"
    elif dataclasses.is_dataclass(v) and not isinstance(v, type):
        text = "(table)"
    else:
        text = str(v)
    return text if len(text) <= 80 else text[:79] + "…"


def section_fields(
    cls: type,
    current: Any,
    posted: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[FieldView]:
    """Field views for section `cls` showing `current`, or the `posted` text after an error."""
    hints = get_type_hints(cls)
    errors = errors or {}
    views: list[FieldView] = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        hint = hints[f.name]
        label = meta.get("label") or f.name.replace("_", " ").capitalize()
        view = FieldView(
            name=f.name, label=label, help=meta.get("help", ""), error=errors.get(f.name, "")
        )
        value = getattr(current, f.name)
        widget = meta.get("widget", "")
        if not _editable(hint):
            view.kind = "readonly"
            view.readonly_items = _summarise(value) if value not in ([], None) else []
            view.readonly_note = (
                "This list is not edited on this page: change it in a "
                "settings backup file and restore that file."
            )
            views.append(view)
            continue
        raw = posted.get(f.name) if posted is not None else None
        if meta.get("secret"):
            view.kind = "secret"
            view.secret_set = bool(value)
            view.value = ""
        elif hint is bool:
            view.kind = "checkbox"
            view.value = bool(raw) if posted is not None else bool(value)
        elif get_origin(hint) is Literal:
            view.kind = "select"
            view.choices = [Choice(str(a), str(a).replace("_", " ")) for a in get_args(hint)]
            view.value = str(raw if raw is not None else value)
        elif hint in (int, float):
            view.kind = "number"
            view.input_type = "text"
            view.step = "1" if hint is int else "any"
            view.attrs = {"inputmode": "numeric" if hint is int else "decimal"}
            view.value = raw if raw is not None else value
        elif get_origin(hint) is list:
            view.kind = "textarea"
            view.value = raw if raw is not None else "\n".join(value)
            view.attrs = {"rows": str(max(3, min(8, len(value) + 2)))}
            if "email" in f.name or f.name.endswith("_to"):
                view.attrs.update({"autocapitalize": "none", "spellcheck": "false"})
        elif widget == "timezone":
            view.kind = "select"
            view.groups = timezone_groups()
            view.value = raw if raw is not None else value
        elif widget == "country":
            view.kind = "select"
            view.choices = country_choices()
            view.value = raw if raw is not None else value
        else:
            view.kind = "text"
            view.input_type = INPUT_TYPES.get(widget, "text")
            text = raw if raw is not None else value
            if view.input_type == "datetime-local" and isinstance(text, str):
                text = text.replace(" ", "T")
            view.value = text
            if "email" in f.name or "address" in f.name or widget == "email":
                view.attrs = {
                    "inputmode": "email",
                    "autocapitalize": "none",
                    "spellcheck": "false",
                    "autocomplete": "email",
                }
            elif widget == "tel":
                view.attrs = {"autocomplete": "tel"}
        views.append(view)
    return views


def parse_section_form(cls: type, current: Any, form: Mapping[str, str]) -> dict[str, Any]:
    """The posted form as the plain dict `save_section` validates; unedited fields keep values.

    Text that does not parse (a word in a number field) is passed on as text, so the model's
    validation names it with the field and what is allowed.
    """
    hints = get_type_hints(cls)
    data: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        value = getattr(current, f.name)
        if not _editable(hint):
            data[f.name] = _plain(value)
            continue
        if f.metadata.get("secret"):
            if form.get(f.name + "__clear"):
                data[f.name] = ""
            else:
                new = form.get(f.name, "")
                data[f.name] = new if new != "" else value
            continue
        if hint is bool:
            data[f.name] = f.name in form
            continue
        raw = form.get(f.name)
        if raw is None:  # not on the page: keep what is stored
            data[f.name] = _plain(value)
            continue
        if hint is int:
            data[f.name] = _to_number(raw, int)
        elif hint is float:
            data[f.name] = _to_number(raw, float)
        elif get_origin(hint) is list:
            data[f.name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif get_origin(hint) is Literal:
            args = get_args(hint)
            data[f.name] = next((a for a in args if str(a) == raw), raw)
        else:
            text = raw.strip()
            if INPUT_TYPES.get(f.metadata.get("widget", "")) == "datetime-local":
                text = text.replace("T", " ")
            data[f.name] = text
    return data


def _to_number(raw: str, kind: type) -> Any:
    text = raw.strip().replace(",", ".") if kind is float else raw.strip()
    try:
        return kind(text)
    except ValueError:
        return raw


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def field_errors(
    problems: list[FieldProblem], labels: Mapping[str, str], secrets: frozenset[str] = frozenset()
) -> tuple[dict[str, str], list[str]]:
    """Problems as messages per form field (naming the field), and those for no field."""
    by_field: dict[str, str] = {}
    other: list[str] = []
    for p in problems:
        name = re.split(r"[.\[]", p.field, maxsplit=1)[0]
        if name not in labels:
            other.append(f"{p.field}: {p.value!r} is not allowed; expected {p.allowed}.")
            continue
        if name in by_field:
            continue
        label = labels[name]
        if name in secrets or p.value in ("", None):
            by_field[name] = f"{label}: expected {p.allowed}."
        else:
            shown = p.value if isinstance(p.value, str) else _short(p.value)
            by_field[name] = f"{label}: “{shown}” is not allowed. Expected {p.allowed}."
    return by_field, other
