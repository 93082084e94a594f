"""DTR in the modem simulator: the host closing the port (or its process dying) is DTR off,
and with the power-on &D2 a call is hung up and the modem is back in command mode
(V.250 6.2.9; SIM800 AT Command Manual 2.2.29). Real ptys, pyserial, a child process that
is SIGKILLed with the port open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import serial

from firmware_app.modem.simulator import SimulatedModem

from .test_simulator import Factory, chat, make_modem, open_port, read_until  # noqa: F401

pytestmark = pytest.mark.timeout(30)

Opener = Callable[[Path], serial.Serial]


def wait_state(modem: SimulatedModem, state: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while modem.call_state != state:
        assert time.monotonic() < deadline, f"call state {modem.call_state}, not {state}"
        time.sleep(0.02)


def answered_voice_call(modem: SimulatedModem, port: serial.Serial) -> None:
    chat(port, "AT+FCLASS=8")
    modem.ring("+15551234567", rings=5, interval=0.3)
    read_until(port, rb"RING")
    assert b"VCON" in chat(port, "ATA", final=b"VCON")
    wait_state(modem, "active")


@pytest.mark.parametrize("name", ["usr5637", "cx93010"])
def test_closing_the_port_hangs_up_an_analog_call(
    make_modem: Factory,  # noqa: F811
    open_port: Opener,  # noqa: F811
    name: str,
) -> None:
    modem = make_modem(name)
    port = open_port(modem.path)
    answered_voice_call(modem, port)
    chat(port, "AT+VTX", final=b"CONNECT")  # in voice data mode when the host goes away
    port.close()
    wait_state(modem, "idle")
    assert not modem.voice.mode
    # The next host finds the modem in command mode, with nothing left over.
    again = open_port(modem.path)
    assert chat(again, "AT").endswith(b"\r\nOK\r\n")


def test_a_gsm_call_ends_when_the_host_process_is_killed(
    make_modem: Factory,  # noqa: F811
    open_port: Opener,  # noqa: F811
) -> None:
    modem = make_modem("sim800")
    code = (
        "import serial, sys, time\n"
        "p = serial.Serial(sys.argv[1], 115200, timeout=0.1)\n"
        "p.write(b'ATA\\r')\n"
        "time.sleep(60)\n"
    )
    modem.ring("+447700900123", rings=10, interval=0.5)
    child = subprocess.Popen([sys.executable, "-c", code, str(modem.path)])
    try:
        wait_state(modem, "active")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        wait_state(modem, "idle")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
    port = open_port(modem.path)
    assert chat(port, "AT+CLCC").endswith(b"\r\nOK\r\n")
    assert b"+CLCC:" not in chat(port, "AT+CLCC")


def test_a_ringing_call_is_left_ringing(
    make_modem: Factory,  # noqa: F811
    open_port: Opener,  # noqa: F811
) -> None:
    modem = make_modem("usr5637")
    port = open_port(modem.path)
    chat(port, "AT")
    modem.ring("+15551234567", rings=20, interval=0.3)
    read_until(port, rb"RING")
    port.close()
    time.sleep(0.3)  # gives a (wrong) hang-up the time to happen
    assert modem.call_state == "ringing"
    again = open_port(modem.path)
    read_until(again, rb"RING")


def test_amp_d0_ignores_dtr_and_amp_d1_keeps_the_call_in_command_mode(
    make_modem: Factory,  # noqa: F811
    open_port: Opener,  # noqa: F811
) -> None:
    modem = make_modem("usr5637")
    port = open_port(modem.path)
    chat(port, "AT&D0")
    answered_voice_call(modem, port)
    modem.drop_dtr()
    assert modem.call_state == "active"
    chat(port, "AT&D1")
    chat(port, "AT+VTX", final=b"CONNECT")
    modem.drop_dtr()
    assert modem.call_state == "active" and not modem.voice.mode
    assert chat(port, "AT").endswith(b"\r\nOK\r\n")  # command mode, the call still up
    chat(port, "AT&D2")
    modem.drop_dtr()
    assert modem.call_state == "idle"
    assert b"ERROR" in chat(port, "AT&D3", final=b"ERROR")


def test_drop_dtr_discards_a_half_typed_command(
    make_modem: Factory,  # noqa: F811
    open_port: Opener,  # noqa: F811
) -> None:
    modem = make_modem("sim800")
    port = open_port(modem.path)
    chat(port, "ATE0")
    port.write(b"AT+CSQ")  # no CR yet
    time.sleep(0.2)
    modem.drop_dtr()
    port.write(b"\r")
    time.sleep(0.2)
    assert not port.read(port.in_waiting or 1).strip()  # nothing answered
    assert chat(port, "AT").endswith(b"\r\nOK\r\n")


def test_no_busy_loop_while_nobody_holds_the_port(
    make_modem: Factory,  # noqa: F811
    open_port: Opener,  # noqa: F811
) -> None:
    """After the host went away the modem holds the slave again: its thread sleeps."""
    modem = make_modem("usr5637")
    port = open_port(modem.path)
    chat(port, "AT")
    port.close()
    time.sleep(0.3)
    thread = modem._thread
    assert thread is not None and thread.native_id is not None
    stat = Path(f"/proc/{os.getpid()}/task/{thread.native_id}/stat")

    def cpu_ticks() -> int:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    before = cpu_ticks()
    time.sleep(1.0)
    assert cpu_ticks() - before <= 5  # ticks of 10 ms: a spinning thread would use ~100
