"""Runs calls: one thread per answered call (at most one per line) through a VoiceChannel.

Turns `CallSession` actions into greetings, beeps, recordings and key waits; at the end
writes the voicemail audio (atomically, before the record that points at it), the call's one
history record, the voicemail or missed-call email, and events. Nothing here runs on a
line's thread for long: the line's handlers only start threads or queue work (and write the
call's in-progress marker: one journal line).

Every call leaves exactly one record, even when the daemon dies mid-call: a marker is written
at the call's first ring (`first_ring`: line, call id and start; the rest once the call is
decided, in the same marker) and removed once its record is written. `recover()` (at start-up) turns
a marker a previous run left into an "interrupted" record and a missed-call email, unless the
record was already written (its `details.call_key` is the marker's key).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ..modem.events import IncomingCall
from ..routing import NotifyStaff, Plan
from ..routing.rules import e164
from ..services.history import Interaction
from ..services.notify import MissedCallNotice, VoicemailNotice
from ..store.durable import atomic_write
from ..workers import OnDemandExecutor
from . import markers
from .events import CallFinished, FaxToneDetected
from .session import (
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
    Result,
)
from .voice import Pcm, VoiceChannel

if TYPE_CHECKING:
    from ..modem.line import Line
    from .analog_voice import Pacing

log = logging.getLogger(__name__)

TEXT_BACK_EVERY = timedelta(hours=24)
INTERRUPTED = "Interrupted (Frontdesk restarted)"
# A call still ringing when the daemon died goes on ringing: the next run sees it again
# (without caller ID when it comes back after the ring that carried it). For this long after
# start-up such a call on the same line continues the old one (its marker, start, number);
# after it, a ringing call's marker left behind is recorded as interrupted.
RING_GRACE_SECONDS = 30.0
# A call rings for a minute at most before the caller or the network gives up (an analog
# line is answered after a few rings; GSM networks end unanswered calls after about a
# minute): a marker whose call began ringing longer ago than this is not one that can ring
# on into this run, however many restarts came in between.
RING_ON_MAX_SECONDS = 90.0
# A call ringing on into a new run rings again within one ring cycle (6 s in North America,
# 3 s in the UK and much of Europe) of the line coming up.
RING_ON_WINDOW_SECONDS = 6.5
INTERRUPTED_WHY = (
    "Interrupted (Frontdesk restarted): the call was in progress when Frontdesk stopped "
    "(power cut, crash or restart); how it ended and how long it lasted are not known"
)
# A marker written at the first ring that never got its caller ID (Frontdesk stopped first).
RANG_WHY = (
    "Interrupted (Frontdesk restarted): a call rang while Frontdesk restarted; its caller ID "
    "was not received, so who called and how the call ended are not known"
)

# A call Frontdesk hung up itself because it was stopping (SIGTERM: a restart, an update, a
# shutdown): recorded at the stop, with what is known, instead of "the caller hung up".
STOPPED_WHY = "Frontdesk stopped (a restart or shutdown) and hung up"

FAX_TAKEN_WHY = (
    "A fax machine (calling tone): handed to the fax service, which keeps the fax's own "
    "record; Frontdesk stopped before the end of the call was recorded"
)


class ChannelFactory(Protocol):
    def __call__(self, line: Line, call: IncomingCall) -> VoiceChannel | None: ...


class DefaultGreetings:
    """Used when no greetings service is there: short tones, so a call still works."""

    def audio(self, key: str) -> Pcm:
        import numpy as np

        from ..media import tones

        if key == "goodbye":
            return np.concatenate([tones.tone((660.0,), 0.2), tones.tone((440.0,), 0.3)])
        return np.concatenate([tones.tone((440.0,), 0.25), tones.silence(0.25)])


@dataclasses.dataclass(slots=True)
class _Call:
    line: str
    event: IncomingCall
    plan: Plan
    session: CallSession
    start: datetime  # wall clock at the first ring we know of
    thread: threading.Thread | None = None
    channel: VoiceChannel | None = None
    fax: bool = False  # handed to the fax service: the line is not ours to hang up
    key: str = ""  # names the call's record (details.call_key) for its in-progress marker
    marker: int | None = None  # the in-progress marker's id while the record is not written
    stopped: bool = False  # hung up by close(): Frontdesk is stopping, not the caller gone


@dataclasses.dataclass(frozen=True, slots=True)
class _Rang:
    """A call's marker written at its first ring, before the call was decided."""

    call_id: int
    key: str
    marker: int
    start: datetime


class CallRunner:
    """Runs sessions and records how every call ended.

    `services` is the facade (history, notify, store, settings, bus, clock; optional
    greetings, contacts, sms, forwarding, call_audio). `channel_factory` builds a call's
    audio; by default analog voice lines get an `AnalogVoiceChannel`, other lines ask
    `services.call_audio.channel(line, call)` when such a service exists.
    """

    def __init__(
        self,
        services: Any,
        *,
        channel_factory: ChannelFactory | None = None,
        pacing: Pacing | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        self.pacing = pacing  # None: real time (the channel's default)
        self.channel_factory: ChannelFactory = channel_factory or self.default_channel
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._active: dict[str, _Call] = {}
        self._ringing: dict[tuple[str, int], _Call] = {}
        self._rang: dict[str, _Rang] = {}  # line -> the marker of its call not decided yet
        self._records = OnDemandExecutor("call-records")
        self._closed = False
        self.ring_grace = RING_GRACE_SECONDS
        self.ring_on_window = RING_ON_WINDOW_SECONDS
        self._orphans: dict[str, list[dict[str, Any]]] = {}  # line -> markers still ringing
        self._grace: threading.Timer | None = None
        self.fallback_greetings = DefaultGreetings()
        self._text_back_lock = threading.Lock()

    # -- from the call service (line threads: never block) -----------------------------------

    def first_ring(self, line: str, call_id: int, since_up: float = math.inf) -> None:
        """The first ring of a new call, before its caller ID: its marker is written now (one
        journal line: line, call id, start), so a stop before the call is decided still
        leaves it a record. `ringing` fills in the same marker, or removes it when the call
        turns out to be one ringing on from before a restart (`_continue`: that call's marker
        carries on). While such a call may ring on here, a ring within `RING_ON_WINDOW_SECONDS`
        of the line coming up (`since_up`) is taken for it ringing on, and no second marker
        is written (a stop before its decision then leaves one record, not two); a later
        first ring is a new call's and has its marker, so a stop before its decision still
        leaves it a record."""
        with self._lock:
            if self._closed:
                return
            if self._orphans.get(line) and since_up < self.ring_on_window:
                return
        start = self._wall()
        key = markers.new_key()
        marker = {
            "key": key,
            "line": line,
            "call_id": call_id,
            "start": start.isoformat(),
            "number": "",
            "name": "",
            "validity": "unavailable",
            "rings": 1,
            "plan": {},
            "staff": [],
            "answered": False,
            "media": [],
            "decided": False,  # no caller ID yet
        }
        try:
            marker_id = self.services.history.begin_call(marker)
        except Exception:  # the marker written once the call is decided still covers it
            log.exception("%s: call %s: the in-progress marker failed", line, call_id)
            return
        with self._lock:
            # A line rings one new call at a time: an older entry is a call that was never
            # decided (the line went down): its marker stays and is recorded at the next start.
            self._rang[line] = _Rang(call_id=call_id, key=key, marker=marker_id, start=start)

    def undecided(self, line: str, call_id: int, reason: str) -> None:
        """A call that rang ended before it was decided (no plan for it): its first ring's
        marker goes, as no record is kept of it."""
        if self._drop_first_ring(line, call_id):
            log.info("%s: call %s ended before it was decided: %s", line, call_id, reason)

    def _drop_first_ring(self, line: str, call_id: int) -> bool:
        """Remove the marker this call's first ring wrote (if it is still there)."""
        with self._lock:
            rang = self._rang.get(line)
            if rang is None or rang.call_id != call_id:
                return False
            del self._rang[line]
        try:
            self.services.history.end_call(rang.marker)
        except Exception:
            log.exception("%s: call %s: the in-progress marker stays", line, call_id)
        return True

    def ringing(self, line: str, event: IncomingCall, plan: Plan) -> CallSession:
        """A decided call: its session starts now (before any answer)."""
        settings = self.services.settings.get()
        calls = settings.calls
        limits = Limits(
            max_message_seconds=float(calls.max_message_seconds),
            silence_seconds=float(calls.silence_seconds),
            screen_seconds=float(calls.screen_seconds),
        )
        session = CallSession(plan, now=self.monotonic(), limits=limits)
        call = _Call(line=line, event=event, plan=plan, session=session, start=self._wall())
        if self._continue(call):  # the old marker carries on: this run's first ring's goes
            self._drop_first_ring(line, event.call_id)
        elif not self._claim(call):
            self._begin(call)
        with self._lock:
            self._ringing[(line, event.call_id)] = call
        return session

    def rejected(self, line: str, event: IncomingCall) -> None:
        call = self._take(line, event)
        if call is not None:
            self._later(call, call.session.rejected(self.monotonic()), "")

    def to_fax(self, line: str, event: IncomingCall) -> None:
        """The fax service answers this ringing call and records it as a fax: no call
        session and no call record. The call's marker stays: the fax service makes it the
        fax's marker (`FaxService.answer`), so a stop in between still leaves one."""
        call = self._take(line, event)
        if call is not None:
            call.marker = None  # the fax service's now

    def not_answered(self, line: str, event: IncomingCall, reason: str) -> None:
        call = self._take(line, event)
        if call is not None:
            self._later(call, call.session.not_answered(self.monotonic(), reason), "")

    def answered(self, line: Line, call: IncomingCall, plan: Plan) -> None:
        """Start the call's session thread; a line already running one hangs up this one."""
        job = self._take(line.name, call)
        if job is None:
            job = _Call(
                line=line.name,
                event=call,
                plan=plan,
                session=CallSession(plan, now=self.monotonic()),
                start=self._wall(),
            )
            if not self._claim(job):
                self._begin(job)
        with self._lock:
            busy = line.name in self._active or self._closed
            if not busy:
                self._active[line.name] = job
        if busy:
            log.warning("%s: a call session is still running; hanging up", line.name)
            line.hangup()
            self._later(job, job.session.failed(self.monotonic(), "line busy"), "")
            return
        thread = threading.Thread(
            target=self._run, args=(line, job), name=f"call-{line.name}", daemon=True
        )
        job.thread = thread
        thread.start()

    # -- for pages and the daemon ------------------------------------------------------------

    def active(self) -> dict[str, str]:
        """Line name -> the step its call is at."""
        with self._lock:
            return {name: c.session.state for name, c in self._active.items()}

    def close(self, timeout: float = 5.0) -> None:
        """Hang up running calls, wait for their records (bounded). Markers of calls that
        were ringing at the last stop and have not been settled stay for the next start."""
        with self._lock:
            self._closed = True
            calls = list(self._active.values())
            grace, self._grace = self._grace, None
        if grace is not None:
            grace.cancel()
        for call in calls:
            call.stopped = True
            if call.channel is not None:
                call.channel.hang_up()
        deadline = self.monotonic() + timeout
        for call in calls:
            if call.thread is not None:
                call.thread.join(max(0.0, deadline - self.monotonic()))
        self._records.shutdown(wait=True)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once no session runs and every record is written (tests, shutdown)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                busy = bool(self._active)
            if not busy:
                done = self._records.submit(lambda: None)
                done.result(max(0.0, end - time.monotonic()))
                return True
            time.sleep(0.02)
        return False

    # -- the session thread ------------------------------------------------------------------

    def default_channel(self, line: Line, call: IncomingCall) -> VoiceChannel | None:
        profile = line.profile
        if profile is not None and profile.kind == "analog" and profile.voice:
            from .analog_voice import AnalogVoiceChannel  # numpy: loaded with the first call

            return AnalogVoiceChannel(
                line, bus=self.services.bus, call_id=call.call_id, pacing=self.pacing
            )
        audio = getattr(self.services, "call_audio", None)
        make = getattr(audio, "channel", None)
        if callable(make):
            channel: VoiceChannel | None = make(line, call)
            return channel
        return None

    def _run(self, line: Line, call: _Call) -> None:
        session = call.session
        fin: Finished | None = None
        description = ""
        self._note(call, answered=True)
        try:
            channel = self.channel_factory(line, call.event)
            call.channel = channel
            if channel is None:
                log.warning("%s: no call audio for this line; hanging up", line.name)
                line.hangup()
                fin = session.failed(self.monotonic(), "this line has no call audio")
            else:
                action = session.answered(self.monotonic())
                while not isinstance(action, Finished):
                    result = self._do(action, channel, line, call)
                    action = session.result(result, self.monotonic())
                fin = action
                description = channel.description
                if call.fax:  # the fax session has the line now and hangs up at its end
                    release = getattr(channel, "release", None)
                    if callable(release):
                        release()
                else:
                    channel.hang_up()
                    close = getattr(channel, "close", None)
                    if callable(close):
                        close()
        except Exception as exc:
            log.exception("%s: call session failed", line.name)
            with_channel = call.channel
            if with_channel is not None and not call.fax:
                with_channel.hang_up()
            if fin is None:
                fin = session.failed(self.monotonic(), str(exc) or type(exc).__name__)
        finally:
            with self._lock:
                self._active.pop(line.name, None)
        assert fin is not None
        if call.stopped:
            fin = _stopped(fin)
        self._later(call, fin, description)

    def _do(self, action: Any, channel: VoiceChannel, line: Line, call: _Call) -> Result:
        if isinstance(action, Play):
            return channel.play(self.greeting(action.greeting), stop_digits=action.stop_digits)
        if isinstance(action, Beep):
            from ..media import tones

            return channel.play(tones.beep(), stop_digits="")
        if isinstance(action, Record):
            return channel.record(
                action.max_seconds,
                stop_digits=action.stop_digits,
                silence_seconds=action.silence_seconds,
            )
        if isinstance(action, Collect):
            return channel.collect_digits(action.count, action.timeout, end_digit=action.end_digit)
        if isinstance(action, Forward):
            forwarding = getattr(self.services, "forwarding", None)
            put_through = getattr(forwarding, "put_through", None)
            if callable(put_through):
                result: ForwardResult = put_through(line, call.event, action.step, channel)
                return result
            return ForwardResult(taken=False, reason="this line cannot put calls through")
        if isinstance(action, FaxTone):
            log.info("%s: call %s is a fax machine", line.name, call.event.call_id)
            call.fax = self._hand_to_fax(line, call)
            self.services.bus.publish(
                FaxToneDetected(
                    line=line.name, call_id=call.event.call_id, number=call.event.number or ""
                )
            )
            return None
        raise TypeError(f"unknown action {action!r}")

    def _hand_to_fax(self, line: Line, call: _Call) -> bool:
        """Give the answered call to the fax service (`take_over`): True when it took it, so
        the line must not be hung up here."""
        fax = getattr(self.services, "fax", None)
        take_over = getattr(fax, "take_over", None)
        if not callable(take_over):
            log.info("%s: no fax service to take the call; hanging up", line.name)
            return False
        event = call.event
        try:
            thread = take_over(
                line, call_id=event.call_id, number=event.number or "", call_key=call.key
            )
        except Exception:
            log.exception("%s: the fax service could not take the call", line.name)
            return False
        if thread is None:
            return False
        # The fax has its own marker now; a stop before this call's record is written still
        # records the call as taken by the fax (outcome "fax") and the fax on its own.
        self._note(call, fax="taken over")
        return True

    def greeting(self, key: str) -> Pcm:
        source = getattr(self.services, "greetings", None)
        if source is not None:
            try:
                audio: Pcm = source.audio(key)
                return audio
            except Exception as exc:
                log.warning("greeting %s unavailable (%s); playing a tone instead", key, exc)
        return self.fallback_greetings.audio(key)

    # -- the end: media, record, emails -------------------------------------------------------

    def _take(self, line: str, event: IncomingCall) -> _Call | None:
        with self._lock:
            return self._ringing.pop((line, event.call_id), None)

    def _later(self, call: _Call, fin: Finished, description: str) -> None:
        try:
            self._records.submit(self._finish, call, fin, description)
        except RuntimeError:  # shut down: write it here rather than lose it
            self._finish(call, fin, description)

    def _wall(self) -> datetime:
        now: datetime = self.services.clock()
        return now

    def _finish(self, call: _Call, fin: Finished, description: str) -> None:
        try:
            self.finish(call, fin, description)
        except Exception:
            log.exception("%s: the record of call %s failed", call.line, call.event.call_id)

    def finish(self, call: _Call, fin: Finished, description: str) -> Interaction:
        services = self.services
        settings = services.settings.get()
        event = call.event
        start = call.start
        end = start + timedelta(seconds=max(0.0, fin.ended - fin.started))
        number = _number(event.number or "", event.validity, settings.business.country)
        contact_id, contact_name = self._contact(number)
        media: tuple[str, ...] = ()
        if fin.message is not None and fin.message.audio.size:
            from ..media import codecs

            wav = codecs.write_wav(fin.message.audio, 8000)
            media = (self._write_media(call, wav, "wav"),)  # before the record
        details = {
            "plan": _plan_details(call.plan),
            "reason": fin.reason,
            "answered": fin.answered,
            "box": fin.box,
            "staff": list(fin.staff),
            "digits": fin.digits,
            "steps": [dict(t) for t in fin.trace],
            "audio": description,
            "call_id": event.call_id,
            "rings": event.rings,
            "validity": event.validity,
            "heard": False,
            "call_key": call.key,
        }
        if fin.outcome == "fax":
            details["fax"] = "taken over" if call.fax else "not taken (no fax service)"
        if fin.recordings:
            details["recordings"] = list(fin.recordings)  # the call as put through, recorded
        item: Interaction = services.history.record(
            Interaction(
                channel="call",
                direction="in",
                outcome=fin.outcome,
                start=start,
                end=end,
                number=number,
                name=event.name or "",
                line=call.line,
                duration=fin.duration,
                contact_id=contact_id,
                text=fin.reason,
                media=media,
                details=details,
            )
        )
        log.info("%s: call %s: %s (%s)", call.line, event.call_id, fin.outcome, fin.reason)
        if fin.recordings:
            self._attach_recordings(item.id, fin.recordings)
        self._emails(item, contact_name)
        if fin.notice == "missed":
            self.text_back(number)
        self._end(call)
        services.bus.publish(
            CallFinished(
                line=call.line, call_id=event.call_id, outcome=fin.outcome, record_id=item.id
            )
        )
        return item

    def _attach_recordings(self, record_id: str, refs: tuple[str, ...]) -> None:
        """Tell the call recordings which record lists them, so their retention takes the
        references off it with the files (`CallRecordings.attach`)."""
        recordings = getattr(getattr(self.services, "forwarding", None), "recordings", None)
        attach = getattr(recordings, "attach", None)
        if not callable(attach):
            return
        try:
            attach(record_id, refs)
        except Exception:
            log.exception("call record %s: its recordings were not noted", record_id)

    def _emails(self, item: Interaction, contact_name: str) -> None:
        """The voicemail or missed-call email for a call's record; never raises (logged)."""
        notify = self.services.notify
        box = str(item.details.get("box", "") or "")
        box = "" if box in ("", "main") else box
        staff = tuple(str(s) for s in item.details.get("staff", ()) or ())
        who = contact_name or item.name
        try:
            if item.outcome == "voicemail" or (item.outcome == "interrupted" and item.media):
                notify.voicemail(
                    VoicemailNotice(
                        number=item.number,
                        at=item.start,
                        duration_s=item.duration,
                        contact_name=who,
                        audio_ref=item.media[0] if item.media else "",
                        record_id=item.id,
                        line=item.line,
                        box=box,
                        staff=staff,
                    )
                )
            elif item.outcome in ("missed", "interrupted"):
                notify.missed_call(
                    MissedCallNotice(
                        number=item.number,
                        at=item.start,
                        contact_name=who,
                        reason=item.text,
                        record_id=item.id,
                        line=item.line,
                        staff=staff,
                        interrupted=item.outcome == "interrupted",
                    )
                )
        except Exception:
            log.exception("%s: the email for call record %s failed", item.line, item.id)

    # -- calls in progress: one marker each, so a call the daemon did not finish is recorded --

    def _begin(self, call: _Call) -> None:
        """Note the call durably before anything else happens to it (one journal line)."""
        call.key = markers.new_key()
        marker = {
            "key": call.key,
            "line": call.line,
            "start": call.start.isoformat(),
            **_decided(call),
            "answered": False,
            "media": [],
        }
        try:
            call.marker = self.services.history.begin_call(marker)
        except Exception:  # the call goes on; only a crash before its end would go unrecorded
            log.exception(
                "%s: call %s: the in-progress marker failed", call.line, call.event.call_id
            )

    def _claim(self, call: _Call) -> bool:
        """The call's marker written at its first ring (`first_ring`) gets what the decision
        adds (one journal line): the same marker, its start the first ring's. True when
        there was one."""
        with self._lock:
            rang = self._rang.get(call.line)
            if rang is None or rang.call_id != call.event.call_id:
                return False
            del self._rang[call.line]
        call.key, call.marker, call.start = rang.key, rang.marker, rang.start
        self._note(call, **_decided(call))
        return True

    def _note(self, call: _Call, **fields: Any) -> None:
        if call.marker is None:
            return
        try:
            self.services.history.note_call(call.marker, **fields)
        except Exception:
            log.exception("%s: call %s: the in-progress marker failed", call.line, call.key)

    def _end(self, call: _Call) -> None:
        marker, call.marker = call.marker, None
        if marker is None:
            return
        try:
            self.services.history.end_call(marker)
        except Exception:  # the next start finds the record by its key: still one record
            log.exception("%s: call %s: the in-progress marker stays", call.line, call.key)

    def _write_media(self, call: _Call, data: bytes, ext: str) -> str:
        """Write a recording under a name the marker holds first: a restart keeps the file when
        it was written (the marker names it) and there is never a file nobody references."""
        ref = markers.media_ref(call.start, ext)
        path = self.services.store.media.path(ref)
        self._note(call, media=[ref])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        return ref

    def recover(self) -> int:
        """At start-up: every call a previous run left in progress gets its one record.

        A marker whose record is there (the daemon died between the record and the marker's
        removal) only gets its email if that is not queued yet. Otherwise the record is written
        now: outcome "interrupted", start and number kept, duration unknown, a recording kept
        when its file was written. A call that was still ringing may ring on into this run:
        its marker waits `ring_grace` seconds for it (`_continue`) before it is recorded as
        interrupted. Returns how many records were written now.
        """
        history = self.services.history
        try:
            found = history.calls_in_progress()
        except Exception:
            log.exception("calls in progress at the last stop could not be read")
            return 0
        written = 0
        ringing: list[dict[str, Any]] = []
        for marker in found:
            if markers.is_fax(marker):  # the fax service settles its own (and handed-over)
                continue
            key = str(marker.get("key", "") or "")
            began = markers.when(marker.get("start"))
            ringing_then = (
                not marker.get("answered")
                and bool(marker.get("line"))
                and _may_ring_on(marker, self._wall())
            )
            if self.ring_grace > 0 and ringing_then and history.find_call(key, began) is None:
                ringing.append(marker)  # it may ring on into this run
                continue
            written += self._settle(marker)
        if ringing:
            with self._lock:
                for marker in ringing:
                    self._orphans.setdefault(str(marker["line"]), []).append(marker)
                self._grace = threading.Timer(self.ring_grace, self._grace_over)
                self._grace.daemon = True
                self._grace.name = "calls-ringing-grace"
                self._grace.start()
        return written

    def _settle(self, marker: dict[str, Any]) -> int:
        try:
            return self._recover(marker)
        except Exception:  # kept: the next start tries again
            log.exception("call in progress %s: no record written yet", marker.get("key"))
            return 0

    def _grace_over(self) -> None:
        """Calls ringing at the last stop that did not ring on into this run: interrupted."""
        with self._lock:
            left = [m for waiting in self._orphans.values() for m in waiting]
            self._orphans.clear()
            self._grace = None
        for marker in left:
            self._settle(marker)

    def _continue(self, call: _Call) -> bool:
        """A call ringing on from before a restart (same line; the same number, or none
        because its caller ID went by before this run): it keeps its marker, start and
        number, so it has one record. True when `call` took over such a marker."""
        event = call.event
        over: list[dict[str, Any]] = []
        with self._lock:
            waiting = self._orphans.get(call.line)
            if not waiting:
                return False
            # Rung too long ago to be this call (the caller would have given up by now).
            old = [m for m in waiting if not _may_ring_on(m, call.start)]
            for m in old:
                waiting.remove(m)
            over.extend(old)
            waiting.sort(key=_began_at)  # the newest last
            same = [m for m in waiting if m.get("number") and m.get("number") == event.number]
            # A marker from a first ring has no number yet: a caller without caller ID may be
            # its call, and a caller whose caller ID this run heard with no ring before it
            # (the last run took the first ring; the caller ID waited in the port). An analog
            # caller heard from the first ring is a new call; GSM repeats the number with
            # every ring, so there it cannot tell.
            if not event.number:
                unknown = list(waiting)
            elif _may_be_ringing_on(event):
                unknown = [m for m in waiting if _rang(m)]
            else:
                unknown = []
            candidates = same or unknown
            found = candidates[-1] if candidates else None
            if found is None:
                # Another caller on this line: a line rings one call at a time, so the calls
                # that rang at the last stop are over. Recorded now, not at the grace's end,
                # so this line's next first ring writes its own marker again.
                over.extend(self._orphans.pop(call.line))
            else:
                waiting.remove(found)
        for marker in over:  # written by the records' thread: the line's never waits
            try:
                self._records.submit(self._settle, marker)
            except RuntimeError:  # stopping: the marker stays for the next start
                break
        if found is None:
            return False
        call.key = str(found.get("key", "") or "")
        call.marker = int(found["marker_id"])
        start = markers.when(found.get("start"))
        if start is not None:
            call.start = start
        if not event.number and found.get("number"):
            call.event = dataclasses.replace(
                event,
                number=str(found["number"]),
                name=str(found.get("name", "") or "") or event.name,
                validity=str(found.get("validity", "") or "ok"),
            )
        if _rang(found):  # decided only now: the marker gets all of it
            self._note(call, **_decided(call))
        else:
            self._note(call, call_id=event.call_id)
        log.info("%s: call %s rings on from before the restart", call.line, event.call_id)
        return True

    def _recover(self, marker: dict[str, Any]) -> int:
        history = self.services.history
        key = str(marker.get("key", "") or "")
        item = history.find_call(key, markers.when(marker.get("start")))
        fresh = item is None
        if item is None:
            item = history.record(self._interrupted(marker))
            log.warning(
                "%s: call %s from %s was in progress when Frontdesk stopped: recorded as %s",
                item.line,
                marker.get("call_id"),
                item.number or "a withheld number",
                item.id,
            )
        if item.outcome in ("voicemail", "missed", "interrupted") and not self._emailed(item.id):
            self._emails(item, self._contact(item.number)[1])
        history.end_call(int(marker["marker_id"]))
        if fresh:
            self.services.bus.publish(
                CallFinished(
                    line=item.line,
                    call_id=int(marker.get("call_id", 0) or 0),
                    outcome=item.outcome,
                    record_id=item.id,
                )
            )
        return 1 if fresh else 0

    def _interrupted(self, marker: dict[str, Any]) -> Interaction:
        settings = self.services.settings.get()
        start = markers.when(marker.get("start")) or self._wall()
        validity = str(marker.get("validity", "") or "")
        number = _number(str(marker.get("number", "") or ""), validity, settings.business.country)
        outcome, why = "interrupted", RANG_WHY if _rang(marker) else INTERRUPTED_WHY
        contact_id, _ = self._contact(number)
        media = tuple(ref for ref in marker.get("media", ()) or () if self._stored(ref))
        seconds = self._seconds(media[0]) if media else 0.0
        details = {
            "plan": marker.get("plan", {}) or {},
            "reason": why,
            "answered": bool(marker.get("answered", False)),
            "box": "",
            "staff": list(marker.get("staff", ()) or ()),
            "digits": "",
            "steps": [],
            "audio": "",
            "call_id": marker.get("call_id"),
            "rings": marker.get("rings"),
            "validity": validity,
            "heard": False,
            "call_key": str(marker.get("key", "") or ""),
            "duration_known": False,
        }
        if marker.get("fax") == "taken over":  # the fax has its own record (fax service)
            outcome, why = "fax", FAX_TAKEN_WHY
            details.update(reason=why, fax="taken over")
        return Interaction(
            channel="call",
            direction="in",
            outcome=outcome,
            start=start,
            end=None,
            number=number,
            name=str(marker.get("name", "") or ""),
            line=str(marker.get("line", "") or ""),
            duration=seconds,  # the recording's length when one was kept; else unknown (0)
            contact_id=contact_id,
            text=why,
            media=media,
            details=details,
        )

    def _stored(self, ref: Any) -> bool:
        try:
            return bool(self.services.store.media.path(ref).is_file())
        except Exception:
            return False

    def _seconds(self, ref: str) -> float:
        """A kept WAV recording's length (stdlib `wave`: our WAVs are plain PCM)."""
        import wave

        try:
            with wave.open(str(self.services.store.media.path(ref)), "rb") as wav:
                return round(wav.getnframes() / float(wav.getframerate() or 8000), 2)
        except Exception:
            return 0.0

    def _emailed(self, record_id: str) -> bool:
        """Whether the record's voicemail or missed-call email is in the outbox already."""
        return markers.email_queued(self.services.store, record_id, ("voicemail", "missed_call"))

    def _contact(self, number: str) -> tuple[int | None, str]:
        if not number:
            return None, ""
        contacts = getattr(self.services, "contacts", None)
        find = getattr(contacts, "lookup", None) or getattr(contacts, "by_number", None)
        if not callable(find):
            return None, ""
        try:
            contact = find(number)
        except Exception as exc:
            log.info("contact lookup failed: %s", exc)
            return None, ""
        if contact is None:
            return None, ""
        return getattr(contact, "id", None), getattr(contact, "name", "") or ""

    def _texted_recently(self, number: str, now: datetime) -> bool:
        """Whether a text-back went to `number` in the last 24 h. Kept in the store (a restart
        must not text the same caller twice), pruned to the last 24 h as it is read."""
        table = self.services.store.table("calls", "text_back")
        recent = False
        for row in table.all():
            try:
                at = datetime.fromisoformat(row["at"])
            except (KeyError, TypeError, ValueError):
                table.remove(row.doc_id)
                continue
            if now - at >= TEXT_BACK_EVERY:
                table.remove(row.doc_id)
            elif row.get("number") == number:
                recent = True
        return recent

    def text_back(self, number: str) -> bool:
        """Missed-call text-back: an SMS to `number`, at most once per number per 24 h, when
        the owner switched it on, an SMS service exists and the number can take texts (a
        mobile, or a number its plan does not tell from one: `can_take_texts`). The number
        counts as texted only once the text was queued, so a refused send is tried again at
        the next missed call. True when a text was queued."""
        if not number:
            return False
        settings = self.services.settings.get()
        if not settings.calls.text_back:
            return False
        sms = getattr(self.services, "sms", None)
        send = getattr(sms, "send", None)
        if not callable(send):
            return False
        if not can_take_texts(number):
            log.info("missed-call text-back: %s is no mobile number; not texted", number)
            return False
        name = settings.business.name or "us"
        text = f"Sorry we missed your call to {name}. Please call again or leave a message."
        now = self._wall()
        with self._text_back_lock:  # one check-send-note at a time: never twice in a day
            if self._texted_recently(number, now):
                return False
            try:
                send(number, text, auto_reply=True)  # the Texts page: "automatic answer"
            except Exception as exc:
                log.info("missed-call text-back not sent (tried again next time): %s", exc)
                return False
            self.services.store.table("calls", "text_back").insert(
                {"number": number, "at": now.isoformat()}
            )
        return True


_TEXTABLE = ("MOBILE", "FIXED_LINE_OR_MOBILE", "PAGER")


def can_take_texts(number: str) -> bool:
    """Whether an E.164 `number` can take a text, by its numbering plan (phonenumbers): a
    mobile, or a number the plan cannot tell from one (NANP: every number is "fixed line or
    mobile"). Landlines, free phone, premium and shared-cost numbers, and numbers the plan
    does not know, cannot."""
    import phonenumbers  # only when a text-back is due

    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    kind = phonenumbers.number_type(parsed)
    return any(kind == getattr(phonenumbers.PhoneNumberType, name) for name in _TEXTABLE)


def _number(raw: str, validity: str, country: str) -> str:
    """The caller's number as kept in the record: E.164 when sent, "" when withheld."""
    if raw and validity == "ok":
        return e164(raw, country) or raw
    return ""


def _stopped(fin: Finished) -> Finished:
    """How a call ended that Frontdesk hung up because it was stopping: the session took the
    hang-up for the caller's. A message left stays a voicemail; a call that ended without
    one is "interrupted" (no text-back: the caller did not give up)."""
    if fin.outcome == "voicemail":
        return dataclasses.replace(fin, reason=f"message left; then {STOPPED_WHY}")
    if fin.outcome == "missed":
        return dataclasses.replace(fin, outcome="interrupted", reason=STOPPED_WHY, notice="")
    return fin


def _may_ring_on(marker: dict[str, Any], now: datetime) -> bool:
    """Whether the call a marker was left for can still be ringing at `now`."""
    began = markers.when(marker.get("start"))
    return began is None or now - began <= timedelta(seconds=RING_ON_MAX_SECONDS)


def _began_at(marker: dict[str, Any]) -> float:
    began = markers.when(marker.get("start"))
    return began.timestamp() if began is not None else 0.0


def _may_be_ringing_on(event: IncomingCall) -> bool:
    """Could this numbered call be one whose first ring the last run took (its marker has no
    number)? Its caller ID came before any ring here, or is repeated with every ring (GSM)."""
    return event.caller_id_first or event.source == "clip"


def _rang(marker: dict[str, Any]) -> bool:
    """A marker written at a call's first ring whose call was not decided (no caller ID)."""
    return marker.get("decided") is False


def _decided(call: _Call) -> dict[str, Any]:
    """What a call's marker holds once the call is decided: caller ID, plan, staff."""
    event = call.event
    staff = [
        p.name for step in call.plan.steps if isinstance(step, NotifyStaff) for p in step.people
    ]
    return {
        "call_id": event.call_id,
        "number": event.number or "",
        "name": event.name or "",
        "validity": event.validity,
        "rings": event.rings,
        "plan": _plan_details(call.plan),
        "staff": list(dict.fromkeys(staff)),
        "decided": True,
    }


def _plan_details(plan: Plan) -> dict[str, Any]:
    return {
        "rule": plan.rule,
        "mode": plan.mode,
        "steps": plan.kinds(),
        "lines": plan.lines(),
        "explanation": plan.explanation,
    }
