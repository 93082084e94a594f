"""Email benchmark: queue -> accepted by a local aiosmtpd server, and draining a full outbox.

1. Latency: one missed-call email at a time, from `Notifier.missed_call` returning (the
   record is fsync'd) to the server's DATA handler holding it; median and p95 of 50.
2. Drain: 1,000 messages queued while the delivery thread is stopped, then the thread is
   started; time until the server has all of them (one SMTP connection per round).
Targets (2-core x86): median latency <= 200 ms; 1,000 drained <= 30 s. Prints figures only.
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

from aiosmtpd.controller import Controller

from firmware_app.services.notify import MissedCallNotice, Notifier
from firmware_app.settings.model import Business, Email, Settings
from firmware_app.store import Store

LATENCY_RUNS = 50
DRAIN = 1000


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()
        self.arrivals: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.cond:
            self.count += 1
            self.arrivals.append(time.perf_counter())
            self.cond.notify_all()
        return "250 2.0.0 Ok"

    def wait(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= count, timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def notice(i: int) -> MissedCallNotice:
    return MissedCallNotice(
        number=f"+4420794{i % 100000:05d}",
        at=datetime.now(UTC),
        contact_name=f"Caller {i}",
        reason="after hours",
        record_id=f"2026-11:{i}",
        line="Office",
    )


def main() -> None:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    settings = Settings(
        business=Business(
            name="Rossi Plumbing",
            timezone="Europe/London",
            country="GB",
            owner_email="anna@rossi.example",
        ),
        email=Email(
            smtp_host="127.0.0.1",
            smtp_port=port,
            security="none",
            from_address="desk@rossi.example",
        ),
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "data")
            n = Notifier(store, lambda: settings, local_hostname="bench.local")
            n.start()
            latencies = []
            for i in range(LATENCY_RUNS):
                before = sink.count
                t0 = time.perf_counter()
                n.missed_call(notice(i))
                if not sink.wait(before + 1, 10):
                    print("latency: a message did not arrive within 10 s")
                    return
                latencies.append((sink.arrivals[-1] - t0) * 1000)
            n.stop()
            latencies.sort()
            p95 = latencies[int(len(latencies) * 0.95) - 1]
            print(f"queue -> accepted, {LATENCY_RUNS} messages one at a time:")
            print(
                f"  median {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms, "
                f"max {latencies[-1]:.1f} ms (target: median <= 200 ms)"
            )
            median = statistics.median(latencies)
            print(f"FIGURE\temail queue to accepted, median\t{median:.1f}\tms\t200\t<=")

            t0 = time.perf_counter()
            for i in range(DRAIN):
                n.missed_call(notice(LATENCY_RUNS + i))
            queued = time.perf_counter() - t0
            print(
                f"queueing {DRAIN} messages (each fsync'd before returning): {queued:.2f} s, "
                f"{queued / DRAIN * 1000:.2f} ms each"
            )
            start_count = sink.count
            t0 = time.perf_counter()
            n.start()
            ok = sink.wait(start_count + DRAIN, 300)
            drained = time.perf_counter() - t0
            n.stop()
            left = n.status().counts
            store.close()
            state = "all accepted" if ok else f"only {sink.count - start_count} accepted"
            print(
                f"draining {DRAIN} queued messages: {drained:.2f} s ({state}; "
                f"{DRAIN / drained:.0f} messages/s; target <= 30 s); outbox now {left}"
            )
            print(f"FIGURE\temail drain of {DRAIN} queued\t{drained:.2f}\ts\t30\t<=")
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
