"""Forwarding: network call forwarding on GSM lines (AT+CCFC, set then verified by a query,
re-applied when the mode, rota or settings change), putting an answered call through to
staff (`put_through`: a second line and `bridge_call`, or a hook-flash transfer), what each
line can do to put a call through, and the retention of recorded calls.

Network forwarding commands run on this service's own worker thread, never on a line's or
the bus's; `put_through` runs on the call's session thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import schedule

from ..calls.session import ForwardResult
from ..errors import StoreError
from ..events import EventBus, SettingsChanged
from ..modem import events as ev
from ..protocol.at import Command, ErrorResult, Response, split_params, unquote
from ..routing import ForwardTo, LineCapabilities, on_duty
from ..settings.routing import WEEKDAYS, parse_interval
from ..store import Store
from ..workers import OnDemandExecutor
from .routing import RoutingService
from .scheduler import Scheduler
from .settings import SettingsService

if TYPE_CHECKING:
    from ..media.codecs import Samples

log = logging.getLogger(__name__)

SECTIONS = frozenset({"business", "hours", "holidays", "override", "staff", "rules", "forwarding"})
NO_REPLY = 2  # 3GPP TS 27.007 7.11 <reason> 2: no reply
TAG = "forwarding"
DB, RECORDINGS = "recordings", "index"


@dataclasses.dataclass(frozen=True, slots=True)
class ForwardState:
    """What a GSM line's network forwarding is, as last set and read back."""

    line: str
    wanted: str  # the number it should forward to on no reply; "" = nothing
    seconds: int
    active: bool = False  # what the network said when asked
    number: str = ""
    verified: bool = False  # the query agreed with what was wanted
    error: str = ""
    at: dt.datetime | None = None

    @property
    def words(self) -> str:
        if self.error and self.wanted:
            return f"Not set: {self.error}; Frontdesk answers the calls itself"
        if self.error:
            return f"Not set: {self.error}"
        if not self.wanted:
            return "Not forwarding: Frontdesk takes every call" + (
                " (checked with the network)" if self.verified else ""
            )
        check = (
            "checked with the network"
            if self.verified
            else "the network disagrees, so Frontdesk answers the calls itself"
        )
        return (
            f"Unanswered calls go to {self.number or self.wanted} after {self.seconds} s ({check})"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class LineAbility:
    """How one line can put a call through, in words for the page."""

    line: str
    kind: str
    methods: tuple[str, ...]
    notes: tuple[str, ...]


def parse_ccfc(lines: Iterable[str]) -> tuple[bool, str, int | None]:
    """A `+CCFC: <status>,<class>[,<number>,<type>[,<subaddr>,<satype>[,<time>]]]` answer:
    (active for voice, number, time). Class 1 is voice; 7 covers voice, data and fax."""
    for line in lines:
        if not line.upper().startswith("+CCFC:"):
            continue
        params = split_params(line.split(":", 1)[1])
        try:
            status, klass = int(params[0]), int(params[1])
        except (IndexError, ValueError):
            continue
        if not klass & 1:
            continue
        number = unquote(params[2]) if len(params) > 2 else ""
        seconds = None
        if len(params) > 6 and params[6].strip().isdigit():
            seconds = int(params[6])
        return status == 1, number, seconds
    return False, "", None


class ForwardingService:
    """Keeps GSM lines' no-reply forwarding in step with the hours, override and rota."""

    def __init__(
        self,
        settings: SettingsService,
        routing: RoutingService,
        lines: Callable[[], Iterable[Any]],
        *,
        bus: EventBus | None = None,
        scheduler: Scheduler | None = None,
        command_timeout: float = 10.0,
        call_audio: Any = None,
        greetings: Any = None,
        recordings: CallRecordings | None = None,
        poll: float = 0.5,
    ) -> None:
        """`call_audio` (calls.audio.CallAudio) opens the staff call's audio, `greetings`
        gives "accept_call" and "recording_notice", `recordings` keeps recorded calls."""
        self._settings = settings
        self._routing = routing
        self._lines = lines
        self._bus = bus
        self._scheduler = scheduler
        self._timeout = command_timeout
        self.call_audio = call_audio
        self.greetings = greetings
        self.recordings = recordings
        self.poll = poll
        self._lock = threading.Lock()
        self._states: dict[str, ForwardState] = {}
        self._pool = OnDemandExecutor("forwarding")
        self._unsubscribe: list[Callable[[], None]] = []
        self.next_apply: dt.datetime | None = None

    # -- what should be ---------------------------------------------------------------------

    def target(self, now: dt.datetime | None = None) -> tuple[str, int]:
        """(number to forward to on no reply, seconds): while open the first staff member on
        duty with a mobile; while closed the first one on call (`Router.on_call`: the rota
        outside the weekly hours, with "Put callers through to staff on call when closed");
        "" when nobody is, or when not managed."""
        s = self._settings.get()
        seconds = s.forwarding.no_reply_seconds
        if not s.forwarding.network or not s.rules.forward_calls:
            return "", seconds
        now = now or self._routing.now()
        router = self._routing.router()
        status = router.hours.status(now)
        if status.is_open:
            people = router.people(on_duty(s.staff, now, router.hours.tz, is_open=True))
        else:
            people = router.on_call(now, status)
        first = next((p.mobile for p in people if p.mobile), "")
        return first, seconds

    def managed(self) -> bool:
        return self._settings.get().forwarding.network

    # -- doing it ---------------------------------------------------------------------------

    def gsm_lines(self) -> list[Any]:
        out = []
        for line in self._lines():
            status = line.status()
            if status.kind == "gsm" and status.state not in ("down", "starting"):
                out.append(line)
        return out

    def apply(self, line: Any, now: dt.datetime | None = None) -> ForwardState:
        """Set the line's no-reply forwarding (or switch it off), then read it back."""
        wanted, seconds = self.target(now)
        at = self._routing.now()
        if wanted:
            kind = 145 if wanted.startswith("+") else 129
            text = f'AT+CCFC={NO_REPLY},3,"{wanted}",{kind},1,,,{seconds}'
        else:
            text = f"AT+CCFC={NO_REPLY},0"
        result = self._chat(line, text)
        if not isinstance(result, Response):
            state = ForwardState(
                line=line.name, wanted=wanted, seconds=seconds, error=_words(result), at=at
            )
            return self._keep(state)
        active, number, got = self.query(line)
        if wanted:
            ok = active and number.lstrip("+") == wanted.lstrip("+") and got in (None, seconds)
        else:
            ok = not active
        state = ForwardState(
            line=line.name,
            wanted=wanted,
            seconds=got or seconds,
            active=active,
            number=number,
            verified=ok,
            at=at,
            error="" if ok else "the network did not take the change",
        )
        log.info("%s: network forwarding %s", line.name, "set" if ok else "NOT as wanted")
        return self._keep(state)

    def query(self, line: Any) -> tuple[bool, str, int | None]:
        result = self._chat(line, f"AT+CCFC={NO_REPLY},2")
        if not isinstance(result, Response):
            return False, "", None
        return parse_ccfc(result.lines)

    def apply_all(self, now: dt.datetime | None = None) -> list[ForwardState]:
        """Apply on every GSM line (when the owner lets Frontdesk manage forwarding)."""
        states: list[ForwardState] = []
        if self.managed():
            for line in self.gsm_lines():
                try:
                    states.append(self.apply(line, now))
                except Exception as exc:
                    log.warning("%s: forwarding not applied: %s", line.name, exc)
        self.schedule_next(now)
        return states

    def submit(self) -> Future[list[ForwardState]]:
        """`apply_all` on the service's worker thread."""
        return self._pool.submit(self.apply_all)

    def states(self) -> list[ForwardState]:
        with self._lock:
            return list(self._states.values())

    # -- when to do it again ----------------------------------------------------------------

    def next_change(self, now: dt.datetime | None = None) -> dt.datetime | None:
        """The next opening, closing or rota boundary, or (for staff on call) the start or
        end of the weekly hours on a day closed for a holiday: the target may change then."""
        now = now or self._routing.now()
        router = self._routing.router()
        times = []
        status = router.hours.status(now)
        if status.next_change is not None:
            times.append(status.next_change)
        tz = router.hours.tz
        local = now.astimezone(tz)
        s = self._settings.get()
        rows: list[tuple[list[str], list[str]]] = [(e.days, e.hours) for e in s.staff.rota]
        if s.rules.on_call_when_closed:
            rows += [([day], list(getattr(s.hours, day))) for day in WEEKDAYS]
        for days, hours in rows:
            for ahead in range(-1, 8):
                day = local.date() + dt.timedelta(days=ahead)
                if WEEKDAYS[day.weekday()] not in days:
                    continue
                midnight = dt.datetime.combine(day, dt.time(), tzinfo=tz)
                for text in hours:
                    span = parse_interval(text)
                    if span is None:
                        continue
                    for minutes in span:
                        times.append(midnight + dt.timedelta(minutes=minutes))
        future = [t for t in times if t > now]
        return min(future) if future else None

    def schedule_next(self, now: dt.datetime | None = None) -> dt.datetime | None:
        """One job at the next change (replacing the previous one)."""
        scheduler = self._scheduler
        if scheduler is None:
            return None
        scheduler.cancel(TAG)
        at = self.next_change(now) if self.managed() else None
        self.next_apply = at
        if at is None:
            return None
        seconds = max(1, int((at - scheduler.now()).total_seconds()) + 1)

        def job() -> Any:
            self.submit()
            return schedule.CancelJob

        scheduler.every(seconds).seconds.named("network forwarding").do(job).tag(TAG)
        return at

    def subscribe(self) -> None:
        if self._bus is None:
            return
        self._unsubscribe.append(self._bus.subscribe(SettingsChanged, self._on_settings))
        self._unsubscribe.append(self._bus.subscribe(ev.LineUp, self._on_line_up))

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)  # never hold up a stop
        if self._scheduler is not None:
            self._scheduler.cancel(TAG)

    def _on_settings(self, event: SettingsChanged) -> None:
        if SECTIONS & set(event.sections):
            self.submit()

    def _on_line_up(self, event: ev.LineUp) -> None:
        self.submit()

    # -- putting an answered call through (the call's session thread) -----------------------

    def capabilities_for(self, line: Any, caps: LineCapabilities) -> LineCapabilities:
        """What `line` can really do now, for the routing: GSM lines call staff only with a
        free second line that has call audio; with `forwarding.network` on they leave calls
        to the network instead, but only while the line's forwarding is set and verified for
        the number and time wanted now (`network_ready`): refused, not yet applied or not
        confirmed by the query, Frontdesk takes the call itself. Analog voice lines call
        staff on a free GSM line and join the calls with voice duplex (AT+VTR); network
        forwarding is a GSM line's own and does not change that."""
        if caps.kind == "analog":
            profile = getattr(line, "profile", None)
            voice = bool(getattr(profile, "voice", False)) and not caps.fax_only
            dial = voice and self.free_line(line) is not None
            return dataclasses.replace(caps, can_dial_out=dial)
        if caps.kind != "gsm":
            return caps
        network = self.managed() and self.network_ready(line)
        dial = not network and self.free_line(line) is not None
        return dataclasses.replace(caps, can_dial_out=dial, can_forward_network=network)

    def network_ready(self, line: Any, now: dt.datetime | None = None) -> bool:
        """True when `line`'s no-reply forwarding was set and confirmed by the network's
        answer to the query, for the number and time wanted now. Anything else (the network
        refused AT+CCFC, the query disagreed, the line has not applied the current target
        yet, nothing is to be forwarded now) and calls are not left to the network."""
        wanted, seconds = self.target(now)
        if not wanted:
            return False
        with self._lock:
            state = self._states.get(getattr(line, "name", ""))
        ready = (
            state is not None
            and state.verified
            and not state.error
            and state.wanted == wanted
            and state.seconds == seconds
        )
        if not ready:
            log.info(
                "%s: network forwarding to %s is not confirmed (%s): Frontdesk takes calls",
                getattr(line, "name", "line"),
                wanted,
                state.words if state is not None else "not applied yet",
            )
        return ready

    def free_line(self, line: Any) -> Any | None:
        """Another GSM line, idle, whose call audio is available: where staff are called."""
        audio = self.call_audio
        if audio is None:
            return None
        for other in self._lines():
            if other is line or getattr(other, "name", None) == getattr(line, "name", ""):
                continue
            status = other.status()
            if status.kind == "gsm" and status.state == "idle" and audio.can_carry(other):
                return other
        return None

    def put_through(self, line: Any, call: Any, step: ForwardTo, channel: Any) -> ForwardResult:
        """Run a plan's `ForwardTo` step for an answered call on `line` (the runner's hook).

        The caller first hears "connecting". `dial_out`: call each staff member on a free
        second (GSM) line (they press 1 when the step asks), join the calls (an analog
        caller's line in voice duplex, AT+VTR), recorded when `forwarding.record_calls` is
        on; `hook_flash`: blind transfer on a PBX line; `network`: nothing to do once
        answered.
        """
        people = [p for p in step.people if p.mobile]
        if not people:
            return ForwardResult(taken=False, reason="no staff member on duty has a mobile")
        if step.method == "network":
            return ForwardResult(
                taken=False,
                reason="the network forwards only calls Frontdesk leaves unanswered",
            )
        other = self.free_line(line) if step.method != "hook_flash" else None
        if step.method != "hook_flash" and other is None:
            return ForwardResult(taken=False, reason="no second line is free to call staff")
        greetings = self.greetings
        if greetings is None:
            from ..calls.runner import DefaultGreetings

            greetings = DefaultGreetings()
        ended = self._connecting(channel, greetings)
        if ended:
            return ForwardResult(taken=False, reason=ended)
        if step.method == "hook_flash":
            return self._transfer(line, people[0], channel)
        assert other is not None
        from ..calls.bridge import bridge_call

        recorder = None
        if self.recordings is not None and self.recordings.enabled:
            recorder = self.recordings.save
        from ..media.tones import ringback, ringback_plan

        waiting_tone = ringback(plan=ringback_plan(self._settings.get().business.country))
        tried: list[str] = []
        kept: tuple[str, ...] = ()
        for person in people:
            if channel.caller_gone:
                return ForwardResult(taken=False, reason="hangup", recordings=kept)
            try:
                result = bridge_call(
                    channel,
                    other,
                    person.mobile,
                    float(step.seconds),
                    step.confirm,
                    greetings=greetings,
                    open_channel=self._open_staff_audio,
                    recorder=recorder,
                    ringback=waiting_tone,
                    poll=self.poll,
                )
            except Exception as exc:
                log.warning("%s: calling staff failed: %s", other.name, exc)
                with contextlib.suppress(Exception):
                    other.hangup().result(15.0)
                tried.append(f"{person.name}: {exc}")
                continue
            kept += result.recordings
            log.info("%s: putting the call through: %s", line.name, result.outcome)
            if result.outcome == "bridged":
                words = f"put through to {person.name} ({result.seconds:.0f} s"
                words += f", ended by {result.ended_by})" if result.ended_by else ")"
                return ForwardResult(taken=True, reason=words, recordings=kept)
            if result.outcome == "caller_gone":
                return ForwardResult(taken=False, reason="hangup", recordings=kept)
            if result.outcome == "unsupported":
                return ForwardResult(taken=False, reason=result.detail, recordings=kept)
            tried.append(f"{person.name}: {_BRIDGE_WORDS.get(result.outcome, result.outcome)}")
        return ForwardResult(taken=False, reason="; ".join(tried), recordings=kept)

    def _connecting(self, channel: Any, greetings: Any) -> str:
        """Play "connecting" to the caller before they are put through. "" to go on, else
        why the call ends instead ("hangup", "fax", "error": the session's words)."""
        try:
            audio = greetings.audio("connecting")
        except Exception as exc:  # a greeting that cannot be had is no reason to not connect
            log.warning("the connecting greeting is unavailable: %s", exc)
            audio = None
        if audio is not None:
            played = channel.play(audio, stop_digits="")
            reason = str(getattr(played, "reason", ""))
            if reason in ("hangup", "fax", "error"):
                return reason
        return "hangup" if channel.caller_gone else ""

    def _open_staff_audio(self, line: Any) -> Any:
        channel = self.call_audio.outgoing(line) if self.call_audio is not None else None
        if channel is None:
            raise RuntimeError(f"{line.name} has no call audio for the staff call")
        return channel

    def _transfer(self, line: Any, person: Any, channel: Any = None) -> ForwardResult:
        """Hook-flash transfer to `person`'s mobile as the office's exchange dials it: the
        national form in the office's country (international prefix otherwise), after the
        PBX's outside-line prefix (`forwarding.transfer_prefix`). The number is dialled once
        the exchange's dial tone is heard on the call's `channel` (`wait_for_dial_tone`);
        without it the caller is taken back and the call goes on (voicemail)."""
        from ..calls.bridge import dial_digits, hook_flash_transfer

        s = self._settings.get()
        dial = dial_digits(person.mobile, s.business.country, s.forwarding.transfer_prefix)
        listen = getattr(channel, "wait_for_dial_tone", None)
        result = hook_flash_transfer(
            line, dial, s.forwarding.flash_ms, listen=listen if callable(listen) else None
        )
        if result.ok:
            return ForwardResult(
                taken=True,
                reason=f"transferred to {person.name} by hook flash, dialled {dial} (the "
                "exchange took it over; whether they answered is not known)",
            )
        return ForwardResult(taken=False, reason=f"hook-flash transfer failed: {result.detail}")

    # -- what each line can do (the page) ---------------------------------------------------

    def abilities(self) -> list[LineAbility]:
        lines = list(self._lines())
        out = []
        for line in lines:
            status = line.status()
            others = [x for x in lines if x is not line and x.status().state != "down"]
            methods: list[str] = []
            notes: list[str] = []
            if status.kind == "gsm":
                methods.append("network forwarding (AT+CCFC, no reply)")
                notes.append(
                    "The network forwards to one number and cannot ask staff to press 1; "
                    "it only works while Frontdesk has not answered."
                )
                notes.append(
                    "Calls are left to the network only while its forwarding is checked with "
                    "the network (see below); otherwise, or when a call still rings after the "
                    "no-reply time, Frontdesk answers it."
                )
            gsm_others = [x for x in others if x.status().kind == "gsm"]
            if status.kind == "gsm" and self.call_audio is not None:
                notes.append("Call audio: " + self.call_audio.describe(line) + ".")
            if status.kind == "gsm" and gsm_others:
                methods.append("call staff on another line and join the calls")
                notes.append("Staff press 1 to take the call, so a mobile's voicemail cannot.")
                if self.managed():
                    notes.append(
                        "While network forwarding is on, calls are left to the network "
                        "instead: Frontdesk calls staff itself only when it is off."
                    )
            elif status.kind == "gsm" and others:
                notes.append(
                    "Staff are not called on an analog line: it cannot tell when a call it "
                    "places is answered (no answer supervision), so it would not know when "
                    "to ask them to press 1."
                )
            profile = getattr(line, "profile", None)
            if status.kind == "analog" and gsm_others and getattr(profile, "voice", False):
                methods.append("call staff on a mobile (SIM) line and join the calls")
                notes.append(
                    "Staff press 1 to take the call; the modem carries both directions at "
                    "once (voice duplex, AT+VTR) without echo cancellation, so staff may hear "
                    "themselves faintly."
                )
            caps = getattr(line, "capabilities", None)
            fax_only = bool(getattr(caps, "fax_only", False))
            if status.kind == "analog" and bool(getattr(caps, "can_transfer", False)):
                methods.append("hook-flash transfer (set as on a phone system)")
                notes.append(
                    "Hook-flash transfer is not verified on hardware; the call leaves "
                    "Frontdesk once transferred."
                )
            elif status.kind == "analog" and not fax_only:
                notes.append(
                    "Hook-flash transfer only on a line set as on a phone system (PBX or "
                    "Centrex: Settings, Lines) with a voice modem."
                )
            if status.kind == "analog" and not fax_only:
                rules = self._settings.get().rules
                if rules.office_phone:
                    notes.append(
                        f"While open, the office phone on this line rings first for about "
                        f"{rules.ring_seconds} s; then Frontdesk answers."
                    )
            if fax_only:
                notes.append("Set as fax-only: every call is answered as a fax.")
            elif not methods:
                notes.append("This line cannot put calls through: callers leave a voicemail.")
            out.append(LineAbility(status.name, status.kind, tuple(methods), tuple(notes)))
        return out

    # -- helpers ----------------------------------------------------------------------------

    def _chat(self, line: Any, text: str) -> Any:
        try:
            return line.command(Command(text, timeout=self._timeout)).result(self._timeout + 2)
        except Exception as exc:
            return exc

    def _keep(self, state: ForwardState) -> ForwardState:
        with self._lock:
            self._states[state.line] = state
        return state


_BRIDGE_WORDS = {
    "declined": "did not press 1",
    "no_answer": "no answer",
    "busy": "busy",
    "failed": "the call could not be placed",
}


def _words(result: Any) -> str:
    if isinstance(result, ErrorResult):
        return f"the modem answered {result.message or result.result}"
    if isinstance(result, Exception):
        return str(result) or type(result).__name__
    return "no answer from the modem"


class CallRecordings:
    """Recordings of bridged calls: stored as WAV media, listed on their call's record
    (`details.recordings`), deleted after the retention period together with that reference.

    The index (`recordings/index`) keeps each recording's reference, when it was made and,
    once the call's record is written (`attach`), the record's id.
    """

    def __init__(
        self,
        store: Store,
        settings: SettingsService,
        clock: Callable[[], dt.datetime],
        *,
        history: Any = None,
    ) -> None:
        """`history` (services.history): the call records whose references `prune` removes."""
        self._store = store
        self._settings = settings
        self._clock = clock
        self._history = history
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._settings.get().forwarding.record_calls

    def save(self, pcm: Samples, rate: int = 8000) -> str:
        """Store a recording; returns its media reference (kept on the call record)."""
        from ..media.codecs import write_wav  # numpy, soundfile: loaded with the first call

        now = self._clock()
        ref = self._store.media.write(write_wav(pcm, rate), "wav", when=now)
        with self._lock:
            index = self._index()
            index.append({"ref": ref, "at": now.isoformat()})
            self._store.put_document(DB, RECORDINGS, {"items": index})
        return ref

    def refs(self) -> list[str]:
        with self._lock:
            return [i["ref"] for i in self._index()]

    def attach(self, record_id: str, refs: Iterable[str]) -> None:
        """Note which call record lists these recordings (the runner, once it is written)."""
        wanted = set(refs)
        if not wanted:
            return
        with self._lock:
            index = self._index()
            for item in index:
                if item.get("ref") in wanted:
                    item["record"] = record_id
            self._store.put_document(DB, RECORDINGS, {"items": index})

    def prune(self, now: dt.datetime | None = None) -> list[str]:
        """Delete recordings older than the retention period; returns their references.

        The call record stops listing a recording before its file is deleted (as a deleted
        voicemail): a cut in between leaves an orphan file, never a record pointing at
        nothing. The record keeps `recordings_deleted` (how many went) so its page can say so.
        """
        now = now or self._clock()
        days = self._settings.get().forwarding.keep_recordings_days
        keep = dt.timedelta(days=days)
        gone: list[str] = []
        with self._lock:
            kept: list[dict[str, str]] = []
            expired: list[dict[str, str]] = []
            for item in self._index():
                try:
                    at = dt.datetime.fromisoformat(item["at"])
                except (KeyError, ValueError):
                    continue
                (expired if now - at > keep else kept).append(item)
            by_record: dict[str, list[str]] = {}
            for item in expired:
                if item.get("record"):
                    by_record.setdefault(item["record"], []).append(item["ref"])
            for record_id, refs in by_record.items():
                self._forget(record_id, refs, days)
            for item in expired:
                with contextlib.suppress(StoreError):
                    self._store.media.delete(item["ref"])
                gone.append(item["ref"])
            if gone:
                self._store.put_document(DB, RECORDINGS, {"items": kept})
        if gone:
            log.info("deleted %d call recording(s) past their retention", len(gone))
        return gone

    def _forget(self, record_id: str, refs: list[str], days: int) -> None:
        """Take `refs` off their call record (kept as a count, with the retention)."""
        history = self._history
        if history is None:
            return
        try:
            item = history.get(record_id)
            if item is None:
                return
            listed = [r for r in item.details.get("recordings", ()) or () if r not in refs]
            dropped = len(item.details.get("recordings", ()) or ()) - len(listed)
            if not dropped:
                return
            details = dict(item.details)
            details["recordings"] = listed
            details["recordings_deleted"] = int(details.get("recordings_deleted", 0)) + dropped
            details["recordings_kept_days"] = days
            history.update(record_id, details=details)
        except Exception:  # the file still goes; the page shows a missing file as deleted
            log.exception("call record %s: its recordings could not be taken off", record_id)

    def add_job(self, scheduler: Scheduler) -> None:
        scheduler.every(1).hours.named("call recording retention").do(self.prune)

    def _index(self) -> list[dict[str, str]]:
        doc = self._store.get_document(DB, RECORDINGS) or {}
        items = doc.get("items", [])
        return [dict(i) for i in items if isinstance(i, dict)]


__all__ = [
    "CallRecordings",
    "ForwardState",
    "ForwardingService",
    "LineAbility",
    "parse_ccfc",
]
