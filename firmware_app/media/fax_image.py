"""Received fax pages: raw T.4 page data -> bitmap (libtiff through Pillow) -> PDF (img2pdf).

Bit order is detected, not assumed, and every coded line is checked, so a noisy line is kept
in the picture and counted. Also the T.4 line splitter and TIFF wrapper that `fax_send` uses.
CPU work only: no files, no threads; callers run it off the line worker (docs/fax.md).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
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

    @property
    def lines(self) -> int:
        return self.image.height

    @property
    def dpi(self) -> tuple[int, int]:
        return (X_DPI, Y_DPI_FINE if self.fine else Y_DPI_NORMAL)

    @property
    def quality(self) -> float:
        """Share of good lines, 0.0-1.0 (1.0 for a page with no lines)."""
        return 1.0 - self.damaged_lines / self.lines if self.lines else 1.0


def _mh_cut(image: Image.Image) -> _Cut:
    """MH code of each row of a mode "1" picture (True = white) via libtiff, cut in lines."""
    # Pillow stores mode "1" as Photometric 1 and libtiff codes stored zero bits as white
    # runs (REFERENCE.md 1): so hand it the inverted picture, stored 1 = black.
    buf = io.BytesIO()
    ImageChops.invert(image).save(buf, "TIFF", compression="group3", strip_size=1 << 30)
    return _cut(strip_data(buf.getvalue()), 1, mr=False)


def _check(cut: _Cut, image: Image.Image) -> tuple[int, int]:
    """(damaged, checked): a 1-D line is good when libtiff's decode of it codes back to the
    same bits (MH code is canonical). 2-D lines of MR pages are not checked here.

    Compared as whole arrays: the code bits of all lines of the same length on both sides
    are gathered into one run each, and a difference is traced back to its line."""
    again = _mh_cut(image)
    checked = int(np.count_nonzero(cut.one_d))
    n = min(len(cut), len(again))
    ours = cut.code_end[:n] - cut.start[:n]
    theirs = again.code_end[:n] - again.start[:n]
    alike = np.flatnonzero(cut.one_d[:n] & (ours == theirs))
    if alike.size == 0:
        return checked, checked
    a = cut.bits[_spans(cut.start[alike], cut.code_end[alike], cut.bits.size)]
    b = again.bits[_spans(again.start[alike], again.code_end[alike], again.bits.size)]
    differ = np.flatnonzero(a != b)
    bad = np.unique(np.searchsorted(np.cumsum(ours[alike]), differ, side="right")).size
    return checked - alike.size + bad, checked


def _read(
    cut: _Cut, fill_order: FillOrder, *, mr: bool, fine: bool, width: int
) -> tuple[DecodedPage, int] | None:
    """Decode the lines of one reading; (page, good lines) or None without lines."""
    if not len(cut):
        return None
    image = _decode_rows(cut, width=width, fine=fine, mr=mr)
    damaged, checked = _check(cut, image) if width == FAX_WIDTH else (0, 0)
    image.info["dpi"] = (X_DPI, Y_DPI_FINE if fine else Y_DPI_NORMAL)
    page = DecodedPage(
        image=image,
        fine=fine,
        mr=mr,
        fill_order=fill_order,
        damaged_lines=damaged,
        checked_lines=checked,
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
        return 1.0 - self.damaged_lines / self.lines if self.lines else 1.0

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
