"""Messages pages and the SMS API: threads by contact or number, conversations with states,
compose with the server's count, hostile texts escaped, validation naming the field; one
headless Chromium pass (phone and desktop screenshots) that also checks the live counter
against count_text."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from firmware_app.protocol.sms_pdu import count_text
from firmware_app.services import Services
from firmware_app.services.contacts import Draft
from firmware_app.services.history import Interaction
from firmware_app.services.sms import SmsService
from tests.web.browser import ARGS, CHROMIUM, SHOTS
from tests.web.conftest import PASSWORD, Owner
from web_ui import create_app
from web_ui.sms import count_words

pytestmark = pytest.mark.timeout(60)

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
T = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@dataclass
class FakeStatus:
    kind: str = "gsm"
    state: str = "idle"


class FakeLine:
    name = "line1"

    def status(self) -> FakeStatus:
        return FakeStatus()


class FakeLines:
    def lines(self) -> list[Any]:
        return [FakeLine()]


@pytest.fixture
def sms(services: Services) -> SmsService:
    service = SmsService(
        services.store,
        services.bus,
        services.settings.get,
        services.history,
        FakeLines(),
        contacts=services.contacts,
    )
    services.sms = service  # the worker is not started: texts stay queued
    return service


def record(services: Services, **kw: Any) -> Interaction:
    base: dict[str, Any] = {
        "channel": "sms",
        "direction": "in",
        "outcome": "received",
        "start": T,
        "number": "+447700900123",
        "line": "line1",
        "text": "Hello",
    }
    base.update(kw)
    return services.history.record(Interaction(**base))


def seed(services: Services) -> None:
    record(services, text=EVIL, start=T)
    record(
        services,
        direction="out",
        outcome="failed",
        start=T + timedelta(minutes=1),
        text="Sorry, we are closed",
        details={"error": "short message transfer rejected (+CMS ERROR: 21)", "parts": 1},
    )
    record(
        services,
        direction="out",
        outcome="delivered",
        start=T + timedelta(minutes=2),
        text="See you at 9 😀",
        details={"parts": 1},
    )
    record(services, number="", name=EVIL, text="Your code is 1234", start=T - timedelta(days=1))
    record(services, number="+447700900999", text="Second customer", start=T - timedelta(hours=1))


def test_inbox_groups_by_number_and_escapes(
    logged_in: Owner, services: Services, sms: SmsService
) -> None:
    seed(services)
    page = logged_in.client.get("/messages/").get_data(as_text=True)
    assert ">Messages<" in page  # the nav entry
    assert EVIL not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert page.count('<a class="sms-thread') == 3
    # newest conversation first: the one with the delivered reply
    assert page.index("See you at 9") < page.index("Second customer") < page.index("1234")
    assert "3 texts" in page


def test_conversation_shows_both_directions_with_states(
    logged_in: Owner, services: Services, sms: SmsService
) -> None:
    seed(services)
    page = logged_in.client.get("/messages/with/+447700900123").get_data(as_text=True)
    assert EVIL not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.index("&lt;script&gt;") < page.index("Sorry, we are closed") < page.index("See you")
    assert "Not sent" in page and "short message transfer rejected (+CMS ERROR: 21)" in page
    assert "Delivered" in page
    assert 'name="to" value="+447700900123"' in page
    fresh = logged_in.client.get("/messages/with/+447700900555").get_data(as_text=True)
    assert "No texts with" in fresh and 'name="to" value="+447700900555"' in fresh
    assert logged_in.client.get("/messages/with/nobody").status_code == 404


def test_a_contacts_numbers_share_one_conversation(
    logged_in: Owner, services: Services, sms: SmsService
) -> None:
    record(services, number="+447700900123", contact_id=7, name="Anna", text="From my mobile")
    record(
        services,
        number="+447700900777",
        contact_id=7,
        name="Anna",
        text="From work",
        start=T + timedelta(minutes=5),
    )
    record(services, number="+447700900999", text="Someone else", start=T - timedelta(hours=1))
    threads = sms.conversations()
    assert [t.key for t in threads] == ["contact:7", "+447700900999"]
    assert threads[0].count == 2
    page = logged_in.client.get("/messages/with/contact:7").get_data(as_text=True)
    assert page.index("From my mobile") < page.index("From work")
    assert 'name="to" value="+447700900777"' in page  # the number used last
    by_number = logged_in.client.get("/messages/with/+447700900123").get_data(as_text=True)
    assert "From my mobile" in by_number
    assert logged_in.client.get("/messages/with/contact:99").status_code == 404


def test_alphanumeric_sender_cannot_be_answered(
    logged_in: Owner, services: Services, sms: SmsService
) -> None:
    seed(services)
    page = logged_in.client.get("/messages/with/" + EVIL).get_data(as_text=True)
    assert "cannot be answered" in page and EVIL not in page


@pytest.mark.parametrize("text", ["a" * 161, "ж" * 71, "😀" * 36, "a" + "€" * 80, ""])
def test_preview_shows_the_count_without_javascript(
    logged_in: Owner, sms: SmsService, text: str
) -> None:
    response = logged_in.post(
        "/messages/send",
        {"to": "+447700900123", "text": text, "action": "preview"},
        token_from="/messages/new",
    )
    assert response.status_code == 200
    assert count_words(count_text(text)) in response.get_data(as_text=True)
    assert sms.history.newest(5) == []  # a preview sends nothing


def test_send_from_compose_queues_and_shows_the_conversation(
    logged_in: Owner, services: Services, sms: SmsService
) -> None:
    response = logged_in.post(
        "/messages/send",
        {"to": "07700 900123", "text": "Line one\r\nLine two", "action": "send"},
        token_from="/messages/new",
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/messages/with/+447700900123")
    item = services.history.newest(1)[0]
    assert (item.outcome, item.direction, item.text) == ("queued", "out", "Line one\nLine two")
    page = logged_in.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Waiting to go" in page


def test_bad_input_names_the_field_and_sends_nothing(
    logged_in: Owner, services: Services, sms: SmsService
) -> None:
    response = logged_in.post(
        "/messages/send",
        {"to": "call me <b>", "text": "", "action": "send"},
        token_from="/messages/new",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "To: " in page and "Message: " in page and "<b>" not in page
    assert services.history.newest(5) == []


def test_unreadable_texts_open_with_what_arrived(
    logged_in: Owner, services: Services, sms: SmsService
) -> None:
    """An unreadable text with a readable sender sits in that number's conversation; one
    without a sender (or a text from an empty sender name) in "Unknown sender", which opens
    like any other. What arrived and why it could not be read are on the page, escaped."""
    unreadable = {"unreadable": True, "error": EVIL, "reads": 2}
    record(
        services,
        text="A text message arrived that Frontdesk could not read.",
        details={**unreadable, "pdu": "00040C9144770090012300"},
    )
    record(
        services,
        number="",
        name="",
        start=T + timedelta(minutes=5),
        text="A text message arrived that Frontdesk could not read.",
        details={**unreadable, "pdu": "0011223344"},
    )
    record(
        services,
        number="",
        name="",
        text="From an empty sender name",
        start=T + timedelta(minutes=6),
    )
    inbox = logged_in.client.get("/messages/").get_data(as_text=True)
    assert 'href="/messages/with/unknown-sender"' in inbox and "Unknown sender" in inbox
    assert 'href="/messages/with/"' not in inbox
    unknown = logged_in.client.get("/messages/with/unknown-sender")
    page = unknown.get_data(as_text=True)
    assert unknown.status_code == 200 and "<h1>Unknown sender</h1>" in page
    assert "0011223344" in page and "From an empty sender name" in page
    assert "What arrived" in page and EVIL not in page and "read 2 times" in page
    assert "cannot be answered" in page and 'name="text"' not in page
    known = logged_in.client.get("/messages/with/+447700900123").get_data(as_text=True)
    assert "00040C9144770090012300" in known and "What arrived" in known
    assert 'name="text"' in known  # the sender is known: it can be answered


def test_timeline_reply_contract(services: Services, sms: SmsService) -> None:
    from web_ui.timeline import sms_service

    assert sms_service(services) is sms
    item = sms.send("+447700900123", "From the timeline")
    assert item.outcome == "queued"


def test_timeline_reply_has_the_counter_and_the_same_limits(
    logged_in: Owner, services: Services, sms: SmsService
) -> None:
    """The reply box on a contact's timeline: the live counter, 1600 characters, and the
    part limit of Settings (not a length of its own); a refused text stays in the box with
    the reason next to it; without script "Count characters" shows the server's count."""
    anna = services.contacts.save(Draft(name="Anna", numbers=(("07700 900123", "mobile"),)))
    page = f"/contacts/{anna.id}"
    body = logged_in.client.get(page).get_data(as_text=True)
    assert 'data-sms-text aria-describedby="sms-count"' in body and "sms.js" in body
    assert 'maxlength="1600"' in body and "1 part · 160 characters left · GSM-7" in body

    def reply(text: str, **extra: str) -> Any:
        form = {"to": "+447700900123", "text": text, "next": page, **extra}
        return logged_in.post("/history/reply", form, token_from=page)

    long_text = "Your order is ready. " * 33  # 693 characters: 5 parts, over the old 612
    sent = reply(long_text)
    assert sent.status_code == 302 and sent.headers["Location"] == page
    (queued,) = services.history.newest(5, where=lambda i: i.direction == "out")
    assert queued.text == long_text.strip() and queued.details["parts"] == 5
    too_long = "x" * 1000  # 7 parts; Settings allow 6
    refused = reply(too_long)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "Message: 7 parts is not allowed; expected at most 6 parts" in text
    assert f">{too_long}</textarea>" in text and "7 parts · 71 characters left" in text
    assert "<h1" in text and "Anna" in text  # the timeline again, not a bare error
    assert f'name="next" value="{page}"' in text and 'value="/history/reply' not in text
    counted = reply("Café at 9 😀", action="preview")
    assert counted.status_code == 200
    assert count_words(count_text("Café at 9 😀")) in counted.get_data(as_text=True)
    assert len(services.history.newest(5, where=lambda i: i.direction == "out")) == 1


def test_a_reply_marks_the_texts_it_answers_handled(
    logged_in: Owner, services: Services, sms: SmsService
) -> None:
    """A reply sent from a conversation or a timeline marks the texts received in that
    conversation up to then handled, by whoever replied: the "new" count and the inbox item
    go; a text that comes after the reply, and other conversations, stay open; a text
    marked so can be reopened."""
    first = record(services, text="Is the shop open on Sunday?")
    second = record(services, text="Or Monday?", start=T + timedelta(minutes=1))
    other = record(services, number="+447700900999", text="Someone else")
    later = record(services, text="Thanks!", start=datetime.now(UTC) + timedelta(hours=1))
    assert services.history.open_count() == 4
    listing = logged_in.client.get("/messages/").get_data(as_text=True)
    assert "3 new" in listing
    page = "/messages/with/+447700900123"
    preview = {"to": "+447700900123", "text": "Hi", "back": "+447700900123"}
    logged_in.post("/messages/send", {**preview, "action": "preview"}, token_from=page)
    assert services.history.open_count() == 4  # counting characters answers nothing
    sent = logged_in.post(
        "/messages/send", {**preview, "text": "Open 9 to 5", "action": "send"}, token_from=page
    )
    assert sent.status_code == 302
    shown = logged_in.client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "The 2 texts it answers are marked as handled." in shown
    for item in (first, second):
        done = services.history.get(item.id)
        assert done is not None and done.handled_by == "Owner" and done.handled_at is not None
    for item in (other, later):
        still = services.history.get(item.id)
        assert still is not None and still.open
    listing = logged_in.client.get("/messages/").get_data(as_text=True)
    assert "1 new" in listing and "2 new" not in listing  # the other conversation's
    assert services.history.open_count() == 2

    # Reopened by hand, it stays open until the next reply.
    timeline = "/numbers/+447700900123"
    reopened = logged_in.post(
        "/history/handled", {"reopen": first.id, "next": timeline}, token_from=timeline
    )
    assert reopened.status_code == 302
    again = services.history.get(first.id)
    assert again is not None and again.open and again.handled_by == ""
    assert services.history.open_count() == 3

    # The timeline's reply box: a contact's texts from any of its numbers, by the name
    # given on this browser.
    anna = services.contacts.save(
        Draft(name="Anna", numbers=(("07700 900555", "mobile"), ("07700 900556", "work")))
    )
    work = record(services, number="+447700900556", contact_id=anna.id, text="From work")
    with logged_in.client.session_transaction() as session:
        session["desk_name"] = "Maria"
    page = f"/contacts/{anna.id}"
    replied = logged_in.post(
        "/history/reply", {"to": "+447700900555", "text": "Done", "next": page}, token_from=page
    )
    assert replied.status_code == 302 and replied.headers["Location"] == page
    shown = logged_in.client.get(page).get_data(as_text=True)
    assert "The text it answers is marked as handled." in shown
    done = services.history.get(work.id)
    assert done is not None and done.handled_by == "Maria"
    still = services.history.get(first.id)
    assert still is not None and still.open  # another conversation


def test_api_lists_and_sends(logged_in: Owner, services: Services, sms: SmsService) -> None:
    seed(services)
    client = logged_in.client
    assert client.get("/api/v1/sms").status_code == 401
    _, secret = services.auth.create_token("script")
    auth = {"Authorization": f"Bearer {secret}"}
    listing = client.get("/api/v1/sms?limit=10", headers=auth).get_json()
    assert len(listing["messages"]) == 5  # newest stored first
    assert listing["messages"][0]["text"] == "Second customer"
    one = client.get("/api/v1/sms?number=%2B447700900123", headers=auth).get_json()
    assert [m["direction"] for m in one["messages"]] == ["out", "out", "in"]
    assert client.get("/api/v1/sms?limit=0", headers=auth).status_code == 400

    bad = client.post("/api/v1/sms", json={"to": "nobody", "text": ""}, headers=auth)
    assert bad.status_code == 422
    assert {p["field"] for p in bad.get_json()["problems"]} == {"to", "text"}
    wrong_type = client.post("/api/v1/sms", json={"to": 5, "text": "x"}, headers=auth)
    assert wrong_type.status_code == 422 and wrong_type.get_json()["problems"][0]["field"] == "to"
    assert client.post("/api/v1/sms", data="x", headers=auth).status_code == 400
    ok = client.post("/api/v1/sms", json={"to": "+447700900123", "text": "Hi"}, headers=auth)
    assert ok.status_code == 202 and ok.get_json()["message"]["state"] == "queued"


def test_without_a_gsm_line_the_pages_say_so(logged_in: Owner, services: Services) -> None:
    page = logged_in.client.get("/messages/").get_data(as_text=True)
    assert "Texts need a GSM line" in page


# -- one browser pass --------------------------------------------------------------------------

VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}
COUNT_CASES = [
    "a" * 160,
    "a" * 161,
    "€" * 80,
    "a" + "€" * 80,
    "a" * 152 + "€" + "b" * 10,
    "ж" * 70,
    "ж" * 71,
    "😀" * 35,
    "😀" * 36,
    "ç and {braces}",
    "",
]


@pytest.fixture
def server(services: Services, sms: SmsService) -> Iterator[str]:
    import waitress

    app = create_app(services)
    srv = waitress.create_server(app, host="127.0.0.1", port=0, threads=4, ident="Frontdesk")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()
    srv.task_dispatcher.shutdown(timeout=2)
    thread.join(timeout=5)


@pytest.mark.browser
def test_pages_in_chromium_with_live_counter(
    server: str, services: Services, sms: SmsService
) -> None:
    from playwright.sync_api import sync_playwright

    services.auth.set_password(PASSWORD)
    settings = services.settings.get()
    services.settings.save(
        settings.replace(
            "business",
            type(settings.business)(name="Rossi Plumbing", timezone="Europe/London", country="GB"),
        )
    )
    seed(services)
    anna = services.contacts.save(Draft(name="Anna", numbers=(("07700 900123", "mobile"),)))
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for device, (width, height) in VIEWPORTS.items():
                context = browser.new_context(viewport={"width": width, "height": height})
                context.set_default_timeout(5000)
                page = context.new_page()
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.on(
                    "console",
                    lambda m: (
                        problems.append(m.text) if "Content Security Policy" in m.text else None
                    ),
                )
                page.on("dialog", lambda d: problems.append("dialog: " + d.message))
                page.goto(server + "/login")
                page.fill("#f-password", PASSWORD)
                page.click("button[type=submit]")
                page.goto(server + "/messages/")
                page.screenshot(path=str(SHOTS / f"{device}-sms-inbox.png"), full_page=True)
                page.click("a.sms-thread >> nth=0")
                page.wait_for_selector(".sms-conversation")
                page.screenshot(path=str(SHOTS / f"{device}-sms-conversation.png"), full_page=True)
                page.goto(server + "/messages/new")
                page.fill("#f-to", "07700 900123")
                if device == "desktop":
                    for text in COUNT_CASES:
                        page.fill("#f-text", text)
                        shown = page.locator("#sms-count").inner_text()
                        assert shown == count_words(count_text(text)), text
                    js = page.evaluate("window.frontdeskSmsCount('a\\ud800b')")
                    py = count_text("a\ud800b")
                    assert (js["encoding"], js["units"]) == (py.encoding, py.units)
                page.fill("#f-text", "Your part has arrived 👍 see you tomorrow at 9")
                assert not page.locator("button[value=preview]").is_visible()
                page.screenshot(path=str(SHOTS / f"{device}-sms-compose.png"), full_page=True)
                page.goto(server + f"/contacts/{anna.id}")  # the timeline's reply box
                for text in ("Running 10 min late", "a" * 161, "Ciao 😀 " * 12):
                    page.fill("#f-text", text)
                    shown = page.locator("#sms-count").inner_text()
                    assert shown == count_words(count_text(text.strip())), text
                assert not page.locator("button[value=preview]").is_visible()
                page.locator("#reply").screenshot(path=str(SHOTS / f"{device}-timeline-reply.png"))
                assert problems == [], problems
                context.close()
        finally:
            browser.close()
