"""Dashboard cards: open items, today's calls, texts and faxes, and 30-day charts as SVG.

Figures come from the incremental counters (services.stats), never from a history scan.
Charts are drawn on the server as inline SVG (no script). The opening-hours card with the
override switch and the lines card are the hours and lines features' own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask

from .registry import Card, add_card

if TYPE_CHECKING:
    from firmware_app.services import Services
    from firmware_app.services.stats import Day


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: int
    height: int
    bars: list[Bar]
    labels: list[tuple[float, str]]  # x, text under the axis
    ticks: list[tuple[float, int]]  # y, value
    total: int
    summary: str  # for screen readers


PLOT_TOP, PLOT_BOTTOM, PLOT_LEFT = 8, 22, 28
LABEL_CHAR = 6.6  # about how wide a character of an 11-unit label is


def _ticks(peak: int) -> list[int]:
    if peak <= 0:
        return [0]
    step = max(1, -(-peak // 4))
    return list(range(0, peak + step, step))


def stacked(
    title: str,
    series: list[tuple[int, int]],
    labels: list[str],
    every: int,
    width: int = 360,
    from_end: bool = False,
) -> Chart:
    """Answered (bottom) and not answered (top) per slot; every `every`th slot labelled,
    counted from the last one when `from_end` (today's bar always has its date). The
    drawing is 360 units wide, about the width it is shown at on a phone, so its 11-unit
    words stay readable there and grow with the chart on a wider screen."""
    height = 150
    plot_h = height - PLOT_TOP - PLOT_BOTTOM
    n = max(1, len(series))
    slot = (width - PLOT_LEFT - 4) / n
    ticks = _ticks(max((a + m for a, m in series), default=0))
    top = ticks[-1] or 1
    bars: list[Bar] = []
    for i, (answered, missed) in enumerate(series):
        x = PLOT_LEFT + i * slot + slot * 0.15
        w = max(1.0, slot * 0.7)
        h_a = plot_h * answered / top
        h_m = plot_h * missed / top
        base = PLOT_TOP + plot_h
        if answered:
            bars.append(
                Bar(x, base - h_a, w, h_a, "bar-answered", f"{labels[i]}: {answered} answered")
            )
        if missed:
            bars.append(
                Bar(
                    x,
                    base - h_a - h_m,
                    w,
                    h_m,
                    "bar-missed",
                    f"{labels[i]}: {missed} not answered",
                )
            )
    slots = range(n - 1, -1, -every) if from_end else range(0, n, every)
    marks = []
    for i in sorted(slots):  # centred under its bar, kept inside the drawing
        half = len(labels[i]) * LABEL_CHAR / 2
        x = min(max(PLOT_LEFT + (i + 0.5) * slot, half + 1), width - half - 1)
        marks.append((x, labels[i]))
    tick_marks = [(PLOT_TOP + plot_h - plot_h * t / top, t) for t in ticks]
    total_a = sum(a for a, _ in series)
    total_m = sum(m for _, m in series)
    return Chart(
        title,
        width,
        height,
        bars,
        marks,
        tick_marks,
        total_a + total_m,
        f"{total_a} answered and {total_m} not answered",
    )


def _answered(d: Day) -> int:
    return d.get("call:answered")


def _missed(d: Day) -> int:
    return d.get("call:missed") + d.get("call:voicemail")


def _desk(svc: Services) -> dict[str, Any]:
    today = svc.stats.day(svc.stats.today())
    return {
        "open": svc.history.open_count(),
        "answered": _answered(today),
        "missed": today.get("call:missed"),
        "voicemail": today.get("call:voicemail"),
        "blocked": today.get("call:blocked"),
        "sms_in": today.get("sms:in"),
        "sms_out": today.get("sms:out"),
        "fax_in": today.get("fax:in"),
        "fax_out": today.get("fax:out"),
    }


def _charts(svc: Services) -> dict[str, Any]:
    days = svc.stats.days(30)
    per_day = stacked(
        "Calls per day, last 30 days",
        [(_answered(d), _missed(d)) for d in days],
        [f"{d.day:%d %b}" for d in days],
        every=7,
        from_end=True,
    )
    hours = svc.stats.by_hour(days)
    per_hour = stacked(
        "Calls by hour of day, last 30 days",
        [(hours["answered"][h], hours["missed"][h] + hours["voicemail"][h]) for h in range(24)],
        [f"{h:02d}:00" for h in range(24)],
        every=3,
    )
    return {"charts": [per_day, per_hour]}


def init_app(app: Flask) -> None:
    add_card(app, Card("desk/card.html", 3, _desk))
    add_card(app, Card("desk/charts.html", 20, _charts))
