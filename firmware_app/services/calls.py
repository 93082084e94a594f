"""Every incoming call reaches a decision: the routing plan says reject or answer.

`CallService` has the runner note each call at its first ring (`CallRinging`), listens
for `IncomingCall`, asks the routing (`Router.decide`) for a plan, then rejects (block
list, withheld rule) or answers at the configured ring and hands the answered call to a
session. With a `runner` (firmware_app.calls.runner) every call runs the
full flow and leaves one history record (even when the daemon dies mid-call: the runner
notes each call in progress and `subscribe()` records the ones a previous run left); without
one, a placeholder session hangs up.

What a line can do comes from `forwarding.capabilities_for` (a free second line, network
forwarding that was set and verified). A call left to the network that still rings
`NETWORK_GRACE_SECONDS` after its no-reply time was not forwarded: it is answered then.
While the clock cannot be trusted (`timesync.clock_ok()` false) business hours are not used:
every call is handled as closed, and the plan says why.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..calls.session import answer_ring
from ..events import EventBus
from ..modem.events import CallerHungUp, CallRinging, IncomingCall
from ..protocol.at import Response
from ..routing import (
    Call,
    FaxReceive,
    ForwardTo,
    LineCapabilities,
    Plan,
    Reject,
    RouterCache,
)
from ..settings.routing import Override
from .routing import contact_flags

if TYPE_CHECKING:
    from ..calls.runner import CallRunner
    from ..modem.line import Line
    from ..settings.model import Settings

log = logging.getLogger(__name__)

NETWORK_GRACE_SECONDS = 8.0
"""A call left to the network that still rings this long after the no-reply time was not
forwarded (the network lost or ignored the setting): Frontdesk answers it."""

CLOCK_NOT_SET = (
    "The clock is not set yet (no network time since start-up), so business hours cannot be "
    "trusted: the call is handled as closed."
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What was decided for one call; kept in memory for the status page."""

    line: str
    call_id: int
    at: datetime
    action: str  # "answer" or "reject"
    rule: str
    steps: tuple[str, ...]
    explanation: str


class Session(Protocol):
    """Runs an answered call. Called on the line's thread: start work, do not block."""

    def __call__(self, line: Line, call: IncomingCall, plan: Plan) -> None: ...


class HangUpAfter:
    """The placeholder session: keep the call for `seconds`, then hang up."""

    def __init__(self, seconds: float = 3.0) -> None:
        self.seconds = seconds

    def __call__(self, line: Line, call: IncomingCall, plan: Plan) -> None:
        line.hangup(after=self.seconds)


class CallService:
    def __init__(
        self,
        bus: EventBus,
        settings: Callable[[], Settings],
        lines: Callable[[str], Line | None],
        clock: Callable[[], datetime],
        *,
        session: Session | None = None,
        keep: int = 50,
        runner: CallRunner | None = None,
        contacts: Any = None,
        forwarding: Any = None,
        timesync: Any = None,
        fax: Any = None,
        network_grace: float = NETWORK_GRACE_SECONDS,
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._lines = lines
        self._clock = clock
        self.runner = runner
        self.contacts = contacts  # vip_numbers() / blocked_numbers() feed the routing
        self.forwarding = forwarding  # capabilities_for(line, caps): what a line can do now
        self.timesync = timesync  # clock_ok(): whether business hours can be trusted
        self.fax = fax  # answer(line, call): fax-only lines; else the runner's services.fax
        if session is None and runner is not None:
            session = runner.answered
        self.session: Session = session or HangUpAfter()
        self._unanswered: dict[tuple[str, int], IncomingCall] = {}
        self.network_grace = network_grace
        self._late: dict[tuple[str, int], threading.Timer] = {}  # calls left to the network
        self._recent: deque[Decision] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._routers = RouterCache()  # the Router of the settings in use, read once

    def subscribe(self) -> None:
        """Start taking calls. First, calls a previous run left in progress (the daemon died
        mid-call) get their record, so every call has one (`CallRunner.recover`)."""
        if self.runner is not None:
            self.runner.recover()
        self._unsubscribe = self._bus.subscribe(IncomingCall, self.on_incoming)
        self._unsubscribe_end = self._bus.subscribe(CallerHungUp, self._on_hung_up)
        self._unsubscribe_ring = self._bus.subscribe(CallRinging, self.on_first_ring)
        self.warm_up()

    def warm_up(self) -> None:
        """Decide one made-up call so the first real one does not pay for loading holiday
        tables and timezones (about 0.1 s once; then about 0.1 ms a call)."""
        try:
            for caps in (LineCapabilities.analog(), LineCapabilities.gsm()):
                routes = self._routers.get(self._settings())
                routes.decide(Call(number="+15550000000"), self._clock(), caps)
        except Exception:
            log.exception("routing warm-up failed")

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
            self._unsubscribe_end()
            self._unsubscribe_ring()
        with self._lock:
            timers = list(self._late.values())
            self._late.clear()
        for timer in timers:
            timer.cancel()

    def recent(self) -> list[Decision]:
        """Latest decisions, newest first."""
        with self._lock:
            return list(reversed(self._recent))

    def capabilities(self, line: Line) -> LineCapabilities | None:
        """The line's abilities as the routing should see them now."""
        caps = line.capabilities
        if caps is None or self.forwarding is None:
            return caps
        try:
            adjusted: LineCapabilities = self.forwarding.capabilities_for(line, caps)
        except Exception:
            log.exception("%s: what the line can do is unknown; using its defaults", line.name)
            return caps
        return adjusted

    def clock_ok(self) -> bool:
        """False while the machine config requires a synchronised clock and it is not yet."""
        check = getattr(self.timesync, "clock_ok", None)
        if not callable(check):
            return True
        try:
            return bool(check())
        except Exception:
            log.exception("clock check failed; treating the clock as not set")
            return False

    def plan_for(self, event: IncomingCall, line: Line) -> Plan | None:
        caps = self.capabilities(line)
        if caps is None:
            return None
        call = Call(number=event.number or "", name=event.name or "", validity=_validity(event))
        vip, blocked = contact_flags(self.contacts)  # as the preview does
        settings = self._settings()
        trusted = self.clock_ok()
        if not trusted:
            closed = Override(state="closed", until="switched_back", note="clock not set")
            settings = settings.replace("override", closed)
        routes = self._routers.get(settings)
        plan = routes.decide(call, self._clock(), caps, vip=vip, blocked=blocked)
        if not trusted:
            plan = dataclasses.replace(plan, explanation=f"{CLOCK_NOT_SET} {plan.explanation}")
        return plan

    def on_first_ring(self, event: CallRinging) -> None:
        """On the line's thread: a new call's first ring is noted before its caller ID, so a
        stop before the call is decided still leaves it a record (`CallRunner.first_ring`)."""
        if self.runner is not None:
            self.runner.first_ring(event.line, event.call_id, since_up=event.since_up)

    def on_incoming(self, event: IncomingCall) -> None:
        """On the line's thread: decide, then queue the answer or the rejection."""
        line = self._lines(event.line)
        plan = None if line is None else self.plan_for(event, line)
        if line is None or plan is None:
            log.warning(
                "%s: call %s: no plan (the line is not known or not up)", event.line, event.call_id
            )
            if self.runner is not None:
                self.runner.undecided(event.line, event.call_id, "no plan for the line")
            return
        first = plan.steps[0] if plan.steps else None
        # A Reject "message" (analog, calls.blocked_message) is answered: its session plays
        # "not_accepted" and hangs up; any other Reject is refused before the answer.
        reject = isinstance(first, Reject) and first.how != "message"
        decision = Decision(
            line=event.line,
            call_id=event.call_id,
            at=self._clock(),
            action="reject" if reject else "answer",
            rule=plan.rule,
            steps=tuple(plan.kinds()),
            explanation=plan.explanation,
        )
        with self._lock:
            self._recent.append(decision)
        log.info("%s: call %s: %s (%s)", event.line, event.call_id, decision.action, plan.rule)
        log.debug("%s: %s", event.line, plan.explanation)
        runner = self.runner
        if runner is not None:
            runner.ringing(event.line, event, plan)
        if reject:
            line.reject()
            if runner is not None:
                runner.rejected(event.line, event)
            return
        if self._to_fax(line, event, plan):
            return
        rings = self._settings().lines.rings_before_answer
        at_ring = answer_ring(plan, rings)
        if at_ring is None:  # left ringing: the network forwards it
            with self._lock:
                self._unanswered[(event.line, event.call_id)] = event
            self._watch_network(line, event, plan)
            return
        answer = line.answer(at_ring=at_ring)
        answer.add_done_callback(lambda fut: self._answered(fut, line, event, plan))

    def fax_service(self) -> Any:
        """Who answers fax calls: `fax`, else the call runner's `services.fax` (attached after
        this service is built)."""
        if self.fax is not None:
            return self.fax
        services = getattr(self.runner, "services", None)
        return getattr(services, "fax", None)

    def _to_fax(self, line: Line, event: IncomingCall, plan: Plan) -> bool:
        """A fax-only line, or a plan that starts with FaxReceive: the fax service answers as
        a fax machine and records the fax (channel "fax"); no call session runs. True when
        the fax service took the call."""
        first = plan.steps[0] if plan.steps else None
        fax_only = event.line in self._settings().lines.fax_only
        if not (fax_only or isinstance(first, FaxReceive)):
            return False
        fax = self.fax_service()
        answer = getattr(fax, "answer", None)
        if not callable(answer):
            log.warning(
                "%s: call %s is for the fax, but no fax service runs", line.name, event.call_id
            )
            return False
        if self.runner is not None:
            self.runner.to_fax(event.line, event)
        try:
            answer(line, event)
        except Exception:
            log.exception("%s: the fax service could not answer call %s", line.name, event.call_id)
            line.hangup()
        return True

    def _watch_network(self, line: Line, event: IncomingCall, plan: Plan) -> None:
        """A call left for the network to forward on no reply: if it still rings
        `network_grace` s after the no-reply time, the network did not forward it and
        Frontdesk answers (the plan's next steps: greeting, voicemail)."""
        first = plan.steps[0] if plan.steps else None
        if not isinstance(first, ForwardTo) or first.method != "network":
            return
        key = (event.line, event.call_id)
        timer = threading.Timer(
            first.seconds + self.network_grace, self._network_late, args=(line, event, plan)
        )
        timer.daemon = True
        timer.name = f"network-forward-{event.line}"
        with self._lock:
            self._late[key] = timer
        timer.start()

    def _network_late(self, line: Line, event: IncomingCall, plan: Plan) -> None:
        key = (event.line, event.call_id)
        with self._lock:
            self._late.pop(key, None)
            call = self._unanswered.pop(key, None)
        if call is None:
            return  # it stopped ringing: forwarded, or the caller gave up
        log.warning(
            "%s: call %s still rings after the network's no-reply time: not forwarded by the "
            "network; Frontdesk answers it",
            event.line,
            event.call_id,
        )
        answer = line.answer()
        answer.add_done_callback(lambda fut: self._answered(fut, line, event, plan))

    def _on_hung_up(self, event: CallerHungUp) -> None:
        with self._lock:
            timer = self._late.pop((event.line, event.call_id), None)
            call = self._unanswered.pop((event.line, event.call_id), None)
        if timer is not None:
            timer.cancel()
        if self.runner is not None:
            self.runner.undecided(event.line, event.call_id, event.reason)
        if call is not None and self.runner is not None:
            self.runner.not_answered(event.line, call, event.reason)

    def _answered(self, fut: Future[Any], line: Line, event: IncomingCall, plan: Plan) -> None:
        if fut.cancelled():
            self._not_answered(event, "the answer was cancelled")
            return
        exc = fut.exception()
        if exc is not None:
            log.info("%s: call %s not answered: %s", event.line, event.call_id, exc)
            self._not_answered(event, _words(exc))
            return
        result = fut.result()
        if not isinstance(result, Response):
            words = getattr(result, "result", "no answer")
            log.info("%s: call %s: the modem did not answer (%s)", event.line, event.call_id, words)
            self._not_answered(event, f"the modem did not answer ({words})")
            line.hangup()
            return
        try:
            self.session(line, event, plan)
        except Exception:
            log.exception("%s: call session failed", event.line)
            line.hangup()

    def _not_answered(self, event: IncomingCall, reason: str) -> None:
        if self.runner is not None:
            self.runner.not_answered(event.line, event, reason)


def _words(exc: BaseException) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text or type(exc).__name__


def _validity(event: IncomingCall) -> Any:
    return event.validity if event.validity in ("ok", "withheld", "unavailable") else "unavailable"
