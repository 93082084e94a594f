"""A checker for our udev rules files, for systems whose udevadm has no `verify` (udev < 254).

Reads the rule grammar of udev(7): comma-separated `KEY op "value"` pairs, match keys with
== or !=, assignment keys with = += -= :=. Adds our own policy: a rule that assigns matches
a SUBSYSTEM; USB ids are lower-case hex. `python3 tests/udev_lint.py FILE...` exits 1 on a problem.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MATCH_ONLY = {
    "ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER", "DRIVERS",
    "ATTRS", "TAGS", "TEST", "PROGRAM", "RESULT", "CONST",
}  # fmt: skip
ASSIGN_ONLY = {"OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS"}
BOTH = {"NAME", "SYMLINK", "ENV", "TAG", "ATTR", "SYSCTL"}
MATCH_OPS = {"==", "!="}
ASSIGN_OPS = {"=", "+=", "-=", ":="}
PAIR = re.compile(
    r"\s*(?P<key>[A-Za-z_]+)(?:\{(?P<attr>[^}]*)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*"
    r'"(?P<value>(?:[^"\\]|\\.)*)"\s*'
)
USB_ID = re.compile(r"^[0-9a-f]{4}(\|[0-9a-f]{4})*$")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line, pending = pending + raw, ""
        if line.strip() and not line.lstrip().startswith("#"):
            out.append((start, line))
    return out


def lint_line(line: str) -> list[str]:
    problems: list[str] = []
    pos, keys = 0, []
    while pos < len(line):
        m = PAIR.match(line, pos)
        if m is None:
            rest = line[pos:].strip()
            if rest.count('"') % 2:
                problems.append(f"a value is missing its closing quote: {rest!r}")
            else:
                problems.append(f'not KEY=="value" or KEY="value": {rest!r}')
            break
        key, op, value = m["key"], m["op"], m["value"]
        keys.append(key)
        if key not in MATCH_ONLY | ASSIGN_ONLY | BOTH:
            problems.append(f"unknown key {key}")
        elif key in MATCH_ONLY and op not in MATCH_OPS:
            problems.append(f"match key with =: {key}{op} (use ==)")
        elif key in ASSIGN_ONLY and op not in ASSIGN_OPS:
            problems.append(f"assignment key with ==: {key}{op} (use =)")
        if m["attr"] in ("idVendor", "idProduct") and not USB_ID.match(value):
            problems.append(f"{key}{{{m['attr']}}}: {value!r} is not lower-case 4-digit hex")
        if key == "MODE" and not re.fullmatch(r"0?[0-7]{3}", value):
            problems.append(f"MODE {value!r} is not an octal mode like 0660")
        pos = m.end()
        if pos < len(line):
            if line[pos] != ",":
                problems.append(f'missing comma after {key}{op}"{value}"')
                break
            pos += 1
    assigns = [k for k in keys if k in ASSIGN_ONLY | BOTH and k not in ("GOTO", "LABEL")]
    if not problems and assigns and not {"SUBSYSTEM", "SUBSYSTEMS"} & set(keys):
        problems.append("rule does not match a SUBSYSTEM (it would apply to every device)")
    return problems


def lint_rules(text: str) -> list[str]:
    """Problems in a rules file, each as 'line N: what'; empty when it is clean."""
    return [
        f"line {number}: {problem}"
        for number, line in _logical_lines(text)
        for problem in lint_line(line)
    ]


def main(paths: list[str]) -> int:
    bad = 0
    for path in paths:
        for problem in lint_rules(Path(path).read_text()):
            print(f"{path}: {problem}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
