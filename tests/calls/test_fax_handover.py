"""Faxes on the call lines: a calling tone on a voice call hands the line to the fax service
(no hang-up), a fax-only line is answered by the fax service, and the analog driver tells the
routing what its modem can do. Simulated modem on a pty; the fax session is a stand-in in most
tests (the T.30 exchange has its own tests in tests/fax), and a real Class 2.0 reception from
the simulated fax machine in the end-to-end hand-over test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from firmware_app.calls.events import FaxToneDetected
from firmware_app.fax import session as fax_session
from firmware_app.fax.service import FaxService
from firmware_app.modem.analog import AnalogDriver
from firmware_app.modem.detect import Profile
from firmware_app.modem.events import CallerHungUp
from firmware_app.modem.simulator import VoiceCaller
from firmware_app.protocol.voice import VoiceFormat
from firmware_app.services.history import Interaction

from .test_calls_e2e import World, world  # noqa: F401  (the fixture)

pytestmark = pytest.mark.timeout(60)


class FakeReceive:
    """Stands in for `fax_session.receive`: notes how it was called, "receives" nothing."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.done = threading.Event()

    def __call__(self, line: Any, **kw: Any) -> fax_session.ReceiveOutcome:
        self.calls.append({"line": line, **kw})
        self.done.set()
        return fax_session.ReceiveOutcome(ok=False, reason="test: no pages", fax_class="1")


def with_fax(w: World) -> FakeReceive:
    receive = FakeReceive()
    lines = type("Lines", (), {"line": lambda _, n: w.line, "lines": lambda _: [w.line]})()
    fax = FaxService(
        w.services.store,
        w.services.bus,
        w.services.settings.get,
        w.services.history,
        lines,
        clock=lambda: w.services.clock(),
        receive=receive,
    )
    fax.subscribe()
    w.services.fax = fax
    return receive


def fax_record(w: World, timeout: float = 10.0) -> Interaction:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = w.services.history.newest(5, where=lambda i: i.channel == "fax")
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("no fax record")


def test_a_calling_tone_hands_the_answered_call_to_the_fax_service(
    world: Callable[..., World],  # noqa: F811
) -> None:
    w = world()
    receive = with_fax(w)
    listeners = len(w.services.bus._subs.get(CallerHungUp, []))
    item = w.call("+15551234567", VoiceCaller().send_fax_tone(at=0.1, after="play"))
    assert item.outcome == "fax" and item.channel == "call"
    assert item.details["fax"] == "taken over"
    assert receive.done.wait(10)
    (asked,) = receive.calls  # once: the bus event did not start a second reception
    assert asked["line"] is w.line and asked["answered"] is True
    fax = fax_record(w)
    assert (fax.outcome, fax.number, fax.line) == ("failed", "+15551234567", "line1")
    assert w.recorder.of(FaxToneDetected)
    # The voice session left the line to the fax session: it never hung up, and its audio
    # channel stopped listening (no listener left behind per fax call).
    assert "ATH" not in w.modem.commands
    assert len(w.services.bus._subs.get(CallerHungUp, [])) == listeners


def test_without_a_fax_service_the_fax_call_is_hung_up(
    world: Callable[..., World],  # noqa: F811
) -> None:
    w = world()
    item = w.call("+15551234567", VoiceCaller().send_fax_tone(at=0.1, after="play"))
    assert item.outcome == "fax" and item.details["fax"].startswith("not taken")
    assert "ATH" in w.modem.commands


def test_a_fax_only_line_is_answered_by_the_fax_service(
    world: Callable[..., World],  # noqa: F811
) -> None:
    w = world()
    receive = with_fax(w)
    settings = w.services.settings.get()
    settings.lines.fax_only = ["line1"]
    w.services.settings.save(settings)
    caps = w.line.capabilities
    assert caps is not None and caps.fax_only and caps.can_receive_fax
    w.modem.ring("+15551234567", rings=2, interval=0.3)
    assert receive.done.wait(10)
    (asked,) = receive.calls
    assert asked["line"] is w.line and asked["answered"] is False
    fax = fax_record(w)
    assert (fax.channel, fax.number) == ("fax", "+15551234567")
    assert not any("FCLASS=8" in c for c in w.modem.commands)  # never answered for voice
    assert w.services.history.newest(5, where=lambda i: i.channel == "call") == []


VOICE_FORMAT = VoiceFormat(
    cmid=131, name="ULAW", codec="ulaw", rate=8000, command="AT+VSM=131,8000"
)


@dataclass
class FakeIO:
    name: str = "line1"
    fax_only: list[str] = field(default_factory=list)
    transfer_lines: list[str] = field(default_factory=list)

    def settings(self) -> Any:
        return type(
            "Lines", (), {"fax_only": self.fax_only, "transfer_lines": self.transfer_lines}
        )()


@pytest.mark.parametrize(
    ("classes", "can_fax"),
    [((), False), (("0", "8"), False), (("0", "1", "8"), True), (("0", "2.0"), True)],
)
def test_analog_capabilities_come_from_the_profile(classes: tuple[str, ...], can_fax: bool) -> None:
    driver = AnalogDriver(Profile(port="/dev/x", kind="analog", title="t", fax_classes=classes))
    assert driver.capabilities.can_receive_fax is can_fax
    assert driver.capabilities.fax_only is False
    driver._io = FakeIO(fax_only=["line1"])  # type: ignore[assignment]
    assert driver.capabilities.fax_only is True
    driver._io = FakeIO(fax_only=["line2"])
    assert driver.capabilities.fax_only is False


def test_hook_flash_transfer_only_on_voice_lines_the_owner_marked() -> None:
    voice = Profile(port="/dev/x", kind="analog", title="t", voice_formats=(VOICE_FORMAT,))
    driver = AnalogDriver(voice)
    assert driver.capabilities.can_transfer is False  # not marked: a plain line
    driver._io = FakeIO(transfer_lines=["line1"])  # type: ignore[assignment]
    assert driver.capabilities.can_transfer is True
    no_voice = AnalogDriver(Profile(port="/dev/x", kind="analog", title="t"))
    no_voice._io = FakeIO(transfer_lines=["line1"])  # type: ignore[assignment]
    assert no_voice.capabilities.can_transfer is False  # a flash needs a voice modem


def test_the_simulated_usr5637_line_can_take_faxes(world: Callable[..., World]) -> None:  # noqa: F811
    w = world()
    caps = w.line.capabilities
    assert caps is not None and caps.can_receive_fax and not caps.fax_only


def _fax_page() -> Any:
    """A page with bars a viewer would notice moved by one pixel."""
    from PIL import Image

    im = Image.new("1", (1728, 160), 1)
    for x in range(37, 1700, 211):
        im.paste(0, (x, 20, x + 61, 140))
    im.paste(0, (0, 78, 1728, 81))
    return im


def test_a_calling_tone_then_a_real_fax_page_end_to_end(
    world: Callable[..., World],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller on a voice call sends CNG, then a Class 2.0 fax machine sends a page through
    the simulated modem: one call record (outcome fax), one fax record with the page
    pixel-equal in its PDF, one fax email with the PDF, no voicemail."""
    import dataclasses

    import numpy as np
    import pypdfium2

    from firmware_app.media.fax_send import encode_page
    from firmware_app.modem.simulator import FaxMachine, personalities

    # Conexant firmware with Class 2.0 (MultiTech style): Frontdesk uses 2.0 on it.
    wide = dataclasses.replace(
        personalities.PERSONALITIES["cx93010"], fclass_options_class2="0,1,1.0,2,2.0,8"
    )
    monkeypatch.setitem(personalities.PERSONALITIES, "cx93010", wide)
    w = world("cx93010")
    assert w.line.profile is not None and "2.0" in w.line.profile.fax_classes
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
    page = _fax_page()
    data = encode_page(page, fine=True, mr=False, min_scan_bits=0, fill_order=2)
    w.modem.fax.machine = FaxMachine(remote_id="HANDOVER 0001", pages=[data])

    item = w.call("+15551234567", VoiceCaller().send_fax_tone(at=0.1, after="play"))
    assert (item.channel, item.outcome, item.details["fax"]) == ("call", "fax", "taken over")
    got = fax_record(w, timeout=30)
    assert (got.outcome, got.name, got.number) == ("received", "HANDOVER 0001", "+15551234567")
    assert got.details["pages"] == 1 and got.details["fax_class"] == "2.0"
    assert got.details["damaged_lines"] == 0
    # The PDF holds the page as sent, pixel for pixel.
    pdf = pypdfium2.PdfDocument(w.services.store.media.read(got.media[0]))
    try:
        assert len(pdf) == 1
        (obj,) = list(pdf[0].get_objects())  # the page's one image, decoded by pdfium
        image = obj.get_bitmap(render=False).to_pil().convert("1")
    finally:
        pdf.close()
    assert image.size == page.size
    assert np.array_equal(np.asarray(image), np.asarray(page))
    # One email, with the PDF; no voicemail anywhere.
    (msg,) = w.mails(1, timeout=15)
    assert msg["X-Frontdesk-Kind"] == "fax"
    pdfs = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1 and pdfs[0].get_content().startswith(b"%PDF-")
    records = w.services.history.newest(20)
    assert [r.channel for r in records].count("fax") == 1
    assert not [r for r in records if r.outcome == "voicemail"]
    assert w.modem.call_state == "idle"
    assert w.modem.wait_for_command(r"AT\+FCLASS=0", timeout=5)
