"""Phone numbers: E.164 for storing, local form for people, sender names left alone."""

from __future__ import annotations

import pytest

from firmware_app.numbers import display, is_valid, normalise


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("(212) 555-0199", "US", "+12125550199"),
        ("030 123456", "DE", "+4930123456"),
        ("0612345678", "FR", "+33612345678"),
        ("07700 900123 (mobile)", "GB", "07700900123"),  # unreadable: digits kept
        ("VODAFONE", "GB", "VODAFONE"),
        ("Amazon2FA", "US", "Amazon2FA"),
        ("", "GB", ""),
        ("  ", "GB", ""),
        ("+999 12", "GB", "+99912"),
    ],
)
def test_normalise(text: str, region: str, expected: str) -> None:
    assert normalise(text, region) == expected


def test_display_local_and_international() -> None:
    assert display("+442079460958", "GB") == "020 7946 0958"
    assert display("+442079460958", "US") == "+44 20 7946 0958"
    assert display("VODAFONE", "GB") == "VODAFONE"
    assert display("12", "GB") == "12"


def test_is_valid() -> None:
    assert is_valid("+442079460958", "GB")
    assert not is_valid("+4412", "GB")
    assert not is_valid("not a number", "GB")
