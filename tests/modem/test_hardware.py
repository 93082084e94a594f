"""Real modems: run with FRONTDESK_TEST_MODEM=/dev/ttyACM0 (a path or pyserial URL).

Probes the modem, brings a line up on it and checks the init took (caller ID on for analog
modems, a SIM state for GSM). With FRONTDESK_TEST_CALL=1 it also waits up to 60 s for a
call to the line: ring it from a phone. Skipped without the variable.
"""

from __future__ import annotations

import os

import pytest

from firmware_app.events import EventBus
from firmware_app.modem import events as ev
from firmware_app.modem.detect import BlockingChat, probe
from firmware_app.modem.line import Line
from tests.modem.conftest import Recorder

DEVICE = os.environ.get("FRONTDESK_TEST_MODEM", "")
pytestmark = [
    pytest.mark.hardware,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not DEVICE, reason="set FRONTDESK_TEST_MODEM=/dev/ttyACM0 to test a modem"),
]


def test_probe_describes_the_modem() -> None:
    with BlockingChat(DEVICE) as chat:
        profile = probe(chat, DEVICE)
    assert profile is not None, f"nothing answers AT on {DEVICE}"
    print(profile.describe())
    assert profile.kind in ("analog", "gsm"), profile.describe()


def test_line_comes_up_and_takes_a_call() -> None:
    bus = EventBus()
    recorder = Recorder(bus)
    line = Line("hw", DEVICE, bus=bus)
    line.start()
    try:
        recorder.wait(ev.LineUp, timeout=30)
        status = line.status()
        print(status)
        if status.kind == "analog":
            assert status.caller_id, status.last_error
        else:
            assert status.sim, "the modem did not say what the SIM is doing"
        if os.environ.get("FRONTDESK_TEST_CALL") == "1":
            call = recorder.wait(ev.IncomingCall, timeout=60)
            print(f"call: {call.validity} {call.source}")
    finally:
        line.stop()
        line.join(3)
        line.close()
