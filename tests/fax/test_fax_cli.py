"""`frontdesk fax send` end to end without a modem: the CLI reads the file and sends its
content base64 over the control socket; the daemon's `fax.send` handler queues it."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest

from firmware_app.cli import main
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.control import ControlServer
from firmware_app.daemon import Daemon
from firmware_app.errors import FrontdeskError
from firmware_app.fax.service import FaxService
from firmware_app.services import Services
from tests.fax.fakes import FakeLine, FakeLines, FakeSend, page_png

pytestmark = pytest.mark.timeout(60)


def test_fax_send_through_the_control_socket(
    services: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fax = FaxService(
        services.store,
        services.bus,
        services.settings.get,
        services.history,
        FakeLines(FakeLine()),
        send=FakeSend(),
    )
    services.fax = fax
    data_dir = Path(services.store.data_dir)
    config = MachineConfig(store=StoreConfig(data_dir=str(data_dir)))
    handlers = Daemon(config, web=False).control_handlers(services)
    with pytest.raises(FrontdeskError, match="intact"):
        handlers["fax.send"](to="5550100", content="not base64!")
    reply = handlers["fax.send"](
        to="5550100", content=base64.b64encode(page_png()).decode(), cover="Hello"
    )
    assert (reply["state"], reply["status"]) == ("queued", "drawing")  # stored, drawn next
    done = handlers["fax.status"](id=reply["id"], wait=25)
    assert (done["state"], done["status"], done["pages"]) == ("queued", "queued", 2)
    with pytest.raises(FrontdeskError, match="no outgoing fax"):
        handlers["fax.status"](id="2026-11:999")
    tall = tmp_path / "tall.pdf"
    tall.write_bytes(tall_pdf())
    server = ControlServer(data_dir, handlers)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    cfg = tmp_path / "frontdesk.toml"
    cfg.write_text(f'[store]\ndata_dir = "{data_dir}"\n')
    doc = tmp_path / "letter.png"
    doc.write_bytes(page_png())
    try:
        code = main(
            [
                "fax",
                "send",
                "--to",
                "+15550100",
                "--cover",
                "See attached",
                str(doc),
                "-c",
                str(cfg),
            ]
        )
        refused = main(["fax", "send", "--to", "+15550100", str(tall), "-c", str(cfg)])
    finally:
        server.stop()
        thread.join(5)
        server.close()
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "fax to +15550100 queued (2 pages)" in out.out
    assert len(fax.queued()) == 2
    # A document that cannot be drawn: said in words, exit status 1.
    assert refused == 1
    assert "not sent" in out.err and "as tall as 1018 A4 pages" in out.err


def tall_pdf() -> bytes:
    """An A4 page and one 10 x 14400 pt (too tall to fax)."""
    import io

    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(595, 842)
    pdf.new_page(10, 14400)
    buf = io.BytesIO()
    pdf.save(buf)
    pdf.close()
    return buf.getvalue()
