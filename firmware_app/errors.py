"""The one exception root and its families.

Errors shown to people say what was wrong, with the value, and what to do instead.
"""

from __future__ import annotations

from dataclasses import dataclass


class FrontdeskError(Exception):
    """Root of every error Frontdesk raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One bad value: which field, what it was, what would be accepted."""

    field: str
    value: object
    allowed: str

    def __str__(self) -> str:
        return f"{self.field}: {self.value!r} is not allowed; expected {self.allowed}"


class ValidationError(FrontdeskError):
    """One or more fields hold values that are not allowed."""

    def __init__(self, problems: list[FieldProblem], context: str = "") -> None:
        self.problems = list(problems)
        self.context = context
        lines = [str(p) for p in self.problems]
        head = f"{context}: " if context else ""
        super().__init__(head + "; ".join(lines))

    def __reduce__(self) -> tuple[type, tuple[list[FieldProblem], str]]:
        return (type(self), (self.problems, self.context))  # pickles whole (cli.as_data_owner)

    def by_field(self) -> dict[str, str]:
        """Messages keyed by dotted field name (the first problem of each field)."""
        out: dict[str, str] = {}
        for p in self.problems:
            out.setdefault(p.field, f"{p.value!r} is not allowed; expected {p.allowed}")
        return out


class ConfigError(ValidationError):
    """The machine config file is missing, unreadable or holds a bad value."""


class SettingsError(ValidationError):
    """Owner settings failed validation (import, web form, migration)."""


class StoreError(FrontdeskError):
    """The data store cannot be opened or written."""


class StoreLockedError(StoreError):
    """Another process (normally the running daemon) owns the data dir."""


class StoreFileError(StoreError):
    """A store file cannot be read or written (wrong owner or mode, a failing SD card).

    Restarting does not help: the daemon stops with its own exit code (EXIT_STORE_FILE) and
    the systemd unit does not restart it (RestartPreventExitStatus=). `errno` is the
    operating system's error number, when there was one.
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno

    def __reduce__(self) -> tuple[type, tuple[str, int | None]]:
        return (type(self), (str(self), self.errno))


EXIT_STORE_FILE = 78  # EX_CONFIG: systemd leaves the service stopped instead of looping


class DaemonNotRunning(FrontdeskError):
    """A command needed the running daemon and found none."""
