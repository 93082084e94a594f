"""Split one AT command line into commands, the way a V.250 modem reads it.

`ATE0V1`, `AT+CREG=2;+CREG?`, `AT-SCID=1;+VCID=1`, `ATS0=1`, `ATD123;` all come apart
here. Pure: no I/O, no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Form = Literal["exec", "set", "read", "test"]

# ITU-T V.250 5.4.2: extended command names start with one of these characters.
_EXTENDED_PREFIXES = "+^-#$*"
# Basic commands with a prefix character (V.250 6.2 "&" commands, vendor "\" and "%").
_BASIC_PREFIXES = "&\\%"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One command from a line: `+CREG` with form `set` and args `2`; `E` exec `0`."""

    name: str
    form: Form = "exec"
    args: str = ""

    @property
    def key(self) -> str:
        """Name plus suffix as typed, for fixed-answer lookups (`^CVOICE?`, `+QPCMV=?`)."""
        suffix = {"exec": "", "read": "?", "test": "=?", "set": "=" + self.args}[self.form]
        return self.name + suffix


class CommandLineError(ValueError):
    """The line does not follow V.250 syntax; the modem answers ERROR."""


def _read_args(body: str, i: int) -> tuple[str, int]:
    """Arguments up to the next `;` outside double quotes."""
    start = i
    quoted = False
    while i < len(body):
        ch = body[i]
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            break
        i += 1
    return body[start:i], i


def split_commands(body: str) -> list[Command]:
    """Commands of the text after `AT` (without the final CR)."""
    out: list[Command] = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        up = ch.upper()
        if ch in " ;":
            i += 1
        elif ch in _EXTENDED_PREFIXES:
            j = i + 1
            while j < n and (body[j].isalnum() or body[j] in "_!%.:/"):
                j += 1
            name = body[i:j].upper()
            if len(name) < 2:
                raise CommandLineError(f"extended command without a name at {body[i:]!r}")
            if body.startswith("=?", j):
                out.append(Command(name=name, form="test"))
                j += 2
            elif body.startswith("?", j):
                out.append(Command(name=name, form="read"))
                j += 1
            elif body.startswith("=", j):
                args, j = _read_args(body, j + 1)
                out.append(Command(name=name, form="set", args=args.strip()))
            else:
                out.append(Command(name=name))
            i = j
        elif up == "D":
            # The dial string runs to the end of the line (a trailing ";" means voice call).
            out.append(Command(name="D", args=body[i + 1 :].strip()))
            i = n
        elif up == "S":
            j = i + 1
            while j < n and body[j].isdigit():
                j += 1
            reg = body[i + 1 : j] or "0"
            name = "S" + str(int(reg))
            if body.startswith("=?", j):
                out.append(Command(name=name, form="test"))
                j += 2
            elif body.startswith("?", j):
                out.append(Command(name=name, form="read"))
                j += 1
            elif body.startswith("=", j):
                k = j + 1
                while k < n and body[k].isdigit():
                    k += 1
                out.append(Command(name=name, form="set", args=body[j + 1 : k] or "0"))
                j = k
            else:
                raise CommandLineError(f"S-register without = or ? at {body[i:]!r}")
            i = j
        elif ch in _BASIC_PREFIXES or up.isalpha():
            j = i + 1
            if ch in _BASIC_PREFIXES:
                if j >= n or not body[j].isalpha():
                    raise CommandLineError(f"bad command at {body[i:]!r}")
                j += 1
            name = body[i:j].upper()
            k = j
            while k < n and body[k].isdigit():
                k += 1
            form: Form = "exec"
            if body.startswith("?", k):
                form = "read"
                k += 1
            out.append(Command(name=name, form=form, args=body[j:k]))
            i = k
        else:
            raise CommandLineError(f"unexpected {ch!r} in {body!r}")
    return out


def split_args(args: str) -> list[str]:
    """Comma-separated arguments with surrounding quotes removed (`"SM","SM"` -> SM, SM)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in args:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p[1:-1] if len(p) >= 2 and p[0] == p[-1] == '"' else p for p in parts]
