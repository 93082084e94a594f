"""The modem simulator over real ptys, read and written with pyserial like the daemon does.

Covers every personality's identity and quirks, ringing with caller ID, unplug/replug,
a hung modem, the SIM PIN flow, the SMS store, and gammu as an independent GSM client.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import serial

from firmware_app.modem.simulator import PERSONALITY_NAMES, CallerId, SimulatedModem, create

pytestmark = pytest.mark.timeout(30)

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: [^\r]*|\+CMS ERROR: [^\r]*|NO CARRIER|VCON)\r\n")

# SMS-DELIVER PDUs (with SMSC address) from well-known public examples.
# "hellohello" from 27838890001: the classic GSM 03.40 tutorial example (dreamfabric).
PDU_HELLOHELLO = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37"
# "Hello, world!" from +79642161111, 7-bit default alphabet.
PDU_HELLO_WORLD = "07919730071111F1000B919746121611F10000811170021222230DC8329BFD6681EE6F399B1C02"
# SMS-SUBMIT of "hellohello" to +46708251358 (Wikipedia "GSM 03.40" example), no SMSC.
PDU_SUBMIT = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"

Factory = Callable[..., SimulatedModem]


@pytest.fixture
def make_modem(tmp_path: Path) -> Iterator[Factory]:
    made: list[SimulatedModem] = []

    def factory(name: str, **options: object) -> SimulatedModem:
        modem = create(name, tmp_path / "dev", **options)
        made.append(modem)
        return modem

    yield factory
    for modem in made:
        modem.close()


@pytest.fixture
def open_port() -> Iterator[Callable[[Path], serial.Serial]]:
    opened: list[serial.Serial] = []

    def opener(path: Path) -> serial.Serial:
        port = serial.Serial(str(path), 115200, timeout=0.1)
        opened.append(port)
        return port

    yield opener
    for port in opened:
        port.close()


def read_until(
    port: serial.Serial, pattern: bytes | re.Pattern[bytes], timeout: float = 2.0
) -> bytes:
    """Read until `pattern` (regex) shows up in what was read; fail after `timeout`."""
    regex = re.compile(pattern, re.DOTALL) if isinstance(pattern, bytes) else pattern
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        buf += port.read(port.in_waiting or 1)
        if regex.search(buf):
            return buf
    raise AssertionError(f"{regex.pattern!r} not seen within {timeout} s; got {buf!r}")


def chat(port: serial.Serial, line: str, final: bytes | None = None) -> bytes:
    """Send one command line and return everything up to its final result code."""
    port.write(line.encode("latin-1") + b"\r")
    return read_until(port, re.compile(final) if final else FINAL)


def quiet(port: serial.Serial, wait: float = 0.3) -> bytes:
    """Whatever arrives within `wait` seconds."""
    deadline = time.monotonic() + wait
    buf = b""
    while time.monotonic() < deadline:
        buf += port.read(port.in_waiting or 1)
    return buf


# --- identity, echo, syntax -----------------------------------------------------------------

IDENTITY = {
    "usr5637": ("ATI0", b"\r\n5601\r\n"),
    "cx93010": ("ATI0", b"\r\n56000\r\n"),
    "mt9234mu": ("ATI0", b"MT9234MU"),
    "sim800": ("ATI", b"\r\nSIM800 R14.18\r\n"),
    "sim7600": ("ATI", b"Model: SIMCOM_SIM7600E-H"),
    "ec25": ("ATI", b"\r\nQuectel\r\nEC25\r\nRevision: EC25EFAR06A06M4G\r\n"),
    "e1752": ("ATI", b"Model: E1752"),
}


def test_every_personality_is_covered() -> None:
    assert set(IDENTITY) == set(PERSONALITY_NAMES)


@pytest.mark.parametrize("name", PERSONALITY_NAMES)
def test_identity_echo_and_errors(name: str, make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem(name, quirks={"urc_flood": False} if name == "e1752" else None)
    port = open_port(modem.path)
    command, expected = IDENTITY[name]
    # Real modems echo until ATE0.
    assert chat(port, "AT") == b"AT\r\r\nOK\r\n"
    reply = chat(port, command)
    assert reply.startswith(command.encode() + b"\r")
    assert expected in reply
    assert chat(port, "at") == b"at\r\r\nOK\r\n"  # lower case works
    assert chat(port, "ATE0") == b"ATE0\r\r\nOK\r\n"
    assert chat(port, "AT") == b"\r\nOK\r\n"
    assert chat(port, "AT+NOSUCHTHING") == b"\r\nERROR\r\n"
    assert chat(port, "AT*!") == b"\r\nERROR\r\n"
    gmm = chat(port, "AT+GMM")
    assert gmm.endswith(b"\r\nOK\r\n")
    assert modem.personality.model.encode() in gmm
    # ATZ turns echo back on.
    assert chat(port, "ATZ") == b"\r\nOK\r\n"
    assert chat(port, "AT") == b"AT\r\r\nOK\r\n"
    assert modem.wait_for_command(r"^ATZ$", timeout=1) == "ATZ"


def test_gsm_identity_commands(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("sim800")
    port = open_port(modem.path)
    chat(port, "ATE0")
    assert chat(port, "AT+CGMI") == b"\r\nSIMCOM_Ltd\r\n\r\nOK\r\n"
    assert chat(port, "AT+CGMM") == b"\r\nSIMCOM_SIM800\r\n\r\nOK\r\n"
    assert b"1418B04SIM800L24" in chat(port, "AT+CGMR")
    imei = re.search(rb"\r\n(\d{15})\r\n", chat(port, "AT+CGSN"))
    assert imei is not None
    digits = [int(c) for c in imei.group(1).decode()]
    luhn = sum(
        d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits)
    )
    assert luhn % 10 == 0


def test_multiple_commands_on_one_line_and_repeat(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("sim800")
    port = open_port(modem.path)
    chat(port, "ATE0")
    reply = chat(port, "AT+CREG=2;+CREG?")
    assert reply == b'\r\n+CREG: 2,1,"1A2B","D4E5"\r\n\r\nOK\r\n'
    assert chat(port, "ATE0V1S7=60") == b"\r\nOK\r\n"
    assert chat(port, "ATS7?") == b"\r\n060\r\n\r\nOK\r\n"
    # A/ repeats the last line at once, without CR.
    port.write(b"A/")
    assert read_until(port, FINAL) == b"\r\n060\r\n\r\nOK\r\n"
    assert modem.commands[-1] == "ATS7?"
    # An error stops the rest of the line.
    assert chat(port, "AT+CLIP=1;+BOGUS;+CLIP=0") == b"\r\nERROR\r\n"
    assert chat(port, "AT+CLIP?") == b"\r\n+CLIP: 1,1\r\n\r\nOK\r\n"


# --- analog specifics -----------------------------------------------------------------------


def test_usr5637_answers(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("usr5637")
    port = open_port(modem.path)
    chat(port, "ATE0")
    assert chat(port, "AT+FCLASS=?") == b"\r\n0,1,8\r\n\r\nOK\r\n"
    vsm = chat(port, "AT+VSM=?")
    assert [int(m) for m in re.findall(rb"\r?\n?(\d{3}),\"", vsm)] == [128, 129, 130, 131, 132]
    assert chat(port, "AT+FCLASS=8") == b"\r\nOK\r\n"
    assert chat(port, "AT+FCLASS?") == b"\r\n8\r\n\r\nOK\r\n"
    assert chat(port, "AT+FCLASS=2.0") == b"\r\nERROR\r\n"  # Class 1 only
    assert chat(port, "AT+VCID=1") == b"\r\nOK\r\n"
    assert chat(port, "ATZ") == b"\r\nOK\r\n"
    chat(port, "ATE0")
    assert chat(port, "AT+VCID?") == b"\r\n1\r\n\r\nOK\r\n"  # the USR keeps +VCID
    assert chat(port, "AT+FCLASS?") == b"\r\n0\r\n\r\nOK\r\n"  # ATZ resets +FCLASS
    assert chat(port, "AT-SCID=1") == b"\r\nERROR\r\n"  # a Conexant command


def test_usr5637_fclass8_quirk(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("usr5637", quirks={"fclass8_error": True})
    port = open_port(modem.path)
    chat(port, "ATE0")
    assert chat(port, "AT+FCLASS=?") == b"\r\n0,1,8\r\n\r\nOK\r\n"
    assert chat(port, "AT+FCLASS=8") == b"\r\nERROR\r\n"


def test_unknown_quirk_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fclass8_error"):
        SimulatedModem("usr5637", tmp_path, quirks={"no_such_quirk": True})
    with pytest.raises(ValueError, match="sim800"):
        SimulatedModem("hayes", tmp_path)


def test_conexant_forgets_vcid_on_reset(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("cx93010")
    port = open_port(modem.path)
    chat(port, "ATE0")
    assert chat(port, "AT+FCLASS=?") == b"\r\n0,1,1.0,2,8\r\n\r\nOK\r\n"
    assert chat(port, "AT-SCID=1;+VCID=1") == b"\r\nOK\r\n"
    assert chat(port, "AT+VCID?") == b"\r\n1\r\n\r\nOK\r\n"
    assert chat(port, "ATZ") == b"\r\nOK\r\n"
    assert chat(port, "AT+VCID?") == b"AT+VCID?\r\r\n0\r\n\r\nOK\r\n"
    assert b"129," in chat(port, "AT+VSM=?")


def test_conexant_old_firmware_has_no_class2(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("cx93010", quirks={"class2": False})
    port = open_port(modem.path)
    assert chat(port, "AT+FCLASS=?") == b"AT+FCLASS=?\r\r\n0,1,1.0,8\r\n\r\nOK\r\n"


WHEN = datetime(2024, 1, 17, 14, 52)


def test_analog_ring_with_formatted_caller_id(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("cx93010")
    port = open_port(modem.path)
    chat(port, "ATE0")
    chat(port, "AT-SCID=1;+VCID=1")
    modem.ring(CallerId(number="5551234", name="JOHN DOE", when=WHEN), rings=2, interval=0.2)
    got = read_until(port, rb"RING\r\n.*RING\r\n", timeout=2)
    assert got == (
        b"\r\nRING\r\n"
        b"\r\nDATE = 0117\r\nTIME = 1452\r\nNMBR = 5551234\r\nNAME = JOHN DOE\r\n"
        b"\r\nRING\r\n"
    )
    assert modem.call_state == "ringing"
    time.sleep(0.3)
    assert modem.call_state == "idle"  # the caller gave up after the last ring
    assert quiet(port, 0.1) == b""  # analog modems say nothing when the caller quits


def test_analog_ring_with_raw_caller_id(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("usr5637")
    port = open_port(modem.path)
    chat(port, "ATE0")
    chat(port, "AT+VCID=2")
    modem.ring(CallerId(number="5551234", name="JOHN DOE", when=WHEN), rings=2, interval=0.2)
    got = read_until(port, rb"RING\r\n.*RING\r\n", timeout=2)
    raw = re.search(rb"\r\n([0-9A-F]+)\r\n", got)
    assert raw is not None
    packet = bytes.fromhex(raw.group(1).decode())
    assert packet[0] == 0x80  # MDMF
    assert packet[1] == len(packet) - 3
    assert sum(packet) % 256 == 0  # checksum
    assert b"01171452" in packet and b"5551234" in packet and b"JOHN DOE" in packet


def test_analog_ring_without_caller_id(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("usr5637")
    port = open_port(modem.path)
    chat(port, "ATE0")
    modem.ring("5551234", rings=2, interval=0.2)
    assert read_until(port, rb"RING\r\n.*RING\r\n") == b"\r\nRING\r\n\r\nRING\r\n"


def test_analog_answer_in_voice_mode(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("usr5637")
    port = open_port(modem.path)
    chat(port, "ATE0")
    assert chat(port, "ATA") == b"\r\nNO CARRIER\r\n"  # nobody calling
    chat(port, "AT+FCLASS=8")
    modem.ring("5551234", rings=5, interval=0.2)
    read_until(port, rb"RING")
    assert chat(port, "ATA") == b"\r\nVCON\r\n"
    assert modem.call_state == "active"
    assert quiet(port, 0.3) == b""  # no more RINGs
    assert chat(port, "ATH") == b"\r\nOK\r\n"
    assert modem.call_state == "idle"


# --- GSM calls ------------------------------------------------------------------------------


def test_gsm_ring_with_clip_and_caller_hangup(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("sim800")
    port = open_port(modem.path)
    chat(port, "ATE0")
    chat(port, "AT+CLIP=1")
    modem.ring("+420123456789", rings=3, interval=0.2)
    got = read_until(port, rb"RING\r\n\r\n\+CLIP[^\r]*\r\n")
    assert got == b'\r\nRING\r\n\r\n+CLIP: "+420123456789",145,"",0,"",0\r\n'
    assert b'+CLCC: 1,1,4,0,0,"+420123456789",145' in chat(port, "AT+CLCC")
    modem.caller_hangs_up()
    assert read_until(port, rb"NO CARRIER\r\n").endswith(b"\r\nNO CARRIER\r\n")
    assert quiet(port, 0.3) == b""


def test_gsm_crc_and_answer(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("ec25")
    port = open_port(modem.path)
    chat(port, "ATE0")
    chat(port, "AT+CRC=1;+CLIP=1")
    modem.ring(CallerId(number=None, private=True), rings=5, interval=0.2)
    got = read_until(port, rb"\+CLIP[^\r]*\r\n")
    assert got == b'\r\n+CRING: VOICE\r\n\r\n+CLIP: "",128,,,"",1\r\n'
    assert chat(port, "ATA") == b"\r\nOK\r\n"
    assert modem.call_state == "active"
    assert chat(port, "AT+QPCMV=1,2") == b"\r\nOK\r\n"
    assert chat(port, "AT+QPCMV?") == b"\r\n+QPCMV: 1,2\r\n\r\nOK\r\n"
    assert chat(port, "AT+CHUP") == b"\r\nOK\r\n"


def test_sim7600_pcm_only_during_a_call(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("sim7600")
    port = open_port(modem.path)
    chat(port, "ATE0")
    assert chat(port, "AT+CPCMREG=1") == b"\r\nERROR\r\n"
    assert chat(port, "ATD+420123456789;") == b"\r\nOK\r\n"
    assert chat(port, "AT+CPCMREG=1") == b"\r\nOK\r\n"
    assert chat(port, "AT+CEREG=2;+CEREG?").startswith(b'\r\n+CEREG: 2,1,"1A2B","00C3D4E5",7')
    modem.caller_hangs_up()
    assert read_until(port, rb"NO CARRIER\r\n")
    assert chat(port, "AT+CPCMREG?") == b"\r\n+CPCMREG: 0\r\n\r\nOK\r\n"


def test_a_far_end_that_waits_for_the_beep_speaks_after_it(
    make_modem: Factory, open_port: Callable
) -> None:
    """`wait_for_tone`: the far end of a serial PCM call stays silent while the host sends
    other sound (two tones at once, noise, a 1000 Hz blip too short for a beep), and says
    its words once the host's audio carries the 1000 Hz voicemail beep."""
    import numpy as np

    from firmware_app.media import tones

    modem = make_modem("sim7600")
    audio = modem.pcm_audio(speed=4.0)
    marker = tones.tone((1500.0,), 0.4, level_dbfs=-12.0)
    port = open_port(modem.urc_path)
    pcm = open_port(audio.link)  # the host reads the call's audio all along, as a call does
    chat(port, "ATE0")
    assert chat(port, "ATD+420123456789;") == b"\r\nOK\r\n"  # answered: a fresh script
    audio.wait_for_tone(1000.0, 0.2).say(marker)
    assert chat(port, "AT+CPCMREG=1") == b"\r\nOK\r\n"
    rng = np.random.default_rng(7)
    others = np.concatenate(
        [
            tones.tone((697.0, 1209.0), 0.5, level_dbfs=-12.0),
            rng.normal(0, 3000, 4000).astype(np.int16),
            tones.tone((1000.0,), 0.06, level_dbfs=-12.0),
        ]
    )
    got = bytearray()

    def send(sound: np.ndarray) -> None:
        data = sound.astype("<i2").tobytes()
        for i in range(0, len(data), 320):
            pcm.write(data[i : i + 320])
            got.extend(pcm.read(pcm.in_waiting))

    def loud() -> np.ndarray:
        heard = np.frombuffer(bytes(got[: len(got) & ~1]), dtype="<i2")
        return np.flatnonzero(np.abs(heard) > 2000)

    send(others)
    assert loud().size == 0 and not audio.script_done  # still waiting for a beep
    before = len(got)
    send(tones.beep())
    deadline = time.monotonic() + 20
    while loud().size < marker.size // 2:
        assert time.monotonic() < deadline, "the far end never spoke"
        got.extend(pcm.read(3200))
    assert loud()[0] * 2 >= before  # its words came after the beep, never before
    assert audio.heard_total == (others.size + tones.beep().size) * 2
    assert chat(port, "AT+CHUP") == b"\r\nOK\r\n"


def test_a_far_end_hears_a_beep_sent_before_its_thread_looked(
    make_modem: Factory, open_port: Callable[[Path], serial.Serial]
) -> None:
    """The host sends the beep the moment the far end starts to wait for it, while the far
    end's thread is held up (a loaded machine): the wait listens from when it was reached,
    not from when the thread first looked, so the words still come."""
    import numpy as np

    from firmware_app.media import tones

    modem = make_modem("sim7600")
    audio = modem.pcm_audio(speed=4.0)
    marker = tones.tone((1500.0,), 0.2, level_dbfs=-12.0)
    port = open_port(modem.urc_path)
    pcm = open_port(audio.link)
    chat(port, "ATE0")
    assert chat(port, "ATD+420123456789;") == b"\r\nOK\r\n"
    assert chat(port, "AT+CPCMREG=1") == b"\r\nOK\r\n"
    audio.wait_for_tone(1000.0, 0.2).say(marker)  # reached at once: nothing before it
    with audio._lock:  # the far end's thread cannot look at the stream meanwhile
        pcm.write(tones.beep().astype("<i2").tobytes())
        time.sleep(0.3)  # all of it reaches the port while the thread waits for the lock
    got = bytearray()
    deadline = time.monotonic() + 10
    while True:
        heard = np.frombuffer(bytes(got[: len(got) & ~1]), dtype="<i2")
        if np.flatnonzero(np.abs(heard) > 2000).size >= marker.size // 2:
            break
        assert time.monotonic() < deadline, "the far end never spoke"
        got.extend(pcm.read(3200))
    assert chat(port, "AT+CHUP") == b"\r\nOK\r\n"


@pytest.mark.parametrize(
    ("name", "enable", "report"),
    [("sim800", "AT+DDET=1", b"+DTMF: 5"), ("ec25", "AT+QTONEDET=1", b"+QTONEDET: 53")],
)
def test_far_end_keys_are_reported_only_once_asked(
    make_modem: Factory, open_port: Callable, name: str, enable: str, report: bytes
) -> None:
    """SIM800 (AT+DDET) and EC25 (AT+QTONEDET) report a far-end key only after its DTMF
    detection was switched on; off again, they stop."""
    from firmware_app.modem.simulator.gsm_audio import Callee

    modem = make_modem(name)
    port = open_port(modem.path)
    chat(port, "ATE0")
    modem.extras.callee = Callee(answer_after=0.0, press="5", press_after=0.1)
    assert chat(port, "ATD+420123456789;") == b"\r\nOK\r\n"
    assert quiet(port, 0.5) == b""  # a key, but nobody asked for reports
    assert chat(port, "AT+CHUP") == b"\r\nOK\r\n"
    command = enable.removesuffix("=1")
    assert chat(port, enable) == b"\r\nOK\r\n"
    assert chat(port, command + "?").startswith(b"\r\n" + command[2:].encode() + b": 1")
    assert chat(port, "ATD+420123456789;") == b"\r\nOK\r\n"
    assert read_until(port, re.escape(report) + rb"\r\n").endswith(report + b"\r\n")
    assert chat(port, "AT+CHUP") == b"\r\nOK\r\n"
    assert chat(port, command + "=0") == b"\r\nOK\r\n"
    assert chat(port, "ATD+420123456789;") == b"\r\nOK\r\n"
    assert quiet(port, 0.5) == b""
    assert chat(port, command + "=7") == b"\r\nERROR\r\n"


def test_ec25_gps_port_off(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("ec25")
    port = open_port(modem.path)
    chat(port, "ATE0")
    assert chat(port, 'AT+QGPSCFG="outport","none"') == b"\r\nOK\r\n"
    assert chat(port, 'AT+QGPSCFG="outport"') == b'\r\n+QGPSCFG: "outport","none"\r\n\r\nOK\r\n'


# --- boot, power, unplug --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "urcs"),
    [
        ("sim800", [b"RDY", b"+CFUN: 1", b"+CPIN: READY", b"Call Ready", b"SMS Ready"]),
        ("sim7600", [b"RDY", b"+CPIN: READY", b"SMS DONE", b"PB DONE"]),
        (
            "ec25",
            [
                b"RDY",
                b"+CFUN: 1",
                b"+CPIN: READY",
                b"+QUSIM: 1",
                b"+QIND: SMS DONE",
                b"+QIND: PB DONE",
            ],
        ),
    ],
)
def test_boot_urcs_after_reset(
    name: str, urcs: list[bytes], make_modem: Factory, open_port: Callable
) -> None:
    modem = make_modem(name)
    port = open_port(modem.path)
    chat(port, "ATE0")
    modem.reset()
    got = read_until(port, re.escape(urcs[-1]) + rb"\r\n")
    assert [line for line in got.split(b"\r\n") if line] == urcs
    assert chat(port, "AT") == b"AT\r\r\nOK\r\n"  # echo is back on after power-on


def test_sim800_under_voltage(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("sim800")
    port = open_port(modem.path)
    chat(port, "ATE0")
    modem.under_voltage()
    assert read_until(port, rb"WARNNING\r\n") == b"\r\nUNDER-VOLTAGE WARNNING\r\n"
    modem.under_voltage(power_down=True)
    assert read_until(port, rb"DOWN\r\n") == b"\r\nUNDER-VOLTAGE POWER DOWN\r\n"
    port.write(b"AT\r")
    assert quiet(port, 0.3) == b""
    modem.reset()
    read_until(port, rb"SMS Ready\r\n")
    assert chat(port, "AT") == b"AT\r\r\nOK\r\n"


def test_unplug_and_replug(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("sim800")
    port = open_port(modem.path)
    assert chat(port, "AT").endswith(b"OK\r\n")
    modem.unplug()
    assert not modem.path.exists()
    with pytest.raises(serial.SerialException):
        for _ in range(20):
            port.read(1)
    port.close()
    modem.replug()
    assert modem.path.exists()
    fresh = open_port(modem.path)
    assert chat(fresh, "AT") == b"AT\r\r\nOK\r\n"
    assert modem.path.is_symlink() and Path(modem.path.resolve()).exists()


def test_stop_answering_and_resume(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("sim800")
    port = open_port(modem.path)
    chat(port, "ATE0")
    modem.stop_answering()
    port.write(b"AT+CSQ\r")
    assert modem.wait_for_command(r"\+CSQ", timeout=1) == "AT+CSQ"
    assert quiet(port, 0.3) == b""
    modem.resume()
    assert chat(port, "AT+CSQ") == b"\r\n+CSQ: 20,0\r\n\r\nOK\r\n"


def test_garbage_then_commands_still_work(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("usr5637")
    port = open_port(modem.path)
    chat(port, "ATE0")
    modem.send_garbage(b"\x00\xff\x10junk\r")
    assert read_until(port, rb"junk\r") == b"\x00\xff\x10junk\r"
    # Noise from the host side before AT is ignored, as on a real modem.
    port.write(b"\x7e\x00zz")
    assert chat(port, "AT") == b"\r\nOK\r\n"


def test_wait_for_command_times_out(make_modem: Factory) -> None:
    modem = make_modem("usr5637")
    with pytest.raises(TimeoutError, match="ATH"):
        modem.wait_for_command("ATH", timeout=0.1)


def test_close_twice_and_context_manager(tmp_path: Path) -> None:
    with SimulatedModem("ec25", tmp_path) as modem:
        assert modem.path.is_symlink()
    assert not modem.path.exists()
    modem.close()


# --- Huawei multi-port and URC floods ---------------------------------------------------------


def test_e1752_urc_flood_on_one_port_only(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("e1752", urc_interval=0.1)
    assert len(modem.paths) == 3  # ^GETPORTMODE: MDM:0, DIAG:1 (voice), PCUI:2
    assert not modem.paths[1].exists()  # the audio interface: made by pcm_audio()
    quiet_port = open_port(modem.paths[0])
    urc_port = open_port(modem.urc_path)
    assert modem.urc_path == modem.paths[2]
    assert chat(urc_port, "AT^GETPORTMODE").endswith(b"PCUI:2\r\n\r\nOK\r\n")
    read_until(urc_port, rb"\^RSSI:20\r\n")
    assert chat(quiet_port, "AT^CVOICE?") == b"AT^CVOICE?\r\r\n^CVOICE:0,8000,16,20\r\n\r\nOK\r\n"
    assert b"^RSSI" not in quiet(quiet_port, 0.3)
    urc_port.write(b"AT^CURC=0\r")
    read_until(urc_port, rb"\r\nOK\r\n")
    time.sleep(0.15)
    urc_port.reset_input_buffer()
    assert quiet(urc_port, 0.4) == b""
    # Calls are announced on the URC port.
    chat(quiet_port, "AT+CLIP=1")
    modem.ring("+420123456789", rings=1, interval=0.2)
    assert read_until(urc_port, rb"\+CLIP[^\r]*\r\n").endswith(
        b'+CLIP: "+420123456789",145,,,,0\r\n'
    )
    assert read_until(urc_port, rb"\^CEND[^\r]*\r\n").endswith(b"^CEND:1,0,104,16\r\n")


# --- SIM PIN --------------------------------------------------------------------------------


def test_sim_pin_puk_flow(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("sim800", pin="1234")
    port = open_port(modem.path)
    chat(port, "ATE0")
    chat(port, "AT+CMEE=1")
    assert chat(port, "AT+CPIN?") == b"\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
    assert chat(port, "AT+CMGL=4") == b"\r\n+CMS ERROR: 311\r\n"
    assert chat(port, "AT+CREG?") == b"\r\n+CREG: 0,0\r\n\r\nOK\r\n"
    for _ in range(3):
        assert chat(port, 'AT+CPIN="0000"') == b"\r\n+CME ERROR: 16\r\n"
    assert chat(port, "AT+CPIN?") == b"\r\n+CPIN: SIM PUK\r\n\r\nOK\r\n"
    assert chat(port, 'AT+CPIN="1234"') == b"\r\n+CME ERROR: 16\r\n"
    assert chat(port, 'AT+CPIN="12345678","4321"') == b"\r\nOK\r\n"
    assert read_until(port, rb"SMS Ready\r\n") == b"\r\nCall Ready\r\n\r\nSMS Ready\r\n"
    assert chat(port, "AT+CPIN?") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n"
    assert chat(port, "AT+CREG?") == b"\r\n+CREG: 0,1\r\n\r\nOK\r\n"
    # The new PIN is asked for after a power cycle.
    modem.reset()
    read_until(port, rb"\+CPIN: SIM PIN\r\n")
    chat(port, "ATE0;+CMEE=2")
    assert chat(port, 'AT+CPIN="1234"') == b"\r\n+CME ERROR: incorrect password\r\n"
    assert chat(port, 'AT+CPIN="4321"') == b"\r\nOK\r\n"


# --- SMS store ------------------------------------------------------------------------------


def test_sms_deliver_list_read_delete_send(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("sim800")
    port = open_port(modem.path)
    chat(port, "ATE0")
    chat(port, "AT+CMEE=1;+CMGF=0;+CNMI=2,1,0,0,0")
    assert modem.deliver_sms(PDU_HELLOHELLO) == 1
    assert read_until(port, rb"CMTI[^\r]*\r\n") == b'\r\n+CMTI: "SM",1\r\n'
    assert modem.deliver_sms(PDU_HELLO_WORLD) == 2
    read_until(port, rb'"SM",2\r\n')
    assert chat(port, "AT+CPMS?") == b'\r\n+CPMS: "SM",2,20,"SM",2,20,"SM",2,20\r\n\r\nOK\r\n'
    listing = chat(port, "AT+CMGL=4")
    assert listing == (
        b"\r\n+CMGL: 1,0,,28\r\n" + PDU_HELLOHELLO.encode() + b"\r\n"
        b"+CMGL: 2,0,,31\r\n" + PDU_HELLO_WORLD.encode() + b"\r\n\r\nOK\r\n"
    )
    assert chat(port, "AT+CMGL=0") == b"\r\nOK\r\n"  # listing marked them read
    assert chat(port, "AT+CMGR=2") == (
        b"\r\n+CMGR: 1,,31\r\n" + PDU_HELLO_WORLD.encode() + b"\r\n\r\nOK\r\n"
    )
    assert chat(port, "AT+CMGD=1") == b"\r\nOK\r\n"
    assert chat(port, "AT+CMGR=1") == b"\r\nOK\r\n"
    assert chat(port, "AT+CMGR=99") == b"\r\n+CMS ERROR: 321\r\n"
    assert chat(port, "AT+CMGD=1,4") == b"\r\nOK\r\n"
    assert modem.messages() == {}
    # Send: prompt "> " without a line end, then PDU and Ctrl-Z.
    port.write(b"AT+CMGS=23\r")
    assert read_until(port, rb"> $") == b"\r\n> "
    port.write(PDU_SUBMIT.encode() + b"\x1a")
    assert read_until(port, FINAL) == b"\r\n+CMGS: 1\r\n\r\nOK\r\n"
    assert modem.sent_sms == [PDU_SUBMIT]
    # A wrong length is refused.
    port.write(b"AT+CMGS=5\r")
    read_until(port, rb"> $")
    port.write(PDU_SUBMIT.encode() + b"\x1a")
    assert read_until(port, FINAL) == b"\r\n+CMS ERROR: 304\r\n"
    # ESC cancels.
    port.write(b"AT+CMGS=23\r")
    read_until(port, rb"> $")
    port.write(b"0011\x1b")
    assert read_until(port, FINAL) == b"\r\nOK\r\n"
    assert len(modem.sent_sms) == 1


def test_sms_direct_delivery_with_cnmi_mt2(make_modem: Factory, open_port: Callable) -> None:
    modem = make_modem("sim800")
    port = open_port(modem.path)
    chat(port, "ATE0;+CNMI=2,2,0,0,0")
    assert modem.deliver_sms(PDU_HELLOHELLO) is None
    got = read_until(port, PDU_HELLOHELLO.encode() + rb"\r\n")
    assert got == b"\r\n+CMT: ,28\r\n" + PDU_HELLOHELLO.encode() + b"\r\n"
    assert modem.messages() == {}


# --- gammu, an independent GSM client ---------------------------------------------------------

needs_gammu = pytest.mark.skipif(shutil.which("gammu") is None, reason="gammu is not installed")


def run_gammu(modem: SimulatedModem, tmp_path: Path, *args: str) -> str:
    config = tmp_path / "gammurc"
    config.write_text(f"[gammu]\ndevice = {modem.urc_path}\nconnection = at115200\n")
    result = subprocess.run(
        ["gammu", "-c", str(config), *args], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


GSM_NAMES = ["sim800", "sim7600", "ec25", "e1752"]


@needs_gammu
@pytest.mark.parametrize("name", GSM_NAMES)
def test_gammu_identify(name: str, make_modem: Factory, tmp_path: Path) -> None:
    modem = make_modem(name)
    out = run_gammu(modem, tmp_path, "identify")
    assert modem.personality.imei in out
    assert modem.personality.model in out
    assert "001010123456789" in out  # IMSI
    assert "AT+CGSN" in modem.commands


@needs_gammu
@pytest.mark.parametrize("name", GSM_NAMES)
def test_gammu_getallsms(name: str, make_modem: Factory, tmp_path: Path) -> None:
    modem = make_modem(name)
    modem.deliver_sms(PDU_HELLOHELLO)
    modem.deliver_sms(PDU_HELLO_WORLD)
    out = run_gammu(modem, tmp_path, "getallsms")
    assert "hellohello" in out
    assert "Hello, world!" in out
    assert '"27838890001"' in out and '"+79642161111"' in out
    assert "2 SMS parts in 2 SMS sequences" in out
    assert "AT+CMGL=4" in modem.commands


@needs_gammu
@pytest.mark.parametrize("name", GSM_NAMES)
def test_gammu_networkinfo(name: str, make_modem: Factory, tmp_path: Path) -> None:
    """gammu asks +CREG, +CGREG, +CGATT and +COPS in the long and numeric formats."""
    modem = make_modem(name)
    out = run_gammu(modem, tmp_path, "networkinfo")
    assert re.search(r"Network state\s*: home network", out), out
    assert re.search(r"Packet network state\s*: home network", out), out
    assert re.search(r"Network\s*: 001 01", out), out  # AT+COPS=3,2: the numeric form
    assert '"Frontdesk Mobile"' in out  # AT+COPS=3,0: the long name
    assert re.search(r"GPRS\s*: attached", out), out
    assert {"AT+CGREG?", "AT+CGATT?", "AT+COPS=3,2"} <= set(modem.commands)
