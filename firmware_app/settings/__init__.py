"""Owner settings: the typed model (model.py), its field machinery (schema.py)."""

from .model import (
    SCHEMA_VERSION,
    SECTIONS,
    Settings,
    diff,
    export_toml,
    import_toml,
    section_from_dict,
    settings_from_dict,
    settings_to_dict,
)

__all__ = [
    "SCHEMA_VERSION",
    "SECTIONS",
    "Settings",
    "diff",
    "export_toml",
    "import_toml",
    "section_from_dict",
    "settings_from_dict",
    "settings_to_dict",
]
