"""Received fax page -> PDF: our path (T.4 decode, line check, img2pdf) against Debian's
`fax2tiff | tiff2pdf` on the same A4 fine page, in the same run.

Run: .venv/bin/python bench/fax.py   (targets: <= 150 ms per page on 2 x86 cores; <= 2x tools)
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from firmware_app.media.fax_image import FaxDocument
from firmware_app.media.fax_send import encode_page


def a4_page() -> Image.Image:
    im = Image.new("L", (1728, 2287), 255)
    draw = ImageDraw.Draw(im)
    for y in range(60, 2200, 34):
        draw.text((80, y), f"Line {y:4d}: the quick brown fox jumps over the lazy dog " * 3, fill=0)
    draw.rectangle((1200, 120, 1650, 420), outline=0, width=6)
    return im.convert("1", dither=Image.Dither.NONE)


def timed(fn: object, runs: int) -> float:
    assert callable(fn)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    data = encode_page(a4_page(), fill_order=2)  # as a Class 1 modem delivers it

    def ours(detect: bool = True) -> bytes:
        doc = FaxDocument(remote_id="+1 555 0100")
        doc.add_page(
            data, fine=True, mr=None if detect else False, fill_order=None if detect else 2
        )
        return doc.to_pdf()

    pdf = ours()
    t_ours = timed(ours, 7)
    t_known = timed(lambda: ours(False), 7)
    print(f"page: {len(data)} bytes of T.4 (MH, LSB first); PDF {len(pdf)} bytes")
    print(f"ours, bit order and coding detected: {t_ours * 1000:7.1f} ms/page")
    print(f"ours, bit order and coding known:    {t_known * 1000:7.1f} ms/page")
    print(f"FIGURE\tfax page T.4 to PDF\t{t_ours * 1000:.1f}\tms/page\t150\t<=")
    if not (shutil.which("fax2tiff") and shutil.which("tiff2pdf")):
        print("fax2tiff/tiff2pdf not installed: no comparison")
        return
    with tempfile.TemporaryDirectory() as tmp:
        g3, tif, out = Path(tmp, "p.g3"), Path(tmp, "p.tif"), Path(tmp, "p.pdf")
        g3.write_bytes(data)

        def tools() -> None:
            subprocess.run(
                ["fax2tiff", "-L", "-o", str(tif), str(g3)], check=True, capture_output=True
            )
            subprocess.run(["tiff2pdf", "-o", str(out), str(tif)], check=True, capture_output=True)

        t_tools = timed(tools, 7)
        size = out.stat().st_size
        print(f"fax2tiff | tiff2pdf:                 {t_tools * 1000:7.1f} ms/page (PDF {size} B)")
    print(f"ratio ours/tools: {t_ours / t_tools:.2f}x (detected), {t_known / t_tools:.2f}x (known)")
    print(f"FIGURE\tfax page, ours / fax2tiff+tiff2pdf\t{t_ours / t_tools:.2f}\tx\t2\t<=")


if __name__ == "__main__":
    main()
