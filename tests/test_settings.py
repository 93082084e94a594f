"""The owner settings model: validation, migration, TOML round trip, the settings service."""

from __future__ import annotations

import pytest

from firmware_app.errors import SettingsError
from firmware_app.events import EventBus, SettingsChanged
from firmware_app.services.settings import SettingsService
from firmware_app.settings import model
from firmware_app.settings.model import Settings, export_toml, import_toml, settings_from_dict
from firmware_app.store import Store


def problems(exc: pytest.ExceptionInfo[SettingsError]) -> dict[str, str]:
    return {p.field: p.allowed for p in exc.value.problems}


@pytest.mark.parametrize(
    ("doc", "field", "allowed"),
    [
        ({"business": {"name": ""}}, "business.name", "1 to 80 characters"),
        ({"business": {"name": "A\r\nBcc: x@y"}}, "business.name", "no line breaks"),
        ({"business": {"name": 5}}, "business.name", "a text"),
        ({"business": {"timezone": "Mars/Olympus"}}, "business.timezone", "IANA timezone"),
        ({"business": {"country": "XX"}}, "business.country", "two-letter country code"),
        (
            {"business": {"country": "US", "subdivision": "ZZ"}},
            "business.subdivision",
            "a region of US",
        ),
        ({"business": {"owner_email": "not-an-address"}}, "business.owner_email", "email address"),
        ({"business": {"nickname": "x"}}, "business.nickname", "a known field"),
        ({"email": {"smtp_port": 0}}, "email.smtp_port", "from 1 to 65535"),
        ({"email": {"smtp_port": "587"}}, "email.smtp_port", "a whole number"),
        ({"email": {"security": "ssl"}}, "email.security", "one of 'none', 'starttls', 'tls'"),
        ({"email": []}, "email", "a table"),
        ({"phone": {}}, "phone", "a known field"),
    ],
)
def test_validation_names_field_value_and_what_is_allowed(
    doc: dict, field: str, allowed: str
) -> None:
    with pytest.raises(SettingsError) as exc:
        settings_from_dict(doc)
    found = problems(exc)
    assert field in found, found
    assert allowed in found[field]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as exc:
        settings_from_dict({"business": {"name": "", "country": "XX"}, "email": {"smtp_port": -1}})
    assert set(problems(exc)) == {"business.name", "business.country", "email.smtp_port"}
    assert "business.name: '' is not allowed" in str(exc.value)


def test_valid_document_and_subdivision() -> None:
    s = settings_from_dict(
        {
            "business": {
                "name": "Ünïcode Bakery",
                "country": "DE",
                "subdivision": "BY",
                "timezone": "Europe/Berlin",
            }
        }
    )
    assert s.business.subdivision == "BY"


def test_migration_from_version_1() -> None:
    v1 = {
        "schema_version": 1,
        "business": {"name": "Old"},
        "email": {"smtp_host": "mail.example.com", "smtp_port": 465, "use_tls": True},
    }
    s = settings_from_dict(v1)
    assert s.email.security == "tls"
    assert (
        model.migrate({"schema_version": 1, "email": {"use_tls": False}})["email"]["security"]
        == "none"
    )
    assert (
        model.migrate({"schema_version": 1, "email": {"use_tls": True}})["email"]["security"]
        == "starttls"
    )
    assert v1["email"]["use_tls"] is True  # the input is not changed
    with pytest.raises(SettingsError, match="schema_version"):
        settings_from_dict({"schema_version": 99})


def test_migration_from_version_2_web_url() -> None:
    """Version 2's default link address (the image's) becomes version 3's empty value, this
    box's own address; version 2's empty value (no links) becomes "none"; others stay."""

    def web_url(value: str) -> str:
        doc = {"schema_version": 2, "email": {"web_url": value}}
        return settings_from_dict(doc).email.web_url

    assert web_url("http://frontdesk.local:8080") == ""
    assert web_url("http://frontdesk.local:8080/") == ""
    assert web_url("") == "none"
    assert web_url("https://desk.example.com") == "https://desk.example.com"
    assert settings_from_dict({"schema_version": 2}).email.web_url == ""
    assert model.Settings().email.web_url == ""


def test_export_import_round_trips_exactly() -> None:
    s = settings_from_dict(
        {
            "business": {
                "name": 'Quote " and \\ back',
                "owner_email": "o@example.com",
                "country": "GB",
                "timezone": "Europe/London",
            },
            "email": {"smtp_host": "smtp.example.com", "password": "pä$$ word"},
        }
    )
    text = export_toml(s)
    assert text.startswith("# Frontdesk settings")
    again = import_toml(text)
    assert again == s
    assert export_toml(again) == text


def test_import_reports_bad_toml() -> None:
    with pytest.raises(SettingsError) as exc:
        import_toml("[business\nname=", "backup.toml")
    assert "valid TOML" in str(exc.value)


def test_diff_masks_secrets() -> None:
    a = Settings()
    b = settings_from_dict({"email": {"password": "secret"}, "business": {"name": "New"}})
    changes = dict((f, (o, n)) for f, o, n in model.diff(a, b))
    assert changes["email.password"] == ("••••", "••••")
    assert changes["business.name"] == ("My Business", "New")


def test_service_saves_whole_or_nothing(store: Store) -> None:
    bus = EventBus()
    seen: list[SettingsChanged] = []
    bus.subscribe(SettingsChanged, seen.append)
    svc = SettingsService(store, bus)
    assert not svc.configured
    svc.save_section("business", {"name": "Acme", "timezone": "America/New_York", "country": "US"})
    assert seen[-1].sections == ("business",)
    with pytest.raises(SettingsError):
        svc.save_section("business", {"name": "Good name", "country": "XX"})
    assert svc.get().business.name == "Acme"
    again = SettingsService(store, bus)
    assert again.configured and again.get().business.timezone == "America/New_York"


def test_service_import_preview_changes_nothing(store: Store) -> None:
    svc = SettingsService(store, EventBus())
    text = export_toml(settings_from_dict({"business": {"name": "Restored"}}))
    _, changes = svc.preview_import(text)
    assert ("business.name", svc.get().business.name, "Restored") in changes
    assert svc.get().business.name != "Restored"
    svc.import_toml(text)
    assert svc.get().business.name == "Restored"


def test_damaged_stored_settings_keep_good_values(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.put_document(
        "settings", "settings", {"schema_version": 2, "business": {"name": "Kept", "country": "??"}}
    )
    svc = SettingsService(store, EventBus())
    assert svc.get().business.name == "Kept"
    assert svc.get().business.country == "US"
    assert "stored settings have problems" in caplog.text


def test_cross_section_problem_is_reported_on_the_whole_document() -> None:
    doc = {
        "rules": {
            "menus": [
                {
                    "mode": "open",
                    "options": [
                        {"digit": "1", "action": "ring_staff", "target": "sales", "label": "Sales"}
                    ],
                }
            ]
        },
    }
    with pytest.raises(SettingsError) as exc:
        settings_from_dict(doc)
    assert "rules.menus[0].options[0].target" in problems(exc)
