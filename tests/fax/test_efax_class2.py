"""Debian's efax drives the simulated Conexant modem in Class 2 (`-o2`) and Class 2.0
(`-o0`): it sends a page through it, and receives two pages from the simulated fax machine
with the modem answering itself (`-w -iS0=1`). An independent Class 2 host checks the
simulator's reports, DC2, escapes, XON, page ends and hangup codes."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from firmware_app.media.fax_image import decode_page
from firmware_app.media.fax_send import encode_page
from firmware_app.modem.simulator import FaxMachine, create
from firmware_app.modem.simulator.modem import SimulatedModem
from tests.fax.compare import rows_match

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not shutil.which("efax"), reason="needs efax (Debian package efax)"),
]

OPTION = {"2": "-o2", "2.0": "-o0"}


def _page() -> Image.Image:
    im = Image.new("1", (1728, 200), 1)
    im.paste(0, (100, 50, 900, 150))
    im.paste(0, (1200, 20, 1210, 180))
    return im


def _modem(folder: Path) -> SimulatedModem:
    modem = create("cx93010", folder)
    # Class 2.0 as well (MultiTech-style firmware); Class 2 is the Conexant V0.2013 quirk.
    modem.engine.p = dataclasses.replace(modem.engine.p, fclass_options_class2="0,1,1.0,2,2.0,8")
    return modem


@pytest.mark.parametrize("version", ["2", "2.0"])
def test_efax_sends_through_the_simulated_modem(tmp_path: Path, version: str) -> None:
    page = _page()
    tif = tmp_path / "page.tif"
    page.save(tif, "TIFF", compression="group3", dpi=(204, 196), strip_size=1 << 30)
    with _modem(tmp_path / "dev") as modem:
        machine = FaxMachine(remote_id="+1 555 2002")
        modem.fax.machine = machine
        proc = subprocess.run(
            [
                "efax",
                "-d",
                str(modem.path),
                OPTION[version],
                "-l",
                "+1 555 1001",
                "-t",
                "5552002",
                str(tif),
            ],
            capture_output=True,
            timeout=50,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        assert any(c.upper() == f"AT+FCLASS={version}" for c in modem.commands)
        assert machine.post_page == [2]
        (data,) = machine.received
    got = decode_page(data, fine=True)
    # efax writes its header line over ~20 blank rows above the page: compare below it
    offset, bad = rows_match(page, got.image, skip=24)
    assert bad == 0, f"{bad} rows differ (offset {offset})"
    assert got.damaged_lines == 0  # efax's last line is valid, if not canonical


@pytest.mark.parametrize("version", ["2", "2.0"])
def test_efax_receives_through_the_simulated_modem(tmp_path: Path, version: str) -> None:
    page = _page()
    data = encode_page(page, fine=True, mr=False, min_scan_bits=0, fill_order=2)
    with _modem(tmp_path / "dev") as modem:
        proc = subprocess.Popen(
            [
                "efax",
                "-d",
                str(modem.path),
                OPTION[version],
                "-w",
                "-iS0=1",
                "-r",
                str(tmp_path / "rx"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            modem.wait_for_command(r"AT\+FCC=|AT\+FDCC=", timeout=10)
            time.sleep(0.3)
            modem.fax_call(FaxMachine(pages=[data, data]), "5551001", rings=3, interval=1.0)
            _, err = proc.communicate(timeout=40)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert 'remote ID -> "+1 555 1001"' in err.decode()
    files = sorted(tmp_path.glob("rx.*"))
    assert len(files) == 2
    for f in files:
        with Image.open(f) as im:
            assert np.array_equal(np.asarray(im.convert("1")), np.asarray(page))
