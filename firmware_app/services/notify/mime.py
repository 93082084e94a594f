"""MIME for outbox messages: multipart/mixed around multipart/alternative (text + HTML).

Built with the stdlib `email` package (policy SMTP): RFC 2047 for non-ASCII names, CRLF line
ends, folded headers. Header values are cleaned of control characters before they are set,
so no caller-supplied text can add a header. Never sends anything; never reads settings.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from markupsafe import escape

from ...errors import StoreError
from ...store.media import MediaStore
from .messages import header_text

if TYPE_CHECKING:
    from email.headerregistry import Address
    from email.policy import EmailPolicy

log = logging.getLogger(__name__)


@functools.cache
def mime_policy() -> EmailPolicy[EmailMessage]:
    """The stdlib's SMTP policy. email.policy (with its header registry, about 1 MB) is
    loaded with the first message built, not by an idle daemon."""
    from email import policy

    return policy.SMTP


@dataclass(frozen=True, slots=True, kw_only=True)
class Sender:
    """Who the message is from, taken from the settings at send time."""

    name: str
    address: str
    reply_to: str = ""


def make_message_id(domain: str, when: datetime) -> str:
    """A globally unique Message-ID, fixed once per outbox message (resends reuse it)."""
    domain = "".join(c for c in domain.lower() if c.isalnum() or c in ".-") or "frontdesk.local"
    return f"<{when:%Y%m%d%H%M%S}.{secrets.token_hex(8)}@{domain}>"


def address(addr_spec: str, display_name: str = "") -> Address:
    """An Address; raises ValueError for anything that is not one plain address."""
    if any(ord(c) < 32 or c in '<>,;"' or c.isspace() for c in addr_spec):
        raise ValueError(f"{addr_spec!r} is not a plain email address")
    local, at, domain = addr_spec.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{addr_spec!r} is not an email address")
    from email.headerregistry import Address

    return Address(display_name=header_text(display_name, 78), username=local, domain=domain)


def format_size(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} MB"
    return f"{max(1, round(size / 1024))} kB"


_URL_AT_END = re.compile(r"(https?://\S+)$")


def note_html(note: str) -> str:
    """One note as an HTML paragraph: escaped, a web address at its end made a link."""
    m = _URL_AT_END.search(note)
    if m is None:
        return f"<p>{escape(note)}</p>"
    url = m.group(1)
    return f'<p>{escape(note[: m.start()])}<a href="{escape(url)}">{escape(url)}</a></p>'


def add_notes(text: str, html: str, notes: Sequence[str]) -> tuple[str, str]:
    """Append paragraphs to both bodies (escaped for HTML) before the footer."""
    if not notes:
        return text, html
    marker = "\n--\n"
    block = "".join(f"{n}\n\n" for n in notes)
    head, sep, tail = text.rpartition(marker)
    text = f"{head}\n{block.rstrip()}\n{sep}{tail}" if sep else f"{text}\n{block}"
    paras = "".join(f"{note_html(n)}\n" for n in notes)
    end = html.rfind('<p style="color: #777;')
    if end < 0:
        end = html.rfind("</body>")
    html = html[:end] + paras + html[end:] if end >= 0 else html + paras
    return text, html


def missing_note(filename: str) -> str:
    return f"{filename} could not be attached: the file is missing."


def replace_note(text: str, html: str, old: str, new: str) -> tuple[str, str]:
    """`old` (a note `add_notes` put in) becomes `new` in both bodies; when it is not there,
    `new` is added."""
    paragraph = note_html(old)
    if old and f"\n{old}\n" in text and paragraph in html:
        return text.replace(f"\n{old}\n", f"\n{new}\n", 1), html.replace(
            paragraph, note_html(new), 1
        )
    return add_notes(text, html, [new])


def limit_attachments(
    attachments: Sequence[Mapping[str, Any]], sizes: Mapping[str, int | None], limit: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """Keep attachments in order while their total size fits `limit` bytes.

    Returns the kept attachment documents (with `size`) and notes for the bodies naming
    what was left out and where to find it instead.
    """
    kept: list[dict[str, Any]] = []
    notes: list[str] = []
    total = 0
    for att in attachments:
        size = sizes.get(att["ref"])
        name = att["filename"]
        where = f" Open it here: {att['url']}" if att.get("url") else " Open it in Frontdesk."
        if size is None:
            notes.append(missing_note(name))
        elif total + size > limit:
            notes.append(f"{name} ({format_size(size)}) is too large to attach.{where}")
        else:
            total += size
            kept.append({**att, "size": size})
            if att.get("note"):
                notes.append(str(att["note"]))
    return kept, notes


def build_message(doc: Mapping[str, Any], sender: Sender, media: MediaStore) -> EmailMessage:
    """The email for one outbox document. Same document, same headers and bodies."""
    msg = EmailMessage(policy=mime_policy())
    msg["From"] = address(sender.address, sender.name)
    msg["To"] = [address(a) for a in doc["to"]]
    if sender.reply_to:
        msg["Reply-To"] = address(sender.reply_to)
    msg["Subject"] = header_text(doc["subject"])
    msg["Date"] = format_datetime(datetime.fromisoformat(doc["created"]))
    msg["Message-ID"] = doc["message_id"]
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to Frontdesk
    msg["X-Frontdesk-Kind"] = header_text(str(doc.get("kind", "")), 30)

    text, html = doc["text"], doc["html"]
    parts: list[tuple[bytes, dict[str, Any]]] = []
    for att in doc.get("attachments", []):
        try:
            parts.append((media.read(att["ref"]), att))
        except StoreError as exc:
            log.warning(
                "outbox message %s: cannot attach %s: %s",
                doc.get("message_id"),
                att.get("ref"),
                exc,
            )
            # "The recording is attached." would now be wrong: say what happened instead.
            text, html = replace_note(
                text, html, str(att.get("note") or ""), missing_note(att["filename"])
            )

    # quoted-printable keeps every line 7-bit: no reliance on the server's 8BITMIME
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    for data, att in parts:
        maintype, _, subtype = str(att["content_type"]).partition("/")
        msg.add_attachment(
            data, maintype=maintype, subtype=subtype or "octet-stream", filename=att["filename"]
        )
    # Boundaries from the Message-ID: a resend is byte for byte the same message. "=_" can
    # never occur in quoted-printable or base64 text, so the boundary cannot clash.
    tag = hashlib.sha256(str(doc["message_id"]).encode()).hexdigest()[:24]
    for i, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_fd.{tag}.{i}")
    return msg
