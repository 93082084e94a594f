"""The call session core as tables: plan steps plus what each step returned -> the actions
asked for and how the call ends. Pure: no modem, no audio, no clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from firmware_app.calls.session import (
    Beep,
    CallSession,
    Collect,
    FaxTone,
    Finished,
    Forward,
    ForwardResult,
    Limits,
    Play,
    Record,
    answer_ring,
)
from firmware_app.calls.voice import DigitsResult, PlayResult, RecordResult
from firmware_app.routing import (
    FaxReceive,
    ForwardTo,
    Greet,
    HangUp,
    Menu,
    MenuChoice,
    NotifyStaff,
    Person,
    Plan,
    PlayMessage,
    Reject,
    RepeatMenu,
    RingOffice,
    Screen,
    Status,
    TakeVoicemail,
)

NOW = dt.datetime(2026, 11, 25, 18, 5, tzinfo=dt.UTC)
STATUS = Status(
    at=NOW, mode="weekly", is_open=False, reason="", greeting="closed", next_change=None,
    text="Closed now",
)  # fmt: skip
ANNA = Person(name="Anna", mobile="+15550001111")


def plan(*steps: Any, rule: str = "schedule") -> Plan:
    return Plan(mode="weekly", rule=rule, steps=steps, explanation="test", status=STATUS)  # type: ignore[arg-type]


def message(seconds: float, reason: str = "hangup") -> RecordResult:
    return RecordResult(
        reason=reason,  # type: ignore[arg-type]
        audio=np.ones(int(seconds * 8000), dtype=np.int16),
        seconds=seconds,
    )


def ok(digits: str = "") -> PlayResult:
    return PlayResult(reason="digit" if digits else "done", digits=digits)


GONE = PlayResult(reason="hangup")
NO_KEY = DigitsResult(reason="silence")


def key(d: str) -> DigitsResult:
    return DigitsResult(reason="done", digits=d)


def run(p: Plan, results: list[Any], limits: Limits | None = None) -> tuple[list[Any], Finished]:
    """Feed `results` in order; return every action asked for and the end."""
    session = CallSession(p, now=0.0, limits=limits or Limits(max_message_seconds=120))
    actions: list[Any] = []
    step = session.answered(1.0)
    t = 1.0
    for r in results:
        assert not isinstance(step, Finished), (actions, step)
        actions.append(step)
        t += 1.0
        step = session.result(r, t)
    assert isinstance(step, Finished), (actions, step)
    return actions, step


VM = TakeVoicemail()
CLOSED = plan(Greet(greeting="closed"), VM)
HOURS = (PlayMessage(message="message:hours"), RepeatMenu())
MENU = Menu(
    prompt="menu:closed",
    choices=(
        MenuChoice(digit="1", label="sales", steps=(TakeVoicemail(box="sales"),)),
        MenuChoice(digit="2", label="hours", steps=HOURS),
    ),
)
REC = Record(max_seconds=120, silence_seconds=6.0)

# (name, plan, results, expected actions, outcome, notice, box)
TABLE: list[tuple[str, Plan, list[Any], list[Any], str, str, str]] = [
    (
        "after hours: greeting, beep, message, caller hangs up",
        CLOSED,
        [ok(), ok(), ok(), message(4.2)],
        [Play(greeting="closed"), Play(greeting="voicemail", stop_digits="#"), Beep(), REC],
        "voicemail",
        "voicemail",
        "main",
    ),
    (
        "message ended with # gets a goodbye",
        CLOSED,
        [ok(), ok(), ok(), message(3.0, "digit"), ok()],
        [
            Play(greeting="closed"),
            Play(greeting="voicemail", stop_digits="#"),
            Beep(),
            REC,
            Play(greeting="goodbye"),
        ],
        "voicemail",
        "voicemail",
        "main",
    ),
    (
        "hangs up during the greeting: missed, no recording",
        CLOSED,
        [GONE],
        [Play(greeting="closed")],
        "missed",
        "missed",
        "",
    ),
    (
        "hangs up at the beep with nothing said: missed",
        CLOSED,
        [ok(), ok(), ok(), message(0.3)],
        [Play(greeting="closed"), Play(greeting="voicemail", stop_digits="#"), Beep(), REC],
        "missed",
        "missed",
        "main",
    ),
    (
        "fax tone during the greeting",
        CLOSED,
        [PlayResult(reason="fax"), None],
        [Play(greeting="closed"), FaxTone()],
        "fax",
        "",
        "",
    ),
    (
        "screening: nobody presses 1",
        plan(Screen(), Greet(greeting="open"), VM),
        [ok(), NO_KEY],
        [
            Play(greeting="screen", stop_digits="0123456789*#ABCD"),
            Collect(count=1, timeout=8.0, end_digit=""),
        ],
        "screened",
        "",
        "",
    ),
    (
        "screening: 1 pressed during the prompt",
        plan(Screen(), Greet(greeting="open"), VM),
        [ok("1"), ok(), ok(), ok(), message(2.0)],
        [
            Play(greeting="screen", stop_digits="0123456789*#ABCD"),
            Play(greeting="open"),
            Play(greeting="voicemail", stop_digits="#"),
            Beep(),
            REC,
        ],
        "voicemail",
        "voicemail",
        "main",
    ),
    (
        "menu: 1 goes to the sales box",
        plan(Greet(greeting="closed"), MENU, VM),
        [ok(), ok(), key("1"), ok(), ok(), message(2.0)],
        [
            Play(greeting="closed", stop_digits="0123456789*#ABCD"),
            Play(greeting="menu:closed", stop_digits="0123456789*#ABCD"),
            Collect(count=1, timeout=8.0, end_digit=""),
            Play(greeting="voicemail", stop_digits="#"),
            Beep(),
            REC,
        ],
        "voicemail",
        "voicemail",
        "sales",
    ),
    (
        "menu: key pressed during the greeting is the choice",
        plan(Greet(greeting="closed"), MENU, VM),
        [ok("1"), ok(), ok(), message(2.0)],
        [
            Play(greeting="closed", stop_digits="0123456789*#ABCD"),
            Play(greeting="voicemail", stop_digits="#"),
            Beep(),
            REC,
        ],
        "voicemail",
        "voicemail",
        "sales",
    ),
    (
        "menu: message then the menu again, then no key: default voicemail",
        plan(Greet(greeting="closed"), MENU, VM),
        [ok(), ok("2"), ok(), ok(), NO_KEY, ok(), ok(), message(2.0)],
        [
            Play(greeting="closed", stop_digits="0123456789*#ABCD"),
            Play(greeting="menu:closed", stop_digits="0123456789*#ABCD"),
            Play(greeting="message:hours"),
            Play(greeting="menu:closed", stop_digits="0123456789*#ABCD"),
            Collect(count=1, timeout=8.0, end_digit=""),
            Play(greeting="voicemail", stop_digits="#"),
            Beep(),
            REC,
        ],
        "voicemail",
        "voicemail",
        "main",
    ),
    (
        "forward taken",
        plan(Greet(greeting="open"), ForwardTo(people=(ANNA,), method="dial_out", seconds=30), VM),
        [ok(), ForwardResult(taken=True)],
        [
            Play(greeting="open"),
            Forward(step=ForwardTo(people=(ANNA,), method="dial_out", seconds=30)),
        ],
        "forwarded",
        "",
        "",
    ),
    (
        "forward failed: overflow to voicemail",
        plan(Greet(greeting="open"), ForwardTo(people=(ANNA,), method="dial_out", seconds=30), VM),
        [ok(), ForwardResult(taken=False, reason="no answer"), ok(), ok(), message(2.0)],
        [
            Play(greeting="open"),
            Forward(step=ForwardTo(people=(ANNA,), method="dial_out", seconds=30)),
            Play(greeting="voicemail", stop_digits="#"),
            Beep(),
            REC,
        ],
        "voicemail",
        "voicemail",
        "main",
    ),
    (
        "staff told with the voicemail (VIP on an analog line)",
        plan(Greet(greeting="open"), VM, NotifyStaff(people=(ANNA,)), rule="allow"),
        [ok(), ok(), ok(), message(2.0)],
        [Play(greeting="open"), Play(greeting="voicemail", stop_digits="#"), Beep(), REC],
        "voicemail",
        "voicemail",
        "main",
    ),
    (
        "reject with a message says not accepted",
        plan(Reject(how="message"), rule="block"),
        [ok()],
        [Play(greeting="not_accepted", stop_digits="")],
        "blocked",
        "",
        "",
    ),
    ("fax plan", plan(FaxReceive(), rule="fax"), [None], [FaxTone()], "fax", "", ""),
    ("hang up plan", plan(HangUp(), rule="fax"), [], [], "missed", "missed", ""),
]


@pytest.mark.parametrize(
    ("plan_", "results", "expected", "outcome", "notice", "box"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_session_table(
    plan_: Plan, results: list[Any], expected: list[Any], outcome: str, notice: str, box: str
) -> None:
    actions, end = run(plan_, results)
    assert actions == expected
    assert (end.outcome, end.notice, end.box) == (outcome, notice, box)
    assert end.answered
    assert (end.message is not None) == (outcome == "voicemail")


def test_staff_named_and_duration_is_the_message() -> None:
    p = plan(Greet(greeting="open"), VM, NotifyStaff(people=(ANNA,)), rule="allow")
    _, end = run(p, [ok(), ok(), ok(), message(4.5)])
    assert end.staff == ("Anna",) and end.duration == 4.5
    assert [t["do"] for t in end.trace][:2] == ["play open", "play voicemail"]


def test_before_the_answer() -> None:
    s = CallSession(plan(Reject(how="decline"), rule="block"), now=0.0)
    assert s.rejected(0.5).outcome == "blocked"
    s = CallSession(plan(Reject(how="decline"), rule="withheld"), now=0.0)
    assert "withheld" in s.rejected(0.5).reason
    s = CallSession(CLOSED, now=0.0)
    end = s.not_answered(3.0)
    assert (end.outcome, end.notice, end.answered) == ("missed", "missed", False)
    office = plan(RingOffice(seconds=18), Greet(greeting="open"), VM)
    assert CallSession(office, now=0.0).not_answered(9.0).outcome == "answered"
    network = plan(ForwardTo(people=(ANNA,), method="network", seconds=20))
    assert CallSession(network, now=0.0).not_answered(25.0).outcome == "forwarded"
    # The network's timer starts a moment before the call reaches us.
    assert CallSession(network, now=0.0).not_answered(18.5).outcome == "forwarded"
    # Hung up well before the no-reply time: nobody forwarded it, a missed call.
    early = CallSession(network, now=0.0).not_answered(9.0)
    assert (early.outcome, early.notice) == ("missed", "missed")
    assert "before the network would forward" in early.reason


def test_blocked_caller_told_the_call_is_not_accepted() -> None:
    """Analog with calls.blocked_message: answered only to play "not_accepted", then the end
    (no voicemail, no email)."""
    told = plan(Reject(how="message"), rule="block")
    actions, end = run(told, [ok()])
    assert actions == [Play(greeting="not_accepted", stop_digits="")]
    assert (end.outcome, end.notice, end.answered) == ("blocked", "", True)
    assert end.reason == "blocked number, told the call is not accepted"
    _, end = run(plan(Reject(how="message"), rule="withheld"), [GONE])
    assert end.outcome == "blocked" and end.notice == ""
    assert end.reason == "withheld number rejected (hung up during the message)"


def test_network_did_not_forward_then_voicemail() -> None:
    """Answered although left to the network (it rang on past the no-reply time): the
    greeting and voicemail after the ForwardTo run, nothing is asked of a forwarding service."""
    network = plan(
        ForwardTo(people=(ANNA,), method="network", seconds=20), Greet(greeting="open"), VM
    )
    actions, end = run(network, [ok(), ok(), ok(), message(3.0)])
    assert actions[:3] == [
        Play(greeting="open"),
        Play(greeting="voicemail", stop_digits="#"),
        Beep(),
    ]
    assert not any(isinstance(a, Forward) for a in actions)
    assert end.outcome == "voicemail"
    assert end.trace[0]["do"] == "answer: the network did not forward the call"


@pytest.mark.parametrize(
    ("steps", "rings", "expected"),
    [
        ((Greet(greeting="open"),), 2, 2),
        ((RingOffice(seconds=18), Greet(greeting="open")), 2, 5),
        ((ForwardTo(people=(ANNA,), method="network", seconds=20),), 2, None),
        ((), 1, 1),
    ],
)
def test_answer_ring(steps: tuple[Any, ...], rings: int, expected: int | None) -> None:
    assert answer_ring(plan(*steps), rings) == expected


def test_line_failure_mid_call_keeps_a_message() -> None:
    s = CallSession(CLOSED, now=0.0)
    s.answered(1.0)
    for r in (ok(), ok(), ok()):
        s.result(r, 2.0)
    end = s.result(message(3.0, "error"), 5.0)
    assert isinstance(end, Finished) and end.outcome == "voicemail"
    s = CallSession(CLOSED, now=0.0)
    s.answered(1.0)
    assert s.failed(2.0, "port gone").outcome == "missed"
