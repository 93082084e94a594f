"""SMS PDU codec: real PDUs, gammu cross-checks, round trips, split/count rules, fuzzing."""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_app.protocol.errors import LocalProtocolError, RemoteProtocolError
from firmware_app.protocol.sms_pdu import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Concat,
    InformationElement,
    PduError,
    SmsDeliver,
    SmsEncodeError,
    SmsStatusReport,
    SmsSubmit,
    _dcs_info,
    _relative_validity,
    build_submit_pdus,
    choose_encoding,
    cmgs_length,
    count_text,
    decode_pdu,
    encode_deliver,
    encode_submit,
    fingerprint,
    gsm7_septets,
    gsm7_text,
    is_gsm7,
    pack_septets,
    sender_of,
    split_smsc,
    split_text,
    unpack_septets,
)

FAST = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
UTC = UTC

# --- published vectors ---------------------------------------------------------------------------
# The classic "Hello World!" SMS-DELIVER (dreamfabric.com/sms and many PDU tutorials):
# SMSC +31624000000, sender +31641600986, 2002-08-26 19:37:41, TZ octet 08 (= -0).
PDU_HELLO_WORLD_NL = "07911326040000F0040B911346610089F60000208062917314080CC8329BFD065DDF72363904"
# "hellohello" from 27838890001 (TOA C8, national), SMSC +27381000015 (dreamfabric.com/sms);
# also used by tests/modem/test_simulator.py, where gammu decodes it the same way.
PDU_HELLOHELLO = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37"
# "Hello, world!" from +79642161111, 2018-11-07 20:21:22 +08:00 (tests/modem/test_simulator.py).
PDU_HELLO_WORLD_RU = (
    "07919730071111F1000B919746121611F10000811170021222230DC8329BFD6681EE6F399B1C02"
)
# SMS-SUBMIT of "hellohello" to +46708251358, VP AA = 4 days, no SMSC (Wikipedia "GSM 03.40").
PDU_SUBMIT_WIKI = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"

# --- gammu 1.42 as the independent encoder ----------------------------------------------------
# `gammu sendsms TEXT +447700900123 ...` against the SIM800 simulator (firmware_app/modem/
# simulator); the PDUs below are what gammu wrote after AT+CMGS (SMSC +447785016005).
# args: -unicode -textutf8 "Hi 😀 café"
GAMMU_UCS2_EMOJI = (
    "079144775810065011000C914477000910320008FF14004800690020D83DDE00002000630061006600E9"
)
# args: -flash -text "Flash!" (GAMMU_FLASH); -validity DAY -report -text "report me"
# (GAMMU_REPORT_DAY); -autolen 300 -text "Part000 ... Part029 " (GAMMU_LONG_GSM7_*);
# -unicode -autolen 300 -textutf8 "Ünïcode 😀 " * 14 (GAMMU_LONG_UCS2_*).
LONG_GSM7 = "".join(f"Part{i:03d} " for i in range(30))
LONG_UCS2 = "Ünïcode 😀 " * 14

# --- gammu 1.42 as the independent decoder ----------------------------------------------------
# Written by our encode_deliver, stored on the simulated SIM, and read back with
# `gammu getallsms`, which printed the text, number, time and class asserted in OURS below.
GAMMU_FLASH = "079144775810065011000C9144770009103200F0FF064676788E0E01"
GAMMU_REPORT_DAY = "079144775810065031000C914477000910320000A709F232FC2DA783DA65"
GAMMU_LONG_GSM7_1 = (
    "079144775810065051000C914477000910320000FFA0050003D70201A061391D068381A061391D06"
    "8B81A061391D069381A061391D069B81A061391D06A381A061391D06AB81A061391D06B381A06139"
    "1D06BB81A061391D06C381A061391D06CB81A061391D168381A061391D168B81A061391D169381A0"
    "61391D169B81A061391D16A381A061391D16AB81A061391D16B381A061391D16BB81A061391D16C3"
    "81A0"
)
GAMMU_LONG_GSM7_2 = (
    "079144775810065051000C914477000910320000FF5E050003D70202C2723A2C960341C3723A4C06"
    "0341C3723A4C160341C3723A4C260341C3723A4C360341C3723A4C460341C3723A4C560341C3723A"
    "4C660341C3723A4C760341C3723A4C860341C3723A4C960301"
)
GAMMU_LONG_UCS2_1 = (
    "079144775810065051000C914477000910320008FF8C050003DC030100DC006E00EF0063006F0064"
    "00650020D83DDE00002000DC006E00EF0063006F006400650020D83DDE00002000DC006E00EF0063"
    "006F006400650020D83DDE00002000DC006E00EF0063006F006400650020D83DDE00002000DC006E"
    "00EF0063006F006400650020D83DDE00002000DC006E00EF0063006F006400650020D83DDE000020"
    "00DC"
)
GAMMU_LONG_UCS2_2 = (
    "079144775810065051000C914477000910320008FF8C050003DC0302006E00EF0063006F00640065"
    "0020D83DDE00002000DC006E00EF0063006F006400650020D83DDE00002000DC006E00EF0063006F"
    "006400650020D83DDE00002000DC006E00EF0063006F006400650020D83DDE00002000DC006E00EF"
    "0063006F006400650020D83DDE00002000DC006E00EF0063006F006400650020D83DDE00002000DC"
    "006E"
)
GAMMU_LONG_UCS2_3 = (
    "079144775810065051000C914477000910320008FF2E050003DC030300EF0063006F006400650020"
    "D83DDE00002000DC006E00EF0063006F006400650020D83DDE000020"
)
OURS_EXT = (
    "0791447758100650040C9144770009103200004230102143658019453C1DB4296F781BDF06B5496D"
    "7A1BCAE6B50182DE6B"
)
OURS_EMOJI = (
    "00040C9144770009104200083221133295952A180045006D006F006A00690020D83DDE00D83DDC4D002000FC"
)
OURS_ALPHA = "00040BD0CDBC30EC5E0300004210203040500009C337B90C8AC96634"
OURS_CLASS0 = "00040C91447700091052001042102030405000094676788E06B5E767"
OURS_CONCAT16_1 = (
    "00440C914477000910620000421020304050009E06080412340201C16030180C0683C16030180C06"
    "83C16030180C0683C16030180C0683C16030180C0683C16030180C0683C16030180C0683C1603018"
    "0C0683C16030180C0683C16030180C0683C16030180C0683C16030180C0683C16030180C0683C160"
    "30180C0683C16030180C0683C16030180C0683C16030180C0683C16030180C0683C16030180C02"
)
OURS_CONCAT16_2 = "00440C91447700091062000042102030406000120608041234020242A15028140A854221"
TZ2 = timezone(timedelta(hours=2))
TZM530 = timezone(-timedelta(hours=5, minutes=30))
T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

# (pdu, gammu's reading): text, sender, timestamp, class, concat; gammu getallsms output.
OURS = [
    pytest.param(
        OURS_EXT,
        dict(
            text="Ext €[]{}~^\\| ok",
            sender="+447700900123",
            timestamp=datetime(2024, 3, 1, 12, 34, 56, tzinfo=TZ2),
            smsc="+447785016005",
        ),
        dict(
            sender="+447700900123",
            payload="Ext €[]{}~^\\| ok",
            smsc="+447785016005",
            timestamp=datetime(2024, 3, 1, 12, 34, 56, tzinfo=TZ2),
        ),
        id="gsm7-extension",
    ),
    pytest.param(
        OURS_EMOJI,
        dict(
            text="Emoji 😀👍 ü",
            sender="+447700900124",
            timestamp=datetime(2023, 12, 31, 23, 59, 59, tzinfo=TZM530),
            encoding="ucs2",
        ),
        dict(
            sender="+447700900124",
            payload="Emoji 😀👍 ü",
            timestamp=datetime(2023, 12, 31, 23, 59, 59, tzinfo=TZM530),
        ),
        id="ucs2-emoji-negative-tz",
    ),
    pytest.param(
        OURS_ALPHA,
        dict(text="Code 1234", sender="MyBank", timestamp=T0, toa=0xD0),
        dict(sender="MyBank", payload="Code 1234", timestamp=T0),
        id="alphanumeric-sender",
    ),
    pytest.param(
        OURS_CLASS0,
        dict(text="Flash msg", sender="+447700900125", message_class=0),
        dict(sender="+447700900125", payload="Flash msg", timestamp=T0, message_class=0),
        id="class0",
    ),
    pytest.param(
        OURS_CONCAT16_1,
        dict(text="A" * 150, concat=Concat(reference=0x1234, total=2, seq=1, bits=16)),
        dict(
            sender="+447700900126",
            payload="A" * 150,
            timestamp=T0,
            concat=Concat(reference=0x1234, total=2, seq=1, bits=16),
        ),
        id="concat16-part1",
    ),
    pytest.param(
        OURS_CONCAT16_2,
        dict(text="B" * 10, concat=Concat(reference=0x1234, total=2, seq=2, bits=16)),
        dict(
            sender="+447700900126",
            payload="B" * 10,
            timestamp=T0 + timedelta(seconds=1),
            concat=Concat(reference=0x1234, total=2, seq=2, bits=16),
        ),
        id="concat16-part2",
    ),
]


def check(msg: object, expected: dict[str, object]) -> None:
    for name, want in expected.items():
        if name == "sender":
            got = str(msg.sender)  # type: ignore[attr-defined]
        elif name == "smsc":
            smsc = msg.smsc  # type: ignore[attr-defined]
            got = None if smsc is None else str(smsc)
        elif name == "toa":
            got = msg.sender.toa  # type: ignore[attr-defined]
        else:
            got = getattr(msg, name)
        assert got == want, f"{name}: {got!r} != {want!r}"


@pytest.mark.parametrize(("pdu", "expected", "encode_args"), OURS)
def test_deliver_decoded_as_gammu_reads_it(
    pdu: str, expected: dict[str, object], encode_args: dict[str, object]
) -> None:
    msg = decode_pdu(pdu)
    assert isinstance(msg, SmsDeliver)
    check(msg, expected)
    assert msg.problems == ()


@pytest.mark.parametrize(("pdu", "expected", "encode_args"), OURS)
def test_encode_deliver_is_byte_exact(
    pdu: str, expected: dict[str, object], encode_args: dict[str, object]
) -> None:
    assert encode_deliver(**encode_args).hex().upper() == pdu  # type: ignore[arg-type]


PUBLISHED = [
    pytest.param(
        PDU_HELLO_WORLD_NL,
        SmsDeliver,
        dict(
            text="Hello World!",
            sender="+31641600986",
            smsc="+31624000000",
            timestamp=datetime(2002, 8, 26, 19, 37, 41, tzinfo=UTC),
            encoding="gsm7",
            message_class=None,
            concat=None,
            more_messages=False,
        ),
        id="hello-world-nl",
    ),
    pytest.param(
        PDU_HELLOHELLO,
        SmsDeliver,
        dict(
            text="hellohello",
            sender="27838890001",
            toa=0xC8,
            smsc="+27381000015",
            timestamp=datetime(1999, 3, 29, 15, 16, 59, tzinfo=TZ2),
        ),
        id="hellohello",
    ),
    pytest.param(
        PDU_HELLO_WORLD_RU,
        SmsDeliver,
        dict(
            text="Hello, world!",
            sender="+79642161111",
            smsc="+79037011111",
            timestamp=datetime(2018, 11, 7, 20, 21, 22, tzinfo=timezone(timedelta(hours=8))),
        ),
        id="hello-world-ru",
    ),
    pytest.param(
        PDU_SUBMIT_WIKI,
        SmsSubmit,
        dict(
            text="hellohello",
            smsc=None,
            validity=timedelta(days=4),
            message_reference=0,
            request_status_report=False,
        ),
        id="submit-wikipedia",
    ),
    pytest.param(
        GAMMU_UCS2_EMOJI,
        SmsSubmit,
        dict(text="Hi 😀 café", encoding="ucs2", validity=timedelta(weeks=63)),
        id="gammu-ucs2-emoji",
    ),
    pytest.param(
        GAMMU_FLASH,
        SmsSubmit,
        dict(text="Flash!", encoding="gsm7", message_class=0, dcs=0xF0),
        id="gammu-flash",
    ),
    pytest.param(
        GAMMU_REPORT_DAY,
        SmsSubmit,
        dict(text="report me", validity=timedelta(days=1), request_status_report=True),
        id="gammu-report-validity",
    ),
    pytest.param(
        GAMMU_LONG_GSM7_1,
        SmsSubmit,
        dict(text=LONG_GSM7[:153], concat=Concat(reference=0xD7, total=2, seq=1)),
        id="gammu-long-gsm7-1",
    ),
    pytest.param(
        GAMMU_LONG_GSM7_2,
        SmsSubmit,
        dict(text=LONG_GSM7[153:], concat=Concat(reference=0xD7, total=2, seq=2)),
        id="gammu-long-gsm7-2",
    ),
]


@pytest.mark.parametrize(("pdu", "kind", "expected"), PUBLISHED)
def test_published_and_gammu_vectors(pdu: str, kind: type, expected: dict[str, object]) -> None:
    msg = decode_pdu(pdu)
    assert type(msg) is kind
    check(msg, expected)
    assert msg.problems == ()


def test_destination_of_submits() -> None:
    wiki = decode_pdu(PDU_SUBMIT_WIKI)
    assert isinstance(wiki, SmsSubmit)
    assert str(wiki.destination) == "+46708251358"
    gammu = decode_pdu(GAMMU_FLASH)
    assert isinstance(gammu, SmsSubmit)
    assert str(gammu.destination) == "+447700900123"
    assert str(gammu.smsc) == "+447785016005"


def test_gammu_long_ucs2_parts_join_and_match_our_split() -> None:
    parts = [decode_pdu(p) for p in (GAMMU_LONG_UCS2_1, GAMMU_LONG_UCS2_2, GAMMU_LONG_UCS2_3)]
    texts = [p.text for p in parts]
    assert "".join(texts) == LONG_UCS2
    assert [p.concat for p in parts] == [  # type: ignore[union-attr]
        Concat(reference=0xDC, total=3, seq=i) for i in (1, 2, 3)
    ]
    # gammu and we cut at the same places (67 UTF-16 units per part).
    assert split_text(LONG_UCS2) == texts
    assert split_text(LONG_GSM7) == [LONG_GSM7[:153], LONG_GSM7[153:]]


def test_cmgs_length_of_gammu_pdus() -> None:
    # AT+CMGS=<length> counts the TPDU only: total octets minus the 8-octet SMSC field.
    assert cmgs_length(GAMMU_FLASH) == len(GAMMU_FLASH) // 2 - 8 == 20
    assert cmgs_length("00" + PDU_SUBMIT_WIKI[2:]) == len(PDU_SUBMIT_WIKI) // 2 - 1
    with pytest.raises(SmsEncodeError):
        cmgs_length("07")


def test_split_smsc() -> None:
    smsc, tpdu = split_smsc(PDU_HELLO_WORLD_NL)
    assert smsc is not None and smsc.number == "+31624000000" and smsc.toa == 0x91
    assert tpdu.hex().upper() == PDU_HELLO_WORLD_NL[16:]
    assert decode_pdu(tpdu, has_smsc=False).text == "Hello World!"  # type: ignore[union-attr]
    assert split_smsc("00" + PDU_HELLO_WORLD_NL[16:])[0] is None


# --- status reports (hand-built per TS 23.040 9.2.2.3; gammu getallsms reads "Delivered",
# "SM received by the SME" and "Failed", "SM Validity Period Expired") ----------------------------
SR_DELIVERED = "0791447758100650062A0C91447700901032423010214365804230102153708000"
SR_EXPIRED = "0791447758100650060B0C91447700901032423010214365804230102153708046"


@pytest.mark.parametrize(
    ("pdu", "mr", "status", "category", "text"),
    [
        (SR_DELIVERED, 42, 0x00, "delivered", "received by the recipient"),
        (SR_EXPIRED, 11, 0x46, "failed", "validity period expired"),
        (SR_DELIVERED[:-2] + "21", 42, 0x21, "pending", "recipient busy, still trying"),
        (SR_DELIVERED[:-2] + "FF", 42, 0xFF, "unknown", "status 0xff"),
    ],
)
def test_status_report(pdu: str, mr: int, status: int, category: str, text: str) -> None:
    sr = decode_pdu(pdu)
    assert isinstance(sr, SmsStatusReport)
    assert sr.message_reference == mr
    assert str(sr.recipient) == "+447700090123"
    assert sr.timestamp == datetime(2024, 3, 1, 12, 34, 56, tzinfo=TZ2)
    assert sr.discharge_time == datetime(2024, 3, 1, 12, 35, 7, tzinfo=TZ2)
    assert (sr.status, sr.category, sr.status_text) == (status, category, text)


def test_status_report_with_parameter_indicator_and_text() -> None:
    # TP-PI 06: DCS and UDL present; DCS 00, UDL 2, "hi" packed.
    pdu = SR_DELIVERED + "06" + "00" + "02" + pack_septets(gsm7_septets("hi")).hex()
    sr = decode_pdu(pdu)
    assert isinstance(sr, SmsStatusReport) and sr.text == "hi" and sr.problems == ()
    assert fingerprint(sr) == fingerprint(decode_pdu(SR_DELIVERED))  # type: ignore[arg-type]
    assert fingerprint(sr) != fingerprint(decode_pdu(SR_EXPIRED))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("trailer", "needle"),
    [
        ("04", "TP-UDL"),  # user data announced, the PDU ends
        ("FF", "TP-PI extension"),  # every bit, an extension that never comes
        ("01", "TP-PID"),
        ("07", "TP-PID"),
        ("0600", "TP-UDL"),
        ("06000A41", "TP-UDL says 10 septets"),
        ("04" + "A0" + "00" * 10, "TP-UDL says 160 septets"),
    ],
)
def test_status_report_with_a_broken_optional_part_is_read_from_its_fields(
    trailer: str, needle: str
) -> None:
    """TP-MR, TP-RA, the times and TP-ST come first and are whole: the delivery is known
    even when what follows TP-ST (TP-PI and what it announces) is cut or wrong."""
    sr = decode_pdu(SR_DELIVERED + trailer)
    assert isinstance(sr, SmsStatusReport)
    assert (sr.message_reference, sr.status, sr.category) == (42, 0x00, "delivered")
    assert str(sr.recipient) == "+447700090123" and sr.text == ""
    assert len(sr.problems) == 1 and needle in sr.problems[0], sr.problems
    assert "the report is read without it" in sr.problems[0]
    assert fingerprint(sr) == fingerprint(decode_pdu(SR_DELIVERED))  # type: ignore[arg-type]


def test_status_report_reserved_parameter_bits_are_ignored() -> None:
    sr = decode_pdu(SR_DELIVERED + "78")  # bits 3-6 only: no field announced
    assert isinstance(sr, SmsStatusReport) and sr.problems == () and sr.status == 0


# --- broken PDUs: a clear error naming the field -------------------------------------------------
BROKEN = [
    ("", "empty"),
    ("0", "odd number"),
    ("zz", "not hex"),
    ("07911326040000", "SMSC address"),
    ("00", "first octet"),
    ("0003", "TP-MTI 3"),
    ("0004", "TP-OA (sender) length"),
    ("00040B91", "TP-OA (sender) (11 digits)"),
    ("00040B911346610089F6", "TP-PID"),
    ("00040B911346610089F60000", "TP-SCTS"),
    ("00040B911346610089F60000208062917314", "TP-SCTS"),
    ("00040B911346610089F6000020806291731408", "TP-UDL"),
    ("00040B911346610089F60000208062917314080C", "TP-UDL says 12 septets"),
    ("00040B911346610089F6000020806291731408A1" + "00" * 141, "more than 160 septets"),
    ("00040B911346610089F6000820806291731408" + "8D" + "00" * 141, "more than 140 octets"),
    ("00440B911346610089F6000420806291731408" + "00", "user data is empty"),
    ("00440B911346610089F6000420806291731408" + "0205" + "0500", "UDHL 5 is longer"),
    ("00440B911346610089F6000420806291731408" + "03" + "020003", "element 00 says 3"),
    ("00440B911346610089F6000420806291731408" + "02" + "0100", "ends inside an element"),
    ("00440B911346610089F6000020806291731408" + "01" + "00", "longer than TP-UDL"),
    ("0011000B916407281553F80000", "TP-VP"),
    ("0019000B916407281553F800002080629173", "TP-VP"),
    ("0006000B91", "TP-RA (recipient) (11 digits)"),
    ("00062A0C9144770090103242301021436580", "TP-DT"),
    ("00062A0C914477009010324230102143658042301021537080", "TP-ST"),
]


@pytest.mark.parametrize(("pdu", "needle"), BROKEN)
def test_broken_pdu_names_the_problem(pdu: str, needle: str) -> None:
    with pytest.raises(PduError, match=None) as info:
        decode_pdu(pdu)
    assert needle in str(info.value), str(info.value)
    assert isinstance(info.value, RemoteProtocolError)


def test_tolerated_oddities_are_listed() -> None:
    # Month 13 in TP-SCTS: the message is kept, the time is None, the problem is named.
    bad_time = PDU_HELLO_WORLD_NL.replace("20806291731408", "20316291731408")
    msg = decode_pdu(bad_time)
    assert isinstance(msg, SmsDeliver)
    assert msg.timestamp is None and msg.text == "Hello World!"
    assert "TP-SCTS" in msg.problems[0] and "not a valid time" in msg.problems[0]
    # Trailing octets after the user data.
    msg = decode_pdu(PDU_HELLO_WORLD_NL + "FFFF")
    assert msg.text == "Hello World!"  # type: ignore[union-attr]
    assert msg.problems == ("2 octet(s) after the user data ignored",)
    # An invalid concat element (part 3 of 2) is ignored: the part reads as a whole message.
    pdu = encode_deliver(
        sender="+1555",
        payload="x",
        timestamp=T0,
        extra_udh=(InformationElement(iei=0, data=bytes((7, 2, 3))),),
    )
    msg = decode_pdu(pdu)
    assert isinstance(msg, SmsDeliver) and msg.concat is None and msg.text == "x"
    assert "not valid, ignored" in msg.problems[0]
    # An odd octet in UCS-2 text becomes U+FFFD rather than losing the message.
    pdu = encode_deliver(sender="+1555", payload=b"\x00A\x00", timestamp=T0).hex()
    pdu = pdu[: 2 + 2 + 2 + 6 + 2] + "08" + pdu[2 + 2 + 2 + 6 + 2 + 2 :]
    msg = decode_pdu(pdu)
    assert msg.text == "A\ufffd"  # type: ignore[union-attr]


def test_ports_and_8bit_data() -> None:
    ports = InformationElement(iei=0x05, data=bytes.fromhex("0B84 23F0"))
    pdu = encode_deliver(sender="+1555", payload=b"\x01\x02\xff", timestamp=T0, extra_udh=(ports,))
    msg = decode_pdu(pdu)
    assert isinstance(msg, SmsDeliver)
    assert (msg.encoding, msg.text, msg.data, msg.ports) == (
        "8bit",
        "",
        b"\x01\x02\xff",
        (2948, 9200),
    )


# --- data coding scheme, validity period ---------------------------------------------------------
@pytest.mark.parametrize(
    ("dcs", "expected"),
    [
        (0x00, ("gsm7", None, False)),
        (0x04, ("8bit", None, False)),
        (0x08, ("ucs2", None, False)),
        (0x0C, ("gsm7", None, False)),  # reserved alphabet reads as GSM-7
        (0x10, ("gsm7", 0, False)),
        (0x11, ("gsm7", 1, False)),
        (0x18, ("ucs2", 0, False)),
        (0x16, ("8bit", 2, False)),
        (0x20, ("gsm7", None, True)),
        (0x48, ("ucs2", None, False)),  # automatic deletion group
        (0x80, ("gsm7", None, False)),  # reserved group
        (0xC0, ("gsm7", None, False)),  # MWI discard
        (0xD8, ("gsm7", None, False)),  # MWI store
        (0xE0, ("ucs2", None, False)),  # MWI store, UCS-2
        (0xF0, ("gsm7", 0, False)),
        (0xF4, ("8bit", 0, False)),
        (0xF7, ("8bit", 3, False)),
    ],
)
def test_dcs(dcs: int, expected: tuple[str, int | None, bool]) -> None:
    assert _dcs_info(dcs) == expected


@pytest.mark.parametrize(
    ("vp", "duration"),
    [
        (0, timedelta(minutes=5)),
        (143, timedelta(hours=12)),
        (144, timedelta(hours=12, minutes=30)),
        (167, timedelta(hours=24)),
        (168, timedelta(days=2)),
        (196, timedelta(days=30)),
        (197, timedelta(weeks=5)),
        (255, timedelta(weeks=63)),
    ],
)
def test_relative_validity(vp: int, duration: timedelta) -> None:
    assert _relative_validity(vp) == duration
    pdu = encode_submit(destination="+1555", payload="x", validity=duration)
    msg = decode_pdu(pdu)
    assert isinstance(msg, SmsSubmit) and msg.validity == duration


def test_validity_rounds_up_and_absolute() -> None:
    msg = decode_pdu(encode_submit(destination="1", payload="x", validity=timedelta(hours=13)))
    assert msg.validity == timedelta(hours=13)  # type: ignore[union-attr]
    msg = decode_pdu(encode_submit(destination="1", payload="x", validity=timedelta(minutes=7)))
    assert msg.validity == timedelta(minutes=10)  # type: ignore[union-attr]
    msg = decode_pdu(encode_submit(destination="1", payload="x", validity=timedelta(weeks=99)))
    assert msg.validity == timedelta(weeks=63)  # type: ignore[union-attr]
    until = datetime(2025, 6, 1, 8, 0, tzinfo=TZ2)
    msg = decode_pdu(encode_submit(destination="1", payload="x", validity=until))
    assert msg.validity == until  # type: ignore[union-attr]


# --- GSM 03.38 alphabet --------------------------------------------------------------------------
def test_alphabet_tables() -> None:
    assert len(GSM7_BASIC) == 128
    assert GSM7_BASIC[0x00] == "@" and GSM7_BASIC[0x24] == "¤" and GSM7_BASIC[0x7F] == "à"
    assert sorted(GSM7_EXTENSION.values()) == sorted("\x0c^{}\\[~]|€")
    for code, char in GSM7_EXTENSION.items():
        assert gsm7_septets(char) == bytes((0x1B, code))
    every = "".join(c for i, c in enumerate(GSM7_BASIC) if i != 0x1B)
    assert gsm7_text(gsm7_septets(every)) == every


@pytest.mark.parametrize(
    ("septets", "text"),
    [
        (b"\x1b\x65", "€"),
        (b"\x1b\x41", "A"),  # unknown extension code: the basic character (23.038 6.2.1.1)
        (b"a\x1b", "a "),  # trailing escape
        (b"\x1b\x1bx", " x"),  # escape to a further table: a space
    ],
)
def test_gsm7_escape_rules(septets: bytes, text: str) -> None:
    assert gsm7_text(septets.replace(b"a", b"\x61").replace(b"x", b"\x78")) == text


@given(st.binary(max_size=170).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
@FAST
def test_pack_unpack(septets: bytes, fill: int) -> None:
    packed = pack_septets(septets, fill)
    value = int.from_bytes(packed, "little") >> fill
    assert unpack_septets((value).to_bytes(len(packed), "little"), len(septets)) == septets


# --- round trips: SUBMIT -------------------------------------------------------------------------
ROUND_TRIP_TEXTS = [
    "€ [ ] { } ~ ^ \\ | and form\x0cfeed",
    "Grüße aus Köln, ÄÖÜ äöü ß é è ù ì ò Ç Ø ø Å å Δ Φ Γ Λ Ω Π Ψ Σ Θ Ξ ¡ ¿ § £ ¥ @ $",
    "emoji 😀👍🏽 and 🇨🇿 flag",
    "Ελληνικά и кириллица, 中文",
    "",
]


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_submit_round_trip(text: str) -> None:
    pdu = encode_submit(destination="+420 123 456 789", payload=text, message_reference=7)
    msg = decode_pdu(pdu)
    assert isinstance(msg, SmsSubmit)
    assert msg.text == text
    assert msg.encoding == choose_encoding(text)
    assert str(msg.destination) == "+420123456789" and msg.message_reference == 7
    assert msg.smsc is None and pdu[0] == 0


def test_submit_options() -> None:
    pdu = encode_submit(
        destination="5551234",
        payload="hi",
        request_status_report=True,
        reject_duplicates=True,
        message_class=0,
        smsc="+447785016005",
        encoding="ucs2",
    )
    msg = decode_pdu(pdu)
    assert isinstance(msg, SmsSubmit)
    assert msg.request_status_report and msg.reject_duplicates and msg.message_class == 0
    assert msg.destination.toa == 0x81 and str(msg.destination) == "5551234"
    assert str(msg.smsc) == "+447785016005" and msg.encoding == "ucs2" and msg.text == "hi"
    assert pdu.hex().upper().startswith("0791447758100650")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(destination="", payload="x"), "not a phone number"),
        (dict(destination="+12345678901234567890123", payload="x"), "more than 20 digits"),
        (dict(destination="1", payload="x" * 161), "161 septets"),
        (dict(destination="1", payload="ж" * 71), "142 octets"),
        (dict(destination="1", payload="ж", encoding="gsm7"), "not in the GSM-7"),
        (dict(destination="1", payload="x", message_reference=256), "message reference"),
        (dict(destination="1", payload="x", message_class=4), "message class"),
        (dict(destination="1", payload="x", smsc="Bank"), "SMSC"),
        (dict(destination="1", payload=b"x", encoding="gsm7"), "must be text"),
        (dict(destination="1", payload="x", encoding="8bit"), "must be bytes"),
    ],
)
def test_encode_errors_are_local(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(SmsEncodeError, match=None) as info:
        encode_submit(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert isinstance(info.value, LocalProtocolError)


def test_concat_validation() -> None:
    with pytest.raises(SmsEncodeError):
        Concat(reference=256, total=2, seq=1)
    with pytest.raises(SmsEncodeError):
        Concat(reference=1, total=2, seq=3)
    assert Concat(reference=65535, total=2, seq=1, bits=16).element().data == b"\xff\xff\x02\x01"


# --- split and count (docs/sms.md) ---------------------------------------------------------------
SPLITS = [
    ("", "gsm7", [0]),
    ("a" * 160, "gsm7", [160]),
    ("a" * 161, "gsm7", [153, 8]),
    ("a" * 306, "gsm7", [153, 153]),
    ("a" * 307, "gsm7", [153, 153, 1]),
    ("€" * 80, "gsm7", [160]),  # 80 escape pairs = 160 septets: one part
    ("a" + "€" * 80, "gsm7", [153, 8]),  # 1 + 76*2 = 153, then 4*2
    ("a" * 152 + "€" + "b" * 10, "gsm7", [152, 12]),  # the pair does not fit: it moves on
    ("ж" * 70, "ucs2", [70]),
    ("ж" * 71, "ucs2", [67, 4]),
    ("😀" * 35, "ucs2", [70]),
    ("😀" * 36, "ucs2", [66, 6]),  # 33 emoji = 66 units; a pair never splits
    ("ж" * 66 + "😀" + "ж" * 3, "ucs2", [66, 5]),
    ("a" * 159 + "ж", "ucs2", [67, 67, 26]),
]


@pytest.mark.parametrize(("text", "encoding", "units"), SPLITS)
def test_split_table(text: str, encoding: str, units: list[int]) -> None:
    parts = split_text(text)
    assert "".join(parts) == text
    assert choose_encoding(text) == encoding
    sizes = [
        len(gsm7_septets(p)) if encoding == "gsm7" else len(p.encode("utf-16-be")) // 2
        for p in parts
    ]
    assert sizes == units
    count = count_text(text)
    assert count.parts == len(parts) and count.units == sum(units)
    assert count.remaining == count.per_part - units[-1]
    assert (
        count.per_part
        == ({"gsm7": 160, "ucs2": 70} if len(parts) == 1 else {"gsm7": 153, "ucs2": 67})[encoding]
    )


def test_count_forced_encoding_and_lone_surrogate() -> None:
    assert count_text("abc", "ucs2").per_part == 70
    assert count_text("x\ud800").units == 2 and count_text("x\ud800").encoding == "ucs2"
    with pytest.raises(SmsEncodeError):
        split_text("ж", "gsm7")
    with pytest.raises(SmsEncodeError):
        split_text("x", "8bit")


@given(st.text(max_size=700))
@FAST
def test_any_text_splits_within_limits_and_joins_back(text: str) -> None:
    parts = split_text(text)
    assert "".join(parts) == text
    enc = choose_encoding(text)
    limit = (160 if enc == "gsm7" else 70) if len(parts) == 1 else (153 if enc == "gsm7" else 67)
    for part in parts:
        if enc == "gsm7":
            assert len(gsm7_septets(part)) <= limit
        else:
            assert len(part.encode("utf-16-be")) // 2 <= limit
    assert count_text(text).parts == len(parts)


@given(st.text(max_size=500), st.integers(0, 255))
@FAST
def test_build_submit_pdus_round_trip(text: str, reference: int) -> None:
    pdus = build_submit_pdus("+15551234567", text, reference=reference)
    decoded = [decode_pdu(p.pdu) for p in pdus]
    assert "".join(d.text for d in decoded) == text  # type: ignore[union-attr]
    for i, (p, d) in enumerate(zip(pdus, decoded, strict=True), 1):
        assert isinstance(d, SmsSubmit)
        assert p.length == len(p.pdu) - 1 and p.hex == p.pdu.hex().upper()
        assert (p.seq, p.total) == (i, len(pdus))
        if len(pdus) > 1:
            assert d.concat == Concat(reference=reference, total=len(pdus), seq=i)
        else:
            assert d.concat is None


def test_build_submit_pdus_limits() -> None:
    with pytest.raises(SmsEncodeError, match="3 parts"):
        build_submit_pdus("1", "a" * 400, reference=1, max_parts=2)
    pdus = build_submit_pdus("1", "a" * 400, reference=300, smsc="+447785016005")
    assert [decode_pdu(p.pdu).concat.reference for p in pdus] == [44, 44, 44]  # type: ignore[union-attr]
    assert all(p.length == len(p.pdu) - 8 for p in pdus)


# --- fingerprint ---------------------------------------------------------------------------------
def test_fingerprint_is_stable() -> None:
    msg = decode_pdu(PDU_HELLO_WORLD_NL)
    assert isinstance(msg, SmsDeliver)
    # Pinned: a change here would store every message on the SIM a second time after upgrade.
    assert fingerprint(msg) == "c47f9ab824758720ddcc16e4c3e5fe94"
    # The same message read again (a failed delete), even through another SMSC field.
    again = decode_pdu("00" + PDU_HELLO_WORLD_NL[16:])
    assert fingerprint(again) == fingerprint(msg)  # type: ignore[arg-type]


def test_fingerprint_tells_parts_and_times_apart() -> None:
    part1 = decode_pdu(OURS_CONCAT16_1)
    part2 = decode_pdu(OURS_CONCAT16_2)
    other_time = decode_pdu(PDU_HELLO_WORLD_NL.replace("20806291731408", "20806291731418"))
    other_sender = decode_pdu(PDU_HELLO_WORLD_NL.replace("1346610089F6", "1346610089F7"))
    prints = {fingerprint(m) for m in (part1, part2, other_time, other_sender)}  # type: ignore[arg-type]
    prints.add(fingerprint(decode_pdu(PDU_HELLO_WORLD_NL)))  # type: ignore[arg-type]
    assert len(prints) == 5


# --- fuzzing: any bytes decode or raise PduError, never anything else ----------------------------
def _decode_or_pdu_error(data: bytes, has_smsc: bool = True) -> None:
    try:
        msg = decode_pdu(data, has_smsc=has_smsc)
    except PduError as exc:
        assert str(exc)
        return
    assert isinstance(msg, SmsDeliver | SmsSubmit | SmsStatusReport)
    if isinstance(msg, SmsDeliver):
        fingerprint(msg)


@given(st.binary(max_size=200), st.booleans())
@FAST
def test_any_bytes_decode_or_raise_pdu_error(data: bytes, has_smsc: bool) -> None:
    _decode_or_pdu_error(data, has_smsc)


@given(st.text(max_size=80))
@FAST
def test_any_text_as_pdu_hex(text: str) -> None:
    with contextlib.suppress(PduError):
        decode_pdu(text)


VALID = [
    PDU_HELLO_WORLD_NL,
    PDU_HELLOHELLO,
    PDU_SUBMIT_WIKI,
    GAMMU_LONG_UCS2_1,
    GAMMU_FLASH,
    OURS_ALPHA,
    OURS_CONCAT16_1,
    OURS_EMOJI,
    SR_DELIVERED,
]


@given(st.sampled_from(VALID), st.data())
@FAST
def test_mutated_real_pdus(pdu: str, data: st.DataObject) -> None:
    raw = bytearray(bytes.fromhex(pdu))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    _decode_or_pdu_error(bytes(raw))
    _decode_or_pdu_error(bytes(raw[:cut]))


def test_every_truncation_of_real_pdus() -> None:
    for pdu in VALID:
        raw = bytes.fromhex(pdu)
        for cut in range(len(raw)):
            with pytest.raises(PduError):
                decode_pdu(raw[:cut])


def test_random_byte_flips_are_deterministic() -> None:
    rng = random.Random(4023)
    for _ in range(3000):
        raw = bytearray(bytes.fromhex(rng.choice(VALID)))
        raw[rng.randrange(len(raw))] = rng.randrange(256)
        _decode_or_pdu_error(bytes(raw))


def test_is_gsm7() -> None:
    assert is_gsm7("Hello €") and not is_gsm7("ç") and not is_gsm7("😀")


# --- the sender of a PDU that cannot be decoded ------------------------------------------------

_WHOLE = (
    encode_deliver(
        sender="+447700900123",
        payload="Hello there, a text",
        timestamp=datetime(2026, 1, 2, tzinfo=UTC),
    )
    .hex()
    .upper()
)
_ALPHA = (
    encode_deliver(sender="MyBank", payload="Code 1234", timestamp=datetime(2026, 1, 2, tzinfo=UTC))
    .hex()
    .upper()
)


@pytest.mark.parametrize(
    ("pdu", "sender"),
    [
        (_WHOLE, "+447700900123"),
        (_WHOLE[:40], "+447700900123"),  # cut in the user data
        (_WHOLE[:20], "+447700900123"),  # cut right after the address
        (_WHOLE[:21], "+447700900123"),  # half an octet lost as well
        (_WHOLE[:18], None),  # cut inside the address
        (_ALPHA[:30], "MyBank"),
        ("0011000C914477009001230000AA05E8329BFD06", None),  # an SMS-SUBMIT
        ("0011223344", None),
        ("00041E91" + "11" * 20, None),  # 30 digits: no address is that long
        ("", None),
        ("zz", None),
    ],
)
def test_sender_of_a_broken_deliver(pdu: str, sender: str | None) -> None:
    found = sender_of(pdu)
    assert (found.number if found is not None else None) == sender


@given(st.binary(max_size=60), st.booleans())
@FAST
def test_sender_of_never_raises(data: bytes, has_smsc: bool) -> None:
    found = sender_of(data, has_smsc=has_smsc)
    assert found is None or found.number
