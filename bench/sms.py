"""SMS figures: PDU decode and encode per second (target >= 20,000/s each on a 2-core x86),
one-part and three-part texts, and the start-up intake of 100 PDUs stored on a simulated
SIM800 (90 texts, ten of them in two parts): from the line coming up until the last text's
history record is written and the SIM is empty (sweep, store, delete, reassemble, record).

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
    choose_encoding,
    decode_pdu,
    encode_deliver,
)
from firmware_app.services.history import HistoryService, InteractionRecorded
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
    long_text = "Your order 4711 is ready: " + "Grüße, bis morgen! " * 20  # ü, ß are GSM-7
    parts = [p.hex for p in build_submit_pdus("+447700900123", long_text, reference=7)]
    alphabet = "GSM-7" if choose_encoding(long_text) == "gsm7" else "UCS-2"
    n_long = 3_000
    encode_long = rate(
        lambda i: build_submit_pdus("+447700900123", long_text, reference=i & 0xFF), n_long
    )
    decode_parts = rate(lambda i: decode_pdu(parts[i % len(parts)]), n)
    print(f"PDU decode: {decode:,.0f}/s (mixed GSM-7 / UCS-2 / escapes, {n:,} PDUs)")
    print(f"PDU encode: {encode:,.0f}/s (one-part texts through build_submit_pdus)")
    print(
        f"PDU decode of parts: {decode_parts:,.0f}/s (parts of a {len(parts)}-part {alphabet} text)"
    )
    print(
        f"Long text encode: {encode_long:,.0f} texts/s = {encode_long * len(parts):,.0f} PDUs/s "
        f"({len(parts)} parts each)"
    )
    print(f"FIGURE\tSMS PDU decode\t{decode:.0f}\t/s\t20000\t>=")
    print(f"FIGURE\tSMS PDU encode\t{encode:.0f}\t/s\t20000\t>=")
    print(f"FIGURE\tSMS PDU decode (parts)\t{decode_parts:.0f}\t/s\t20000\t>=")
    print(f"FIGURE\tSMS PDU encode (parts)\t{encode_long * len(parts):.0f}\t/s\t20000\t>=")


def intake(count: int = 100) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        modem = create("sim800", folder / "dev")
        for engine_memory in ("SM",):
            modem.engine.memories[engine_memory].capacity = count + 10
        texts = 0
        for i in range(count):
            if i % 10 in (8, 9):  # every tenth text in two parts, stored side by side
                concat = Concat(reference=i // 10, total=2, seq=i % 10 - 7)
                text = f"Message {i // 10}, half {i % 10 - 7} " + "x" * 130
                sender = f"+4477008{i // 10:05d}"
            else:
                concat = None
                text = f"Message {i}: " + TEXTS[i % 3]
                sender = f"+4477009{i:05d}"
            texts += concat is None or concat.seq == 1
            pdu = encode_deliver(sender=sender, payload=text, timestamp=T0, concat=concat)
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
        recorded = 0
        all_recorded = threading.Event()
        last: list[float] = []

        def on_record(event: InteractionRecorded) -> None:
            nonlocal recorded
            if event.interaction.channel == "sms":
                recorded += 1
                if recorded == texts:
                    last.append(time.perf_counter())  # the clock stops at the last record
                    all_recorded.set()

        bus.subscribe(InteractionRecorded, on_record)
        sms.subscribe()
        sms.worker.start()
        line.start()
        up.wait(10)
        start = time.perf_counter()
        done = all_recorded.wait(60)
        emptied = not modem.messages()
        took = (last[0] if last else time.perf_counter()) - start
        print(
            f"Start-up intake: {count} PDUs on the SIM ({texts} texts) read (AT+CMGL=4), "
            f"stored, deleted and recorded in {took:.2f} s ({took / texts * 1000:.1f} ms a text)"
            + ("" if done and emptied else f"; NOT FINISHED: {recorded} recorded, {emptied=}")
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
