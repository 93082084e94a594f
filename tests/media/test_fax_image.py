"""Fax images: pages from independent encoders (netpbm pbmtog3, libtiff tiffcp/fax2tiff) decode
pixel-exact in both bit orders, damaged lines are kept and counted, PDFs keep G4; sending side:
rasterise a PDF made here, code T.4 MH/MR, decode back; cover page; upload checks."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from pathlib import Path

import img2pdf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from firmware_app.media import fax_image
from firmware_app.media.fax_image import (
    FaxDocument,
    FaxImageError,
    decode_page,
    strip_data,
)
from firmware_app.media.fax_send import (
    FaxPage,
    UploadError,
    check_upload,
    cover_page,
    encode_page,
    rasterise,
)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian packages netpbm / libtiff-tools)")
    return path


def text_page(height: int = 600, seed: int = 3) -> Image.Image:
    im = Image.new("L", (1728, height), 255)
    draw = ImageDraw.Draw(im)
    for y in range(0, height, 41):
        draw.text((30 + (y * seed) % 400, y), f"Invoice {y} total 1,234.56 " * 5, fill=0)
    draw.ellipse((400, 50, 1300, height - 50), outline=0, width=5)
    draw.rectangle((1500, 100, 1727, 300), fill=0)
    return im.convert("1", dither=Image.Dither.NONE)


@pytest.fixture(scope="module")
def page() -> Image.Image:
    return text_page()


@pytest.fixture(scope="module")
def pbm(tmp_path_factory: pytest.TempPathFactory, page: Image.Image) -> Path:
    path = tmp_path_factory.mktemp("fax") / "page.pbm"
    page.save(path)
    return path


def same(decoded: Image.Image, want: Image.Image) -> bool:
    return np.array_equal(np.asarray(decoded), np.asarray(want))


@pytest.mark.parametrize("reverse", [False, True], ids=["msb-first", "lsb-first"])
def test_pbmtog3_pages_decode_pixel_exact(pbm: Path, page: Image.Image, reverse: bool) -> None:
    args = [need("pbmtog3"), *(["-reversebits"] if reverse else []), str(pbm)]
    data = subprocess.run(args, capture_output=True, check=True).stdout
    got = decode_page(data, fine=True)
    assert got.fill_order == (2 if reverse else 1) and not got.mr
    assert got.lines == page.height and got.damaged_lines == 0 and got.quality == 1.0
    assert same(got.image, page)


def same_top(theirs: Image.Image, want: Image.Image) -> bool:
    """libtiff tools count RTC's EOLs as extra white rows: compare the page, rest white."""
    pixels = np.asarray(theirs.convert("1"))
    return same(Image.fromarray(pixels[: want.height]), want) and bool(pixels[want.height :].all())


def fax2tiff(tmp_path: Path, pbm: Path) -> Path:
    """pbmtog3 | fax2tiff: a G3 TIFF made by netpbm and libtiff (min-is-white)."""
    g3 = subprocess.run([need("pbmtog3"), str(pbm)], capture_output=True, check=True).stdout
    (tmp_path / "page.g3").write_bytes(g3)
    out = tmp_path / "f.tif"
    cmd = [need("fax2tiff"), "-M", "-o", str(out), str(tmp_path / "page.g3")]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


@pytest.mark.parametrize(
    ("compression", "fill"),
    [("g3", "lsb2msb"), ("g3:2d", "lsb2msb"), ("g3:fill", "msb2lsb"), ("g3:2d:fill", "msb2lsb")],
)
def test_tiffcp_pages_decode_pixel_exact(
    tmp_path: Path, pbm: Path, page: Image.Image, compression: str, fill: str
) -> None:
    src = fax2tiff(tmp_path, pbm)
    out = tmp_path / "g3.tif"
    cmd = [need("tiffcp"), "-c", compression, "-f", fill, "-r", "100000", str(src), str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    raw = strip_data(out.read_bytes())
    got = decode_page(raw, fine=True)
    assert got.mr == ("2d" in compression)
    assert got.fill_order == (2 if fill == "lsb2msb" else 1)
    assert got.damaged_lines == 0 and same_top(got.image, page)


def test_fax2tiff_agrees_with_our_decode(tmp_path: Path, pbm: Path, page: Image.Image) -> None:
    with Image.open(fax2tiff(tmp_path, pbm)) as theirs:
        assert same_top(theirs, page)


def test_damaged_lines_are_kept_and_counted(pbm: Path, page: Image.Image) -> None:
    data = bytearray(subprocess.run([need("pbmtog3"), str(pbm)], capture_output=True).stdout)
    middle = len(data) // 2
    for i in range(middle, middle + 30):
        data[i] ^= 0xA5
    got = decode_page(bytes(data), fine=True)
    assert got.fill_order == 1
    wrong_rows = int((np.asarray(got.image) != np.asarray(page)).any(axis=1).sum())
    assert 1 <= got.damaged_lines <= 40 and wrong_rows >= 1
    assert abs(got.lines - page.height) <= got.damaged_lines
    assert 0.9 < got.quality < 1.0
    doc = FaxDocument(remote_id="+1 555", pages=[got])
    assert doc.damaged_lines == got.damaged_lines and doc.to_pdf().startswith(b"%PDF-")


def tiffcp_mr(tmp_path: Path, pbm: Path) -> bytes:
    """The page as MR (2-D) T.4 from libtiff's tiffcp, first bit in the MSB."""
    out = tmp_path / "mr.tif"
    cmd = [need("tiffcp"), "-c", "g3:2d", "-f", "msb2lsb", "-r", "100000"]
    subprocess.run([*cmd, str(fax2tiff(tmp_path, pbm)), str(out)], check=True)
    return strip_data(out.read_bytes())


def photo_page(height: int = 96) -> Image.Image:
    """Dithered noise: many short runs, every 2-D mode."""
    rng = np.random.default_rng(7)
    grey = (rng.random((height, 1728)) * 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("1")


def every_line_reads_strictly(data: bytes, fine: bool) -> int:
    """Read every line with the strict T.4 reader; it must give libtiff's rows. Returns
    the number of lines read."""
    got = decode_page(data, fine=fine)
    cut = fax_image._cut(data, got.fill_order, mr=got.mr)
    black = ~np.asarray(got.image, dtype=bool)
    assert len(cut) == got.lines
    bad = [i for i in range(len(cut)) if not fax_image._line_ok(cut, i, black)]
    assert bad == []
    return len(cut)


def test_the_strict_line_reader_agrees_with_libtiff(
    tmp_path: Path, pbm: Path, page: Image.Image
) -> None:
    mh = subprocess.run([need("pbmtog3"), str(pbm)], capture_output=True, check=True).stdout
    assert every_line_reads_strictly(mh, True) == page.height
    # fax2tiff keeps RTC's EOLs as a few white rows more
    assert every_line_reads_strictly(tiffcp_mr(tmp_path, pbm), True) >= page.height
    noise = photo_page()
    for fine, mr in ((True, True), (False, True), (True, False)):  # K = 4, K = 2, MH
        assert every_line_reads_strictly(encode_page(noise, fine=fine, mr=mr), fine) >= 48


def test_damage_on_an_mr_page_is_counted(tmp_path: Path, pbm: Path, page: Image.Image) -> None:
    clean = tiffcp_mr(tmp_path, pbm)
    assert decode_page(clean, fine=True).damaged_lines == 0
    data = bytearray(clean)
    middle = len(data) // 2
    for i in range(middle, middle + 30):
        data[i] ^= 0xA5
    got = decode_page(bytes(data), fine=True, mr=True)
    shown = np.asarray(got.image)
    wrong = np.flatnonzero((shown[: page.height] != np.asarray(page)[: shown.shape[0]]).any(1))
    assert wrong.size >= 1 and got.damaged_lines >= 1
    # The damage is found where the picture went wrong (errors run on to the next 1-D line).
    assert got.damaged_lines <= 40 and 0.9 < got.quality < 1.0


def test_copy_quality_thresholds(pbm: Path, page: Image.Image) -> None:
    clean = subprocess.run([need("pbmtog3"), str(pbm)], capture_output=True, check=True).stdout
    good = decode_page(clean, fine=True)
    assert good.damage_run == 0 and fax_image.acceptable(good)
    data = bytearray(clean)
    for i in range(len(data) // 3, len(data) // 3 + 400):  # a burst of line noise
        data[i] ^= 0x5A
    bad = decode_page(bytes(data), fine=True)
    assert bad.damage_run > fax_image.MAX_BAD_RUN and not fax_image.acceptable(bad)
    few = dataclasses.replace(good, damaged_lines=3, damage_run=3)
    assert fax_image.acceptable(few)  # 3 lines of 600, none more than 5 in a row
    many = dataclasses.replace(good, damaged_lines=40, damage_run=1)
    assert not fax_image.acceptable(many)  # under 95 % good lines


def _line(*codes: str) -> str:
    return "000000000001" + "".join(codes)


def _t4(lines: list[str]) -> bytes:
    bits = "".join(lines) + "000000000001" * 6
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


# T.4 Tables 2 and 3: white 1728 (make-up), white 0, black 0, white 64 (make-up), white 36,
# black 2, white 1600 (make-up), white 26.
W1728, W0, B0, W64 = "010011011", "00110101", "0000110111", "11011"
W36, B2, W1600, W26 = "00010101", "11", "010011010", "0010011"


def test_valid_but_non_canonical_codes_are_not_damage() -> None:
    white = _line(W1728, W0)
    lines = [
        white,
        _line(W1728, W0, B0),  # efax ends its pages with this line: a trailing black run of 0
        _line(W64, W0, B0, W36, B2, W1600, W26),  # white 64+0, black 0, white 36: one run
        white,
    ]
    got = decode_page(_t4(lines), fine=True, mr=False, fill_order=1)
    rows = ~np.asarray(got.image, dtype=bool)
    assert got.lines == 4 and not rows[0].any() and not rows[1].any()
    assert np.flatnonzero(rows[2]).tolist() == [100, 101]  # 100 white, 2 black, the rest white
    assert got.damaged_lines == 0
    broken = _t4([white, _line(W64, "00000000000011", W0), white])  # not a code: damage
    assert decode_page(broken, fine=True, mr=False, fill_order=1).damaged_lines >= 1
    # A sender whose every line is valid but not canonical: more than the strict reading's
    # budget of bits; the lines past it go the way those read went.
    odd = _line(*(W0 + B0) * 200, W1728, W0)
    many = decode_page(_t4([odd] * 120), fine=True, mr=False, fill_order=1)
    assert many.lines == 120 and many.damaged_lines == 0
    assert 120 * len(odd) > fax_image.STRICT_BITS


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_any_page_data_gives_a_page_or_faximageerror(data: bytes, fine: bool) -> None:
    try:
        got = decode_page(data, fine=fine)
    except FaxImageError:
        return
    assert got.image.width == 1728 and got.lines >= 1


def test_pdf_keeps_g4_and_true_page_size(page: Image.Image) -> None:
    fine = decode_page(encode_page(page), fine=True)
    normal = decode_page(encode_page(page, fine=False), fine=False)
    pdf = FaxDocument(remote_id="x", pages=[fine, normal]).to_pdf()
    assert pdf.count(b"/CCITTFaxDecode") == 2 and b"/K -1" in pdf
    assert len(pdf) < 40_000
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    widths = [round(doc[i].get_width()) for i in range(2)]
    heights = [round(doc[i].get_height()) for i in range(2)]
    doc.close()
    assert widths == [610, 610]  # 1728 / 204 in
    assert abs(heights[0] - heights[1]) <= 1  # same paper at 196 and 98 lpi


# --- sending --------------------------------------------------------------------------------


@pytest.mark.parametrize("mr", [False, True], ids=["MH", "MR"])
@pytest.mark.parametrize("fine", [True, False], ids=["fine", "normal"])
def test_rasterised_pdf_codes_and_decodes_back(mr: bool, fine: bool) -> None:
    drawing = Image.new("L", (1240, 1754), 255)  # A4 at 150 dpi
    d = ImageDraw.Draw(drawing)
    d.rectangle((100, 100, 1100, 300), outline=0, width=8)
    d.text((150, 500), "Purchase order 42", fill=0)
    buf = io.BytesIO()
    drawing.save(buf, "PDF", resolution=150)
    pages = rasterise(buf.getvalue())
    assert len(pages) == 1 and pages[0].size == (1728, 2287) and pages[0].mode == "1"
    data = FaxPage(pages[0]).encode(fine=fine, mr=mr, min_scan_bits=144)
    got = decode_page(data, fine=fine)
    assert got.mr is mr and got.fill_order == 2 and got.damaged_lines == 0
    assert np.array_equal(np.asarray(got.image), np.asarray(pages[0])[:: 1 if fine else 2])


def test_our_mh_decodes_with_g3topbm(tmp_path: Path, page: Image.Image) -> None:
    g3topbm = need("g3topbm")
    (tmp_path / "p.g3").write_bytes(encode_page(page, fill_order=1))
    out = subprocess.run([g3topbm, str(tmp_path / "p.g3")], capture_output=True, check=True)
    with Image.open(io.BytesIO(out.stdout)) as theirs:
        assert same(theirs.convert("1"), page)


def test_min_scan_line_padding() -> None:
    blank = Image.new("1", (1728, 100), 1)
    short = encode_page(blank)
    padded = encode_page(blank, min_scan_bits=288)
    assert len(padded) >= 100 * 288 // 8 > len(short)
    assert same(decode_page(padded, fine=True).image, blank)


def test_photo_is_dithered_and_text_is_not() -> None:
    gradient = Image.linear_gradient("L").resize((800, 600))
    buf = io.BytesIO()
    gradient.save(buf, "PNG")
    photo = rasterise(buf.getvalue(), paper="letter")[0]
    assert photo.size == (1728, 2156)
    band = np.asarray(photo)[100:200, 200:1500]
    assert 0.05 < band.mean() < 0.95  # dither: mixed pixels in a grey band


def test_cover_page() -> None:
    im = cover_page(
        business="Acme Dental",
        to="Dr Smith",
        sender="+1 555 0100",
        pages=3,
        note="Forms attached. " * 30,
        date="2024-05-01",
    )
    assert im.size == (1728, 2287) and im.mode == "1"
    black = 1 - np.asarray(im)
    assert black[:400].sum() > 1000 and black[-200:].sum() == 0


def test_check_upload() -> None:
    buf = io.BytesIO()
    Image.new("L", (100, 100), 255).save(buf, "PDF")
    assert check_upload(buf.getvalue()) == ("pdf", 1)
    png = io.BytesIO()
    Image.new("L", (10, 10)).save(png, "PNG")
    assert check_upload(png.getvalue()) == ("png", 1)
    tiff = img2pdf.convert(png.getvalue())  # a PDF again, made by another writer
    assert check_upload(tiff)[0] == "pdf"
    for data, words in [
        (b"", "empty"),
        (b"MZ\x90\x00", "not a PDF"),
        (b"%PDF-1.4 garbage", "cannot be read"),
        (b"\x89PNG\r\n\x1a\nxx", "cannot be read"),
        (buf.getvalue(), "limit"),
    ]:
        with pytest.raises(UploadError, match=words):
            check_upload(data, max_bytes=1000 if words == "limit" else 10**6)
    with pytest.raises(UploadError, match="at most 0"):
        check_upload(buf.getvalue(), max_pages=0)
