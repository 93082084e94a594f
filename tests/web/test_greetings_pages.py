"""Greetings pages through the Flask test client: the list with players, own text saved and
escaped, uploads (WAV converted; text files, oversize and missing files refused with clear
words; CSRF required), reset, the preview WAV, and the forwarding page; screenshots in
headless Chromium."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from firmware_app.media.codecs import read_wav
from firmware_app.services import Services
from tests.web.browser import ARGS, CHROMIUM, SHOTS

HOSTILE = '<script>alert("x")</script> & "quotes"'


def wav_bytes(seconds: float = 1.0, rate: int = 44100) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    sf.write(
        out,
        (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        rate,
        format="WAV",
        subtype="PCM_16",
    )
    return out.getvalue()


@pytest.fixture
def quiet_tts(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Speech as a short tone: page tests need no espeak-ng run per greeting."""
    monkeypatch.setattr(
        services.greetings.tts, "speak", lambda text, voice, speed: np.zeros(800, np.int16) + 100
    )


def test_list_edit_escape_and_preview(logged_in: Any, services: Services, quiet_tts: None) -> None:
    page = logged_in.client.get("/greetings/").get_data(as_text=True)
    for label in ("Open", "Closed", "Voicemail prompt", "Staff: press 1 to accept", "Goodbye"):
        assert label in page
    assert 'src="/greetings/edit?key=closed&amp;format=wav"' in page
    assert "We are closed." in page
    r = logged_in.post("/greetings/edit", {"key": "closed", "action": "text", "text": HOSTILE})
    assert r.status_code == 302
    page = logged_in.client.get("/greetings/").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert services.greetings.info("closed").mode == "text"
    wav = logged_in.client.get("/greetings/edit?key=closed&format=wav")
    assert wav.status_code == 200 and wav.mimetype == "audio/wav"
    pcm, rate = read_wav(wav.data)
    assert rate == 8000 and pcm.size == 800
    assert logged_in.client.get("/greetings/edit?key=nonsense&format=wav").status_code == 404
    assert logged_in.client.get("/greetings/edit?key=nonsense").status_code == 404


def test_upload_and_reset(logged_in: Any, services: Services, quiet_tts: None) -> None:
    r = logged_in.post(
        "/greetings/edit",
        {"key": "open", "action": "upload", "recording": (io.BytesIO(wav_bytes()), "hi.wav")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 302
    info = services.greetings.info("open")
    assert info.mode == "recording"
    ref = info.recording
    assert services.store.media.path(ref).exists()
    r = logged_in.post("/greetings/edit", {"key": "open", "action": "reset"})
    assert r.status_code == 302
    assert services.greetings.info("open").mode == "default"
    assert not services.store.media.path(ref).exists()


@pytest.mark.parametrize(
    ("upload", "words"),
    [
        ((io.BytesIO(b"just some text"), "notes.wav"), "not a WAV, MP3, OGG or FLAC"),
        (None, "choose a recording"),
    ],
)
def test_bad_uploads_say_why(logged_in: Any, services: Services, upload: Any, words: str) -> None:
    data: dict[str, Any] = {"key": "open", "action": "upload"}
    if upload is not None:
        data["recording"] = upload
    r = logged_in.post("/greetings/edit", data, content_type="multipart/form-data")
    assert r.status_code == 422
    assert words in r.get_data(as_text=True)
    assert services.greetings.info("open").mode == "default"


def test_csrf_is_required(logged_in: Any) -> None:
    r = logged_in.client.post("/greetings/edit", data={"key": "open", "action": "reset"})
    assert r.status_code == 400


def test_forwarding_page(logged_in: Any, services: Services) -> None:
    page = logged_in.client.get("/greetings/forwarding").get_data(as_text=True)
    assert "What each line can do" in page and "leaves the network" in page
    r = logged_in.post(
        "/greetings/forwarding",
        {"network": "1", "no_reply_seconds": "25", "flash_ms": "300", "keep_recordings_days": "14"},
    )
    assert r.status_code == 302
    f = services.settings.get().forwarding
    assert (f.network, f.no_reply_seconds, f.flash_ms, f.keep_recordings_days) == (
        True,
        25,
        300,
        14,
    )
    r = logged_in.post("/greetings/forwarding", {"no_reply_seconds": "99"})
    page = logged_in.client.get("/greetings/forwarding").get_data(as_text=True)
    assert "Not saved" in page and "5 to 30" in page
    # The PBX's outside-line prefix, and how a transfer dials the first staff mobile.
    services.settings.save_section("business", {"country": "GB"})
    services.settings.save_section(
        "staff", {"members": [{"name": "Anna", "mobile": "07700 900001"}]}
    )
    form = {"no_reply_seconds": "25", "flash_ms": "300", "keep_recordings_days": "14"}
    r = logged_in.post("/greetings/forwarding", {**form, "transfer_prefix": "9,"})
    assert r.status_code == 302 and services.settings.get().forwarding.transfer_prefix == "9,"
    page = logged_in.client.get("/greetings/forwarding").get_data(as_text=True)
    assert "Anna&#39;s +447700900001 is dialled 9,07700900001" in page
    logged_in.post("/greetings/forwarding", {**form, "transfer_prefix": "9;ATH"})
    page = logged_in.client.get("/greetings/forwarding").get_data(as_text=True)
    assert "Not saved" in page and services.settings.get().forwarding.transfer_prefix == "9,"


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")
def test_screenshots(owner: Any, services: Services, quiet_tts: None) -> None:
    import threading

    import waitress

    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    from web_ui import create_app

    from .conftest import PASSWORD

    owner.setup(name="Rossi & Sons Plumbing")
    services.greetings.set_text("goodbye", "Thanks, and goodbye from Rossi & Sons!")
    app = create_app(services)
    srv = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{srv.effective_port}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for device, (w, h) in {"phone": (390, 844), "desktop": (1280, 800)}.items():
                context = browser.new_context(viewport={"width": w, "height": h})
                page = context.new_page()
                problems: list[str] = []
                page.on("pageerror", lambda e, sink=problems: sink.append(str(e)))
                page.goto(base + "/login")
                page.fill("#f-password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(base + "/")
                for path, name in (
                    ("/greetings/", "greetings"),
                    ("/greetings/edit?key=closed", "greeting-edit"),
                    ("/greetings/forwarding", "forwarding"),
                ):
                    page.goto(base + path)
                    page.screenshot(path=str(SHOTS / f"{device}-{name}.png"), full_page=True)
                page.goto(base + "/greetings/edit?key=open")
                page.set_input_files(
                    "#f-recording",
                    files=[{"name": "notes.wav", "mimeType": "audio/wav", "buffer": b"not audio"}],
                )
                page.click("text=Upload and use it")
                assert "not a WAV" in page.locator(".error-summary").inner_text()
                page.screenshot(path=str(SHOTS / f"{device}-greeting-upload-error.png"))
                assert not problems
                context.close()
            browser.close()
    finally:
        srv.close()
        srv.task_dispatcher.shutdown(timeout=2)
        thread.join(timeout=5)
