"""Caller ID: formatted lines, SDMF/MDMF packets, +CLIP, and the per-call collector."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app.protocol.at import URC, ATEngine
from firmware_app.protocol.callerid import (
    MAX_BLOCK_BYTES,
    MAX_BLOCK_LINES,
    MDMF_CALL,
    SDMF_CALL,
    CallerId,
    CallerIdCollector,
    CallerIdFormatError,
    CallWaiting,
    build_packet,
    decode_packet,
    is_caller_id_line,
    parse_clip,
    parse_formatted,
)
from firmware_app.protocol.errors import RemoteProtocolError


def collect(lines: list[str]) -> CallerId:
    """Feed formatted lines between RING 1 and RING 2; return the result at RING 2."""
    c = CallerIdCollector()
    assert c.ring(0.0) is None
    for i, line in enumerate(lines):
        assert c.line(line, 0.5 + i * 0.01) is None
    result = c.ring(6.0)
    assert isinstance(result, CallerId)
    return result


# (lines, number, name, validity, extra expected attributes)
FORMATTED = [
    pytest.param(
        ["DATE = 0117", "TIME = 1452", "NMBR = 5551234", "NAME = JOHN DOE"],
        "5551234", "JOHN DOE", "ok", {"date": "0117", "time": "1452"},
        id="spaces",
    ),
    pytest.param(
        ["DATE=0117", "TIME=1452", "NMBR=5551234", "NAME=JOHN DOE"],
        "5551234", "JOHN DOE", "ok", {},
        id="no-spaces",
    ),
    pytest.param(
        ["DATE = 0117", "TIME = 1452", "NAME = SMITH J", "NMBR = 5551234"],
        "5551234", "SMITH J", "ok", {},
        id="name-before-number",
    ),
    pytest.param(
        ["NMBR = 5551234", "NAME = LATE NAME"], "5551234", "LATE NAME", "ok", {},
        id="name-after-number",
    ),
    pytest.param(
        ["MESG = 110101", "DATE = 0117", "TIME = 1452", "NMBR = 01632960123"],
        "01632960123", None, "ok", {"message": "110101"},
        id="uk-mesg-first-no-name",
    ),
    pytest.param(
        ["DATE = 0117", "TIME = 1452", "NMBR = P", "NAME = P"],
        None, None, "withheld", {"reason": "private", "name_reason": "private"},
        id="private",
    ),
    pytest.param(
        ["DATE = 0117", "TIME = 1452", "NMBR = O", "NAME = O"],
        None, None, "unavailable", {"reason": "out of area", "name_reason": "out of area"},
        id="out-of-area",
    ),
    pytest.param(
        ["DATE TIME=01/06 14:15", "NMBR=4444"], "4444", None, "ok",
        {"date": "01/06", "time": "14:15"},
        id="combined-date-time",
    ),
    pytest.param(
        ["DATE=", "TIME=", "NMBR=12345678901"], "12345678901", None, "ok",
        {"date": None, "time": None},
        id="empty-date",
    ),
    pytest.param(
        ["NMBR = 5551234", "NAME = Müller-Lüdenscheid"], "5551234", "Müller-Lüdenscheid",
        "ok", {},
        id="non-ascii-name",
    ),
    pytest.param(
        ["NMBR = 5551234", "NAME = WIRELESS CALLER"], "5551234", "WIRELESS CALLER", "ok", {},
        id="name-cut-to-15",
    ),
    pytest.param(
        ["DDN_NMBR = 5550100", "NMBR = 5551234"], "5551234", None, "ok",
        {"dialled": "5550100"},
        id="ddn-nmbr",
    ),
    pytest.param(
        ["DATE = 0117", "TIME = 1452"], None, None, "unavailable",
        {"reason": "no number sent"},
        id="no-number-field",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("lines", "number", "name", "validity", "extra"), FORMATTED)
def test_formatted(
    lines: list[str], number: str | None, name: str | None, validity: str, extra: dict[str, object]
) -> None:
    cid = collect(lines)
    assert (cid.number, cid.name, cid.validity, cid.source) == (number, name, validity, "formatted")
    for key, value in extra.items():
        assert getattr(cid, key) == value, key
    assert cid.raw == tuple(lines)


# --- byte tables: the same forms as a modem sends them, through the AT engine --------------


def through_engine(stream: bytes, *, bytewise: bool) -> list[CallerId | CallWaiting]:
    """Feed `stream` to an ATEngine (whole or one byte at a time) and its URCs to a
    collector, 0.1 s apart; then let the collector's time run out."""
    engine = ATEngine()
    c = CallerIdCollector()
    now = 0.0
    out: list[CallerId | CallWaiting] = []
    chunks = [stream[i : i + 1] for i in range(len(stream))] if bytewise else [stream]
    for chunk in chunks:
        engine.receive_data(chunk)
        for ev in engine.events():
            assert isinstance(ev, URC), ev
            now += 0.1
            r = c.urc(ev.name, ev.line, now)
            if r is not None:
                out.append(r)
    r = c.tick(now + 100.0)
    if r is not None:
        out.append(r)
    return out


def block(lines: list[str]) -> bytes:
    """RING, the caller-ID block as a modem frames it (Latin-1 bytes), the 2nd RING."""
    text = "\r\n" + "\r\n".join(lines) + "\r\n"
    return b"\r\nRING\r\n" + text.encode("latin-1") + b"\r\nRING\r\n"


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(("lines", "number", "name", "validity", "extra"), FORMATTED)
def test_formatted_bytes_through_the_engine(
    lines: list[str],
    number: str | None,
    name: str | None,
    validity: str,
    extra: dict[str, object],
    bytewise: bool,
) -> None:
    (cid,) = through_engine(block(lines), bytewise=bytewise)
    assert isinstance(cid, CallerId)
    assert (cid.number, cid.name, cid.validity, cid.source) == (number, name, validity, "formatted")
    for key, value in extra.items():
        assert getattr(cid, key) == value, key


def _mdmf_hex(*params: tuple[int, bytes]) -> str:
    payload = b"".join(bytes([t, len(v)]) + v for t, v in params)
    return build_packet(MDMF_CALL, payload).hex().upper()


# Raw packets (+VCID=2) and GSM +CLIP lines as the modem sends them: (stream, number, name,
# validity, source).
RAW_AND_CLIP = [
    pytest.param(
        b"\r\nRING\r\n\r\n041230393330313232343630393535353132313251\r\n",
        "6095551212", None, "ok", "sdmf", id="sdmf-published-example",
    ),
    pytest.param(
        b"\r\nRING\r\n\r\n"
        + _mdmf_hex((1, b"01171452"), (2, b"5551234567"), (3, b"5550100"), (7, b"DOE JOHN"))
        .encode()
        + b"\r\n",
        "5551234567", "DOE JOHN", "ok", "mdmf", id="mdmf",
    ),
    pytest.param(
        b"\r\nRING\r\n\r\n" + _mdmf_hex((1, b"01171452"), (4, b"P"), (8, b"P")).encode()
        + b"\r\n",
        None, None, "withheld", "mdmf", id="mdmf-private",
    ),
    pytest.param(
        b"\r\nRING\r\n\r\n041230393330313232343630393535353132313252\r\n",
        None, None, "unavailable", "sdmf", id="sdmf-bad-checksum",
    ),
    pytest.param(
        b'\r\nRING\r\n\r\n+CLIP: "+420123456789",145,,,,0\r\n',
        "+420123456789", None, "ok", "clip", id="clip",
    ),
    pytest.param(
        b'\r\n+CRING: VOICE\r\n\r\n+CLIP: "0123456789",129,"",0,"Alice",0\r\n',
        "0123456789", "Alice", "ok", "clip", id="cring-clip-alpha",
    ),
    pytest.param(
        b'\r\nRING\r\n\r\n+CLIP: "",128,,,,1\r\n', None, None, "withheld", "clip",
        id="clip-withheld",
    ),
    pytest.param(
        b'\r\nRING\r\n\r\n+CLIP: "",128,,,,2\r\n', None, None, "unavailable", "clip",
        id="clip-not-available",
    ),
    pytest.param(
        b"\r\nNAME= NMBR=201 USER= NDID=100\r\n", "201", None, "ok", "formatted",
        id="iaxmodem-one-line",
    ),
    pytest.param(b"\r\nRING\r\n\r\nRING\r\n", None, None, "unavailable", "none", id="none"),
]  # fmt: skip


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(("stream", "number", "name", "validity", "source"), RAW_AND_CLIP)
def test_raw_and_clip_bytes_through_the_engine(
    stream: bytes,
    number: str | None,
    name: str | None,
    validity: str,
    source: str,
    bytewise: bool,
) -> None:
    (cid,) = through_engine(stream, bytewise=bytewise)
    assert isinstance(cid, CallerId)
    assert (cid.number, cid.name, cid.validity, cid.source) == (number, name, validity, source)


def test_iaxmodem_line_is_complete_at_once() -> None:
    c = CallerIdCollector()
    result = c.line("NAME= NMBR=201 USER= NDID=100", now=0.0)
    assert isinstance(result, CallerId)
    assert (result.number, result.name, result.dialled) == ("201", None, "100")
    # the RINGs that follow every 5 s are the same call
    assert c.ring(0.1) is None
    assert c.ring(5.1) is None


def test_parse_formatted_shapes() -> None:
    assert parse_formatted("NMBR=5551234") == [("NMBR", "5551234")]
    assert parse_formatted("  nmbr =  5551234 ") == [("NMBR", "5551234")]
    assert parse_formatted("NAME= NMBR=1 USER= NDID=2") == [
        ("NAME", ""),
        ("NMBR", "1"),
        ("USER", ""),
        ("NDID", "2"),
    ]
    assert parse_formatted("NAME = ANN TIMEWELL") == [("NAME", "ANN TIMEWELL")]
    assert parse_formatted("RING") == []
    assert parse_formatted("X NMBR=1") == []


# --- SDMF / MDMF ----------------------------------------------------------------------------


def mdmf(*params: tuple[int, bytes]) -> bytes:
    payload = b"".join(bytes([t, len(v)]) + v for t, v in params)
    return build_packet(MDMF_CALL, payload)


def test_published_sdmf_example_checks() -> None:
    # Worked example of an SDMF message (microEngineering Labs caller-ID notes).
    packet = bytes.fromhex("041230393330313232343630393535353132313251")
    cid = decode_packet(packet)
    assert (cid.number, cid.date, cid.time, cid.source, cid.checksum_ok) == (
        "6095551212",
        "0930",
        "1224",
        "sdmf",
        True,
    )


def test_sdmf_private() -> None:
    cid = decode_packet(build_packet(SDMF_CALL, b"01171452P"))
    assert (cid.number, cid.validity, cid.reason) == (None, "withheld", "private")


def test_mdmf_full() -> None:
    packet = mdmf(
        (0x01, b"01171452"),
        (0x02, b"5551234567"),
        (0x07, b"DOE JOHN"),
        (0x03, b"5550100"),
    )
    assert sum(packet) % 256 == 0
    cid = decode_packet(packet)
    assert (cid.number, cid.name, cid.dialled, cid.date, cid.time) == (
        "5551234567",
        "DOE JOHN",
        "5550100",
        "0117",
        "1452",
    )
    assert (cid.source, cid.checksum_ok, cid.validity) == ("mdmf", True, "ok")


def test_mdmf_absent_number_and_name() -> None:
    cid = decode_packet(mdmf((0x01, b"01171452"), (0x04, b"O"), (0x08, b"P")))
    assert (cid.number, cid.validity, cid.reason, cid.name, cid.name_reason) == (
        None,
        "unavailable",
        "out of area",
        None,
        "private",
    )


@pytest.mark.parametrize("kind", ["sdmf", "mdmf"])
def test_bad_checksum_is_not_trusted(kind: str) -> None:
    good = (
        build_packet(SDMF_CALL, b"011714525551234")
        if kind == "sdmf"
        else mdmf((0x02, b"5551234"), (0x07, b"X"))
    )
    bad = good[:-1] + bytes([(good[-1] + 1) & 0xFF])
    cid = decode_packet(bad)
    assert (cid.number, cid.validity, cid.reason, cid.checksum_ok, cid.source) == (
        None,
        "unavailable",
        "checksum error",
        False,
        kind,
    )
    flipped = good[:5] + bytes([good[5] ^ 0x01]) + good[6:]
    assert decode_packet(flipped).checksum_ok is False


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x80",
        b"\x80\x10\x01",  # says 16 bytes
        b"\x06\x03BBB\x00",  # message waiting, not a call
        build_packet(SDMF_CALL, b"0117"),  # no room for date and time
        build_packet(MDMF_CALL, b"\x02\x09123"),  # parameter cut short
        build_packet(MDMF_CALL, b"\x02"),  # header cut short
    ],
)
def test_malformed_packets(packet: bytes) -> None:
    with pytest.raises(CallerIdFormatError):
        decode_packet(packet)
    assert issubclass(CallerIdFormatError, RemoteProtocolError)


def test_hex_line_through_collector() -> None:
    c = CallerIdCollector()
    assert c.ring(0.0) is None
    line = mdmf((0x01, b"01171452"), (0x02, b"5551234"), (0x07, b"ACME LTD")).hex().upper()
    result = c.line(line, 0.6)
    assert isinstance(result, CallerId)
    assert (result.number, result.name, result.source) == ("5551234", "ACME LTD", "mdmf")
    assert result.raw == (line,)


# --- GSM +CLIP ------------------------------------------------------------------------------

CLIP = [
    pytest.param('+CLIP: "+420123456789",145', "+420123456789", None, "ok", id="intl"),
    pytest.param('+CLIP: "420123456789",145,,,,0', "+420123456789", None, "ok", id="intl-no-plus"),
    pytest.param('+CLIP: "0123456789",129,"",,"Alice",0', "0123456789", "Alice", "ok", id="alpha"),
    pytest.param('+CLIP: "",128,,,,1', None, None, "withheld", id="withheld"),
    pytest.param('+CLIP: "",128,,,,2', None, None, "unavailable", id="not-available"),
    pytest.param('+CLIP: "",128', None, None, "unavailable", id="empty-no-validity"),
    pytest.param('+CLIP:"5551234",129', "5551234", None, "ok", id="no-space"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "number", "name", "validity"), CLIP)
def test_clip(line: str, number: str | None, name: str | None, validity: str) -> None:
    cid = parse_clip(line)
    assert cid is not None
    assert (cid.number, cid.name, cid.validity, cid.source) == (number, name, validity, "clip")


def test_clip_rejects_other_lines() -> None:
    assert parse_clip("+CMTI: 1") is None
    assert parse_clip("+CLIP: ") is None


def test_gsm_ring_clip_sequence() -> None:
    c = CallerIdCollector()
    assert c.ring(0.0) is None
    first = c.line('+CLIP: "+420123456789",145,,,,0', 0.1)
    assert isinstance(first, CallerId)
    for t in (3.0, 6.0):  # RING / +CLIP repeated for the same call
        assert c.ring(t) is None
        assert c.line('+CLIP: "+420123456789",145,,,,0', t + 0.1) is None
    assert c.tick(20.0) is None  # stopped ringing: back to idle
    assert c.ring(30.0) is None
    assert isinstance(c.line('+CLIP: "+420999",145', 30.1), CallerId)


# --- the collector --------------------------------------------------------------------------


def test_number_without_name_completes_at_next_ring_not_timeout() -> None:
    c = CallerIdCollector(timeout=5.5)
    assert c.ring(0.0) is None
    assert c.line("NMBR = 5551234", 0.8) is None
    assert c.tick(2.0) is None
    result = c.ring(2.5)  # well before the timeout
    assert isinstance(result, CallerId) and result.number == "5551234"


def test_caller_id_before_first_ring_completes_at_first_ring() -> None:
    c = CallerIdCollector()
    assert c.line("MESG = 110101", 0.0) is None
    assert c.line("NMBR = 01632960123", 0.1) is None
    result = c.ring(0.6)
    assert isinstance(result, CallerId) and result.number == "01632960123"


def test_no_caller_id_at_second_ring() -> None:
    c = CallerIdCollector()
    assert c.ring(0.0) is None
    result = c.ring(6.0)
    assert isinstance(result, CallerId)
    assert (result.number, result.validity, result.source) == (None, "unavailable", "none")
    assert result.reason == "no caller ID by the 2nd ring"


def test_timeout_after_first_ring() -> None:
    c = CallerIdCollector(timeout=5.5)
    assert c.ring(10.0) is None
    assert c.tick(15.4) is None
    result = c.tick(15.5)
    assert isinstance(result, CallerId)
    assert (result.source, result.reason) == ("none", "no caller ID")
    assert c.ring(16.0) is None  # same call


def test_timeout_counts_from_last_line() -> None:
    c = CallerIdCollector(timeout=5.5)
    assert c.ring(0.0) is None
    assert c.line("NMBR = 5551234", 5.0) is None
    assert c.tick(6.0) is None
    result = c.tick(10.5)
    assert isinstance(result, CallerId) and result.number == "5551234"


def test_answering_while_collecting_completes() -> None:
    c = CallerIdCollector()
    assert c.ring(0.0) is None
    assert c.line("NMBR = 5551234", 0.5) is None
    result = c.set_in_call(True, now=1.0)
    assert isinstance(result, CallerId) and result.number == "5551234"


def test_call_waiting_is_not_a_new_call() -> None:
    c = CallerIdCollector()
    assert c.set_in_call(True, now=0.0) is None
    assert not c.collecting
    assert c.ring(1.0) is None
    assert c.line("NMBR = 5559999", 2.0) is None
    assert c.collecting  # the line owes it a tick: the block completes by its timeout only
    assert c.line("NAME = SECOND CALLER", 2.1) is None
    assert c.ring(3.0) is None
    result = c.tick(8.0)
    assert not c.collecting
    assert isinstance(result, CallWaiting)
    assert (result.caller.number, result.caller.name) == ("5559999", "SECOND CALLER")
    assert c.tick(20.0) is None
    # GSM call waiting
    waiting = c.line('+CCWA: "+420777",145,1,"Bob",0', 21.0)
    assert isinstance(waiting, CallWaiting)
    assert (waiting.caller.number, waiting.caller.name) == ("+420777", "Bob")
    assert c.set_in_call(False) is None
    assert c.ring(30.0) is None
    assert isinstance(c.ring(36.0), CallerId)


def test_collector_fed_from_engine_urcs() -> None:
    engine = ATEngine()
    c = CallerIdCollector()
    stream = b"\r\nRING\r\n\r\nDATE = 0117\r\nTIME = 1452\r\nNMBR = 5551234\r\n\r\nRING\r\n"
    results = []
    for i, byte in enumerate(stream):
        engine.receive_data(bytes([byte]))
        for ev in engine.events():
            assert isinstance(ev, URC)
            now = i / 10
            r = c.urc(ev.name, ev.line, now)
            if r is not None:
                results.append(r)
    assert len(results) == 1
    assert isinstance(results[0], CallerId) and results[0].number == "5551234"


def test_an_endless_block_is_cut_off() -> None:
    c = CallerIdCollector()
    assert c.ring(0.0) is None
    results = [c.line(f"NMBR = {i}", 0.1 + i * 0.001) for i in range(100_000)]
    done = [r for r in results if r is not None]
    assert len(done) == 1 and results.index(done[0]) == MAX_BLOCK_LINES
    assert isinstance(done[0], CallerId)
    assert len(done[0].raw) == MAX_BLOCK_LINES
    assert c.buffered == 0
    # the same in a call: a call waiting notice, not an unbounded buffer
    c = CallerIdCollector()
    c.set_in_call(True)
    waiting = [c.line("NAME = " + "X" * 100, i * 0.001) for i in range(10_000)]
    assert all(r is None or isinstance(r, CallWaiting) for r in waiting)
    assert c.buffered <= MAX_BLOCK_LINES
    # one long line counts by size
    c = CallerIdCollector()
    assert c.line("NMBR = 5551234", 0.0) is None
    cut = c.line("NAME = " + "Y" * MAX_BLOCK_BYTES, 0.1)
    assert isinstance(cut, CallerId) and (cut.number, cut.name) == ("5551234", None)


def test_is_caller_id_line() -> None:
    assert is_caller_id_line("NMBR = 1")
    assert is_caller_id_line('+CLIP: "1",129')
    assert is_caller_id_line("8001FF")
    assert not is_caller_id_line("RING")


# --- fuzzing --------------------------------------------------------------------------------

lines = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["NMBR", "NAME", "DATE", "MESG", "+CLIP:", "+CCWA:", "DATE TIME"]).flatmap(
        lambda k: st.text(max_size=30).map(lambda v: f"{k}={v}")
    ),
    st.binary(max_size=40).map(lambda b: b.hex()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ring", "line", "tick", "call"]), lines), max_size=80))
def test_collector_never_raises(script: list[tuple[str, str]]) -> None:
    c = CallerIdCollector()
    now = 0.0
    for op, text in script:
        now += 0.7
        if op == "ring":
            r = c.ring(now)
        elif op == "line":
            r = c.line(text, now)
        elif op == "tick":
            r = c.tick(now)
        else:
            r = c.set_in_call(len(text) % 2 == 0, now)
        assert r is None or isinstance(r, CallerId | CallWaiting)
        assert c.buffered <= 2 * MAX_BLOCK_LINES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decode_packet_raises_only_format_errors(data: bytes) -> None:
    try:
        cid = decode_packet(data)
    except CallerIdFormatError:
        return
    assert isinstance(cid, CallerId)
    assert cid.checksum_ok is (sum(data[: data[1] + 3]) % 256 == 0)


@settings(max_examples=300, deadline=None)
@given(lines)
def test_line_parsers_never_raise(text: str) -> None:
    parse_formatted(text)
    parse_clip(text)
    is_caller_id_line(text)
