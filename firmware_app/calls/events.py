"""Events the call sessions publish for other services (fax intake, pages, logs).

Plain frozen dataclasses on the event bus; no logic here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class FaxToneDetected(Event):
    """A fax calling tone (DLE c or 1100 Hz CNG) was heard on an answered voice call."""

    line: str
    call_id: int
    number: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFinished(Event):
    """A call ended and its history record is written (`record_id`)."""

    line: str
    call_id: int
    outcome: str
    record_id: str
