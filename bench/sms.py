"""SMS figures: PDU decode and encode per second (target >= 20,000/s each on a 2-core x86),
and the start-up intake of 100 messages stored on a simulated SIM800 (sweep, store, delete).

Run: .venv/bin/python bench/sms.py. Prints figures; asserts nothing.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_app.events import EventBus
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line, LineOptions
from firmware_app.modem.simulator import create
from firmware_app.protocol.sms_pdu import (
    Concat,
    build_submit_pdus,
    decode_pdu,
    encode_deliver,
)
from firmware_app.services.history import HistoryService
from firmware_app.services.sms import SmsOptions, SmsService
from firmware_app.settings.model import Settings
from firmware_app.store import Store

T0 = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)
TEXTS = [
    "Hello, is the shop open on Saturday?",
    "Grüße aus Zürich 😀 bis morgen",
    "Price: €12 {incl. tax} " * 3,
]


def rate(fn: object, n: int) -> float:
    call = fn  # type: ignore[assignment]
    start = time.perf_counter()
    for i in range(n):
        call(i)  # type: ignore[operator]
    return n / (time.perf_counter() - start)


def codec() -> None:
    pdus = [
        encode_deliver(sender="+447700900123", payload=t, timestamp=T0).hex().upper() for t in TEXTS
    ]
    n = 30_000
    decode = rate(lambda i: decode_pdu(pdus[i % 3]), n)
    encode = rate(lambda i: build_submit_pdus("+447700900123", TEXTS[i % 2], reference=i & 0xFF), n)
    print(f"PDU decode: {decode:,.0f}/s (mixed GSM-7 / UCS-2 / escapes, {n:,} PDUs)")
    print(f"PDU encode: {encode:,.0f}/s (one-part texts through build_submit_pdus)")
    print(f"FIGURE\tSMS PDU decode\t{decode:.0f}\t/s\t20000\t>=")
    print(f"FIGURE\tSMS PDU encode\t{encode:.0f}\t/s\t20000\t>=")


def intake(count: int = 100) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        modem = create("sim800", folder / "dev")
        for engine_memory in ("SM",):
            modem.engine.memories[engine_memory].capacity = count + 10
        for i in range(count):
            if i % 10 == 9:  # every tenth a part of a two-part message
                concat = Concat(reference=i, total=2, seq=1)
                text = f"Message {i}, first half " + "x" * 130
            else:
                concat = None
                text = f"Message {i}: " + TEXTS[i % 3]
            pdu = encode_deliver(
                sender=f"+4477009{i:05d}", payload=text, timestamp=T0, concat=concat
            )
            modem.store_sms(pdu.hex().upper(), stat=1)
        store = Store(folder / "data")
        bus = EventBus()
        up = threading.Event()
        bus.subscribe(ev.LineUp, lambda e: up.set())
        line = Line("line1", str(modem.path), bus=bus, options=LineOptions(probe_timeout=0.5))

        class Lines:
            def lines(self) -> list[Line]:
                return [line]

        sms = SmsService(
            store, bus, Settings, HistoryService(store, bus), Lines(), options=SmsOptions(tick=1.0)
        )
        sms.subscribe()
        sms.worker.start()
        line.start()
        up.wait(10)
        start = time.perf_counter()
        while modem.messages() and time.perf_counter() - start < 60:
            time.sleep(0.005)
        took = time.perf_counter() - start
        print(
            f"Start-up intake: {count} messages on the SIM read (AT+CMGL=4), stored and deleted "
            f"in {took:.2f} s ({took / count * 1000:.1f} ms each)"
        )
        print(f"FIGURE\tSMS start-up intake of {count}\t{took:.2f}\ts\t-\t")
        line.stop()
        line.join(3)
        sms.worker.stop()
        sms.worker.join(3)
        store.close()
        modem.close()


if __name__ == "__main__":
    codec()
    intake()
