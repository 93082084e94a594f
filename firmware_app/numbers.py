"""Phone numbers: E.164 for storing and comparing, the local way of writing them for people.

One place for what every channel needs (caller ID, SMS senders, staff mobiles, contacts).
`phonenumbers` is imported on first use; results are cached (callers ring again).
"""

from __future__ import annotations

import functools


def _alphanumeric(text: str) -> bool:
    """Empty, or a sender name like "VODAFONE" or "Amazon2FA" rather than a number."""
    return sum(c.isdigit() for c in text) < 3


@functools.lru_cache(maxsize=4096)
def normalise(number: str, region: str = "US") -> str:
    """E.164 (`+441632960123`) when the number can be read as one, else its digits.

    `region` is the business's country, for numbers written nationally (`01632 960123`).
    Alphanumeric SMS senders and empty (withheld) numbers come back as given, stripped.
    """
    import phonenumbers

    text = number.strip()
    if _alphanumeric(text):
        return text
    try:
        parsed = phonenumbers.parse(text, region or None)
        if phonenumbers.is_possible_number(parsed):
            return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    except phonenumbers.NumberParseException:
        pass
    digits = "".join(c for c in text if c.isdigit())
    return ("+" + digits) if text.startswith("+") else digits


@functools.lru_cache(maxsize=4096)
def display(number: str, region: str = "US") -> str:
    """How people write it: national form for the business's country, else international."""
    import phonenumbers

    text = number.strip()
    if _alphanumeric(text):
        return text
    try:
        parsed = phonenumbers.parse(text, region or None)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_possible_number(parsed):
        return text
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if phonenumbers.region_code_for_number(parsed) == region
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return str(phonenumbers.format_number(parsed, fmt))


def with_name(name: str, shown: str) -> str:
    """A name and a number written side by side: "JANE DOE, (201) 555-0123". A comma, not
    brackets: numbers written nationally may have brackets of their own."""
    return f"{name}, {shown}" if name and shown and name != shown else (name or shown)


def is_valid(number: str, region: str = "US") -> bool:
    """True when the number is a real, dialable number in its country's plan."""
    import phonenumbers

    try:
        return bool(
            phonenumbers.is_valid_number(phonenumbers.parse(number.strip(), region or None))
        )
    except phonenumbers.NumberParseException:
        return False
