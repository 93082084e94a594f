"""Email message builders: plain data about a voicemail, missed call, SMS or fax in, a Draft out.

Pure: no store, no SMTP, no clock. Channel code fills the notice dataclasses and calls a
builder; the Notifier resolves recipients, applies the attachment limit and queues the Draft.
Everything a caller controls (names, numbers, SMS text, fax ids) is escaped in HTML and
cleaned of control characters before it can reach a header.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...numbers import with_name

if TYPE_CHECKING:
    import jinja2

Kind = Literal["voicemail", "missed_call", "sms", "fax", "test", "digest", "alert"]

SUBJECT_MAX = 120
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


# -- text hygiene ------------------------------------------------------------------------------


def header_text(value: str, limit: int = SUBJECT_MAX) -> str:
    """One line of text safe for a header: no CR/LF or other controls, no bidi overrides.

    Controls and line/paragraph separators become spaces, runs of spaces collapse, and the
    result is cut to `limit` characters with an ellipsis.
    """
    out: list[str] = []
    for ch in value:
        if ch in _BIDI:
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Zl", "Zp", "Cs") or ch.isspace():
            ch = " "
        out.append(ch)
    text = " ".join("".join(out).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def body_text(value: str) -> str:
    """Text for a message body: newlines normalised, other control characters removed."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    kept = []
    for ch in value:
        if ch in ("\n", "\t"):
            kept.append(ch)
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs"):
            continue
        elif ch in ("\u2028", "\u2029"):
            kept.append("\n")
        else:
            kept.append(ch)
    return "".join(kept)


def file_name(value: str, default: str = "attachment") -> str:
    """An attachment file name of safe ASCII characters only."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in value)
    cleaned = cleaned.strip("-.")
    return cleaned[:80] or default


# -- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What every message needs to know about the business and this installation."""

    business_name: str = "Frontdesk"
    timezone: str = "UTC"
    country: str = "US"
    web_url: str = ""  # e.g. "http://frontdesk.local:8080"; empty: no links

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    def record_url(self, record_id: str) -> str:
        """The web page of one history record (the web UI serves `/history/<id>`)."""
        if not self.web_url or not record_id:
            return ""
        return f"{self.web_url.rstrip('/')}/history/{quote(record_id, safe='')}"

    def home_url(self) -> str:
        return self.web_url.rstrip("/") if self.web_url else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicemailNotice:
    number: str  # as received; "" when the caller withheld it
    at: datetime  # aware; shown in the business timezone
    duration_s: float
    contact_name: str = ""
    audio_ref: str = ""  # media reference of the recording (MP3 preferred)
    record_id: str = ""  # history record id, for the link to the web page
    line: str = ""  # which line took it, e.g. "Office line"
    box: str = ""  # voicemail box (a menu option's target); "" is the main box
    staff: tuple[str, ...] = ()  # staff members (by name) the message is for


@dataclass(frozen=True, slots=True, kw_only=True)
class MissedCallNotice:
    number: str
    at: datetime
    contact_name: str = ""
    reason: str = ""  # e.g. "after hours", "no answer", "caller hung up during greeting"
    record_id: str = ""
    line: str = ""
    staff: tuple[str, ...] = ()  # staff members (by name) the call was for
    interrupted: bool = False  # in progress when Frontdesk stopped: the caller may be cut off


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsNotice:
    number: str
    at: datetime
    text: str
    contact_name: str = ""
    record_id: str = ""
    line: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FaxNotice:
    number: str
    at: datetime
    pages: int
    remote_id: str = ""  # the sender's station id (TSI/CSID) as the fax machine sent it
    contact_name: str = ""
    pdf_ref: str = ""
    record_id: str = ""
    line: str = ""
    problem: str = ""  # e.g. "the line dropped after page 2"; empty when received cleanly


@dataclass(frozen=True, slots=True, kw_only=True)
class FaxSentNotice:
    """The end of an outgoing fax: sent, or given up after `attempts` tries."""

    number: str
    at: datetime
    ok: bool
    pages: int
    attempts: int = 1
    remote_id: str = ""  # the receiver's station id (CSI)
    contact_name: str = ""
    reason: str = ""  # why it failed, in words
    record_id: str = ""
    line: str = ""


# -- output ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A media file to attach, by reference; `url` is shown instead when it is too large.

    `note` is what the bodies say when it is attached ("The recording is attached."). The
    Notifier adds it once the attachment limit has kept the file, and says instead that it
    was too large (with the link) or missing: the bodies never claim a file that is not
    there."""

    ref: str
    filename: str
    content_type: str
    url: str = ""
    note: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "filename": self.filename,
            "content_type": self.content_type,
            "url": self.url,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Draft:
    """A message ready to queue: the Notifier adds recipients, Message-ID and Date."""

    kind: Kind
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()
    record_id: str = ""
    owned_media: tuple[str, ...] = field(default=())  # derived files deleted with the message


# -- formatting helpers ------------------------------------------------------------------------


def format_number(number: str, country: str) -> str:
    """A phone number the way people read it; national form for the business's country."""
    number = header_text(number, 40)
    if not number:
        return ""
    try:
        import phonenumbers

        parsed = phonenumbers.parse(number, country or None)
        if not phonenumbers.is_possible_number(parsed):
            return number
        region = phonenumbers.region_code_for_number(parsed)
        fmt = (
            phonenumbers.PhoneNumberFormat.NATIONAL
            if region == country
            else phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
        return str(phonenumbers.format_number(parsed, fmt))
    except Exception:  # a number phonenumbers cannot read is shown as received
        return number


def format_duration(seconds: float) -> str:
    total = max(0, round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_span(seconds: float) -> str:
    """A length of time in words: "3 minutes", "2 hours 5 minutes", "3 days 4 hours"."""
    minutes = max(0, round(seconds / 60))
    if minutes < 1:
        return "less than a minute"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    units = [(days, "day"), (hours, "hour"), (mins, "minute")]
    words = [f"{n} {u}{'' if n == 1 else 's'}" for n, u in units if n]
    return " ".join(words[:2])


def format_time(at: datetime, ctx: Context) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(ctx.zone())
    return f"{local:%a %d %b %Y, %H:%M} ({local.tzname()})"


def caller(number: str, contact_name: str, ctx: Context) -> tuple[str, str]:
    """(who, number) for display: the contact's name or the number, and the number."""
    shown = format_number(number, ctx.country) or "withheld number"
    name = header_text(contact_name, 60)
    return (name or shown), shown


def _stamp(at: datetime, ctx: Context) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return f"{at.astimezone(ctx.zone()):%Y-%m-%d-%H%M}"


# -- templates ---------------------------------------------------------------------------------

_HTML = {
    "base.html": """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif; font-size: 15px; color: #222;">
<h2 style="font-size: 18px; margin: 0 0 12px;">{{ heading }}</h2>
<table style="border-collapse: collapse; margin-bottom: 12px;">
{% for label, value in rows %}<tr><th style="text-align: left; padding: 2px 12px 2px 0; \
vertical-align: top; color: #555;">{{ label }}</th><td style="padding: 2px 0;">{{ value }}</td></tr>
{% endfor %}</table>
{% if quote %}<blockquote style="margin: 0 0 12px; padding: 8px 12px; border-left: 3px solid \
#999; white-space: pre-wrap;">{{ quote }}</blockquote>
{% endif %}{% if table %}<table style="border-collapse: collapse; margin-bottom: 12px;">
<tr>{% for h in table_head %}<th style="text-align: left; padding: 4px 10px 4px 0; \
border-bottom: 1px solid #ccc; color: #555;">{{ h }}</th>{% endfor %}</tr>
{% for row in table %}<tr>{% for cell in row %}<td style="padding: 4px 10px 4px 0; \
border-bottom: 1px solid #eee; vertical-align: top;">{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endif %}{% for line in notes %}<p>{{ line }}</p>
{% endfor %}{% if link %}<p><a href="{{ link }}">{{ link_text }}</a></p>
{% endif %}<p style="color: #777; font-size: 12px;">Sent by Frontdesk for {{ business }}.</p>
</body></html>
""",
}

_TEXT = {
    "base.txt": """{{ heading }}

{% for label, value in rows %}{{ label }}: {{ value }}
{% endfor %}{% if quote %}
{{ quote }}
{% endif %}{% if table %}
{% for row in table %}{{ row | join("  ") }}
{% endfor %}{% endif %}{% for line in notes %}
{{ line }}
{% endfor %}{% if link %}
{{ link_text }}: {{ link }}
{% endif %}
--
Sent by Frontdesk for {{ business }}.
""",
}


@functools.cache
def _envs() -> tuple[jinja2.Environment, jinja2.Environment]:
    """The HTML and plain-text template environments, made with the first email: jinja2
    loads then, not at start (the web page brings it too, with its first request)."""
    import jinja2

    html = jinja2.Environment(
        loader=jinja2.DictLoader(_HTML), autoescape=True, undefined=jinja2.StrictUndefined
    )
    # The plain-text body is never rendered as HTML: no escaping wanted there.
    text = jinja2.Environment(
        loader=jinja2.DictLoader(_TEXT),
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return html, text


def _render(
    kind: Kind,
    ctx: Context,
    *,
    subject: str,
    heading: str,
    rows: list[tuple[str, str]],
    quote: str = "",
    notes: tuple[str, ...] = (),
    link: str = "",
    link_text: str = "Open in Frontdesk",
    attachments: tuple[Attachment, ...] = (),
    record_id: str = "",
    table_head: Sequence[str] = (),
    table: Sequence[Sequence[str]] = (),
) -> Draft:
    clean_subject = header_text(subject)
    values: dict[str, Any] = {
        "subject": clean_subject,
        "heading": body_text(heading),
        "rows": [(label, body_text(value)) for label, value in rows if value],
        "quote": body_text(quote),
        "notes": [body_text(n) for n in notes],
        "link": link,
        "link_text": link_text,
        "business": body_text(ctx.business_name),
        "table_head": list(table_head),
        "table": [[header_text(c, 200) for c in row] for row in table],
    }
    return Draft(
        kind=kind,
        subject=clean_subject,
        text=_envs()[1].get_template("base.txt").render(values),
        html=_envs()[0].get_template("base.html").render(values),
        attachments=attachments,
        record_id=record_id,
    )


# -- builders ----------------------------------------------------------------------------------


def voicemail_message(vm: VoicemailNotice, ctx: Context) -> Draft:
    who, number = caller(vm.number, vm.contact_name, ctx)
    duration = format_duration(vm.duration_s)
    link = ctx.record_url(vm.record_id)
    attachments: tuple[Attachment, ...] = ()
    if vm.audio_ref:
        ext = vm.audio_ref.rsplit(".", 1)[-1].lower()
        ctype = {"mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg"}.get(
            ext, "application/octet-stream"
        )
        name = file_name(f"voicemail-{_stamp(vm.at, ctx)}.{ext}")
        attachments = (
            Attachment(
                ref=vm.audio_ref,
                filename=name,
                content_type=ctype,
                url=link or ctx.home_url(),
                note="The recording is attached.",
            ),
        )
    return _render(
        "voicemail",
        ctx,
        subject=f"Voicemail from {who} ({duration})",
        heading=f"New voicemail from {who}",
        rows=[
            ("From", with_name(who, number)),
            ("Received", format_time(vm.at, ctx)),
            ("Length", duration),
            ("Box", vm.box),
            ("Line", vm.line),
        ],
        link=link,
        link_text="Listen in Frontdesk",
        attachments=attachments,
        record_id=vm.record_id,
    )


def missed_call_message(call: MissedCallNotice, ctx: Context) -> Draft:
    who, number = caller(call.number, call.contact_name, ctx)
    return _render(
        "missed_call",
        ctx,
        subject=f"Missed call from {who}",
        heading=f"Missed call from {who}",
        rows=[
            ("From", with_name(who, number)),
            ("Called", format_time(call.at, ctx)),
            ("Why", call.reason),
            ("Line", call.line),
        ],
        notes=(
            "The call was cut off when Frontdesk restarted."
            if call.interrupted
            else "The caller left no message.",
        ),
        link=ctx.record_url(call.record_id),
        record_id=call.record_id,
    )


def sms_message(sms: SmsNotice, ctx: Context) -> Draft:
    who, number = caller(sms.number, sms.contact_name, ctx)
    text = body_text(sms.text)
    return _render(
        "sms",
        ctx,
        subject=f"Text from {who}: {header_text(text, 60)}",
        heading=f"Text message from {who}",
        rows=[
            ("From", with_name(who, number)),
            ("Received", format_time(sms.at, ctx)),
            ("Line", sms.line),
        ],
        quote=text or "(empty message)",
        link=ctx.record_url(sms.record_id),
        link_text="Reply in Frontdesk",
        record_id=sms.record_id,
    )


def fax_message(fax: FaxNotice, ctx: Context) -> Draft:
    station = header_text(fax.remote_id, 40)
    who, number = caller(fax.number, fax.contact_name or station, ctx)
    pages = f"{fax.pages} page" + ("" if fax.pages == 1 else "s")
    link = ctx.record_url(fax.record_id)
    attachments: tuple[Attachment, ...] = ()
    if fax.pdf_ref:
        attachments = (
            Attachment(
                ref=fax.pdf_ref,
                content_type="application/pdf",
                filename=file_name(f"fax-{_stamp(fax.at, ctx)}.pdf"),
                url=link or ctx.home_url(),
                note="The fax is attached as a PDF.",
            ),
        )
    notes = []
    if fax.problem:  # no page at all: the problem says what happened instead
        notes.append(f"The fax may be incomplete: {fax.problem}." if fax.pages else fax.problem)
    return _render(
        "fax",
        ctx,
        subject=f"Fax from {who} ({pages})" + (" - incomplete" if fax.problem else "")
        if fax.pages
        else f"Fax from {who}: nothing arrived",
        heading=f"Fax from {who}",
        rows=[
            ("From", number),
            ("Sender id", station),
            ("Received", format_time(fax.at, ctx)),
            ("Pages", str(fax.pages)),
            ("Line", fax.line),
        ],
        notes=tuple(notes),
        link=link,
        link_text="Open in Frontdesk",
        attachments=attachments,
        record_id=fax.record_id,
    )


def fax_sent_message(fax: FaxSentNotice, ctx: Context) -> Draft:
    who, number = caller(fax.number, fax.contact_name, ctx)
    pages = f"{fax.pages} page" + ("" if fax.pages == 1 else "s")
    tries = f"{fax.attempts} tr" + ("y" if fax.attempts == 1 else "ies")
    notes = () if fax.ok else (f"Not sent: {fax.reason}." if fax.reason else "Not sent.",)
    return _render(
        "fax",
        ctx,
        subject=(f"Fax to {who} sent ({pages})" if fax.ok else f"Fax to {who} failed"),
        heading=f"Fax to {who} " + ("sent" if fax.ok else "not sent"),
        rows=[
            ("To", number),
            ("Receiver id", header_text(fax.remote_id, 40)),
            ("Sent" if fax.ok else "Last try", format_time(fax.at, ctx)),
            ("Pages", pages),
            ("Tries", tries),
            ("Line", fax.line),
        ],
        notes=notes,
        link=ctx.record_url(fax.record_id),
        link_text="Open in Frontdesk",
        record_id=fax.record_id,
    )


def check_email_message(ctx: Context, at: datetime) -> Draft:
    """The "send a test email" message of the settings page."""
    return _render(
        "test",
        ctx,
        subject=f"Frontdesk test email for {ctx.business_name}",
        heading="Email from Frontdesk works",
        rows=[("Sent", format_time(at, ctx))],
        notes=(
            "Voicemail, missed calls, text messages and faxes that nobody takes will "
            "arrive like this.",
        ),
        link=ctx.home_url(),
        link_text="Frontdesk settings",
    )


# -- daily digest ------------------------------------------------------------------------------

DIGEST_ROWS_MAX = 200  # a longer day is summed up in counts, with a link to the full list

_CHANNELS = {"call": "Call", "voicemail": "Voicemail", "sms": "Text", "fax": "Fax"}
_PLURALS = {"call": "calls", "voicemail": "voicemails", "sms": "texts", "fax": "faxes"}
_SINGULARS = {"call": "call", "voicemail": "voicemail", "sms": "text", "fax": "fax"}


def _record_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str) and value:
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def record_start(record: Mapping[str, Any]) -> datetime | None:
    """When a history record's interaction started (`start`, ISO 8601), or None."""
    return _record_time(record.get("start"))


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    return value if isinstance(value, str) else ""


def digest_message(
    start: datetime, end: datetime, records: Sequence[Mapping[str, Any]], ctx: Context
) -> Draft:
    """The daily summary of `start`..`end`: counts per channel and each interaction in order.

    Records are history records of the minimal shape `channel` ('call', 'voicemail',
    'sms', 'fax'), `direction` ('in' or 'out'), `number`, `name`, `start` (ISO 8601) and
    `outcome`; any of them may be missing or of another type, and is then left out.
    """
    zone = ctx.zone()
    rows: list[tuple[datetime, Mapping[str, Any]]] = []
    for rec in records:
        details = rec.get("details")
        if (
            _text(rec, "channel") == "call"
            and _text(rec, "outcome") == "fax"
            and isinstance(details, Mapping)
            and details.get("fax") == "taken over"
        ):
            continue  # a call the fax service took: its fax record stands for it (one line)
        rows.append((record_start(rec) or datetime.min.replace(tzinfo=UTC), rec))
    rows.sort(key=lambda r: r[0])
    counts: dict[str, dict[str, int]] = {}
    for _, rec in rows:
        channel = _text(rec, "channel") or "other"
        outcome = header_text(_text(rec, "outcome"), 40) or "other"
        per = counts.setdefault(channel, {})
        per[outcome] = per.get(outcome, 0) + 1
    summary: list[tuple[str, str]] = []
    parts: list[str] = []
    for channel in [*_CHANNELS, *sorted(set(counts) - set(_CHANNELS))]:
        per = counts.get(channel) or {}
        if not per:
            continue
        total = sum(per.values())
        label = _CHANNELS.get(channel, channel.capitalize())
        plural = _PLURALS.get(channel, "other")
        single = _SINGULARS.get(channel, "other")
        detail = ", ".join(f"{n} {o.replace('_', ' ')}" for o, n in sorted(per.items()))
        title = _PLURALS[channel].capitalize() if channel in _PLURALS else label
        summary.append((title, f"{total} ({detail})"))
        parts.append(f"{total} {single if total == 1 else plural}")
    table: list[tuple[str, str, str, str]] = []
    for at, rec in rows[:DIGEST_ROWS_MAX]:
        channel = _text(rec, "channel")
        what = _CHANNELS.get(channel, header_text(channel, 20).capitalize() or "Other")
        direction = _text(rec, "direction")
        if direction in ("in", "incoming"):
            what += " in"
        elif direction in ("out", "outgoing"):
            what += " out"
        who, number = caller(_text(rec, "number"), _text(rec, "name"), ctx)
        shown = with_name(who, number)
        when = f"{at.astimezone(zone):%H:%M}" if at.year > 1 else "--:--"
        outcome = header_text(_text(rec, "outcome"), 40).replace("_", " ")
        table.append((when, what, shown, outcome))
    notes: list[str] = []
    if len(rows) > DIGEST_ROWS_MAX:
        notes.append(f"… and {len(rows) - DIGEST_ROWS_MAX} more. The full list is on the web page.")
    if not rows:
        notes.append("A quiet day: no calls, voicemail, texts or faxes.")
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    label = f"{local_end:%a %d %b}"
    subject = f"Frontdesk daily summary for {label}: " + (", ".join(parts) or "a quiet day")
    period = f"{local_start:%a %d %b, %H:%M} to {local_end:%a %d %b, %H:%M} ({local_end.tzname()})"
    return _render(
        "digest",
        ctx,
        subject=subject,
        heading=f"Your day at {ctx.business_name}",
        rows=[("Period", period), *summary],
        table_head=("Time", "What", "Who", "Outcome") if table else (),
        table=table,
        notes=tuple(notes),
        link=ctx.home_url(),
        link_text="Open Frontdesk",
    )


# -- system alerts -----------------------------------------------------------------------------


def alert_message(
    title: str,
    details: str,
    opened: datetime,
    ctx: Context,
    *,
    resolved: datetime | None = None,
    advice: str = "",
) -> Draft:
    """One email per incident: when it starts (or, with `resolved`, when it is over)."""
    title = header_text(title, 100)
    if resolved is None:
        return _render(
            "alert",
            ctx,
            subject=f"Frontdesk needs attention: {title}",
            heading=title,
            rows=[("Since", format_time(opened, ctx)), ("Details", details)],
            notes=tuple(
                n
                for n in (
                    advice,
                    "You get this email once. Frontdesk tells you again when it is fixed.",
                )
                if n
            ),
            link=ctx.home_url(),
            link_text="Open Frontdesk",
        )
    lasted = format_span((resolved - opened).total_seconds())
    return _render(
        "alert",
        ctx,
        subject=f"Fixed: {title}",
        heading=f"Fixed: {title}",
        rows=[
            ("Started", format_time(opened, ctx)),
            ("Fixed", format_time(resolved, ctx)),
            ("Lasted", lasted),
            ("Details", details),
        ],
        notes=("Nothing more to do.",),
        link=ctx.home_url(),
        link_text="Open Frontdesk",
    )
