"""Email preferences beyond the `email` settings section: the daily summary and warnings.

A typed section like the settings model's (the web form renders it the same way), kept in
the store's `notify` database and validated on every save. Pure apart from `PrefsStore`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from ...errors import FieldProblem, SettingsError
from ...settings.schema import email_list, from_dict, hhmm, setting, to_dict
from ...store import Store

DATABASE = "notify"
KEY = "prefs"


@dataclasses.dataclass(slots=True, kw_only=True)
class NotifyPrefs:
    digest: bool = setting(
        True,
        label="Send a daily summary",
        help="One email a day with the calls, voicemail, texts and faxes of the last 24 hours.",
    )
    digest_time: str = setting(
        "18:00",
        label="Summary time",
        check=hhmm,
        widget="time",
        help="When the summary is sent, in the business's timezone.",
    )
    digest_to: list[str] = setting(  # noqa: RUF009 - setting() is a field()
        default_factory=list,
        label="Summary goes to",
        check=email_list,
        help="Empty: the owner email.",
    )
    alerts: bool = setting(
        True,
        label="Warn me when something is wrong",
        help="A phone line down for over 5 minutes, a SIM card problem, a nearly full disk, "
        "email failing for over an hour. One email per problem, not one per retry.",
    )
    alert_when_fixed: bool = setting(
        True, label="Tell me when it is fixed", help="A second email when the problem is over."
    )
    alerts_to: list[str] = setting(  # noqa: RUF009 - setting() is a field()
        default_factory=list,
        label="Warnings go to",
        check=email_list,
        help="Empty: the owner email.",
    )

    def validate(self) -> list[FieldProblem]:
        if self.digest_time == "24:00":
            return [FieldProblem("digest_time", self.digest_time, "a time from 00:00 to 23:59")]
        return []


def prefs_from_dict(data: dict[str, Any]) -> NotifyPrefs:
    problems: list[FieldProblem] = []
    prefs: NotifyPrefs = from_dict(NotifyPrefs, data, "", problems)
    if problems:
        raise SettingsError(problems, "email preferences")
    return prefs


class PrefsStore:
    """Read and save the preferences durably; listeners hear about each change."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._cached: NotifyPrefs | None = None
        self._listeners: list[Callable[[NotifyPrefs], None]] = []

    def get(self) -> NotifyPrefs:
        with self._lock:
            if self._cached is None:
                doc = self._store.get_document(DATABASE, KEY) or {}
                try:
                    self._cached = prefs_from_dict(doc)
                except SettingsError:  # hand-edited file: keep what is valid, default the rest
                    known = {f.name for f in dataclasses.fields(NotifyPrefs)}
                    self._cached = NotifyPrefs()
                    for name in known & set(doc):
                        try:
                            self._cached = prefs_from_dict(
                                {**to_dict(self._cached), name: doc[name]}
                            )
                        except SettingsError:
                            continue
            return self._cached

    def save(self, data: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """Validate and store all of `data` or nothing; returns (field, old, new) changes."""
        new = prefs_from_dict(data)
        old = self.get()
        changes = [
            (f.name, getattr(old, f.name), getattr(new, f.name))
            for f in dataclasses.fields(NotifyPrefs)
            if getattr(old, f.name) != getattr(new, f.name)
        ]
        if changes:
            with self._lock:
                self._store.put_document(DATABASE, KEY, to_dict(new))
                self._cached = new
            for listener in list(self._listeners):
                listener(new)
        return changes

    def on_change(self, listener: Callable[[NotifyPrefs], None]) -> None:
        self._listeners.append(listener)
