"""A call is noted from its first ring, before its caller ID.

Through a simulated USR5637 on a pty: the first RING writes the call's in-progress marker at
once (line, call id, start; no number yet) and the decision fills in the same marker. A daemon
that dies between the first ring and the caller ID leaves that marker: the next start records
the call once, as interrupted, in words that say its caller ID was not received. A call that
goes on ringing into the next run is the same call: one record.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from firmware_app.calls.events import CallFinished
from firmware_app.calls.runner import RANG_WHY, CallRunner
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line
from firmware_app.modem.simulator import SimulatedModem, create
from firmware_app.services import Services
from firmware_app.services.calls import CallService
from firmware_app.services.history import Interaction
from firmware_app.store import Store
from tests.modem.conftest import FAST, Recorder

from .test_calls_e2e import SATURDAY_NIGHT, closed_settings

pytestmark = pytest.mark.timeout(90)


@dataclasses.dataclass
class Life:
    """One run of the daemon's call side: store, services, a line on the simulator, the
    runner and the call service (which records what a previous run left at its start)."""

    services: Services
    line: Line
    runner: CallRunner
    calls: CallService
    recorder: Recorder
    begun: list[dict[str, Any]]  # every marker written with begin_call in this run
    over: bool = False

    def die(self, go_on: threading.Event) -> None:
        """The process ends here: no call is recorded and nothing is written beyond what was
        written already. The line's thread is held at the first ring (`hold_first_ring`)
        until the store is closed and the call service gone."""
        self.calls.close()  # nothing more reaches the runner
        self.services.store.close()
        self.line.stop()
        go_on.set()
        self.line.join(10)
        self.line.close()
        self.runner.close()  # its threads only: no call is running, no marker is touched
        self.over = True

    def stop(self) -> None:
        if self.over:
            return
        self.over = True
        self.calls.close()
        self.runner.close()
        self.line.stop()
        self.line.join(5)
        self.line.close()
        self.services.store.close()


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[SimulatedModem]:
    made = create("usr5637", tmp_path / "dev")
    yield made
    made.close()


@pytest.fixture
def lives(tmp_path: Path, modem: SimulatedModem) -> Iterator[Callable[..., Life]]:
    made: list[Life] = []

    def boot(*, grace: float = 30.0, settings: bool = True) -> Life:
        store = Store(tmp_path / "data")
        config = MachineConfig(store=StoreConfig(data_dir=str(store.data_dir)))
        services = Services.build(config, store)
        services.clock = lambda: SATURDAY_NIGHT
        if settings:
            chosen = closed_settings(2525)  # email on; nothing is sent here
            chosen.lines.rings_before_answer = 10  # the caller gives up first: missed
            services.settings.save(chosen)
        begun: list[dict[str, Any]] = []
        real = services.history.begin_call

        def begin_call(marker: Any) -> int:
            begun.append(dict(marker))
            return real(marker)

        services.history.begin_call = begin_call  # type: ignore[method-assign]
        recorder = Recorder(services.bus)
        runner = CallRunner(services)
        runner.ring_grace = grace
        line = Line(
            "line1",
            str(modem.path),
            bus=services.bus,
            settings=lambda: services.settings.get().lines,
            options=FAST,
        )
        calls = CallService(
            services.bus, services.settings.get, {"line1": line}.get, services.clock, runner=runner
        )
        calls.subscribe()  # before the line is up, as the daemon does
        line.start()
        recorder.wait(ev.LineUp, timeout=20)
        life = Life(services, line, runner, calls, recorder, begun)
        made.append(life)
        return life

    yield boot
    for life in made:
        life.stop()


def hold_first_ring(life: Life) -> tuple[threading.Event, threading.Event]:
    """Hold the line's thread at the first ring, after the call service's handler (which
    subscribed first): (rang, go on). The daemon "dies" while it is held, so the caller ID
    that follows can reach nobody."""
    rang, go_on = threading.Event(), threading.Event()

    def held(event: ev.CallRinging) -> None:
        rang.set()
        go_on.wait(30)

    life.services.bus.subscribe(ev.CallRinging, held)
    return rang, go_on


def no_markers_left(services: Services, timeout: float = 10.0) -> None:
    """Every in-progress marker is gone (each goes just after its call's record)."""
    deadline = time.monotonic() + timeout
    while services.history.calls_in_progress():
        assert time.monotonic() < deadline, services.history.calls_in_progress()
        time.sleep(0.05)


def wait_for_calls(services: Services, n: int, timeout: float = 20.0) -> list[Interaction]:
    """The call records once there are `n` (each is written on the records' thread)."""
    deadline = time.monotonic() + timeout
    while len(found := calls(services)) < n:
        assert time.monotonic() < deadline, [(i.number, i.outcome) for i in found]
        time.sleep(0.05)
    return found


def calls(services: Services) -> list[Interaction]:
    return services.history.newest(50, where=lambda i: i.channel == "call")


def emails(services: Services) -> list[dict[str, Any]]:
    return [dict(d) for d in services.store.table("outbox", "messages").all()]


def test_a_daemon_dead_before_the_caller_id_records_the_call_once_as_interrupted(
    lives: Callable[..., Life], modem: SimulatedModem
) -> None:
    first = lives()
    rang, go_on = hold_first_ring(first)
    modem.ring("+15551234567", rings=1, interval=30.0)  # caller ID would come 15 s later
    assert rang.wait(20)
    (marker,) = first.services.history.calls_in_progress()
    assert marker["line"] == "line1" and marker["number"] == "" and marker["rings"] == 1
    assert marker["decided"] is False and marker["start"] == SATURDAY_NIGHT.isoformat()
    first.die(go_on)
    modem.caller_hangs_up()  # the caller stops ringing before the next run is up

    second = lives(grace=0.2, settings=False)
    done = second.recorder.wait(CallFinished, timeout=20)
    (item,) = calls(second.services)
    assert done.record_id == item.id and item.outcome == "interrupted"
    assert item.number == "" and item.line == "line1" and item.start == SATURDAY_NIGHT
    assert item.text == RANG_WHY and "its caller ID was not received" in item.text
    assert item.details["call_key"] == marker["key"] and item.details["answered"] is False
    assert item.open
    no_markers_left(second.services)
    (mail,) = emails(second.services)
    assert mail["kind"] == "missed_call" and mail["record_id"] == item.id
    assert "its caller ID was not received" in mail["text"]
    assert second.begun == []
    second.stop()

    third = lives(grace=0.2, settings=False)  # and again: nothing more
    assert len(calls(third.services)) == 1 and len(emails(third.services)) == 1
    no_markers_left(third.services)
    third.stop()


def test_the_first_rings_marker_becomes_the_calls_one_marker(
    lives: Callable[..., Life], modem: SimulatedModem
) -> None:
    life = lives()
    seen: list[list[dict[str, Any]]] = []
    life.services.bus.subscribe(
        ev.CallRinging, lambda e: seen.append(life.services.history.calls_in_progress())
    )
    modem.ring("+15551234567", rings=3, interval=0.3, name="ROSSI ANNA")
    decided = life.recorder.wait(ev.IncomingCall, timeout=20)
    assert decided.number == "+15551234567"
    done = life.recorder.wait(CallFinished, timeout=20)
    ((marker,),) = seen  # one first ring, its marker written before anything else
    assert marker["decided"] is False and marker["number"] == ""
    (item,) = calls(life.services)
    assert item.id == done.record_id and item.outcome == "missed"
    assert item.number == "+15551234567" and item.name == "ROSSI ANNA"
    assert item.details["call_key"] == marker["key"] and item.start == SATURDAY_NIGHT
    assert [m["key"] for m in life.begun] == [marker["key"]]  # never a second marker
    no_markers_left(life.services)
    assert len(emails(life.services)) == 1
    life.stop()


def test_a_blocked_caller_has_one_marker_and_one_record(
    lives: Callable[..., Life], modem: SimulatedModem
) -> None:
    life = lives()
    settings = life.services.settings.get()
    life.services.settings.save(
        settings.replace("rules", dataclasses.replace(settings.rules, block=["+15550000666"]))
    )
    modem.ring("+15550000666", rings=4, interval=0.3)
    done = life.recorder.wait(CallFinished, timeout=20)
    life.recorder.wait(ev.CallEnded, timeout=20)
    (item,) = calls(life.services)
    assert item.id == done.record_id and item.outcome == "blocked"
    assert len(life.begun) == 1 and item.details["call_key"] == life.begun[0]["key"]
    no_markers_left(life.services)
    life.stop()


def test_a_call_ringing_on_into_the_next_run_has_one_record(
    lives: Callable[..., Life], modem: SimulatedModem
) -> None:
    first = lives()
    rang, go_on = hold_first_ring(first)
    modem.ring("+15551234567", rings=9, interval=1.0)  # rings on for 9 s
    assert rang.wait(20)
    (marker,) = first.services.history.calls_in_progress()
    first.die(go_on)

    second = lives(grace=60.0, settings=False)  # the caller is still ringing
    done = second.recorder.wait(CallFinished, timeout=40)
    (item,) = calls(second.services)
    assert done.record_id == item.id and item.outcome == "missed"
    assert item.details["call_key"] == marker["key"] and item.start == SATURDAY_NIGHT
    # It rang again as the line came up: taken for the old call ringing on, no new marker.
    assert second.begun == []
    no_markers_left(second.services)
    assert len(emails(second.services)) == 1
    second.stop()


def test_a_new_caller_does_not_take_over_a_call_that_rang_before_its_caller_id(
    lives: Callable[..., Life], modem: SimulatedModem
) -> None:
    """A daemon dead in the second between a call's first ring and its caller ID leaves a
    marker without a number, and the next run waits for that call to ring on. The line's
    next caller rings first and sends its caller ID after the ring: a new call, heard from
    its first ring, so it has its own record with its own start, and the earlier call is
    recorded as interrupted (the caller ID the last run never heard)."""
    first = lives()
    rang, go_on = hold_first_ring(first)
    modem.ring("+15551234567", rings=1, interval=30.0)  # caller ID would come 15 s later
    assert rang.wait(20)
    (marker,) = first.services.history.calls_in_progress()
    first.die(go_on)
    modem.caller_hangs_up()  # gone before the next run is up

    second = lives(grace=120.0, settings=False)
    assert second.services.history.calls_in_progress() != []  # waiting for it to ring on
    second.services.clock = lambda: SATURDAY_NIGHT + timedelta(seconds=20)
    modem.ring("+15550000002", rings=2, interval=0.5)
    second.recorder.wait(CallFinished, timeout=20)
    by_number = {i.number: i for i in wait_for_calls(second.services, 2)}
    earlier, new = by_number[""], by_number["+15550000002"]
    assert earlier.outcome == "interrupted" and earlier.text == RANG_WHY
    assert earlier.details["call_key"] == marker["key"] and earlier.start == SATURDAY_NIGHT
    assert new.outcome == "missed" and new.details["call_key"] != marker["key"]
    assert new.start == SATURDAY_NIGHT + timedelta(seconds=20)
    no_markers_left(second.services)
    assert sorted(m["kind"] for m in emails(second.services)) == ["missed_call", "missed_call"]
    second.stop()


def leave_ringing_marker(life: Life, key: str, start: datetime) -> None:
    """What a kill leaves of a call decided from its caller ID and still ringing."""
    life.services.history.begin_call(
        {
            "key": key,
            "line": "line1",
            "call_id": 1,
            "start": start.isoformat(),
            "number": "+15550000001",
            "name": "",
            "validity": "ok",
            "rings": 2,
            "plan": {},
            "staff": [],
            "answered": False,
            "media": [],
        }
    )


def test_a_call_ringing_on_through_two_quick_stops_has_one_record(
    lives: Callable[..., Life], modem: SimulatedModem
) -> None:
    """Stopped at the first ring, and again as the next run's line hears the call ring on:
    a ring that soon after the line came up, with the call's marker waiting, is the call
    ringing on, so no second marker is written, and the third run records it once."""
    first = lives()
    rang, go_on = hold_first_ring(first)
    modem.ring(None, rings=40, interval=0.8)  # no caller ID; rings on until it hangs up
    assert rang.wait(20)
    (marker,) = first.services.history.calls_in_progress()
    first.die(go_on)

    second = lives(grace=120.0, settings=False)
    rang, go_on = hold_first_ring(second)  # the next ring it hears, held: then it dies
    assert rang.wait(20)
    assert second.begun == []  # taken for the waiting call ringing on
    second.die(go_on)

    third = lives(grace=120.0, settings=False)
    third.recorder.wait(ev.IncomingCall, timeout=20)  # rings on into this run too
    modem.caller_hangs_up()
    done = third.recorder.wait(CallFinished, timeout=30)
    (item,) = calls(third.services)
    assert item.id == done.record_id and item.outcome == "missed"
    assert item.details["call_key"] == marker["key"] and item.start == SATURDAY_NIGHT
    no_markers_left(third.services)
    third.stop()


def test_a_first_ring_while_an_older_call_waits_has_its_own_marker(
    lives: Callable[..., Life], modem: SimulatedModem
) -> None:
    """Stops in quick succession: a call that rang at one stop still waits to ring on when
    a new call's first ring comes, and the daemon stops again before that call's caller
    ID. The new call's first ring wrote its own marker all the same, so when it rings on
    into the third run (no caller ID now) it carries on that marker, the newest, and the
    older call is recorded as interrupted with its own number: two calls, two records."""
    first = lives()
    leave_ringing_marker(first, "k-older", SATURDAY_NIGHT - timedelta(seconds=20))
    first.stop()

    second = lives(grace=120.0, settings=False)
    second.runner.ring_on_window = 1.0  # past it, a first ring is a new call's
    time.sleep(1.5)
    rang, go_on = hold_first_ring(second)
    modem.ring(None, rings=40, interval=0.8)  # no caller ID; rings on until it hangs up
    assert rang.wait(20)
    new_marker = [m for m in second.services.history.calls_in_progress() if m["key"] != "k-older"]
    assert [m["decided"] for m in new_marker] == [False]
    second.die(go_on)

    third = lives(grace=6.0, settings=False)
    third.recorder.wait(ev.IncomingCall, timeout=20)  # rings on into this run
    modem.caller_hangs_up()  # before the 10th ring, when it would be answered
    # The older at the grace's end, then the call.
    by_key = {i.details["call_key"]: i for i in wait_for_calls(third.services, 2, timeout=40)}
    older, rang_on = by_key["k-older"], by_key[new_marker[0]["key"]]
    assert older.outcome == "interrupted" and older.number == "+15550000001"
    assert rang_on.outcome == "missed"
    assert rang_on.number == "" and rang_on.start == SATURDAY_NIGHT
    no_markers_left(third.services)
    third.stop()


def test_another_caller_ends_the_wait_for_a_call_that_rang_at_the_stop(
    lives: Callable[..., Life], modem: SimulatedModem
) -> None:
    """A call decided and still ringing at the stop waits `ring_grace` for the next run to
    hear it ring on. Another caller on that line shows it is over (a line rings one call at
    a time): it is recorded as interrupted at once, and the line's next call has its marker
    from its first ring again, not only from its caller ID."""
    first = lives()
    key = "k-rang-at-the-stop"
    leave_ringing_marker(first, key, SATURDAY_NIGHT)
    first.stop()

    second = lives(grace=120.0, settings=False)
    assert second.services.history.calls_in_progress() != []  # waiting for it to ring on
    modem.ring("+15550000002", rings=2, interval=0.5)
    second.recorder.wait(CallFinished, timeout=20)
    by_number = {i.number: i for i in wait_for_calls(second.services, 2)}
    assert by_number["+15550000001"].outcome == "interrupted"
    assert by_number["+15550000001"].details["call_key"] == key
    assert by_number["+15550000002"].outcome == "missed"
    no_markers_left(second.services)

    mark, since = len(second.begun), second.recorder.mark()
    modem.ring("+15550000003", rings=2, interval=0.5)
    second.recorder.wait(CallFinished, timeout=20, since=since)
    wait_for_calls(second.services, 3)
    first_ring = second.begun[mark]
    assert first_ring["decided"] is False and first_ring["number"] == ""
    assert len(second.begun) == mark + 1  # filled in by its decision: one marker
    second.stop()


def test_a_call_that_rang_long_before_the_stop_is_not_continued_by_a_new_one(
    lives: Callable[..., Life], modem: SimulatedModem
) -> None:
    """Restarts in quick succession: a marker of a call that began ringing minutes ago
    (kept through runs too short to record it) cannot be the call ringing now. It is
    recorded as interrupted at the start, and a caller without caller ID in this run has a
    record of its own, not the old call's number and start."""
    first = lives()
    leave_ringing_marker(first, "k-long-ago", SATURDAY_NIGHT - timedelta(minutes=5))
    first.stop()

    second = lives(grace=120.0, settings=False)
    (old,) = calls(second.services)  # recorded at the start, not left waiting
    assert old.outcome == "interrupted" and old.number == "+15550000001"
    no_markers_left(second.services)
    since = second.recorder.mark()
    modem.ring(None, rings=2, interval=0.5)  # no caller ID: it could "be" anybody's call
    done = second.recorder.wait(CallFinished, timeout=20, since=since)
    new = second.services.history.get(done.record_id)
    assert new is not None and new.id != old.id and new.start == SATURDAY_NIGHT
    assert new.details["call_key"] != "k-long-ago"
    second.stop()
