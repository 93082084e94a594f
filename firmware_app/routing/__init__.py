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
    FaxReceive,
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
    Router,
    Screen,
    Step,
    TakeVoicemail,
    decide,
    preview,
    router,
)
from .rules import NumberList, Person, matching_entry, on_duty

__all__ = [
    "BusinessHours",
    "Call",
    "Change",
    "Day",
    "FaxReceive",
    "ForwardTo",
    "Greet",
    "HangUp",
    "LineCapabilities",
    "Menu",
    "MenuChoice",
    "Mode",
    "NotifyStaff",
    "NumberList",
    "Person",
    "Plan",
    "PlayMessage",
    "Reject",
    "RepeatMenu",
    "RingOffice",
    "Router",
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
    "router",
    "status",
    "upcoming_changes",
    "wall_to_instant",
    "when",
]
