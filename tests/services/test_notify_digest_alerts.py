"""Daily summary, system alerts (one email per incident), recipients per box and staff,
preferences. The outbox is real; nothing is sent (delivery has its own tests)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from firmware_app.errors import SettingsError
from firmware_app.events import EventBus
from firmware_app.services.alerts import AlertService
from firmware_app.services.notify import MissedCallNotice, Notifier, VoicemailNotice
from firmware_app.services.notify.messages import digest_message
from firmware_app.services.notify.mime import Sender, build_message
from firmware_app.services.scheduler import Scheduler
from firmware_app.services.settings import SettingsService
from firmware_app.services.system import DiskUsage
from firmware_app.settings.model import Business, Email, Settings, section_from_dict
from firmware_app.settings.routing import Menu, MenuOption, Staff, StaffMember
from firmware_app.store import Store

pytestmark = pytest.mark.timeout(20)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class Box:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self) -> Settings:
        return self.settings

    def save_section(self, name: str, data: dict[str, Any]) -> None:
        self.settings = self.settings.replace(name, section_from_dict(name, data))


def settings(**email: Any) -> Settings:
    return Settings(
        business=Business(
            name="Rossi Plumbing",
            timezone="Europe/London",
            country="GB",
            owner_email="owner@example.com",
        ),
        email=Email(smtp_host="127.0.0.1", smtp_port=2525, security="none", **email),
        staff=Staff(
            members=[
                StaffMember(name="Anna", email="anna@example.com", groups=["sales"]),
                StaffMember(name="Bo", email="bo@example.com", groups=["sales", "service"]),
                StaffMember(name="Cy", email="", groups=["service"]),
            ]
        ),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def notifier(store: Store, clock: Clock) -> Notifier:
    box = Box(settings())
    return Notifier(store, box, clock=clock, save_section=box.save_section)


def outbox(n: Notifier) -> list[dict[str, Any]]:
    return [n.outbox.get(e.id) or {} for e in reversed(n.messages(500))]


# -- recipients ----------------------------------------------------------------------------------


def test_recipients_per_box_and_staff(store: Store, clock: Clock) -> None:
    n = Notifier(store, Box(settings(voicemail_to=["desk@example.com"])), clock=clock)
    assert n.voicemail_recipients("") == ["desk@example.com"]
    assert n.voicemail_recipients("Sales") == [
        "anna@example.com",
        "bo@example.com",
        "desk@example.com",
    ]
    # Cy has no email: the box still reaches the event list
    assert n.voicemail_recipients("service") == ["bo@example.com", "desk@example.com"]
    assert n.recipients("missed_call", staff=["anna", "Anna", "nobody"]) == ["anna@example.com"]

    plain = Notifier(store, Box(settings()), clock=clock)
    assert plain.voicemail_recipients("unknown box") == ["owner@example.com"]
    assert plain.voicemail_recipients("sales") == ["anna@example.com", "bo@example.com"]

    msg_id = plain.voicemail(
        VoicemailNotice(number="+442079460000", at=clock.now, duration_s=5, box="sales")
    )
    assert msg_id is not None
    doc = plain.outbox.get(msg_id) or {}
    assert doc["to"] == ["anna@example.com", "bo@example.com"]
    assert "Box: sales" in doc["text"]
    miss = plain.missed_call(MissedCallNotice(number="", at=clock.now, staff=("Bo",)))
    assert (plain.outbox.get(miss or 0) or {})["to"] == ["bo@example.com"]

    # A voicemail key's own addresses for its box, beside the staff of that group.
    s = settings(voicemail_to=["desk@example.com"])
    s.rules.menus = [
        Menu(
            mode="open",
            options=[
                MenuOption(digit="2", action="voicemail", target="Accounts", email_to=["a@x.io"]),
                MenuOption(digit="3", action="voicemail", target="sales", email_to=["s@x.io"]),
            ],
        ),
        Menu(
            mode="closed",
            options=[
                MenuOption(
                    digit="2", action="voicemail", target="accounts", email_to=["night@x.io"]
                ),
                MenuOption(digit="4", action="message", target="accounts"),
            ],
        ),
    ]
    boxed = Notifier(store, Box(s), clock=clock)
    assert boxed.voicemail_recipients("accounts") == ["a@x.io", "night@x.io", "desk@example.com"]
    assert boxed.voicemail_recipients("sales") == [
        "anna@example.com",
        "bo@example.com",
        "s@x.io",
        "desk@example.com",
    ]
    assert boxed.voicemail_recipients("") == ["desk@example.com"]
    assert boxed.recipients("missed_call") == ["owner@example.com"]


# -- the daily summary ---------------------------------------------------------------------------


def add(store: Store, **rec: Any) -> str:
    try:
        when = datetime.fromisoformat(rec["start"]).replace(tzinfo=UTC)
    except (KeyError, ValueError):
        when = None
    return store.history.add(rec, when=when)


def test_digest_content_counts_list_and_tolerance(
    store: Store, notifier: Notifier, clock: Clock
) -> None:
    # Summary at 18:00 London (= 18:00 UTC in November): the window is 24 h up to then.
    add(
        store,
        channel="call",
        direction="in",
        number="+442079460000",
        name="Jürgen",
        start="2026-11-24T17:59:00+00:00",
        outcome="missed",
    )  # before the window
    add(
        store,
        channel="call",
        direction="in",
        number="+442079460001",
        name="Ann <b>Hostile</b>\r\nBcc: x@example.com",
        start="2026-11-24T18:00:00+00:00",
        outcome="answered",
    )
    add(
        store,
        channel="voicemail",
        direction="in",
        number="",
        start="2026-11-25T09:15:00+00:00",
        outcome="voicemail",
    )
    add(
        store,
        channel="sms",
        direction="out",
        number="+447700900123",
        start="2026-11-25T10:00:00",
        outcome="sent",
    )
    add(store, channel="fax", start="2026-11-25T11:00:00+00:00")  # no number, no outcome
    add(
        store,
        channel="call",
        direction="in",
        start="2026-11-25T11:00:00+00:00",
        outcome="fax",
        details={"fax": "taken over"},
    )  # the call the fax came on: the fax record above is its line, not a second one
    add(
        store,
        channel="call",
        number=12345,
        name=None,
        start="2026-11-25T12:00:00+00:00",
        outcome="missed",
    )  # wrong types
    add(store, channel="call", start="not a time", outcome="missed")  # unreadable start
    add(store, channel="call", start="2026-11-25T18:00:00+00:00", outcome="missed")  # after
    add(store, note="a record of another shape")

    msg_id = notifier.send_digest()
    assert msg_id is not None
    doc = notifier.outbox.get(msg_id) or {}
    assert doc["kind"] == "digest" and doc["to"] == ["owner@example.com"]
    assert doc["subject"] == (
        "Frontdesk daily summary for Wed 25 Nov: 2 calls, 1 voicemail, 1 text, 1 fax"
    )
    text = doc["text"]
    assert "Tue 24 Nov, 18:00 to Wed 25 Nov, 18:00 (GMT)" in text
    assert "Calls: 2 (1 answered, 1 missed)" in text
    assert "Voicemails: 1 (1 voicemail)" in text
    assert "Texts: 1 (1 sent)" in text
    assert "Faxes: 1 (1 other)" in text and "Faxs" not in text
    lines = [line for line in text.splitlines() if line[:2].isdigit() or line.startswith("--:")]
    assert lines[0] == (
        "18:00  Call in  Ann <b>Hostile</b> Bcc: x@example.com, 020 7946 0001  answered"
    )
    assert lines[1] == "09:15  Voicemail in  withheld number  voicemail"
    assert lines[2] == "10:00  Text out  +44 7700 900123  sent"
    assert lines[3].startswith("11:00  Fax  withheld number")
    assert len(lines) == 5
    assert "&lt;b&gt;Hostile" in doc["html"] and "<b>Hostile" not in doc["html"]
    msg = build_message(
        doc, Sender(name="Rossi", address="fd@example.com", reply_to=""), store.media
    )
    assert msg["Bcc"] is None
    # once per window
    assert notifier.send_digest() is None
    clock.advance(hours=24)
    assert notifier.send_digest() is not None


def test_digest_on_a_quiet_day_and_when_off(store: Store, notifier: Notifier) -> None:
    draft = digest_message(
        datetime(2026, 11, 24, 18, tzinfo=UTC),
        datetime(2026, 11, 25, 18, tzinfo=UTC),
        [],
        notifier.context(),
    )
    assert draft.subject.endswith(": a quiet day")
    assert "A quiet day" in draft.text
    # Nothing happened: no email, unless the owner asked for quiet days too.
    assert notifier.send_digest() is None
    assert outbox(notifier) == []
    notifier.prefs.save({"digest_quiet_days": True})
    notifier.store.put_document("notify", "digest", {"last_end": ""})
    assert notifier.send_digest() is not None
    notifier.prefs.save({"digest": False})
    notifier.store.put_document("notify", "digest", {"last_end": ""})
    assert notifier.send_digest() is None


def test_digest_missed_by_more_than_12_hours_is_skipped(notifier: Notifier, clock: Clock) -> None:
    notifier.prefs.save({"digest_quiet_days": True})  # an empty history still sends
    clock.now = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # 13 h after 18:00
    assert notifier.send_digest() is None
    clock.now = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # 11 h: caught up
    assert notifier.send_digest() is not None


def test_digest_is_scheduled_at_the_preference_time(notifier: Notifier, clock: Clock) -> None:
    notifier.prefs.save({"digest_quiet_days": True})  # an empty history still sends
    s = Scheduler(clock)
    notifier.schedule_digest(s)
    assert s.next_run == datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
    notifier.prefs.save({"digest_time": "07:30", "digest_quiet_days": True})
    notifier.schedule_digest(s)
    assert s.next_run == datetime(2026, 11, 26, 7, 30, tzinfo=UTC)
    clock.now = datetime(2026, 11, 26, 7, 30, tzinfo=UTC)
    s.run_pending()
    (doc,) = outbox(notifier)
    assert doc["kind"] == "digest"


def test_prefs_validate_and_persist(store: Store) -> None:
    settings_service = SettingsService(store, EventBus())
    notifier = Notifier(store, settings_service.get, save_section=settings_service.save_section)
    with pytest.raises(SettingsError) as err:
        notifier.prefs.save({"digest_time": "25:00", "digest_to": ["not an address"]})
    fields = {p.field for p in err.value.problems}
    assert fields == {"digest_time", "digest_to"}
    seen: list[str] = []
    notifier.prefs.on_change(lambda p: seen.append(p.digest_time))
    changes = notifier.prefs.save({"digest_time": "08:00", "digest_to": ["a@example.com"]})
    assert {c[0] for c in changes} == {"digest_time", "digest_to"} and seen == ["08:00"]
    # They are part of the settings document, so every backup carries them.
    assert 'digest_time = "08:00"' in settings_service.export_toml()
    again = Notifier(store, SettingsService(store, EventBus()).get, clock=Clock())
    assert again.prefs.get().digest_to == ["a@example.com"]
    assert again.recipients("digest") == ["a@example.com"]


# -- alerts --------------------------------------------------------------------------------------


def alert_docs(n: Notifier) -> list[dict[str, Any]]:
    return [d for d in outbox(n) if d.get("kind") == "alert"]


def test_one_email_per_incident_and_one_when_fixed(
    store: Store, notifier: Notifier, clock: Clock
) -> None:
    alerts = AlertService(store, notifier, clock=clock)
    assert alerts.raise_incident("modem", "The modem is unplugged", "ttyACM0 gone")
    for _ in range(5):  # retries and repeated events: no more email
        clock.advance(minutes=1)
        assert not alerts.raise_incident("modem", "The modem is unplugged", "still gone")
    (opened,) = alert_docs(notifier)
    assert opened["subject"] == "Frontdesk needs attention: The modem is unplugged"
    assert "once" in opened["text"]
    assert [i.details for i in alerts.open_incidents()] == ["still gone"]

    # a restart keeps the incident open: still no second email
    again = AlertService(store, Notifier(store, Box(settings()), clock=clock), clock=clock)
    assert not again.raise_incident("modem", "The modem is unplugged", "after restart")

    assert alerts.resolve_incident("modem")
    assert not alerts.resolve_incident("modem")
    docs = alert_docs(notifier)
    assert len(docs) == 2 and docs[1]["subject"] == "Fixed: The modem is unplugged"
    assert "Lasted: 5 minutes" in docs[1]["text"]
    # a new incident with the same key is a new email
    assert alerts.raise_incident("modem", "The modem is unplugged", "again")
    assert len(alert_docs(notifier)) == 3

    notifier.prefs.save({"alert_when_fixed": False})
    assert alerts.resolve_incident("modem")
    assert len(alert_docs(notifier)) == 3


def test_line_down_warns_only_after_five_minutes(
    store: Store, notifier: Notifier, clock: Clock
) -> None:
    events = pytest.importorskip("firmware_app.modem.events")
    bus = EventBus()
    alerts = AlertService(store, notifier, clock=clock)
    alerts.subscribe(bus)
    bus.publish(events.LineDown(line="line1", port="/dev/ttyACM0", reason="unplugged"))
    clock.advance(minutes=3)
    alerts.check()
    bus.publish(events.LineUp(line="line1", port="/dev/ttyACM0", description="USR 5637"))
    clock.advance(minutes=10)
    alerts.check()
    assert alert_docs(notifier) == [] and alerts.incidents() == []  # back in time: nothing

    bus.publish(events.LineDown(line="line1", port="/dev/ttyACM0", reason="unplugged"))
    clock.advance(minutes=4, seconds=59)
    alerts.check()
    assert alert_docs(notifier) == []
    clock.advance(seconds=2)
    for _ in range(3):
        alerts.check()
        bus.publish(events.LineDown(line="line1", port="/dev/ttyACM0", reason="unplugged"))
    (doc,) = alert_docs(notifier)
    assert doc["subject"] == "Frontdesk needs attention: Phone line line1 is down"
    bus.publish(events.LineUp(line="line1", port="/dev/ttyACM0", description="USR 5637"))
    assert alert_docs(notifier)[-1]["subject"] == "Fixed: Phone line line1 is down"

    bus.publish(
        events.ModemError(line="gsm", message="the SIM card needs its PIN", code="sim_pin_needed")
    )
    bus.publish(
        events.ModemError(line="gsm", message="the SIM card needs its PIN", code="sim_pin_needed")
    )
    bus.publish(events.ModemError(line="gsm", message="no dial tone", code="other"))
    assert [d["subject"] for d in alert_docs(notifier)][-1].endswith(
        "needs attention: The SIM card of line gsm needs its PIN"
    )
    assert len(alert_docs(notifier)) == 3
    bus.publish(
        events.SignalChanged(
            line="gsm", rssi=20, dbm=-73, registration="registered (home)", operator="X"
        )
    )
    assert alert_docs(notifier)[-1]["subject"].startswith("Fixed: The SIM card")
    bus.publish(events.ModemError(line="gsm", message="no SIM", code="sim_missing"))
    assert alert_docs(notifier)[-1]["subject"] == (
        "Frontdesk needs attention: There is no SIM card in line gsm"
    )
    bus.publish(events.ModemError(line="gsm2", message="PUK needed", code="sim_puk"))
    assert alert_docs(notifier)[-1]["subject"].endswith(
        "The SIM card of line gsm2 is blocked (it needs its PUK)"
    )
    assert len(alert_docs(notifier)) == 6


def test_disk_nearly_full_with_hysteresis(store: Store, notifier: Notifier, clock: Clock) -> None:
    usage = [DiskUsage(total=1000, free=50)]
    alerts = AlertService(store, notifier, clock=clock, disk=lambda: usage[0])
    for free in (50, 40, 110):  # 5 %, 4 %, 11 %: one incident
        usage[0] = DiskUsage(total=1000, free=free)
        alerts.check()
    assert len(alert_docs(notifier)) == 1 and alerts.open_incidents()[0].key == "disk"
    usage[0] = DiskUsage(total=1000, free=130)
    alerts.check()
    assert [i.key for i in alerts.open_incidents()] == []
    assert alert_docs(notifier)[-1]["subject"] == "Fixed: The storage is nearly full"


def test_mail_failing_for_an_hour(store: Store, notifier: Notifier, clock: Clock) -> None:
    alerts = AlertService(store, notifier, clock=clock)
    msg_id = notifier.missed_call(MissedCallNotice(number="+442079460000", at=clock.now))
    assert msg_id is not None
    notifier.outbox.claim(msg_id)
    notifier.outbox.defer(msg_id, "cannot reach 127.0.0.1:2525: connection refused")
    clock.advance(minutes=59)
    alerts.check()
    assert alerts.open_incidents() == []
    clock.advance(minutes=2)
    alerts.check()
    alerts.check()
    (incident,) = alerts.open_incidents()
    assert incident.key == "mail" and not incident.emailed
    assert alert_docs(notifier) == []  # it would only wait in the broken outbox
    notifier.outbox.claim(msg_id)
    notifier.outbox.mark_sent(msg_id, "250 ok")
    notifier.prefs.save({"alert_when_fixed": False})
    alerts.check()
    (fixed,) = alert_docs(notifier)  # said even so: the first email was never sent
    assert fixed["subject"] == "Fixed: Emails could not be sent for over an hour"


def test_a_message_stuck_sending_counts_as_mail_failing(
    store: Store, notifier: Notifier, clock: Clock
) -> None:
    alerts = AlertService(store, notifier, clock=clock)
    msg_id = notifier.missed_call(MissedCallNotice(number="+442079460000", at=clock.now))
    assert msg_id is not None
    notifier.outbox.claim(msg_id)  # a send that never came back
    clock.advance(minutes=14)
    assert notifier.outbox.failing_since(clock.now) is None  # a slow send, not yet stuck
    clock.advance(minutes=2)
    assert notifier.outbox.failing_since(clock.now) == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
    clock.advance(minutes=45)
    alerts.check()
    (incident,) = alerts.open_incidents()
    assert incident.key == "mail"


def test_scheduler_runs_the_alert_checks(store: Store, notifier: Notifier, clock: Clock) -> None:
    s = Scheduler(clock)
    usage = DiskUsage(total=100, free=1)
    alerts = AlertService(store, notifier, clock=clock, disk=lambda: usage)
    alerts.add_jobs(s)
    clock.advance(minutes=1)
    s.run_pending()
    assert [i.key for i in alerts.open_incidents()] == ["disk"]


def test_alerts_off_means_no_email(store: Store, notifier: Notifier, clock: Clock) -> None:
    notifier.prefs.save({"alerts": False})
    alerts = AlertService(store, notifier, clock=clock)
    assert alerts.raise_incident("x", "X", "y")
    assert alert_docs(notifier) == []
    assert dataclasses.asdict(alerts.open_incidents()[0])["key"] == "x"


def test_catch_up_only_after_a_summary_was_ever_sent(notifier: Notifier, clock: Clock) -> None:
    notifier.prefs.save({"digest_quiet_days": True})  # an empty history still sends
    assert notifier.catch_up_digest() is None  # new box: counts from now
    assert notifier.send_digest() is None  # that window counts as done
    clock.advance(hours=24)  # the box was off at 18:00
    assert notifier.catch_up_digest() is not None
