"""The T.4 line splitter works on whole arrays; here it is held against a plain reading of
T.4 4.1.2-4.1.4 written one line at a time: same lines, same tags, same code lengths, for
any bit stream (junk, fill, doubled EOLs, RTC, noise after RTC, a tag cut off at the end)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app.media.fax_image import (
    T4Lines,
    build_t4,
    decode_page,
    split_lines,
    unpack,
)
from firmware_app.media.fax_send import encode_page


def reference_split(bits: list[int], *, mr: bool, max_lines: int) -> list[tuple[bool, int, str]]:
    """(1-D tag, code bits up to the last one, line bits with fill) per line, one at a time."""
    eols = []  # position of each EOL's one-bit: 11 or more zeros before it
    zeros = 0
    for i, bit in enumerate(bits):
        if bit and zeros >= 11:
            eols.append(i)
        zeros = 0 if bit else zeros + 1
    ones = [i for i, bit in enumerate(bits) if bit]
    lines: list[tuple[bool, int, str]] = []
    empty = 0
    for k, eol in enumerate(eols):
        start, tag = eol + 1, True
        if mr:
            if start >= len(bits):
                break
            tag, start = bits[start] == 1, start + 1
        nxt = eols[k + 1] if k + 1 < len(eols) else None
        last_one = max(i for i in ones if nxt is None or i < nxt)
        if last_one < start:
            empty += 1
            if empty >= 5 and lines:  # RTC: the page ends
                break
            continue
        empty = 0
        end = nxt - 11 if nxt is not None else min(len(bits), last_one + 9)
        lines.append((tag, last_one + 1 - start, "".join(map(str, bits[start:end]))))
        if len(lines) >= max_lines:
            break
    return lines


def ours(bits: list[int], *, mr: bool, max_lines: int) -> list[tuple[bool, int, str]]:
    got = split_lines(np.array(bits, dtype=np.uint8), mr=mr, max_lines=max_lines)
    return [
        (tag, n, "".join(map(str, seg.tolist())))
        for tag, n, seg in zip(got.one_d, got.code_bits, got.segments, strict=True)
    ]


# Streams built from pieces a fax line carries: EOLs, fill, short codes, long zero runs.
EOL = "000000000001"
PIECES = [EOL, EOL * 5, EOL * 6, "0000" + EOL, "1", "0", "01", "0011", "10110", "00000000"]
streams = st.lists(st.sampled_from(PIECES) | st.text("01", max_size=12), max_size=60).map(
    lambda parts: [int(c) for c in "".join(parts)]
)


@settings(max_examples=400, deadline=None)
@given(streams, st.booleans(), st.sampled_from([2, 10_000]))
def test_split_matches_a_line_by_line_reading(bits: list[int], mr: bool, cap: int) -> None:
    assert ours(bits, mr=mr, max_lines=cap) == reference_split(bits, mr=mr, max_lines=cap)


def test_split_of_a_coded_page_rebuilds_the_same_stream() -> None:
    from PIL import Image, ImageDraw

    im = Image.new("1", (1728, 200), 1)
    ImageDraw.Draw(im).text((40, 40), "Split 12345 " * 20, fill=0)
    for mr in (False, True):
        data = encode_page(im, mr=mr, fill_order=1, min_scan_bits=200)
        lines = split_lines(unpack(data, 1), mr=mr)
        assert len(lines.segments) == 200
        assert build_t4(lines, mr=mr, min_scan_bits=200) == data


def test_noise_around_a_page_is_not_lines() -> None:
    from PIL import Image

    page = Image.new("1", (1728, 40), 1)
    page.paste(0, (100, 10, 900, 30))
    clean = encode_page(page, fill_order=1)
    noisy = b"\xff\x7f\x13" + clean + b"\x5a\xff\x00\x81" * 40  # junk before, noise after RTC
    lines = split_lines(unpack(clean, 1), mr=False)
    empty = np.zeros(0, dtype=np.uint8)
    doubled = build_t4(  # two empty lines (doubled EOLs) in the page
        T4Lines(
            [*lines.segments[:5], empty, *lines.segments[5:20], empty, *lines.segments[20:]],
            [True] * 42,
        ),
        mr=False,
    )
    for data in (noisy, doubled):
        got = decode_page(data, fine=True)
        assert got.lines == 40 and got.damaged_lines == 0 and got.checked_lines == 40
        assert np.array_equal(np.asarray(got.image), np.asarray(page))
