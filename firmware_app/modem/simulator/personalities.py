"""Modem personalities as data: what each real modem answers, quirks included.

One table per modem, each naming its sources. Values marked "format per source, value
illustrative" follow the documented shape with a plausible value. Pure data: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .class1 import COMMANDS as CLASS1_COMMANDS
from .fax2 import COMMANDS as CLASS2_COMMANDS

Kind = Literal["analog", "gsm"]


def luhn_complete(body: str) -> str:
    """Append the Luhn check digit to a 14-digit IMEI body (3GPP TS 23.003 annex B)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True, kw_only=True)
class Personality:
    """Everything that makes one modem model answer the way it does."""

    name: str
    title: str
    kind: Kind
    sources: tuple[str, ...]
    # ATI<n> answers (lines); a missing n answers ERROR.
    info: Mapping[int, tuple[str, ...]]
    manufacturer: str
    model: str
    revision: str
    imei: str = ""
    # Extended commands this model knows beyond the V.250 core (names in upper case).
    commands: frozenset[str] = frozenset()
    # Fixed answers: upper-cased "NAME" + suffix ("?", "=?", "=1") -> information lines.
    fixed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Analog: +FCLASS=? per quirk state, +VSM=? lines, +VLS=? lines.
    fclass_options: str = ""
    fclass_options_class2: str = ""
    vsm_options: tuple[str, ...] = ()
    vls_options: tuple[str, ...] = ()
    # Class 1: T.31 modulation codes for AT+FTM=? / AT+FRM=? (simulator/class1.py).
    fax1_modulations: tuple[int, ...] = ()
    # Quirks this model can show, with their default state and where they come from.
    quirks: Mapping[str, bool] = field(default_factory=dict)
    # GSM: URCs sent after power-on; those held back until the SIM is unlocked.
    boot_urcs: tuple[str, ...] = ()
    ready_urcs: tuple[str, ...] = ()
    lte: bool = False
    # GSM caller ID line; {number} {type} {alpha} {validity} are filled in.
    clip_format: str = '+CLIP: "{number}",{type},"",0,"{alpha}",{validity}'
    # GSM: what the modem says when the caller gives up; "" sends nothing.
    caller_hangup_urc: str = "NO CARRIER"
    # GSM: what the modem says when an answered call ends from the far side.
    call_end_urc: str = "NO CARRIER"
    # GSM: whether +CPIN: <code> is reported as a URC after power-on.
    cpin_urc_at_boot: bool = True
    # SMS memories offered by +CPMS=? and the capacity of each.
    memories: Mapping[str, int] = field(default_factory=dict)
    # Number of serial ports the device exposes; index of the one that carries URCs.
    ports: int = 1
    urc_port: int = 0
    # What each port is, in USB interface order (empty: every port answers AT commands):
    # "at" / "pcui" (AT commands and URCs), "modem" (AT commands and PPP data), "diag" /
    # "dm" (binary diagnostics: never answers AT), "nmea" (GPS sentences out, nothing in),
    # "voice" (PCM call audio: `SimulatedModem.pcm_audio()` lives there).
    port_roles: tuple[str, ...] = ()
    # The full USB layout of a module simulated as one port by default (`usb=True`), and
    # the index of its URC port there.
    usb_roles: tuple[str, ...] = ()
    usb_urc_port: int = 0
    # Analog caller-ID field separator (REFERENCE.md 1: "with or without spaces around =").
    cid_separator: str = " = "


# ITU-T V.253 voice data and gain commands both analog modems take (10.1.3 +VRX, 10.1.4 +VTX,
# +VSD silence detection, +VGT/+VGR gains, +VIT inactivity timer); see simulator/voice.py.
# +VTR (voice duplex) is in the U.S. Robotics 56K command reference and the Conexant CX930xx
# AT command reference (102752B), so both analog personalities take it.
_VOICE_COMMANDS = frozenset({"+VTX", "+VRX", "+VTR", "+VSD", "+VGT", "+VGR", "+VIT"})
# Class 1 fax modulations of a V.17 (14400 bit/s) fax modem, T.31 Table 1: V.27ter 2400 and
# 4800, V.29 7200 and 9600, V.17 7200-14400 with long and short training.
_V17_MODEM = (24, 48, 72, 73, 74, 96, 97, 98, 121, 122, 145, 146)

# --- U.S. Robotics USR5637 ------------------------------------------------------------------
# Sources: REFERENCE.md section 1 table row "U.S. Robotics USR5637" (ATI0 5601, Class 1 only
# per the USR5637 user guide, AT+FCLASS=8 ERROR on some units per callattendant #163,
# AT+VLS=5 before AT+VRX on new firmware); REFERENCE.md "Voice mode" (+VSM 128..132);
# ITU-T V.253 for the +VSM=? line shape <cml>,<vsmid>,<bps>,<tm>,(<vsr>),(<sds>),(<sel>).
USR5637 = Personality(
    name="usr5637",
    title="U.S. Robotics USR5637 56K USB fax modem",
    kind="analog",
    sources=(
        "REFERENCE.md 1: USR5637 row, Voice mode (+VSM list)",
        "U.S. Robotics USR5637 user guide (Class 1 fax only)",
        "callattendant issue #163 (ERROR to AT+FCLASS=8 on some units)",
        "ITU-T V.253 (+VSM=?, +VLS, +VCID)",
    ),
    info={
        0: ("5601",),
        1: ("OK",),  # ROM checksum test; format per source, value illustrative
        2: ("OK",),
        3: ("U.S. Robotics 56K FAX USB V1.2.23",),  # firmware >= 1.2.23 answers calls
        4: ("U.S. Robotics 56K FAX USB",),
        5: ("OK",),
        6: ("OK",),
        7: ("Product type US/Canada USB",),
        9: ("USR5637",),
    },
    manufacturer="U.S. Robotics",
    model="USR5637",
    revision="1.2.23",
    commands=frozenset(
        {"+GMI", "+GMM", "+GMR", "+FCLASS", "+VSM", "+VLS", "+VCID", "+GCI", "+VTS"}
        | _VOICE_COMMANDS
        | CLASS1_COMMANDS
    ),
    fclass_options="0,1,8",
    # A V.17 14400 fax modem (USR5637 user guide); codes per T.31 Table 1.
    fax1_modulations=_V17_MODEM,
    vsm_options=(
        '128,"8-BIT LINEAR",8,0,(8000),(0),(0)',
        '129,"16-BIT LINEAR",16,0,(8000),(0),(0)',
        '130,"8-BIT ALAW",8,0,(8000),(0),(0)',
        '131,"8-BIT ULAW",8,0,(8000),(0),(0)',
        '132,"IMA ADPCM",4,0,(8000),(0),(0)',
    ),
    vls_options=(
        '0,"",00000000,00000000,00000000',
        '1,"T",00000000,00000000,00000000',
        '5,"ST",00000000,00000000,00000000',
    ),
    quirks={
        # callattendant #163: some units answer ERROR to AT+FCLASS=8.
        "fclass8_error": False,
        # REFERENCE.md 1: new firmware wants AT+VLS=5 before AT+VRX (kept for voice mode).
        "vrx_needs_vls5": True,
    },
)

# --- Zoom 3095 / Conexant CX93010 ----------------------------------------------------------
# Sources: REFERENCE.md section 1 row "Zoom 3095 / generic Conexant CX93010 sticks" (ATI0
# 56000; Class 1/1.0; Class 2 only on firmware V0.2013, not V0.2002); "Caller ID (analog)"
# (AT-SCID=1;+VCID=1 Conexant form, +VCID lost after reset, home-assistant/core #57765);
# "Voice mode" (CX93001 +VSM 0, 1, 129, 131, 132 at 8000 Hz); Conexant CX93001 AT command
# reference for ATI3 and +GMI/+GMM/+GMR strings (format per source, values illustrative).
CX93010 = Personality(
    name="cx93010",
    title="Zoom 3095 / Conexant CX93010 USB voice modem",
    kind="analog",
    sources=(
        "REFERENCE.md 1: Zoom 3095 / Conexant CX93010 row, Caller ID, Voice mode",
        "home-assistant/core issue #57765 (+VCID lost after reset)",
        "Conexant CX93001 AT command reference (ATI, +GMx, -SCID, +IFC)",
        "Conexant AT command references 100722A / 102184B (+VSM=? answer format)",
        "ITU-T V.253 (+VSM=?, +VLS, +VCID)",
    ),
    info={
        0: ("56000",),
        1: ("OK",),
        2: ("OK",),
        3: ("CX93001-EIS_V0.2013-V92",),
        4: ("OK",),
        5: ("OK",),
        6: ("OK",),
        7: ("OK",),
    },
    manufacturer="CONEXANT",
    model="CX93001-EIS_V0.2013-V92",
    revision="CX93001-EIS_V0.2013-V92",
    commands=frozenset(
        {"+GMI", "+GMM", "+GMR", "+FCLASS", "+VSM", "+VLS", "+VCID", "+GCI", "-SCID", "+VTS"}
        | {"+IFC"}  # V.250 flow control, (0-2),(0-2), default 2,2 (CX93001 reference)
        | _VOICE_COMMANDS
        | CLASS1_COMMANDS
        | CLASS2_COMMANDS  # used only when +FCLASS=2 is offered (quirk "class2")
    ),
    fclass_options="0,1,1.0,8",
    # Conexant "Commands for Host-Processed Modems" 100498E Table 4-2: V.17 up to 14400.
    fax1_modulations=_V17_MODEM,
    fclass_options_class2="0,1,1.0,2,8",
    # Conexant's AT command references (100722A 6.2.2.12, 102184B) print +VSM=? with bare
    # values, no parentheses: 1,"UNSIGNED PCM",8,0,8000,0,0. Codes per REFERENCE.md 1.
    vsm_options=(
        '0,"SIGNED PCM",8,0,8000,0,0',
        '1,"UNSIGNED PCM",8,0,8000,0,0',
        '129,"IMA ADPCM",4,0,8000,0,0',
        '131,"ULAW",8,0,8000,0,0',
        '132,"ALAW",8,0,8000,0,0',
    ),
    vls_options=(
        '0,"",00000000,00000000,00000000',
        '1,"T",0FFF0000,00000000,00000000',
    ),
    quirks={
        # REFERENCE.md 1: firmware V0.2013 offers Class 2, V0.2002 does not.
        "class2": True,
        # home-assistant/core #57765: +VCID=1 is forgotten after ATZ.
        "vcid_lost_on_reset": True,
        # callattendant #94 (REFERENCE.md 1): acts only on DLE DLE DLE ETX (and CAN, !)
        # and ends its receive data the same way.
        "triple_dle": True,
        # Si2493 AN93 table 112: DTMF reported as DLE / digit ... DLE ~.
        "dtmf_framing": True,
    },
)

# --- MultiTech MT9234MU ---------------------------------------------------------------------
# Sources: REFERENCE.md section 1 row "MultiTech MT9234MU" (voice, fax Class 1 and 2.0,
# cleaner audio at 115200 baud per callattendant #171); the MultiTech "AT Commands Reference
# Guide for the MultiModem and SocketModem MT9234 Series" (S000434H: the MT9234MU is among
# the models it covers; In: I0/I3 default speed and controller firmware version, I1 ROM
# checksum "e.g. 12AB", I2 ROM check OK/ERROR, I4 data pump firmware "e.g. 94", I5 board
# ID, I9 country; +FCLASS with Class 2.0 from revision H; +VLS 0-7 only; +VSM=? answers
# in the short form <cml>,"<name>",(<rates>): 128 8-bit linear, 129 16-bit linear at
# 7200/8000/11025, 130 A-law and 131 u-law at 8000, 132 IMA ADPCM; default 129; +VCID 0-2);
# CallAttendantNext lib/modem/modem.ts (the MT9234MU support of callattendant PR #170):
# ATI0 names the MT9234MU, AT+VSM=128,8000 works, voice ends with a single DLE ETX / DLE !
# (unlike the Conexant's triple DLE) and DTMF comes as plain DLE digits. Linux
# drivers/usb/serial/ti_usb_3410_5052.c: USB 06e0:f114 (TI 3410 bridge, /dev/ttyUSB*,
# firmware mts_mt9234mu.fw). Strings marked illustrative follow the documented shape.
MT9234MU = Personality(
    name="mt9234mu",
    title="MultiTech MT9234MU MultiMobile USB modem",
    kind="analog",
    sources=(
        "REFERENCE.md 1: MultiTech MT9234MU row",
        "MultiTech AT Commands Reference Guide, MultiModem & SocketModem MT9234 Series "
        "(S000434H): In, +FCLASS (Class 2.0), +VLS, +VSM=?, +VCID",
        "CallAttendantNext lib/modem/modem.ts (callattendant PR #170, issue #171): ATI0, "
        "AT+VSM=128,8000, single DLE ETX / DLE !",
        "Linux drivers/usb/serial/ti_usb_3410_5052.c (USB id 06e0:f114)",
        "ITU-T V.253 (+VSM, +VLS, +VCID)",
    ),
    info={
        # I0 and I3: "default speed and controller firmware version" (S000434H); the
        # model name in it per CallAttendantNext. Value illustrative.
        0: ("MT9234MU V.92 Data/Fax/Voice Modem Version 1.06",),
        1: ("12AB",),  # ROM checksum, the guide's own example
        2: ("OK",),  # ROM check
        3: ("MT9234MU V.92 Data/Fax/Voice Modem Version 1.06",),
        4: ("94",),  # data pump firmware, the guide's own example
        5: ("1.06 MT9234MU B5",),  # board ID: software, hardware, country (illustrative)
        9: ("B5",),  # country code (illustrative)
    },
    manufacturer="Multi-Tech Systems",
    model="MT9234MU",
    revision="1.06",
    commands=frozenset(
        {"+GMI", "+GMM", "+GMR", "+FCLASS", "+VSM", "+VLS", "+VCID", "+GCI", "+VTS"}
        | _VOICE_COMMANDS
        | CLASS1_COMMANDS
        | CLASS2_COMMANDS  # Class 2.0 (S000434H revision H "Added Fax Class 2.0 to +FCLASS")
    ),
    fclass_options="0,1,2.0,8",
    fax1_modulations=_V17_MODEM,
    vsm_options=(
        '128,"8-BIT LINEAR",(7200,8000,11025)',
        '129,"16-BIT LINEAR",(7200,8000,11025)',
        '130,"8-BIT ALAW",(8000)',
        '131,"8-BIT ULAW",(8000)',
        '132,"IMA ADPCM",(7200,8000,11025)',
    ),
    vls_options=(
        '0,"",00000000,00000000,00000000',
        '1,"T",00000000,00000000,00000000',
    ),
    quirks={
        # CallAttendantNext modem.ts: the MT9234MU sends no DLE l (loop current break) when
        # the caller hangs up; the hang-up is heard as dial tone, busy tone or silence
        # (DLE d, b, s, q with +VSD).
        "no_loop_break": True,
    },
)

_SIM800_IMEI = luhn_complete("86626203712345")
_SIM7600_IMEI = luhn_complete("86214704123456")
_EC25_IMEI = luhn_complete("86744503123456")
_E1752_IMEI = luhn_complete("35316702123456")

_GSM_CORE = frozenset(
    {
        "+GMI",
        "+GMM",
        "+GMR",
        "+GSN",
        "+CGMI",
        "+CGMM",
        "+CGMR",
        "+CGSN",
        "+CIMI",
        "+CCID",
        "+CMEE",
        "+CPIN",
        "+CREG",
        # 3GPP TS 27.007 10.1.19 GPRS registration and 10.1.9 attach (gammu networkinfo
        # asks both; every modem here has them)
        "+CGREG",
        "+CGATT",
        "+CSQ",
        "+COPS",
        "+CLIP",
        "+CRC",
        "+CNMI",
        "+CMGF",
        "+CPMS",
        "+CMGL",
        "+CMGR",
        "+CMGD",
        "+CMGS",
        "+CMGW",
        "+CSCA",
        "+CSCS",
        "+CSMS",
        "+CSDH",
        "+CHUP",
        "+CLCC",
        "+CVHU",
        "+CFUN",
        "+GCAP",
        "+CPBS",
        "+CPBR",
        "+CCFC",  # 3GPP TS 27.007 7.11 call forwarding
        "+VTS",  # 3GPP TS 27.007 C.11 DTMF tones
        # 3GPP TS 27.005 3.4.4 (acknowledge a +CMT/+CDS) and TS 27.007 7.15 (USSD).
        "+CNMA",
        "+CUSD",
    }
)

# --- SIMCom SIM800 -------------------------------------------------------------------------
# Sources: SIM800 Series AT Command Manual V1.09 (2015-08-03): ATI "SIM800 R14.18" (3.2.x),
# +CGMI "SIMCOM_Ltd", +CGMM "SIMCOM_SIM800", +CLIP format (3.2.x:
# +CLIP: <number>,<type>,<subaddr>,<satype>,<alphaId>,<CLI validity>), URC list of chapter
# "Summary of Unsolicited Result Codes": RDY, +CFUN: 1, +CPIN: READY, Call Ready (AT+CIURC=1),
# SMS Ready, UNDER-VOLTAGE WARNNING (sic, spelled so in the manual), UNDER-VOLTAGE POWER DOWN;
# CPMS memories "SM","ME","SM_P","ME_P","MT" (only SM and ME simulated); AT+DDET=<mode>[,
# <interval>,<reportMode>,<ssdet>]: far-end keys reported as +DTMF: <key> once mode is 1;
# REFERENCE.md 2 row.
SIM800 = Personality(
    name="sim800",
    title="SIMCom SIM800 GSM module",
    kind="gsm",
    sources=(
        "SIM800 Series AT Command Manual V1.09 (ATI, +CGMx, +CLIP, +DDET, URC summary)",
        "REFERENCE.md 2: SIM800 row, start-up sequence, SMS",
        "3GPP TS 27.007 / 27.005 (+CREG, +CPIN, +CMGL, +CMGS prompt)",
    ),
    info={0: ("SIM800 R14.18",)},
    manufacturer="SIMCOM_Ltd",
    model="SIMCOM_SIM800",
    revision="Revision:1418B04SIM800L24",
    imei=_SIM800_IMEI,
    commands=_GSM_CORE | {"+CIURC", "+CHFA", "+CLVL", "+CMIC", "+SPIC", "+DDET"},
    fixed={
        "+CHFA?": ("+CHFA: 0",),
        "+CLVL?": ("+CLVL: 100",),
        "+CIURC?": ("+CIURC: 1",),
    },
    boot_urcs=("RDY", "+CFUN: 1"),
    ready_urcs=("Call Ready", "SMS Ready"),
    clip_format='+CLIP: "{number}",{type},"",0,"{alpha}",{validity}',
    caller_hangup_urc="NO CARRIER",
    memories={"SM": 20, "ME": 20},
    quirks={"cpin_no_ok": False},
)

# --- SIMCom SIM7600 ------------------------------------------------------------------------
# Sources: SIM7500_SIM7600 Series AT Command Manual (ATI block "Manufacturer/Model/Revision/
# IMEI/+GCAP", +CGMR answers with a "+CGMR: " prefix, +CEREG, +CPCMREG USB audio control
# listed under "AT commands for call control"), power-on URCs RDY, +CPIN: READY, SMS DONE,
# PB DONE; REFERENCE.md 2 row (AT+CPCMREG=1 only once connected, =0 on hang-up).
SIM7600 = Personality(
    name="sim7600",
    title="SIMCom SIM7600E-H LTE module",
    kind="gsm",
    sources=(
        "SIM7500_SIM7600 Series AT Command Manual V1.12 (ATI, +CEREG, +CPCMREG, +CATR, URCs)",
        "SIM7500/SIM7600 Linux USB user guide (interface layout)",
        "REFERENCE.md 2: SIM7600 row",
        "3GPP TS 27.007 / 27.005",
    ),
    info={
        0: (
            "Manufacturer: SIMCOM INCORPORATED",
            "Model: SIMCOM_SIM7600E-H",
            "Revision: SIM7600M22_V2.0",
            f"IMEI: {_SIM7600_IMEI}",
            "+GCAP: +CGSM",
        )
    },
    manufacturer="SIMCOM INCORPORATED",
    model="SIMCOM_SIM7600E-H",
    revision="+CGMR: LE20B04SIM7600M22",
    imei=_SIM7600_IMEI,
    commands=_GSM_CORE | {"+CEREG", "+CPCMREG", "+CATR", "+SPIC"},
    fixed={"+CPCMREG=?": ("+CPCMREG: (0-1)",)},
    boot_urcs=("RDY",),
    ready_urcs=("SMS DONE", "PB DONE"),
    lte=True,
    # SIM7500/SIM7600 Linux USB user guide: ttyUSB0 diagnostics, 1 NMEA, 2 AT, 3 modem
    # (PPP), 4 audio. URCs go where AT+CATR says (manual 4.11: 0 all ports, the default).
    usb_roles=("diag", "nmea", "at", "modem", "voice"),
    usb_urc_port=2,
    quirks={"cpin_no_ok": False},
    clip_format='+CLIP: "{number}",{type},"",0,"{alpha}",{validity}',
    caller_hangup_urc="MISSED_CALL: {time} {number}",
    memories={"SM": 20, "ME": 20},
)

# --- Quectel EC25 --------------------------------------------------------------------------
# Sources: Quectel EC25&EC21 AT Commands Manual V1.3 (2018-09-20): ATI answers
# "Quectel / EC25 / Revision: ...", +CLIP: <number>,<type>,[subaddr],[satype],[<alpha>],
# <CLI validity>, +QPCMV, +QGPSCFG="outport", +QURCCFG; power-on URCs RDY, +CFUN: 1, +CPIN: READY,
# +QUSIM: 1, +QIND: SMS DONE, +QIND: PB DONE; REFERENCE.md 2 row (QPCMV=1,0 USB serial PCM,
# =1,2 UAC; turn GPS NMEA off the port with AT+QGPSCFG="outport","none").
EC25 = Personality(
    name="ec25",
    title="Quectel EC25 LTE module",
    kind="gsm",
    sources=(
        "Quectel EC25&EC21 AT Commands Manual V1.3 (ATI, +CLIP, +QPCMV, +QGPSCFG, +QURCCFG, "
        "+QTONEDET: far-end keys reported as +QTONEDET: <ASCII code> once enabled)",
        "Quectel LTE Linux USB driver user guide (interface layout)",
        "REFERENCE.md 2: Quectel EC25/EG25 row",
        "3GPP TS 27.007 / 27.005",
    ),
    info={0: ("Quectel", "EC25", "Revision: EC25EFAR06A06M4G")},
    manufacturer="Quectel",
    model="EC25",
    revision="EC25EFAR06A06M4G",
    imei=_EC25_IMEI,
    commands=_GSM_CORE | {"+CEREG", "+QPCMV", "+QGPSCFG", "+QURCCFG", "+QPINC", "+QTONEDET"},
    fixed={"+QPCMV=?": ("+QPCMV: (0,1),(0-2)",)},
    boot_urcs=("RDY", "+CFUN: 1"),
    ready_urcs=("+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"),
    lte=True,
    clip_format='+CLIP: "{number}",{type},,,"{alpha}",{validity}',
    caller_hangup_urc="NO CARRIER",
    memories={"SM": 20, "ME": 20},
    # Quectel LTE Linux USB driver user guide: interface 0 DM, 1 NMEA, 2 AT, 3 modem.
    # AT+QURCCFG="urcport" (EC25&EC21 AT Commands Manual 2.25): "usbat" (the default),
    # "usbmodem" or "uart1"; the modem port answers AT too but gets no URCs by default.
    usb_roles=("dm", "nmea", "at", "modem"),
    usb_urc_port=2,
    quirks={"cpin_no_ok": False},
)

# --- Huawei E1752 --------------------------------------------------------------------------
# Sources: Huawei E173/E1752 AT command interface specification (ATI block, ^CURC to stop
# ^RSSI/^BOOT/^MODE periodic reports, ^CVOICE: <mode>,<sampling rate>,<data bits>,<frame
# period>, ^DDSETEX=2 voice on the audio port, ^CEND call end report, ^GETPORTMODE: the
# interface number of each port; unsolicited reports go to the PCUI port); REFERENCE.md 2
# row (find the port that carries URCs: python-gsmmodem #44; hangs after hours: gammu #4);
# chan_dongle (audio on ttyUSB1, AT commands on ttyUSB2, the modem port ttyUSB0) and its
# logs for the "^CEND:1,0,104,16" end-of-call shape. The three ports follow ^GETPORTMODE:
# interface 0 modem (answers AT, no URCs), 1 diagnostics/voice (PCM audio), 2 PCUI.
E1752 = Personality(
    name="e1752",
    title="Huawei E1752 3G USB stick",
    kind="gsm",
    sources=(
        "Huawei E173/E1752 AT command interface specification (^CURC, ^CVOICE, ^DDSETEX)",
        "REFERENCE.md 2: Huawei E173/E1750/K3715 row",
        "python-gsmmodem issue #44 (URC port), gammu issue #4 (hangs)",
        "chan_dongle README (audio and data ports of E1550/E173 sticks)",
        "3GPP TS 27.007 / 27.005",
    ),
    info={
        0: (
            "Manufacturer: huawei",
            "Model: E1752",
            "Revision: 11.126.03.00.00",
            f"IMEI: {_E1752_IMEI}",
            "+GCAP: +CGSM,+DS,+ES",
        )
    },
    manufacturer="huawei",
    model="E1752",
    revision="11.126.03.00.00",
    imei=_E1752_IMEI,
    commands=_GSM_CORE | {"^CURC", "^CVOICE", "^DDSETEX", "^U2DIAG", "^GETPORTMODE", "^CPIN"},
    fixed={
        "^CVOICE?": ("^CVOICE:0,8000,16,20",),
        "^CVOICE=?": ("^CVOICE:(0)",),
        "^GETPORTMODE": ("^GETPORTMODE: TYPE: WCDMA: huawei,MDM:0,DIAG:1,PCUI:2",),
    },
    boot_urcs=("^BOOT:23918122,0,0,0,72", "^MODE:5,4"),
    ready_urcs=(),
    clip_format='+CLIP: "{number}",{type},,,,{validity}',
    caller_hangup_urc="^CEND:1,0,104,16",
    call_end_urc="^CEND:1,0,104,16",
    cpin_urc_at_boot=False,
    memories={"SM": 20, "ME": 20},
    ports=3,
    urc_port=2,
    port_roles=("modem", "voice", "pcui"),
    quirks={
        # ^RSSI/^BOOT/^MODE periodic reports until AT^CURC=0 (REFERENCE.md 2).
        "urc_flood": True,
        # REFERENCE.md 2: some modems send no OK after AT+CPIN? (every GSM personality
        # can show it; which models do is not documented).
        "cpin_no_ok": False,
    },
)

PERSONALITIES: Mapping[str, Personality] = {
    p.name: p for p in (USR5637, CX93010, MT9234MU, SIM800, SIM7600, EC25, E1752)
}
PERSONALITY_NAMES: tuple[str, ...] = tuple(PERSONALITIES)
