"""Fax pages and API: the list with states and PDF links, the send form (upload checked by
content, errors named by field), retry and cancel, `GET /api/v1/faxes`, `POST /api/v1/fax`."""

from __future__ import annotations

import io
from typing import Any

import pytest

from firmware_app.fax.service import FaxService
from firmware_app.services import Services
from tests.fax.fakes import FakeLine, FakeLines, FakeSend, page_png
from tests.fax.test_service import _received
from tests.web.conftest import Owner, csrf_token

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fax(services: Services) -> FaxService:
    service = FaxService(
        services.store,
        services.bus,
        services.settings.get,
        services.history,
        FakeLines(FakeLine()),
        send=FakeSend(),
    )
    services.fax = service  # the worker is not started: faxes stay queued
    return service


def _send(owner: Owner, **fields: Any) -> Any:
    data = {
        "to": "+1 555 010 0100",
        "resolution": "fine",
        "dither": "auto",
        "csrf_token": csrf_token(owner.client, "/fax/send"),
        **fields,
    }
    return owner.client.post("/fax/send", data=data, content_type="multipart/form-data")


def test_fax_page_lists_received_and_sent(logged_in: Owner, fax: FaxService) -> None:
    received = fax.store_received(_received(), line="line1", number="5551001")
    fax.send("5550100", page_png())
    page = logged_in.client.get("/fax/").get_data(as_text=True)
    assert ">Fax</a>" in logged_in.client.get("/").get_data(as_text=True)
    assert "Received" in page and "Waiting to go" in page and "+1 555 1001" in page
    assert f"/media/{received.media[0]}" in page
    assert "Try now" in page and "Cancel" in page


def test_send_a_fax_from_the_page(logged_in: Owner, fax: FaxService, services: Services) -> None:
    response = _send(logged_in, file=(io.BytesIO(page_png()), "invoice.png"), cover="1", note="Hi")
    assert response.status_code == 302
    (item,) = fax.queued()
    assert item.details["pages"] == 2 and item.details["cover"] is True
    assert item.details["filename"] == "invoice.png" and item.text == "Hi"


def test_send_form_names_what_is_wrong(logged_in: Owner, fax: FaxService) -> None:
    bad = _send(logged_in, to="call me", file=(io.BytesIO(b"plain text"), "a.txt"))
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "not a fax number" in text
    bad = _send(logged_in, file=(io.BytesIO(b"plain text, not a document"), "a.pdf"))
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "Document:" in text
    assert fax.queued() == []


def test_a_page_too_tall_is_refused_in_words_not_a_server_error(
    logged_in: Owner, fax: FaxService
) -> None:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(10, 14400)
    buf = io.BytesIO()
    pdf.save(buf)
    pdf.close()
    bad = _send(logged_in, file=(io.BytesIO(buf.getvalue()), "strip.pdf"))
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert "page 1 is 4 x 5080 mm, as tall as 1018 A4 pages" in text
    assert fax.queued() == []


def test_retry_and_cancel(logged_in: Owner, fax: FaxService) -> None:
    item = fax.send("5550100", page_png())
    response = logged_in.post(f"/fax/{item.id}/cancel", token_from="/fax/")
    assert response.status_code == 302
    assert fax.history.get(item.id).outcome == "failed"  # type: ignore[union-attr]
    logged_in.post(f"/fax/{item.id}/retry", token_from="/fax/")
    assert fax.history.get(item.id).outcome == "queued"  # type: ignore[union-attr]


def test_api(logged_in: Owner, fax: FaxService, services: Services) -> None:
    _, secret = services.auth.create_token("script")
    auth = {"Authorization": f"Bearer {secret}"}
    client = logged_in.client
    assert client.get("/api/v1/faxes").status_code == 401
    fax.store_received(_received(), line="line1", number="5551001")
    response = client.post(
        "/api/v1/fax",
        headers=auth,
        data={"to": "+15550100", "cover": "Two pages", "file": (io.BytesIO(page_png()), "x.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    sent = response.get_json()["fax"]
    assert (sent["state"], sent["pages"], sent["direction"]) == ("queued", 2, "out")
    listed = client.get("/api/v1/faxes?limit=10", headers=auth).get_json()["faxes"]
    assert [f["direction"] for f in listed] == ["out", "in"]
    assert listed[1]["pdf"].startswith("/media/media/") and listed[1]["remote_id"] == "+1 555 1001"
    bad = client.post("/api/v1/fax", headers=auth, data={"to": "x"})
    assert bad.status_code == 422 and bad.get_json()["problems"][0]["field"] == "to"
    assert client.get("/api/v1/faxes?limit=0", headers=auth).status_code == 400
