"""AT engine parsing throughput: a realistic mix of URCs and command responses.

Each cycle: a block of URCs with no command in flight (a call with caller ID that ends with
NO CARRIER, a new SMS, signal, registration, a status report), then three commands whose
responses have URCs arriving in the middle of them (+CMTI, ^RSSI, RING). Before timing,
one cycle is checked event by event: a `Response` per command with exactly its own lines,
every URC named, no `PeerError`. Lines are counted from the byte stream, not assumed.
Rates are per second of this process's CPU time (the wall-clock rate is printed beside it:
on a shared machine it also counts the time other processes held the cores).
Run: .venv/bin/python bench/at_parse.py   (target: at least 50,000 lines/s)
"""

from __future__ import annotations

import re
import time

from firmware_app.protocol.at import NEED_DATA, URC, ATEngine, Command, Event, Response

# Sent with nothing in flight: NO CARRIER here is the call ending (a URC).
IDLE_URCS = (
    b"\r\nRING\r\n"
    b"\r\nDATE = 0117\r\nTIME = 1452\r\nNMBR = 5551234\r\nNAME = JOHN DOE\r\n"
    b"\r\nRING\r\n"
    b'\r\n+CLIP: "+420123456789",145,,,,0\r\n'
    b"\r\nNO CARRIER\r\n"
    b'\r\n+CMTI: "SM",3\r\n'
    b"\r\n^RSSI:17\r\n"
    b'\r\n+CREG: 1,"00C3","0000A1B2",7\r\n'
    b"\r\n+CDS: 25\r\n07911326040000F006D70B911326880736F4111011719551401110117195714000\r\n"
)
IDLE_NAMES = (
    "RING", "DATE", "TIME", "NMBR", "NAME", "RING", "+CLIP", "NO CARRIER", "+CMTI", "^RSSI",
    "+CREG", "+CDS",
)  # fmt: skip

_CMGL_PDU = b"07911326040000F0040B911346610089F60000208062917314080CC8329BFD06"

# (command, what the modem sends, the response lines expected, the URCs inside it)
EXCHANGES: tuple[tuple[Command, bytes, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        Command("AT+CSQ", timeout=2.0),
        b"AT+CSQ\r\r\n+CSQ: 20,99\r\n^RSSI:18\r\n\r\nOK\r\n",  # echo on, a URC mid-response
        ("+CSQ: 20,99",),
        ("^RSSI",),
    ),
    (
        Command("AT+CREG?", timeout=2.0),
        b'\r\n+CREG: 2,1,"00C3","0000A1B2"\r\n+CMTI: "SM",4\r\n\r\nOK\r\n',
        ('+CREG: 2,1,"00C3","0000A1B2"',),
        ("+CMTI",),
    ),
    (
        Command("AT+CMGL=4", timeout=10.0),
        b"\r\n"
        + b"".join(b"+CMGL: %d,1,,24\r\n%s\r\n" % (i, _CMGL_PDU) for i in range(3))
        + b"\r\nRING\r\n"
        + b"".join(b"+CMGL: %d,1,,24\r\n%s\r\n" % (i, _CMGL_PDU) for i in range(3, 5))
        + b"\r\nOK\r\n",
        tuple(line for i in range(5) for line in (f"+CMGL: {i},1,,24", _CMGL_PDU.decode())),
        ("RING",),
    ),
)


def count_lines(stream: bytes) -> int:
    """Non-empty lines in a byte stream, split the way the engine splits them."""
    return sum(1 for part in re.split(rb"\r*\n|\r+", stream) if part.strip())


LINES_PER_CYCLE = count_lines(IDLE_URCS) + sum(count_lines(reply) for _, reply, _, _ in EXCHANGES)


def _drain(engine: ATEngine) -> list[Event]:
    out: list[Event] = []
    while (ev := engine.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


def _feed(engine: ATEngine, stream: bytes, chunk: int) -> None:
    for i in range(0, len(stream), chunk):
        engine.receive_data(stream[i : i + chunk])


def check(chunk: int) -> None:
    """One cycle, event by event; exits with what went wrong so no figure is printed for a
    workload the engine does not parse as intended."""
    engine = ATEngine()
    _feed(engine, IDLE_URCS, chunk)
    got = _drain(engine)
    names = tuple(ev.name for ev in got if isinstance(ev, URC))
    if names != IDLE_NAMES or len(got) != len(names):
        raise SystemExit(f"idle URCs parsed as {got}")
    for command, reply, lines, urcs in EXCHANGES:
        engine.send(command, 0.0)
        _feed(engine, reply, chunk)
        got = _drain(engine)
        responses = [ev for ev in got if isinstance(ev, Response)]
        inside = tuple(ev.name for ev in got if isinstance(ev, URC))
        if len(responses) != 1 or responses[0].lines != lines or inside != urcs:
            raise SystemExit(f"{command.text}: parsed as {got}")
        if len(got) != 1 + len(urcs):
            raise SystemExit(f"{command.text}: unexpected events {got}")


def run(seconds: float, chunk: int) -> tuple[int, float, float, int]:
    """Parse cycles for `seconds` of this process's CPU time; returns lines, CPU seconds,
    wall seconds and events. CPU time is the parser's cost: on a shared machine the wall
    clock also counts the time other processes had the cores."""
    engine = ATEngine()
    lines = events = 0
    now = 0.0
    start_cpu = time.process_time()
    start_wall = time.perf_counter()
    cpu = 0.0
    while cpu < seconds:
        _feed(engine, IDLE_URCS, chunk)
        events += len(_drain(engine))
        for command, reply, _, _ in EXCHANGES:
            engine.send(command, now)
            _feed(engine, reply, chunk)
            events += len(_drain(engine))
            now += 0.01
        lines += LINES_PER_CYCLE
        cpu = time.process_time() - start_cpu
    return lines, cpu, time.perf_counter() - start_wall, events


def main() -> None:
    print(
        f"AT engine parse throughput: {LINES_PER_CYCLE} lines a cycle (idle URCs, then "
        "+CSQ, +CREG?, +CMGL responses with URCs inside them)"
    )
    for label, chunk in (("whole reads (4 KiB)", 4096), ("64-byte reads", 64), ("1-byte reads", 1)):
        check(chunk)
        lines, cpu, wall, events = run(1.0, chunk)
        print(
            f"  {label:22s} {lines / cpu:>10,.0f} lines/s  {events / cpu:>10,.0f} events/s  "
            f"({lines:,} lines in {cpu:.2f} CPU s; {lines / wall:,.0f} lines/s by the wall "
            f"clock, {wall:.2f} s)"
        )
        print(f"FIGURE\tAT parse, {label}\t{lines / cpu:.0f}\tlines/s\t50000\t>=")
    print("  target: >= 50,000 lines/s of CPU time")


if __name__ == "__main__":
    main()
