"""AT engine parsing throughput: a realistic mix of URCs and command responses.

Run: .venv/bin/python bench/at_parse.py   (target: at least 50,000 lines/s)
"""

from __future__ import annotations

import time

from firmware_app.protocol.at import NEED_DATA, ATEngine, Command

URC_BLOCK = (
    b"\r\nRING\r\n"
    b'\r\n+CLIP: "+420123456789",145,,,,0\r\n'
    b'\r\n+CMTI: "SM",3\r\n'
    b"\r\n^RSSI:17\r\n"
    b'\r\n+CREG: 1,"00C3","0000A1B2",7\r\n'
    b"\r\n+CDS: 25\r\n07911326040000F006D70B911326880736F4111011719551401110117195714000\r\n"
    b"\r\nDATE = 0117\r\nTIME = 1452\r\nNMBR = 5551234\r\nNAME = JOHN DOE\r\n"
    b"\r\nNO CARRIER\r\n"
)
URC_LINES = 13

CSQ = (Command("AT+CSQ", timeout=2.0), b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n", 3)
CREG = (
    Command("AT+CREG?", timeout=2.0),
    b'\r\n+CREG: 2,1,"00C3","0000A1B2"\r\n+CMTI: "SM",4\r\n\r\nOK\r\n',
    3,
)
CMGL = (
    Command("AT+CMGL=4", timeout=10.0),
    b"\r\n"
    + b"".join(
        b"+CMGL: %d,1,,24\r\n07911326040000F0040B911346610089F60000208062917314080CC8329BFD06\r\n"
        % i
        for i in range(5)
    )
    + b"\r\nOK\r\n",
    11,
)


def run(seconds: float, chunk: int) -> tuple[int, float, int]:
    engine = ATEngine()
    lines = events = 0
    now = 0.0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for cmd, reply, n in (CSQ, CREG, CMGL):
            engine.send(cmd, now)
            stream = URC_BLOCK + reply
            for i in range(0, len(stream), chunk):
                engine.receive_data(stream[i : i + chunk])
            while engine.next_event() is not NEED_DATA:
                events += 1
            lines += URC_LINES + n
            now += 0.01
        elapsed = time.perf_counter() - start
    return lines, elapsed, events


def main() -> None:
    print("AT engine parse throughput (URCs mixed with +CSQ, +CREG?, +CMGL responses)")
    for label, chunk in (("whole reads (4 KiB)", 4096), ("64-byte reads", 64), ("1-byte reads", 1)):
        lines, elapsed, events = run(1.0, chunk)
        print(
            f"  {label:22s} {lines / elapsed:>10,.0f} lines/s  "
            f"{events / elapsed:>10,.0f} events/s  ({lines:,} lines in {elapsed:.2f} s)"
        )
        print(f"FIGURE\tAT parse, {label}\t{lines / elapsed:.0f}\tlines/s\t50000\t>=")
    print("  target: >= 50,000 lines/s")


if __name__ == "__main__":
    main()
