"""The `clock_ok()` hook: always yes unless required; then the clock-sync probe decides."""

from __future__ import annotations

import pytest

from firmware_app.services.system import ClockSync
from firmware_app.timesync import TimeSync


class Probe:
    def __init__(self, *states: bool | None) -> None:
        self.states = list(states)
        self.calls = 0

    def __call__(self) -> ClockSync:
        self.calls += 1
        value = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return ClockSync(value, "kernel" if value is not None else "unknown")


def test_not_required_never_asks() -> None:
    probe = Probe(False)
    assert TimeSync(False, probe).clock_ok()
    assert probe.calls == 0


def test_required_waits_for_sync_then_stays_synced() -> None:
    now = [0.0]
    probe = Probe(False, None, True, False)
    ts = TimeSync(True, probe, recheck=5.0, monotonic=lambda: now[0])
    assert not ts.clock_ok()
    assert not ts.clock_ok()  # within the recheck interval: no new probe
    assert probe.calls == 1
    now[0] += 5
    assert not ts.clock_ok()  # "cannot tell" is not synchronised
    now[0] += 5
    assert ts.clock_ok()
    now[0] += 5
    assert ts.clock_ok()  # once synchronised it stays so
    assert probe.calls == 3


def test_a_failing_probe_means_not_ok(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> ClockSync:
        raise OSError("no adjtimex")

    assert not TimeSync(True, broken).clock_ok()
    assert "probe failed" in caplog.text


def test_wait_returns_when_synced_or_at_timeout() -> None:
    assert not TimeSync(True, Probe(False), recheck=0.01).wait(0.05)
    assert TimeSync(True, Probe(False, True), recheck=0.01).wait(2.0)
