"""Lines over real ptys with pyserial: detection, init, caller ID, reconnects, the SIM PIN.

Each test drives a simulated modem (firmware_app.modem.simulator) and a `Line` that opens
its pty path exactly as it opens /dev/ttyACM0; assertions look at the commands the modem
received and the events the line published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from firmware_app.modem import events as ev
from firmware_app.modem.detect import (
    BlockingChat,
    find_modems,
    parse_fclass,
    parse_vsm,
    pcm_port_for,
    probe,
)
from firmware_app.modem.line import Line, LineDownError
from firmware_app.modem.simulator import CallerId, CidForm, SimulatedModem
from firmware_app.modem.simulator.callerid import raw_line
from firmware_app.protocol.at import Command, ErrorResult, Response
from firmware_app.settings.lines import Lines
from tests.modem.conftest import Recorder

pytestmark = pytest.mark.timeout(30)

Modems = Callable[..., SimulatedModem]
Lines_ = Callable[..., Line]


def up(recorder: Recorder, line: Line, timeout: float = 5.0, since: int = 0) -> ev.LineUp:
    return recorder.wait(ev.LineUp, lambda e: e.line == line.name, timeout, since)


def commands_since(modem: SimulatedModem, index: int) -> list[str]:
    return modem.commands[index:]


# --- detection ------------------------------------------------------------------------------

DESCRIPTIONS = {
    "usr5637": "USR5637 on {p}: analog line, voice (u-law 8 kHz), fax Class 1, caller ID",
    "cx93010": "Conexant CX93001 on {p}: analog line, voice (u-law 8 kHz), fax Class 1/1.0/2, "
    "caller ID",
    "mt9234mu": "MultiTech MT9234MU on {p}: analog line, voice (u-law 8 kHz), fax Class 1/2.0, "
    "caller ID",
    "sim800": "SIMCom SIM800 on {p}: GSM line, caller ID, SMS, call audio: analog audio "
    "through a USB sound card, SIM ready",
    "sim7600": "SIMCom SIM7600 on {p}: GSM line (LTE), caller ID, SMS, call audio: PCM over "
    "USB serial (AT+CPCMREG), SIM ready",
    "ec25": "Quectel EC25 on {p}: GSM line (LTE), caller ID, SMS, call audio: PCM over USB "
    "(AT+QPCMV) or USB sound card, SIM ready",
    "e1752": "Huawei E1752 on {p}: GSM line, caller ID, SMS, call audio: PCM on a separate USB "
    "port (AT^DDSETEX), SIM ready",
}


def test_every_personality_is_detected(make_modem: Modems, tmp_path: Path) -> None:
    modems = {
        name: make_modem(name, urc_interval=0.2) if name == "e1752" else make_modem(name)
        for name in DESCRIPTIONS
    }
    found = {p.port: p for p in find_modems([str(tmp_path / "dev" / "tty-*")], listen=2.0)}
    assert len(found) == len(DESCRIPTIONS)
    for name, modem in modems.items():
        port = str(modem.urc_path)  # the Huawei's second port carries the URCs
        assert found[port].describe() == DESCRIPTIONS[name].format(p=port)
    e1752 = found[str(modems["e1752"].urc_path)]
    # its audio interface (if01) appears once a call's audio is used
    assert e1752.ports == tuple(str(p) for p in modems["e1752"].paths if p.exists())
    usr = found[str(modems["usr5637"].path)]
    assert [f.code for f in usr.voice_formats][:2] == [131, 130]  # u-law, then A-law
    assert usr.caller_id_command == "AT+VCID=1"
    assert found[str(modems["cx93010"].path)].caller_id_command == "AT-SCID=1;+VCID=1"


def _urc_port_found(tmp_path: Path) -> str:
    (profile,) = find_modems([str(tmp_path / "dev" / "tty-*")], listen=0.2, timeout=0.3)
    return profile.port


def test_the_urc_port_is_the_one_huawei_names(make_modem: Modems, tmp_path: Path) -> None:
    # No ^RSSI flood to listen for: AT^GETPORTMODE says PCUI is interface 2.
    modem = make_modem("e1752", quirks={"urc_flood": False})
    audio = modem.pcm_audio()  # interface 1 carries the call audio
    assert audio.link == modem.paths[1]
    (profile,) = find_modems([str(tmp_path / "dev" / "tty-*")], listen=0.2, timeout=0.3)
    assert profile.port == str(modem.paths[2]) == str(modem.urc_path)
    assert "AT^GETPORTMODE" in modem.commands
    assert profile.ports == tuple(str(p) for p in modem.paths)  # the silent audio port too
    assert pcm_port_for(profile, profile.port) == str(modem.paths[1])


@pytest.mark.parametrize(
    ("setting", "interface"),
    [
        (None, 2),  # usbat, the default: the AT interface, though the modem port answers too
        ('AT+QURCCFG="urcport","usbmodem"', 3),
        ('AT+QURCCFG="urcport","uart1"', 2),  # nothing reaches USB: set back to usbat
    ],
)
def test_the_urc_port_is_the_one_quectel_names(
    setting: str | None,
    interface: int,
    make_modem: Modems,
    make_line: Lines_,
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    modem = make_modem("ec25", usb=True)  # DM, NMEA, AT and modem interfaces
    if setting is not None:
        with BlockingChat(str(modem.paths[2])) as chat:
            assert isinstance(chat(Command(setting)), Response)
    port = _urc_port_found(tmp_path)
    assert port == str(modem.paths[interface])
    line = make_line(port)
    up(recorder, line)
    modem.ring("+15551234567", rings=3, interval=0.3)
    assert recorder.wait(ev.IncomingCall).number == "+15551234567"


@pytest.mark.parametrize(
    ("setting", "interface"), [(None, 2), ("AT+CATR=2", 3), ("AT+CATR=3", 2), ("AT+CATR=1", 2)]
)
def test_the_urc_port_is_the_one_simcom_names(
    setting: str | None, interface: int, make_modem: Modems, tmp_path: Path
) -> None:
    modem = make_modem("sim7600", usb=True)  # diagnostics, NMEA, AT, modem, audio
    if setting is not None:
        with BlockingChat(str(modem.paths[2])) as chat:
            assert isinstance(chat(Command(setting)), Response)
    assert _urc_port_found(tmp_path) == str(modem.paths[interface])
    assert "AT+CATR?" in modem.commands


def test_probe_says_what_a_port_is(make_modem: Modems) -> None:
    modem = make_modem("sim800", pin="1234")
    with BlockingChat(str(modem.path)) as chat:
        profile = probe(chat, "/dev/ttyUSB2")
    assert profile is not None
    assert profile.describe().endswith("SIM needs its PIN")
    assert profile.revision == "Revision:1418B04SIM800L24"


def test_answer_parsers() -> None:
    assert parse_fclass(["0,1,1.0,2,8"]) == ("0", "1", "1.0", "2", "8")
    assert parse_fclass(["(0,1,2.0,8)"]) == ("0", "1", "2.0", "8")
    formats = parse_vsm(['0,"SIGNED PCM",8,0,(8000),(0),(0)', '132,"ALAW",8,0,(7200,8000),(0),(0)'])
    assert [(f.code, f.words, f.rates) for f in formats] == [
        (132, "A-law", (7200, 8000)),
        (0, "8-bit signed linear", (8000,)),
    ]
    # The short form of MultiTech's MT9234 series: <cml>,"<name>",(<rates>).
    short = parse_vsm(['128,"8-BIT LINEAR",(7200,8000,11025)', '131,"8-BIT ULAW",(8000)'])
    assert [(f.code, f.words, f.rates) for f in short] == [
        (131, "u-law", (8000,)),
        (128, "8-bit linear", (7200, 8000, 11025)),
    ]


# --- init sequences ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "model", "firmware"),
    [("usr5637", "USR5637", "1.2.23"), ("mt9234mu", "MultiTech MT9234MU", "1.06")],
)
def test_analog_init_enables_and_verifies_caller_id(
    name: str,
    model: str,
    firmware: str,
    make_modem: Modems,
    make_line: Lines_,
    recorder: Recorder,
) -> None:
    modem = make_modem(name)
    line = make_line(modem.path, Lines(country="B4"))
    up(recorder, line)
    cmds = modem.commands
    init = cmds[cmds.index("ATZ") :]
    assert init[:6] == ["ATZ", "ATE0V1Q0", "ATS0=0", "AT+GCI=B4", "AT+VCID=1", "AT+VCID?"]
    status = line.status()
    assert (status.state, status.kind, status.model, status.firmware) == (
        "idle",
        "analog",
        model,
        firmware,
    )
    assert status.caller_id


def test_conexant_caller_id_command_and_reset(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem("cx93010")
    line = make_line(modem.path)
    up(recorder, line)
    assert "AT-SCID=1;+VCID=1" in modem.commands
    # The Conexant forgets +VCID on reset: a reconnect sends it again and checks it.
    mark, seen = recorder.mark(), len(modem.commands)
    modem.unplug()
    recorder.wait(ev.LineDown, since=mark)
    modem.replug()
    up(recorder, line, since=mark)
    again = commands_since(modem, seen)
    assert again.index("AT-SCID=1;+VCID=1") > again.index("ATZ")
    assert "AT+VCID?" in again


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "sim800",
            ["ATZ", "ATE0", "AT+CMEE=1", "AT+CPIN?", "AT+CREG=2", "AT+CLIP=1", "AT+CRC=1",
             "AT+CMGF=0", "AT+CNMI=2,1,0,2,0", "AT+COPS=3,0", "AT+CSQ", "AT+CREG?", "AT+COPS?"],
        ),
        (
            "ec25",
            ["ATZ", "ATE0", "AT+CMEE=1", 'AT+QGPSCFG="outport","none"', "AT+CPIN?",
             "AT+CREG=2", "AT+CEREG=2", "AT+CLIP=1", "AT+CRC=1", "AT+CMGF=0"],
        ),
        (
            "sim7600",
            ["ATZ", "ATE0", "AT+CMEE=1", "AT+CPIN?", "AT+CREG=2", "AT+CEREG=2", "AT+CLIP=1",
             "AT+CRC=1", "AT+CMGF=0", "AT+CNMI=2,1,0,2,0", "AT+COPS=3,0", "AT+CSQ", "AT+CREG?",
             "AT+COPS?"],
        ),
        ("e1752", ["ATZ", "ATE0", "AT+CMEE=1", "AT^CURC=0", "AT+CPIN?", "AT+CREG=2"]),
    ],
)  # fmt: skip
def test_gsm_start_up(
    name: str, expected: list[str], make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem(name, urc_interval=0.2)
    line = make_line(modem.urc_path)
    up(recorder, line)
    cmds = modem.commands
    init = [c for c in cmds[cmds.index("ATZ") :] if c != "AT+SPIC"]
    assert init[: len(expected)] == expected
    signal = recorder.wait(ev.SignalChanged, lambda e: e.registration == "registered (home)")
    assert signal.rssi == 20 and signal.dbm == -73
    if name != "e1752":
        assert line.status().operator == "Frontdesk Mobile"


def test_gsm_signal_and_registration_changes(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem("sim800")
    line = make_line(modem.path)
    up(recorder, line)
    modem.set_network(stat=5, rssi=9)
    changed = recorder.wait(ev.SignalChanged, lambda e: e.registration == "registered (roaming)")
    assert changed.line == line.name
    recorder.wait(ev.SignalChanged, lambda e: e.rssi == 9)  # from the periodic AT+CSQ
    assert line.status().dbm == -95


# --- caller ID ------------------------------------------------------------------------------


def test_analog_caller_id_then_the_caller_gives_up(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem("usr5637")
    line = make_line(modem.path)
    up(recorder, line)
    modem.ring(CallerId(number="01632960123"), rings=3, interval=0.3)  # UK: no NAME line
    call = recorder.wait(ev.IncomingCall)
    assert (call.number, call.name, call.validity, call.source) == (
        "01632960123",
        None,
        "ok",
        "formatted",
    )
    assert call.rings == 2  # complete at the ring after the caller-ID block, name or not
    assert line.status().state == "ringing"
    hung = recorder.wait(ev.CallerHungUp, timeout=5.0)
    assert hung.call_id == call.call_id and not hung.answered
    assert line.status().state == "idle"


def test_caller_id_heard_before_any_ring_says_so(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    """A call heard from its first ring has its caller ID after that ring. Caller ID with
    no ring before it (the last run took the first ring and the caller ID waited in the
    port) is flagged, so the call side can tell a call ringing on from a new one."""
    modem = make_modem("usr5637")
    line = make_line(modem.path)
    up(recorder, line)
    modem.ring(CallerId(number="01632960123"), rings=2, interval=0.3)
    new = recorder.wait(ev.IncomingCall)
    assert new.number == "01632960123" and not new.caller_id_first
    recorder.wait(ev.CallerHungUp, timeout=5.0)

    since = recorder.mark()
    for text in ("DATE = 1205", "TIME = 0930", "NMBR = 01632960124", "RING"):
        modem.send_urc(text)
    on = recorder.wait(ev.IncomingCall, since=since)
    assert on.number == "01632960124" and on.caller_id_first and on.rings == 1


@dataclass(frozen=True)
class Form:
    """One caller-ID form of REFERENCE.md 1 and what the line must make of it."""

    id: str
    cid: CallerId
    number: str | None
    name: str | None
    validity: str = "ok"
    shows: str = ""  # a raw line the modem sent, as the event's `raw` holds it
    source: str = "formatted"


def alice(**more: Any) -> CallerId:
    return CallerId(number="5551234567", name="ALICE", **more)


ANALOG_FORMS = [
    Form("spaced", alice(), "5551234567", "ALICE", shows="NMBR = 5551234567"),
    Form(
        "no-spaces",
        alice(form=CidForm(separator="=")),
        "5551234567",
        "ALICE",
        shows="NMBR=5551234567",
    ),
    Form(
        "name-before-number",
        alice(form=CidForm(order=("DATE", "TIME", "NAME", "NMBR"))),
        "5551234567",
        "ALICE",
        shows="NAME = ALICE",
    ),
    Form("no-name-uk", CallerId(number="01632960123"), "01632960123", None),
    Form("four-digits", CallerId(number="5551"), "5551", None, shows="NMBR = 5551"),
    Form(
        "mesg-first-uk-bt",
        CallerId(number="01632960123", message="110101"),
        "01632960123",
        None,
        shows="MESG = 110101",
    ),
    Form(
        "mesg-after-number",
        alice(
            message="110101",
            form=CidForm(order=("DATE", "TIME", "NMBR", "MESG", "NAME")),
        ),
        "5551234567",
        "ALICE",
        shows="MESG = 110101",
    ),
    Form(
        "dialled-number",
        alice(dialled="5550100"),
        "5551234567",
        "ALICE",
        shows="DDN_NMBR = 5550100",
    ),
    Form("private", CallerId(private=True, name="x"), None, None, "withheld", "NMBR = P"),
    Form("out-of-area", CallerId(), None, None, "unavailable", "NMBR = O"),
    Form(
        "name-cut-to-15",
        CallerId(number="5551234567", name="ACME PLUMBING AND HEATING"),
        "5551234567",
        "ACME PLUMBING A",
    ),
    Form("non-ascii-name", CallerId(number="5551234567", name="MÜLLER"), "5551234567", "MÜLLER"),
    Form(
        "empty-date",
        alice(form=CidForm(empty_date=True)),
        "5551234567",
        "ALICE",
        shows="DATE =",
    ),
    Form(
        "date-time-combined",
        CallerId(
            number="5551234567",
            when=datetime(2025, 1, 6, 14, 15),
            form=CidForm(separator="=", date_time=True),
        ),
        "5551234567",
        None,
        shows="DATE TIME=01/06 14:15",
    ),
]
# With AT+VCID=2 the modem reports the packet itself, as hex.
RAW_FORMS = [
    Form(
        "mdmf",
        alice(dialled="5550100"),
        "5551234567",
        "ALICE",
        source="mdmf",
    ),
    Form(
        "sdmf",
        alice(form=CidForm(packet="sdmf")),
        "5551234567",
        None,
        source="sdmf",
    ),
    Form("mdmf-private", CallerId(private=True), None, None, "withheld", source="mdmf"),
]


@pytest.mark.parametrize("name", ["usr5637", "cx93010", "mt9234mu"])
def test_every_analog_caller_id_form_through_the_pty(
    name: str, make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem(name)
    line = make_line(modem.path)
    up(recorder, line)
    for form in ANALOG_FORMS + RAW_FORMS:
        if form is RAW_FORMS[0]:
            assert isinstance(line.command("AT+VCID=2").result(5), Response)
        mark = recorder.mark()
        modem.ring(form.cid, rings=4, interval=0.4)
        call = recorder.wait(ev.IncomingCall, since=mark)
        got = (call.number, call.name, call.validity, call.source)
        assert got == (form.number, form.name, form.validity, form.source), form.id
        if form.shows:
            assert form.shows in call.raw, (form.id, call.raw)
        # Formatted lines: complete at the next RING, never at a timeout; a packet is
        # complete in itself.
        assert call.rings == (2 if form.source == "formatted" else 1), form.id
        line.hangup().result(5)  # next caller
        recorder.wait(ev.CallEnded, since=mark)
    assert len(recorder.of(ev.IncomingCall)) == len(ANALOG_FORMS + RAW_FORMS)


@pytest.mark.parametrize("name", ["sim800", "sim7600", "ec25", "e1752"])
def test_gsm_clip_forms_through_the_pty(
    name: str, make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem(name, urc_interval=0.2)
    line = make_line(modem.urc_path)
    up(recorder, line)
    alpha = None if name == "e1752" else "ALICE"  # the Huawei's +CLIP has no alpha field
    forms = [
        Form("number", CallerId(number="+15551234567", alpha="ALICE"), "+15551234567", alpha),
        Form("national", CallerId(number="05551234567"), "05551234567", None),
        Form("withheld-validity-1", CallerId(private=True), None, None, "withheld"),
        Form("not-available-validity-2", CallerId(), None, None, "unavailable"),
    ]
    for form in forms:
        mark = recorder.mark()
        modem.ring(form.cid, rings=4, interval=0.4)
        call = recorder.wait(ev.IncomingCall, since=mark)
        got = (call.number, call.name, call.validity, call.source)
        assert got == (form.number, form.name, form.validity, "clip"), form.id
        line.reject().result(5)
        recorder.wait(ev.CallEnded, since=mark)


def test_raw_mdmf_packet_and_no_caller_id(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem("usr5637")
    line = make_line(modem.path)
    up(recorder, line)
    packet = raw_line(CallerId(number="5551230000", name="BOB"), datetime(2025, 1, 17, 14, 52))
    modem.send_urc("RING")
    modem.send_urc(packet)
    call = recorder.wait(ev.IncomingCall)
    assert (call.number, call.name, call.source) == ("5551230000", "BOB", "mdmf")
    recorder.wait(ev.CallerHungUp)
    mark = recorder.mark()
    modem.ring(None, rings=2, interval=0.3)  # no caller ID at all
    nobody = recorder.wait(ev.IncomingCall, since=mark)
    assert (nobody.number, nobody.source, nobody.validity) == (None, "none", "unavailable")
    assert nobody.rings == 2


def test_gsm_clip_answer_and_hang_up(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem("ec25")
    line = make_line(modem.path)
    up(recorder, line)
    modem.ring(CallerId(number="+420123456789"), rings=5, interval=0.3)
    call = recorder.wait(ev.IncomingCall)
    assert (call.number, call.validity, call.source, call.rings) == (
        "+420123456789",
        "ok",
        "clip",
        1,
    )
    answer = line.answer(at_ring=2).result(5)
    assert isinstance(answer, Response)
    assert modem.call_state == "active" and line.status().state == "in_call"
    modem.caller_hangs_up()
    hung = recorder.wait(ev.CallerHungUp)
    assert hung.answered and line.status().state == "idle"


def test_a_hang_up_while_a_command_waits_for_its_answer_ends_the_call(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem("sim800")
    line = make_line(modem.path)
    up(recorder, line)
    modem.ring("+15551234567", rings=5, interval=0.3)
    call = recorder.wait(ev.IncomingCall)
    assert isinstance(line.answer().result(5), Response)
    modem.hold(r"AT\+CLCC")  # the modem is slow to answer this one
    pending = line.command("AT+CLCC", timeout=10)
    modem.wait_for_command(r"^AT\+CLCC$")
    modem.caller_hangs_up()  # NO CARRIER arrives while AT+CLCC waits for its OK
    hung = recorder.wait(ev.CallerHungUp)
    assert (hung.call_id, hung.answered) == (call.call_id, True)
    assert line.status().state == "idle"
    modem.send_garbage(b"\r\nOK\r\n")  # ...and then it answers the command
    result = pending.result(10)
    assert isinstance(result, Response) and result.command.text == "AT+CLCC"


def test_a_new_call_is_announced_at_its_first_ring_once(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    """`CallRinging` at a call's first RING, before its caller ID (which comes between the
    1st and 2nd ring), never for its later rings; the next call has its own."""
    modem = make_modem("usr5637")
    line = make_line(modem.path)
    up(recorder, line)
    calls = []
    for number in ("5551230001", "5551230002"):
        mark = recorder.mark()
        modem.ring(number, rings=3, interval=0.3)
        hung = recorder.wait(ev.CallerHungUp, since=mark, timeout=10)
        of_calls = (ev.CallRinging, ev.IncomingCall, ev.CallWaiting, ev.CallerHungUp)
        events = [e for e in recorder.events[mark:] if isinstance(e, of_calls)]
        kinds = [type(e).__name__ for e in events]
        assert kinds == ["CallRinging", "IncomingCall", "CallerHungUp"], kinds
        rang, incoming = events[0], events[1]
        assert isinstance(rang, ev.CallRinging) and isinstance(incoming, ev.IncomingCall)
        assert rang.call_id == incoming.call_id == hung.call_id
        assert incoming.number == number and incoming.rings >= 2
        calls.append(rang.call_id)
    assert calls[0] != calls[1]


def test_call_waiting_is_not_a_new_call(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem("sim800")
    line = make_line(modem.path)
    up(recorder, line)
    modem.ring("+420111222333", rings=3, interval=0.3)
    call = recorder.wait(ev.IncomingCall)
    line.answer().result(5)
    modem.send_urc("RING")  # a ring during the call: not a new call either
    modem.send_urc('+CCWA: "+420999888777",145,1')
    waiting = recorder.wait(ev.CallWaiting)
    assert waiting.number == "+420999888777"
    assert len(recorder.of(ev.IncomingCall)) == 1
    assert [e.call_id for e in recorder.of(ev.CallRinging)] == [call.call_id]
    line.hangup().result(5)
    assert "AT+CHUP" in modem.commands


def test_a_ring_while_the_line_dials_out_is_not_a_new_call(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    """Glare on an analog line: the line rings while our ATD (a fax we send) waits for
    its result. The caller ID is call waiting, no incoming call opens; the failed dial
    leaves the line idle again."""
    modem = make_modem("usr5637")
    line = make_line(modem.path, settings=Lines(caller_id_timeout=0.5))
    up(recorder, line)
    mark = recorder.mark()
    modem.hold(r"^ATDT")  # the dial goes on and on: no result yet
    dial = line.command(Command("ATDT5550100", timeout=30))
    modem.wait_for_command(r"^ATDT5550100$")
    assert line.status().state == "in_call"
    modem.ring("5551234567", name="GLARE", rings=3, interval=0.3)
    waiting = recorder.wait(ev.CallWaiting, since=mark, timeout=10)
    assert (waiting.number, waiting.name) == ("5551234567", "GLARE")
    modem.send_urc("NO CARRIER")  # the dial's own result: no call was made
    result = dial.result(10)
    assert isinstance(result, ErrorResult) and result.kind == "no_carrier"
    assert line.status().state == "idle"
    assert recorder.of(ev.IncomingCall) == [] and recorder.of(ev.CallRinging) == []
    assert recorder.of(ev.CallerHungUp) == recorder.of(ev.CallEnded) == []


def test_an_outgoing_gsm_call_is_a_call_of_the_line(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    """A call the line places (the staff member the bridge calls) makes the line busy
    ("in_call", not free for another), a second caller is call waiting, and the other side
    hanging up is a CallerHungUp in words that fit; a dial that fails leaves it idle."""
    modem = make_modem("sim800")
    line = make_line(modem.path)
    up(recorder, line)
    assert isinstance(line.command("ATD+15550001111;", timeout=10).result(12), Response)
    assert line.status().state == "in_call"
    modem.send_urc("RING")
    modem.send_urc('+CLIP: "+15559998888",145,"",0,"",0')
    waiting = recorder.wait(ev.CallWaiting)
    assert waiting.number == "+15559998888"
    modem.caller_hangs_up()  # the staff member hangs up
    hung = recorder.wait(ev.CallerHungUp)
    assert (hung.answered, hung.reason) == (True, "the other side hung up")
    assert line.status().state == "idle"
    assert recorder.of(ev.IncomingCall) == []

    # Placed and hung up by us: CallEnded, idle again.
    assert isinstance(line.command("ATD+15550002222;", timeout=10).result(12), Response)
    assert line.status().state == "in_call"
    line.hangup().result(5)
    ended = recorder.wait(ev.CallEnded)
    assert ended.call_id != hung.call_id
    assert line.status().state == "idle"

    # No network: the dial fails at once and the line stays free.
    modem.set_network(stat=0)
    result = line.command("ATD+15550003333;", timeout=10).result(12)
    assert isinstance(result, ErrorResult) and result.kind == "no_carrier"
    assert line.status().state == "idle"
    assert len(recorder.of(ev.CallerHungUp)) == len(recorder.of(ev.CallEnded)) == 1
    assert recorder.of(ev.IncomingCall) == []


# --- reconnects and bad input ---------------------------------------------------------------


def test_unplug_and_replug(make_modem: Modems, make_line: Lines_, recorder: Recorder) -> None:
    modem = make_modem("usr5637")
    line = make_line(modem.path)
    up(recorder, line)
    mark, seen = recorder.mark(), len(modem.commands)
    modem.unplug()
    down = recorder.wait(ev.LineDown, since=mark)
    assert "went away" in down.reason
    assert line.status().state == "down"
    with pytest.raises(LineDownError):
        line.command("AT").result(2)
    time.sleep(0.5)  # a few reconnect attempts while unplugged: one LineDown only
    failed = recorder.wait(ev.ReconnectFailed, since=mark)
    assert failed.attempts >= 1 and failed.line == line.name
    modem.replug()
    up(recorder, line, since=mark)
    assert len(recorder.of(ev.LineDown)) == 1
    assert "AT+VCID=1" in commands_since(modem, seen)
    assert isinstance(line.command("AT").result(2), Response)


def test_hung_modem_is_reconnected(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem("sim800")
    line = make_line(modem.path)
    up(recorder, line)
    mark = recorder.mark()
    modem.stop_answering()
    down = recorder.wait(ev.LineDown, since=mark, timeout=8)
    assert "stopped answering" in down.reason
    seen = len(modem.commands)
    modem.resume()
    up(recorder, line, since=mark, timeout=8)
    assert "AT+CLIP=1" in commands_since(modem, seen)


@pytest.mark.parametrize(
    ("name", "caller"),
    [
        ("sim800", CallerId(number="+15551234567")),  # RDY, +CFUN: 1, ... on the open port
        ("e1752", CallerId(number="+15551234567")),  # ^BOOT although ^CURC=0 was set
        ("cx93010", CallerId(number="5551234567", name="ALICE")),  # silent: +VCID? says 0
        ("usr5637", CallerId(number="5551234567", name="ALICE")),
    ],
)
def test_a_modem_reset_on_an_open_port_is_set_up_again(
    name: str, caller: CallerId, make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    import dataclasses

    from tests.modem.conftest import FAST

    analog = name in ("cx93010", "usr5637")
    # GSM: the boot codes alone must do it (no health check comes in this test); analog
    # modems say nothing when they reset, so the health check (AT+VCID?) finds it.
    options = FAST if analog else dataclasses.replace(FAST, health_interval=60)
    modem = make_modem(name, urc_interval=0.2)
    line = make_line(modem.urc_path, options=options)
    up(recorder, line)
    mark, seen = recorder.mark(), len(modem.commands)
    modem.reset()  # a power cycle (brown-out) while the port stays open
    restarted = recorder.wait(ev.ModemError, lambda e: e.code == "modem_restarted", since=mark)
    assert "set it up again" in restarted.message
    again = commands_since(modem, seen)
    enable = "AT-SCID=1;+VCID=1" if name == "cx93010" else "AT+VCID=1" if analog else "AT+CLIP=1"
    assert again.index(enable) > again.index("ATZ")
    up(recorder, line, since=mark)  # LineUp again: services re-sync (SMS sweep, forwarding)
    assert line.status().state == "idle" and len(recorder.of(ev.LineDown)) == 0
    modem.ring(caller, rings=3, interval=0.3)
    call = recorder.wait(ev.IncomingCall, since=mark)
    assert (call.number, call.validity) == (caller.number, "ok")


def test_ready_codes_only_make_the_line_check_its_settings(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    import dataclasses

    from tests.modem.conftest import FAST

    modem = make_modem("sim800")
    line = make_line(modem.path, options=dataclasses.replace(FAST, health_interval=60))
    up(recorder, line)
    # "Call Ready" also follows a PIN: with +CLIP still on, a look is all it costs.
    seen = len(modem.commands)
    modem.send_urc("Call Ready")
    modem.wait_for_command(r"^AT\+CLIP\?$", since=seen)
    assert isinstance(line.command("AT").result(5), Response)
    assert "ATZ" not in commands_since(modem, seen)
    # The same code when +CLIP is off (settings lost): the modem is set up again.
    assert isinstance(line.command("AT+CLIP=0").result(5), Response)
    mark, seen = recorder.mark(), len(modem.commands)
    modem.send_urc("SMS Ready")
    error = recorder.wait(ev.ModemError, lambda e: e.code == "modem_restarted", since=mark)
    assert "forgot its settings" in error.message
    assert "AT+CLIP=1" in commands_since(modem, seen)


def test_garbage_is_logged_and_ignored(
    make_modem: Modems, make_line: Lines_, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="firmware_app.modem.line")
    modem = make_modem("usr5637")
    line = make_line(modem.path)
    up(recorder, line)
    modem.send_garbage(b"\x00\xff\xfe\x01junk\x02\r\n")
    modem.send_garbage(b"OK\r\n")  # a result nobody asked for
    deadline = time.monotonic() + 3
    while line.garbage < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert line.garbage == 2
    assert "ignored bytes from the modem" in caplog.text
    assert isinstance(line.command("ATI0").result(2), Response)
    modem.ring("5551234567", rings=2, interval=0.3)
    assert recorder.wait(ev.IncomingCall).number == "5551234567"
    assert len(recorder.of(ev.LineDown)) == 0


def test_writer_is_never_blocked_by_the_reader(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem("usr5637")
    line = make_line(modem.path)
    up(recorder, line)
    started = time.perf_counter()
    for _ in range(20):
        assert isinstance(line.command(Command("AT", timeout=2)).result(2), Response)
    per_command = (time.perf_counter() - started) / 20
    assert per_command < 0.05  # a reader holding a lock across reads costs whole timeouts


# --- SIM PIN --------------------------------------------------------------------------------


def pin_commands(modem: SimulatedModem) -> list[str]:
    return [c for c in modem.commands if c.upper().startswith("AT+CPIN=")]


def test_right_pin_unlocks(make_modem: Modems, make_line: Lines_, recorder: Recorder) -> None:
    modem = make_modem("sim800", pin="1234")
    line = make_line(modem.path, Lines(sim_pin="1234"))
    up(recorder, line)
    assert pin_commands(modem) == ['AT+CPIN="1234"']
    assert line.status().sim == "READY"
    recorder.wait(ev.SignalChanged, lambda e: e.registration == "registered (home)")


def test_wrong_pin_is_sent_once_only(
    make_modem: Modems, make_line: Lines_, recorder: Recorder, bus: object
) -> None:
    modem = make_modem("sim800", pin="1234")
    settings = Lines(sim_pin="9999")
    line = make_line(modem.path, settings)
    up(recorder, line)
    error = recorder.wait(ev.ModemError, lambda e: e.code == "sim_pin_wrong")
    assert "will not send it again" in error.message
    assert modem.sim.pin_attempts == 2
    # A reconnect (or a restart: the rejection is kept on disk) does not try it again.
    mark = recorder.mark()
    modem.unplug()
    recorder.wait(ev.LineDown, since=mark)
    modem.replug()
    up(recorder, line, since=mark)
    recorder.wait(ev.ModemError, lambda e: e.code == "sim_pin_rejected", since=mark)
    assert pin_commands(modem) == ['AT+CPIN="9999"']
    assert modem.sim.pin_attempts == 2
    assert line.status().last_error_code == "sim_pin_rejected"


def test_corrected_pin_in_settings_unlocks(
    make_modem: Modems, bus: object, recorder: Recorder, tmp_path: Path
) -> None:
    from firmware_app.events import EventBus, SettingsChanged

    assert isinstance(bus, EventBus)
    modem = make_modem("sim800", pin="1234")
    current = {"lines": Lines(sim_pin="0000")}
    from tests.modem.conftest import FAST

    line = Line(
        "line1",
        str(modem.path),
        bus=bus,
        settings=lambda: current["lines"],
        options=FAST,
        pin_file=tmp_path / "p.json",
    )
    line.start()
    try:
        recorder.wait(ev.ModemError, lambda e: e.code == "sim_pin_wrong")
        current["lines"] = Lines(sim_pin="1234")
        bus.publish(SettingsChanged(sections=("lines",)))
        recorder.wait(ev.SignalChanged, lambda e: e.registration == "registered (home)")
        assert pin_commands(modem) == ['AT+CPIN="0000"', 'AT+CPIN="1234"']
        assert line.status().sim == "READY"
    finally:
        line.stop()
        line.join(2)
        line.close()


def test_blocked_sim_gets_no_pin(make_modem: Modems, make_line: Lines_, recorder: Recorder) -> None:
    modem = make_modem("sim7600", pin="1234")
    modem.sim.pin_attempts = 0  # three wrong PINs before: the SIM wants its PUK
    line = make_line(modem.path, Lines(sim_pin="1234"))
    up(recorder, line)
    error = recorder.wait(ev.ModemError, lambda e: e.code == "sim_puk")
    assert "PUK" in error.message
    assert pin_commands(modem) == []


def test_missing_pin_is_explained(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem("ec25", pin="1234")
    make_line(modem.path)
    error = recorder.wait(ev.ModemError, lambda e: e.code == "sim_pin_needed")
    assert "Settings" in error.message
    assert pin_commands(modem) == []


# --- driver error paths ----------------------------------------------------------------------


def test_a_modem_refusing_voice_mode_is_explained(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    # callattendant #163: some USR5637 units answer ERROR to AT+FCLASS=8.
    modem = make_modem("usr5637", quirks={"fclass8_error": True})
    line = make_line(modem.path)
    up(recorder, line)
    modem.ring("5551234567", rings=4, interval=0.4)
    recorder.wait(ev.IncomingCall)
    seen = len(modem.commands)
    result = line.answer().result(10)
    assert isinstance(result, ErrorResult)
    assert commands_since(modem, seen)[:2] == ["AT+FCLASS=8;+VLS=1", "AT+FCLASS=8"]
    error = recorder.wait(ev.ModemError, lambda e: e.code == "voice_refused")
    assert "firmware 1.2.23" in error.message
    assert not recorder.of(ev.CallAnswered)
    assert line.status().state == "ringing"


def test_caller_id_that_never_sticks_is_reported(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    import dataclasses

    from firmware_app.modem.simulator.personalities import USR5637

    # A modem that takes AT+VCID=1 but still reads 0 (as a Conexant does after ATZ, for
    # good): the line says so and takes calls without the number.
    forgetful = dataclasses.replace(USR5637, fixed={"+VCID?": ("0",)})
    modem = make_modem(forgetful)
    line = make_line(modem.path)
    error = recorder.wait(ev.ModemError, lambda e: e.code == "caller_id_off")
    assert "AT+VCID? answers 0" in error.message
    up(recorder, line)
    cmds = modem.commands
    init = [c for c in cmds[cmds.index("ATZ") :] if "VCID" in c]
    assert init[:4] == ["AT+VCID=1", "AT+VCID?"] * 2  # sent and checked twice, then given up
    status = line.status()
    assert (status.state, status.caller_id, status.last_error_code) == (
        "idle",
        False,
        "caller_id_off",
    )


def test_no_ok_after_cpin_is_taken_as_the_answer(
    make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    # REFERENCE.md 2: some modems send no OK after AT+CPIN?.
    modem = make_modem("sim800", pin="1234", quirks={"cpin_no_ok": True})
    line = make_line(modem.path, Lines(sim_pin="1234"))
    up(recorder, line, timeout=15)
    assert line.profile is not None and line.profile.cpin_no_ok
    assert pin_commands(modem) == ['AT+CPIN="1234"']
    assert line.status().sim == "READY"
    recorder.wait(ev.SignalChanged, lambda e: e.registration == "registered (home)")
    assert not recorder.of(ev.LineDown)  # unanswered +CPIN? never counts as a dead modem


@pytest.mark.parametrize("name", ["sim800", "sim7600", "ec25"])
def test_start_up_waits_for_sms_ready_after_the_pin(
    name: str, make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    # SMS commands are refused for a while after the PIN, until "SMS Ready" (SIM800),
    # "SMS DONE" (SIM7600) or "+QIND: SMS DONE" (EC25): REFERENCE.md 2.
    modem = make_modem(name, pin="1234", ready_delay=1.0)
    line = make_line(modem.path, Lines(sim_pin="1234"))
    up(recorder, line, timeout=15)
    assert modem.refused_before_ready == 0  # none sent before the modem said it was ready
    cmds = modem.commands
    assert cmds.index("AT+CMGF=0") > cmds.index('AT+CPIN="1234"')
    assert any(c.startswith("AT+CNMI=2,1,0") for c in cmds)


@pytest.mark.parametrize(
    ("name", "ask"), [("sim800", "AT+SPIC"), ("ec25", 'AT+QPINC="SC"'), ("e1752", "AT^CPIN?")]
)
def test_the_last_pin_attempt_is_never_used(
    name: str, ask: str, make_modem: Modems, make_line: Lines_, recorder: Recorder
) -> None:
    modem = make_modem(name, pin="1234", urc_interval=0.2)
    modem.sim.pin_attempts = 1  # two wrong tries before, elsewhere
    line = make_line(modem.urc_path, Lines(sim_pin="1234"))
    error = recorder.wait(ev.ModemError, lambda e: e.code == "sim_pin_last_attempt", timeout=10)
    assert "only 1 PIN attempt" in error.message
    assert ask in modem.commands
    assert pin_commands(modem) == []
    assert modem.sim.pin_attempts == 1
    assert line.status().last_error_code == "sim_pin_last_attempt"


def test_data_mode_hand_off(
    make_modem: Modems, make_line: Lines_, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    import dataclasses

    from tests.modem.conftest import FAST

    # The line's and the simulator's own account of the exchange, shown if this fails.
    caplog.set_level(logging.DEBUG, logger="firmware_app.modem")
    modem = make_modem("usr5637")
    line = make_line(modem.path, options=dataclasses.replace(FAST, health_interval=60))
    up(recorder, line)
    received: list[bytes] = []
    modem.stop_answering()  # this test plays the modem's part of AT+VRX by hand
    future = line.enter_data(Command("AT+VRX", timeout=10), received.append)
    modem.wait_for_command(r"^AT\+VRX$")
    modem.send_garbage(b"\r\nCONNECT\r\n\x80\x81\x10\x03")
    assert future.result(10).result == "CONNECT"
    deadline = time.monotonic() + 3
    while b"".join(received) != b"\x80\x81\x10\x03" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b"".join(received) == b"\x80\x81\x10\x03"
    line.write_data(b"\x10!")  # DLE ! stops recording (V.253)
    back = line.leave_data(b"", await_result=Command("AT+VRX", timeout=10))
    modem.send_garbage(b"\r\nOK\r\n")
    assert isinstance(back.result(10), Response)
    modem.resume()
    assert isinstance(line.command("AT").result(10), Response)
