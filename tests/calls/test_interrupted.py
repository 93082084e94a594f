"""A call in progress when the daemon dies still leaves exactly one record.

Each call writes an in-progress marker when it starts; the next start turns a marker left
behind into an "interrupted" record and a missed-call email (a voicemail email when its
recording was written), once. A marker whose record was written already gives no second one.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_app.calls.events import CallFinished
from firmware_app.calls.runner import INTERRUPTED_WHY, CallRunner
from firmware_app.calls.session import CallSession
from firmware_app.calls.voice import RecordResult
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.media import codecs
from firmware_app.modem.events import IncomingCall
from firmware_app.routing import Call, LineCapabilities, decide
from firmware_app.services import Services
from firmware_app.services.calls import CallService
from firmware_app.services.history import Interaction
from firmware_app.store import Store
from tests.modem.conftest import Recorder

from .test_calls_e2e import SATURDAY_NIGHT, closed_settings

pytestmark = pytest.mark.timeout(60)

RINGING = IncomingCall(
    line="line1", call_id=7, number="5551234567", name="ROSSI ANNA", validity="ok", rings=2
)


def boot(
    data: Path, *, settings: bool = True, grace: float = 0.0, at: datetime = SATURDAY_NIGHT
) -> tuple[Services, CallRunner, Recorder]:
    """One life of the daemon's call side on `data`: services, a runner, the call service
    started (which records what a previous life left in progress). `grace`: how long a call
    ringing at the last stop may ring on into this life (0: recorded at once)."""
    store = Store(data)
    services = Services.build(MachineConfig(store=StoreConfig(data_dir=str(data))), store)
    services.clock = lambda: at
    if settings:
        services.settings.save(closed_settings(2525))  # email on; nothing is sent here
    recorder = Recorder(services.bus)
    runner = CallRunner(services)
    runner.ring_grace = grace
    calls = CallService(services.bus, services.settings.get, {}.get, services.clock, runner=runner)
    calls.subscribe()
    calls.close()
    return services, runner, recorder


def die(services: Services) -> None:
    """The process ends here: nothing is closed or flushed beyond what was acknowledged."""
    services.store.close()


def ring(services: Services, runner: CallRunner) -> CallSession:
    plan = decide(
        Call(number="+15551234567"),
        SATURDAY_NIGHT,
        services.settings.get(),
        LineCapabilities.analog(),
    )
    return runner.ringing("line1", RINGING, plan)


def calls(services: Services) -> list[Interaction]:
    return services.history.newest(50, where=lambda i: i.channel == "call")


def emails(services: Services) -> list[dict[str, Any]]:
    return [dict(d) for d in services.store.table("outbox", "messages").all()]


def test_a_call_left_in_progress_becomes_one_interrupted_record_and_one_email(
    tmp_path: Path,
) -> None:
    first, runner, _ = boot(tmp_path)
    ring(first, runner)
    assert len(first.history.calls_in_progress()) == 1
    die(first)

    second, _, recorder = boot(tmp_path, settings=False)
    (item,) = calls(second)
    assert item.outcome == "interrupted"
    assert item.start == SATURDAY_NIGHT and item.end is None and item.duration == 0.0
    assert item.number == "+15551234567" and item.name == "ROSSI ANNA" and item.line == "line1"
    assert item.text == INTERRUPTED_WHY and item.details["duration_known"] is False
    assert item.open and second.history.open_count() == 1  # the owner should know
    assert not item.media
    assert second.history.calls_in_progress() == []
    (done,) = recorder.of(CallFinished)
    assert done.record_id == item.id and done.outcome == "interrupted"
    (mail,) = emails(second)
    assert mail["kind"] == "missed_call" and mail["record_id"] == item.id
    assert "Interrupted (Frontdesk restarted)" in mail["text"]
    die(second)

    third, _, _ = boot(tmp_path, settings=False)  # and again: nothing more
    assert len(calls(third)) == 1 and len(emails(third)) == 1
    die(third)


def test_finish_removes_the_marker_and_recovery_adds_nothing(tmp_path: Path) -> None:
    services, runner, _ = boot(tmp_path)
    ring(services, runner)
    runner.not_answered("line1", RINGING, "the caller hung up before the answer")
    assert runner.wait_idle(10)
    (item,) = calls(services)
    assert item.outcome == "missed" and item.details["call_key"]
    assert services.history.calls_in_progress() == []
    assert runner.recover() == 0
    assert len(calls(services)) == 1 and len(emails(services)) == 1
    die(services)


def test_a_death_between_the_record_and_the_marker_gives_no_second_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services, runner, _ = boot(tmp_path)
    ring(services, runner)
    # The record and its email are written; the process dies before the marker goes.
    monkeypatch.setattr(services.history, "end_call", lambda marker_id: None)
    runner.not_answered("line1", RINGING, "the caller hung up before the answer")
    assert runner.wait_idle(10)
    assert len(services.history.calls_in_progress()) == 1
    monkeypatch.undo()
    die(services)

    again, _, _ = boot(tmp_path, settings=False)
    (item,) = calls(again)
    assert item.outcome == "missed"  # the record as written, not a second one
    assert again.history.calls_in_progress() == []
    assert len(emails(again)) == 1  # its email was queued: not again
    die(again)


def test_a_death_before_the_email_sends_it_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services, runner, _ = boot(tmp_path)
    ring(services, runner)
    monkeypatch.setattr(services.history, "end_call", lambda marker_id: None)
    monkeypatch.setattr(runner, "_emails", lambda item, name: None)  # died before the email
    runner.not_answered("line1", RINGING, "the caller hung up before the answer")
    assert runner.wait_idle(10)
    monkeypatch.undo()
    assert emails(services) == []
    die(services)

    again, _, _ = boot(tmp_path, settings=False)
    (item,) = calls(again)
    (mail,) = emails(again)
    assert item.outcome == "missed" and mail["record_id"] == item.id
    die(again)


def test_a_written_recording_is_kept_and_emailed_a_missing_one_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services, runner, _ = boot(tmp_path)
    session = ring(services, runner)
    call = runner._ringing[("line1", RINGING.call_id)]
    audio = (np.sin(np.arange(8000) / 3.0) * 8000).astype(np.int16)
    ref = runner._write_media(call, codecs.write_wav(audio, 8000), "wav")
    # A second name noted whose file never got written (the cut came first).
    missing = "media/2026/11/neverwrittenAAAAAA.wav"
    services.history.note_call(call.marker or 0, media=[ref, missing])
    assert services.store.media.path(ref).is_file()
    del session
    die(services)

    again, _, _ = boot(tmp_path, settings=False)
    (item,) = calls(again)
    assert item.outcome == "interrupted" and item.media == (ref,)
    assert item.duration == 1.0  # the recording's length; the call's is unknown
    (mail,) = emails(again)
    assert mail["kind"] == "voicemail" and mail["record_id"] == item.id
    assert [a["ref"].endswith(".mp3") for a in mail["attachments"]] == [True]
    die(again)


def test_a_voicemail_names_its_file_in_the_marker_before_writing_it(tmp_path: Path) -> None:
    services, runner, _ = boot(tmp_path)
    ring(services, runner)
    call = runner._ringing[("line1", RINGING.call_id)]
    noted: list[list[str]] = []
    real = services.history.note_call

    def note(marker_id: int, **fields: Any) -> None:
        ref = fields["media"][0]
        assert not services.store.media.path(ref).exists()  # named before it exists
        noted.append(fields["media"])
        real(marker_id, **fields)

    services.history.note_call = note  # type: ignore[method-assign]
    call.session.answered(0.0)
    message = RecordResult(audio=np.zeros(8000, dtype=np.int16), seconds=1.0, reason="hangup")
    fin = dataclasses.replace(
        call.session.failed(1.0, "the line failed"), outcome="voicemail", message=message
    )
    item = runner.finish(call, fin, "")
    assert noted == [list(item.media)] and services.store.media.path(item.media[0]).is_file()
    assert services.history.calls_in_progress() == []
    die(services)


def test_a_call_ringing_on_after_the_restart_keeps_its_one_record(tmp_path: Path) -> None:
    """Killed while it rang: the caller goes on ringing, the new run hears the rest of the
    rings without caller ID. The same call, one record, its first ring's time and number."""
    first, runner, _ = boot(tmp_path)
    ring(first, runner)
    die(first)

    later = SATURDAY_NIGHT + timedelta(seconds=40)
    again, runner, _ = boot(tmp_path, settings=False, grace=60.0, at=later)
    assert calls(again) == [] and len(again.history.calls_in_progress()) == 1  # waiting
    on = IncomingCall(line="line1", call_id=1, number=None, name=None, validity="unavailable")
    settings = again.settings.get()
    plan = decide(Call(number=""), later, settings, LineCapabilities.analog())
    runner.ringing("line1", on, plan)
    runner.not_answered("line1", on, "the caller hung up before the answer")
    assert runner.wait_idle(10)
    (item,) = calls(again)
    assert item.outcome == "missed" and item.start == SATURDAY_NIGHT
    assert item.number == "+15551234567" and item.name == "ROSSI ANNA"
    assert again.history.calls_in_progress() == []
    assert len(emails(again)) == 1
    runner.close()
    die(again)


def test_a_call_ringing_at_the_stop_that_does_not_ring_on_is_interrupted(
    tmp_path: Path,
) -> None:
    first, runner, _ = boot(tmp_path)
    ring(first, runner)
    die(first)

    again, runner, recorder = boot(tmp_path, settings=False, grace=0.2)
    other = IncomingCall(line="line1", call_id=1, number="5559999999", name=None, validity="ok")
    settings = again.settings.get()
    plan = decide(Call(number="+15559999999"), SATURDAY_NIGHT, settings, LineCapabilities.analog())
    runner.ringing("line1", other, plan)  # another caller: not the same call
    done = recorder.wait(CallFinished, timeout=20)
    assert done.outcome == "interrupted"
    (item,) = calls(again)
    assert item.number == "+15551234567" and item.details["answered"] is False
    assert len(again.history.calls_in_progress()) == 1  # the other caller's, still ringing
    runner.close()
    die(again)


def test_interrupted_is_a_call_outcome() -> None:
    item = Interaction(
        channel="call", direction="in", outcome="interrupted", start=datetime.now(UTC)
    )
    assert item.needs_attention
