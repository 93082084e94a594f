"""Contacts: numbers per country, CSV and vCard in and out, bad rows, routing flags,
timelines across every channel, handled state, search and the incremental counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from firmware_app import contacts_io
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.errors import ValidationError
from firmware_app.routing import Call, LineCapabilities, decide
from firmware_app.services import Services
from firmware_app.services.contacts import Draft
from firmware_app.services.history import Interaction
from firmware_app.services.notify.messages import digest_message
from firmware_app.store import Store

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def svc(store: Store) -> Services:
    s = Services.build(MachineConfig(store=StoreConfig(data_dir=str(store.data_dir))), store)
    s.clock = lambda: T0 + timedelta(hours=2)
    s.settings.save_section(
        "business", {"name": "Rossi", "timezone": "Europe/London", "country": "GB"}
    )
    return s


def country(svc: Services, code: str, tz: str = "UTC") -> None:
    svc.settings.save_section("business", {"name": "X", "timezone": tz, "country": code})


def item(**kw: Any) -> Interaction:
    base: dict[str, Any] = {"channel": "call", "direction": "in", "outcome": "missed", "start": T0}
    base.update(kw)
    return Interaction(**base)


@pytest.mark.parametrize(
    "region,typed,e164,shown",
    [
        ("GB", "07400 123456", "+447400123456", "07400 123456"),
        ("GB", "+44 (0)20 7946 0958", "+442079460958", "020 7946 0958"),
        ("US", "(201) 555-0123", "+12015550123", "(201) 555-0123"),
        ("DE", "030 123456", "+4930123456", "030 123456"),
        ("FR", "01 23 45 67 89", "+33123456789", "01 23 45 67 89"),
        ("IT", "06 1234 5678", "+390612345678", "06 1234 5678"),
        ("AU", "0412 345 678", "+61412345678", "0412 345 678"),
        ("GB", "+1 201-555-0123", "+12015550123", "+1 201-555-0123"),
    ],
)
def test_numbers_are_stored_e164_and_shown_locally(
    svc: Services, region: str, typed: str, e164: str, shown: str
) -> None:
    country(svc, region)
    c = svc.contacts.save(Draft(name="Anna", numbers=((typed, "mobile"),)))
    assert c.numbers == (e164,)
    assert svc.contacts.display(e164) == shown
    assert svc.contacts.by_number(e164) == c
    assert svc.contacts.by_number(typed) == c


def test_a_caller_id_name_and_its_number_read_cleanly(svc: Services) -> None:
    """A name from caller ID next to a number written nationally: "JANE DOE, (201)
    555-0123", never "JANE DOE ((201) 555-0123)"; no name: "Unknown <number>"."""
    country(svc, "US")
    assert svc.contacts.caller("+12015550123", "JANE DOE") == "JANE DOE, (201) 555-0123"
    assert svc.contacts.caller("+12015550123") == "Unknown (201) 555-0123"
    assert svc.contacts.caller("+12015550123", "+12015550123") == "Unknown (201) 555-0123"
    assert svc.contacts.caller("", "JANE DOE") == "Withheld number"
    country(svc, "GB")
    assert svc.contacts.caller("+442079460958", "Ann") == "Ann, 020 7946 0958"


def test_bad_contact_names_each_field(svc: Services) -> None:
    with pytest.raises(ValidationError) as err:
        svc.contacts.save(Draft(numbers=(("12", "mobile"),), email="nope", vip=True, blocked=True))
    assert set(err.value.by_field()) == {"numbers", "email", "blocked"}
    with pytest.raises(ValidationError):
        svc.contacts.save(Draft())


def sample(svc: Services) -> None:
    svc.contacts.save(
        Draft(
            name="Anna Rossi",
            company="Rossi, Sons & Co; Ltd",
            numbers=(("07700 900123", "mobile"), ("020 7946 0958", "work")),
            email="anna@example.com",
            notes='Line one\nline two, with "quotes"; and \\ backslash',
            tags=("key customer", "plumbing"),
            vip=True,
        )
    )
    svc.contacts.save(Draft(name="=cmd|' /C calc'!A0", numbers=(("+12015550123", "fax"),)))
    svc.contacts.save(Draft(company="Zeta Ltd", numbers=(("0113 496 0000", "home"),), blocked=True))
    svc.contacts.save(Draft(name="Émile Zoë 日本", numbers=(("+33 1 23 45 67 89", "other"),)))


def shape(svc: Services) -> list[tuple[Any, ...]]:
    return sorted(
        (c.name, c.company, c.phones, c.email, c.notes, c.tags, c.vip, c.blocked)
        for c in svc.contacts.all()
    )


@pytest.mark.parametrize("fmt", ["csv", "csv-plain", "vcard"])
def test_export_import_round_trip(svc: Services, store: Store, tmp_path: Any, fmt: str) -> None:
    sample(svc)
    before = shape(svc)
    if fmt.startswith("csv"):
        plain = fmt == "csv-plain"
        text = contacts_io.write_csv(svc.contacts.all(), spreadsheet=not plain)
        assert "'=cmd" in text  # no formula runs when a spreadsheet opens it
        if plain:  # E.164, every cell quoted (LibreOffice: "Format quoted field as text")
            assert '"+447700900123"' in text and '"=' not in text
        else:  # ="+44...": Excel and Google Sheets keep the + and the digits as text
            assert '"=""+447700900123"""' in text
        drafts, problems = contacts_io.read_csv(contacts_io.decode(text.encode("utf-8-sig")))
    else:
        text = contacts_io.write_vcard(svc.contacts.all())
        assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
        drafts, problems = contacts_io.read_vcard(text)
    assert problems == []
    other = Store(tmp_path / "other")
    try:
        svc2 = Services.build(MachineConfig(store=StoreConfig(data_dir=str(other.data_dir))), other)
        country(svc2, "GB")
        result = svc2.contacts.import_drafts(drafts)
        assert (result.added, result.updated, result.problems) == (4, 0, [])
        assert shape(svc2) == before
        again = svc2.contacts.import_drafts(drafts)  # same numbers: merged, not doubled
        assert (again.added, again.updated) == (0, 4)
        assert shape(svc2) == before
    finally:
        other.close()


def test_csv_bad_rows_are_reported_by_line_and_the_rest_kept(svc: Services) -> None:
    text = (
        "Name,Company,Phone,E-mail,Categories\r\n"
        "Anna,,07700 900123,anna@example.com,a;b\r\n"
        ",,,,\r\n"
        'Bob,"Multi\nline Ltd",12,,\r\n'
        "Carla,,+44 20 7946 0958,not-an-email,\r\n"
        "Dan,,01632 960001,,,extra\r\n"
        ",,,,\r\n"
        "Eve,,+1 201 555 0199,,\r\n"
    )
    drafts, problems = contacts_io.read_csv(text)
    result = svc.contacts.import_drafts(drafts, problems)
    assert [p.line for p in result.problems] == [4, 6, 7]
    assert "'12'" in result.problems[0].message
    assert "email" in result.problems[1].message
    assert "cells" in result.problems[2].message
    assert result.added == 2
    assert [c.name for c in svc.contacts.all()] == ["Anna", "Eve"]
    assert svc.contacts.all()[0].tags == ("a", "b")
    # A problem without a value as written names the field only.
    drafts, problems = contacts_io.read_csv("name,mobile,vip,blocked\nBoth,+12015550100,yes,yes\n")
    both = svc.contacts.import_drafts(drafts, problems).problems
    assert [p.message for p in both] == ["blocked: expected either VIP or blocked, not both"]


def test_csv_without_known_columns(svc: Services) -> None:
    drafts, problems = contacts_io.read_csv("foo,bar\n1,2\n")
    assert drafts == [] and problems[0].line == 1


def test_vcard_versions_and_encodings(svc: Services) -> None:
    text = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\n"
        "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=B6rg;;;\r\n"
        "TEL;CELL;PREF:07700 900123\r\n"
        "TEL;WORK;VOICE:020 7946 0958\r\n"
        "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-1:Caf=E9 =\r\n"
        "au lait\r\n"
        "END:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:4.0\r\n"
        "FN:Lena\r\n  Berg\r\n"
        'TEL;VALUE=uri;TYPE="work,voice":tel:+1-201-555-0123\r\n'
        "ORG:Berg AB;Sales\r\n"
        "CATEGORIES:one,two\\,three\r\n"
        "EMAIL:lena@example.com\r\n"
        "END:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No number\r\nTEL;TYPE=CELL:12\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Broken\r\n"
    )
    drafts, problems = contacts_io.read_vcard(text)
    assert [p.line for p in problems] == [23]
    assert drafts[0].name == "Jörg Müller"
    assert drafts[0].numbers == (("07700 900123", "mobile"), ("020 7946 0958", "work"))
    assert drafts[0].notes == "Café au lait"
    assert drafts[1].name == "Lena Berg"
    assert drafts[1].numbers == (("+1-201-555-0123", "work"),)
    assert drafts[1].company == "Berg AB"
    assert drafts[1].tags == ("one", "two,three")
    result = svc.contacts.import_drafts(drafts, problems)
    assert result.added == 2
    assert [p.line for p in result.problems] == [18, 23]


def test_vip_and_blocked_contacts_feed_routing(svc: Services) -> None:
    vip = svc.contacts.save(Draft(name="Boss", numbers=(("07700 900001", "mobile"),), vip=True))
    svc.contacts.save(Draft(name="Spam", numbers=(("07700 900002", "mobile"),), blocked=True))
    assert svc.contacts.vip_numbers() == {"+447700900001"}
    assert svc.contacts.blocked_numbers() == {"+447700900002"}
    settings, line = svc.settings.get(), LineCapabilities.gsm()
    flags = {"vip": svc.contacts.vip_numbers(), "blocked": svc.contacts.blocked_numbers()}
    at = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # a Sunday night: closed
    assert decide(Call(number="07700 900001"), at, settings, line, **flags).rule == "allow"
    assert decide(Call(number="+447700900002"), at, settings, line, **flags).rule == "block"
    assert decide(Call(number="+447700900003"), at, settings, line, **flags).rule == "schedule"
    assert decide(Call(number="+447700900002"), at, settings, line).rule == "schedule"
    svc.contacts.set_flags(vip.id, vip=False)
    assert svc.contacts.vip_numbers() == frozenset()


def rule_for(svc: Services, number: str) -> str:
    """What a live call from `number` gets on a closed Sunday night, as the call service asks."""
    flags = {"vip": svc.contacts.vip_numbers(), "blocked": svc.contacts.blocked_numbers()}
    at = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    return decide(Call(number=number), at, svc.settings.get(), LineCapabilities.gsm(), **flags).rule


def test_flags_and_the_call_rules_lists_are_one(svc: Services) -> None:
    stranger = "+447700900555"
    # Blocking an unknown caller puts the number on the call rules' block list.
    st = svc.contacts.set_number_flag("07700 900555", "blocked", True)
    assert st.flag == "blocked" and st.contact is None and st.entry == stranger
    assert svc.settings.get().rules.block == [stranger]
    assert rule_for(svc, stranger) == "block"
    # Saved as a contact: the entry becomes the contact's flag; calls are turned away still.
    c = svc.contacts.save(Draft(name="Spammer", numbers=(("07700 900555", "mobile"),)))
    assert c.blocked and svc.settings.get().rules.block == []
    assert svc.contacts.standing(stranger).contact == c
    assert rule_for(svc, stranger) == "block"
    # VIP from the number's page: the contact's flags change, and only those.
    st = svc.contacts.set_number_flag(stranger, "vip", True)
    assert st.flag == "vip" and st.contact is not None and st.contact.vip
    assert not st.contact.blocked and rule_for(svc, stranger) == "allow"
    assert svc.settings.get().rules.allow == []
    # Deleting a flagged contact gives the number back to the list: nothing changes for calls.
    svc.contacts.delete(c.id)
    assert svc.settings.get().rules.allow == [stranger] and rule_for(svc, stranger) == "allow"
    st = svc.contacts.set_number_flag(stranger, "vip", False)
    assert st.flag == "" and svc.settings.get().rules.allow == []
    assert rule_for(svc, stranger) == "schedule"
    # A number typed into a list on the call rules page, then flagged on its contact: the
    # exact entry goes, so the flag decides (an allow entry would otherwise win).
    anna = svc.contacts.save(Draft(name="Anna", numbers=(("07700 900777", "mobile"),)))
    allow = ["07700 900666", "+447700900777"]
    svc.settings.save_section("rules", {**_rules(svc), "allow": allow})
    svc.contacts.set_flags(anna.id, blocked=True)
    assert svc.settings.get().rules.allow == ["07700 900666"]
    assert rule_for(svc, "+447700900777") == "block"
    # A prefix entry stays: unblocking the number says what still blocks it.
    svc.settings.save_section("rules", {**_rules(svc), "block": ["+44113*"]})
    st = svc.contacts.set_number_flag("+441134960000", "blocked", False)
    assert st.flag == "blocked" and st.entry == "+44113*" and st.by_prefix
    assert svc.settings.get().rules.block == ["+44113*"]


def _rules(svc: Services) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(svc.settings.get().rules)


def test_timeline_assembles_every_channel_in_order(svc: Services, store: Store) -> None:
    anna = svc.contacts.save(
        Draft(name="Anna", numbers=(("07700 900123", "mobile"), ("020 7946 0958", "work")))
    )
    h = svc.history
    audio = store.media.write(b"RIFF....WAVE", "wav", T0)
    pdf = store.media.write(b"%PDF-1.4", "pdf", T0)
    made = [
        h.record(item(outcome="answered", number="+447700900123", duration=65)),
        h.record(
            item(
                outcome="voicemail",
                number="+442079460958",
                media=(audio,),
                start=T0 + timedelta(minutes=5),
            )
        ),
        h.record(
            item(
                channel="sms",
                outcome="received",
                number="+447700900123",
                text="<script>alert(1)</script>",
                start=T0 + timedelta(minutes=7),
            )
        ),
        h.record(
            item(
                channel="sms",
                direction="out",
                outcome="sent",
                number="+447700900123",
                text="On my way",
                start=T0 + timedelta(minutes=8),
            )
        ),
        h.record(
            item(
                channel="fax",
                outcome="received",
                number="+442079460958",
                media=(pdf,),
                start=T0 + timedelta(minutes=9),
            )
        ),
    ]
    h.record(item(number="+447700900999", start=T0 + timedelta(minutes=6)))  # someone else
    svc.contacts.add_note("Call back after lunch", "Maria", contact_id=anna.id)
    entries = svc.timeline.for_contact(anna).entries
    kinds = [(e.kind, e.item.id if e.kind == "interaction" else "") for e in entries]
    assert kinds == [("note", "")] + [("interaction", i.id) for i in reversed(made)]
    bare = svc.timeline.for_number("+447700900999").entries
    assert len(bare) == 1 and bare[0].item.outcome == "missed"
    assert svc.contacts.caller("+447700900999") == "Unknown +44 7700 900999"  # drama range
    assert svc.contacts.caller("+442079460999") == "Unknown 020 7946 0999"


def test_emails_about_a_record_stay_on_its_timeline(svc: Services) -> None:
    """An email about a voicemail shows on the caller's timeline while it waits, once a real
    SMTP server took it, after 600 newer emails, and after the outbox pruned it."""
    import socket

    from aiosmtpd.controller import Controller

    from firmware_app.services.notify.messages import Draft as EmailDraft

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    smtp = Controller(Sink(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        svc.settings.save_section(
            "business",
            {
                "name": "Rossi",
                "timezone": "Europe/London",
                "country": "GB",
                "owner_email": "anna@rossi.example",
            },
        )
        svc.settings.save_section(
            "email",
            {
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "security": "none",
                "from_address": "frontdesk@rossi.example",
            },
        )
        vm = svc.history.record(item(outcome="voicemail", number="+447700900321"))

        def emails() -> list[Any]:
            return [
                e.item
                for e in svc.timeline.for_number("+447700900321").entries
                if e.kind == "email"
            ]

        def draft(record_id: str) -> EmailDraft:
            return EmailDraft(
                kind="voicemail",
                subject="Voicemail from 07700 900321",
                text="A message",
                html="",
                record_id=record_id,
            )

        assert svc.notify.queue(draft(vm.id)) is not None
        [mail] = emails()
        assert mail.state == "queued" and mail.to == ("anna@rossi.example",)
        assert mail.subject == "Voicemail from 07700 900321" and not mail.gone
        assert svc.notify.deliver_due() == 1  # a real SMTP server takes it
        [mail] = emails()
        assert mail.state == "sent" and mail.sent_at is not None
        other = svc.history.record(item(number="+447700900999"))
        for _ in range(600):  # newer emails about something else
            svc.notify.queue(draft(other.id))
        [mail] = emails()
        assert mail.state == "sent"
        svc.notify.prune(T0 + timedelta(days=400))  # sent mail leaves the outbox
        assert svc.notify.message(1) is None
        [mail] = emails()
        assert mail.state == "sent" and mail.gone and mail.subject.startswith("Voicemail")
        got = svc.history.get(vm.id)
        assert got is not None and len(got.details["emails"]) == 1
        assert len(svc.history.get(other.id).details["emails"]) == 20  # type: ignore[union-attr]
    finally:
        smtp.stop()


def test_handled_state_and_inbox(svc: Services) -> None:
    a = svc.history.record(item(number="+447700900123"))
    b = svc.history.record(item(channel="sms", outcome="received", number="+447700900124"))
    assert svc.history.open_count() == 2
    assert svc.history.mark_handled([a.id, b.id, "2026-11:999"], by="Maria") == 2
    got = svc.history.get(a.id)
    assert got is not None and got.handled_by == "Maria" and got.handled_at is not None
    assert svc.history.open_count() == 0
    svc.history.reopen(a.id)
    assert [i.id for i in svc.history.open_items()] == [a.id]


def test_search_contacts_numbers_and_sms_text(svc: Services) -> None:
    svc.contacts.save(Draft(name="Anna Rossi", company="Acme", numbers=(("07700 900123", ""),)))
    svc.history.record(
        item(channel="sms", outcome="received", number="+447700900555", text="Boiler is LEAKING")
    )
    assert [c.name for c in svc.timeline.search("rossi").contacts] == ["Anna Rossi"]
    assert [c.name for c in svc.timeline.search("acme ANNA").contacts] == ["Anna Rossi"]
    assert [c.name for c in svc.timeline.search("900 123").contacts] == ["Anna Rossi"]
    found = svc.timeline.search("leaking")
    assert [i.text for i in found.interactions] == ["Boiler is LEAKING"]
    by_number = svc.timeline.search("07700 900555")
    assert by_number.numbers == ["+447700900555"] and len(by_number.interactions) == 1
    assert svc.timeline.search("nothing like this").interactions == []


def test_counters_are_incremental_and_follow_updates(svc: Services) -> None:
    a = svc.history.record(item(outcome="answered"))
    svc.history.record(item(outcome="missed", start=T0 + timedelta(hours=1)))
    svc.history.record(item(channel="sms", outcome="received"))
    svc.history.record(item(channel="fax", direction="out", outcome="sent"))
    svc.history.update(a.id, outcome="voicemail")
    day = svc.stats.day(svc.stats.today())
    assert day.counts == {
        "call:answered": 0,
        "call:voicemail": 1,
        "call:missed": 1,
        "sms:in": 1,
        "fax:out": 1,
    }
    hours = svc.stats.by_hour([day])
    assert hours["missed"][10] == 1 and hours["voicemail"][9] == 1  # London is UTC in November
    records = svc.history.newest(100)
    svc.stats.rebuild(records)
    assert svc.stats.day(svc.stats.today()).get("call:voicemail") == 1


def test_the_daily_summary_names_callers_as_the_contacts_book_does(svc: Services) -> None:
    """A record of a known number reads by the contact's name in the summary (as in the
    voicemail email), even one recorded before the contact was saved; an unknown caller
    keeps caller ID's name, a withheld one says so."""
    svc.history.record(item(number="+447400123456", name="MOBILE CALLER"))
    svc.history.record(item(channel="sms", outcome="received", number="+447400123456"))
    svc.history.record(item(number="+447700900999", name="J SMITH"))
    svc.history.record(item(number=""))
    svc.contacts.save(Draft(name="Anna Bianchi", numbers=(("07400 123456", "mobile"),)))
    day = T0.replace(hour=0, minute=0)
    records = svc.notify.history_between(day, day + timedelta(days=1))
    names = sorted((r["number"], r["name"]) for r in records)
    assert names == [
        ("", ""),
        ("+447400123456", "Anna Bianchi"),
        ("+447400123456", "Anna Bianchi"),
        ("+447700900999", "J SMITH"),
    ]
    text = digest_message(day, day + timedelta(days=1), records, svc.notify.context()).text
    assert text.count("Anna Bianchi, 07400 123456") == 2
    assert "J SMITH, +44 7700 900999" in text and "withheld number" in text
