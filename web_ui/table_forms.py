"""Editing lists of rows with plain forms: indexed fields, add and remove buttons, errors per cell.

A table posts its rows as `<table>-<n>-<column>`; the pressed button's `action` says what to
do: `save`, `add:<table>` or `remove:<table>:<n>` (the last two redraw the form, unsaved).
Problems from the settings model become messages naming the row and the field. Pure helpers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from firmware_app.errors import FieldProblem

MAX_ROWS = 200


@dataclass(slots=True)
class Errors:
    """Messages keyed by the id of the input they are about, in order, for the summary."""

    by_id: dict[str, str] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)

    def add(self, anchor: str, message: str) -> None:
        if anchor:
            self.by_id.setdefault(anchor, message)
        else:
            self.other.append(message)

    def get(self, anchor: str) -> str:
        return self.by_id.get(anchor, "")

    def __bool__(self) -> bool:
        return bool(self.by_id or self.other)

    def __len__(self) -> int:
        return len(self.by_id) + len(self.other)

    def items(self) -> list[tuple[str, str]]:
        return list(self.by_id.items())


def rows(form: Any, table: str, lists: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The posted rows of `table` in index order; columns in `lists` come as lists."""
    pattern = re.compile(rf"{re.escape(table)}-(\d{{1,3}})-(\w+)")
    multi = set(lists)
    found: dict[int, dict[str, Any]] = {}
    for key in form:
        m = pattern.fullmatch(key)
        if m is None:
            continue
        column = m.group(2)
        value = form.getlist(key) if column in multi else form.get(key, "")
        found.setdefault(int(m.group(1)), {})[column] = value
    return [found[i] for i in sorted(found)][:MAX_ROWS]


def action(form: Mapping[str, str]) -> tuple[str, str, int]:
    """(verb, table, row) of the pressed button: ('save', '', -1), ('add', 'members', -1)..."""
    raw = form.get("action", "save")
    verb, _, rest = raw.partition(":")
    table, _, index = rest.partition(":")
    if verb not in ("save", "add", "remove") or (verb != "save" and not table):
        return "save", "", -1
    return verb, table, int(index) if index.isdigit() else -1


def apply_action(items: list[Any], verb: str, index: int, blank: Any) -> list[Any]:
    if verb == "add" and len(items) < MAX_ROWS:
        return [*items, blank]
    if verb == "remove" and 0 <= index < len(items):
        return items[:index] + items[index + 1 :]
    return items


def split_list(text: str) -> list[str]:
    """'sales, support' -> ['sales', 'support'] (commas or new lines)."""
    return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]


def show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)


def message(label: str, p: FieldProblem) -> str:
    if p.value in ("", None, []):
        return f"{label}: expected {p.allowed}."
    return f"{label}: “{show(p.value)}” is not allowed. Expected {p.allowed}."


_ROW = re.compile(r"^(\w+)\[(\d+)\]\.(\w+)(?:\[(\d+)\])?$")


def map_problems(
    problems: list[FieldProblem],
    errors: Errors,
    *,
    tables: Mapping[str, tuple[str, str, Mapping[str, str]]],
    fields: Mapping[str, tuple[str, str]],
) -> None:
    """File each problem under its input.

    `tables`: list field -> (form table name, row noun, {column: label}); `fields`: plain
    field -> (input id, label). Anything else is listed without a link.
    """
    for p in problems:
        m = _ROW.match(p.field)
        if m and m.group(1) in tables:
            table, noun, labels = tables[m.group(1)]
            row, column = int(m.group(2)), m.group(3)
            label = f"{noun} {row + 1}, {labels.get(column, column)}"
            errors.add(f"f-{table}-{row}-{column}", message(label, p))
            continue
        name = re.split(r"[.\[]", p.field, maxsplit=1)[0]
        if name in fields:
            anchor, label = fields[name]
            errors.add(anchor, message(label, p))
        else:
            errors.add("", message(p.field, p))
