"""Faxes to send: uploads checked by content, PDFs and images rasterised to 1728-pel fax pages,
pages coded as T.4 (MH, or MR) ready for the modem, and a cover page drawn with Pillow.

CPU work only: no files, no threads (callers run it on a worker, never the line worker).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pypdfium2 as pdfium  # type: ignore[import-untyped]
from PIL import Image, ImageDraw, ImageFont, ImageOps

from firmware_app.errors import FrontdeskError
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

__all__ = [
    "PAPER_LINES",
    "FaxPage",
    "UploadError",
    "UploadKind",
    "check_upload",
    "cover_page",
    "encode_page",
    "rasterise",
]

Paper = Literal["a4", "letter"]
# Lines per page at fine resolution (196 lpi): A4 297 mm, US letter 11 in (T.4 2.2, 2.3).
PAPER_LINES: Final[dict[str, int]] = {"a4": 2287, "letter": 2156}
MAX_UPLOAD_BYTES: Final = 20 * 1024 * 1024
MAX_PAGES: Final = 50
MAX_PIXELS: Final = 60_000_000

UploadKind = Literal["pdf", "png", "jpeg", "tiff"]
_MAGIC: Final[tuple[tuple[bytes, UploadKind], ...]] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


class UploadError(FrontdeskError):
    """An uploaded document cannot be faxed; the message says why and what to do."""


def _kind(data: bytes) -> UploadKind:
    # PDF readers accept the header within the first 1024 bytes (PDF 1.7, 7.5.2 note).
    if b"%PDF-" in data[:1024]:
        return "pdf"
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    raise UploadError(
        f"this file is not a PDF, PNG, JPEG or TIFF (it starts with {data[:8].hex(' ')}): "
        "save or print it as PDF and upload that"
    )


def check_upload(
    data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES, max_pages: int = MAX_PAGES
) -> tuple[UploadKind, int]:
    """(kind, pages) of an upload judged by its content, never its name. Raises
    `UploadError` for an empty, too large, unreadable, encrypted or too long document."""
    if not data:
        raise UploadError("the uploaded file is empty")
    if len(data) > max_bytes:
        raise UploadError(
            f"the file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB"
        )
    kind = _kind(data)
    pages = _page_count(data, kind)
    if pages < 1:
        raise UploadError("the document has no pages")
    if pages > max_pages:
        raise UploadError(f"the document has {pages} pages; at most {max_pages} can be faxed")
    return kind, pages


def _page_count(data: bytes, kind: UploadKind) -> int:
    if kind == "pdf":
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise UploadError(
                f"the PDF cannot be read ({exc}); if it has a password, remove it first"
            ) from exc
        try:
            return len(pdf)
        finally:
            pdf.close()
    try:
        with _open_image(data) as im:
            return int(getattr(im, "n_frames", 1))
    except UploadError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise UploadError(f"the {kind.upper()} image cannot be read ({exc})") from exc


def _open_image(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise UploadError("the image is too large to fax; scale it down first") from exc
    if im.width * im.height > MAX_PIXELS:
        im.close()
        raise UploadError(f"the image is {im.width}x{im.height} pixels; scale it down first")
    return im


# --- rasterising --------------------------------------------------------------------------


def _fit(gray: Image.Image, paper: Paper, *, x_scale: float = 1.0) -> Image.Image:
    """Scale a greyscale page (square pixels) to 1728 wide at fine resolution and place it
    top-left on a white page of the paper's length (shrinking to fit when longer)."""
    lines = PAPER_LINES[paper]
    y_ratio = Y_DPI_FINE / X_DPI
    width = FAX_WIDTH
    height = round(gray.height * (FAX_WIDTH / gray.width) * y_ratio * x_scale)
    if height > lines:
        width = max(1, round(FAX_WIDTH * lines / height))
        height = lines
    scaled = gray.resize((width, max(1, height)), Image.Resampling.LANCZOS)
    page = Image.new("L", (FAX_WIDTH, lines), 255)
    page.paste(scaled, ((FAX_WIDTH - width) // 2, 0))
    return page


def _bilevel(gray: Image.Image, dither: bool | None) -> Image.Image:
    """Threshold text at 50 %; Floyd-Steinberg for photographs (many mid-grey pixels)."""
    if dither is None:
        hist = gray.histogram()
        mid = sum(hist[48:208]) / max(1, gray.width * gray.height)
        dither = mid > 0.15
    if dither:
        return gray.convert("1", dither=Image.Dither.FLOYDSTEINBERG)
    return gray.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)


def rasterise(
    data: bytes, *, paper: Paper = "a4", dither: bool | None = None, max_pages: int = MAX_PAGES
) -> list[Image.Image]:
    """Pages of an upload (PDF, PNG, JPEG, TIFF) as mode "1" images, 1728 x paper lines at
    fine resolution (204 x 196 dpi). Raises `UploadError` for what `check_upload` refuses."""
    kind, _ = check_upload(data, max_pages=max_pages)
    grays: list[Image.Image] = []
    if kind == "pdf":
        pdf = pdfium.PdfDocument(data)
        try:
            for i in range(len(pdf)):
                page = pdf[i]
                scale = FAX_WIDTH / page.get_width()  # points -> 1728 px across
                bitmap = page.render(scale=scale, grayscale=True)
                grays.append(bitmap.to_pil().convert("L"))
                page.close()
        finally:
            pdf.close()
    else:
        with _open_image(data) as im:
            for frame in range(int(getattr(im, "n_frames", 1))):
                im.seek(frame)
                one = ImageOps.exif_transpose(im.copy())
                if one.mode in ("RGBA", "LA", "P"):
                    one = one.convert("RGBA")
                    white = Image.new("RGBA", one.size, (255, 255, 255, 255))
                    one = Image.alpha_composite(white, one)
                grays.append(one.convert("L"))
    pages = []
    for gray in grays:
        out = _bilevel(_fit(gray, paper), dither)
        out.info["dpi"] = (X_DPI, Y_DPI_FINE)
        pages.append(out)
    return pages


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


# --- cover page -----------------------------------------------------------------------------

_FONT_FILES: Final = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_FILES:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def cover_page(
    *,
    business: str,
    to: str,
    sender: str,
    pages: int,
    note: str = "",
    date: str = "",
    paper: Paper = "a4",
) -> Image.Image:
    """A plain cover sheet at fine resolution (mode "1"): business name, To, From, date,
    page count (cover included or not is the caller's wording) and a note."""
    lines = PAPER_LINES[paper]
    # Fine resolution is 204 x 196 dpi: near enough square pixels to draw on directly.
    page = Image.new("L", (FAX_WIDTH, lines), 255)
    draw = ImageDraw.Draw(page)
    big, mid = _font(72), _font(44)
    y = 120
    draw.text((120, y), business or "Fax", font=big, fill=0)
    y += 130
    draw.line((120, y, FAX_WIDTH - 120, y), fill=0, width=6)
    y += 60
    for label, value in (("To", to), ("From", sender), ("Date", date), ("Pages", str(pages))):
        if not value:
            continue
        draw.text((120, y), f"{label}:", font=mid, fill=0)
        draw.text((420, y), value, font=mid, fill=0)
        y += 80
    if note:
        y += 40
        for paragraph in note.splitlines() or [""]:
            words, line = paragraph.split(), ""
            for word in words:
                trial = f"{line} {word}".strip()
                if draw.textlength(trial, font=mid) > FAX_WIDTH - 240 and line:
                    draw.text((120, y), line, font=mid, fill=0)
                    y += 64
                    line = word
                else:
                    line = trial
            draw.text((120, y), line, font=mid, fill=0)
            y += 64
    out = _bilevel(page, False)
    out.info["dpi"] = (X_DPI, Y_DPI_FINE)
    return out


def document_pages(images: Sequence[Image.Image]) -> list[FaxPage]:
    return [FaxPage(im) for im in images]
