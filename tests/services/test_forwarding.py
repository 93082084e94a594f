"""Network forwarding against the simulated SIM800: AT+CCFC set, verified by a query, switched
off when the override closes the office, re-applied at the next change; the +CCFC parser;
what each line can do; call recordings deleted after their retention period."""

# ruff: noqa: F811 - fixtures shared with tests/modem

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from firmware_app.events import EventBus
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line
from firmware_app.modem.simulator import SimulatedModem
from firmware_app.routing import Call, ForwardTo, LineCapabilities
from firmware_app.services.forwarding import CallRecordings, ForwardingService, parse_ccfc
from firmware_app.services.routing import RoutingService
from firmware_app.services.scheduler import Scheduler
from firmware_app.services.settings import SettingsService
from firmware_app.settings.lines import Lines
from firmware_app.settings.routing import RotaEntry, StaffMember
from firmware_app.store import Store
from tests.modem.conftest import Recorder, bus, make_line, make_modem, recorder  # noqa: F401

LONDON = ZoneInfo("Europe/London")
NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=LONDON)  # a Wednesday, open 09:00-17:00


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def world(
    store: Store, bus: EventBus
) -> Iterator[tuple[SettingsService, RoutingService, Clock, Scheduler]]:
    settings = SettingsService(store, bus)
    s = settings.get()
    s.business.timezone = "Europe/London"
    s.business.country = "GB"
    s.forwarding.network = True
    s.forwarding.no_reply_seconds = 15
    s.staff.members = [
        StaffMember(name="Anna", mobile="+447700900001"),
        StaffMember(name="Ben", mobile="+447700900002"),
    ]
    s.staff.rota = [
        RotaEntry(name="Anna", days=["mon", "tue", "wed", "thu", "fri"], hours=["09:00-13:00"]),
        RotaEntry(name="Ben", days=["mon", "tue", "wed", "thu", "fri"], hours=["13:00-17:00"]),
    ]
    settings.save(s)
    clock = Clock(NOW)
    yield settings, RoutingService(settings, clock), clock, Scheduler(clock)


def test_parse_ccfc() -> None:
    assert parse_ccfc(['+CCFC: 1,1,"+420123456678",145,,,20']) == (True, "+420123456678", 20)
    assert parse_ccfc(["+CCFC: 0,7"]) == (False, "", None)
    assert parse_ccfc(['+CCFC: 1,4,"+1",145', '+CCFC: 1,1,"+2",145']) == (True, "+2", None)
    assert parse_ccfc(["OK"]) == (False, "", None)


def test_set_verify_and_reapply_on_mode_change(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    bus: EventBus,
    world: tuple[SettingsService, RoutingService, Clock, Scheduler],
) -> None:
    settings, routing, clock, scheduler = world
    modem = make_modem("sim800")
    line = make_line(modem.path)
    recorder.wait(ev.LineUp, timeout=10)
    service = ForwardingService(settings, routing, lambda: [line], bus=bus, scheduler=scheduler)
    try:
        assert service.target() == ("+447700900001", 15)  # Anna is on duty at 10:00
        gsm = LineCapabilities.gsm()
        assert not service.capabilities_for(line, gsm).can_forward_network  # not applied yet
        (state,) = service.apply_all()
        assert service.capabilities_for(line, gsm).can_forward_network  # set and verified
        assert state.verified and state.active and state.number == "+447700900001"
        assert state.seconds == 15
        assert 'AT+CCFC=2,3,"+447700900001",145,1,,,15' in modem.commands
        assert "AT+CCFC=2,2" in modem.commands
        fwd = modem.extras.forwards[2]
        assert (fwd.active, fwd.number, fwd.time) == (True, "+447700900001", 15)
        # The next change is Ben's turn at 13:00: a job is waiting for it.
        assert service.next_apply == dt.datetime(2026, 3, 4, 13, 0, tzinfo=LONDON)
        assert any(name == "network forwarding" for name, _ in scheduler.describe())

        service.subscribe()
        routing.set_override("closed", "switched_back")  # SettingsChanged -> re-applied
        deadline = time.monotonic() + 10
        while modem.extras.forwards[2].active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not modem.extras.forwards[2].active  # closed: Frontdesk takes every call
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = service.states()
            if states and not states[0].wanted and states[0].verified:
                break
            time.sleep(0.05)
        assert "Frontdesk takes every call" in service.states()[0].words

        routing.set_override("off")
        clock.now = dt.datetime(2026, 3, 4, 14, 0, tzinfo=LONDON)
        # Ben's turn, but the line still forwards to Anna: not left to the network.
        assert not service.capabilities_for(line, gsm).can_forward_network
        (state,) = service.apply_all()
        assert state.number == "+447700900002" and state.verified  # Ben after 13:00
    finally:
        service.close()


def test_while_closed_the_network_forwards_to_the_staff_on_call(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    world: tuple[SettingsService, RoutingService, Clock, Scheduler],
) -> None:
    """With "Put callers through to staff on call when closed", a box with one GSM line
    reaches the evening cover through the network's forwarding, as it reaches the day staff
    while open: the plan leaves the call to the network. Off, or nobody on call, the
    forwarding is switched off and Frontdesk takes the call."""
    settings, routing, clock, scheduler = world
    s = settings.get()
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    s.staff.rota = [
        RotaEntry(name="Anna", days=weekdays, hours=["09:00-17:00"]),
        RotaEntry(name="Ben", days=weekdays, hours=["17:00-22:00"]),
    ]
    settings.save(s)
    modem = make_modem("sim800")
    line = make_line(modem.path)
    recorder.wait(ev.LineUp, timeout=10)
    service = ForwardingService(settings, routing, lambda: [line], scheduler=scheduler)
    gsm = LineCapabilities.gsm()
    call = Call(number="+441632960123")
    try:
        clock.now = dt.datetime(2026, 3, 4, 18, 0, tzinfo=LONDON)  # Wednesday evening
        assert service.target() == ("", 15)  # the rule is off: Frontdesk takes the call
        (state,) = service.apply_all()
        assert state.verified and not modem.extras.forwards[2].active
        plan = routing.router().decide(call, clock.now, service.capabilities_for(line, gsm))
        assert plan.kinds() == ["greet", "take_voicemail"]

        settings.save_section("rules", {"on_call_when_closed": True})
        assert service.target() == ("+447700900002", 15)  # Ben is on call
        (state,) = service.apply_all()
        assert state.verified and state.number == "+447700900002"
        fwd = modem.extras.forwards[2]
        assert (fwd.active, fwd.number, fwd.time) == (True, "+447700900002", 15)
        caps = service.capabilities_for(line, gsm)
        assert caps.can_forward_network
        plan = routing.router().decide(call, clock.now, caps)
        assert plan.kinds() == ["forward_to", "greet", "take_voicemail"]
        (step, *_) = plan.steps
        assert isinstance(step, ForwardTo) and step.method == "network"
        assert [p.name for p in step.people] == ["Ben"]
        assert service.next_apply == dt.datetime(2026, 3, 4, 22, 0, tzinfo=LONDON)

        clock.now = dt.datetime(2026, 3, 4, 22, 30, tzinfo=LONDON)  # nobody on call
        assert service.target() == ("", 15)
        (state,) = service.apply_all()
        assert state.verified and not modem.extras.forwards[2].active
        assert not service.capabilities_for(line, gsm).can_forward_network

        # A closure on Thursday: Anna's daytime rota is a day off, not a call; Ben's evening
        # starts when the weekly hours end, which is when the forwarding is set again.
        settings.save_section(
            "holidays",
            {"closures": [{"id": "stock", "start": "2026-03-05", "end": "2026-03-05"}]},
        )
        s = settings.get()
        s.staff.rota = [RotaEntry(name="Ben", days=weekdays, hours=["12:00-22:00"])]
        settings.save(s)
        clock.now = dt.datetime(2026, 3, 5, 14, 0, tzinfo=LONDON)
        assert service.target() == ("", 15)
        service.apply_all()
        assert service.next_apply == dt.datetime(2026, 3, 5, 17, 0, tzinfo=LONDON)
        clock.now = dt.datetime(2026, 3, 5, 17, 0, tzinfo=LONDON)
        assert service.target() == ("+447700900002", 15)
    finally:
        service.close()


def test_refused_by_the_network(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    world: tuple[SettingsService, RoutingService, Clock, Scheduler],
) -> None:
    settings, routing, _, _ = world
    modem = make_modem("sim800")
    line = make_line(modem.path)
    recorder.wait(ev.LineUp, timeout=10)
    modem.extras.ccfc_refused = True
    service = ForwardingService(settings, routing, lambda: [line])
    try:
        (state,) = service.apply_all()
        assert not state.verified and state.error
        assert state.words.startswith("Not set:")
        assert "Frontdesk answers the calls itself" in state.words
        caps = service.capabilities_for(line, LineCapabilities.gsm())
        assert not caps.can_forward_network  # refused: calls are not left ringing
    finally:
        service.close()


def test_not_managed_leaves_the_network_alone(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    world: tuple[SettingsService, RoutingService, Clock, Scheduler],
) -> None:
    settings, routing, _, _ = world
    s = settings.get()
    settings.save_section("forwarding", {"network": False})
    assert s is not settings.get()
    modem = make_modem("sim800")
    line = make_line(modem.path)
    recorder.wait(ev.LineUp, timeout=10)
    service = ForwardingService(settings, routing, lambda: [line])
    try:
        assert service.apply_all() == []
        assert not any("CCFC" in c for c in modem.commands)
        (ability,) = service.abilities()
        assert ability.kind == "gsm" and ability.methods[0].startswith("network forwarding")
    finally:
        service.close()


def test_hook_flash_is_offered_only_on_lines_set_as_on_a_phone_system(
    make_modem: Callable[..., SimulatedModem],
    make_line: Callable[..., Line],
    recorder: Recorder,
    world: tuple[SettingsService, RoutingService, Clock, Scheduler],
) -> None:
    """The page lists what the routing can really do: a hook-flash transfer only on a voice
    line the owner marked as on a PBX/Centrex (`lines.transfer_lines`); a plain line says it
    rings the office phone first; a fax-only line takes faxes."""
    settings, routing, _, _ = world
    lines_settings = Lines(transfer_lines=["line1"], fax_only=["line3"])
    made = []
    for name in ("line1", "line2", "line3"):
        modem = make_modem("usr5637", link_name=f"tty-{name}")
        made.append(make_line(modem.path, settings=lines_settings, name=name))
        recorder.wait(ev.LineUp, lambda e, n=name: e.line == n, timeout=10)
    service = ForwardingService(settings, routing, lambda: made)
    try:
        pbx, plain, fax = service.abilities()
        assert pbx.methods == ("hook-flash transfer (set as on a phone system)",)
        assert plain.methods == ()
        assert any("only on a line set as on a phone system" in n for n in plain.notes)
        assert any("office phone on this line rings first for about 35 s" in n for n in plain.notes)
        assert fax.methods == () and "fax-only" in " ".join(fax.notes)
        assert not any("hook-flash" in m for a in (plain, fax) for m in a.methods)
    finally:
        service.close()


def test_recordings_are_deleted_after_retention(
    store: Store, world: tuple[SettingsService, RoutingService, Clock, Scheduler]
) -> None:
    settings, _, clock, scheduler = world
    settings.save_section("forwarding", {"record_calls": True, "keep_recordings_days": 7})
    recordings = CallRecordings(store, settings, clock)
    assert recordings.enabled
    old = recordings.save(np.zeros(800, dtype=np.int16))
    clock.now = NOW + dt.timedelta(days=5)
    new = recordings.save(np.zeros(800, dtype=np.int16))
    clock.now = NOW + dt.timedelta(days=8)
    recordings.add_job(scheduler)
    assert recordings.prune() == [old]
    assert not store.media.path(old).exists() and store.media.path(new).exists()
    assert recordings.refs() == [new]
    assert any(name == "call recording retention" for name, _ in scheduler.describe())
