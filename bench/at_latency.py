"""Call decision latency: from the last byte of a caller-ID block written into the pty to the
decision command (answer or hang-up) read back from the pty.

The path measured is the real one: the simulated modem writes into a pty master, the line's
pyserial reader thread, the AT engine, the caller-ID collector, the IncomingCall event, the
call service (routing.decide) and the line worker's write. Prints figures; asserts nothing.
Run: .venv/bin/python bench/at_latency.py [calls]   (targets: median <= 1 ms, p99 <= 5 ms)

A caller ID with no RING after it is complete `caller_id_timeout` after its last line: that
case runs with a 0.5 s timeout and fewer calls (a twentieth, at least 20), and reports what
the path adds beyond the timeout.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from firmware_app.events import EventBus
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line, LineOptions
from firmware_app.modem.simulator import CallerId, SimulatedModem, create
from firmware_app.services.calls import CallService
from firmware_app.settings import Settings

OPTIONS = LineOptions(health_interval=3600.0, idle_after=5.0)

# Analog caller ID (V.253 +VCID=1) between the 1st and 2nd ring; the RING that follows the
# block completes it, with or without a NAME line (docs/protocol.md).
WITH_NAME = (
    b"\r\nDATE = 0117\r\nTIME = 1452\r\nNMBR = 5551234567\r\nNAME = JOHN DOE\r\n\r\nRING\r\n"
)
WITHOUT_NAME = b"\r\nDATE = 0117\r\nTIME = 1452\r\nNMBR = 5551234567\r\n\r\nRING\r\n"
# The same block with no RING after it: complete `caller_id_timeout` after its last line.
NO_NEXT_RING = b"\r\nDATE = 0117\r\nTIME = 1452\r\nNMBR = 5551234567\r\n"
SHORT_TIMEOUT = 0.5  # caller_id_timeout for that case (the default, 5.5 s, would take hours)


def analog(block: bytes) -> Callable[[SimulatedModem], None]:
    """RING, then (a moment later) the caller-ID block and the 2nd RING in one write."""

    def write(modem: SimulatedModem) -> None:
        modem.send_garbage(b"\r\nRING\r\n")
        time.sleep(0.001)
        modem.send_garbage(block)

    return write


def gsm(number: str) -> Callable[[SimulatedModem], None]:
    """The simulated GSM modem rings: RING and +CLIP written at once."""

    def write(modem: SimulatedModem) -> None:
        modem.ring(CallerId(number=number), rings=1, interval=30.0)

    return write


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_case(
    personality: str,
    settings: Settings,
    write: Callable[[SimulatedModem], None],
    decision: str,
    calls: int,
    folder: Path,
) -> list[float]:
    bus = EventBus()
    modem = create(personality, folder / personality)
    line = Line("bench", str(modem.path), bus=bus, settings=lambda: settings.lines, options=OPTIONS)
    ended = threading.Event()
    up = threading.Event()
    bus.subscribe(ev.LineUp, lambda e: up.set())
    bus.subscribe(ev.CallEnded, lambda e: ended.set())
    calls_service = CallService(
        bus,
        lambda: settings,
        lambda name: line,
        lambda: datetime.now(UTC),
        session=lambda line, call, plan: line.hangup(),
    )
    calls_service.subscribe()
    line.start()
    try:
        if not up.wait(10):
            raise SystemExit(f"{personality}: the line did not come up")
        samples = []
        for _ in range(calls):
            ended.clear()
            since = len(modem.commands)
            write(modem)  # writes synchronously into the pty master
            t0 = time.perf_counter()
            modem.wait_for_command(decision, timeout=5.0, since=since)
            samples.append((time.perf_counter() - t0) * 1000)
            if not ended.wait(5):
                raise SystemExit(f"{personality}: the call did not end")
        return samples
    finally:
        line.stop()
        line.join(2)
        line.close()
        calls_service.close()
        modem.close()


def report(label: str, samples: list[float], *, beyond: float = 0.0) -> None:
    """Median, p99 and max; `beyond` (ms) is taken off first (a timer the path waits for
    on purpose), so the figures say what the path adds."""
    samples = [s - beyond for s in samples]
    print(
        f"{label:<56} n={len(samples):<5} median {statistics.median(samples):6.3f} ms  "
        f"p99 {percentile(samples, 99):6.3f} ms  max {max(samples):6.3f} ms"
    )
    print(f"FIGURE\tcall decision median: {label}\t{statistics.median(samples):.4g}\tms\t1\t<=")
    print(f"FIGURE\tcall decision p99: {label}\t{percentile(samples, 99):.4g}\tms\t5\t<=")


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    answer_now = Settings()
    answer_now = dataclasses.replace(
        answer_now,
        lines=dataclasses.replace(answer_now.lines, rings_before_answer=1),
        rules=dataclasses.replace(answer_now.rules, office_phone=False),
    )
    blocking = dataclasses.replace(
        answer_now, rules=dataclasses.replace(answer_now.rules, block=["+15550000666"])
    )
    short = dataclasses.replace(
        answer_now, lines=dataclasses.replace(answer_now.lines, caller_id_timeout=SHORT_TIMEOUT)
    )
    print(f"call decision latency over {calls} calls per case (last byte in -> command out)")
    print(
        "  analog cases write the 2nd RING right after the caller-ID block, so they measure "
        "RING -> decision;\n  on a real line it comes about 4 s after the 1st (2 s ring, 4 s "
        "pause), the caller ID in between"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        answer = r"^AT\+FCLASS=8;\+VLS=1$"
        report(
            "analog, caller ID with NAME -> answer",
            run_case("usr5637", answer_now, analog(WITH_NAME), answer, calls, folder),
        )
        report(
            "analog, caller ID without NAME -> answer",
            run_case("usr5637", answer_now, analog(WITHOUT_NAME), answer, calls, folder),
        )
        timed = max(20, calls // 20)
        report(
            f"analog, no 2nd RING -> answer, beyond the {SHORT_TIMEOUT:g} s timeout",
            run_case("usr5637", short, analog(NO_NEXT_RING), answer, timed, folder),
            beyond=SHORT_TIMEOUT * 1000,
        )
        report(
            "GSM, RING +CLIP -> answer (ATA)",
            run_case("sim800", answer_now, gsm("+15551234567"), r"^ATA$", calls, folder),
        )
        report(
            "GSM, RING +CLIP on the block list -> hang up (AT+CHUP)",
            run_case("sim800", blocking, gsm("+15550000666"), r"^AT\+CHUP$", calls, folder),
        )
    print("URC and response parsing throughput: bench/at_parse.py")


if __name__ == "__main__":
    main()
