"""Documents to fax pages: an upload (PDF, PNG, JPEG, TIFF) checked by its content, then drawn
page by page at 1728 pels across, fine resolution, in a short-lived child process whose
memory is limited, so a huge or hostile document can never take memory from the daemon that
runs the lines (or from the web page that took the upload).

`UploadRenderer` (the parent side) needs only the standard library. It starts
`python -m firmware_app.media.fax_render`, which caps its own address space (RLIMIT_AS)
before it loads Pillow, pypdfium2 and img2pdf (never numpy), checks the whole document
first (kind, page count, every page's size: a page more than three A4 pages tall is refused
in words), then draws one page at a time: each page is made bilevel, appended to a G4 TIFF
(the pages to send), kept G4-coded for the PDF and shrunk to a preview PNG, and only then is
the next page drawn. Peak memory is one page, whatever the page count.

Child protocol: stdin, one JSON request, {"job": "upload", ...} or {"job": "thumbnail", ...}
(see `UploadRenderer`); stdout, JSON lines: {"pages": n} once the document is checked,
{"page": i} as each page is written, then {"done": true} or {"error": "why, in words"}.

The same functions run in-process for tests and benchmarks (`rasterise`, `check_upload`,
`cover_page`); the daemon never calls them itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from ..children import kill_group, lower_priority
from ..errors import FrontdeskError

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

__all__ = [
    "MAX_PAGES",
    "MAX_UPLOAD_BYTES",
    "PAPER_LINES",
    "Cover",
    "Rendered",
    "UploadError",
    "UploadKind",
    "UploadRenderer",
    "check_upload",
    "cover_page",
    "rasterise",
    "sniff",
]

Paper = Literal["a4", "letter"]
UploadKind = Literal["pdf", "png", "jpeg", "tiff"]

FAX_WIDTH: Final = 1728  # T.4 2.2: 1728 pels on 215 mm
X_DPI: Final = 204
Y_DPI_FINE: Final = 196
# Lines per page at fine resolution (196 lpi): A4 297 mm, US letter 11 in (T.4 2.2, 2.3).
PAPER_LINES: Final[dict[str, int]] = {"a4": 2287, "letter": 2156}
MAX_UPLOAD_BYTES: Final = 20 * 1024 * 1024
MAX_PAGES: Final = 50
# An image's pixels as stored (decoding one takes up to 4 bytes each; JPEGs are decoded at a
# reduced scale, close to the fax size, so they can be larger).
MAX_PIXELS: Final = 40_000_000
MAX_JPEG_PIXELS: Final = 120_000_000
# Pillow holds these modes in 4 bytes a pixel (transparency, CMYK, more than 8 bits): half.
MAX_WIDE_PIXELS: Final = 20_000_000
_WIDE_MODES: Final = frozenset(
    {"RGBA", "RGBa", "LA", "La", "PA", "RGBX", "CMYK", "I", "F", "I;16", "I;16B", "I;16L"}
)
# A page up to three A4 pages tall is shrunk onto one sheet; a taller one is refused (drawn
# at 1728 across it would need a bitmap hundreds of megabytes large).
A4_TALL: Final = 297 / 210
MAX_TALL: Final = 3
# A landscape page is turned when that shows it at least this much larger on the paper.
TURN_GAIN: Final = 1.2
PREVIEW_WIDTH: Final = 432  # a quarter of the fax width: 432 x 595 for A4
# The child's address space: Python with Pillow, pypdfium2 and img2pdf maps about 60 MB;
# the rest is for one page and its decoding (a 40-megapixel photo fits). Below the service's
# MemoryMax=300M (systemd/frontdesk.service), so the child meets its own limit first.
RENDER_MEMORY: Final = 256 * 1024 * 1024
STALL_TIMEOUT: Final = 120.0  # seconds the child may take to start, or to draw one page

_MAGIC: Final[tuple[tuple[bytes, UploadKind], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


class UploadError(FrontdeskError):
    """An uploaded document cannot be faxed; the message says why and what to do."""


# --- checking ---------------------------------------------------------------------------------


def sniff(data: bytes) -> UploadKind:
    """The kind of document by its first bytes (standard library only: the daemon refuses a
    file that is not a document at once, before the render child starts)."""
    return _kind(data)


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


def _mm(points: float) -> int:
    return round(points * 25.4 / 72)


def _check_tall(n: int, width: float, height: float, unit: str) -> None:
    if width <= 0 or height <= 0:
        raise UploadError(f"page {n} has no size ({width:g} x {height:g} {unit})")
    times = height / width / A4_TALL
    if times > MAX_TALL:
        size = (
            f"{_mm(width)} x {_mm(height)} mm" if unit == "pt" else f"{width:g} x {height:g} pixels"
        )
        raise UploadError(
            f"page {n} is {size}, as tall as {times:.0f} A4 pages; at most {MAX_TALL} A4 "
            "pages tall can be faxed on one sheet: split it into pages or crop it first"
        )


def _check_image_size(n: int, width: int, height: int, kind: UploadKind, mode: str = "RGB") -> None:
    limit, what = MAX_PIXELS, ""
    if kind == "jpeg":
        limit = MAX_JPEG_PIXELS
    elif mode in _WIDE_MODES:
        limit, what = MAX_WIDE_PIXELS, " for an image with transparency, CMYK or 16-bit colour"
    if width * height > limit:
        raise UploadError(
            f"page {n} is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"at most {limit / 1e6:.0f} megapixels can be faxed{what}: scale it down first"
        )
    _check_tall(n, width, height, "px")


@dataclasses.dataclass(frozen=True, slots=True)
class Upload:
    """A checked document: its kind and every page's size as shown (PDF points with the
    page's rotation, or image pixels after EXIF rotation)."""

    kind: UploadKind
    sizes: tuple[tuple[float, float], ...]

    @property
    def pages(self) -> int:
        return len(self.sizes)


def inspect(
    data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES, max_pages: int = MAX_PAGES
) -> Upload:
    """Judge an upload by its content, never its name, without drawing it. Raises
    `UploadError` for an empty, too large, unreadable, encrypted or too long document, a page
    too tall to fax, or an image with too many pixels."""
    if not data:
        raise UploadError("the uploaded file is empty")
    if len(data) > max_bytes:
        raise UploadError(
            f"the file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB"
        )
    kind = _kind(data)
    sizes = _pdf_sizes(data, max_pages) if kind == "pdf" else _image_sizes(data, kind, max_pages)
    if not sizes:
        raise UploadError("the document has no pages")
    return Upload(kind, tuple(sizes))


def _too_many(pages: int, max_pages: int) -> UploadError:
    return UploadError(f"the document has {pages} pages; at most {max_pages} can be faxed")


def _pdf_sizes(data: bytes, max_pages: int) -> list[tuple[float, float]]:
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise UploadError(
            f"the PDF cannot be read ({exc}); if it has a password, remove it first"
        ) from exc
    try:
        count = len(pdf)
        if count > max_pages:
            raise _too_many(count, max_pages)
        sizes = []
        for i in range(count):
            try:
                width, height = pdf.get_page_size(i)
            except pdfium.PdfiumError as exc:
                raise UploadError(f"page {i + 1} of the PDF cannot be read ({exc})") from exc
            _check_tall(i + 1, float(width), float(height), "pt")
            sizes.append((float(width), float(height)))
        return sizes
    finally:
        pdf.close()


def _open_image(data: bytes) -> Image.Image:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise UploadError("the image is too large to fax; scale it down first") from exc


def _orientation(im: Image.Image) -> int | None:
    """The frame's EXIF orientation, read without decoding the picture (Pillow's getexif()
    decodes a whole PNG to look for an eXIf chunk after the data)."""
    from PIL import Image

    if im.format == "PNG":
        raw = im.info.get("exif")
        if not raw:
            return None
        exif = Image.Exif()
        exif.load(raw)
        value = exif.get(0x0112)
    else:
        value = im.getexif().get(0x0112)
    return value if isinstance(value, int) else None


def _oriented(im: Image.Image) -> tuple[int, int]:
    """The frame's size once its EXIF orientation is applied."""
    turned = _orientation(im) in (5, 6, 7, 8)
    return (im.height, im.width) if turned else (im.width, im.height)


def _image_sizes(data: bytes, kind: UploadKind, max_pages: int) -> list[tuple[float, float]]:
    try:
        with _open_image(data) as im:
            frames = int(getattr(im, "n_frames", 1))
            if frames > max_pages:
                raise _too_many(frames, max_pages)
            sizes: list[tuple[float, float]] = []
            for frame in range(frames):
                im.seek(frame)
                width, height = _oriented(im)
                _check_image_size(frame + 1, width, height, kind, im.mode)
                sizes.append((float(width), float(height)))
            return sizes
    except UploadError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UploadError(f"the {kind.upper()} image cannot be read ({exc})") from exc


def check_upload(
    data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES, max_pages: int = MAX_PAGES
) -> tuple[UploadKind, int]:
    """(kind, pages) of an upload (`inspect`)."""
    upload = inspect(data, max_bytes=max_bytes, max_pages=max_pages)
    return upload.kind, upload.pages


# --- drawing ----------------------------------------------------------------------------------


def _paper_height(paper: Paper) -> float:
    """The paper's height in square pixels of 1/204 in (fine lines are 1/196 in)."""
    return PAPER_LINES[paper] * X_DPI / Y_DPI_FINE


def _placement(width: float, height: float, paper: Paper) -> tuple[bool, float]:
    """(turn the page a quarter?, scale from its units to square fax pixels): as large as it
    fits on the paper; a landscape page is turned when that shows it clearly larger."""
    tall = _paper_height(paper)
    upright = min(FAX_WIDTH / width, tall / height)
    if width > height and width / height <= 1.5:
        turned = min(FAX_WIDTH / height, tall / width)
        if turned >= upright * TURN_GAIN:
            return True, turned
    return False, upright


def _fine_size(width: float, height: float, paper: Paper) -> tuple[int, int]:
    """A size in square fax pixels as (pels, fine lines), never beyond the paper."""
    pels = min(FAX_WIDTH, max(1, round(width)))
    lines = min(PAPER_LINES[paper], max(1, round(height * Y_DPI_FINE / X_DPI)))
    return pels, lines


def _on_paper(gray: Image.Image, paper: Paper) -> Image.Image:
    """A greyscale page at its fine-resolution size placed top-centre on a white page of
    the paper's length."""
    from PIL import Image

    page = Image.new("L", (FAX_WIDTH, PAPER_LINES[paper]), 255)
    page.paste(gray, ((FAX_WIDTH - gray.width) // 2, 0))
    return page


def _bilevel(gray: Image.Image, dither: bool | None) -> Image.Image:
    """Threshold text at 50 %; Floyd-Steinberg for photographs (many mid-grey pixels)."""
    from PIL import Image

    if dither is None:
        hist = gray.histogram()
        mid = sum(hist[48:208]) / max(1, gray.width * gray.height)
        dither = mid > 0.15
    if dither:
        out = gray.convert("1", dither=Image.Dither.FLOYDSTEINBERG)
    else:
        out = gray.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)
    out.info["dpi"] = (X_DPI, Y_DPI_FINE)
    return out


def _pdf_pages(data: bytes, upload: Upload, paper: Paper) -> Iterator[Image.Image]:
    import pypdfium2 as pdfium
    from PIL import Image

    pdf = pdfium.PdfDocument(data)
    try:
        for i, (width, height) in enumerate(upload.sizes):
            turn, scale = _placement(width, height, paper)
            page = pdf[i]
            try:
                bitmap = page.render(scale=scale, rotation=270 if turn else 0, grayscale=True)
                gray = bitmap.to_pil().convert("L")
                bitmap.close()
            except pdfium.PdfiumError as exc:
                raise UploadError(f"page {i + 1} of the PDF cannot be drawn ({exc})") from exc
            finally:
                page.close()
            fine = gray.resize(_fine_size(gray.width, gray.height, paper), Image.Resampling.LANCZOS)
            del gray
            yield _on_paper(fine, paper)
    finally:
        pdf.close()


# EXIF orientation (tag 0x0112) -> the transposition that shows the picture upright
# (Exif 2.32, 4.6.5 "Orientation"); 5 to 8 swap width and height.
_EXIF_TURNS: Final = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}  # Image.Transpose values


def _gray(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A frame as greyscale on white, scaled to `size`. 16-bit and float frames are scaled
    down in their own mode first, then brought to 8 bits (a 16-bit value / 257)."""
    from PIL import Image

    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        wide = im if im.mode in ("I", "F") else im.convert("I")
        small = wide.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        if im.mode != "F" and small.getextrema()[1] > 255:  # type: ignore[operator]
            small = small.point(lambda v: v / 257)
        return small.convert("L")
    return _on_white(im).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _on_white(im: Image.Image) -> Image.Image:
    """A frame as greyscale on white paper, one byte a pixel, with no copy in a wider mode
    than the decoded frame: transparency as a one-byte mask pasted white."""
    gray = im.convert("L")
    if im.mode == "P" and isinstance(im.info.get("transparency"), int):
        clear = im.info["transparency"]  # one palette entry is transparent
        gray.paste(255, None, im.point(lambda i: 255 if i == clear else 0, "1"))
    elif im.mode == "P" and "transparency" in im.info:  # an alpha for each palette entry
        gray.paste(255, None, im.convert("LA").getchannel("A").point(lambda a: 255 - a))
    elif "A" in im.getbands() or "a" in im.getbands():
        gray.paste(255, None, im.getchannel("A").point(lambda a: 255 - a))
    del im  # the caller's frame only
    return gray if gray.mode == "L" else gray.convert("L")


def _image_pages(data: bytes, upload: Upload, paper: Paper) -> Iterator[Image.Image]:
    """Each frame made greyscale on white at its decoded size (one byte a pixel), then scaled
    down: beyond the decoded frame, nothing wider than a byte a pixel is held."""
    from PIL import Image

    with _open_image(data) as im:
        for frame, (width, height) in enumerate(upload.sizes):
            im.seek(frame)
            orientation = _orientation(im)
            turn, scale = _placement(width, height, paper)
            pels, lines = _fine_size(width * scale, height * scale, paper)
            # Before the EXIF turn (and before ours) the frame is stored the other way round.
            sideways = orientation in (5, 6, 7, 8)
            if turn:
                pels, lines = _fine_size(height * scale, width * scale, paper)
            upright = (lines, pels) if turn else (pels, lines)
            stored = (upright[1], upright[0]) if sideways else upright
            if upload.kind == "jpeg":  # decode at 1/2, 1/4 or 1/8 when that is still enough
                im.draft("RGB", stored)
            gray = _gray(im, stored)
            if orientation in _EXIF_TURNS:
                gray = gray.transpose(Image.Transpose(_EXIF_TURNS[orientation]))
            if turn:
                gray = gray.transpose(Image.Transpose.ROTATE_90)
            yield _on_paper(gray, paper)


def pages(
    data: bytes,
    upload: Upload,
    *,
    paper: Paper = "a4",
    dither: bool | None = None,
) -> Iterator[Image.Image]:
    """The checked upload's pages, one at a time, as mode "1" images 1728 x paper lines at
    fine resolution (204 x 196 dpi)."""
    drawn = (
        _pdf_pages(data, upload, paper)
        if upload.kind == "pdf"
        else _image_pages(data, upload, paper)
    )
    for gray in drawn:
        yield _bilevel(gray, dither)


def rasterise(
    data: bytes, *, paper: Paper = "a4", dither: bool | None = None, max_pages: int = MAX_PAGES
) -> list[Image.Image]:
    """All pages of an upload at once (tests and benchmarks; the daemon uses the child)."""
    upload = inspect(data, max_pages=max_pages)
    return list(pages(data, upload, paper=paper, dither=dither))


def preview(page: Image.Image, *, fine: bool = True) -> Image.Image:
    """A greyscale picture of a page as it will be sent (every other line at normal
    resolution), a quarter of the fax width, in the page's true proportions."""
    from PIL import Image

    if not fine:
        page = page.resize((page.width, max(1, page.height // 2)), Image.Resampling.NEAREST)
    height = round(PREVIEW_WIDTH * page.height / page.width * X_DPI / (Y_DPI_FINE if fine else 98))
    return page.convert("L").resize((PREVIEW_WIDTH, max(1, height)), Image.Resampling.BOX)


def _g4(page: Image.Image) -> bytes:
    """A mode "1" page as a one-strip CCITT G4 TIFF keeping its dpi (img2pdf embeds it)."""
    buf = io.BytesIO()
    page.save(buf, "TIFF", compression="group4", dpi=(X_DPI, Y_DPI_FINE), strip_size=1 << 30)
    return buf.getvalue()


# --- cover page ---------------------------------------------------------------------------------

_FONT_FILES: Final = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def _font(size: int) -> Any:
    from PIL import ImageFont

    for path in _FONT_FILES:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


@dataclasses.dataclass(frozen=True, slots=True)
class Cover:
    """What the cover sheet says (the page count is the document's plus the cover)."""

    business: str
    to: str
    sender: str
    note: str = ""
    date: str = ""


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
    from PIL import Image, ImageDraw

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
    return _bilevel(page, False)


# --- the child --------------------------------------------------------------------------------

PAGES_FILE: Final = "pages.tif"
PDF_FILE: Final = "document.pdf"


def preview_name(n: int) -> str:
    return f"preview-{n:03d}.png"


def _emit(stdout: IO[bytes], message: dict[str, Any]) -> None:
    stdout.write(json.dumps(message).encode() + b"\n")
    stdout.flush()


def _limit_memory(limit: int) -> str:
    """Cap this process's address space; "" when done, else why not. Through prlimit64,
    which the service's system-call filter allows (@system-service; glibc's setrlimit uses
    it too), never the setrlimit system call (@resources, refused by the unit)."""
    import resource

    if limit <= 0:
        return ""
    try:
        resource.prlimit(0, resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError) as exc:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):
            return str(exc)
    return ""


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _render_upload(request: dict[str, Any], stdout: IO[bytes]) -> None:
    import img2pdf  # type: ignore[import-untyped]
    from PIL import TiffImagePlugin

    out = Path(request["out"])
    data = Path(request["upload"]).read_bytes()
    paper: Paper = "letter" if request.get("paper") == "letter" else "a4"
    fine = bool(request.get("fine", True))
    dither = request.get("dither")
    upload = inspect(
        data,
        max_bytes=int(request.get("max_bytes", MAX_UPLOAD_BYTES)),
        max_pages=int(request.get("max_pages", MAX_PAGES)),
    )
    cover = request.get("cover")
    total = upload.pages + (1 if cover else 0)
    _emit(stdout, {"pages": total, "kind": upload.kind})

    def document() -> Iterator[Image.Image]:
        if cover:
            yield cover_page(pages=total, paper=paper, **cover)
        yield from pages(data, upload, paper=paper, dither=dither)

    coded: list[bytes] = []  # G4 pages for the PDF: tens of kB each
    tiff = out / (PAGES_FILE + ".part")
    with TiffImagePlugin.AppendingTiffWriter(str(tiff), True) as writer:
        for n, page in enumerate(document(), 1):
            page.save(writer, "TIFF", compression="group4", dpi=(X_DPI, Y_DPI_FINE))
            writer.newFrame()
            coded.append(_g4(page))
            preview(page, fine=fine).save(out / preview_name(n), "PNG", optimize=True)
            del page
            _emit(stdout, {"page": n})
    pdf = img2pdf.convert(coded, title=str(request.get("title", "Fax")), nodate=True)
    _write(out / PDF_FILE, pdf)
    os.replace(tiff, out / PAGES_FILE)


def _render_thumbnail(request: dict[str, Any], stdout: IO[bytes]) -> None:
    """Page 1 of a stored PDF as a preview PNG."""
    import pypdfium2 as pdfium

    data = Path(request["pdf"]).read_bytes()
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise UploadError(f"the PDF cannot be read ({exc})") from exc
    try:
        if len(pdf) < 1:
            raise UploadError("the PDF has no pages")
        width, height = pdf.get_page_size(0)
        _check_tall(1, float(width), float(height), "pt")
        _emit(stdout, {"pages": 1})
        page = pdf[0]
        try:
            bitmap = page.render(scale=PREVIEW_WIDTH / float(width), grayscale=True)
            image = bitmap.to_pil().convert("L")
        finally:
            page.close()
    finally:
        pdf.close()
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    _write(Path(request["out"]), buf.getvalue())
    _emit(stdout, {"page": 1})


def _child(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    request: dict[str, Any] = json.loads(stdin.read())
    unlimited = _limit_memory(int(request.get("memory", RENDER_MEMORY)))
    if unlimited:
        _emit(stdout, {"unlimited": unlimited})
    lower_priority()
    try:
        if request.get("job") == "thumbnail":
            _render_thumbnail(request, stdout)
        else:
            _render_upload(request, stdout)
    except UploadError as exc:
        _emit(stdout, {"error": str(exc)})
        return 0
    except MemoryError:
        _emit(stdout, {"error": "memory"})
        return 0
    _emit(stdout, {"done": True})
    return 0


# --- the parent -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Rendered:
    """What the child wrote into `folder`: `pages.tif` (G4, one frame per page: what is
    sent), `document.pdf` and one `preview-NNN.png` per page."""

    folder: Path
    pages: int

    @property
    def tiff(self) -> Path:
        return self.folder / PAGES_FILE

    @property
    def pdf(self) -> Path:
        return self.folder / PDF_FILE

    def preview(self, n: int) -> Path:
        return self.folder / preview_name(n)


# (pages done, pages in all) as the child reports them.
Progress = Callable[[int, int], None]


class UploadRenderer:
    """Runs the render child, one at a time (two at once would need twice the memory);
    `stop()` kills a running child (its render fails with "Frontdesk is stopping").

    `memory`: the child's address-space limit in bytes; `stall`: seconds it may take to
    start, or to finish any one page, before it is killed."""

    def __init__(self, *, memory: int = RENDER_MEMORY, stall: float = STALL_TIMEOUT) -> None:
        self.memory = memory
        self.stall = stall
        self._one = threading.Lock()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def stop(self) -> None:
        with self._lock:
            proc = self._proc
            if proc is not None:
                self._stopped = True
        if proc is not None:
            kill_group(proc)

    def render(
        self,
        upload: Path,
        folder: Path,
        *,
        paper: str = "a4",
        dither: bool | None = None,
        fine: bool = True,
        cover: Cover | None = None,
        title: str = "Fax",
        max_bytes: int = MAX_UPLOAD_BYTES,
        max_pages: int = MAX_PAGES,
        on_progress: Progress | None = None,
    ) -> Rendered:
        """Check and draw the document in `upload` into `folder` (which must exist). Raises
        `UploadError` saying what was wrong with it, or why it could not be drawn."""
        request = {
            "job": "upload",
            "upload": str(upload),
            "out": str(folder),
            "paper": paper,
            "dither": dither,
            "fine": fine,
            "cover": dataclasses.asdict(cover) if cover is not None else None,
            "title": title,
            "max_bytes": max_bytes,
            "max_pages": max_pages,
        }
        total = self._run(request, on_progress)
        return Rendered(folder=folder, pages=total)

    def thumbnail(self, pdf: Path, out: Path) -> None:
        """Page 1 of `pdf` as a preview PNG written to `out`."""
        self._run({"job": "thumbnail", "pdf": str(pdf), "out": str(out)}, None)

    def _run(self, request: dict[str, Any], on_progress: Progress | None) -> int:
        request["memory"] = self.memory
        with self._one:
            with self._lock:
                self._stopped = False
                try:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", __name__],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        start_new_session=True,
                    )
                except OSError as exc:
                    raise UploadError(f"the page renderer could not start ({exc})") from None
                self._proc = proc
            try:
                return self._talk(proc, request, on_progress)
            finally:
                with self._lock:
                    self._proc = None

    def _talk(
        self, proc: subprocess.Popen[bytes], request: dict[str, Any], on_progress: Progress | None
    ) -> int:
        stalled = threading.Event()

        def overrun() -> None:
            stalled.set()
            kill_group(proc)

        timer = threading.Timer(self.stall, overrun)
        timer.daemon = True
        timer.start()
        errors = bytearray()
        drain = threading.Thread(target=_drain, args=(proc.stderr, errors), daemon=True)
        drain.start()
        total = done = 0
        outcome: dict[str, Any] = {}
        try:
            assert proc.stdin is not None and proc.stdout is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(json.dumps(request).encode())
                proc.stdin.close()
            for raw in proc.stdout:
                timer.cancel()
                timer = threading.Timer(self.stall, overrun)
                timer.daemon = True
                timer.start()
                message = json.loads(raw)
                if "unlimited" in message:
                    log.warning(
                        "the page renderer runs without its memory limit: %s",
                        message["unlimited"],
                    )
                    continue
                if "pages" in message:
                    total = int(message["pages"])
                elif "page" in message:
                    done = int(message["page"])
                elif "error" in message or "done" in message:
                    outcome = message
                    continue
                if on_progress is not None:
                    on_progress(done, total)
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                kill_group(proc)
                proc.wait()
            drain.join()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if outcome.get("done"):
            return total
        if outcome.get("error") == "memory":
            raise UploadError(self._memory_words(done, total))
        if "error" in outcome:
            raise UploadError(str(outcome["error"]))
        if self._stopped:
            raise UploadError("Frontdesk is stopping; try again once it has started")
        if stalled.is_set():
            raise UploadError(
                f"drawing {_which(done, total)} took longer than {self.stall:.0f} s; "
                "save the document as a simpler PDF (print it to PDF) and upload that"
            )
        if code < 0:  # the kernel's OOM killer, or pdfium ending itself on a failed allocation
            raise UploadError(
                f"{self._memory_words(done, total)} (the renderer stopped: signal {-code})"
            )
        last = errors.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"code {code}"]
        raise UploadError(f"the document could not be drawn ({last[0][:200]})")

    def _memory_words(self, done: int, total: int) -> str:
        return (
            f"{_which(done, total)} needs more memory than Frontdesk allows for drawing a "
            f"page ({self.memory // (1024 * 1024)} MB); scale it down, or save it as a "
            "simpler PDF, and upload that"
        )


def _which(done: int, total: int) -> str:
    if total and done < total:
        return f"page {done + 1} of {total}"
    return "the document"


def _drain(stream: IO[bytes] | None, into: bytearray) -> None:
    if stream is None:
        return
    for chunk in iter(lambda: stream.read(4096), b""):
        if len(into) < 16384:
            into.extend(chunk)


if __name__ == "__main__":
    sys.exit(_child(sys.stdin.buffer, sys.stdout.buffer))
