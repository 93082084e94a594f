"""Call routing figures: decide() median and p99, and a minute-by-minute status sweep over a
year checking that the status always agrees with its next_change.

Run: `python bench/routing.py`. Target: decide() median <= 50 us on a 2-core x86 machine (a
Pi 4 is roughly 3-4x slower). Prints figures only; no assertions.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_app.routing import BusinessHours, Call, LineCapabilities, RouterCache
from firmware_app.settings.model import Settings
from firmware_app.settings.routing import (
    Closure,
    MenuOption,
    Override,
    RotaEntry,
    SpecialDay,
    StaffMember,
)
from firmware_app.settings.routing import Menu as MenuSettings

TZ = "Europe/London"
RUNS = 20000
TARGET_US = 50.0


def office() -> Settings:
    """A realistic office: lunch break, late Friday, holidays, a closure, staff, rota, menus."""
    s = Settings()
    s.business.timezone, s.business.country, s.business.subdivision = TZ, "GB", "ENG"
    for day in ("mon", "tue", "wed", "thu"):
        setattr(s.hours, day, ["08:30-12:30", "13:30-17:30"])
    s.hours.fri = ["08:30-12:30", "13:30-17:30", "18:00-02:00"]
    s.hours.sat = ["09:00-12:00"]
    s.hours.special = [SpecialDay(date="2026-12-24", hours=["09:00-12:00"], note="Christmas Eve")]
    s.holidays.observe = "all"
    s.holidays.closures = [
        Closure(id="summer", start="2026-08-03", end="2026-08-14", reason="Summer")
    ]
    s.staff.members = [
        StaffMember(name="Anna", mobile="07700 900001", groups=["sales"]),
        StaffMember(name="Ben", mobile="+44 7700 900002", groups=["support"]),
        StaffMember(name="Cleo", mobile="07700 900003", groups=["sales", "support"]),
    ]
    s.staff.rota = [
        RotaEntry(name="Anna", days=["mon", "tue", "wed"], hours=["08:30-17:30"]),
        RotaEntry(name="Ben", days=["thu", "fri", "sat"], hours=["08:00-20:00"]),
        RotaEntry(name="Cleo", days=["mon", "fri"], hours=["17:30-22:00"]),
    ]
    s.rules.allow = ["+44 7700 900999", "07700 900998"]
    s.rules.block = ["0870*", "+44 843*", "+44 20 7946 0666"]
    s.rules.menus = [
        MenuSettings(mode="open", options=[
            MenuOption(digit="1", action="ring_staff", target="sales"),
            MenuOption(digit="2", action="ring_staff", target="support"),
            MenuOption(digit="3", action="voicemail"),
        ]),
    ]  # fmt: skip
    return s


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_decide(s: Settings) -> None:
    tz = ZoneInfo(TZ)
    start = dt.datetime(2026, 3, 23, 0, 0, tzinfo=tz)
    times = [start + dt.timedelta(minutes=37 * i) for i in range(500)]
    repeat = [Call(number=f"+44 1632 96{i:04d}") for i in range(50)] + [
        Call(number="+447700900999"),
        Call(number="0870 123 4567"),
        Call(validity="withheld"),
    ]
    fresh = [Call(number=f"+44 1632 9{i:05d}") for i in range(RUNS)]
    line = LineCapabilities.gsm()
    routers = RouterCache()  # as the call service keeps one
    for label, calls in (("repeat callers", repeat), ("a new number every call", fresh)):
        routers.get(s).decide(calls[0], times[0], line)
        samples = []
        for i in range(RUNS):
            call, now = calls[i % len(calls)], times[i % len(times)]
            t0 = time.perf_counter()
            routers.get(s).decide(call, now, line)
            samples.append((time.perf_counter() - t0) * 1e6)
        med, p99 = statistics.median(samples), percentile(samples, 0.99)
        flag = "ok" if med <= TARGET_US else "over target"
        print(f"decide() {label:<24} median {med:6.1f} us   p99 {p99:7.1f} us   ({flag})")
        print(f"FIGURE\tdecide() median: {label.strip()}\t{med:.1f}\tus\t{TARGET_US:g}\t<=")
    t0 = time.perf_counter()
    for _ in range(200):
        BusinessHours.from_settings(s).status(times[0])
    print(
        f"status from scratch (new settings object) {(time.perf_counter() - t0) / 200 * 1e3:.2f} ms"
    )


def sweep(s: Settings, label: str, start: dt.datetime | None = None) -> None:
    """Every minute of 2026 (from `start`): the status flips exactly at next_change, never
    in between. An override is switched on at its `since`, which no earlier status can know."""
    bh = BusinessHours.from_settings(s)
    tz = ZoneInfo(TZ)
    t = (start or dt.datetime(2026, 1, 1, tzinfo=tz)).astimezone(dt.UTC)
    end = dt.datetime(2027, 1, 1, tzinfo=tz).astimezone(dt.UTC)
    minute = dt.timedelta(minutes=1)
    t0 = time.perf_counter()
    checked = disagreements = 0
    current = bh.status(t)
    while t < end:
        st = bh.status(t)
        checked += 1
        if st.is_open != current.is_open:
            # A flip must happen exactly where the previous status said it would.
            if current.next_change is None or current.next_change.astimezone(dt.UTC) > t:
                disagreements += 1
            current = st
        elif current.next_change is not None and current.next_change.astimezone(dt.UTC) <= t:
            disagreements += 1  # promised a change that did not come
            current = st
        elif st.next_change != current.next_change:
            disagreements += 1
            current = st
        t += minute
    took = time.perf_counter() - t0
    verdict = (
        "always agrees with next_change" if not disagreements else f"{disagreements} disagreements"
    )
    print(f"status sweep {label:<22} {checked} minutes in {took:5.1f} s "
          f"({took / checked * 1e6:.1f} us each): {verdict}")  # fmt: skip


def main() -> None:
    s = office()
    version = sys.version.split()[0]
    print(f"Python {version}, {RUNS} calls per figure, target median <= {TARGET_US:g} us")
    bench_decide(s)
    sweep(s, "(office hours)")
    s.override = Override(state="closed", until="time", until_time="2026-06-01 12:00",
                          since="2026-05-29T10:00:00+01:00")  # fmt: skip
    since = dt.datetime(2026, 5, 29, 10, tzinfo=dt.UTC)
    sweep(s, "(override from 29 May)", since)


if __name__ == "__main__":
    main()
