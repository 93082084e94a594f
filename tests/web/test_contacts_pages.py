"""Contacts, timeline, inbox, search, media and dashboard pages through the test client,
and the API's contacts, interactions and inbox. Caller-supplied text is always escaped."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from firmware_app.services import Services
from firmware_app.services.contacts import Draft
from firmware_app.services.history import Interaction

from .conftest import Owner

EVIL = "<script>alert(1)</script>"


def _now_within_today() -> datetime:
    """Now, or 01:01 in the office's zone when the day is younger than that: the records
    below lie up to 50 minutes back, and the dashboard counts today's (Europe/London)."""
    now = datetime.now(UTC).replace(microsecond=0)
    local = now.astimezone(ZoneInfo("Europe/London"))
    earliest = local.replace(hour=1, minute=1, second=0)
    return max(now, earliest.astimezone(UTC))


NOW = _now_within_today()


def record(svc: Services, minutes: int = 0, **kw: Any) -> Interaction:
    base: dict[str, Any] = {
        "channel": "call",
        "direction": "in",
        "outcome": "missed",
        "start": NOW - timedelta(minutes=minutes),
        "line": "line1",
    }
    base.update(kw)
    return svc.history.record(Interaction(**base))


@pytest.fixture
def desk(logged_in: Owner, services: Services) -> dict[str, Any]:
    anna = services.contacts.save(
        Draft(name=f"Anna {EVIL}", company="Acme", numbers=(("020 7946 0958", "work"),))
    )
    audio = services.store.media.write(b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav")
    pdf = services.store.media.write(b"%PDF-1.4\n%%EOF\n", "pdf")
    items = {
        "vm": record(services, 50, outcome="voicemail", number="+442079460958", media=(audio,)),
        "sms": record(
            services, 40, channel="sms", outcome="received", number="+442079460958", text=EVIL
        ),
        "fax": record(
            services,
            30,
            channel="fax",
            outcome="received",
            number="+442079460999",
            name=EVIL,
            media=(pdf,),
            line="line2",
        ),
        "missed": record(services, 20, number="+442079460999"),
        "answered": record(services, 10, outcome="answered", number="+442079460958"),
    }
    return {"anna": anna, "audio": audio, "pdf": pdf, **items}


def text(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    body: str = response.get_data(as_text=True)
    assert EVIL not in body
    return body


def test_timeline_of_a_contact_shows_every_channel_escaped(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    body = text(logged_in.client.get(f"/contacts/{desk['anna'].id}"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert body.index(desk["answered"].id) < body.index(desk["sms"].id) < body.index(desk["vm"].id)
    assert f'<audio class="desk-audio" controls preload="none" src="/media/{desk["audio"]}"' in body
    assert "Send a text" not in body  # no SMS service on the facade yet
    assert "Mark handled" in body


def test_unknown_number_page_offers_save_as_contact(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    body = text(logged_in.client.get("/numbers/+442079460999"))
    assert 'Unknown <span class="desk-nowrap">020 7946 0999</span>' in body
    assert "Save as contact" in body and f"/media/{desk['pdf']}" in body
    assert logged_in.client.get("/numbers/020%207946%200999").status_code == 302
    form = text(logged_in.client.get("/contacts/new?number=%2B442079460999&name=" + EVIL))
    assert 'value="020 7946 0999"' in form
    r = logged_in.post(
        "/contacts/new",
        {"name": "Bob", "number": "020 7946 0999", "label": "work"},
        token_from="/contacts/new",
    )
    assert r.status_code == 302
    bob = services.contacts.by_number("+442079460999")
    assert bob is not None and r.headers["Location"] == f"/contacts/{bob.id}"
    assert (
        logged_in.client.get("/numbers/+442079460999")
        .headers["Location"]
        .endswith(f"/contacts/{bob.id}")
    )


def test_blocking_an_unknown_caller_from_its_page(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    page = "/numbers/+442079460999"
    data = {"flag": "blocked", "on": "1", "next": page}
    assert logged_in.client.post(f"{page}/flag", data=data).status_code == 400  # no CSRF token
    r = logged_in.post(f"{page}/flag", data, token_from=page)
    assert r.status_code == 302 and r.headers["Location"] == page
    assert services.settings.get().rules.block == ["+442079460999"]
    body = text(logged_in.client.get(page))
    assert '<span class="badge badge-danger">Blocked</span>' in body and "Unblock" in body
    assert "is now blocked" in body
    rules = text(logged_in.client.get("/hours/rules/"))
    assert "+442079460999" in rules  # the same entry, on the call rules page
    # Saved as a contact from that page: the form starts ticked, the flag moves to it.
    form = text(logged_in.client.get("/contacts/new?number=%2B442079460999"))
    assert re.search(r'name="blocked"[^>]*checked', form)
    r = logged_in.post(
        "/contacts/new",
        {"name": "Pest", "number": "020 7946 0999", "label": "work", "blocked": "1"},
        token_from="/contacts/new",
    )
    pest = services.contacts.by_number("+442079460999")
    assert pest is not None and pest.blocked and services.settings.get().rules.block == []
    assert "Blocked contacts" in text(logged_in.client.get("/hours/rules/"))
    body = text(logged_in.client.get(f"/contacts/{pest.id}"))
    assert "Unblock" in body
    data = {"flag": "blocked", "on": "0", "next": f"/contacts/{pest.id}"}
    r = logged_in.post(f"{page}/flag", data, token_from=f"/contacts/{pest.id}")
    assert r.headers["Location"] == f"/contacts/{pest.id}"
    pest = services.contacts.by_number("+442079460999")
    assert pest is not None and not pest.blocked


def test_one_click_save_as_contact(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    record(services, 5, number="+447700900777", name="PLUMB SUPPLIES")
    inbox = text(logged_in.client.get("/inbox/"))
    assert inbox.count("Save as contact") == 3  # the fax's, the missed call's, this one's
    assert "/numbers/+447700900777/save" in inbox
    r = logged_in.post("/numbers/+447700900777/save", {"next": "/inbox/"}, token_from="/inbox/")
    assert r.status_code == 302 and r.headers["Location"] == "/inbox/"
    c = services.contacts.by_number("+447700900777")
    assert c is not None and c.name == "PLUMB SUPPLIES" and c.phones[0].label == "mobile"
    assert "is saved as a contact (PLUMB SUPPLIES)" in text(logged_in.client.get("/inbox/"))
    assert "/numbers/+447700900777/save" not in text(logged_in.client.get("/inbox/"))
    page = "/numbers/+442079460999"
    assert "Save with details" in text(logged_in.client.get(page))
    r = logged_in.post(f"{page}/save", {}, token_from=page)
    c = services.contacts.by_number("+442079460999")
    assert c is not None and r.headers["Location"] == f"/contacts/{c.id}"
    r = logged_in.post(f"{page}/save", {}, token_from="/inbox/")  # already saved
    assert r.headers["Location"] == f"/contacts/{c.id}"
    assert len(services.contacts.all()) == 3


def test_notes_and_outgoing_items_can_be_marked_handled(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    anna = desk["anna"]
    page = f"/contacts/{anna.id}"
    note = services.contacts.add_note("Ring back about the quote", "Maria", contact_id=anna.id)
    body = text(logged_in.client.get(page))
    assert f"/history/notes/{note.id}/handled" in body
    assert body.count("Mark handled") >= 3  # the note, the answered call, the open ones
    r = logged_in.post(
        f"/history/notes/{note.id}/handled", {"next": page, "by": "Luca"}, token_from=page
    )
    assert r.headers["Location"] == page
    done = services.contacts.note(note.id)
    assert done is not None and done.handled_by == "Luca" and done.handled_at is not None
    assert "Handled by Luca" in text(logged_in.client.get(page))
    logged_in.post(
        f"/history/notes/{note.id}/handled", {"undo": "1", "next": page}, token_from=page
    )
    undone = services.contacts.note(note.id)
    assert undone is not None and undone.handled_at is None
    # An answered call (nothing open about it) marked handled, then not.
    answered = desk["answered"].id
    logged_in.post("/history/handled", {"id": answered, "next": page}, token_from=page)
    got = services.history.get(answered)
    assert got is not None and got.handled_by == "Luca" and services.history.open_count() == 4
    assert "Not handled" in text(logged_in.client.get(page))
    logged_in.post("/history/handled", {"reopen": answered, "next": page}, token_from=page)
    got = services.history.get(answered)
    assert got is not None and got.handled_at is None
    assert logged_in.client.post(f"/history/notes/{note.id}/handled").status_code == 400


def test_contact_form_reports_bad_values(logged_in: Owner, services: Services) -> None:
    r = logged_in.post(
        "/contacts/new", {"name": EVIL, "number": "12", "email": "x"}, token_from="/contacts/new"
    )
    assert r.status_code == 400
    body = r.get_data(as_text=True)
    assert EVIL not in body and "a phone number such as 0" in body
    assert services.contacts.count() == 0


def test_inbox_filters_and_bulk_mark_handled(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    body = text(logged_in.client.get("/inbox/"))
    assert "4 items still to deal with" in body
    ids = re.findall(r'name="id" value="([^"]+)" id="sel-', body)
    assert ids == [desk["missed"].id, desk["fax"].id, desk["sms"].id, desk["vm"].id]
    only_vm = text(logged_in.client.get("/inbox/?channel=voicemail"))
    assert re.findall(r'id="sel-([^"]+)"', only_vm) == [desk["vm"].id]
    line2 = text(logged_in.client.get("/inbox/?line=line2"))
    assert re.findall(r'id="sel-([^"]+)"', line2) == [desk["fax"].id]
    r = logged_in.post(
        "/history/handled",
        {"id": [desk["vm"].id, desk["sms"].id], "by": "Maria", "next": "/inbox/"},
        token_from="/inbox/",
    )
    assert r.status_code == 302 and r.headers["Location"] == "/inbox/"
    assert services.history.open_count() == 2
    vm = services.history.get(desk["vm"].id)
    assert vm is not None and vm.handled_by == "Maria"
    page = text(logged_in.client.get(f"/contacts/{desk['anna'].id}"))
    assert "Handled by Maria" in page and "Reopen" in page
    logged_in.post("/history/handled", {"reopen": desk["vm"].id}, token_from="/inbox/")
    assert services.history.open_count() == 3
    r = logged_in.post("/history/handled", {"next": "https://evil.example/"}, token_from="/inbox/")
    assert r.headers["Location"] == "/inbox/"


def test_notes_and_reply_box_only_with_an_sms_service(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    page = f"/contacts/{desk['anna'].id}"
    logged_in.post(
        "/history/note",
        {"contact_id": desk["anna"].id, "text": EVIL, "by": "Maria", "next": page},
        token_from=page,
    )
    assert "Maria" in text(logged_in.client.get(page))
    assert (
        logged_in.post("/history/reply", {"to": "x", "text": "y"}, token_from=page).status_code
        == 404
    )

    sent: list[tuple[str, str]] = []

    class FakeSms:
        def send(self, number: str, body: str) -> None:
            sent.append((number, body))

    services.sms = FakeSms()  # type: ignore[attr-defined]
    assert "Send a text" in text(logged_in.client.get(page))
    logged_in.post(
        "/history/reply",
        {"to": "020 7946 0958", "text": "On our way", "next": page},
        token_from=page,
    )
    assert sent == [("+442079460958", "On our way")]


def test_media_route_serves_files_and_refuses_escapes(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    r = logged_in.client.get(f"/media/{desk['audio']}")
    assert r.status_code == 200 and r.mimetype == "audio/wav"
    assert r.headers["Content-Disposition"].startswith("inline")
    assert r.get_data().startswith(b"RIFF")
    r.close()
    r = logged_in.client.get(f"/media/{desk['pdf']}?download=1")
    assert r.mimetype == "application/pdf"
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in r.headers["Content-Security-Policy"]
    r.close()
    (services.store.data_dir / "settings.json").write_text("{}")
    for bad in [
        "../settings.json",
        "media/../settings.json",
        "media/2025/01/..%2F..%2F..%2Fsettings.json",
        "%2Fetc%2Fpasswd",
        "media/2025/01/../../../web-secret",
        "media/2025/01/missingfile1234.mp3",
        "media/2025/01/" + "a" * 80 + ".mp3",
    ]:
        r = logged_in.client.get(f"/media/{bad}", follow_redirects=True)
        assert r.status_code == 404, bad


def test_history_link_from_emails_finds_the_record(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    r = logged_in.client.get(f"/history/{desk['vm'].id}")
    assert r.headers["Location"] == f"/contacts/{desk['anna'].id}#r-{desk['vm'].id}"
    r = logged_in.client.get(f"/history/{desk['fax'].id}")
    assert r.headers["Location"].startswith("/numbers/+442079460999#r-")
    assert logged_in.client.get("/history/nonsense").status_code == 404


def test_search_and_contact_list(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    body = text(logged_in.client.get("/search?q=script"))
    assert "Text received" in body  # the SMS body matched, shown escaped
    body = text(logged_in.client.get("/search?q=020+7946+0999"))
    assert "Unknown 020 7946 0999" in body
    body = text(logged_in.client.get("/contacts/?q=acme"))
    assert "Anna &lt;script&gt;" in body
    assert "No contact matches" in text(logged_in.client.get("/contacts/?q=zzz"))


def test_import_and_export(logged_in: Owner, services: Services) -> None:
    csv_text = "name,mobile,tags\nAnna,020 7946 0958,vip\nBad,12,\n" + EVIL + ",,\n"
    r = logged_in.post(
        "/contacts/import",
        {"file": (io.BytesIO(csv_text.encode()), "phone.csv")},
        token_from="/contacts/import",
        content_type="multipart/form-data",
    )
    body = text(r)
    assert "<strong>2</strong> added" in body and "<td>3</td>" in body and "<td>4</td>" not in body
    r = logged_in.client.get("/contacts/export.vcf")
    assert r.mimetype == "text/vcard" and "attachment" in r.headers["Content-Disposition"]
    assert "FN:Anna" in r.get_data(as_text=True)
    r = logged_in.client.get("/contacts/export.csv")
    assert r.mimetype == "text/csv" and '"=""+442079460958"""' in r.get_data(as_text=True)
    r = logged_in.client.get("/contacts/export.csv?plain=1")
    assert (
        '"+442079460958"' in r.get_data(as_text=True)
        and "plain" in r.headers["Content-Disposition"]
    )


def test_dashboard_cards_and_svg_charts(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    body = text(logged_in.client.get("/"))
    assert "<strong>4</strong> open items" in body
    figures = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", body))
    assert figures["Answered"] == "1" and figures["Voicemail"] == "1"
    assert figures["Texts in / out"] == "1 / 0" and figures["Faxes in / out"] == "1 / 0"
    assert body.count('<svg viewBox="0 0 360 150" role="img"') == 2
    assert 'class="bar-answered"' in body and 'class="bar-missed"' in body
    # Days are labelled a week apart counting back from today, so today's bar has its date.
    today = services.stats.today()
    labels = re.findall(r'<text class="chart-label"[^>]*>([^<]+)</text>', body)
    assert labels[:5] == [f"{today - timedelta(days=7 * k):%d %b}" for k in (4, 3, 2, 1, 0)]
    assert labels[5:] == [f"{h:02d}:00" for h in range(0, 24, 3)]


def test_list_items_read_well(logged_in: Owner, services: Services, desk: dict[str, Any]) -> None:
    """An unknown caller's item: Open beside its title, Save as contact beside Mark handled
    (not between the name and the badge); counts in the singular for one; a contact without
    a number has no dangling separator."""
    body = text(logged_in.client.get("/inbox/?line=line2"))  # the fax from an unknown number
    item = body[body.index(f'id="r-{desk["fax"].id}"') :]
    item = item[: item.index("</li>")]
    head = item[item.index('class="desk-head"') : item.index("</p>")]
    assert "Open" in head and "Save as contact" not in head
    actions = item[item.index('class="desk-actions"') :]
    assert actions.index("Mark handled") < actions.index("Save as contact")
    assert "1 open item." in body and "1 open items" not in body  # filtered: the count says
    everything = text(logged_in.client.get("/inbox/"))
    assert "4 items still to deal with" in everything and "4 open items." not in everything
    services.contacts.save(Draft(name="No Number", company="Acme"))
    page = text(logged_in.client.get("/contacts/"))
    assert "Acme</span>" in page and "Acme · </span>" not in page


def test_api_contacts_interactions_inbox(
    logged_in: Owner, services: Services, desk: dict[str, Any]
) -> None:
    _, secret = services.auth.create_token("wallboard")
    auth = {"Authorization": f"Bearer {secret}"}
    client = logged_in.client
    r = client.get("/api/v1/contacts", headers=auth)
    assert r.json["contacts"][0]["numbers"][0]["number"] == "+442079460958"
    r = client.get("/api/v1/inbox?channel=fax", headers=auth)
    assert r.json["open_count"] == 4 and [i["id"] for i in r.json["items"]] == [desk["fax"].id]
    since = (NOW - timedelta(minutes=25)).isoformat()
    r = client.get("/api/v1/interactions", query_string={"since": since}, headers=auth)
    assert [i["id"] for i in r.json["items"]] == [desk["missed"].id, desk["answered"].id]
    assert r.json["items"][1]["contact"]["id"] == desk["anna"].id
    assert r.json["total"] == 2 and r.json["next_after"] is None
    # Oldest first, a page at a time: the cursor goes on where the page ended.
    since = (NOW - timedelta(hours=1)).isoformat()
    q: dict[str, Any] = {"since": since, "limit": 2}
    r = client.get("/api/v1/interactions", query_string=q, headers=auth)
    assert [i["id"] for i in r.json["items"]] == [desk["vm"].id, desk["sms"].id]
    assert r.json["total"] == 5 and r.json["next_after"] == desk["sms"].id
    q["after"] = r.json["next_after"]
    r = client.get("/api/v1/interactions", query_string=q, headers=auth)
    assert [i["id"] for i in r.json["items"]] == [desk["fax"].id, desk["missed"].id]
    q["after"] = r.json["next_after"]
    r = client.get("/api/v1/interactions", query_string=q, headers=auth)
    assert [i["id"] for i in r.json["items"]] == [desk["answered"].id]
    assert r.json["next_after"] is None
    r = client.get("/api/v1/interactions?after=../etc", headers=auth)
    assert r.status_code == 400
    assert client.get("/api/v1/interactions?since=yesterday", headers=auth).status_code == 400
    for bad in ("0", "501", "ten", "-1"):
        r = client.get(f"/api/v1/interactions?limit={bad}", headers=auth)
        assert r.status_code == 400 and "expected 1 to 500" in r.get_json()["error"]
        assert client.get(f"/api/v1/inbox?limit={bad}", headers=auth).status_code == 400
    assert client.get("/api/v1/interactions?limit=500", headers=auth).status_code == 200
    assert client.get("/api/v1/inbox").status_code == 401
