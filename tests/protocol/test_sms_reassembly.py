"""SMS reassembly: parts in any order, several messages, duplicates, timeout, cap, persistence."""

from __future__ import annotations

import itertools
import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_app.protocol.errors import LocalProtocolError
from firmware_app.protocol.sms_pdu import (
    Concat,
    Encoding,
    SmsDeliver,
    decode_pdu,
    encode_deliver,
    fingerprint,
    split_text,
)
from firmware_app.protocol.sms_reassembly import (
    DEFAULT_TIMEOUT,
    MISSING_MARK,
    CompletedMessage,
    Reassembler,
    ReassemblyStateError,
    part_from_record,
    part_to_record,
)

FAST = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=1)))
NOW = 1_715_000_000.0
HOUR = 3600.0


def part(
    payload: str | bytes,
    seq: int,
    total: int,
    *,
    ref: int = 42,
    bits: Literal[8, 16] = 8,
    sender: str = "+447700900123",
    second: int = 0,
    encoding: Encoding | None = None,
) -> SmsDeliver:
    pdu = encode_deliver(
        sender=sender,
        payload=payload,
        timestamp=T0 + timedelta(seconds=second),
        encoding=encoding,
        concat=Concat(reference=ref, total=total, seq=seq, bits=bits),
    )
    msg = decode_pdu(pdu)
    assert isinstance(msg, SmsDeliver)
    return msg


def parts_of(text: str, **kw: Any) -> list[SmsDeliver]:
    # 16-bit references take one septet more of each part: cut ASCII test text at 150.
    chunks = [text[i : i + 150] for i in range(0, len(text), 150)] if kw.get("bits") == 16 else []
    chunks = chunks or split_text(text)
    return [part(c, i, len(chunks), second=i, **kw) for i, c in enumerate(chunks, 1)]


def feed(r: Reassembler, parts: list[SmsDeliver], now: float = NOW) -> list[CompletedMessage]:
    out = []
    for p in parts:
        done = r.add(p, now)
        if done is not None:
            out.append(done)
    return out


def test_single_part_message_comes_out_at_once() -> None:
    r = Reassembler()
    msg = decode_pdu(encode_deliver(sender="+1555", payload="Hi 😀", timestamp=T0))
    assert isinstance(msg, SmsDeliver)
    done = r.add(msg, NOW)
    assert done is not None and done.complete and done.text == "Hi 😀"
    assert done.fingerprint == fingerprint(msg) and done.fingerprints == (fingerprint(msg),)
    assert (done.total, done.received, done.missing, done.reference) == (1, (1,), (), None)
    assert done.timestamp == T0 and done.received_at == NOW and len(r) == 0
    assert r.next_deadline() is None


TEXT3 = "".join(f"word{i} " for i in range(50))  # 3 GSM-7 parts


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_parts_in_any_order(order: tuple[int, ...]) -> None:
    parts = parts_of(TEXT3)
    assert len(parts) == 3
    r = Reassembler()
    results = [r.add(parts[i], NOW + n) for n, i in enumerate(order)]
    assert results[:2] == [None, None]
    done = results[2]
    assert done is not None and done.complete and done.text == TEXT3
    assert done.received == (1, 2, 3) and done.missing == () and done.reference == 42
    assert done.fingerprints == tuple(fingerprint(p) for p in parts)
    assert done.timestamp == parts[0].timestamp and done.received_at == NOW
    assert len(r) == 0 and r.expire(NOW + 10 * DEFAULT_TIMEOUT) == []


def test_message_fingerprint_does_not_depend_on_order() -> None:
    parts = parts_of(TEXT3)
    a = feed(Reassembler(), parts)[0]
    b = feed(Reassembler(), parts[::-1])[0]
    assert a.fingerprint == b.fingerprint
    other = feed(Reassembler(), parts_of(TEXT3, ref=43))[0]
    assert other.fingerprint != a.fingerprint


def test_duplicates_are_ignored() -> None:
    p1, p2, p3 = parts_of(TEXT3)
    r = Reassembler()
    assert r.add(p1, NOW) is None
    assert r.add(p1, NOW + 1) is None  # read again after a failed delete
    # The same part resent by the SMSC with a later timestamp: same content, still a duplicate.
    resent = part(p2.text, 2, 3, second=99)
    assert fingerprint(resent) != fingerprint(p2)
    assert r.add(p2, NOW) is None and r.add(resent, NOW) is None
    done = r.add(p3, NOW)
    assert done is not None and done.text == TEXT3 and len(done.parts) == 3


def test_late_duplicate_after_completion_is_for_the_store_to_drop() -> None:
    # The reassembler forgets a message once handed out; the store's fingerprints catch a
    # part read again later (docs/sms.md, "Duplicates").
    parts = parts_of(TEXT3)
    r = Reassembler()
    done = feed(r, parts)[0]
    assert fingerprint(parts[0]) in done.fingerprints
    assert r.add(parts[0], NOW) is None and len(r) == 1


def test_several_messages_at_once_interleaved() -> None:
    a = parts_of(TEXT3, ref=1)
    b = parts_of("B" * 200, ref=1, sender="+447700900999")  # same ref, other sender
    c = parts_of("C" * 200, ref=1, bits=16)  # same ref and sender, 16-bit reference
    d = parts_of("D" * 400, ref=2)
    mixed = [x for group in itertools.zip_longest(a, b, c, d) for x in group if x is not None]
    r = Reassembler()
    done = feed(r, mixed)
    assert sorted(m.text for m in done) == sorted([TEXT3, "B" * 200, "C" * 200, "D" * 400])
    assert len(r) == 0


def test_incomplete_message_expires_after_timeout() -> None:
    p1, _p2, p3 = parts_of(TEXT3)
    r = Reassembler()
    assert r.add(p3, NOW) is None and r.add(p1, NOW + HOUR) is None
    assert r.next_deadline() == NOW + DEFAULT_TIMEOUT
    assert r.expire(NOW + DEFAULT_TIMEOUT - 1) == []
    (msg,) = r.expire(NOW + DEFAULT_TIMEOUT)
    assert not msg.complete and msg.missing == (2,) and msg.received == (1, 3)
    assert msg.text == p1.text + MISSING_MARK + p3.text
    assert msg.fingerprints == (fingerprint(p1), fingerprint(p3))
    assert msg.received_at == NOW and len(r) == 0 and r.expire(NOW + 10 * DEFAULT_TIMEOUT) == []


def test_missing_first_and_last_parts_are_marked() -> None:
    parts = parts_of("x" * 700)  # 5 parts
    r = Reassembler(timeout=600)
    feed(r, [parts[1], parts[2]])
    (msg,) = r.expire(NOW + 600)
    assert msg.missing == (1, 4, 5)
    assert msg.text == MISSING_MARK + parts[1].text + parts[2].text + MISSING_MARK
    assert msg.timestamp == parts[1].timestamp


def test_cap_gives_up_the_oldest_first() -> None:
    r = Reassembler(max_pending=2)
    a, b, c = (parts_of(t * 200, ref=n) for n, t in enumerate("abc"))
    assert r.add(a[0], NOW) is None
    assert r.add(b[0], NOW + 1) is None
    assert r.add(c[0], NOW + 2) is None
    assert len(r) == 3  # a is given up but not yet handed out
    assert r.next_deadline() == NOW
    (old,) = r.expire(NOW + 3)
    assert not old.complete and old.text.startswith("a") and old.missing == (2,)
    assert len(r) == 2
    assert r.add(b[1], NOW + 4) is not None and r.add(c[1], NOW + 5) is not None


def test_cap_never_drops_the_part_just_added_even_with_a_clock_step_back() -> None:
    r = Reassembler(max_pending=1)
    a, b = parts_of("a" * 200, ref=1), parts_of("b" * 200, ref=2)
    assert r.add(a[0], NOW) is None
    assert r.add(b[0], NOW - HOUR) is None  # clock went back: b is "older" but just arrived
    (given_up,) = r.expire(NOW)
    assert given_up.text.startswith("a")
    done = r.add(b[1], NOW)
    assert done is not None and done.text == "b" * 200


def test_reference_reused_with_other_content_gives_up_the_old_message() -> None:
    old = parts_of("o" * 200, ref=7)
    new = parts_of("n" * 200, ref=7)
    r = Reassembler()
    assert r.add(old[0], NOW) is None
    assert r.add(new[0], NOW + 1) is None
    (gave_up,) = r.expire(NOW + 2)
    assert gave_up.text == old[0].text + MISSING_MARK and not gave_up.complete
    done = r.add(new[1], NOW + 3)
    assert done is not None and done.text == "n" * 200


def test_escape_pair_split_across_parts_is_joined() -> None:
    # Some phones cut between ESC and its code: part 1 ends with ESC, part 2 starts with "e"
    # (0x65), which together are "€". Built by hand with 8-bit references.
    def raw_part(septets: bytes, seq: int) -> SmsDeliver:
        header = bytes.fromhex("050003AA02") + bytes((seq,))
        ud_bits = int.from_bytes(header, "little")
        value = ud_bits | sum(s << (49 + 7 * i) for i, s in enumerate(septets))
        udl = 7 + len(septets)
        ud = value.to_bytes((udl * 7 + 7) // 8, "little")
        pdu = "00440B911346610089F60000" + "42500670809000" + f"{udl:02X}" + ud.hex()
        msg = decode_pdu(pdu)
        assert isinstance(msg, SmsDeliver) and msg.concat is not None
        return msg

    p1 = raw_part(b"Price 5\x1b", 1)
    p2 = raw_part(b"\x65 ok", 2)
    assert p1.text == "Price 5 "  # alone, a trailing escape shows as a space
    done = feed(Reassembler(), [p2, p1])[0]
    assert done.text == "Price 5€ ok"


def test_surrogate_pair_split_across_ucs2_parts_is_joined() -> None:
    units = "Hi 😀!".encode("utf-16-be")
    cut = units.index(b"\xd8\x3d") + 2  # between the high and low surrogate
    p1 = part(units[:cut], 1, 2, encoding="8bit")
    p2 = part(units[cut:], 2, 2, encoding="8bit")
    # Re-mark them as UCS-2 (DCS 08) the way a sender would have sent them.
    p1, p2 = (
        decode_pdu(encode_deliver_ucs2_raw(p.units, p.concat))  # type: ignore[arg-type]
        for p in (p1, p2)
    )
    assert "\ufffd" in p1.text  # type: ignore[union-attr]
    done = feed(Reassembler(), [p1, p2])  # type: ignore[list-item]
    assert done[0].text == "Hi 😀!"


def encode_deliver_ucs2_raw(units: bytes, concat: Concat) -> bytes:
    header = bytes((5, 0, 3, concat.reference, concat.total, concat.seq))
    ud = header + units
    return bytes.fromhex("00440B911346610089F60008" + "42500670809000") + bytes((len(ud),)) + ud


def test_8bit_parts_join_as_data() -> None:
    p1 = part(b"\x00\x01", 1, 2, encoding="8bit")
    p2 = part(b"\x02\xff", 2, 2, encoding="8bit")
    done = feed(Reassembler(), [p2, p1])[0]
    assert (done.data, done.text, done.encoding) == (b"\x00\x01\x02\xff", "", "8bit")


def test_mixed_codings_across_parts() -> None:
    p1 = part("plain ", 1, 2)
    p2 = part("ж😀", 2, 2, encoding="ucs2")
    assert feed(Reassembler(), [p1, p2])[0].text == "plain ж😀"


# --- persistence ---------------------------------------------------------------------------------


def roundtrip(r: Reassembler) -> Reassembler:
    state = json.loads(json.dumps(r.to_state()))
    return Reassembler.from_state(state, timeout=r.timeout, max_pending=r.max_pending)


def test_state_survives_a_restart() -> None:
    parts = parts_of("é" * 300 + "€" * 10)
    r = Reassembler()
    feed(r, parts[:2])
    state = r.to_state()
    assert state["version"] == 1 and len(state["parts"]) == 2
    assert {rec["fingerprint"] for rec in state["parts"]} == r.pending_fingerprints()
    r2 = roundtrip(r)
    assert r2.pending_fingerprints() == r.pending_fingerprints()
    assert r2.next_deadline() == NOW + DEFAULT_TIMEOUT
    assert r2.add(parts[0], NOW) is None  # still a duplicate after the restart
    done = feed(r2, parts[2:])
    assert done[0].text == "é" * 300 + "€" * 10 and done[0].received_at == NOW


def test_records_one_per_part_rebuild_exactly() -> None:
    extra = part(b"\x01", 1, 2, encoding="8bit")
    for p in [*parts_of("ж😀" * 60), extra, *parts_of("x" * 200)]:
        rec = json.loads(json.dumps(part_to_record(p, NOW)))
        back, at = part_from_record(rec)
        assert at == NOW
        assert fingerprint(back) == fingerprint(p) == rec["fingerprint"]
        assert (back.text, back.data, back.units, back.concat) == (
            p.text,
            p.data,
            p.units,
            p.concat,
        )
        assert (back.timestamp, back.sender, back.encoding) == (p.timestamp, p.sender, p.encoding)


def test_from_records_in_any_order_and_complete_sets() -> None:
    a = parts_of("a" * 400, ref=1)
    b = parts_of("b" * 200, ref=2)
    records = [part_to_record(p, NOW + i) for i, p in enumerate(a + b[:1])]
    random.Random(3).shuffle(records)
    r = Reassembler.from_records(records)
    # "a" was whole when the process stopped: it comes out at once, complete.
    (whole,) = r.expire(NOW)
    assert whole.complete and whole.text == "a" * 400 and whole.received_at == NOW
    assert r.add(b[1], NOW) is not None


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"encoding": "utf8"}, "'encoding'"),
        ({"bits": 7}, "'bits'"),
        ({"seq": 9}, "part 9 of 3"),
        ({"units": "zz"}, "not hex"),
        ({"toa": "145"}, "'toa'"),
        ({"toa": True}, "'toa'"),
        ({"ud": "00"}, "fingerprint"),
        ({"timestamp": "yesterday"}, "part record"),
        ({"received_at": None}, "'received_at'"),
    ],
)
def test_bad_records_are_named(change: dict[str, Any], needle: str) -> None:
    rec = part_to_record(parts_of(TEXT3)[0], NOW) | change
    with pytest.raises(ReassemblyStateError) as info:
        part_from_record(rec)
    assert needle in str(info.value)
    assert isinstance(info.value, LocalProtocolError)


def test_bad_state() -> None:
    with pytest.raises(ReassemblyStateError, match="version"):
        Reassembler.from_state({"version": 2, "parts": []})
    with pytest.raises(ReassemblyStateError, match="not a list"):
        Reassembler.from_state({"version": 1, "parts": {}})
    rec = part_to_record(parts_of(TEXT3)[0], NOW)
    del rec["sender"]
    with pytest.raises(ReassemblyStateError, match="no 'sender'"):
        Reassembler.from_state({"parts": [rec]})
    single = decode_pdu(encode_deliver(sender="1", payload="x", timestamp=T0))
    with pytest.raises(ReassemblyStateError):
        part_to_record(single, NOW)  # type: ignore[arg-type]


def test_configuration_is_checked() -> None:
    with pytest.raises(LocalProtocolError):
        Reassembler(timeout=0)
    with pytest.raises(LocalProtocolError):
        Reassembler(max_pending=0)


# --- properties ----------------------------------------------------------------------------------


@given(
    st.lists(st.text(min_size=1, max_size=400), min_size=1, max_size=4, unique=True),
    st.randoms(use_true_random=False),
    st.data(),
)
@FAST
def test_random_orders_duplicates_and_restarts(
    texts: list[str], rng: random.Random, data: st.DataObject
) -> None:
    arrivals: list[SmsDeliver] = []
    for ref, text in enumerate(texts):
        chunks = split_text(text)
        for seq, chunk in enumerate(chunks, 1):
            if len(chunks) == 1:
                pdu = encode_deliver(sender="+1555", payload=chunk, timestamp=T0)
            else:
                concat = Concat(reference=ref, total=len(chunks), seq=seq)
                pdu = encode_deliver(sender="+1555", payload=chunk, timestamp=T0, concat=concat)
            msg = decode_pdu(pdu)
            assert isinstance(msg, SmsDeliver)
            arrivals.append(msg)
    arrivals += [rng.choice(arrivals) for _ in range(data.draw(st.integers(0, 5)))]
    rng.shuffle(arrivals)
    restart_at = data.draw(st.integers(0, len(arrivals)))
    # The SMS service's loop: a part whose fingerprint the store already holds is not added
    # again (it is only deleted from the SIM); whatever comes out is stored with its parts'
    # fingerprints.
    stored: set[str] = set()
    done: list[CompletedMessage] = []

    def store(msgs: list[CompletedMessage]) -> None:
        for m in msgs:
            assert not stored & set(m.fingerprints)
            stored.update(m.fingerprints)
            done.append(m)

    r = Reassembler()
    for i, p in enumerate(arrivals):
        if i == restart_at:
            r = roundtrip(r)
            store(r.expire(NOW))
        if fingerprint(p) in stored:
            continue
        m = r.add(p, NOW + i)
        store([m] if m else [])
        store(r.expire(NOW + i))
    store(r.expire(NOW + len(arrivals)))
    assert sorted(m.text for m in done) == sorted(texts)
    assert all(m.complete for m in done)
    assert len(r) == 0
