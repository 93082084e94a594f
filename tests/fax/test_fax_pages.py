"""Fax pages and API: the list with page 1's picture, states, View and Download links; the
send form (upload checked by content, errors named by field), the pages shown before the fax
is queued (drawn in the render child), retry and cancel, `GET /api/v1/faxes`,
`POST /api/v1/fax`."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from firmware_app.fax.service import FaxService
from firmware_app.services import Services
from tests.fax.fakes import FakeLine, FakeLines, FakeSend, drawn, page_png
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


def ready(fax: FaxService, response: Any) -> str:
    """The draft a Send form post went to, once its pages are drawn."""
    assert response.status_code == 303, response.get_data(as_text=True)
    draft_id = response.headers["Location"].rsplit("/", 1)[-1]
    draft = fax.draft(draft_id)
    assert draft is not None and draft.wait(60), "the pages were not drawn"
    return draft_id


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


def fetch(owner: Owner, path: str) -> tuple[int, str, bytes]:
    """(status, type, body) of a file the app sends, the response closed."""
    with owner.client.get(path) as response:
        return response.status_code, response.mimetype, response.data


def test_fax_page_lists_received_and_sent(logged_in: Owner, fax: FaxService) -> None:
    received = fax.store_received(_received(), line="line1", number="5551001")
    sent = drawn(fax, fax.send("5550100", page_png()))
    page = logged_in.client.get("/fax/").get_data(as_text=True)
    assert ">Fax</a>" in logged_in.client.get("/").get_data(as_text=True)
    assert "Received" in page and "Waiting to go" in page and "+1 555 1001" in page
    assert f'href="/media/{received.media[0]}">View PDF</a>' in page
    assert f'href="/media/{received.media[0]}?download=1" download>Download</a>' in page
    assert "Try now" in page and "Cancel" in page
    for item in (received, sent):
        assert f'src="/fax/{item.id}/page1.png"' in page
        status, kind, picture = fetch(logged_in, f"/fax/{item.id}/page1.png")
        assert (status, kind, png_size(picture)[0]) == (200, "image/png", 432)
    # The received fax's picture was drawn from its PDF once and is kept with the record.
    kept = fax.history.get(received.id)
    assert kept is not None and [m.rsplit(".", 1)[1] for m in kept.media] == ["pdf", "png"]
    first = fetch(logged_in, f"/fax/{received.id}/page1.png")
    assert fetch(logged_in, f"/fax/{received.id}/page1.png") == first
    assert fax.history.get(received.id).media == kept.media  # type: ignore[union-attr]
    assert fetch(logged_in, "/fax/2026-11:999/page1.png")[0] == 404


def test_the_pages_are_shown_before_the_fax_is_queued(
    logged_in: Owner, fax: FaxService, services: Services
) -> None:
    response = _send(
        logged_in,
        file=(io.BytesIO(page_png()), "invoice.png"),
        cover="1",
        note="Hi",
        resolution="normal",
    )
    draft_id = ready(fax, response)
    assert fax.queued() == []  # nothing queued yet
    page = logged_in.client.get(f"/fax/draft/{draft_id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Refresh" not in page.headers
    assert "Check the fax, then send it" in text and "a cover page and 1 page" in text
    assert "invoice.png" in text and "Normal" in text and "Send 2 pages" in text
    for n in (1, 2):
        assert f'src="/fax/draft/{draft_id}/page/{n}.png"' in text
        status, _, picture = fetch(logged_in, f"/fax/draft/{draft_id}/page/{n}.png")
        assert status == 200 and png_size(picture) == (432, 595)
    assert fetch(logged_in, f"/fax/draft/{draft_id}/page/3.png")[0] == 404
    sent = logged_in.post(f"/fax/draft/{draft_id}/send", token_from=f"/fax/draft/{draft_id}")
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/fax/")
    (item,) = fax.queued()
    assert item.details["pages"] == 2 and item.details["cover"] is True
    assert item.details["filename"] == "invoice.png" and item.text == "Hi"
    assert item.details["resolution"] == "normal"
    assert "queued (2 pages)" in logged_in.client.get("/fax/").get_data(as_text=True)
    # Sent once: the draft is gone, a second press queues nothing.
    again = logged_in.post(f"/fax/draft/{draft_id}/send", token_from="/fax/send")
    assert again.status_code == 302 and len(fax.queued()) == 1
    assert not (services.store.data_dir / "fax-drafts" / draft_id).exists()


def test_start_again_discards_the_pages(logged_in: Owner, fax: FaxService) -> None:
    draft_id = ready(fax, _send(logged_in, file=(io.BytesIO(page_png()), "a.png")))
    gone = logged_in.post(f"/fax/draft/{draft_id}/discard", token_from=f"/fax/draft/{draft_id}")
    assert gone.status_code == 302 and gone.headers["Location"].endswith("/fax/send")
    assert fax.draft(draft_id) is None and fax.queued() == []
    gone = logged_in.client.get(f"/fax/draft/{draft_id}")
    assert gone.status_code == 404 and "no longer waiting to be sent" in gone.get_data(True)
    assert fetch(logged_in, "/fax/draft/not-a-draft/page/1.png")[0] == 404


def test_a_page_still_being_drawn_shows_progress(logged_in: Owner, fax: FaxService) -> None:
    """While the child draws, the page says how far it got and reloads itself."""
    release = threading.Event()
    drawing = threading.Event()
    real = fax.renderer.render

    def slow(*args: Any, on_progress: Any = None, **kw: Any) -> Any:
        def hold(done: int, total: int) -> None:
            if on_progress is not None:
                on_progress(done, total)
            if done == 1:
                drawing.set()
                release.wait(60)

        return real(*args, on_progress=hold, **kw)

    fax.renderer.render = slow  # type: ignore[method-assign]
    response = _send(logged_in, file=(io.BytesIO(page_png()), "a.png"), cover="1")
    draft_id = response.headers["Location"].rsplit("/", 1)[-1]
    assert drawing.wait(60)
    page = logged_in.client.get(f"/fax/draft/{draft_id}")
    text = page.get_data(as_text=True)
    assert page.headers["Refresh"] == "2" and "1 of 2 done" in text and "Send 2" not in text
    release.set()
    draft = fax.draft(draft_id)
    assert draft is not None and draft.wait(60)
    assert "Refresh" not in logged_in.client.get(f"/fax/draft/{draft_id}").headers


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
    draft_id = ready(fax, _send(logged_in, file=(io.BytesIO(buf.getvalue()), "strip.pdf")))
    bad = logged_in.client.get(f"/fax/draft/{draft_id}")
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert "page 1 is 4 x 5080 mm, as tall as 1018 A4 pages" in text
    assert 'value="+1 555 010 0100"' in text  # the form as it was filled in
    assert fax.queued() == [] and fax.draft(draft_id) is None


def test_retry_and_cancel(logged_in: Owner, fax: FaxService) -> None:
    item = drawn(fax, fax.send("5550100", page_png()))
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
    sent = response.get_json()["fax"]  # answered at once: stored, its pages drawn next
    assert (sent["state"], sent["drawing"], sent["direction"]) == ("queued", True, "out")
    assert sent["reason"] == "drawing its pages" and sent["pdf"] is None
    drawn(fax, fax.history.get(sent["id"]))
    listed = client.get("/api/v1/faxes?limit=10", headers=auth).get_json()["faxes"]
    assert [f["direction"] for f in listed] == ["out", "in"]
    assert (listed[0]["pages"], listed[0]["drawing"], listed[0]["reason"]) == (2, False, "")
    assert listed[0]["pdf"].startswith("/media/media/")
    assert listed[1]["pdf"].startswith("/media/media/") and listed[1]["remote_id"] == "+1 555 1001"
    bad = client.post("/api/v1/fax", headers=auth, data={"to": "x"})
    assert bad.status_code == 422 and bad.get_json()["problems"][0]["field"] == "to"
    assert client.get("/api/v1/faxes?limit=0", headers=auth).status_code == 400
