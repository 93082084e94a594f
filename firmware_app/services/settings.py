"""Reading and changing the owner's settings: validated, whole, announced on the bus.

A save either stores a fully valid document or nothing (the store write is one journal
line). Readers get the cached, typed `Settings`; writers publish SettingsChanged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..errors import FieldProblem, SettingsError
from ..events import EventBus, SettingsChanged
from ..settings import model
from ..settings.model import Settings
from ..settings.schema import from_dict
from ..store import Store

log = logging.getLogger(__name__)

DB, KEY = "settings", "settings"


class SettingsService:
    def __init__(self, store: Store, bus: EventBus) -> None:
        self._store = store
        self._bus = bus
        self._lock = threading.Lock()
        self._current = self._load()

    def _load(self) -> Settings:
        doc = self._store.get_document(DB, KEY)
        if doc is None:
            return Settings(business=model.Business(timezone=model.system_timezone()))
        try:
            return model.settings_from_dict(doc, "stored settings")
        except SettingsError as exc:
            # Never a crash loop: keep every good value, default the bad ones, say so.
            log.error("stored settings have problems, using defaults for them: %s", exc)
            problems: list[FieldProblem] = []
            try:
                migrated = model.migrate(doc)
            except SettingsError:
                return Settings()
            body = {k: v for k, v in migrated.items() if k != "schema_version"}
            result: Settings = from_dict(Settings, body, "", problems)
            return result

    def get(self) -> Settings:
        return self._current

    @property
    def configured(self) -> bool:
        """True once settings were saved at least once (first-run setup done)."""
        return self._store.get_document(DB, KEY) is not None

    def _commit(self, new: Settings) -> list[tuple[str, Any, Any]]:
        changes = model.diff(self._current, new)
        self._store.put_document(DB, KEY, model.settings_to_dict(new))
        self._current = new
        sections = tuple(sorted({name.split(".", 1)[0] for name, _, _ in changes}))
        if sections:
            self._bus.publish(SettingsChanged(sections=sections))
        return changes

    def save(self, new: Settings) -> list[tuple[str, Any, Any]]:
        """Store a whole settings object after validating it; returns what changed."""
        model.settings_from_dict(model.settings_to_dict(new))  # raises naming every problem
        with self._lock:
            return self._commit(new)

    def save_section(self, name: str, data: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """Validate one section's values (a form) and store them; nothing on error."""
        value = model.section_from_dict(name, data)
        with self._lock:
            new = self._current.replace(name, value)
            # cross-section checks run on the whole document
            model.settings_from_dict(model.settings_to_dict(new))
            return self._commit(new)

    def export_toml(self, *, secrets: bool = True) -> str:
        """All settings as TOML; `secrets=False` leaves out the passwords and the SIM PIN."""
        return model.export_toml(self._current, secrets=secrets)

    def preview_import(
        self, text: str, context: str = "settings file"
    ) -> tuple[Settings, list[tuple[str, Any, Any]]]:
        """Validate a TOML document; returns it and the changes it would make. Stores nothing.
        A secret the file leaves out (an export without secrets) keeps its saved value."""
        new = model.import_toml(text, context, keep=self._current)
        return new, model.diff(self._current, new)

    def import_toml(self, text: str, context: str = "settings file") -> list[tuple[str, Any, Any]]:
        new = model.import_toml(text, context, keep=self._current)
        with self._lock:
            return self._commit(new)
