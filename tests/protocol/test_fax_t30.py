"""T.30 for Class 1: FCS and frame vectors, DIS/DCS round trips (hypothesis), scripted receive and
send sessions, and a loopback: our sender drives our receiver over an in-memory line, two pages
pixel-exact at every rate and both resolutions, with a fall-back after failed training."""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from firmware_app.media.fax_image import decode_page
from firmware_app.media.fax_send import FaxPage
from firmware_app.protocol.errors import LocalProtocolError
from firmware_app.protocol.t30 import (
    Action,
    Disconnected,
    Done,
    FrameReceived,
    Hangup,
    NoCarrier,
    PageReceived,
    ReceiveFrame,
    ReceivePage,
    ReceiveTraining,
    Result,
    SendFrames,
    SendPage,
    SendTraining,
    Silence,
    T30Receiver,
    T30Sender,
    TimedOut,
    TrainingReceived,
    training_ok,
)
from firmware_app.protocol.t30_frames import (
    FALLBACK_ORDER,
    MODULATIONS,
    Capabilities,
    Dcs,
    Fcf,
    Frame,
    FrameError,
    crc16,
    decode_id,
    encode_id,
    frame_from_modem,
    min_scan_bits,
    with_fcs,
)

# --- frames ----------------------------------------------------------------------------------


def test_crc16_x25_check_value() -> None:
    # CRC-16/X-25 catalogue check value for "123456789".
    assert crc16(b"123456789") == 0x906E
    # Good frame + FCS leaves the ISO 3309 residue when run through the unfinalised CRC.
    framed = with_fcs(bytes([0xFF, 0x13, 0x84]))
    assert crc16(framed) ^ 0xFFFF == 0xF0B8


def test_frame_from_modem_unescapes_and_checks_fcs() -> None:
    frame = bytes([0xFF, 0x13, 0x82, 0x10, 0x00, 0x10])
    wire = with_fcs(frame).replace(b"\x10", b"\x10\x10") + b"\x10\x03"
    assert frame_from_modem(wire) == (frame, True)
    broken = bytearray(wire)
    broken[3] ^= 1
    assert frame_from_modem(bytes(broken))[1] is False
    assert frame_from_modem(b"\xff\x13\x10\x03") == (b"\xff\x13", False)


@pytest.mark.parametrize(
    ("data", "name", "final", "x"),
    [
        ("ff1380", "DIS", True, False),
        ("ff0340", "CSI", False, False),
        ("ff1381", "DTC", True, False),
        ("ff1383", "DCS", True, True),
        ("ff0343", "TSI", False, True),
        ("ff1384", "CFR", True, False),
        ("ff1344", "FTT", True, False),
        ("ff134f", "MPS", True, True),
        ("ff132f", "EOP", True, True),
        ("ff138c", "MCF", True, False),
        ("ff134c", "RTN", True, False),
        ("ff13fb", "DCN", True, True),
    ],
)
def test_frame_names(data: str, name: str, final: bool, x: bool) -> None:
    frame = Frame.parse(bytes.fromhex(data))
    assert (frame.name, frame.final, frame.x_bit) == (name, final, x)
    assert frame.to_bytes() == bytes.fromhex(data)


@pytest.mark.parametrize("data", ["", "ff", "ff13", "fe1380", "ff2380"])
def test_bad_frames_raise_frame_error(data: str) -> None:
    with pytest.raises(FrameError):
        Frame.parse(bytes.fromhex(data))


def test_identity_is_sent_reversed_and_padded() -> None:
    fif = encode_id("+49 30 1234")
    assert len(fif) == 20 and fif.endswith(b"+") and fif.startswith(b" ")
    assert decode_id(fif) == "+49 30 1234"


def test_dis_bits_match_t30_table2() -> None:
    # V.27ter+V.29+V.17 (bits 11,12,14), fine (15), MR (16), unlimited length (20), 0 ms.
    fif = Capabilities().to_fif()
    assert fif == bytes([0x00, 0b1110_1110, 0b0111_1000])
    dcs = Dcs(modulation=MODULATIONS["V.17/14400"], fine=True, scan_ms=0)
    # Bit 10 (receive), bits 11-14 = 0001, bit 15 fine; scan 111.
    assert dcs.to_fif() == bytes([0x00, 0b0110_0010, 0b0111_0000])


capabilities = st.builds(
    Capabilities,
    receive=st.booleans(),
    transmit=st.booleans(),
    families=st.sampled_from(
        [
            frozenset({"V.27ter"}),
            frozenset({"V.29"}),
            frozenset({"V.27ter", "V.29"}),
            frozenset({"V.27ter", "V.29", "V.17"}),
            frozenset({"V.27ter-fallback"}),
        ]
    ),
    fine=st.booleans(),
    mr=st.booleans(),
    width_code=st.integers(0, 2),
    length_code=st.integers(0, 2),
    scan_ms=st.sampled_from(
        [(20, 20), (40, 40), (10, 10), (5, 5), (10, 5), (20, 10), (40, 20), (0, 0)]
    ),
    ecm=st.booleans(),
)


@given(capabilities)
def test_dis_round_trip(caps: Capabilities) -> None:
    assert Capabilities.from_fif(caps.to_fif()) == caps


@given(
    st.builds(
        Dcs,
        modulation=st.sampled_from(FALLBACK_ORDER),
        fine=st.booleans(),
        mr=st.booleans(),
        width_code=st.integers(0, 2),
        length_code=st.integers(0, 2),
        scan_ms=st.sampled_from([0, 5, 10, 20, 40]),
        receive=st.booleans(),
    )
)
def test_dcs_round_trip(dcs: Dcs) -> None:
    assert Dcs.from_fif(dcs.to_fif()) == dcs


@given(st.binary(max_size=40))
def test_any_fif_decodes_or_raises_frame_error(fif: bytes) -> None:
    for decode in (Capabilities.from_fif, Dcs.from_fif):
        with contextlib.suppress(FrameError):
            decode(fif)


def test_min_scan_bits() -> None:
    assert min_scan_bits(14400, 20) == 288
    assert min_scan_bits(9600, 0) == 0


def test_training_check() -> None:
    v29 = MODULATIONS["V.29/9600"]
    assert training_ok(b"\x55\x12" + bytes(1800), v29)
    assert not training_ok(bytes(600) + b"\x01" + bytes(600), v29)
    assert not training_ok(b"", v29)


# --- scripted sessions -----------------------------------------------------------------------


def fr(frame: Frame) -> FrameReceived:
    return FrameReceived(data=frame.to_bytes())


def test_receive_session_script() -> None:
    v17 = MODULATIONS["V.17/14400"]
    dcs = Dcs(modulation=v17, fine=True, scan_ms=0)
    rx = T30Receiver(local_id="+1 555 0100")
    steps: list[tuple[Result | None, type]] = [
        (None, SendFrames),  # CSI + DIS
        (Done(), ReceiveFrame),
        (TimedOut(), SendFrames),  # DIS again (T4)
        (Done(), ReceiveFrame),
        (fr(Frame.make(Fcf.TSI, encode_id("+44 20 7946"), final=False, x_bit=True)), ReceiveFrame),
        (fr(Frame.make(Fcf.DCS, dcs.to_fif(), x_bit=True)), ReceiveTraining),
        (TrainingReceived(data=b"\x01" + bytes(2600)), Silence),
        (Done(), SendFrames),  # CFR
        (Done(), ReceivePage),
        (PageReceived(data=b"page one"), ReceiveFrame),
        (fr(Frame.make(Fcf.MPS, x_bit=True)), Silence),
        (Done(), SendFrames),  # MCF
        (Done(), ReceivePage),
        (PageReceived(data=b"page two"), ReceiveFrame),
        (fr(Frame.make(Fcf.EOP, x_bit=True)), Silence),
        (Done(), SendFrames),  # MCF
        (Done(), ReceiveFrame),
        (fr(Frame.make(Fcf.DCN, x_bit=True)), Hangup),
    ]
    now = 0.0
    for result, expected in steps:
        now += 0.5
        action = rx.start(now) if result is None else rx.handle(result, now)
        assert isinstance(action, expected), (rx.trace, action)
    assert isinstance(action, Hangup) and action.ok
    assert rx.remote_id == "+44 20 7946"
    assert [p.data for p in rx.pages] == [b"page one", b"page two"]
    assert rx.trace[:2] == ["> CSI", "> DIS"]
    with pytest.raises(LocalProtocolError):
        rx.handle(Done(), now)


V17 = MODULATIONS["V.17/14400"]
DCS_FINE = Dcs(modulation=V17, fine=True, scan_ms=0)
Expect = type | str  # an action type, or the frame names a SendFrames carries ("CSI DIS")


def play(rx: T30Receiver, steps: list[tuple[Result | None, Expect]], now: float = 0.0) -> Action:
    """Feed `steps` (None: start) and check every action the engine answers with."""
    action: Action | None = None
    for result, expected in steps:
        now += 0.5
        action = rx.start(now) if result is None else rx.handle(result, now)
        if isinstance(expected, str):
            assert isinstance(action, SendFrames), (rx.trace, action)
            assert " ".join(f.name for f in action.frames) == expected, rx.trace
        else:
            assert isinstance(action, expected), (rx.trace, action)
    assert action is not None
    return action


def ppm(kind: Fcf) -> FrameReceived:
    return fr(Frame.make(kind, x_bit=True))


# Phase B up to the first page: DIS, DCS, good training, CFR.
PHASE_B: list[tuple[Result | None, Expect]] = [
    (None, "CSI DIS"),
    (Done(), ReceiveFrame),
    (fr(Frame.make(Fcf.DCS, DCS_FINE.to_fif(), x_bit=True)), ReceiveTraining),
    (TrainingReceived(data=bytes(2600)), Silence),
    (Done(), "CFR"),
    (Done(), ReceivePage),
]
RETRAIN: list[tuple[Result | None, Expect]] = [
    (fr(Frame.make(Fcf.DCS, DCS_FINE.to_fif(), x_bit=True)), ReceiveTraining),
    (TrainingReceived(data=bytes(2600)), Silence),
    (Done(), "CFR"),
    (Done(), ReceivePage),
]


def answer(frame: str) -> list[tuple[Result | None, Expect]]:
    return [(Done(), frame)]


@pytest.mark.parametrize("missed", [TimedOut(), NoCarrier(reason="+FCERROR")], ids=str)
def test_a_missed_page_is_answered_rtn_and_sent_again(missed: Result) -> None:
    rx = T30Receiver(local_id="2")
    end = play(
        rx,
        [
            *PHASE_B,
            (PageReceived(data=b"page one"), ReceiveFrame),
            (ppm(Fcf.MPS), Silence),
            *answer("MCF"),
            (Done(), ReceivePage),
            (missed, ReceiveFrame),  # page two's carrier was missed
            (ppm(Fcf.MPS), Silence),
            *answer("RTN"),  # not MCF: the sender must send page two again
            (Done(), ReceiveFrame),
            *RETRAIN,
            (PageReceived(data=b"page two"), ReceiveFrame),
            (ppm(Fcf.EOP), Silence),
            *answer("MCF"),
            (Done(), ReceiveFrame),
            (ppm(Fcf.DCN), Hangup),
        ],
    )
    assert isinstance(end, Hangup) and end.ok
    assert [p.data for p in rx.pages] == [b"page one", b"page two"]
    assert "= MPS without its page" in rx.trace


def test_a_missed_first_page_is_answered_rtn() -> None:
    rx = T30Receiver(local_id="2")
    play(
        rx,
        [
            *PHASE_B,
            (TimedOut(), ReceiveFrame),
            (ppm(Fcf.EOP), Silence),
            *answer("RTN"),
        ],
    )
    assert rx.pages == []


def test_a_repeated_command_after_a_missed_page_gets_rtn_again() -> None:
    # Our RTN was lost: the sender repeats its MPS, and still has to send the page again.
    rx = T30Receiver(local_id="2")
    play(
        rx,
        [
            *PHASE_B,
            (NoCarrier(), ReceiveFrame),
            (ppm(Fcf.MPS), Silence),
            *answer("RTN"),
            (Done(), ReceiveFrame),
            (TimedOut(), ReceiveFrame),
            (ppm(Fcf.MPS), Silence),
            *answer("RTN"),
            (Done(), ReceiveFrame),
            *RETRAIN,
            (PageReceived(data=b"page one"), ReceiveFrame),
            (ppm(Fcf.EOP), Silence),
            *answer("MCF"),
        ],
    )
    assert [p.data for p in rx.pages] == [b"page one"]


def test_a_lost_mcf_is_answered_again_without_a_second_page() -> None:
    # No page carrier is expected after MCF to EOP: a repeated EOP means our MCF was lost.
    rx = T30Receiver(local_id="2")
    end = play(
        rx,
        [
            *PHASE_B,
            (PageReceived(data=b"page one"), ReceiveFrame),
            (ppm(Fcf.EOP), Silence),
            *answer("MCF"),
            (Done(), ReceiveFrame),
            (ppm(Fcf.EOP), Silence),
            *answer("MCF"),
            (Done(), ReceiveFrame),
            (ppm(Fcf.DCN), Hangup),
        ],
    )
    assert isinstance(end, Hangup) and end.ok
    assert [p.data for p in rx.pages] == [b"page one"]


def silence_until_hangup(rx: T30Receiver, action: Action, now: float = 100.0) -> Hangup:
    """The sender is gone: every receive times out (sends finish) until the engine ends."""
    for _ in range(50):
        if isinstance(action, Hangup):
            return action
        now += 6.0
        waiting = isinstance(action, ReceiveFrame | ReceivePage | ReceiveTraining)
        action = rx.handle(TimedOut() if waiting else Done(), now)
    raise AssertionError(rx.trace)


ONE_PAGE: list[tuple[Result | None, Expect]] = [
    *PHASE_B,
    (PageReceived(data=b"page one"), ReceiveFrame),
    (ppm(Fcf.MPS), Silence),
    *answer("MCF"),
    (Done(), ReceivePage),
]


def test_a_sender_silent_after_mps_is_not_a_complete_fax() -> None:
    rx = T30Receiver(local_id="2")
    end = silence_until_hangup(rx, play(rx, ONE_PAGE))
    assert not end.ok and "ended early after 1 confirmed page" in end.reason
    assert [(p.data, p.confirmed) for p in rx.pages] == [(b"page one", True)]


def test_dcn_after_mps_is_not_a_complete_fax() -> None:
    rx = T30Receiver(local_id="2")
    end = play(rx, [*ONE_PAGE, (NoCarrier(), ReceiveFrame), (ppm(Fcf.DCN), Hangup)])
    assert isinstance(end, Hangup) and not end.ok and "(DCN)" in end.reason
    assert len(rx.pages) == 1


@pytest.mark.parametrize(
    "cut",
    [ppm(Fcf.DCN), Disconnected(reason="NO CARRIER")],
    ids=["DCN", "hang-up"],
)
def test_a_page_the_sender_never_closed_is_kept_unconfirmed(cut: Result) -> None:
    rx = T30Receiver(local_id="2")
    end = play(rx, [*ONE_PAGE, (PageReceived(data=b"page two"), ReceiveFrame), (cut, Hangup)])
    assert isinstance(end, Hangup) and not end.ok
    assert "page 2 kept, not confirmed" in end.reason
    assert [(p.data, p.confirmed) for p in rx.pages] == [
        (b"page one", True),
        (b"page two", False),
    ]


def test_page_data_then_silence_keeps_the_page_unconfirmed() -> None:
    rx = T30Receiver(local_id="2")
    action = play(rx, [*PHASE_B, (PageReceived(data=b"page one"), ReceiveFrame)])
    end = silence_until_hangup(rx, action)
    assert not end.ok and "ended early after 0 confirmed page(s)" in end.reason
    assert [(p.data, p.confirmed) for p in rx.pages] == [(b"page one", False)]


EOM_THEN_PHASE_B: list[tuple[Result | None, Expect]] = [
    *PHASE_B,
    (PageReceived(data=b"document one"), ReceiveFrame),
    (ppm(Fcf.EOM), Silence),
    *answer("MCF"),
    (Done(), Silence),  # the gap, then phase B again: CSI + DIS
    (Done(), "CSI DIS"),
    (Done(), ReceiveFrame),
]


def test_after_eom_the_receiver_sends_dis_again_for_the_next_document() -> None:
    rx = T30Receiver(local_id="2")
    end = play(
        rx,
        [
            *EOM_THEN_PHASE_B,
            (TimedOut(), "CSI DIS"),  # nothing yet: DIS again after T4, as in phase B
            (Done(), ReceiveFrame),
            (ppm(Fcf.EOM), Silence),  # our MCF was lost: answered again, DIS again
            *answer("MCF"),
            (Done(), Silence),
            (Done(), "CSI DIS"),
            (Done(), ReceiveFrame),
            *RETRAIN,
            (PageReceived(data=b"document two"), ReceiveFrame),
            (ppm(Fcf.EOP), Silence),
            *answer("MCF"),
            (Done(), ReceiveFrame),
            (ppm(Fcf.DCN), Hangup),
        ],
    )
    assert isinstance(end, Hangup) and end.ok
    assert [p.data for p in rx.pages] == [b"document one", b"document two"]
    assert "= EOM: phase B again" in rx.trace


def test_a_sender_gone_after_eom_is_not_a_complete_fax() -> None:
    rx = T30Receiver(local_id="2")
    action = play(rx, EOM_THEN_PHASE_B, now=0.0)
    sent_dis = 0
    now = 10.0
    while not isinstance(action, Hangup):
        now += 3.0
        if isinstance(action, SendFrames):
            sent_dis += 1
        action = rx.handle(TimedOut() if isinstance(action, ReceiveFrame) else Done(), now)
    assert not action.ok and "ended early after 1 confirmed page" in action.reason
    assert sent_dis >= 5 and now <= 10 + 3 * 2 * 14  # DIS every T4 until T1 (35 s)


def fussy(data: bytes, dcs: Dcs) -> bool:
    return not data.startswith(b"bad")


def test_a_damaged_page_is_asked_for_once_and_the_next_copy_kept() -> None:
    rx = T30Receiver(local_id="2", page_check=fussy)
    end = play(
        rx,
        [
            *PHASE_B,
            (PageReceived(data=b"bad copy 1"), ReceiveFrame),
            (ppm(Fcf.MPS), Silence),
            *answer("RTN"),  # page 1 once more, please
            (Done(), ReceiveFrame),
            *RETRAIN,
            (PageReceived(data=b"page one"), ReceiveFrame),
            (ppm(Fcf.MPS), Silence),
            *answer("MCF"),
            (Done(), ReceivePage),
            (PageReceived(data=b"bad copy 2"), ReceiveFrame),
            (ppm(Fcf.EOP), Silence),
            *answer("RTN"),
            (Done(), ReceiveFrame),
            *RETRAIN,
            (PageReceived(data=b"bad again 2"), ReceiveFrame),
            (ppm(Fcf.EOP), Silence),
            *answer("MCF"),  # asked once: this copy is kept
            (Done(), ReceiveFrame),
            (ppm(Fcf.DCN), Hangup),
        ],
    )
    assert isinstance(end, Hangup) and end.ok
    assert [p.data for p in rx.pages] == [b"page one", b"bad again 2"]
    assert rx.trace.count("= page damaged: asked again") == 2
    assert "= page damaged again: kept" in rx.trace


def test_a_damaged_page_never_sent_again_is_kept() -> None:
    rx = T30Receiver(local_id="2", page_check=fussy)
    end = play(
        rx,
        [
            *PHASE_B,
            (PageReceived(data=b"bad copy"), ReceiveFrame),
            (ppm(Fcf.EOP), Silence),
            *answer("RTN"),
            (Done(), ReceiveFrame),
            (ppm(Fcf.DCN), Hangup),  # this sender cannot send a page again
        ],
    )
    assert isinstance(end, Hangup) and not end.ok
    assert "damaged page the sender did not send again is kept" in end.reason
    assert [(p.data, p.confirmed) for p in rx.pages] == [(b"bad copy", False)]


def test_receiver_answers_ftt_on_bad_training_and_t1_ends_a_silent_call() -> None:
    rx = T30Receiver(local_id="1")
    rx.start(0.0)
    rx.handle(Done(), 0.1)
    dcs = Dcs(modulation=MODULATIONS["V.29/9600"])
    assert isinstance(
        rx.handle(fr(Frame.make(Fcf.DCS, dcs.to_fif(), x_bit=True)), 1.0), ReceiveTraining
    )
    assert isinstance(rx.handle(TrainingReceived(data=b"\xff" * 2000), 2.0), Silence)
    sent = rx.handle(Done(), 2.1)
    assert isinstance(sent, SendFrames) and sent.frames[0].kind is Fcf.FTT
    silent = T30Receiver(local_id="1")
    silent.start(0.0)
    action: Action = silent.handle(Done(), 0.0)
    now = 0.0
    while not isinstance(action, Hangup):
        now += 3.0
        action = silent.handle(TimedOut() if isinstance(action, ReceiveFrame) else Done(), now)
    assert not action.ok and now <= 40


def test_send_session_script() -> None:
    page = FaxPage(Image.new("1", (1728, 40), 1))
    tx = T30Sender(local_id="+1 555 0100", pages=[page], fine=True)
    dis = Capabilities(families=frozenset({"V.27ter", "V.29"}), scan_ms=(20, 10))
    assert isinstance(tx.start(0.0), ReceiveFrame)
    assert isinstance(
        tx.handle(fr(Frame.make(Fcf.CSI, encode_id("999"), final=False)), 1), ReceiveFrame
    )
    assert isinstance(tx.handle(fr(Frame.make(Fcf.DIS, dis.to_fif())), 1), Silence)
    frames = tx.handle(Done(), 1)
    assert isinstance(frames, SendFrames)
    assert [f.name for f in frames.frames] == ["TSI", "DCS"] and frames.frames[1].fcf == 0x83
    dcs = Dcs.from_fif(frames.frames[1].fif)
    assert dcs.modulation.name == "V.29/9600" and dcs.fine and dcs.scan_ms == 10
    assert isinstance(tx.handle(Done(), 1), Silence)
    training = tx.handle(Done(), 1)
    assert isinstance(training, SendTraining) and training.ms == 1500
    assert isinstance(tx.handle(Done(), 2), ReceiveFrame)
    # FTT: one speed down (V.29 7200).
    assert isinstance(tx.handle(fr(Frame.make(Fcf.FTT)), 3), Silence)
    frames = tx.handle(Done(), 3)
    assert isinstance(frames, SendFrames)
    assert Dcs.from_fif(frames.frames[1].fif).modulation.name == "V.29/7200"
    for _ in range(2):
        tx.handle(Done(), 3)
    assert isinstance(tx.handle(Done(), 4), ReceiveFrame)
    assert isinstance(tx.handle(fr(Frame.make(Fcf.CFR)), 4), Silence)
    send = tx.handle(Done(), 4)
    assert isinstance(send, SendPage) and send.modulation.bps == 7200
    # Every line of the page takes at least 10 ms at 7200 bit/s (72 bits).
    assert len(send.data) >= 40 * 72 // 8
    assert isinstance(tx.handle(Done(), 5), Silence)
    ppm = tx.handle(Done(), 5)
    assert isinstance(ppm, SendFrames) and ppm.frames[0].name == "EOP"
    assert isinstance(tx.handle(Done(), 5), ReceiveFrame)
    # No answer: EOP repeated.
    assert isinstance(tx.handle(TimedOut(), 8), Silence)
    assert isinstance(tx.handle(Done(), 8), SendFrames)
    assert isinstance(tx.handle(Done(), 8), ReceiveFrame)
    dcn = tx.handle(fr(Frame.make(Fcf.MCF)), 9)
    assert isinstance(dcn, SendFrames) and dcn.frames[0].name == "DCN"
    end = tx.handle(Done(), 9)
    assert isinstance(end, Hangup) and end.ok and tx.remote_id == "999"


def test_sender_gives_up_when_the_call_drops() -> None:
    tx = T30Sender(local_id="1", pages=[FaxPage(Image.new("1", (1728, 4), 1))])
    tx.start(0.0)
    end = tx.handle(Disconnected(reason="NO CARRIER"), 1.0)
    assert isinstance(end, Hangup) and not end.ok and "NO CARRIER" in end.reason


# --- loopback --------------------------------------------------------------------------------


def make_page(seed: int) -> Image.Image:
    im = Image.new("L", (1728, 2287), 255)
    draw = ImageDraw.Draw(im)
    for i in range(0, 2287, 97):
        draw.text((40 + (i * seed) % 500, i), f"page {seed} line {i} " * 6, fill=0)
    draw.rectangle((200 * seed, 400, 200 * seed + 300, 900), outline=0, width=7)
    return im.convert("1", dither=Image.Dither.NONE)


@dataclass
class Line:
    """The phone line between two Class 1 modems, in memory: what one side sends waits in a
    queue for the other side's matching receive. `drop_training` spoils the TCF at a rate."""

    drop_training: set[int] = field(default_factory=set)
    queues: dict[str, deque[tuple[str, object, object]]] = field(
        default_factory=lambda: {"rx": deque(), "tx": deque()}
    )

    def send(self, action: Action, side: str) -> Result:
        queue = self.queues["tx" if side == "rx" else "rx"]
        if isinstance(action, SendFrames):
            for frame in action.frames:
                wire = with_fcs(frame.to_bytes()).replace(b"\x10", b"\x10\x10") + b"\x10\x03"
                queue.append(("frame", None, wire))
        elif isinstance(action, SendTraining):
            data = bytes(action.modulation.bytes_for(action.ms))
            if action.modulation.bps in self.drop_training:
                data = bytes(range(256)) * (len(data) // 256)
            queue.append(("training", action.modulation, data))
        elif isinstance(action, SendPage):
            queue.append(("page", action.modulation, action.data))
        return Done()

    def receive(self, action: Action, side: str) -> Result | None:
        queue = self.queues[side]
        if not queue:
            return None
        kind, modulation, data = queue.popleft()
        assert isinstance(data, bytes)
        if isinstance(action, ReceiveFrame):
            if kind != "frame":
                return NoCarrier()
            frame, ok = frame_from_modem(data)
            return FrameReceived(data=frame, fcs_ok=ok)
        want = "training" if isinstance(action, ReceiveTraining) else "page"
        assert isinstance(action, ReceiveTraining | ReceivePage)
        if kind != want or modulation != action.modulation:
            return NoCarrier()
        return TrainingReceived(data=data) if want == "training" else PageReceived(data=data)


def run_loopback(
    tx: T30Sender, rx: T30Receiver, line: Line, limit: int = 400
) -> tuple[Hangup, Hangup]:
    now = 0.0
    a_rx = rx.start(now)
    a_tx = tx.start(now)
    for _ in range(limit):
        if isinstance(a_rx, Hangup) and isinstance(a_tx, Hangup):
            return a_tx, a_rx
        progressed = False
        for side in ("rx", "tx"):
            engine = rx if side == "rx" else tx
            action = a_rx if side == "rx" else a_tx
            result: Result | None = None
            if isinstance(action, Silence):
                now += action.ms / 1000
                result = Done()
            elif isinstance(action, SendFrames | SendTraining | SendPage):
                result = line.send(action, side)
            elif isinstance(action, ReceiveFrame | ReceiveTraining | ReceivePage):
                result = line.receive(action, side)
            if result is not None:
                progressed = True
                nxt = engine.handle(result, now)
                if side == "rx":
                    a_rx = nxt
                else:
                    a_tx = nxt
        if not progressed:
            # Both wait or one is done: the earliest deadline fires.
            waiting = [
                (a.deadline, side)
                for side, a in (("rx", a_rx), ("tx", a_tx))
                if isinstance(a, ReceiveFrame | ReceiveTraining | ReceivePage)
            ]
            deadline, side = min(waiting)
            now = max(now, deadline)
            if side == "rx":
                a_rx = rx.handle(TimedOut(), now)
            else:
                a_tx = tx.handle(TimedOut(), now)
    raise AssertionError(f"no end: tx {tx.trace[-6:]} rx {rx.trace[-6:]}")


PAGES = [make_page(1), make_page(2)]


@pytest.mark.parametrize("modulation", FALLBACK_ORDER, ids=lambda m: m.name)
@pytest.mark.parametrize("fine", [True, False], ids=["fine", "normal"])
def test_loopback_two_pages_pixel_exact(modulation: object, fine: bool) -> None:
    assert modulation in FALLBACK_ORDER
    code = FALLBACK_ORDER[FALLBACK_ORDER.index(modulation)].code  # type: ignore[arg-type]
    tx = T30Sender(
        local_id="+1 555 0100",
        pages=[FaxPage(p) for p in PAGES],
        fine=fine,
        modulations=frozenset({code}),
    )
    rx = T30Receiver(local_id="+1 555 0199", capabilities=Capabilities(scan_ms=(10, 5)))
    end_tx, end_rx = run_loopback(tx, rx, Line())
    assert end_tx.ok and end_rx.ok, (tx.trace, rx.trace)
    assert rx.remote_id == "+1 555 0100" and tx.remote_id == "+1 555 0199"
    assert len(rx.pages) == 2
    for got, want in zip(rx.pages, PAGES, strict=True):
        assert got.dcs.modulation.code == code and got.dcs.fine is fine
        page = decode_page(got.data, fine=got.dcs.fine, mr=got.dcs.mr)
        expected = np.asarray(want)[:: 1 if fine else 2]
        assert page.damaged_lines == 0
        assert np.array_equal(np.asarray(page.image), expected)


def test_loopback_falls_back_when_training_fails_at_14400() -> None:
    tx = T30Sender(local_id="1", pages=[FaxPage(p) for p in PAGES], fine=True, mr=True)
    rx = T30Receiver(local_id="2")
    line = Line(drop_training={14400})
    end_tx, end_rx = run_loopback(tx, rx, line)
    assert end_tx.ok and end_rx.ok
    assert "= TCF bad at V.17/14400" in rx.trace and "< FTT" in tx.trace
    assert {p.dcs.modulation.name for p in rx.pages} == {"V.17/12000"}
    for got, want in zip(rx.pages, PAGES, strict=True):
        page = decode_page(got.data, fine=True)
        assert page.mr and np.array_equal(np.asarray(page.image), np.asarray(want))


def test_loopback_training_fails_everywhere_ends_with_dcn() -> None:
    tx = T30Sender(local_id="1", pages=[FaxPage(PAGES[0])])
    rx = T30Receiver(local_id="2")
    line = Line(drop_training={m.bps for m in FALLBACK_ORDER})
    end_tx, end_rx = run_loopback(tx, rx, line)
    assert not end_tx.ok and "every speed" in end_tx.reason
    assert not end_rx.ok and rx.pages == []
