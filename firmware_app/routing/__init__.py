"""Call routing: business hours, holidays, closures, the override and call rules, as pure data.

`BusinessHours(...).status(now)` says open or closed and until when; `decide(call, now,
settings, line)` turns a call into a `Plan`. Pure: no I/O, no threads, never reads the clock.
"""

from __future__ import annotations

from .clock import wall_to_instant, when
from .hours import (
    BusinessHours,
    Change,
    Day,
    Mode,
    Status,
    holiday_names,
    public_holidays,
    status,
    upcoming_changes,
)
from .plan import (
    Call,
    ForwardTo,
    Greet,
    HangUp,
    LineCapabilities,
    Menu,
    MenuChoice,
    NotifyStaff,
    Plan,
    PlayMessage,
    Reject,
    RepeatMenu,
    RingOffice,
    Screen,
    Step,
    TakeVoicemail,
    decide,
    preview,
)
from .rules import Person, matching_entry, on_duty

__all__ = [
    "BusinessHours",
    "Call",
    "Change",
    "Day",
    "ForwardTo",
    "Greet",
    "HangUp",
    "LineCapabilities",
    "Menu",
    "MenuChoice",
    "Mode",
    "NotifyStaff",
    "Person",
    "Plan",
    "PlayMessage",
    "Reject",
    "RepeatMenu",
    "RingOffice",
    "Screen",
    "Status",
    "Step",
    "TakeVoicemail",
    "decide",
    "holiday_names",
    "matching_entry",
    "on_duty",
    "preview",
    "public_holidays",
    "status",
    "upcoming_changes",
    "wall_to_instant",
    "when",
]
