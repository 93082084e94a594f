"""Texts through a real `frontdesk run`: the simulated SIM800 lives in the test process on a
pty, the daemon opens its path like /dev/ttyUSB0 and is SIGKILLed at the worst moments.
Also: `frontdesk sms send`, SMS-to-email through aiosmtpd with the contact's name, and gammu
(an independent GSM client) reading what Frontdesk encodes and writing what it reads."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from firmware_app.events import EventBus
from firmware_app.modem.simulator import SimulatedModem, create
from firmware_app.protocol.sms_pdu import (
    Concat,
    build_submit_pdus,
    decode_pdu,
    encode_deliver,
    split_text,
)
from firmware_app.services.history import HistoryService, Interaction
from firmware_app.services.settings import SettingsService
from firmware_app.store import Store

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deliver(text: str, sender: str = "+447700900123", **kw: Any) -> str:
    return encode_deliver(sender=sender, payload=text, timestamp=T0, **kw).hex().upper()


def wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


class Daemon:
    def __init__(self, tmp: Path, modem: SimulatedModem) -> None:
        self.data = tmp / "data"
        self.config = tmp / "frontdesk.toml"
        self.config.write_text(
            f'[store]\ndata_dir = "{self.data}"\n[web]\nlisten = "127.0.0.1:{free_port()}"\n'
            f'[modem]\ndevices = ["{modem.path}"]\n[log]\nlevel = "info"\n'
        )
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("NOTIFY_SOCKET", None)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "firmware_app", "run", "--config", str(self.config)],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            assert self.proc.wait(10) == 0, self.log.read_text()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "firmware_app", *args, "--config", str(self.config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def texts(self) -> list[Interaction]:
        with Store(self.data, lock=False) as store:
            history = HistoryService(store, EventBus())
            return list(reversed(history.newest(100, where=lambda i: i.channel == "sms")))


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[SimulatedModem]:
    m = create("sim800", tmp_path / "dev")
    yield m
    m.close()


@pytest.fixture
def daemon(tmp_path: Path, modem: SimulatedModem) -> Iterator[Daemon]:
    d = Daemon(tmp_path, modem)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait(5)


def test_killed_between_read_and_store_and_before_delete_stores_once(
    daemon: Daemon, modem: SimulatedModem
) -> None:
    # 1. Killed while the modem holds its answer to AT+CMGR: nothing stored yet.
    modem.hold(r"^AT\+CMGR")
    daemon.start()
    modem.wait_for_command(r"^AT\+CMGL=4", timeout=20)
    time.sleep(0.5)
    mark = len(modem.commands)
    slot = modem.deliver_sms(deliver("Killed while reading"))
    modem.wait_for_command(rf"^AT\+CMGR={slot}$", timeout=10, since=mark)
    daemon.kill()
    modem.release()
    assert len(modem.messages()) == 1

    # 2. Killed after storing, while the delete gets no answer: the part is on disk and
    #    still on the SIM.
    modem.hold(r"^AT\+CMGD")
    mark = len(modem.commands)
    daemon.start()
    modem.wait_for_command(r"^AT\+CMGD=", timeout=20, since=mark)
    daemon.kill()
    modem.release()
    assert len(modem.messages()) == 1
    with Store(daemon.data, lock=False) as store:
        parts = store.table("sms", "parts").all()
    assert [p["state"] for p in parts] == ["pending"]  # on disk before the delete was sent

    # 3. A clean start: the message is known by its fingerprint, deleted, not stored again.
    daemon.start()
    wait(lambda: modem.messages() == {}, 20, "the SIM is emptied")
    daemon.stop()
    texts = daemon.texts()
    assert [i.text for i in texts] == ["Killed while reading"]
    assert not any(c.upper().startswith("AT+CMGD=1,") for c in modem.commands)


def on_disk(data: Path, fp: str) -> bool:
    """The fingerprint is in the `sms` database's files (snapshot or journal), read as text."""
    for path in data.glob("sms.json*"):
        try:
            if fp in path.read_text(encoding="utf-8", errors="replace"):
                return True
        except FileNotFoundError:
            continue
    return False


def test_sim_busy_read_is_tried_again_stored_once_and_emailed_once(
    daemon: Daemon, modem: SimulatedModem
) -> None:
    """The SIM answers the first AT+CMGR with +CMS ERROR: 314: the slot is read again, the
    text stored, then deleted from the SIM (never before it is on disk), one record and one
    email; a text put on the SIM without +CMTI meanwhile is found by the sweep that follows."""
    from firmware_app.protocol.sms_pdu import fingerprint

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    pdu = deliver("The SIM was busy")
    quiet = deliver("No +CMTI for me", sender="+447700900456")
    fps = {fingerprint(decode_pdu(p)) for p in (pdu, quiet)}  # type: ignore[arg-type]
    deletes: list[tuple[int, bool]] = []
    engine = modem.engine
    original = engine.handlers["+CMGD"]

    def cmgd(port_: int, cmd: Any) -> Any:
        if cmd.form == "set":
            index = int(cmd.args.split(",")[0])
            slot = engine.memories[engine.cpms[0]].slots.get(index)
            if slot is not None:
                fp = fingerprint(decode_pdu(slot.pdu))  # type: ignore[arg-type]
                deletes.append((index, fp in fps and on_disk(daemon.data, fp)))
        return original(port_, cmd)

    engine.handlers["+CMGD"] = cmgd
    try:
        store = Store(daemon.data)
        settings = SettingsService(store, EventBus())
        s = settings.get()
        s = s.replace(
            "business",
            type(s.business)(name="Rossi", country="GB", owner_email="anna@rossi.example"),
        ).replace(
            "email",
            type(s.email)(
                smtp_host="127.0.0.1", smtp_port=port, security="none", from_address="d@r.example"
            ),
        )
        settings.save(s)
        store.close()
        daemon.start()
        modem.wait_for_command(r"^AT\+CMGL=4", timeout=20)
        time.sleep(0.5)
        mark = len(modem.commands)
        modem.sim_busy("+CMGR", times=1)
        slot = modem.deliver_sms(pdu)
        modem.wait_for_command(rf"^AT\+CMGR={slot}$", timeout=10, since=mark)
        modem.store_sms(quiet, stat=0)  # while the SIM is busy, no +CMTI
        wait(lambda: modem.messages() == {}, 30, "the SIM is emptied")
        wait(lambda: len(inbox.messages) >= 2, 30, "both emails")
        daemon.stop()
    finally:
        controller.stop()
    assert modem.sim_busy_answers == 1
    assert modem.commands[mark:].count(f"AT+CMGR={slot}") == 2
    assert sorted(i.text for i in daemon.texts()) == ["No +CMTI for me", "The SIM was busy"]
    assert len(inbox.messages) == 2
    assert len(deletes) == 2 and all(ok for _i, ok in deletes), deletes
    log = daemon.log.read_text()
    assert log.count("queued sms email") == 2  # every email the daemon ever queued
    assert f"line1: SIM busy reading slot {slot}; trying again in 2 s" in log


def test_cli_send_through_the_daemon_and_without_it(daemon: Daemon, modem: SimulatedModem) -> None:
    refused = daemon.cli("sms", "send", "--to", "+447700900456", "Hi")
    assert refused.returncode == 1 and "needs the running daemon" in refused.stderr
    daemon.start()
    modem.wait_for_command(r"^AT\+CMGL=4", timeout=20)
    done = daemon.cli("sms", "send", "--to", "+44 7700 900456", "Grüße", "from", "the", "CLI")
    assert done.returncode == 0, done.stderr
    assert "queued (1 part, GSM-7)" in done.stdout
    wait(lambda: len(modem.sent_sms) == 1, 15, "the text is sent")
    bad = daemon.cli("sms", "send", "--to", "nobody", "Hi")
    assert bad.returncode == 2 and "to: 'nobody' is not allowed" in bad.stderr  # bad input
    daemon.stop()
    sent = decode_pdu(modem.sent_sms[0])
    assert sent.text == "Grüße from the CLI"  # type: ignore[union-attr]
    assert str(sent.destination) == "+447700900456"  # type: ignore[union-attr]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content)
        self.arrived.set()
        return "250 OK"


def test_sms_to_email_with_the_contact_name(
    daemon: Daemon, modem: SimulatedModem, tmp_path: Path
) -> None:
    import email
    import email.policy

    from firmware_app.services.contacts import ContactsService, Draft

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    try:
        store = Store(daemon.data)
        bus = EventBus()
        settings = SettingsService(store, bus)
        s = settings.get()
        s = s.replace(
            "business",
            type(s.business)(name="Rossi", country="GB", owner_email="anna@rossi.example"),
        ).replace(
            "email",
            type(s.email)(
                smtp_host="127.0.0.1", smtp_port=port, security="none", from_address="d@r.example"
            ),
        )
        settings.save(s)
        ContactsService(store, bus, settings.get).save(
            Draft(name="Maria Bianchi", numbers=(("07700 900123", "mobile"),))
        )
        store.close()
        modem.store_sms(deliver("Is my boiler ready?\r\nBcc: victim@example.com"), stat=0)
        daemon.start()
        assert inbox.arrived.wait(30), daemon.log.read_text()[-3000:]
        daemon.stop()
    finally:
        controller.stop()
    msg = email.message_from_bytes(inbox.messages[0], policy=email.policy.default)
    assert msg["Subject"].startswith("Text from Maria Bianchi: Is my boiler ready?")
    assert msg["Bcc"] is None
    body = msg.get_body(("plain",))
    assert body is not None and "Is my boiler ready?" in body.get_content()


# -- gammu, an independent GSM client ----------------------------------------------------------

needs_gammu = pytest.mark.skipif(shutil.which("gammu") is None, reason="gammu is not installed")


def run_gammu(modem: SimulatedModem, tmp_path: Path, *args: str) -> str:
    config = tmp_path / "gammurc"
    config.write_text(f"[gammu]\ndevice = {modem.urc_path}\nconnection = at115200\n")
    result = subprocess.run(
        ["gammu", "-c", str(config), *args], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@needs_gammu
@pytest.mark.parametrize(
    ("text", "unicode"),
    [
        ("Grüße aus Zürich 😀 " * 6 + "ende", True),  # UCS-2 with surrogate pairs
        ("Price: €12 {incl. tax} [ok] ~^|\\ " * 6 + "end", False),  # GSM-7 escapes
    ],
    ids=["ucs2-emoji", "gsm7-escapes"],
)
def test_gammu_sends_and_frontdesk_stores_the_same_text(
    modem: SimulatedModem, tmp_path: Path, text: str, unicode: bool
) -> None:
    """gammu drives a second simulated phone and sends a long text to the office's number;
    the simulated network turns its SUBMITs into DELIVERs (the service centre's job, not
    Frontdesk's codec) and hands the parts to the office's modem in reverse order; a real
    `frontdesk run` takes them from the SIM and stores the one text gammu was given."""
    from firmware_app.modem.simulator.sms_network import SmsNetwork

    phone = create("sim800", tmp_path / "phone")
    network = SmsNetwork(hold=True)
    network.join(phone, "+447700900123")
    network.join(modem, "+447700900999")
    daemon = Daemon(tmp_path, modem)
    daemon.start()
    try:
        modem.wait_for_command(r"^AT\+CMGL=4", timeout=30)
        args = ["sendsms", "TEXT", "+447700900999", "-len", "400", "-text", text]
        run_gammu(phone, tmp_path, *(args + (["-unicode"] if unicode else [])))
        parts = network.held
        assert parts >= 2 and network.undeliverable == []
        network.release(order=list(reversed(range(parts))))
        wait(lambda: len(daemon.texts()) == 1, 30, "the text in the history")
        (item,) = daemon.texts()
        assert item.text == text and item.number == "+447700900123"
        assert item.details["parts"] == parts and item.details["complete"] is True
        assert item.details["encoding"] == ("ucs2" if unicode else "gsm7")
        wait(lambda: modem.messages() == {}, 30, "the SIM emptied")
    finally:
        daemon.stop()
        phone.close()


@needs_gammu
def test_frontdesk_encoded_messages_read_by_gammu(modem: SimulatedModem, tmp_path: Path) -> None:
    """DELIVERs as Frontdesk's codec writes them (long GSM-7 with an escape, UCS-2 with an
    emoji) stored on the simulated SIM; `gammu getallsms` reads the same texts, and our
    SUBMITs written with AT+CMGW too."""
    long_gsm = "Price: €12 {incl. tax} " * 9
    parts = split_text(long_gsm)
    for seq, part in enumerate(parts, 1):
        concat = Concat(reference=42, total=len(parts), seq=seq)
        modem.store_sms(deliver(part, concat=concat), stat=1)
    modem.store_sms(deliver("Ciao 😀 à bientôt", sender="+393331234567"), stat=1)
    for p in build_submit_pdus("+447700900456", "Sent by Frontdesk ✓", reference=5):
        modem.store_sms(p.hex, stat=3)
    out = run_gammu(modem, tmp_path, "getallsms")
    flat = " ".join(out.split())
    for part in parts:
        assert " ".join(part.split()) in flat
    assert "Ciao 😀 à bientôt" in out
    assert "Sent by Frontdesk ✓" in out
    assert '"+393331234567"' in out and '"+447700900456"' in out
