"""Audio benchmark: detector speed and voicemail hang-up -> email accepted.

1. DTMF, silence and all line detectors (LineMonitor) over 5 minutes of speech-like audio
   with key presses, fed in 20 ms frames as a call delivers them; printed as a multiple of
   real time. Target (2-core x86): DTMF and silence >= 200x real time.
2. From the caller's hang-up, as the simulated modem puts it on the line, to the voicemail
   email accepted by a local aiosmtpd server, through the real call path (pty, Line,
   CallService, CallRunner): hang-up detection (the modem's DLE l; or only the exchange's
   dial tone, in real time), leaving voice mode, ATH, WAV and record written, MP3 made,
   email sent. Median of `--runs` (5) calls each; target <= 2 s, PASS or FAIL printed.

`--quick` runs each part once on short audio (to check the script works).
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

from firmware_app.calls.runner import CallRunner
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.media import tones
from firmware_app.media.dsp import DtmfDetector, LineMonitor, SilenceDetector
from firmware_app.services import Services
from firmware_app.settings.model import Email
from firmware_app.store import Store

RATE = 8000
FRAME = RATE // 50
SATURDAY_NIGHT = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


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
    """The local SMTP server's handler: when each message was accepted (DATA)."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.at: float | None = None

    def reset(self) -> None:
        self.at = None
        self.arrived.clear()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.at = time.monotonic()  # the simulator's clock (VoiceSim.hangup_sent)
        self.arrived.set()
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Tones:
    """Greetings as short tones: what the caller hears before the message does not change
    what happens after the hang-up."""

    def audio(self, key: str) -> np.ndarray:
        return tones.tone((440.0 if key != "voicemail" else 660.0,), 0.5, level_dbfs=-14.0)


def hangup_to_email(
    how: str, *, runs: int, message_seconds: float, speed: float, deadline: float = 20.0
) -> list[float | None]:
    """Calls on a simulated USR5637 (pty, the real Line, CallService, CallRunner, routing),
    after hours: greeting, voicemail prompt, beep, a message, then the caller hangs up
    (`how`: "loop_break" = the modem's DLE l; "dial_tone" = no DLE l, only the exchange's
    dial tone, which must be heard for 1.5 s of the call's audio). Measured from the moment
    the simulated line carried the hang-up (`VoiceSim.hangup_sent`) to the local aiosmtpd
    accepting the voicemail email (DATA): detection, DLE ! / DLE ETX / OK, ATH, the WAV and
    the record written, the MP3 made, the email sent. `speed` runs the call's audio faster
    than real time; use 1 where detection itself takes audio time (the dial tone). None:
    no email within `deadline` s (never a previous run's time)."""
    from firmware_app.calls.analog_voice import Pacing
    from firmware_app.calls.events import CallFinished
    from firmware_app.modem import events as ev
    from firmware_app.modem.line import Line, LineOptions
    from firmware_app.modem.simulator import VoiceCaller, create
    from firmware_app.services.calls import CallService

    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    took: list[float | None] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "data")
        services = Services.build(
            MachineConfig(store=StoreConfig(data_dir=str(store.data_dir))), store
        )
        services.clock = lambda: SATURDAY_NIGHT  # closed: greeting, then voicemail
        s = services.settings.get()
        s.business.timezone = "UTC"
        s.business.owner_email = "owner@example.com"
        s.rules.office_phone = False
        s = s.replace("email", Email(smtp_host="127.0.0.1", smtp_port=port, security="none"))
        services.settings.save(s)
        services.greetings = _Tones()  # type: ignore[assignment]
        services.notify.worker.start()
        done = threading.Event()
        services.bus.subscribe(CallFinished, lambda e: done.set())
        up = threading.Event()
        services.bus.subscribe(ev.LineUp, lambda e: up.set())
        modem = create("usr5637", Path(tmp) / "dev")
        modem.voice.speed = speed
        line = Line(
            "line1",
            str(modem.path),
            bus=services.bus,
            settings=lambda: services.settings.get().lines,
            options=LineOptions(),
        )
        line.start()
        up.wait(20)
        runner = CallRunner(services, pacing=Pacing(speed=speed))
        calls = CallService(
            services.bus,
            services.settings.get,
            {"line1": line}.get,
            lambda: services.clock(),
            runner=runner,
        )
        calls.subscribe()
        message = speechlike(message_seconds)
        try:
            for _ in range(runs):
                modem.voice.caller = (
                    VoiceCaller()
                    .say(message, at=0.2)
                    .hang_up(at=message_seconds + 0.3, after="record", how=(how,))
                )
                inbox.reset()
                done.clear()
                modem.ring("+15551234567", rings=2, interval=0.5)
                got = inbox.arrived.wait(message_seconds / speed + deadline)
                sent, at = modem.voice.hangup_sent, inbox.at
                took.append(at - sent if got and at is not None and sent is not None else None)
                done.wait(10)
                runner.wait_idle(10)
        finally:
            calls.close()
            runner.close()
            line.stop()
            line.join(3)
            line.close()
            modem.close()
            services.notify.stop(timeout=5)
            store.close()
    controller.stop()
    return took


def report_hangup(name: str, took: list[float | None], target: float = 2.0) -> None:
    good = [t for t in took if t is not None]
    missing = len(took) - len(good)
    if not good:
        print(f"{name}: no email arrived in {len(took)} runs: FAIL")
        return
    median = statistics.median(good)
    verdict = "PASS" if median <= target and not missing else "FAIL"
    extra = f", {missing} without an email" if missing else ""
    print(
        f"{name}: median {median * 1000:.0f} ms, max {max(good) * 1000:.0f} ms over "
        f"{len(good)} runs{extra} (target <= {target:.0f} s: {verdict})"
    )
    print(f"FIGURE\t{name}\t{median * 1000:.0f}\tms\t-\t")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="calls per hang-up kind (5)")
    parser.add_argument("--quick", action="store_true", help="1 run each, 5 s messages")
    args = parser.parse_args(argv)
    runs, seconds = (1, 5.0) if args.quick else (args.runs, 30.0)
    detector_speed(30.0 if args.quick else 300.0)
    took = hangup_to_email("loop_break", runs=runs, message_seconds=seconds, speed=10.0)
    report_hangup(f"voicemail hang-up (DLE l) to email accepted, {seconds:.0f} s message", took)
    took = hangup_to_email("dial_tone", runs=runs, message_seconds=min(seconds, 8.0), speed=1.0)
    report_hangup("voicemail hang-up (dial tone only) to email accepted", took)


if __name__ == "__main__":
    main()
