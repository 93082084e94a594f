"""Settings section for call handling: voicemail length and silence, screening, text-back,
what blocked callers hear on analog lines.

Plain data with defaults, so existing settings documents need no migration. Pure: the call
sessions read this section at the start of each call.
"""

from __future__ import annotations

import dataclasses

from .schema import number_range, setting


@dataclasses.dataclass(slots=True, kw_only=True)
class Calls:
    max_message_seconds: int = setting(
        180,
        label="Longest voicemail (seconds)",
        check=number_range(10, 600),
        help="A message stops at this length. One minute is about 60 KB as MP3.",
    )
    silence_seconds: int = setting(
        6,
        label="End a message after silence (seconds)",
        check=number_range(2, 30),
        help="The recording stops when the caller says nothing for this long.",
    )
    screen_seconds: int = setting(
        8,
        label="Screening: wait for the key (seconds)",
        check=number_range(3, 30),
        help="Callers asked to press 1 who press nothing in this time are hung up on "
        "(most robocalls).",
    )
    text_back: bool = setting(
        False,
        label="Text back missed callers",
        help="Send an SMS to a caller who hung up without a message, at most once a day "
        "per number, only to numbers that can take texts (mobiles; needs a GSM line).",
    )
    blocked_message: bool = setting(
        False,
        label="Tell blocked callers their call is not accepted (analog lines)",
        help="Off: an analog line picks up a blocked or rejected call and hangs up at once. "
        'On: the caller hears the "Call not accepted" greeting first. GSM lines always '
        "decline such calls (never connected, so never charged to the caller).",
    )
