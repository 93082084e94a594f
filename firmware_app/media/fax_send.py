"""Faxes to send: pages coded as T.4 (MH, or MR) ready for the modem, from a bitmap or from
the stored pages of a queued fax. Uploads are checked and drawn by `fax_render` (in a child
process); its checks and drawing functions are re-exported here.

CPU work only: no threads (callers run it on a worker, never the line worker).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from firmware_app.media.fax_image import (
    FAX_WIDTH,
    X_DPI,
    Y_DPI_FINE,
    Bits,
    T4Lines,
    build_t4,
    encode_mh_lines,
    split_lines,
    strip_data,
    unpack,
)
from firmware_app.media.fax_render import (
    PAPER_LINES,
    UploadError,
    UploadKind,
    check_upload,
    cover_page,
    rasterise,
)

__all__ = [
    "PAPER_LINES",
    "FaxPage",
    "TiffPage",
    "UploadError",
    "UploadKind",
    "check_upload",
    "cover_page",
    "encode_page",
    "rasterise",
    "tiff_pages",
]


# --- coding for the modem -------------------------------------------------------------------


def _mr_lines(black: Bits, *, fine: bool) -> T4Lines:
    """MR (T.4 2-D, K = 4 fine / 2 normal: libtiff's choice from the resolution) lines."""
    im = Image.fromarray(black.astype(bool))
    buf = io.BytesIO()
    dpi = (X_DPI, Y_DPI_FINE if fine else 98)
    im.save(buf, "TIFF", compression="group3", tiffinfo={292: 1}, dpi=dpi, strip_size=1 << 30)
    return split_lines(unpack(strip_data(buf.getvalue()), 1), mr=True)


def encode_page(
    image: Image.Image,
    *,
    fine: bool = True,
    mr: bool = False,
    min_scan_bits: int = 0,
    fill_order: Literal[1, 2] = 2,
) -> bytes:
    """A fine-resolution page (mode "1", 1728 wide) as T.4 data for the modem: EOL before
    each line, lines padded to `min_scan_bits`, RTC at the end; normal resolution keeps
    every other line. `fill_order` 2 (first bit in the LSB) is what Class 1 modems send."""
    if image.width != FAX_WIDTH:
        raise ValueError(f"a fax page is {FAX_WIDTH} pels wide, not {image.width}")
    black = np.logical_not(np.asarray(image.convert("1"), dtype=bool)).astype(np.uint8)
    if not fine:
        black = black[::2]
    lines = _mr_lines(black, fine=fine) if mr else encode_mh_lines(black)
    return build_t4(lines, mr=mr, min_scan_bits=min_scan_bits, fill_order=fill_order)


@dataclass(frozen=True, slots=True)
class FaxPage:
    """A page to send (the T.30 engine's `PageSource`): a fine-resolution bitmap coded on
    demand for what the call negotiated."""

    image: Image.Image
    fill_order: Literal[1, 2] = 2

    def encode(self, *, fine: bool, mr: bool, min_scan_bits: int) -> bytes:
        return encode_page(
            self.image,
            fine=fine,
            mr=mr,
            min_scan_bits=min_scan_bits,
            fill_order=self.fill_order,
        )


def document_pages(images: Sequence[Image.Image]) -> list[FaxPage]:
    return [FaxPage(im) for im in images]


@dataclass(frozen=True, slots=True)
class TiffPage:
    """A page of a stored multi-page TIFF (the pages of a queued fax), drawn from the file
    only when the call codes it: a long fax never holds all its bitmaps at once."""

    data: bytes
    index: int
    fill_order: Literal[1, 2] = 2

    def image(self) -> Image.Image:
        """The page's bitmap (mode "1", fine resolution), read from the TIFF now."""
        with Image.open(io.BytesIO(self.data)) as im:
            im.seek(self.index)
            return im.convert("1")

    def encode(self, *, fine: bool, mr: bool, min_scan_bits: int) -> bytes:
        return encode_page(
            self.image(), fine=fine, mr=mr, min_scan_bits=min_scan_bits, fill_order=self.fill_order
        )


def tiff_pages(data: bytes) -> list[TiffPage]:
    """The pages of a multi-page TIFF, each read when it is sent."""
    with Image.open(io.BytesIO(data)) as im:
        frames = int(getattr(im, "n_frames", 1))
    return [TiffPage(data, i) for i in range(frames)]
