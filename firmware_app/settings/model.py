"""The owner's settings: one typed document, versioned, exported and imported as TOML.

Each section is a dataclass (see schema.py); later features add sections here. The stored
and exported form carries `schema_version`; older documents are migrated step by step.
Pure: no store access, no I/O besides what callers hand in.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import tomli_w

from ..errors import FieldProblem, SettingsError
from .calls import Calls
from .greetings import Forwarding, Greetings
from .lines import Lines
from .notifications import Notifications
from .routing import Holidays, Hours, Override, Rules, Staff, cross_problems
from .schema import email_address, email_list, from_dict, length, number_range, setting, to_dict
from .sms import Sms

SCHEMA_VERSION = 3


@functools.cache
def _timezones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _countries() -> frozenset[str]:
    # The daemon answers from its cached list (firmware_app/services/holidays.py).
    from ..routing.hours import holiday_provider

    return frozenset(holiday_provider().countries())


def system_timezone() -> str:
    """The machine's IANA timezone name, or UTC when it cannot be told."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and tz in _timezones():
        return tz
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        if name in _timezones():
            return name
    except OSError:
        pass
    try:
        target = str(Path("/etc/localtime").readlink())
        name = target.split("zoneinfo/", 1)[1]
        if name in _timezones():
            return name
    except (OSError, IndexError):
        pass
    return "UTC"


def _check_tz(v: str) -> str | None:
    return None if v in _timezones() else "an IANA timezone like Europe/London or America/New_York"


def _check_country(v: str) -> str | None:
    return None if v in _countries() else "a two-letter country code such as US, GB or DE"


@dataclasses.dataclass(slots=True, kw_only=True)
class Business:
    name: str = setting(
        "My Business",
        label="Business name",
        check=length(1, 80),
        help="Shown on the web page and used as the sender name of emails.",
    )
    timezone: str = setting(
        "UTC",
        label="Timezone",
        check=_check_tz,
        widget="timezone",
        help="Business hours are kept in this timezone, summer time included.",
    )
    country: str = setting(
        "US",
        label="Country",
        check=_check_country,
        widget="country",
        help="For public holidays and how phone numbers are written.",
    )
    subdivision: str = setting(
        "",
        label="State or region",
        check=length(0, 10),
        help="Optional: a state or region code for regional holidays, e.g. CA or BY.",
    )
    owner_email: str = setting(
        "",
        label="Owner email",
        check=email_address(),
        help="Where Frontdesk sends what nobody else takes, and system warnings.",
    )

    def validate(self) -> list[FieldProblem]:
        if not self.subdivision:
            return []
        from ..routing.hours import holiday_provider

        subdivisions = list(holiday_provider().countries().get(self.country, ("", ()))[1])
        if self.subdivision not in subdivisions:
            shown = ", ".join(subdivisions[:20]) + ("..." if len(subdivisions) > 20 else "")
            return [
                FieldProblem(
                    "subdivision",
                    self.subdivision,
                    f"a region of {self.country}: {shown or 'none known'}",
                )
            ]
        return []


@dataclasses.dataclass(slots=True, kw_only=True)
class Email:
    smtp_host: str = setting(
        "",
        label="Mail server",
        check=length(0, 253),
        help="Your provider's SMTP relay, e.g. smtp.example.com. Empty: no email.",
    )
    smtp_port: int = setting(
        587,
        label="Port",
        check=number_range(1, 65535),
        help="587 for STARTTLS, 465 for TLS, 25 for plain.",
    )
    security: Literal["none", "starttls", "tls"] = setting(
        "starttls", label="Encryption", help="How the connection to the mail server is protected."
    )
    username: str = setting("", label="User name", check=length(0, 254))
    password: str = setting("", label="Password", check=length(0, 254), secret=True)
    from_address: str = setting(
        "",
        label="Send as",
        check=email_address(),
        help="The From address; most relays require your own account.",
    )
    reply_to: str = setting(
        "",
        label="Replies to",
        check=email_address(),
        help="Where replies to Frontdesk's emails go. Empty: the owner email.",
    )
    voicemail_to: list[str] = setting(  # noqa: RUF009 - setting() is a field()
        default_factory=list,
        label="Voicemail goes to",
        check=email_list,
        help="Who gets an email for each voicemail. Empty: the owner email.",
    )
    missed_call_to: list[str] = setting(  # noqa: RUF009 - setting() is a field()
        default_factory=list,
        label="Missed calls go to",
        check=email_list,
        help="Who gets an email for each missed call. Empty: the owner email.",
    )
    sms_to: list[str] = setting(  # noqa: RUF009 - setting() is a field()
        default_factory=list,
        label="Text messages go to",
        check=email_list,
        help="Who gets an email for each text message received. Empty: the owner email.",
    )
    fax_to: list[str] = setting(  # noqa: RUF009 - setting() is a field()
        default_factory=list,
        label="Faxes go to",
        check=email_list,
        help="Who gets an email for each fax received. Empty: the owner email.",
    )
    attachment_limit_mb: int = setting(
        10,
        label="Attachment limit (MB)",
        check=number_range(1, 50),
        help="Larger recordings and faxes are sent as a link to this web page instead.",
    )
    web_url: str = setting(
        "",
        label="Web page address",
        check=length(0, 200),
        help="How people in the office reach this web page, for the links in emails. "
        "Empty: the address this box serves it on (web.public_url in the machine config, "
        'else worked out from its name and port). "none": no links.',
    )
    keep_sent_days: int = setting(
        30,
        label="Keep sent emails (days)",
        check=number_range(1, 3650),
        help="Sent emails are removed from the outbox after this many days.",
    )


def _topic(v: str) -> str | None:
    return _topic_text(v) if v else "a topic like frontdesk"


def _topic_or_empty(v: str) -> str | None:
    return _topic_text(v) if v else None


@dataclasses.dataclass(slots=True, kw_only=True)
class Mqtt:
    """Events out to an MQTT broker (home automation, wallboards), commands in when allowed."""

    host: str = setting(
        "",
        label="Broker",
        check=length(0, 253),
        help="Host name or address of the MQTT broker. Empty: nothing is published.",
    )
    port: int = setting(
        1883, label="Port", check=number_range(1, 65535), help="1883, or 8883 with TLS."
    )
    username: str = setting("", label="User name", check=length(0, 254))
    password: str = setting("", label="Password", check=length(0, 254), secret=True)
    tls: bool = setting(False, label="Use TLS", help="Encrypt the connection to the broker.")
    base_topic: str = setting(
        "frontdesk",
        label="Base topic",
        check=_topic,
        help="Events go to <base>/interaction, <base>/line/<name>, <base>/state/...",
    )
    discovery_prefix: str = setting(
        "homeassistant",
        label="Discovery prefix",
        check=_topic_or_empty,
        help="Home Assistant discovery topic prefix. Empty: no discovery messages.",
    )
    commands: bool = setting(
        False,
        label="Accept commands",
        help="Let the broker switch the override and send texts (<base>/cmd/...).",
    )


def _topic_text(v: str) -> str | None:
    if any(c in v for c in "+#\0") or v.startswith("/") or v.endswith("/") or len(v) > 100:
        return "a topic like frontdesk or office/frontdesk (no +, #, leading or trailing /)"
    return None


@dataclasses.dataclass(slots=True, kw_only=True)
class Settings:
    business: Business = dataclasses.field(default_factory=Business)
    email: Email = dataclasses.field(default_factory=Email)
    notifications: Notifications = dataclasses.field(default_factory=Notifications)
    hours: Hours = dataclasses.field(default_factory=Hours)
    holidays: Holidays = dataclasses.field(default_factory=Holidays)
    override: Override = dataclasses.field(default_factory=Override)
    staff: Staff = dataclasses.field(default_factory=Staff)
    rules: Rules = dataclasses.field(default_factory=Rules)
    lines: Lines = dataclasses.field(default_factory=Lines)
    calls: Calls = dataclasses.field(default_factory=Calls)
    greetings: Greetings = dataclasses.field(default_factory=Greetings)
    forwarding: Forwarding = dataclasses.field(default_factory=Forwarding)
    sms: Sms = dataclasses.field(default_factory=Sms)
    mqtt: Mqtt = dataclasses.field(default_factory=Mqtt)

    def validate(self) -> list[FieldProblem]:
        """Checks that span sections (run on every whole-document validation)."""
        return cross_problems(self.staff, self.rules)

    def section(self, name: str) -> Any:
        if name not in SECTIONS:
            raise KeyError(name)
        return getattr(self, name)

    def replace(self, name: str, value: Any) -> Settings:
        return dataclasses.replace(self, **{name: value})


SECTIONS: dict[str, type] = {
    f.name: type(getattr(Settings(), f.name)) for f in dataclasses.fields(Settings)
}


# -- migrations: each step takes a document of version N and returns version N+1 ------------


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had `email.use_tls = true|false`; version 2 names the method."""
    email = doc.get("email")
    if isinstance(email, dict) and "use_tls" in email:
        use_tls = email.pop("use_tls")
        port = email.get("smtp_port", 587)
        email["security"] = ("tls" if port == 465 else "starttls") if use_tls else "none"
    return doc


OLD_WEB_URL = "http://frontdesk.local:8080"


def _v2_to_v3(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 2's `email.web_url` defaulted to the image's address and was empty for no
    links; version 3's empty value is this box's own address (the machine config's
    `web.public_url`, else its name and port), and "none" is no links."""
    email = doc.get("email")
    if isinstance(email, dict) and "web_url" in email:
        url = email["web_url"]
        if url == "":
            email["web_url"] = "none"
        elif isinstance(url, str) and url.rstrip("/") == OLD_WEB_URL:
            email["web_url"] = ""
    return doc


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate(doc: dict[str, Any]) -> dict[str, Any]:
    version = doc.get("schema_version", 1)
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        allowed = f"1 to {SCHEMA_VERSION}"
        if isinstance(version, int) and version > SCHEMA_VERSION:
            allowed += " (a file from a newer Frontdesk: update this one first)"
        raise SettingsError([FieldProblem("schema_version", version, allowed)])
    doc = copy.deepcopy(doc)
    while version < SCHEMA_VERSION:
        doc = MIGRATIONS[version](doc)
        version += 1
    doc["schema_version"] = SCHEMA_VERSION
    return doc


def settings_from_dict(doc: dict[str, Any], context: str = "settings") -> Settings:
    """Validate a whole settings document (any schema version); raise naming every problem."""
    try:
        doc = migrate(doc)
    except SettingsError as exc:
        raise SettingsError(exc.problems, context) from None
    body = {k: v for k, v in doc.items() if k != "schema_version"}
    problems: list[FieldProblem] = []
    result: Settings = from_dict(Settings, body, "", problems)
    if problems:
        raise SettingsError(problems, context)
    return result


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **to_dict(settings)}


def section_from_dict(name: str, data: dict[str, Any]) -> Any:
    """Validate one section (a web form's worth); raise naming every bad field."""
    problems: list[FieldProblem] = []
    value = from_dict(SECTIONS[name], data, "", problems)
    if problems:
        raise SettingsError(problems, name)
    return value


EXPORT_HEADER = (
    "# Frontdesk settings. Restore with `frontdesk settings import FILE` or the web page's\n"
    "# Backup section. It holds the mail server password: keep it private.\n"
)


EXPORT_HEADER_NO_SECRETS = (
    "# Frontdesk settings. Restore with `frontdesk settings import FILE` or the web page's\n"
    "# Backup section. This copy leaves out the passwords and the SIM PIN: restoring it keeps\n"
    "# the ones saved on the box (type them again on a new box).\n"
)


def secret_fields() -> list[tuple[str, str]]:
    """(section, field) of every secret setting: passwords and the SIM PIN."""
    return [
        (name, f.name)
        for name, cls in SECTIONS.items()
        for f in dataclasses.fields(cls)
        if f.metadata.get("secret")
    ]


def export_toml(settings: Settings, *, secrets: bool = True) -> str:
    """The settings as a TOML document; `secrets=False` leaves out passwords and the PIN."""
    doc = settings_to_dict(settings)
    if secrets:
        return EXPORT_HEADER + tomli_w.dumps(doc)
    for section, name in secret_fields():
        if isinstance(doc.get(section), dict):
            doc[section].pop(name, None)
    return EXPORT_HEADER_NO_SECRETS + tomli_w.dumps(doc)


def import_toml(
    text: str, context: str = "settings file", keep: Settings | None = None
) -> Settings:
    """Read a settings document. With `keep`, a secret left out of a section the file has
    (a copy exported without secrets) keeps its value in `keep` instead of becoming empty."""
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(
            [FieldProblem("file", context, f"valid TOML ({exc})")], context
        ) from None
    if keep is not None:
        for section, name in secret_fields():
            part = doc.get(section)
            if isinstance(part, dict) and name not in part:
                part[name] = getattr(getattr(keep, section), name)
    return settings_from_dict(doc, context)


def diff(old: Settings, new: Settings) -> list[tuple[str, Any, Any]]:
    """Dotted field names whose values differ: (field, old, new). Secrets shown masked."""
    out: list[tuple[str, Any, Any]] = []

    def walk(prefix: str, a: Any, b: Any, cls: type | None) -> None:
        if dataclasses.is_dataclass(a) and not isinstance(a, type):
            for f in dataclasses.fields(a):
                walk(prefix + f.name + ".", getattr(a, f.name), getattr(b, f.name), type(a))
            return
        if a != b:
            name = prefix.rstrip(".")
            secret = False
            if cls is not None:
                fields_meta = {f.name: f.metadata for f in dataclasses.fields(cls)}
                meta: Mapping[str, Any] = fields_meta.get(name.rsplit(".", 1)[-1], {})
                secret = bool(meta.get("secret"))
            out.append((name, "••••" if secret else to_dict(a), "••••" if secret else to_dict(b)))

    walk("", old, new, None)
    return out
