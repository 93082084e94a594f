"""Stand-ins for lines and fax calls in the fax service tests (the real ones are in
test_iaxmodem_fax.py)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

from firmware_app.fax import session


@dataclass
class FakeProfile:
    fax_classes: tuple[str, ...] = ("1", "1.0")


@dataclass
class FakeStatus:
    state: str = "idle"


@dataclass
class FakeLine:
    name: str = "line1"
    profile: FakeProfile | None = field(default_factory=FakeProfile)
    state: str = "idle"

    def status(self) -> FakeStatus:
        return FakeStatus(self.state)


class FakeLines:
    def __init__(self, *lines: FakeLine) -> None:
        self._lines = list(lines)

    def line(self, name: str) -> FakeLine | None:
        return next((x for x in self._lines if x.name == name), None)

    def lines(self) -> list[Any]:
        return list(self._lines)


class FakeSend:
    """Plays back send outcomes; records what it was asked to send."""

    def __init__(self, *statuses: str) -> None:
        self.statuses = list(statuses)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, line: Any, number: str, pages: list[Any], **kw: Any) -> session.SendOutcome:
        self.calls.append({"line": line.name, "number": number, "pages": pages, **kw})
        status = self.statuses.pop(0) if self.statuses else "sent"
        ok = status == "sent"
        return session.SendOutcome(
            ok=ok,
            status=status,  # type: ignore[arg-type]
            reason="sent 1 page(s)" if ok else f"dialling: {status.upper()}",
            pages_sent=len(pages) if ok else 0,
            remote_id="+1 555 2002" if ok else "",
            rate="V.17/14400" if ok else "",
            bps=14400 if ok else 0,
            seconds=30.0,
        )


def page_png() -> bytes:
    im = Image.new("L", (850, 1100), 255)
    draw = ImageDraw.Draw(im)
    draw.rectangle((100, 100, 700, 180), fill=0)
    draw.text((120, 300), "Invoice 42", fill=0)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def drawn(fax: Any, item: Any, timeout: float = 120.0) -> Any:
    """A fax `FaxService.send` queued, once the drawing thread has drawn its pages (or
    found it could not)."""
    got = fax.wait_drawn(item.id, timeout)
    assert got is not None and got.details.get("status") != "drawing", got
    return got
