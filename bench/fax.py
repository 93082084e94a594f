"""Received fax page -> PDF: our path (T.4 decode, line check, img2pdf) against Debian's
`fax2tiff | tiff2pdf` on the same A4 fine page, in the same run.

Each path runs 5 times in a row, the paths take turns 3 times, and each figure is the median
of its 15 runs, so the ratio holds when other work on the machine comes and goes.

Run: .venv/bin/python bench/fax.py   (targets: <= 150 ms per page on 2 x86 cores; <= 2x tools)
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from firmware_app.media.fax_image import FaxDocument, decode_page
from firmware_app.media.fax_send import encode_page


def a4_page() -> Image.Image:
    im = Image.new("L", (1728, 2287), 255)
    draw = ImageDraw.Draw(im)
    for y in range(60, 2200, 34):
        draw.text((80, y), f"Line {y:4d}: the quick brown fox jumps over the lazy dog " * 3, fill=0)
    draw.rectangle((1200, 120, 1650, 420), outline=0, width=6)
    return im.convert("1", dither=Image.Dither.NONE)


def medians(
    fns: dict[str, Callable[[], object]], blocks: int = 3, runs: int = 5
) -> dict[str, float]:
    """Median seconds of each function. Each runs `runs` times in a row (warm, as it would
    be alone), and the functions take turns block by block: a change of load on the machine
    during the run falls on all of them, not on whichever ran last."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            for _ in range(runs):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    data = encode_page(a4_page(), fill_order=2)  # as a Class 1 modem delivers it

    def ours(detect: bool = True) -> bytes:
        doc = FaxDocument(remote_id="+1 555 0100")
        doc.add_page(
            data, fine=True, mr=None if detect else False, fill_order=None if detect else 2
        )
        return doc.to_pdf()

    def decode_only() -> None:
        decode_page(data, fine=True)

    pdf = ours()
    fns: dict[str, Callable[[], object]] = {
        "detected": ours,
        "known": lambda: ours(False),
        "decode": decode_only,
    }
    have_tools = bool(shutil.which("fax2tiff") and shutil.which("tiff2pdf"))
    with tempfile.TemporaryDirectory() as tmp:
        g3, tif, out = Path(tmp, "p.g3"), Path(tmp, "p.tif"), Path(tmp, "p.pdf")
        g3.write_bytes(data)

        def tools() -> None:
            subprocess.run(
                ["fax2tiff", "-L", "-o", str(tif), str(g3)], check=True, capture_output=True
            )
            subprocess.run(["tiff2pdf", "-o", str(out), str(tif)], check=True, capture_output=True)

        if have_tools:
            fns["tools"] = tools
        t = medians(fns)
        size = out.stat().st_size if have_tools else 0
    print(f"page: {len(data)} bytes of T.4 (MH, LSB first); PDF {len(pdf)} bytes")
    print(f"ours, bit order and coding detected: {t['detected'] * 1000:7.1f} ms/page")
    print(f"ours, bit order and coding known:    {t['known'] * 1000:7.1f} ms/page")
    print(f"  of which decode and line check:    {t['decode'] * 1000:7.1f} ms/page")
    print(f"FIGURE\tfax page T.4 to PDF\t{t['detected'] * 1000:.1f}\tms/page\t150\t<=")
    if not have_tools:
        print("fax2tiff/tiff2pdf not installed: no comparison")
        return
    print(f"fax2tiff | tiff2pdf:                 {t['tools'] * 1000:7.1f} ms/page (PDF {size} B)")
    ratio, known = t["detected"] / t["tools"], t["known"] / t["tools"]
    print(f"ratio ours/tools: {ratio:.2f}x (detected), {known:.2f}x (known)")
    print(f"FIGURE\tfax page, ours / fax2tiff+tiff2pdf\t{ratio:.2f}\tx\t2\t<=")


if __name__ == "__main__":
    main()
