"""The serial transport on a real pty: a burst the modem sends in one write reaches the line
as one piece (the reader wakes on its first byte and takes the rest with it)."""

from __future__ import annotations

import os
import threading
import tty
from pathlib import Path

from firmware_app.modem.transport import Transport


def test_a_burst_arrives_as_one_piece(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    pieces: list[bytes] = []
    got = threading.Condition()

    def on_data(data: bytes) -> None:
        with got:
            pieces.append(data)
            got.notify_all()

    transport = Transport(path, 115200, on_data, lambda exc: None, name="test")
    transport.open()
    try:
        for n in range(20):  # twenty 20 ms frames of voice audio, one write each
            frame = bytes([n]) * 160
            with got:
                before = len(pieces)
                os.write(master, frame)
                assert got.wait_for(lambda b=before: sum(map(len, pieces[b:])) >= 160, timeout=30)
                assert b"".join(pieces[before:]) == frame
        # A lone first byte followed by the rest would make this forty pieces.
        assert len(pieces) <= 22
    finally:
        transport.close()
        os.close(master)
        os.close(slave)
