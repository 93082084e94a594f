"""A checker for our udev rules files, for systems whose udevadm has no `verify` (udev < 254).

Reads the rule grammar of udev(7): comma-separated `KEY op "value"` pairs, match keys with
== or !=, assignment keys with = += -= :=. Adds our own policy: a rule that assigns matches
a SUBSYSTEM; USB ids are lower-case hex; every GOTO has its LABEL; and no rule mixes ATTRS
of a USB device (idVendor, idProduct...) with ATTRS of a USB interface (bInterfaceNumber...):
udev(7) says all ATTRS of a rule must match on one and the same device, so such a rule never
matches anything. `python3 tests/udev_lint.py FILE...` exits 1 on a problem.

`apply_rules` is a small model of how udev runs a rules file against one device event (the
matching rules of udev(7), GOTO/LABEL, ENV, SYMLINK, IMPORT{builtin}="usb_id"), so tests can
check which names and properties a described device gets.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from dataclasses import dataclass, field
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
USB_ID_KEYS = {"idVendor", "idProduct", "ID_VENDOR_ID", "ID_MODEL_ID"}
# sysfs attributes of a usb_device and of a usb_interface (a tty's two USB ancestors).
USB_DEVICE_ATTRS = {
    "idVendor", "idProduct", "bcdDevice", "serial", "manufacturer", "product",
    "bDeviceClass", "bConfigurationValue", "busnum", "devnum",
}  # fmt: skip
USB_INTERFACE_ATTRS = {
    "bInterfaceNumber", "bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol",
    "bAlternateSetting", "interface",
}  # fmt: skip


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
    attrs: set[str] = set()
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
        usb_id_match = m["attr"] in USB_ID_KEYS and key in ("ATTR", "ATTRS", "ENV")
        # `ENV{ID_VENDOR_ID}==""` asks "not known yet", which is not an id.
        if usb_id_match and op in MATCH_OPS and value and not USB_ID.match(value):
            problems.append(f"{key}{{{m['attr']}}}: {value!r} is not lower-case 4-digit hex")
        if key == "ATTRS":
            attrs.add(m["attr"] or "")
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
    device, interface = attrs & USB_DEVICE_ATTRS, attrs & USB_INTERFACE_ATTRS
    if device and interface:
        problems.append(
            f"ATTRS{{{sorted(device)[0]}}} (on the usb_device) and "
            f"ATTRS{{{sorted(interface)[0]}}} (on the usb_interface) in one rule: udev needs "
            "every ATTRS of a rule on the same device, so this never matches; match "
            "ENV{ID_VENDOR_ID}, ENV{ID_MODEL_ID} and ENV{ID_USB_INTERFACE_NUM} (usb_id) instead"
        )
    return problems


def lint_rules(text: str) -> list[str]:
    """Problems in a rules file, each as 'line N: what'; empty when it is clean."""
    lines = _logical_lines(text)
    problems = [
        f"line {number}: {problem}" for number, line in lines for problem in lint_line(line)
    ]
    labels = {m.group(1) for _, line in lines for m in re.finditer(r'LABEL="([^"]*)"', line)}
    for number, line in lines:
        for m in re.finditer(r'GOTO="([^"]*)"', line):
            if m.group(1) not in labels:
                problems.append(f"line {number}: GOTO {m.group(1)!r} has no LABEL in this file")
    return problems


# -- a model of udev applying the rules to one event -----------------------------------------


@dataclass
class Device:
    """One device event as udev sees it: the device, its ancestors (nearest first), the
    properties it has so far, and what `IMPORT{builtin}="usb_id"` would add."""

    subsystem: str
    attrs: dict[str, str] = field(default_factory=dict)
    parents: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    usb_id: dict[str, str] = field(default_factory=dict)
    action: str = "add"


@dataclass
class Result:
    env: dict[str, str]
    symlinks: list[str]
    group: str = ""
    mode: str = ""


def _matches(pattern: str, value: str | None) -> bool:
    value = value or ""
    return any(
        (p == "" and value == "") or (p != "" and fnmatch.fnmatchcase(value, p))
        for p in pattern.split("|")
    )


def _pairs(line: str) -> list[tuple[str, str | None, str, str]]:
    out, pos = [], 0
    while pos < len(line):
        m = PAIR.match(line, pos)
        if m is None:
            raise ValueError(f"cannot read rule: {line!r}")
        out.append((m["key"], m["attr"], m["op"], m["value"]))
        pos = m.end() + 1
    return out


def apply_rules(text: str, dev: Device) -> Result:
    """What a rules file does to one device event (a model of udev(7), enough for ours)."""
    env = {"SUBSYSTEM": dev.subsystem, "ACTION": dev.action, **dev.env}
    result = Result(env=env, symlinks=[])
    chain = [(dev.subsystem, dev.attrs), *dev.parents]
    goto = ""
    for _, line in _logical_lines(text):
        pairs = _pairs(line)
        if goto:
            if any(k == "LABEL" and v == goto for k, _, _, v in pairs):
                goto = ""
            continue
        ok = True
        parent_keys = [(k, a, op, v) for k, a, op, v in pairs if k in ("ATTRS", "SUBSYSTEMS")]
        for key, attr, op, value in pairs:
            if op not in MATCH_OPS:
                continue
            if key == "ACTION":
                hit = _matches(value, dev.action)
            elif key == "SUBSYSTEM":
                hit = _matches(value, dev.subsystem)
            elif key == "ENV":
                hit = _matches(value, env.get(attr or ""))
            elif key == "ATTR":
                hit = _matches(value, dev.attrs.get(attr or ""))
            elif key in ("ATTRS", "SUBSYSTEMS"):
                continue  # below: all of them on one device of the chain
            else:
                raise ValueError(f"the model does not know the match key {key}")
            if hit != (op == "=="):
                ok = False
        if ok and parent_keys:
            ok = any(
                all(
                    _matches(v, subsystem if k == "SUBSYSTEMS" else attrs.get(a or ""))
                    == (op == "==")
                    for k, a, op, v in parent_keys
                )
                for subsystem, attrs in chain
            )
        if not ok:
            continue
        for key, attr, op, value in pairs:
            if op in MATCH_OPS:
                continue
            if key == "ENV":
                env[attr or ""] = value
            elif key == "SYMLINK":
                result.symlinks += value.split()
            elif key == "GROUP":
                result.group = value
            elif key == "MODE":
                result.mode = value
            elif key == "IMPORT" and attr == "builtin" and value == "usb_id":
                env.update(dev.usb_id)
            elif key == "GOTO":
                goto = value
            elif key != "LABEL":
                raise ValueError(f"the model does not know the assignment {key}")
        if goto:
            continue
    return result


def main(paths: list[str]) -> int:
    bad = 0
    for path in paths:
        for problem in lint_rules(Path(path).read_text()):
            print(f"{path}: {problem}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
