"""The call session core: ringing -> plan -> steps -> end, as a pure state machine.

Fed what happened (answered, each step's result, the caller gone) with the time passed in, it
says what to do next (play a greeting, beep, record, collect keys, forward, hang up) and at
the end how the call went: the outcome and details of the call's one history record.
Pure: no I/O, no threads, no clock, no audio; the runner does the doing.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Generator
from typing import Any, Literal

from ..routing import (
    FaxReceive,
    ForwardTo,
    Greet,
    HangUp,
    Menu,
    NotifyStaff,
    Plan,
    PlayMessage,
    Reject,
    RepeatMenu,
    RingOffice,
    Screen,
    Step,
    TakeVoicemail,
)
from .voice import DigitsResult, PlayResult, RecordResult

ALL_KEYS = "0123456789*#ABCD"
MAX_MENU_ROUNDS = 3  # an unknown key replays the menu; after this many, the default runs
MAX_REPEATS = 5  # "hear this again" at most this often in one call
RING_SECONDS = 6.0  # one ring cycle on most exchanges (2 s on, 4 s off; E.180)
# The network's no-reply timer starts when it alerts the line, a moment before the first RING
# and the caller ID reach us: ringing that stops this much before the timer is up still counts
# as forwarded by the network.
NETWORK_EARLY_SECONDS = 2.0

# "interrupted" is never a session's own: it is the record of a call that was in progress
# when Frontdesk stopped, written at the next start (runner.CallRunner.recover).
Outcome = Literal[
    "answered", "forwarded", "voicemail", "missed", "blocked", "screened", "fax", "interrupted"
]
Notice = Literal["voicemail", "missed", ""]


# -- what to do next ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Play:
    """Play the greeting `greeting` (a GreetingSource key); keys in `stop_digits` stop it."""

    greeting: str
    stop_digits: str = ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Beep:
    """The beep before a voicemail."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    max_seconds: float
    silence_seconds: float
    stop_digits: str = "#"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Collect:
    count: int
    timeout: float
    end_digit: str = "#"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    """Put the caller through (run by a forwarding service when the line has one)."""

    step: ForwardTo


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ForwardResult:
    """`taken`: staff took the call; otherwise `reason` says why not, in words ("hangup"
    when the caller left meanwhile). `recordings`: media references of the recorded call."""

    taken: bool
    reason: str = ""
    recordings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FaxTone:
    """A fax machine is calling: announce it so the fax service can take the call."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """How the call went; the runner writes the history record and sends the emails."""

    outcome: Outcome
    reason: str  # words for the record and the missed-call email
    answered: bool
    notice: Notice = ""
    message: RecordResult | None = None
    box: str = ""
    staff: tuple[str, ...] = ()
    digits: str = ""
    duration: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    trace: tuple[dict[str, Any], ...] = ()
    recordings: tuple[str, ...] = ()  # recorded calls put through (media references)


Action = Play | Beep | Record | Collect | Forward | FaxTone
Result = PlayResult | RecordResult | DigitsResult | ForwardResult | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The owner's voicemail and screening settings, as the session needs them."""

    max_message_seconds: float = 180.0
    silence_seconds: float = 6.0
    screen_seconds: float = 8.0
    min_message_seconds: float = 1.0  # shorter than this is no message (a click, a breath)


class _End(Exception):
    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def answer_ring(plan: Plan, rings_before_answer: int) -> int | None:
    """At which ring to pick up: later while the office phone rings first; None when the
    call is left ringing (the network forwards it, or it is declined)."""
    steps = plan.steps
    if not steps:
        return rings_before_answer
    first = steps[0]
    if isinstance(first, ForwardTo) and first.method == "network":
        return None
    extra = 0
    if isinstance(first, RingOffice):
        extra = max(1, round(first.seconds / RING_SECONDS))
    return rings_before_answer + extra


class CallSession:
    """One call, from its first ring to its end.

    Before the answer: `rejected(now)` or `not_answered(now, reason)` end it. After:
    `answered(now)` returns the first action; each `result(r, now)` returns the next action
    or `Finished`. A result ending in "hangup", "fax" or "error" ends the call at once.
    """

    def __init__(self, plan: Plan, *, now: float, limits: Limits | None = None) -> None:
        self.plan = plan
        self.limits = limits or Limits()
        self.state: Literal["ringing", "running", "ended"] = "ringing"
        self.started = now
        self.answered_at: float | None = None
        self.now = now
        self.trace: list[dict[str, Any]] = []
        self.digits = ""
        self.staff: tuple[str, ...] = ()
        self.box = ""
        self.message: RecordResult | None = None
        self.recordings: tuple[str, ...] = ()
        self.finished: Finished | None = None
        self._script: Generator[Action, Result, Finished] | None = None
        self._pending = ""  # keys pressed during a greeting, for the menu after it
        self._current: str = ""

    # -- before the answer --------------------------------------------------------------------

    def rejected(self, now: float) -> Finished:
        self.now = now
        why = "withheld number rejected" if self.plan.rule == "withheld" else "blocked number"
        return self._finish("blocked", why, answered=False)

    def not_answered(
        self, now: float, reason: str = "the caller hung up before the answer"
    ) -> Finished:
        """The call ended while ringing (caller gave up, network forwarded, office picked up)."""
        self.now = now
        first = self.plan.steps[0] if self.plan.steps else None
        if isinstance(first, ForwardTo) and first.method == "network":
            rang = max(0.0, now - self.started)
            if rang + NETWORK_EARLY_SECONDS >= first.seconds:
                return self._finish(
                    "forwarded",
                    f"left to the network to forward: ringing stopped after {rang:.0f} s, when "
                    f"the network forwards unanswered calls ({first.seconds} s)",
                    answered=False,
                )
            return self._finish(
                "missed",
                f"the caller hung up after {rang:.0f} s, before the network would forward the "
                f"call ({first.seconds} s)",
                answered=False,
            )
        if isinstance(first, RingOffice):
            # The office phone shares the line: ringing stops when someone picks it up.
            return self._finish(
                "answered",
                "ringing stopped while the office phone rang (picked up there, or the caller "
                "gave up)",
                answered=False,
            )
        if isinstance(first, FaxReceive):
            return self._finish("fax", "the fax machine gave up before the answer", answered=False)
        return self._finish("missed", reason, answered=False)

    # -- after the answer ---------------------------------------------------------------------

    def answered(self, now: float) -> Action | Finished:
        self.now = now
        self.answered_at = now
        self.state = "running"
        self._script = self._run()
        return self._advance(None)

    def result(self, result: Result, now: float) -> Action | Finished:
        """The result of the last action; returns the next action or `Finished`."""
        if self.state != "running" or self._script is None:
            raise RuntimeError(f"no action is running (state {self.state})")
        self.now = now
        if self.trace:
            self.trace[-1]["result"] = getattr(result, "reason", "taken" if result else "")
            self.trace[-1]["end"] = round(now - self.started, 2)
        return self._advance(result)

    def failed(self, now: float, words: str) -> Finished:
        """The line failed mid-call (port gone, modem error)."""
        self.now = now
        if self.message is not None:
            return self._finish("voicemail", f"line failed after the message: {words}")
        return self._finish("missed", f"the line failed: {words}")

    # -- internals ----------------------------------------------------------------------------

    def _advance(self, result: Result) -> Action | Finished:
        assert self._script is not None
        try:
            action = self._script.send(result)
        except StopIteration as stop:
            done: Finished = stop.value
            return done
        self.trace.append(
            {
                "do": _describe(action),
                "step": self._current,
                "at": round(self.now - self.started, 2),
            }
        )
        return action

    def _finish(self, outcome: Outcome, reason: str, *, answered: bool = True) -> Finished:
        self.state = "ended"
        notice: Notice = ""
        if outcome == "voicemail":
            notice = "voicemail"
        elif outcome == "missed":
            notice = "missed"
        start = self.answered_at if self.answered_at is not None else self.started
        duration = self.message.seconds if self.message is not None else max(0.0, self.now - start)
        if not answered:
            duration = 0.0
        self.finished = Finished(
            outcome=outcome,
            reason=reason,
            answered=answered,
            notice=notice,
            message=self.message if outcome == "voicemail" else None,
            box=self.box,
            staff=self.staff,
            digits=self.digits,
            duration=round(duration, 2),
            started=self.started,
            ended=self.now,
            trace=tuple(self.trace),
            recordings=self.recordings,
        )
        return self.finished

    def _check(self, result: Result, *, during: str) -> None:
        """End the call when the result says the caller is gone, a fax calls or the line died."""
        reason = getattr(result, "reason", "")
        digits = getattr(result, "digits", "")
        if digits:
            self.digits += digits
        if reason == "hangup":
            if self.message is not None:
                raise _End("voicemail", "message left")
            raise _End("missed", f"the caller hung up during {during}")
        if reason == "fax":
            raise _End("fax", f"fax calling tone during {during}")
        if reason == "error":
            detail = getattr(result, "detail", "") or "the line failed"
            if self.message is not None:
                raise _End("voicemail", f"message left; then {detail}")
            raise _End("missed", f"{detail} during {during}")

    def _run(self) -> Generator[Action, Result, Finished]:
        try:
            yield from self._steps()
        except _End as end:
            if end.outcome == "fax":
                yield FaxTone()
            return self._finish(end.outcome, end.reason)
        if self.message is not None:
            return self._finish("voicemail", "message left")
        return self._finish("missed", "the caller left no message")

    def _steps(self) -> Generator[Action, Result, None]:
        queue: deque[Step] = deque(self.plan.steps)
        self._note_staff(queue)  # staff are told about the call whatever happens in it
        last_menu: Menu | None = None
        default: list[Step] = []
        repeats = 0
        while queue:
            step = queue.popleft()
            self._current = step.kind
            if isinstance(step, RingOffice):
                continue  # done before the answer (answer_ring)
            if isinstance(step, Screen):
                yield from self._screen(step)
            elif isinstance(step, Greet):
                menu_next = bool(queue) and isinstance(queue[0], Menu)
                r = yield Play(greeting=step.greeting, stop_digits=ALL_KEYS if menu_next else "")
                self._check(r, during="the greeting")
                if menu_next:
                    self._pending += getattr(r, "digits", "")
            elif isinstance(step, Menu):
                if step is not last_menu:
                    default = list(queue)  # what runs when nobody chooses
                last_menu = step
                chosen = yield from self._menu(step)
                queue = deque(chosen if chosen is not None else default)
                self._note_staff(queue)
            elif isinstance(step, RepeatMenu):
                if last_menu is not None and repeats < MAX_REPEATS:
                    repeats += 1
                    queue.appendleft(last_menu)
            elif isinstance(step, PlayMessage):
                r = yield Play(greeting=step.message, stop_digits="")
                self._check(r, during="a message")
            elif isinstance(step, ForwardTo) and step.method == "network":
                # Answered although the plan left it to the network: it rang on past the
                # no-reply time, so the network did not forward it. The next steps take it.
                self.trace.append(
                    {
                        "do": "answer: the network did not forward the call",
                        "step": step.kind,
                        "at": round(self.now - self.started, 2),
                    }
                )
            elif isinstance(step, ForwardTo):
                r = yield Forward(step=step)
                if isinstance(r, ForwardResult):
                    self.recordings += r.recordings
                    if r.taken:
                        raise _End("forwarded", r.reason or "put through to " + _people(step))
                self._check(r, during="forwarding")
            elif isinstance(step, NotifyStaff):
                continue  # noted up front (_note_staff): the emails name them
            elif isinstance(step, TakeVoicemail):
                yield from self._voicemail(step)
                return
            elif isinstance(step, Reject):
                # Answered only to say so (analog, calls.blocked_message): then hang up.
                why = "blocked number"
                if self.plan.rule == "withheld":
                    why = "withheld number rejected"
                if step.how == "message":
                    r = yield Play(greeting="not_accepted", stop_digits="")
                    if getattr(r, "reason", "") == "hangup":
                        why += " (hung up during the message)"
                    else:
                        why += ", told the call is not accepted"
                raise _End("blocked", why)
            elif isinstance(step, FaxReceive):
                raise _End("fax", "answered as a fax machine")
            elif isinstance(step, HangUp):
                return

    def _note_staff(self, steps: deque[Step]) -> None:
        for step in steps:
            if isinstance(step, NotifyStaff):
                names = (p.name for p in step.people)
                self.staff = tuple(dict.fromkeys((*self.staff, *names)))

    def _screen(self, step: Screen) -> Generator[Action, Result, None]:
        r = yield Play(greeting=step.prompt, stop_digits=ALL_KEYS)
        self._check(r, during="screening")
        pressed = getattr(r, "digits", "")
        if step.digit not in pressed:
            r = yield Collect(count=1, timeout=self.limits.screen_seconds, end_digit="")
            self._check(r, during="screening")
            pressed = getattr(r, "digits", "")
        if step.digit not in pressed:
            raise _End("screened", f"no key {step.digit} within {self.limits.screen_seconds:g} s")

    def _menu(self, step: Menu) -> Generator[Action, Result, list[Step] | None]:
        for _ in range(MAX_MENU_ROUNDS):
            key = self._pending[:1]
            self._pending = ""
            if not key:
                r = yield Play(greeting=step.sound, stop_digits=ALL_KEYS)
                self._check(r, during="the menu")
                key = getattr(r, "digits", "")[:1]
            if not key:
                r = yield Collect(count=1, timeout=float(step.seconds), end_digit="")
                self._check(r, during="the menu")
                key = getattr(r, "digits", "")[:1]
            if not key:
                return None  # nobody chose: the plan's default steps
            for choice in step.choices:
                if choice.digit == key:
                    self.trace.append({"chose": key, "label": choice.label})
                    return list(choice.steps)
        return None

    def _voicemail(self, step: TakeVoicemail) -> Generator[Action, Result, None]:
        self.box = step.box
        r = yield Play(greeting=step.greeting, stop_digits="#")
        self._check(r, during="the voicemail greeting")
        r = yield Beep()
        self._check(r, during="the beep")
        r = yield Record(
            max_seconds=self.limits.max_message_seconds,
            silence_seconds=self.limits.silence_seconds,
            stop_digits="#",
        )
        if isinstance(r, RecordResult) and r.seconds >= self.limits.min_message_seconds:
            self.message = r
        reason = getattr(r, "reason", "")
        if reason == "hangup" and self.message is None:
            raise _End("missed", "the caller hung up without leaving a message")
        self._check(r, during="the message")
        if reason in ("digit", "done", "silence"):
            r = yield Play(greeting="goodbye")


def _people(step: ForwardTo) -> str:
    return ", ".join(p.name for p in step.people) or "staff"


def _describe(action: Action) -> str:
    if isinstance(action, Play):
        return f"play {action.greeting}"
    if isinstance(action, Beep):
        return "beep"
    if isinstance(action, Record):
        return f"record up to {action.max_seconds:g} s"
    if isinstance(action, Collect):
        return f"wait {action.timeout:g} s for a key"
    if isinstance(action, Forward):
        return action.step.describe()
    return "fax calling tone"
