"""Typed settings sections: dataclasses with validation metadata, to and from plain dicts.

A section is a dataclass whose fields are declared with `setting(...)`: a label and help for
the web form, a check that names what is allowed. Plain data only (str, int, float, bool,
Literal, lists, nested sections) so a document round-trips exactly through JSON and TOML.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin, get_type_hints

from ..errors import FieldProblem

Check = Callable[[Any], str | None]
"""A check returns None when the value is fine, else the text of what is allowed."""

_MISSING = dataclasses.MISSING


def setting(
    default: Any = _MISSING,
    *,
    label: str,
    help: str = "",
    check: Check | None = None,
    default_factory: Callable[[], Any] | None = None,
    secret: bool = False,
    widget: str = "",
) -> Any:
    """Declare a settings field. `secret` values are never shown back in forms."""
    meta = {"label": label, "help": help, "check": check, "secret": secret, "widget": widget}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin is list:
        return "a list of " + _type_name(get_args(hint)[0]).removeprefix("a ").removeprefix("an ")
    if dataclasses.is_dataclass(hint):
        return "a table"
    return {str: "a text", int: "a whole number", float: "a number", bool: "true or false"}.get(
        hint, str(hint)
    )


def to_dict(obj: Any) -> Any:
    """A section (or value) as plain data in field order."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    return obj


def from_dict(cls: type, data: Any, prefix: str, problems: list[FieldProblem]) -> Any:
    """Build `cls` from plain data; every problem found is appended, never raised.

    Returns an instance (with defaults where values were bad) so that all problems of a
    document are reported at once.
    """
    if not isinstance(data, dict):
        problems.append(FieldProblem(prefix.rstrip(".") or "settings", data, "a table"))
        data = {}
    hints = get_type_hints(cls)
    flds = dataclasses.fields(cls)
    known = {f.name for f in flds}
    for key in data:
        if key not in known:
            problems.append(
                FieldProblem(
                    prefix + str(key), data[key], "a known field: " + ", ".join(sorted(known))
                )
            )
    kwargs: dict[str, Any] = {}
    for f in flds:
        name = prefix + f.name
        if f.name not in data:
            continue
        before = len(problems)
        value = _convert(hints[f.name], data[f.name], name, problems)
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = value  # built with defaults in place of its bad fields
        elif len(problems) == before:
            check = f.metadata.get("check")
            msg = check(value) if check else None
            if msg:
                problems.append(FieldProblem(name, data[f.name], msg))
            else:
                kwargs[f.name] = value
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        problems.extend(FieldProblem(prefix + p.field, p.value, p.allowed) for p in validate())
    return obj


def _convert(hint: Any, value: Any, name: str, problems: list[FieldProblem]) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, name + ".", problems)  # type: ignore[arg-type]
    if origin is list:
        (inner,) = get_args(hint)
        if not isinstance(value, list):
            problems.append(FieldProblem(name, value, _type_name(hint)))
            return []
        return [_convert(inner, v, f"{name}[{i}]", problems) for i, v in enumerate(value)]
    if origin is Literal:
        if value in get_args(hint) and type(value) in {type(a) for a in get_args(hint)}:
            return value
        problems.append(FieldProblem(name, value, _type_name(hint)))
        return None
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"{name}: optional settings are not supported; use a default instead")
    if hint is float and type(value) is int:
        return float(value)
    if type(value) is not hint:
        problems.append(FieldProblem(name, value, _type_name(hint)))
        return None
    return value


def field_meta(cls: type, name: str) -> dict[str, Any]:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return dict(f.metadata)
    raise KeyError(name)


# -- reusable checks -------------------------------------------------------------------------


def length(lo: int, hi: int) -> Check:
    def check(v: str) -> str | None:
        if lo <= len(v) <= hi and v == v.strip() and not any(ord(c) < 32 for c in v):
            return None
        return f"{lo} to {hi} characters, no line breaks or surrounding spaces"

    return check


def number_range(lo: float, hi: float) -> Check:
    def check(v: float) -> str | None:
        return None if lo <= v <= hi else f"a number from {lo:g} to {hi:g}"

    return check


def email_address(optional: bool = True) -> Check:
    def check(v: str) -> str | None:
        if optional and v == "":
            return None
        local, at, domain = v.partition("@")
        ok = (
            at
            and local
            and "." in domain
            and not any(c.isspace() or c in '<>,;"' or ord(c) < 32 for c in v)
        )
        return (
            None
            if ok
            else "an email address like owner@example.com" + (" or empty" if optional else "")
        )

    return check


def email_list(v: list[str]) -> str | None:
    bad = [a for a in v if email_address(optional=False)(a)]
    return f"email addresses like staff@example.com (bad: {', '.join(bad)})" if bad else None


def hhmm(v: str) -> str | None:
    h, sep, m = v.partition(":")
    digits = sep and len(h) == 2 and len(m) == 2 and h.isdigit() and m.isdigit()
    if digits and int(h) <= 24 and int(m) < 60 and (int(h) < 24 or m == "00"):
        return None
    return "a time as HH:MM, 00:00 to 24:00"
