"""Message builders, header hygiene, MIME structure and the outbox state machine, no server."""

from __future__ import annotations

import email
import email.policy
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app.services.notify import (
    Context,
    FaxNotice,
    MissedCallNotice,
    Outbox,
    SmsNotice,
    VoicemailNotice,
    backoff,
    check_email_message,
    fax_message,
    missed_call_message,
    sms_message,
    voicemail_message,
)
from firmware_app.services.notify.messages import (
    body_text,
    file_name,
    format_duration,
    format_time,
    header_text,
)
from firmware_app.services.notify.mime import (
    Sender,
    add_notes,
    build_message,
    limit_attachments,
    make_message_id,
)
from firmware_app.store import Store

CTX = Context(
    business_name="Bäckerei Å&B <Ltd>",
    timezone="Europe/Berlin",
    country="DE",
    web_url="http://frontdesk.local:8080/",
)
AT = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 CET, half an hour before summer time
SENDER = Sender(name=CTX.business_name, address="fd@example.com", reply_to="boss@example.com")

EXPECTED_HEADERS = [
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "X-Frontdesk-Kind",
    "MIME-Version",
    "Content-Type",
]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Anna", "Anna"),
        ("  Anna \t Berg ", "Anna Berg"),
        ("Eve\r\nBcc: x@example.com", "Eve Bcc: x@example.com"),
        ("a\rb\nc\x00d\x1be", "a b c d e"),
        ("line\u2028sep\u2029para\x85nel", "line sep para nel"),
        ("\u202egnp.exe", "gnp.exe"),  # right-to-left override dropped
        ("Zoë 🙂", "Zoë 🙂"),
        ("x" * 200, "x" * 119 + "…"),
    ],
)
def test_header_text(raw: str, clean: str) -> None:
    assert header_text(raw) == clean


@given(st.text())
def test_header_text_never_lets_a_control_through(raw: str) -> None:
    out = header_text(raw)
    assert len(out) <= 120
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in out)
    assert out == out.strip()


def test_body_text_and_file_names() -> None:
    assert body_text("a\r\nb\rc\x00\x07d\te\u2028f") == "a\nb\ncd\te\nf"
    assert file_name("fax 2026/11.pdf") == "fax-2026-11.pdf"
    assert file_name("../../etc/passwd") == "etc-passwd"
    assert file_name("ünïcode") == "n-code"
    assert file_name("\r\n") == "attachment"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0:00"), (4.6, "0:05"), (61, "1:01"), (3723, "1:02:03"), (-3, "0:00")],
)
def test_format_duration(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_format_time_in_business_timezone_across_dst() -> None:
    assert format_time(AT, CTX) == "Sun 29 Mar 2026, 01:30 (CET)"
    assert format_time(AT + timedelta(hours=1), CTX) == "Sun 29 Mar 2026, 03:30 (CEST)"
    bad = Context(timezone="Not/AZone")
    assert format_time(AT, bad).endswith("(UTC)")


@pytest.mark.parametrize(
    ("attempts", "minutes"), [(0, 1), (1, 1), (2, 2), (3, 4), (4, 8), (6, 32), (7, 60), (50, 60)]
)
def test_backoff(attempts: int, minutes: int) -> None:
    assert backoff(attempts) == timedelta(minutes=minutes)


# -- builders ----------------------------------------------------------------------------------


def test_voicemail_message() -> None:
    d = voicemail_message(
        VoicemailNotice(
            number="+4930901820",
            at=AT,
            duration_s=75,
            contact_name="Anna <b>Berg</b>",
            audio_ref="media/2026/03/abcdefgh12.mp3",
            record_id="2026-03:12",
            line="Shop",
        ),
        CTX,
    )
    assert d.kind == "voicemail"
    assert d.subject == "Voicemail from Anna <b>Berg</b> (1:15)"
    assert "From: Anna <b>Berg</b>, 030 901820" in d.text
    assert "Received: Sun 29 Mar 2026, 01:30 (CET)" in d.text
    assert "Length: 1:15" in d.text and "Line: Shop" in d.text
    assert "Listen in Frontdesk: http://frontdesk.local:8080/history/2026-03%3A12" in d.text
    assert "Anna &lt;b&gt;Berg&lt;/b&gt;" in d.html and "<b>Berg" not in d.html
    assert "Bäckerei Å&amp;B &lt;Ltd&gt;" in d.html
    (att,) = d.attachments
    assert att.filename == "voicemail-2026-03-29-0130.mp3"
    assert att.content_type == "audio/mpeg"
    assert att.url == "http://frontdesk.local:8080/history/2026-03%3A12"
    assert d.record_id == "2026-03:12"


def test_missed_call_withheld_number() -> None:
    d = missed_call_message(MissedCallNotice(number="", at=AT, reason="after hours"), CTX)
    assert d.subject == "Missed call from withheld number"
    assert "Why: after hours" in d.text
    assert "/history/" not in d.text  # no record, no link


def test_a_named_us_caller_reads_name_comma_number() -> None:
    """US numbers are written with brackets, "(201) 555-0123": beside a name they follow a
    comma, not another pair of brackets."""
    us = Context(business_name="Acme", timezone="America/New_York", country="US")
    call = MissedCallNotice(number="+12015550123", contact_name="JANE DOE", at=AT, reason="x")
    d = missed_call_message(call, us)
    assert "From: JANE DOE, (201) 555-0123" in d.text
    assert "((" not in d.text and "((" not in d.html
    vm = VoicemailNotice(number="+12015550123", contact_name="JANE DOE", at=AT, duration_s=5)
    assert "From: JANE DOE, (201) 555-0123" in voicemail_message(vm, us).text
    bare = missed_call_message(MissedCallNotice(number="+12015550123", at=AT, reason="x"), us)
    assert "From: (201) 555-0123" in bare.text


def test_sms_message_quotes_the_text() -> None:
    text = "Hi <script>alert(1)</script>\r\nsecond line"
    d = sms_message(SmsNotice(number="+491701234567", at=AT, text=text), CTX)
    assert d.subject == "Text from 0170 1234567: Hi <script>alert(1)</script> second line"
    assert "Hi <script>alert(1)</script>\nsecond line" in d.text
    assert "<script>" not in d.html and "&lt;script&gt;" in d.html
    international = sms_message(SmsNotice(number="+12025550143", at=AT, text="x"), CTX)
    assert "+1 202-555-0143" in international.subject


def test_fax_message() -> None:
    d = fax_message(
        FaxNotice(
            number="+4930901821",
            at=AT,
            pages=3,
            remote_id="ACME GmbH",
            pdf_ref="media/2026/03/abcdefgh13.pdf",
            problem="the line dropped after page 3",
        ),
        CTX,
    )
    assert d.subject == "Fax from ACME GmbH (3 pages) - incomplete"
    assert "Sender id: ACME GmbH" in d.text and "Pages: 3" in d.text
    assert "The fax may be incomplete: the line dropped after page 3." in d.text
    (att,) = d.attachments
    assert att.content_type == "application/pdf" and att.filename.endswith(".pdf")
    assert att.url == "http://frontdesk.local:8080"  # no record: the home page
    one = fax_message(FaxNotice(number="", at=AT, pages=1), CTX)
    assert one.subject == "Fax from withheld number (1 page)" and one.attachments == ()


def test_check_email_message() -> None:
    d = check_email_message(CTX, AT)
    assert d.kind == "test" and "Bäckerei" in d.subject
    assert "http://frontdesk.local:8080" in d.text


# -- attachment limit and notes ----------------------------------------------------------------


def test_limit_attachments_keeps_what_fits_in_order() -> None:
    atts = [
        {
            "ref": r,
            "filename": f"{r}.pdf",
            "content_type": "application/pdf",
            "url": "http://x/h/1" if r == "b" else "",
        }
        for r in "abcd"
    ]
    kept, notes = limit_attachments(atts, {"a": 600, "b": 500, "c": 400, "d": None}, 1000)
    assert [a["ref"] for a in kept] == ["a", "c"]
    assert kept[0]["size"] == 600
    assert notes == [
        "b.pdf (1 kB) is too large to attach. Open it here: http://x/h/1",
        "d.pdf could not be attached: the file is missing.",
    ]


def test_add_notes_goes_before_the_footer() -> None:
    d = check_email_message(CTX, AT)
    text, html = add_notes(d.text, d.html, ["Too big <x>"])
    assert text.index("Too big <x>") < text.index("\n--\n")
    assert html.index("<p>Too big &lt;x&gt;</p>") < html.index("Sent by Frontdesk")
    assert add_notes("a", "b", []) == ("a", "b")


# -- MIME ----------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data")
    yield s
    s.close()


def doc_for(d: object, **extra: object) -> dict[str, object]:
    base = {
        "kind": d.kind,
        "to": ["a@example.com", "b@example.com"],  # type: ignore[attr-defined]
        "subject": d.subject,
        "text": d.text,
        "html": d.html,  # type: ignore[attr-defined]
        "created": AT.isoformat(),
        "message_id": make_message_id("example.com", AT),
    }
    base.update(extra)
    return base


def parse(msg: EmailMessage) -> EmailMessage:
    out = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(out, EmailMessage)
    return out


def test_mime_without_attachments_is_alternative(store: Store) -> None:
    d = sms_message(SmsNotice(number="+491701234567", at=AT, text="Grüße"), CTX)
    msg = parse(build_message(doc_for(d), SENDER, store.media))
    assert list(msg.keys()) == EXPECTED_HEADERS
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    assert str(msg["To"]) == "a@example.com, b@example.com"
    assert msg["From"].addresses[0].display_name == "Bäckerei Å&B <Ltd>"
    assert "Grüße" in msg.get_body(("plain",)).get_content()
    raw = build_message(doc_for(d), SENDER, store.media).as_bytes()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert raw.isascii()  # 7-bit clean: no reliance on 8BITMIME


def test_mime_missing_attachment_is_noted_not_fatal(store: Store) -> None:
    d = fax_message(
        FaxNotice(number="+4930901821", at=AT, pages=1, pdf_ref="media/2026/03/abcdefgh99.pdf"), CTX
    )
    # As queued: the attachment limit kept the file, so the bodies say it is attached.
    atts, notes = limit_attachments(
        [a.to_doc() for a in d.attachments], {d.attachments[0].ref: 10}, 100
    )
    assert notes == ["The fax is attached as a PDF."]
    text, html = add_notes(d.text, d.html, notes)
    # It is gone by the time of sending: the claim is replaced, never left beside the notice.
    msg = parse(
        build_message(doc_for(d, text=text, html=html, attachments=atts), SENDER, store.media)
    )
    assert list(msg.iter_attachments()) == []
    for body in (msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()):
        assert "fax-2026-03-29-0130.pdf could not be attached: the file is missing." in body
        assert "attached as a PDF" not in body


def test_the_bodies_say_attached_only_for_what_is_attached() -> None:
    d = voicemail_message(
        VoicemailNotice(
            number="+4930901820", at=AT, duration_s=600, audio_ref="a.mp3", record_id="2026-03:12"
        ),
        CTX,
    )
    assert "attached" not in d.text  # said by the Notifier once the limit kept the file
    doc = d.attachments[0].to_doc()
    kept, notes = limit_attachments([doc], {"a.mp3": 500}, 1000)
    assert notes == ["The recording is attached."] and kept[0]["size"] == 500
    kept, notes = limit_attachments([doc], {"a.mp3": 5000}, 1000)
    assert kept == []
    url = "http://frontdesk.local:8080/history/2026-03%3A12"
    assert notes == [
        f"voicemail-2026-03-29-0130.mp3 (5 kB) is too large to attach. Open it here: {url}"
    ]
    text, html = add_notes(d.text, d.html, notes)
    assert "The recording is attached." not in text
    assert f'Open it here: <a href="{url}">{url}</a></p>' in html


def test_message_ids_are_unique_and_well_formed() -> None:
    ids = {make_message_id("example.com", AT) for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("<20260329003000.") and i.endswith("@example.com>") for i in ids)
    assert make_message_id("ex\r\nample.com>", AT).endswith("@example.com>")


names = st.text(st.characters(codec="utf-8"), max_size=60)


@settings(max_examples=60, deadline=None)
@given(name=names, number=names, text=st.text(max_size=300), remote=names)
def test_any_caller_data_builds_a_clean_message(
    name: str, number: str, text: str, remote: str
) -> None:
    media = None  # no attachments here: the media store is never touched
    for d in (
        sms_message(SmsNotice(number=number, at=AT, text=text, contact_name=name), CTX),
        fax_message(FaxNotice(number=number, at=AT, pages=1, remote_id=remote), CTX),
        missed_call_message(MissedCallNotice(number=number, at=AT, contact_name=name), CTX),
    ):
        msg = parse(build_message(doc_for(d), SENDER, media))  # type: ignore[arg-type]
        assert list(msg.keys()) == EXPECTED_HEADERS


# -- the outbox state machine ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = AT

    def __call__(self) -> datetime:
        return self.now


def test_outbox_transitions(store: Store) -> None:
    clock = Clock()
    box = Outbox(store.table("outbox", "messages"), clock)
    a = box.add({"kind": "sms", "to": ["a@example.com"], "subject": "s", "message_id": "<1@x>"})
    assert box.due(clock.now) == [a]
    assert box.retry(a)  # a waiting message may be made due now
    doc = box.claim(a)
    assert doc is not None and doc["state"] == "sending" and doc["attempts"] == 1
    assert box.claim(a) is None  # only once
    assert box.remove(a) is None  # never while sending
    assert box.due(clock.now) == []
    due = box.defer(a, "451 later")
    assert due == AT + timedelta(minutes=1)
    assert box.due(clock.now) == []
    assert box.due(due) == [a]
    assert box.claim(a) is not None
    assert box.fail(a, "550 no")
    assert not box.mark_sent(a, "250")  # not from failed
    assert box.entry(a).last_error == "550 no"  # type: ignore[union-attr]
    assert box.retry(a) and box.claim(a) is not None
    assert box.mark_sent(a, "250 ok")
    assert not box.retry(a) and box.defer(a, "x") is None
    assert box.counts() == {"queued": 0, "sending": 0, "sent": 1, "failed": 0}
    assert [e.id for e in box.entries(state="sent")] == [a]
    assert box.prune_sent(AT) == [] and len(box.prune_sent(AT + timedelta(seconds=1))) == 1


def test_clock_jumping_back_does_not_strand_messages(store: Store) -> None:
    clock = Clock()
    box = Outbox(store.table("outbox", "messages"), clock)
    a = box.add({"kind": "sms", "to": ["a@example.com"], "subject": "s", "message_id": "<1@x>"})
    box.claim(a)
    box.defer(a, "down")
    clock.now = AT - timedelta(days=300)  # no RTC: booted in the past, before NTP
    assert box.due(clock.now) == [a]


def test_recover_requeues_sending(store: Store) -> None:
    clock = Clock()
    box = Outbox(store.table("outbox", "messages"), clock)
    a = box.add({"kind": "sms", "to": ["a@example.com"], "subject": "s", "message_id": "<1@x>"})
    b = box.add({"kind": "sms", "to": ["a@example.com"], "subject": "t", "message_id": "<2@x>"})
    box.claim(a)
    assert box.recover() == 1
    entry = box.entry(a)
    assert entry is not None and entry.state == "queued" and entry.message_id == "<1@x>"
    assert "interrupted" in entry.last_error
    assert box.due(clock.now) == [a, b]
