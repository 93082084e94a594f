"""Uploads drawn into fax pages in the render child: page by page into a G4 TIFF, a PDF and
previews, with the imaging libraries only in the child; its memory limit, page count, page
size and pixel caps refused in words; landscape pages turned, EXIF orientation honoured;
a stuck or stopped child ended."""

from __future__ import annotations

import io
import json
import platform
import struct
import subprocess
import sys
import textwrap
import threading
import zlib
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

from firmware_app.media.fax_render import (
    MAX_PAGES,
    Cover,
    UploadError,
    UploadRenderer,
    check_upload,
    rasterise,
)

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


def blank_pdf(*sizes: tuple[float, float]) -> bytes:
    pdf = pdfium.PdfDocument.new()
    for width, height in sizes:
        pdf.new_page(width, height)
    buf = io.BytesIO()
    pdf.save(buf)
    pdf.close()
    return buf.getvalue()


def drawn_pdf(size: tuple[int, int], box: tuple[int, int, int, int], pages: int = 1) -> bytes:
    """Pages of `size` pixels at 72 dpi (so pixels are points) with a black box on each."""
    images = []
    for _ in range(pages):
        im = Image.new("L", size, 255)
        ImageDraw.Draw(im).rectangle(box, fill=0)
        images.append(im)
    buf = io.BytesIO()
    images[0].save(buf, "PDF", resolution=72, save_all=True, append_images=images[1:])
    return buf.getvalue()


def png_header(width: int, height: int, colour_type: int = 2) -> bytes:
    """A PNG that declares a size (and holds no picture): enough for a check by content."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def render(
    tmp_path: Path, data: bytes, renderer: UploadRenderer | None = None, **kw: object
) -> tuple[Path, int, list[tuple[int, int]]]:
    upload = tmp_path / "upload"
    upload.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    seen: list[tuple[int, int]] = []
    result = (renderer or UploadRenderer()).render(
        upload, out, on_progress=lambda done, total: seen.append((done, total)), **kw
    )
    return out, result.pages, seen


def tiff_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("1")))
        return frames


def test_a_document_is_drawn_page_by_page_into_tiff_pdf_and_previews(tmp_path: Path) -> None:
    data = drawn_pdf((595, 842), (100, 100, 495, 200), pages=3)
    cover = Cover(business="Acme Dental", to="Dr Smith", sender="+1 555 0100", note="Forms")
    out, pages, seen = render(tmp_path, data, cover=cover, title="Fax to Dr Smith")
    assert pages == 4  # the cover and three pages
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # reported as each is done
    frames = tiff_frames(out / "pages.tif")
    assert [f.shape for f in frames] == [(2287, 1728)] * 4
    for frame in frames[1:]:  # the box, scaled to 1728 across and 196 lines per inch
        assert not frame[280:540, 310:1420].any() and frame[600:].all()
    pdf = pdfium.PdfDocument((out / "document.pdf").read_bytes())
    try:
        assert len(pdf) == 4
        assert round(pdf[0].get_width() / 72 * 204) == 1728
    finally:
        pdf.close()
    previews = sorted(out.glob("preview-*.png"))
    assert [p.name for p in previews] == [f"preview-{n:03d}.png" for n in range(1, 5)]
    with Image.open(previews[1]) as im:
        assert im.size == (432, 595) and im.mode == "L"
    assert not (out / "upload.part").exists() and not list(out.glob("*.part"))


def test_the_imaging_libraries_load_only_in_the_child(tmp_path: Path) -> None:
    """The caller (the daemon, the web page) keeps none of Pillow, pypdfium2, img2pdf or
    numpy after drawing a document."""
    (tmp_path / "upload").write_bytes(drawn_pdf((595, 842), (100, 100, 300, 300), pages=2))
    script = (
        "import sys; from pathlib import Path\n"
        "from firmware_app.media.fax_render import UploadRenderer\n"
        "r = UploadRenderer().render(Path(sys.argv[1]) / 'upload', Path(sys.argv[1]))\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = {'PIL', 'pypdfium2', 'img2pdf', 'numpy'} & loaded\n"
        "print(r.pages, sorted(heavy))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    assert run.stdout.split(None, 1) == ["2", "[]\n"]


def test_a_page_too_tall_is_refused_in_words(tmp_path: Path) -> None:
    with pytest.raises(UploadError, match=r"page 2 is 4 x 5080 mm, as tall as 1018 A4 pages"):
        render(tmp_path, blank_pdf((595, 842), (10, 14400)))
    with pytest.raises(UploadError, match="page 1 is 100 x 5000 pixels"):
        check_upload(png_header(100, 5000))
    # Up to three A4 pages tall is shrunk onto one sheet.
    out, pages, _ = render(tmp_path, drawn_pdf((200, 800), (0, 0, 199, 799)))
    (frame,) = tiff_frames(out / "pages.tif")
    black = ~frame
    assert pages == 1 and black[:, 864].all()  # top to bottom, centred
    assert 350 < black[1000].sum() < 700  # narrower than the paper


def test_page_count_and_pixel_caps(tmp_path: Path) -> None:
    with pytest.raises(UploadError, match=f"has {MAX_PAGES + 1} pages; at most {MAX_PAGES}"):
        render(tmp_path, blank_pdf(*[(595, 842)] * (MAX_PAGES + 1)))
    with pytest.raises(UploadError, match=r"8000 x 6000 pixels \(48 megapixels\); at most 40"):
        check_upload(png_header(8000, 6000))
    with pytest.raises(UploadError, match=r"\(30 megapixels\); at most 20 .* with transparency"):
        check_upload(png_header(6000, 5000, colour_type=6))  # RGBA: 4 bytes a pixel
    assert check_upload(png_header(6000, 5000)) == ("png", 1)


def test_a_page_beyond_the_memory_limit_is_refused_in_words(tmp_path: Path) -> None:
    """20 megapixels with transparency need 80 MB to decode: more than this child may use.
    The failure is the child's; the error says which page and what to do."""
    big = Image.new("P", (5000, 4000), 0)
    big.putpalette([0, 0, 0, 255, 255, 255])
    buf = io.BytesIO()
    big.save(buf, "PNG", transparency=1)
    del big
    with pytest.raises(UploadError, match=r"page 1 of 1 needs more memory .* \(96 MB\)"):
        render(tmp_path, buf.getvalue(), UploadRenderer(memory=96 * 1024 * 1024))
    out, pages, _ = render(tmp_path, buf.getvalue())  # the default limit draws it
    assert pages == 1 and (out / "pages.tif").is_file()


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16"])
def test_transparency_and_16_bit_images_come_out_right(mode: str) -> None:
    """Black on transparent (RGBA, a palette with a transparent entry) is black on white;
    a 16-bit greyscale scan is read by its value, not clipped to white."""
    if mode == "I;16":
        im = Image.new("I;16", (300, 400), 60000)
        ImageDraw.Draw(im).rectangle((0, 0, 299, 99), fill=2000)
        buf = io.BytesIO()
        im.save(buf, "PNG")
    else:
        im = Image.new("RGBA", (300, 400), (255, 0, 0, 0))  # transparent red
        ImageDraw.Draw(im).rectangle((0, 0, 299, 99), fill=(0, 0, 0, 255))
        buf = io.BytesIO()
        if mode == "P":
            pal = Image.new("P", im.size, 1)
            pal.putpalette([0, 0, 0, 255, 0, 0])
            pal.paste(0, (0, 0, 300, 100))
            pal.save(buf, "PNG", transparency=1)
        else:
            im.save(buf, "PNG")
    (page,) = rasterise(buf.getvalue(), dither=False)
    white = np.asarray(page)
    assert not white[20:500].any()  # the black band (its top quarter, scaled)
    assert white[900:2200].all()  # transparent (or light grey) below: white paper


def test_landscape_pages_are_turned_and_exif_orientation_honoured(tmp_path: Path) -> None:
    # A landscape A4 page, black all over: turned, it fills the sheet (not its top half).
    out, _, _ = render(tmp_path, drawn_pdf((842, 595), (0, 0, 841, 594)))
    (frame,) = tiff_frames(out / "pages.tif")
    assert (~frame).mean() > 0.9
    # A photo stored sideways with EXIF orientation 6 (turn 90 degrees clockwise to view):
    # the mark in its stored top-left corner shows top-right, page upright.
    stored = Image.new("L", (400, 300), 255)
    ImageDraw.Draw(stored).rectangle((0, 0, 60, 60), fill=0)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "PNG", exif=exif)
    (page,) = rasterise(buf.getvalue(), dither=False)
    black = ~np.asarray(page)
    assert black[:200, 1500:].mean() > 0.9 and not black[:200, :1000].any()


def test_a_stuck_child_is_ended_and_a_stop_ends_a_running_one(tmp_path: Path) -> None:
    data = drawn_pdf((595, 842), (50, 50, 100, 100), pages=3)
    with pytest.raises(UploadError, match="took longer than 0 s"):
        render(tmp_path, data, UploadRenderer(stall=0.001))
    renderer = UploadRenderer()
    stopped = threading.Event()

    def stop_at_first_page(done: int, total: int) -> None:
        if done >= 1 and not stopped.is_set():
            stopped.set()
            renderer.stop()

    (tmp_path / "upload").write_bytes(data)
    with pytest.raises(UploadError, match="Frontdesk is stopping"):
        renderer.render(tmp_path / "upload", tmp_path, on_progress=stop_at_first_page)
    assert stopped.is_set()
    _, pages, _ = render(tmp_path, data, renderer)  # the next render runs as usual
    assert pages == 3


def test_a_received_fax_pdf_gets_a_thumbnail(tmp_path: Path) -> None:
    pdf = tmp_path / "fax.pdf"
    pdf.write_bytes(drawn_pdf((610, 800), (0, 0, 609, 100)))
    UploadRenderer().thumbnail(pdf, tmp_path / "thumb.png")
    with Image.open(tmp_path / "thumb.png") as im:
        assert im.width == 432 and im.mode == "L"
        assert np.asarray(im)[:60].mean() < 30 and np.asarray(im)[100:].mean() > 225
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 nothing")
    with pytest.raises(UploadError, match="cannot be read"):
        UploadRenderer().thumbnail(tmp_path / "bad.pdf", tmp_path / "t.png")


# -- under the service's sandbox ------------------------------------------------------------------

# (AUDIT_ARCH_*, (setrlimit, setpriority)) from linux/audit.h and the syscall tables: the two
# calls of @resources a child would use, which systemd/frontdesk.service refuses (EPERM).
SECCOMP_ARCHES = {"x86_64": (0xC000003E, (160, 141)), "aarch64": (0xC00000B7, (164, 140))}

SANDBOXED = textwrap.dedent(
    """
    import ctypes, json, sys
    from pathlib import Path
    audit, (setrlimit, setpriority) = json.loads(sys.argv[1])

    class Insn(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                    ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]

    LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
    ALLOW, EPERM = 0x7FFF0000, 0x00050000 | 1
    insns = [
        Insn(LD_ABS, 0, 0, 4),            # seccomp_data.arch
        Insn(JEQ, 0, 3, audit),           # another ABI: allow
        Insn(LD_ABS, 0, 0, 0),            # seccomp_data.nr
        Insn(JEQ, 2, 0, setrlimit),
        Insn(JEQ, 1, 0, setpriority),
        Insn(RET, 0, 0, ALLOW),
        Insn(RET, 0, 0, EPERM),           # as SystemCallErrorNumber=EPERM
    ]
    table = (Insn * len(insns))(*insns)
    prog = Prog(len(insns), table)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, as NoNewPrivileges=yes
        sys.exit("no_new_privs: errno %d" % ctypes.get_errno())
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        sys.exit("seccomp: errno %d" % ctypes.get_errno())

    from firmware_app.media.fax_render import UploadError, UploadRenderer
    folder = Path(sys.argv[2])
    try:
        UploadRenderer(memory=96 * 1024 * 1024).render(folder / "upload", folder)
        print(json.dumps("drawn"))
    except UploadError as exc:
        print(json.dumps(str(exc)))
    """
)


def test_the_memory_limit_holds_under_the_service_sandbox(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The render child, started from a process whose seccomp filter refuses setrlimit and
    setpriority as the systemd unit's does, still gets its memory limit (prlimit64)."""
    arch = SECCOMP_ARCHES.get(platform.machine())
    if arch is None:
        pytest.skip(f"no seccomp table for {platform.machine()}")
    big = Image.new("P", (5000, 4000), 0)
    big.putpalette([0, 0, 0, 255, 255, 255])
    big.save(tmp_path / "upload", "PNG", transparency=1)
    del big
    done = subprocess.run(
        [sys.executable, "-c", SANDBOXED, json.dumps(arch), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert "needs more memory than Frontdesk allows" in said, said
    assert "without its memory limit" not in done.stderr
