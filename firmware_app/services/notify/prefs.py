"""The email preferences (daily summary, warnings) as the email service sees them.

They are the `notifications` section of the owner's settings, so backups carry them; this
adapter reads them from the settings and saves them through the settings service, telling
listeners (the digest schedule) about each change.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from ...errors import FieldProblem, FrontdeskError, SettingsError
from ...settings.model import Settings
from ...settings.notifications import Notifications as NotifyPrefs
from ...settings.schema import from_dict, to_dict

SECTION = "notifications"
SaveSection = Callable[[str, dict[str, Any]], Any]


def prefs_from_dict(data: dict[str, Any]) -> NotifyPrefs:
    problems: list[FieldProblem] = []
    prefs: NotifyPrefs = from_dict(NotifyPrefs, data, "", problems)
    if problems:
        raise SettingsError(problems, "email preferences")
    return prefs


class PrefsStore:
    """Read the preferences from the settings; save them through the settings service."""

    def __init__(self, settings: Callable[[], Settings], save_section: SaveSection | None) -> None:
        self._settings = settings
        self._save_section = save_section
        self._lock = threading.Lock()
        self._listeners: list[Callable[[NotifyPrefs], None]] = []

    def get(self) -> NotifyPrefs:
        prefs: NotifyPrefs = self._settings().notifications
        return prefs

    def save(self, data: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """Validate and store all of `data` or nothing; returns (field, old, new) changes."""
        if self._save_section is None:
            raise FrontdeskError("email preferences cannot be saved here (read-only settings)")
        new = prefs_from_dict(data)
        with self._lock:
            old = self.get()
            changes = [
                (f.name, getattr(old, f.name), getattr(new, f.name))
                for f in dataclasses.fields(NotifyPrefs)
                if getattr(old, f.name) != getattr(new, f.name)
            ]
            if changes:
                self._save_section(SECTION, to_dict(new))
        if changes:
            for listener in list(self._listeners):
                listener(new)
        return changes

    def on_change(self, listener: Callable[[NotifyPrefs], None]) -> None:
        self._listeners.append(listener)


__all__ = ["SECTION", "NotifyPrefs", "PrefsStore", "prefs_from_dict"]
