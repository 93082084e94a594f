"""Settings sections for greetings (per key: default, own text or a recording) and forwarding
(network forwarding on GSM lines, hook-flash timing, recording of bridged calls).

Plain data (texts, media references), so both export as readable TOML. Pure: no I/O; the
greetings and forwarding services read these sections.
"""

# `setting()` returns a dataclasses.field(), which RUF009 cannot tell.
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from ..errors import FieldProblem
from .schema import number_range, setting

FIXED_KEYS: tuple[str, ...] = (
    "open",
    "closed",
    "holiday",
    "voicemail",
    "connecting",
    "accept_call",
    "not_accepted",
    "recording_notice",
    "goodbye",
    "screen",
)
"""Greeting keys that always exist; `closure:<id>`, `menu:<mode>` and `message:<name>`
come and go with the closures, menus and menu messages in the settings."""

_KEY = re.compile(r"^(?:closure|menu|message):[a-z0-9][a-z0-9_-]{0,31}$")
_REF = re.compile(r"^media/\d{4}/\d{2}/[A-Za-z0-9_-]{8,64}\.wav$")
_VOICE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{1,8})*(?:\+[a-z0-9]{1,16})?$")
MAX_TEXT = 600


def greeting_key(v: str) -> str | None:
    if v in FIXED_KEYS or _KEY.match(v):
        return None
    return "a greeting key: " + ", ".join(FIXED_KEYS) + ", closure:<id>, menu:<mode>"


def voice_name(v: str) -> str | None:
    if v == "" or _VOICE.match(v):
        return None
    return "an espeak-ng voice like en-us, en-gb, de or fr (empty: the default voice)"


def _text(v: str) -> str | None:
    if len(v) <= MAX_TEXT and not any(ord(c) < 32 and c not in "\n" for c in v):
        return None
    return f"up to {MAX_TEXT} characters of plain text"


_PREFIX = re.compile(r"^[0-9*#]{0,4},{0,3}$")


def outside_line_prefix(v: str) -> str | None:
    if _PREFIX.match(v):
        return None
    return 'up to 4 digits (or * #), then up to 3 commas for 2 s pauses, e.g. "9," (or empty)'


def _ref(v: str) -> str | None:
    return None if v == "" or _REF.match(v) else "a stored recording (media/YYYY/MM/<id>.wav)"


@dataclasses.dataclass(slots=True, kw_only=True)
class Greeting:
    key: str = setting("open", label="Greeting", check=greeting_key)
    mode: Literal["default", "text", "recording"] = setting(
        "default",
        label="Uses",
        help="default: the text Frontdesk writes from the business name and hours; text: "
        "your own words, spoken; recording: an uploaded recording.",
    )
    text: str = setting("", label="Text", check=_text, help="Spoken with text-to-speech.")
    recording: str = setting("", label="Recording", check=_ref)
    voice: str = setting("", label="Voice", check=voice_name, help="Empty: the default voice.")

    def validate(self) -> list[FieldProblem]:
        if self.mode == "text" and not self.text.strip():
            return [FieldProblem("text", self.text, "some words to say (the mode is text)")]
        if self.mode == "recording" and not self.recording:
            return [FieldProblem("recording", "", "an uploaded recording (the mode is recording)")]
        return []


@dataclasses.dataclass(slots=True, kw_only=True)
class Greetings:
    voice: str = setting(
        "en-us",
        label="Voice",
        check=voice_name,
        help="The espeak-ng voice for spoken greetings, e.g. en-us, en-gb, de, fr.",
    )
    speed: int = setting(150, label="Speaking speed (words a minute)", check=number_range(80, 260))
    items: list[Greeting] = setting(
        default_factory=list,
        label="Greetings",
        help="Only greetings the owner changed are listed; the rest use the default text.",
    )

    def validate(self) -> list[FieldProblem]:
        seen: set[str] = set()
        problems: list[FieldProblem] = []
        for i, g in enumerate(self.items):
            if g.key in seen:
                problems.append(FieldProblem(f"items[{i}].key", g.key, "each greeting once"))
            seen.add(g.key)
        return problems

    def get(self, key: str) -> Greeting | None:
        return next((g for g in self.items if g.key == key), None)


@dataclasses.dataclass(slots=True, kw_only=True)
class Forwarding:
    network: bool = setting(
        False,
        label="Let the mobile network forward unanswered calls (GSM)",
        help="While open, calls Frontdesk does not pick up are forwarded by the network "
        "(AT+CCFC, no reply) to the first staff member on duty; after hours nothing is "
        "forwarded so Frontdesk takes the call.",
    )
    no_reply_seconds: int = setting(
        20,
        label="Network forwarding after (seconds)",
        check=number_range(5, 30),
        help="3GPP allows 5 to 30 seconds.",
    )
    flash_ms: int = setting(
        500,
        label="Hook flash length (ms)",
        check=number_range(50, 2000),
        help="Analog lines on a PBX or Centrex: how long the line is broken for a transfer "
        "(often 100 to 600 ms; ask the phone company).",
    )
    transfer_prefix: str = setting(
        "",
        label="Outside-line prefix for transfers",
        check=outside_line_prefix,
        help="Analog lines on a PBX: what the phone system needs before an outside number, "
        'e.g. "9"; each comma waits 2 s for its second dial tone ("9,"). Empty on Centrex '
        "and lines that dial out directly.",
    )
    record_calls: bool = setting(
        False,
        label="Record calls put through by Frontdesk",
        help="Both sides are recorded into one file after a notice is played to the caller. "
        "Check the law where you are first.",
    )
    keep_recordings_days: int = setting(
        30,
        label="Keep call recordings (days)",
        check=number_range(1, 3650),
        help="Recordings older than this are deleted automatically.",
    )

    def validate(self) -> list[FieldProblem]:
        return []


__all__ = [
    "FIXED_KEYS",
    "MAX_TEXT",
    "Forwarding",
    "Greeting",
    "Greetings",
    "greeting_key",
    "outside_line_prefix",
    "voice_name",
]
