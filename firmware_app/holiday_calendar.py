"""Public holidays from the `holidays` package: year tables and the countries it knows.

Importing the package runs its __init__, which loads every country it supports: about 10 MB
that stay resident, and more once a table is built. The daemon therefore asks a short-lived
child process, `python -m firmware_app.holiday_calendar`, and keeps only the answer (see
firmware_app/services/holidays.py). Tests, the CLI and the in-process fallback call the
functions here directly. Importing this module costs only the standard library.

Child protocol: stdin, one JSON document
    {"tables": [{"country": "DE", "subdivision": "BY", "years": [2025, 2026]}, ...],
     "catalogue": true}
stdout, one JSON document
    {"package": "0.x", "tables": [{"country": "DE", "subdivision": "BY",
                                   "years": {"2025": [["2025-01-01", "Neujahr"], ...]}}
                                  | {"country": ..., "subdivision": ..., "error": "why"}, ...],
     "catalogue": {"DE": ["Germany", ["BB", "BE", ...]], ...}}   (only when asked for)
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import IO, Any

from .children import lower_priority

YearTable = tuple[tuple[dt.date, str], ...]
"""One year's public holidays, (date, name) sorted by date."""

Catalogue = dict[str, tuple[str, tuple[str, ...]]]
"""Country code -> (English name, subdivision codes)."""


def year_table(country: str, subdivision: str, year: int) -> YearTable:
    """Public holidays of one year, names in the country's own default language (whatever
    the machine's locale). Raises NotImplementedError for a country the package lacks."""
    import holidays

    probe = holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    language = probe.default_language
    table = (
        holidays.country_holidays(
            country, subdiv=subdivision or None, years=year, language=language
        )
        if language
        else probe
    )
    return tuple(sorted((day, str(name)) for day, name in table.items()))


def _split_camel(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)


def catalogue() -> Catalogue:
    """Every country the package supports, with its English name and subdivision codes."""
    import holidays

    names: dict[str, str] = {}
    try:
        from holidays import registry

        for entry in registry.COUNTRIES.values():
            names.setdefault(entry[1], _split_camel(entry[0]))
    except (ImportError, AttributeError, IndexError):  # an older holidays package
        pass
    return {
        code: (names.get(code, code), tuple(str(s) for s in subdivisions))
        for code, subdivisions in holidays.list_supported_countries().items()
    }


def package_version() -> str:
    """The installed package's version, told from its dist-info folder without importing it
    ("" when it cannot be told): tables cached under another version are computed again."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("holidays")
    except (ImportError, ValueError):
        return ""
    if spec is None or spec.origin is None:
        return ""
    package = Path(spec.origin).parent
    for info in sorted(package.parent.glob("holidays-*.dist-info")):
        return info.name.removeprefix("holidays-").removesuffix(".dist-info")
    try:
        return f"mtime:{package.joinpath('__init__.py').stat().st_mtime_ns}"
    except OSError:
        return ""


# -- the child process ----------------------------------------------------------------------


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """What the child prints for `request` (the protocol in the module text)."""
    out: dict[str, Any] = {"package": package_version(), "tables": []}
    for ask in request.get("tables", []):
        country, subdivision = str(ask["country"]), str(ask.get("subdivision", ""))
        entry: dict[str, Any] = {"country": country, "subdivision": subdivision}
        try:
            entry["years"] = {
                str(year): [
                    [day.isoformat(), name]
                    for day, name in year_table(country, subdivision, int(year))
                ]
                for year in ask["years"]
            }
        except (NotImplementedError, KeyError, ValueError) as exc:
            entry = {"country": country, "subdivision": subdivision, "error": str(exc)[:200]}
        out["tables"].append(entry)
    if request.get("catalogue"):
        out["catalogue"] = {code: [name, list(subs)] for code, (name, subs) in catalogue().items()}
    return out


def _child(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    lower_priority()
    request = json.loads(stdin.read())
    stdout.write(json.dumps(answer(request), ensure_ascii=False).encode())
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.stdin.buffer, sys.stdout.buffer))
