"""Calls and Voicemail pages: filters and cursors (the day is the office's day), the plan shown
in words, the audio route serving only voicemail files (fetching never marks them heard),
heard, handled, delete, interrupted calls, the JSON API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from firmware_app.media import codecs, tones
from firmware_app.services import Services
from firmware_app.services.history import Interaction

from .conftest import Owner

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PLAN = {
    "rule": "schedule",
    "mode": "weekly",
    "steps": ["greet", "take_voicemail"],
    "lines": ["1. Play the closed greeting", "2. Take a voicemail"],
    "explanation": "Closed now, opens Monday 09:00. Play the closed greeting, then take a "
    "voicemail.",
}


def add(
    services: Services, outcome: str, minutes: int, number: str = "+15551234567", **kw: Any
) -> Interaction:
    media: tuple[str, ...] = ()
    if outcome == "voicemail":
        media = (
            services.store.media.write(codecs.write_wav(tones.tone((440.0,), 1.0), 8000), "wav"),
        )
    return services.history.record(
        Interaction(
            channel="call",
            direction="in",
            outcome=outcome,
            start=T0 + timedelta(minutes=minutes),
            number=number,
            line="line1",
            duration=4.0,
            media=media,
            text=kw.pop("text", ""),
            details={"plan": PLAN, "answered": True, "heard": False, "box": "main", **kw},
        )
    )


def test_calls_list_filters_and_pages(logged_in: Owner, services: Services) -> None:
    for k in range(60):
        add(services, "missed" if k % 2 else "voicemail" if k % 3 == 0 else "blocked", k)
    add(services, "screened", 100, number="+442071234567")
    page = logged_in.client.get("/calls/").get_data(as_text=True)
    assert page.count("/calls/2026-11:") >= 50 and "Older calls" in page
    only = logged_in.client.get("/calls/?outcome=screened").get_data(as_text=True)
    # Numbers as people write them: national in the business's country, else international.
    # (the business is in GB here)
    assert "020 7123 4567" in only and "555-123-4567" not in only
    by_number = logged_in.client.get("/calls/?number=2071234").get_data(as_text=True)
    assert "020 7123 4567" in by_number and "Screened out" in by_number
    assert "+1 555-123-4567" in page and "+15551234567" not in page
    none = logged_in.client.get("/calls/?day=2026-11-21").get_data(as_text=True)
    assert "No calls match" in none
    # The cursor continues where the first page ended.
    first = services.history.newest(50, where=lambda i: i.channel == "call")
    older = logged_in.client.get(f"/calls/?before={first[-1].id}").get_data(as_text=True)
    assert first[-1].id not in older and older.count("/calls/2026-11:") == 11


def test_call_detail_explains_the_plan(logged_in: Owner, services: Services) -> None:
    item = add(services, "missed", 1, text="the caller hung up during the greeting")
    page = logged_in.client.get(f"/calls/{item.id}").get_data(as_text=True)
    assert "Closed now, opens Monday 09:00" in page
    assert "Play the closed greeting" in page and "the caller hung up during the greeting" in page
    assert logged_in.client.get("/calls/2026-11:999").status_code == 404
    assert logged_in.client.get("/calls/..%2F..%2Fetc").status_code == 404


def test_voicemail_inbox_plays_marks_heard_handles_and_deletes(
    logged_in: Owner, services: Services
) -> None:
    vm = add(services, "voicemail", 1)
    missed = add(services, "missed", 2)
    page = logged_in.client.get("/voicemail/").get_data(as_text=True)
    assert f"/voicemail/{vm.id}/audio" in page and "new" in page
    assert missed.id not in page
    audio = logged_in.client.get(f"/voicemail/{vm.id}/audio")
    assert audio.status_code == 200 and audio.mimetype == "audio/wav"
    assert audio.headers["Cache-Control"] == "private, no-store"
    audio.close()
    ranged = logged_in.client.get(f"/voicemail/{vm.id}/audio", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    ranged.close()
    # Fetched (a preload, a range request) is not heard: pressing play is (voicemail.js).
    assert services.history.get(vm.id).details["heard"] is False  # type: ignore[union-attr]
    played = logged_in.post(
        f"/voicemail/{vm.id}/heard",
        {"heard": "1"},
        token_from="/voicemail/",
        headers={"Accept": "application/json"},
    )
    assert played.status_code == 200 and played.get_json() == {"heard": True}
    assert services.history.get(vm.id).details["heard"] is True  # type: ignore[union-attr]
    # The buttons: mark new again, then heard, back on the page.
    r = logged_in.post(f"/voicemail/{vm.id}/heard", {"heard": "0"}, token_from="/voicemail/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/voicemail/")
    assert services.history.get(vm.id).details["heard"] is False  # type: ignore[union-attr]
    r = logged_in.post(
        f"/voicemail/{vm.id}/heard", {"next": "//evil.example/"}, token_from="/voicemail/"
    )
    assert r.status_code == 302 and "evil" not in r.headers["Location"]
    assert services.history.get(vm.id).details["heard"] is True  # type: ignore[union-attr]
    download = logged_in.client.get(f"/voicemail/{vm.id}/audio?download=1")
    assert "attachment" in download.headers["Content-Disposition"]
    download.close()
    # Only voicemail records have audio here: a missed call's id gives 404.
    assert logged_in.client.get(f"/voicemail/{missed.id}/audio").status_code == 404
    r = logged_in.post(f"/voicemail/{vm.id}/handled", {"by": "Anna"}, token_from="/voicemail/")
    assert r.status_code == 302
    item = services.history.get(vm.id)
    assert item is not None and item.handled_at is not None and item.handled_by == "Anna"
    assert vm.id not in logged_in.client.get("/voicemail/").get_data(as_text=True)
    path = services.store.media.path(vm.media[0])
    r = logged_in.post(f"/voicemail/{vm.id}/delete", {}, token_from="/voicemail/?show=all")
    assert r.status_code == 302 and not path.exists()
    item = services.history.get(vm.id)
    assert item is not None and item.media == () and item.details["audio_deleted"]
    assert logged_in.client.get(f"/voicemail/{vm.id}/audio").status_code == 404
    assert "The recording was deleted" in logged_in.client.get("/voicemail/?show=all").get_data(
        as_text=True
    )


def test_pages_need_login(client: Any, services: Services) -> None:
    vm = add(services, "voicemail", 1)
    for path in (
        "/calls/",
        f"/calls/{vm.id}",
        f"/calls/{vm.id}/recordings/0",
        "/voicemail/",
        f"/voicemail/{vm.id}/audio",
    ):
        assert client.get(path).status_code in (302, 401), path


def test_api_calls_and_voicemails(logged_in: Owner, services: Services) -> None:
    _, secret = services.auth.create_token("test")
    auth = {"Authorization": f"Bearer {secret}"}
    for k in range(5):
        add(services, "voicemail" if k < 2 else "missed", k)
    body = logged_in.client.get("/api/v1/calls?limit=3", headers=auth).get_json()
    assert len(body["calls"]) == 3 and body["next_before"]
    assert body["calls"][0]["plan"]["explanation"].startswith("Closed now")
    more = logged_in.client.get(f"/api/v1/calls?limit=3&before={body['next_before']}", headers=auth)
    assert len(more.get_json()["calls"]) == 2
    vms = logged_in.client.get("/api/v1/voicemails", headers=auth).get_json()["voicemails"]
    assert len(vms) == 2 and vms[0]["audio_url"].endswith("/audio")
    assert logged_in.client.get("/api/v1/voicemails").status_code == 401


@pytest.mark.timeout(120)
def test_calls_page_is_fast_with_100k_records(logged_in: Owner, services: Services) -> None:
    history = services.store.history
    base = add(services, "missed", 0).to_record()
    for k in range(100_000):
        rec = dict(
            base,
            start=(T0 + timedelta(seconds=k)).isoformat(),
            outcome="missed" if k % 50 else "voicemail",
        )
        history.add(rec, T0 + timedelta(seconds=k))
    started = time.perf_counter()
    page = logged_in.client.get("/calls/")
    first = time.perf_counter() - started
    started = time.perf_counter()
    filtered = logged_in.client.get("/calls/?outcome=voicemail")
    second = time.perf_counter() - started
    assert page.status_code == 200 and filtered.status_code == 200
    assert first < 1.0 and second < 2.0, (first, second)


def test_day_filter_is_the_office_day(logged_in: Owner, services: Services) -> None:
    """Los Angeles is UTC-8 in November: 03:00 UTC on the 21st is the evening of the 20th."""
    services.settings.save_section("business", {"timezone": "America/Los_Angeles"})
    evening = add(services, "missed", 18 * 60, number="+15550000020")  # 21st 03:00 UTC
    morning = add(services, "missed", -4 * 60, number="+15550000019")  # 20th 05:00 UTC: 19th
    page = logged_in.client.get("/calls/?day=2026-11-20").get_data(as_text=True)
    assert evening.id in page and morning.id not in page
    assert "America/Los_Angeles" in page and "20 Nov, 19:00" in page
    assert evening.id not in logged_in.client.get("/calls/?day=2026-11-21").get_data(as_text=True)
    _, secret = services.auth.create_token("test")
    auth = {"Authorization": f"Bearer {secret}"}
    body = logged_in.client.get("/api/v1/calls?day=2026-11-20", headers=auth).get_json()
    assert [c["id"] for c in body["calls"]] == [evening.id]
    body = logged_in.client.get("/api/v1/calls?day=2026-11-19", headers=auth).get_json()
    assert [c["id"] for c in body["calls"]] == [morning.id]


def test_interrupted_calls_are_listed_filtered_and_explained(
    logged_in: Owner, services: Services
) -> None:
    item = add(
        services,
        "interrupted",
        5,
        text="Interrupted (Frontdesk restarted): the call was in progress when Frontdesk stopped",
        duration_known=False,
    )
    add(services, "missed", 6)
    page = logged_in.client.get("/calls/?outcome=interrupted").get_data(as_text=True)
    assert item.id in page and page.count("/calls/2026-11:") == 1
    assert 'value="interrupted"' in page and "Interrupted (Frontdesk restarted)" in page
    assert "unknown" in page
    detail = logged_in.client.get(f"/calls/{item.id}").get_data(as_text=True)
    assert "unknown: Frontdesk stopped during the call" in detail
    _, secret = services.auth.create_token("test")
    auth = {"Authorization": f"Bearer {secret}"}
    body = logged_in.client.get("/api/v1/calls?outcome=interrupted", headers=auth).get_json()
    assert [c["outcome"] for c in body["calls"]] == ["interrupted"]


def test_call_recordings_on_the_detail_page_api_and_after_retention(
    logged_in: Owner, services: Services
) -> None:
    """A call put through and recorded: its recording plays and downloads from the call's page
    and is in the API; the retention job takes the file and the record's reference."""
    from firmware_app.services.forwarding import CallRecordings

    clock = {"now": T0}
    recordings = CallRecordings(
        services.store, services.settings, lambda: clock["now"], history=services.history
    )
    ref = recordings.save(tones.tone((600.0,), 1.0))
    item = add(services, "forwarded", 1, recordings=[ref], text="put through to Anna (40 s)")
    recordings.attach(item.id, [ref])
    other = add(services, "voicemail", 2)  # its file is no recording of this call
    page = logged_in.client.get(f"/calls/{item.id}").get_data(as_text=True)
    url = f"/calls/{item.id}/recordings/0"
    assert "Recording of the call" in page and f'src="{url}"' in page
    assert f"{url}?download=1" in page
    audio = logged_in.client.get(url)
    assert audio.status_code == 200 and audio.mimetype == "audio/wav"
    assert audio.get_data() == services.store.media.read(ref)
    audio.close()
    download = logged_in.client.get(f"{url}?download=1")
    assert "attachment" in download.headers["Content-Disposition"]
    download.close()
    assert logged_in.client.get(f"/calls/{item.id}/recordings/1").status_code == 404
    assert logged_in.client.get(f"/calls/{other.id}/recordings/0").status_code == 404
    assert "Recording of the call" not in logged_in.client.get(f"/calls/{other.id}").get_data(
        as_text=True
    )
    _, secret = services.auth.create_token("test")
    auth = {"Authorization": f"Bearer {secret}"}
    body = logged_in.client.get("/api/v1/calls", headers=auth).get_json()
    (listed,) = [c for c in body["calls"] if c["id"] == item.id]
    assert listed["recordings"] == [url] and listed["recordings_deleted"] == 0

    # Past the retention (30 days by default): the file and the reference go.
    clock["now"] = T0 + timedelta(days=31)
    assert recordings.prune() == [ref]
    assert not services.store.media.path(ref).exists()
    kept = services.history.get(item.id)
    assert kept is not None and kept.details["recordings"] == []
    assert kept.details["recordings_deleted"] == 1
    assert logged_in.client.get(url).status_code == 404
    page = logged_in.client.get(f"/calls/{item.id}").get_data(as_text=True)
    assert "1 recording was deleted after 30 days" in page and f'src="{url}"' not in page
    body = logged_in.client.get("/api/v1/calls", headers=auth).get_json()
    (listed,) = [c for c in body["calls"] if c["id"] == item.id]
    assert listed["recordings"] == [] and listed["recordings_deleted"] == 1


def test_a_recording_whose_file_went_without_its_reference_shows_as_deleted(
    logged_in: Owner, services: Services
) -> None:
    """A stop between the recording and its record (no `attach`): the retention deletes the
    file only; the page says the recording was deleted instead of offering a broken player."""
    ref = services.store.media.write(codecs.write_wav(tones.tone((600.0,), 0.5), 8000), "wav")
    item = add(services, "forwarded", 1, recordings=[ref])
    services.store.media.delete(ref)
    page = logged_in.client.get(f"/calls/{item.id}").get_data(as_text=True)
    assert "This recording was deleted (recordings are kept 30 days)" in page
    assert "<audio" not in page


def test_filters_find_a_call_behind_thousands_of_newer_ones(
    logged_in: Owner, services: Services
) -> None:
    """A blocked call and an open voicemail older than the newest 5,000 records are found by
    every filter, and the page says how many calls match in all."""
    old = add(services, "blocked", -600, number="+442079460001")
    vm = add(services, "voicemail", -599, number="+442079460002")
    for k in range(5200):
        services.history.record(
            Interaction(
                channel="call",
                direction="in",
                outcome="answered",
                start=T0 + timedelta(seconds=k),
                number=f"+1555{k:07d}",
            )
        )
    client = logged_in.client
    page = client.get("/calls/?outcome=blocked").get_data(as_text=True)
    assert f"/calls/{old.id}" in page and "No calls match" not in page
    page = client.get("/calls/?number=2079460001").get_data(as_text=True)
    assert f"/calls/{old.id}" in page
    page = client.get("/calls/?day=2026-11-19").get_data(as_text=True)  # 10 hours before T0
    assert f"/calls/{old.id}" in page and f"/calls/{vm.id}" in page
    page = client.get("/calls/").get_data(as_text=True)
    assert "Showing 50 of 5,202 calls." in page
    page = client.get("/voicemail/").get_data(as_text=True)
    assert f"/voicemail/{vm.id}/audio" in page
    _, secret = services.auth.create_token("reports")
    auth = {"Authorization": f"Bearer {secret}"}
    body = client.get("/api/v1/calls?outcome=blocked", headers=auth).get_json()
    assert [c["id"] for c in body["calls"]] == [old.id] and body["total"] == 1
    body = client.get("/api/v1/voicemails?open=1", headers=auth).get_json()
    assert [v["id"] for v in body["voicemails"]] == [vm.id]
