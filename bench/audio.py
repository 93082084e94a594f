"""Audio benchmark: detector speed and voicemail hang-up -> email accepted.

1. DTMF, silence and all line detectors (LineMonitor) over 5 minutes of speech-like audio
   with key presses, fed in 20 ms frames as a call delivers them; printed as a multiple of
   real time. Target (2-core x86): DTMF and silence >= 200x real time.
2. From the end of a 30 s voicemail (the session finished) to the message accepted by a
   local aiosmtpd server: WAV stored, record written, MP3 made, email sent; median of 10.
   Target <= 2 s. Prints figures only.
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from aiosmtpd.controller import Controller

from firmware_app.calls.runner import CallRunner, _Call
from firmware_app.calls.session import CallSession, Finished
from firmware_app.calls.voice import RecordResult
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.media import tones
from firmware_app.media.dsp import DtmfDetector, LineMonitor, SilenceDetector
from firmware_app.modem.events import IncomingCall
from firmware_app.routing import Greet, Plan, Status, TakeVoicemail
from firmware_app.services import Services
from firmware_app.settings.model import Email
from firmware_app.store import Store

RATE = 8000
FRAME = RATE // 50


def speechlike(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.2 * np.sin(2 * np.pi * 310 * t) + 0.1 * np.sin(2 * np.pi * 1230 * t)
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t)
    return np.round(x * 32767).astype(np.int16)


def detector_speed(seconds: float = 300.0) -> None:
    audio = speechlike(seconds)
    keys = tones.dtmf("0123456789*#", on_ms=80, off_ms=80)
    for k in range(0, audio.size - keys.size, RATE * 20):
        audio[k : k + keys.size] = keys
    frames = [audio[i : i + FRAME] for i in range(0, audio.size, FRAME)]
    for name, make in (
        ("DTMF", DtmfDetector),
        ("silence", SilenceDetector),
        ("all (LineMonitor)", LineMonitor),
    ):
        det: Any = make()
        start = time.perf_counter()
        for f in frames:
            det.feed(f)
        took = time.perf_counter() - start
        print(
            f"{name:<20} {seconds / took:8.0f}x real time "
            f"({took * 1000:.0f} ms for {seconds:.0f} s)"
        )
        print(f"FIGURE\taudio detector: {name}\t{seconds / took:.0f}\tx real time\t-\t")


class _Inbox:
    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.at = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.at = time.perf_counter()
        self.arrived.set()
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hangup_to_email(runs: int = 10) -> None:
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        services = Services.build(MachineConfig(store=StoreConfig(data_dir=tmp)), store)
        s = services.settings.get()
        s.business.owner_email = "owner@example.com"
        s = s.replace("email", Email(smtp_host="127.0.0.1", smtp_port=port, security="none"))
        services.settings.save(s)
        services.notify.worker.start()
        runner = CallRunner(services)
        now = datetime.now(UTC)
        status = Status(
            at=now, mode="weekly", is_open=False, reason="", greeting="closed",
            next_change=None, text="Closed now",
        )  # fmt: skip
        plan = Plan(
            mode="weekly", rule="schedule", steps=(Greet(greeting="closed"), TakeVoicemail()),
            explanation="Closed now. Play the closed greeting, then take a voicemail.",
            status=status,
        )  # fmt: skip
        audio = speechlike(30.0)
        took: list[float] = []
        for k in range(runs):
            event = IncomingCall(
                line="line1", call_id=k + 1, number="+15551234567", name="", validity="ok"
            )
            session = CallSession(plan, now=0.0)
            message = RecordResult(reason="hangup", audio=audio, seconds=30.0)
            fin = Finished(
                outcome="voicemail", reason="message left", answered=True, notice="voicemail",
                message=message, box="main", duration=30.0, started=0.0, ended=40.0,
            )  # fmt: skip
            call = _Call(line="line1", event=event, plan=plan, session=session, start=now)
            inbox.arrived.clear()
            start = time.perf_counter()
            runner.finish(call, fin, "bench")
            inbox.arrived.wait(10)
            took.append(inbox.at - start)
        services.notify.stop(timeout=5)
        runner.close()
        store.close()
    controller.stop()
    print(
        f"voicemail hang-up -> email accepted: median {statistics.median(took) * 1000:.0f} ms, "
        f"max {max(took) * 1000:.0f} ms over {runs} (30 s message, WAV + MP3)"
    )
    median_ms = statistics.median(took) * 1000
    print(f"FIGURE\tvoicemail hang-up to email accepted\t{median_ms:.0f}\tms\t-\t")


if __name__ == "__main__":
    detector_speed()
    hangup_to_email()
