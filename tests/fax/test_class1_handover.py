"""The USR5637's everyday case end to end: a fax machine calls the office line, the call is
answered as a voice call, the caller's calling tone (CNG) hands it to the fax service, which
switches the modem to Class 1 (AT+FCLASS=1, ATA) and runs T.30 itself against the simulator's
fax machine over the virtual line. One call record (outcome fax), one fax record whose PDF
holds the page pixel for pixel, one email."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pypdfium2
import pytest
from PIL import Image

from firmware_app.calls.events import CallFinished
from firmware_app.fax.service import FaxService
from firmware_app.media.fax_send import encode_page
from firmware_app.modem.simulator import LineFax, VirtualLine, VoiceCaller
from tests.calls.test_calls_e2e import World, world  # noqa: F401  (the fixture)
from tests.calls.test_fax_handover import fax_record

pytestmark = pytest.mark.timeout(120)


def _page() -> Image.Image:
    im = Image.new("1", (1728, 200), 1)
    for x in range(41, 1700, 173):
        im.paste(0, (x, 30, x + 57, 170))
    im.paste(0, (0, 98, 1728, 102))
    return im


def test_a_calling_tone_then_a_class1_fax_from_the_line(
    world: Callable[..., World],  # noqa: F811
) -> None:
    w = world("usr5637")
    assert w.line.profile is not None and w.line.profile.fax_classes == ("1",)
    fax = FaxService(
        w.services.store,
        w.services.bus,
        w.services.settings.get,
        w.services.history,
        type("Lines", (), {"line": lambda _, n: w.line, "lines": lambda _: [w.line]})(),
        clock=lambda: w.services.clock(),
        notify=w.services.notify,
    )
    fax.subscribe()
    w.services.fax = fax
    page = _page()
    machine = LineFax(local_id="HANDOVER 0003")
    w.modem.voice.caller = VoiceCaller().send_fax_tone(at=0.1, after="play")
    mark = w.recorder.mark()
    line = VirtualLine(machine, w.modem, numbers=("+15551234567", "5552002"), ring_interval=0.3)
    try:
        machine.send([[encode_page(page, fine=True, mr=False, min_scan_bits=0)]])
        done = w.recorder.wait(CallFinished, timeout=30, since=mark)
        call = w.services.history.get(done.record_id)
        assert call is not None
        assert (call.channel, call.outcome, call.details["fax"]) == ("call", "fax", "taken over")
        got = fax_record(w, timeout=60)
        result = machine.wait(60)
    finally:
        line.close()
        machine.close()
    assert result.ok, result
    assert (got.outcome, got.name, got.number) == ("received", "HANDOVER 0003", "+15551234567")
    assert got.details["fax_class"] == "1" and got.details["pages"] == 1
    assert got.details["damaged_lines"] == 0 and got.details["rate"] == "V.17/14400"
    assert w.modem.wait_for_command(r"AT\+FCLASS=1", timeout=5)
    pdf = pypdfium2.PdfDocument(w.services.store.media.read(got.media[0]))
    try:
        assert len(pdf) == 1
        (obj,) = list(pdf[0].get_objects())
        image = obj.get_bitmap(render=False).to_pil().convert("1")
    finally:
        pdf.close()
    assert image.size == page.size and np.array_equal(np.asarray(image), np.asarray(page))
    (msg,) = w.mails(1, timeout=15)
    assert msg["X-Frontdesk-Kind"] == "fax"
    records = w.services.history.newest(20)
    assert [r.channel for r in records].count("fax") == 1
    assert not [r for r in records if r.outcome == "voicemail"]
