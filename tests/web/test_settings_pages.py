"""The generic settings pages: every section renders; saving validates, all or nothing."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest
from flask import Blueprint

from firmware_app.services import Services
from firmware_app.settings.model import SECTIONS
from firmware_app.settings.schema import length, number_range, setting
from web_ui import create_app
from web_ui.forms import parse_section_form, section_fields
from web_ui.registry import add_section_page, registry

from .conftest import Owner


@pytest.mark.parametrize("section", list(SECTIONS))
def test_every_section_renders_and_saves_unchanged(
    logged_in: Owner, services: Services, section: str
) -> None:
    page = logged_in.client.get(f"/settings/{section}")
    if section in registry(logged_in.client.application).section_pages:
        # A feature's own page edits this section; the generic page sends the owner there.
        assert page.status_code == 302
        assert logged_in.client.get(page.headers["Location"]).status_code == 200
        return
    assert page.status_code == 200
    before = services.settings.export_toml()
    # Post the form back exactly as rendered: nothing changes, nothing fails.
    cls = SECTIONS[section]
    current = services.settings.get().section(section)
    form: dict[str, str] = {}
    for view in section_fields(cls, current):
        if view.kind == "checkbox":
            if view.value:
                form[view.name] = "1"
        elif view.kind not in ("readonly", "secret"):
            form[view.name] = str(view.value)
    response = logged_in.post(f"/settings/{section}", form)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert services.settings.export_toml() == before


def test_save_shows_errors_inline_and_saves_nothing(logged_in: Owner, services: Services) -> None:
    response = logged_in.post(
        "/email/",
        {
            "smtp_host": "smtp.example.com",
            "smtp_port": "lots",
            "security": "starttls",
            "from_address": "not an address",
            "voicemail_to": "a@example.com\nbroken",
        },
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "There are 3 problems; nothing was saved" in page
    assert "Port: “lots” is not allowed. Expected a whole number." in page
    assert "Send as: “not an address” is not allowed" in page
    assert "Voicemail goes to:" in page and "broken" in page
    assert 'id="f-smtp_port" name="smtp_port" aria-describedby="f-smtp_port-error' in page
    assert 'href="#f-smtp_port"' in page  # the summary links to the field
    # What was typed is shown again so it can be corrected.
    assert 'value="smtp.example.com"' in page
    assert services.settings.get().email.smtp_host == ""  # nothing half-saved


def test_save_valid_section(logged_in: Owner, services: Services) -> None:
    response = logged_in.post(
        "/email/",
        {
            "smtp_host": "smtp.example.com",
            "smtp_port": "465",
            "security": "tls",
            "username": "anna",
            "password": "s3cret-pass",
            "from_address": "desk@rossi.example",
            "voicemail_to": " anna@rossi.example \n\n marco@rossi.example\n",
            "attachment_limit_mb": "12",
            "web_url": "http://desk.local:8080",
            "keep_sent_days": "30",
        },
    )
    assert response.status_code == 302
    email = services.settings.get().email
    assert (email.smtp_host, email.smtp_port, email.security) == ("smtp.example.com", 465, "tls")
    assert email.voicemail_to == ["anna@rossi.example", "marco@rossi.example"]
    assert email.password == "s3cret-pass"
    page = logged_in.client.get("/email/").get_data(as_text=True)
    assert "Email saved" in page
    assert "s3cret-pass" not in page  # secrets are never shown back
    assert "Saved; type to replace it" in page


def test_secret_is_kept_when_left_empty_and_cleared_on_request(
    logged_in: Owner, services: Services
) -> None:
    server = {"smtp_host": "mail.example.com", "smtp_port": "587"}
    logged_in.post("/email/", {"password": "first-secret", **server})
    assert services.settings.get().email.password == "first-secret"
    logged_in.post("/email/", {"password": "", "from_address": "desk@example.com", **server})
    assert services.settings.get().email.password == "first-secret"
    logged_in.post("/email/", {"password": "", "password__clear": "1", **server})
    assert services.settings.get().email.password == ""


def test_secret_is_not_echoed_in_errors(logged_in: Owner) -> None:
    response = logged_in.post("/email/", {"password": "x" * 300, "smtp_port": "587"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "x" * 300 not in page and "Password: expected" in page


def test_unknown_section_is_404(logged_in: Owner) -> None:
    assert logged_in.client.get("/settings/nonsense").status_code == 404


# -- the generic form on a section made up for the test ----------------------------------


@dataclasses.dataclass(slots=True, kw_only=True)
class Inner:
    label: str = setting("x", label="Label")


@dataclasses.dataclass(slots=True, kw_only=True)
class Sample:
    title: str = setting("Hello", label="Title", check=length(1, 20), help="A title.")
    count: int = setting(3, label="Count", check=number_range(0, 10))
    ratio: float = setting(0.5, label="Ratio", check=number_range(0, 1))
    enabled: bool = setting(False, label="Enabled")
    mode: Literal["a", "b_c"] = setting("a", label="Mode")
    names: list[str] = setting(default_factory=list, label="Names")  # noqa: RUF009
    when: str = setting("2025-01-01 10:00", label="When", widget="datetime")
    phone: str = setting("", label="Phone", widget="tel")
    items: list[Inner] = setting(default_factory=lambda: [Inner()], label="Items")  # noqa: RUF009


def test_generic_fields_from_any_dataclass() -> None:
    views = {v.name: v for v in section_fields(Sample, Sample())}
    assert views["title"].kind == "text" and views["title"].help == "A title."
    assert views["count"].kind == "number" and views["count"].step == "1"
    assert views["ratio"].step == "any"
    assert views["enabled"].kind == "checkbox" and views["enabled"].value is False
    assert views["mode"].kind == "select"
    assert [c.value for c in views["mode"].choices] == ["a", "b_c"]
    assert views["names"].kind == "textarea"
    assert (
        views["when"].input_type == "datetime-local" and views["when"].value == "2025-01-01T10:00"
    )
    assert views["phone"].input_type == "tel"
    assert views["items"].kind == "readonly" and views["items"].readonly_items == ["label: x"]


def test_parse_generic_form() -> None:
    form = {
        "title": " Hi ",
        "count": "7",
        "ratio": "0,25",
        "mode": "b_c",
        "names": "a\n\n b \n",
        "when": "2025-02-03T04:05",
        "phone": "+44 1",
    }
    data = parse_section_form(Sample, Sample(), form)
    assert data == {
        "title": "Hi",
        "count": 7,
        "ratio": 0.25,
        "enabled": False,
        "mode": "b_c",
        "names": ["a", "b"],
        "when": "2025-02-03 04:05",
        "phone": "+44 1",
        "items": [{"label": "x"}],
    }
    assert (
        parse_section_form(Sample, Sample(), {"count": "many", "enabled": "1"})["count"] == "many"
    )
    assert parse_section_form(Sample, Sample(), {"enabled": "1"})["enabled"] is True


def test_a_section_can_have_its_own_page(services: Services) -> None:
    app = create_app(services, {"TESTING": True})
    bp = Blueprint("hours_page", __name__)

    @bp.get("/hours")
    def edit() -> str:
        return "custom hours page"

    # A feature registers its page at start-up, before the first request.
    app.register_blueprint(bp)
    add_section_page(app, "business", "hours_page.edit")
    client = app.test_client()
    services.auth.set_password("long enough pw")
    from .conftest import csrf_token

    client.post("/login", data={"password": "long enough pw", "csrf_token": csrf_token(client)})
    assert client.get("/settings/business").headers["Location"] == "/hours"
    assert 'href="/hours"' in client.get("/settings/").get_data(as_text=True)


def test_every_section_has_a_written_title_and_summary() -> None:
    """The settings index never shows a title made from a code name ("Sms", "Mqtt")."""
    from web_ui.settings_pages import SECTION_TITLES

    missing = sorted(set(SECTIONS) - set(SECTION_TITLES))
    assert not missing, f"add a title and summary to SECTION_TITLES for {missing}"
    for name, (title, summary) in SECTION_TITLES.items():
        assert title and summary.endswith("."), name
