"""Received fax pages: raw T.4 page data -> bitmap (libtiff through Pillow) -> PDF (img2pdf).

Bit order is detected, not assumed, and every coded line is checked, so a noisy line is kept
in the picture and counted. Also the T.4 line splitter and TIFF wrapper that `fax_send` uses.
CPU work only: no files, no threads; callers run it off the line worker (docs/fax.md).
"""

from __future__ import annotations

import bisect
import io
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import img2pdf  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageChops, TiffImagePlugin

from firmware_app.errors import FrontdeskError

__all__ = [
    "FAX_WIDTH",
    "DecodedPage",
    "FaxDocument",
    "FaxImageError",
    "T4Lines",
    "acceptable",
    "build_t4",
    "decode_page",
    "encode_mh_lines",
    "split_lines",
    "strip_data",
    "t4_tiff",
]

FAX_WIDTH: Final = 1728  # T.4 2.2: 1728 pels on 215 mm
X_DPI: Final = 204
Y_DPI_FINE: Final = 196
Y_DPI_NORMAL: Final = 98
EOL_ZEROS: Final = 11  # T.4 4.1.2: EOL is 000000000001; fill is more zeros before it
MAX_LINES: Final = 10_000  # far beyond a long page at fine resolution: a cap, not a norm

Bits = npt.NDArray[np.uint8]
FillOrder = Literal[1, 2]


class FaxImageError(FrontdeskError):
    """Page data holds no fax lines at all (in either bit order)."""


@dataclass(frozen=True, slots=True)
class T4Lines:
    """A T.4 bit stream cut at its EOLs: `segments[i]` are line i's code bits (any fill
    kept, the MR tag bit removed), `one_d[i]` is True for a 1-D (MH) coded line and
    `code_bits[i]` is the length up to the line's last one-bit (fill excluded)."""

    segments: list[Bits]
    one_d: list[bool]
    code_bits: list[int] = field(default_factory=list)


def unpack(data: bytes, fill_order: FillOrder) -> Bits:
    """Bytes -> one bit per element, in transmission order (FillOrder 1: MSB first)."""
    return np.unpackbits(
        np.frombuffer(data, dtype=np.uint8), bitorder="big" if fill_order == 1 else "little"
    )


RTC_EOLS: Final = 6
_EOL: Final = np.array([0] * EOL_ZEROS + [1], dtype=np.uint8)
_FILL_CACHE: dict[int, Bits] = {}


def _zeros(n: int) -> Bits:
    z = _FILL_CACHE.get(n)
    if z is None:
        z = np.zeros(n, dtype=np.uint8)
        if len(_FILL_CACHE) < 4096:
            _FILL_CACHE[n] = z
    return z


Index = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class _Cut:
    """Line boundaries in a bit stream, as arrays (one entry per line): line i's EOL starts at
    `eol[i]` (its eleven zeros), its code bits are `bits[start[i]:end[i]]` (fill included, MR
    tag excluded) and its last one-bit is at `code_end[i] - 1`."""

    bits: Bits
    eol: Index
    start: Index
    end: Index
    code_end: Index
    one_d: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.start.size)

    def head(self, n: int) -> _Cut:
        return _Cut(
            self.bits,
            self.eol[:n],
            self.start[:n],
            self.end[:n],
            self.code_end[:n],
            self.one_d[:n],
        )

    def stream(self) -> bytes:
        """The lines as a clean T.4 stream, MSB first: EOL [tag] line ... (fill kept, no RTC).
        Each line's EOL and tag are the ones in front of it in `bits`, so this is `bits` with
        what is not a line (junk before the first EOL, empty lines, the tail) cut out."""
        if not len(self):
            return b""
        if np.array_equal(self.eol[1:], self.end[:-1]):  # nothing between the lines
            kept = self.bits[int(self.eol[0]) : int(self.end[-1])]
        else:
            kept = self.bits[_spans(self.eol, self.end, self.bits.size)]
        return np.packbits(kept).tobytes()


def _spans(lo: Index, hi: Index, size: int) -> npt.NDArray[np.bool_]:
    """Mask of length `size`, True inside the sorted, disjoint spans [lo[i], hi[i])."""
    edges = np.empty(2 * lo.size + 2, dtype=np.intp)
    edges[0], edges[-1] = 0, size
    edges[1:-1:2], edges[2:-1:2] = lo, hi
    inside = np.zeros(edges.size - 1, dtype=np.bool_)
    inside[1::2] = True
    return np.repeat(inside, np.diff(edges))


_NO_LINES: Final = np.zeros(0, dtype=np.intp)


def _zero_counts(fill_order: FillOrder) -> tuple[Index, Index]:
    """Per byte value: zero bits sent before its first one-bit, and after its last (8, 8
    for a zero byte)."""
    sent = np.unpackbits(
        np.arange(256, dtype=np.uint8)[:, None],
        axis=1,
        bitorder="big" if fill_order == 1 else "little",
    )
    has_one = sent.any(axis=1)
    lead = np.where(has_one, sent.argmax(axis=1), 8).astype(np.intp)
    trail = np.where(has_one, sent[:, ::-1].argmax(axis=1), 8).astype(np.intp)
    return lead, trail


_ZERO_COUNTS: Final = {1: _zero_counts(1), 2: _zero_counts(2)}


def _cut(
    data: bytes,
    fill_order: FillOrder,
    *,
    mr: bool,
    max_lines: int = MAX_LINES,
    bits: Bits | None = None,
) -> _Cut:
    """`split_lines` of `data` (or of `bits`, the same stream unpacked) without a Python
    step per line: a page has thousands of lines.

    EOLs are found byte by byte: a run of 11 zeros never fits inside one byte, so it lies
    between the last one-bit of a non-zero byte and the first one-bit of the next."""
    if bits is None:
        bits = unpack(data, fill_order)
    lead, trail = _ZERO_COUNTS[fill_order]
    raw = np.frombuffer(data, dtype=np.uint8)
    at = np.flatnonzero(raw)
    values = raw[at]
    at *= 8
    first_one, last_one_in = at + lead[values], at + (7 - trail[values])
    zeros = first_one.copy()  # zeros sent before each non-zero byte's first one-bit
    zeros[1:] -= last_one_in[:-1] + 1
    k = np.flatnonzero(zeros >= EOL_ZEROS)
    if k.size == 0:
        return _Cut(bits, _NO_LINES, _NO_LINES, _NO_LINES, _NO_LINES, np.zeros(0, np.bool_))
    eol_one = first_one[k]  # each EOL's one-bit
    # A line's last one-bit is the last one before the next EOL's zeros (or in the stream).
    last_one = np.append(last_one_in[k[1:] - 1], last_one_in[-1])
    # A line runs up to the next EOL's eleven zeros: a code word may end in zeros (T.4
    # Table 1). The last line, with no EOL after it, gets up to 8 zeros past its last one.
    end = np.append(eol_one[1:] - EOL_ZEROS, min(bits.size, int(last_one[-1]) + 9))
    start = eol_one + 1
    if mr and start[-1] >= bits.size:  # an EOL at the very end: no room for its tag
        eol_one, last_one, end, start = eol_one[:-1], last_one[:-1], end[:-1], start[:-1]
    one_d = bits[start].astype(np.bool_) if mr else np.ones(start.size, np.bool_)
    if mr:
        start = start + 1
    empty = last_one < start
    # RTC (six EOLs in a row, T.4 4.1.4): the fifth empty line in a row after a line ends
    # the page; what follows (noise as the carrier drops) is not a line.
    n = np.arange(empty.size)
    last_line = np.maximum.accumulate(np.where(empty, -1, n))
    rtc = np.flatnonzero(empty & (last_line >= 0) & (n - last_line >= RTC_EOLS - 1))
    stop = int(rtc[0]) if rtc.size else empty.size
    keep = np.flatnonzero(~empty[:stop])[:max_lines]
    return _Cut(
        bits,
        eol_one[keep] - EOL_ZEROS,
        start[keep],
        end[keep],
        last_one[keep] + 1,
        one_d[keep],
    )


def split_lines(bits: Bits, *, mr: bool, max_lines: int = MAX_LINES) -> T4Lines:
    """Cut at each EOL (11+ zeros then a one, T.4 4.1.2); drop what precedes the first EOL
    and empty lines (doubled EOLs). RTC (six EOLs in a row, T.4 4.1.4) ends the page: what
    follows it (line noise a modem delivers as the carrier drops) is not a line."""
    return _lines(_cut(np.packbits(bits).tobytes(), 1, mr=mr, max_lines=max_lines, bits=bits))


def _lines(cut: _Cut) -> T4Lines:
    starts, ends = cut.start.tolist(), cut.end.tolist()
    return T4Lines(
        [cut.bits[s:e] for s, e in zip(starts, ends, strict=True)],
        cut.one_d.tolist(),
        (cut.code_end - cut.start).tolist(),
    )


def build_t4(
    lines: T4Lines,
    *,
    mr: bool,
    min_scan_bits: int = 0,
    fill_order: FillOrder = 1,
    rtc: bool = True,
) -> bytes:
    """A clean T.4 stream: EOL [tag] line ... RTC. Each line (EOL included) takes at least
    `min_scan_bits` (zero fill before the next EOL, T.4 4.1.2). Packed in `fill_order`."""
    tag1, tag0 = np.array([1], np.uint8), np.array([0], np.uint8)
    parts: list[Bits] = []
    for seg, one_d in zip(lines.segments, lines.one_d, strict=True):
        parts.append(_EOL)
        if mr:
            parts.append(tag1 if one_d else tag0)
        parts.append(seg)
        used = EOL_ZEROS + 1 + (1 if mr else 0) + seg.size
        if used < min_scan_bits:
            parts.append(_zeros(min_scan_bits - used))
    if rtc:
        for _ in range(6):  # RTC: six EOLs (T.4 4.1.4), each with tag 1 in MR
            parts.append(_EOL)
            if mr:
                parts.append(tag1)
    if not parts:
        return b""
    bits = np.concatenate(parts)
    return np.packbits(bits, bitorder="big" if fill_order == 1 else "little").tobytes()


# --- TIFF wrapping (TIFF 6.0 section 11, CCITT T.4 compression = 3) ------------------------


def t4_tiff(
    data: bytes, *, width: int, height: int, fine: bool, mr: bool = False, fill_order: int = 1
) -> bytes:
    """One-strip TIFF around raw T.4 data (Photometric 0: white is zero), for libtiff."""
    entries = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 1),
        (259, 3, 3),
        (262, 3, 0),
        (266, 3, fill_order),
        (273, 4, 0),  # patched below
        (277, 3, 1),
        (278, 4, height),
        (279, 4, len(data)),
        (282, 5, 0),
        (283, 5, 0),
        (292, 4, 1 if mr else 0),
        (296, 3, 2),
    ]
    ifd_at = 8
    ifd_size = 2 + 12 * len(entries) + 4
    rationals_at = ifd_at + ifd_size
    data_at = rationals_at + 16
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at))
    out += struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        if tag == 273:
            value = data_at
        elif tag == 282:
            value = rationals_at
        elif tag == 283:
            value = rationals_at + 8
        if kind == 3:
            out += struct.pack("<HHIHH", tag, kind, 1, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, 1, value)
    out += struct.pack("<I", 0)
    y_dpi = Y_DPI_FINE if fine else Y_DPI_NORMAL
    out += struct.pack("<IIII", X_DPI, 1, y_dpi, 1)
    out += data
    return bytes(out)


def _decode_rows(cut: _Cut, *, width: int, fine: bool, mr: bool) -> Image.Image:
    """libtiff's decode of the lines (mode "1", True = white). When libtiff gives up on a
    block (OSError), the block is halved until the bad line is alone; it stays white."""
    n = len(cut)
    tiff = t4_tiff(cut.stream(), width=width, height=n, fine=fine, mr=mr)
    try:
        with Image.open(io.BytesIO(tiff)) as im:
            im.load()
            # Photometric 0: Pillow gives mode "1" with True = white. A plain copy, so no
            # TIFF tags of this wrapper travel on with the picture.
            return im.copy()
    except OSError:
        out = Image.new("1", (width, n), 1)
        if n > 1:
            half = n // 2
            top = _decode_rows(cut.head(half), width=width, fine=fine, mr=mr)
            rest = _Cut(
                cut.bits,
                cut.eol[half:],
                cut.start[half:],
                cut.end[half:],
                cut.code_end[half:],
                cut.one_d[half:],
            )
            out.paste(top, (0, 0))
            out.paste(_decode_rows(rest, width=width, fine=fine, mr=mr), (0, half))
        return out


def encode_mh_lines(black: Bits) -> T4Lines:
    """MH (T.4 1-D) code of each row of a 0/1 bitmap (1 = black) via libtiff."""
    if black.shape[0] == 0:
        return T4Lines([], [], [])
    # Pillow stores mode "1" as Photometric 1 and libtiff codes stored zero bits as white
    # runs (REFERENCE.md 1): so hand it the inverted picture, True (stored 1) = black.
    im = Image.fromarray(black.astype(bool))
    buf = io.BytesIO()
    im.save(buf, "TIFF", compression="group3", strip_size=1 << 30)
    return _lines(_cut(strip_data(buf.getvalue()), 1, mr=False))


def strip_data(tiff: bytes) -> bytes:
    """The coded data of a TIFF's first image, strips joined in order."""
    with Image.open(io.BytesIO(tiff)) as tif:
        assert isinstance(tif, TiffImagePlugin.TiffImageFile)
        pieces = zip(tif.tag_v2[273], tif.tag_v2[279], strict=True)
        return b"".join(tiff[o : o + c] for o, c in pieces)


@dataclass(frozen=True, slots=True)
class DecodedPage:
    """One received page. `image` is mode "1" (1728 wide, True = white) at its own dpi;
    `damaged_lines` counts coded lines that did not decode cleanly (kept in the image)."""

    image: Image.Image
    fine: bool
    mr: bool
    fill_order: FillOrder
    damaged_lines: int
    checked_lines: int
    damage_run: int = 0  # the longest run of consecutive damaged lines
    lost_lines: int = 0  # of the damaged: lines noise ran together (not rows of `image`)

    @property
    def lines(self) -> int:
        return self.image.height

    @property
    def dpi(self) -> tuple[int, int]:
        return (X_DPI, Y_DPI_FINE if self.fine else Y_DPI_NORMAL)

    @property
    def quality(self) -> float:
        """Share of good lines, 0.0-1.0 (1.0 for a page with no lines)."""
        sent = self.lines + self.lost_lines
        return 1.0 - self.damaged_lines / sent if sent else 1.0


def _mh_cut(image: Image.Image) -> _Cut:
    """MH code of each row of a mode "1" picture (True = white) via libtiff, cut in lines."""
    # Pillow stores mode "1" as Photometric 1 and libtiff codes stored zero bits as white
    # runs (REFERENCE.md 1): so hand it the inverted picture, stored 1 = black.
    buf = io.BytesIO()
    ImageChops.invert(image).save(buf, "TIFF", compression="group3", strip_size=1 << 30)
    return _cut(strip_data(buf.getvalue()), 1, mr=False)


def _pairs_cut(image: Image.Image, first: Index, second: Index) -> _Cut:
    """Rows coded by libtiff in pairs: pair p is rows (first[p], second[p]), coded MR with
    K = 2 (libtiff's choice below 150 lines per inch), so line 2p is row first[p] in MH and
    line 2p + 1 is row second[p] coded 2-D on row first[p]. Rows are moved packed (216
    bytes each), inverted as `_mh_cut` explains."""
    packed = np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(image.height, -1)
    pairs = np.empty((2 * first.size, packed.shape[1]), dtype=np.uint8)
    np.invert(packed[first], out=pairs[0::2])
    np.invert(packed[second], out=pairs[1::2])
    buf = io.BytesIO()
    Image.frombytes("1", (image.width, pairs.shape[0]), pairs.tobytes()).save(
        buf,
        "TIFF",
        compression="group3",
        tiffinfo={292: 1},
        dpi=(X_DPI, Y_DPI_NORMAL),
        strip_size=1 << 30,
    )
    return _cut(strip_data(buf.getvalue()), 1, mr=True)


def _canonical_mr(cut: _Cut, image: Image.Image) -> npt.NDArray[np.bool_]:
    """MR page: True for lines whose bits differ from libtiff's code of the row (1-D lines
    in MH, 2-D lines on the row above). One libtiff call: a 2-D line i brings the pair
    (row i-1, row i), which also gives row i-1's MH code when line i-1 is 1-D; other 1-D
    lines come as (row j, row j)."""
    n = len(cut)
    two_d = ~cut.one_d
    two_d[0] = False  # a first line coded 2-D has no reference: read strictly
    twos = np.flatnonzero(two_d)
    ones = np.flatnonzero(cut.one_d)
    follows = np.zeros(n, dtype=np.bool_)
    follows[twos - 1] = True  # 1-D lines just above a 2-D line
    alone = ones[~follows[ones]]
    keys = np.concatenate((twos, alone))
    order = np.argsort(keys, kind="stable")
    rank = np.empty(keys.size, dtype=np.intp)
    rank[order] = np.arange(keys.size)
    first = np.concatenate((twos - 1, alone))[order]
    second = keys[order]
    where = np.full(n, -1, dtype=np.intp)  # each line's line in the pairs' code
    where[twos] = 2 * rank[: twos.size] + 1
    where[alone] = 2 * rank[twos.size :]
    above = ones[follows[ones]]
    where[above] = 2 * rank[np.searchsorted(twos, above + 1)]
    differs = np.ones(n, dtype=np.bool_)
    if keys.size == 0:
        return differs
    pairs = _pairs_cut(image, first, second)
    mine = np.flatnonzero(where >= 0)
    theirs = where[mine]
    fits = theirs < len(pairs)
    mine, theirs = mine[fits], theirs[fits]
    kind = pairs.one_d[theirs] == cut.one_d[mine]  # the code of the same kind (1-D, 2-D)
    mine, theirs = mine[kind], theirs[kind]
    differs[mine] = _differ(cut, mine, pairs, theirs)
    return differs


def _differ(cut: _Cut, mine: Index, again: _Cut, theirs: Index) -> npt.NDArray[np.bool_]:
    """For lines `mine` of `cut` and lines `theirs` of `again` (pairwise): True where the
    code bits (up to each line's last one-bit) differ. Whole-array work: the bits of all
    lines of equal length on both sides are gathered into one run each and compared, and a
    difference is traced back to its line."""
    ours = cut.code_end[mine] - cut.start[mine]
    other = again.code_end[theirs] - again.start[theirs]
    out: npt.NDArray[np.bool_] = np.asarray(ours != other, dtype=np.bool_)
    alike = np.flatnonzero(~out)
    if alike.size == 0:
        return out
    a = cut.bits[_spans(cut.start[mine[alike]], cut.code_end[mine[alike]], cut.bits.size)]
    b = again.bits[
        _spans(again.start[theirs[alike]], again.code_end[theirs[alike]], again.bits.size)
    ]
    wrong = np.flatnonzero(a != b)
    if wrong.size:
        at = np.unique(np.searchsorted(np.cumsum(ours[alike]), wrong, side="right"))
        out[alike[at]] = True
    return out


def _check(cut: _Cut, image: Image.Image) -> tuple[int, int, int, int]:
    """(damaged, checked, longest run of damaged lines, lost lines) over every coded line.

    A line is good when libtiff's decode of it codes back to the same bits: MH (1-D) lines
    against libtiff's MH code of the row, MR 2-D lines against libtiff's 2-D code of the
    row on the row above (T.4 coding is canonical: one code for a row, or for a row given
    its reference). The few lines whose bits differ are read again strictly, code by code
    (`_line_ok`): a valid code that is merely not the canonical one (efax ends a page with
    a white line followed by a black run of 0) that gives the same row is good. On MR pages
    a damaged line spoils the 2-D lines coded on it, up to the next 1-D line: they count as
    damaged too (T.4 codes them on the row above)."""
    n = len(cut)
    if n == 0:
        return 0, 0, 0, 0
    if cut.one_d.all():  # MH: libtiff's MH code of every row
        again = _mh_cut(image)
        every = np.arange(min(n, len(again)))
        differs = np.ones(n, dtype=np.bool_)
        differs[every] = _differ(cut, every, again, every)
    else:
        differs = _canonical_mr(cut, image)
    suspects = np.flatnonzero(differs)
    if suspects.size == 0:
        return 0, n, 0, 0
    black = ~np.asarray(image, dtype=bool)
    bad = np.zeros(n, dtype=np.bool_)
    # Reading lines strictly costs Python time (about 0.3 us a bit on the build machine):
    # within STRICT_BITS; the lines past it go the way most of those read went (a sender
    # whose codes are all valid but not canonical, or a page full of noise).
    spent = read = wrong = 0
    rest = suspects[:0]
    for k, i in enumerate(suspects.tolist()):
        if spent > STRICT_BITS:
            rest = suspects[k:]
            break
        spent += int(cut.end[i] - cut.start[i])
        bad[i] = not _line_ok(cut, i, black)
        read += 1
        wrong += int(bad[i])
    bad[rest] = 2 * wrong >= read
    if not cut.one_d.all():
        # A 2-D line coded on a damaged line is wrong with it: spread each damage down to
        # the next 1-D line.
        block = np.cumsum(cut.one_d)  # lines sharing a value are one K-block
        first_bad = np.full(int(block[-1]) + 2, n, dtype=np.intp)
        hit = np.flatnonzero(bad)
        np.minimum.at(first_bad, block[hit], hit)
        bad |= np.arange(n) > first_bad[block]
    # Noise that hits EOLs runs lines together: a damaged line longer than the good lines
    # around it (their mean code length, 16 lines either side) counts as the lines it must
    # hold, rows lost from the picture.
    length = (cut.code_end - cut.start).astype(np.float64)
    good_len = np.concatenate(([0.0], np.cumsum(np.where(bad, 0.0, length))))
    good_n = np.concatenate(([0], np.cumsum(~bad)))
    lo = np.clip(np.arange(n) - LOCAL, 0, n)
    hi = np.clip(np.arange(n) + LOCAL + 1, 0, n)
    count = good_n[hi] - good_n[lo]
    mean = (good_len[hi] - good_len[lo]) / np.maximum(count, 1)
    typical = np.where(count > 0, np.maximum(mean, 32.0), length)
    weight = np.where(bad, np.maximum(1, np.rint(length / typical)), 0).astype(np.intp)
    damaged = int(weight.sum())
    return damaged, n, _longest_run(weight), damaged - int(np.count_nonzero(bad))


def _longest_run(weight: npt.NDArray[np.intp]) -> int:
    """The largest sum of weights over consecutive non-zero entries."""
    if not weight.any():
        return 0
    total = np.cumsum(weight)
    starts = np.flatnonzero(np.diff(np.concatenate(([0], (weight > 0).astype(np.int8)))) == 1)
    ends = np.flatnonzero(np.diff(np.concatenate(((weight > 0).astype(np.int8), [0]))) == -1)
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0)
    return int((total[ends] - before).max())


STRICT_BITS: Final = 200_000
LOCAL: Final = 16
# Copy quality a page needs to be kept without asking for it again: HylaFAX's defaults
# (cqtest(8), hylafax-config(5): PercentGoodLines 95, MaxConsecutiveBadLines 5).
GOOD_LINES: Final = 0.95
MAX_BAD_RUN: Final = 5


def acceptable(page: DecodedPage) -> bool:
    """Good enough to confirm (MCF): at least 95 % good lines and no more than 5 damaged
    lines in a row. Otherwise a Class 1 receiver answers RTN and the sender sends the page
    again (T.30 5.3.6.1.8)."""
    return page.quality >= GOOD_LINES and page.damage_run <= MAX_BAD_RUN


# --- reading single lines strictly (T.4 4.1 and 4.2), for the few lines that need it -------

_WHITE_TERM = (
    "00110101 000111 0111 1000 1011 1100 1110 1111 10011 10100 00111 01000 001000 000011 "
    "110100 110101 101010 101011 0100111 0001100 0001000 0010111 0000011 0000100 0101000 "
    "0101011 0010011 0100100 0011000 00000010 00000011 00011010 00011011 00010010 00010011 "
    "00010100 00010101 00010110 00010111 00101000 00101001 00101010 00101011 00101100 "
    "00101101 00000100 00000101 00001010 00001011 01010010 01010011 01010100 01010101 "
    "00100100 00100101 01011000 01011001 01011010 01011011 01001010 01001011 00110010 "
    "00110011 00110100"
)
_WHITE_MAKEUP = (
    "11011 10010 010111 0110111 00110110 00110111 01100100 01100101 01101000 01100111 "
    "011001100 011001101 011010010 011010011 011010100 011010101 011010110 011010111 "
    "011011000 011011001 011011010 011011011 010011000 010011001 010011010 011000 010011011"
)
_BLACK_TERM = (
    "0000110111 010 11 10 011 0011 0010 00011 000101 000100 0000100 0000101 0000111 "
    "00000100 00000111 000011000 0000010111 0000011000 0000001000 00001100111 00001101000 "
    "00001101100 00000110111 00000101000 00000010111 00000011000 000011001010 000011001011 "
    "000011001100 000011001101 000001101000 000001101001 000001101010 000001101011 "
    "000011010010 000011010011 000011010100 000011010101 000011010110 000011010111 "
    "000001101100 000001101101 000011011010 000011011011 000001010100 000001010101 "
    "000001010110 000001010111 000001100100 000001100101 000001010010 000001010011 "
    "000000100100 000000110111 000000111000 000000100111 000000101000 000001011000 "
    "000001011001 000000101011 000000101100 000001011010 000001100110 000001100111"
)
_BLACK_MAKEUP = (
    "0000001111 000011001000 000011001001 000001011011 000000110011 000000110100 "
    "000000110101 0000001101100 0000001101101 0000001001010 0000001001011 0000001001100 "
    "0000001001101 0000001110010 0000001110011 0000001110100 0000001110101 0000001110110 "
    "0000001110111 0000001010010 0000001010011 0000001010100 0000001010101 0000001011010 "
    "0000001011011 0000001100100 0000001100101"
)
_EXT_MAKEUP = (  # 1792-2560, both colours
    "00000001000 00000001100 00000001101 000000010010 000000010011 000000010100 "
    "000000010101 000000010110 000000010111 000000011100 000000011101 000000011110 "
    "000000011111"
)


def _codes(table: str, first: int, step: int) -> dict[str, int]:
    return {code: first + k * step for k, code in enumerate(table.split())}


_WHITE: Final = (
    _codes(_WHITE_TERM, 0, 1) | _codes(_WHITE_MAKEUP, 64, 64) | _codes(_EXT_MAKEUP, 1792, 64)
)
_BLACK: Final = (
    _codes(_BLACK_TERM, 0, 1) | _codes(_BLACK_MAKEUP, 64, 64) | _codes(_EXT_MAKEUP, 1792, 64)
)
# 2-D mode codes (T.4 Table 4): pass, horizontal, vertical a1 = b1 + d.
_MODES: Final[dict[str, int | str]] = {
    "0001": "P",
    "001": "H",
    "1": 0,
    "011": 1,
    "000011": 2,
    "0000011": 3,
    "010": -1,
    "000010": -2,
    "0000010": -3,
}
_LONGEST: Final = 13


def _take(bits: str, at: int, table: Mapping[str, int | str]) -> tuple[int, int | str | None]:
    """The code at `at`: (position after it, its value); (-1, None) when none fits."""
    for n in range(1, _LONGEST + 1):
        value = table.get(bits[at : at + n])
        if value is not None:
            return at + n, value
    return -1, None


def _run(bits: str, at: int, table: dict[str, int]) -> tuple[int, int]:
    """A run length: make-up codes, then one terminating code (T.4 4.1.1)."""
    total = 0
    while True:
        at, value = _take(bits, at, table)
        if at < 0 or not isinstance(value, int):
            return -1, 0
        total += value
        if value < 64:
            return at, total


def _rest_is_fill(bits: str, at: int, color: int) -> bool:
    """After a complete line only fill zeros may follow; runs of length 0 (which add no
    pels) are tolerated, as some senders end a line with one."""
    while "1" in bits[at:]:
        at, length = _run(bits, at, _BLACK if color else _WHITE)
        if at < 0 or length:
            return False
        color ^= 1
    return True


def _changes(row: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """Changing elements: where a pel differs from the one before (an imaginary white pel
    before the line)."""
    before = np.concatenate(([False], row[:-1]))
    return np.flatnonzero(row != before)


def _settle(changes: list[int], width: int) -> list[int]:
    """Changing elements as positions on the line: two changes at one position cancel
    (a run of length 0), and none at the end of the line."""
    out: list[int] = []
    for pos in changes:
        if pos >= width:
            break
        if out and out[-1] == pos:
            out.pop()
        else:
            out.append(pos)
    return out


def _mh_changes(bits: str, width: int) -> list[int] | None:
    """A 1-D (MH) line strictly: its changing elements, or None when its codes are not a
    line of `width` pels."""
    changes = []
    at = pos = color = 0
    while pos < width:
        at, length = _run(bits, at, _BLACK if color else _WHITE)
        if at < 0 or pos + length > width:
            return None
        pos += length
        changes.append(pos)
        color ^= 1
    return _settle(changes, width) if _rest_is_fill(bits, at, color) else None


def _mr_changes(bits: str, ref: list[int], width: int) -> list[int] | None:
    """A 2-D line strictly, coded on a line with changing elements `ref` (T.4 4.2.1.3):
    its changing elements, or None. On a line that starts white, the reference's changing
    elements alternate to black (even index) and back to white (odd index)."""
    changes: list[int] = []
    at = 0
    a0 = -1
    color = 0  # a0's colour: white first
    count = len(ref)
    while a0 < width:
        at, mode = _take(bits, at, _MODES)
        if at < 0:
            return None
        start = max(a0, 0)
        # b1: the first changing element of the reference to the right of a0 and of the
        # opposite colour to a0's (to black when a0 is white: an even index); b2 the next.
        k = bisect.bisect_right(ref, a0)
        if k % 2 != color:
            k += 1
        b1 = ref[k] if k < count else width
        b2 = ref[k + 1] if k + 1 < count else width
        if mode == "P":
            if b2 <= a0:
                return None
            a0 = b2
        elif mode == "H":
            at, one = _run(bits, at, _BLACK if color else _WHITE)
            if at < 0:
                return None
            at, two = _run(bits, at, _WHITE if color else _BLACK)
            if at < 0 or start + one + two > width:
                return None
            changes += (start + one, start + one + two)
            a0 = start + one + two
        else:
            assert isinstance(mode, int)
            a1 = b1 + mode
            if a1 < start or a1 > width or (a1 == start and a0 >= 0):
                return None
            changes.append(a1)
            a0 = a1
            color ^= 1
    return _settle(changes, width) if _rest_is_fill(bits, at, color) else None


def _line_ok(cut: _Cut, i: int, black: npt.NDArray[np.bool_]) -> bool:
    """Line i read strictly gives the row libtiff made of it."""
    bits = (cut.bits[cut.start[i] : cut.end[i]] + 48).tobytes().decode("ascii")
    width = black.shape[1]
    if cut.one_d[i]:
        got = _mh_changes(bits, width)
    else:  # coded on the row above; a first line coded 2-D on an imaginary white line
        ref = _changes(black[i - 1]).tolist() if i > 0 else []
        got = _mr_changes(bits, ref, width)
    return got is not None and got == _changes(black[i]).tolist()


def _read(
    cut: _Cut, fill_order: FillOrder, *, mr: bool, fine: bool, width: int
) -> tuple[DecodedPage, int] | None:
    """Decode the lines of one reading; (page, good lines) or None without lines."""
    if not len(cut):
        return None
    image = _decode_rows(cut, width=width, fine=fine, mr=mr)
    damaged, checked, run, lost = _check(cut, image) if width == FAX_WIDTH else (0, 0, 0, 0)
    image.info["dpi"] = (X_DPI, Y_DPI_FINE if fine else Y_DPI_NORMAL)
    page = DecodedPage(
        image=image,
        fine=fine,
        mr=mr,
        fill_order=fill_order,
        damaged_lines=damaged,
        checked_lines=checked,
        damage_run=run,
        lost_lines=lost,
    )
    return page, checked - damaged


PROBE_LINES: Final = 48


def decode_page(
    data: bytes,
    *,
    fine: bool,
    mr: bool | None = None,
    fill_order: FillOrder | None = None,
    width: int = FAX_WIDTH,
) -> DecodedPage:
    """Decode one page of T.4 data as received. Unless given, the bit order (and MH or MR)
    is found by reading the first lines every way and keeping the one with the most lines
    that check out. Raises `FaxImageError` when no reading finds a single line."""
    orders: tuple[FillOrder, ...] = (fill_order,) if fill_order else (2, 1)
    codings = (mr,) if mr is not None else (False, True)
    ways = [(order, coding) for coding in codings for order in orders]
    cuts: dict[tuple[FillOrder, bool], _Cut] = {}

    def cut_for(way: tuple[FillOrder, bool]) -> _Cut:  # the whole page, once per reading
        if way not in cuts:
            cuts[way] = _cut(data, way[0], mr=way[1])
        return cuts[way]

    probes: dict[tuple[FillOrder, bool], tuple[DecodedPage, int] | None] = {}
    if len(ways) > 1:
        scores = []
        for way in ways:
            got = _read(cut_for(way).head(PROBE_LINES), way[0], mr=way[1], fine=fine, width=width)
            probes[way] = got
            scores.append(-1 if got is None else got[1])
            if got is not None and got[0].damaged_lines == 0 and got[1] > 0:
                break  # clean: no need to try the other readings
        ways = [ways[scores.index(max(scores))]]
    way = ways[0]
    cut = cut_for(way)
    if way in probes and len(cut) <= PROBE_LINES:
        got = probes[way]  # the probe read the whole page already
    else:
        got = _read(cut, way[0], mr=way[1], fine=fine, width=width)
    if got is None:
        raise FaxImageError(f"no T.4 lines (EOL codes) in {len(data)} bytes of page data")
    return got[0]


# --- documents -------------------------------------------------------------------------------


@dataclass(slots=True)
class FaxDocument:
    """A received (or composed) fax: who sent it, its pages, and how clean they were."""

    remote_id: str = ""
    pages: list[DecodedPage] = field(default_factory=list)

    @property
    def damaged_lines(self) -> int:
        return sum(p.damaged_lines for p in self.pages)

    @property
    def lines(self) -> int:
        return sum(p.lines for p in self.pages)

    @property
    def quality(self) -> float:
        sent = self.lines + sum(p.lost_lines for p in self.pages)
        return 1.0 - self.damaged_lines / sent if sent else 1.0

    @property
    def fine(self) -> bool:
        return all(p.fine for p in self.pages)

    def add_page(
        self,
        data: bytes,
        *,
        fine: bool,
        mr: bool | None = None,
        fill_order: FillOrder | None = None,
    ) -> DecodedPage:
        page = decode_page(data, fine=fine, mr=mr, fill_order=fill_order)
        self.pages.append(page)
        return page

    def to_pdf(self, *, title: str | None = None) -> bytes:
        """A PDF with one page per fax page at its true size; each image stays CCITT G4
        compressed (img2pdf embeds G4 TIFF data without recompressing)."""
        return pages_to_pdf([p.image for p in self.pages], title=title or self._title())

    def _title(self) -> str:
        return f"Fax from {self.remote_id}" if self.remote_id else "Fax"


def g4_tiff(image: Image.Image) -> bytes:
    """A mode "1" image as a one-strip CCITT G4 TIFF keeping its dpi."""
    buf = io.BytesIO()
    dpi = image.info.get("dpi", (X_DPI, Y_DPI_FINE))
    image.save(buf, "TIFF", compression="group4", dpi=dpi, strip_size=1 << 30)
    return buf.getvalue()


def pages_to_pdf(images: Sequence[Image.Image], *, title: str = "Fax") -> bytes:
    if not images:
        raise FaxImageError("a fax PDF needs at least one page")
    out = img2pdf.convert([g4_tiff(im) for im in images], title=title, nodate=True)
    assert isinstance(out, bytes)
    return out
