"""Page comparison for the fax line tests: the rows of a received page against the sent one,
below the header line a sender may add (efax adds about 20 rows at the top)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def rows_match(
    sent: Image.Image, got: Image.Image, *, skip: int = 0, max_offset: int = 64
) -> tuple[int, int]:
    """Find where `sent` (from its row `skip` down) lies in `got` (0..max_offset rows lower)
    and count the rows that differ there, rows missing in `got` included.
    Returns (offset, differing rows)."""
    a = np.asarray(sent.convert("1"), dtype=bool)[skip:]
    b = np.asarray(got.convert("1"), dtype=bool)[skip:]
    if a.shape[1] != b.shape[1]:
        return 0, a.shape[0]
    best = (0, a.shape[0] + 1)
    for offset in range(0, min(max_offset, b.shape[0]) + 1):
        h = min(a.shape[0], b.shape[0] - offset)
        if h <= 0:
            break
        bad = int((a[:h] != b[offset : offset + h]).any(axis=1).sum()) + (a.shape[0] - h)
        if bad < best[1]:
            best = (offset, bad)
            if bad == 0:
                break
    return best
