"""Email delivery against a real aiosmtpd server on 127.0.0.1: plain, STARTTLS, TLS, AUTH.

The clock is a fake one the tests move forward, so backoff is exercised without sleeping.
Certificates are made per session with the `openssl` command.
"""

from __future__ import annotations

import email
import email.policy
import io
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from firmware_app.services.notify import (
    FaxNotice,
    MissedCallNotice,
    Notifier,
    SmsNotice,
    VoicemailNotice,
    backoff,
)
from firmware_app.settings.model import Business, Email, Settings
from firmware_app.store import Store

pytestmark = pytest.mark.timeout(30)

USER, PASSWORD = "frontdesk@example.com", "s3cret pass"


# -- a fake clock and a settings box -----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Box:
    settings: Settings

    def __call__(self) -> Settings:
        return self.settings

    def email(self, **changes: Any) -> None:
        import dataclasses

        self.settings = self.settings.replace(
            "email", dataclasses.replace(self.settings.email, **changes)
        )


# -- the SMTP server ---------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    authenticated: bool

    @property
    def msg(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Inbox:
    """aiosmtpd handler: stores what arrives; scripted replies make it refuse."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    drop_after_data: int = 0  # take the message, then hang up without replying
    arrived: threading.Event = field(default_factory=threading.Event)
    refuse: dict[str, list[str]] = field(default_factory=dict)  # replies for one address

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse.get(address):
            return self.refuse[address].pop(0)
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.content,
                bool(session.authenticated),
            )
        )
        self.arrived.set()
        if self.drop_after_data:
            self.drop_after_data -= 1
            server.transport.close()
            return "250 never seen"
        return "250 2.0.0 Ok: queued as 4711"


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not installed")
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=20,
    )
    return crt, key


@pytest.fixture
def client_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert[0]))


class Server:
    """Start and stop an aiosmtpd controller in one of the three security modes."""

    def __init__(
        self,
        mode: str,
        cert: tuple[Path, Path] | None,
        port: int | None = None,
        **smtp: Any,
    ) -> None:
        self.mode = mode
        self.cert = cert
        self.port = port or free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None
        self.smtp = smtp  # more aiosmtpd SMTP parameters

    def start(self) -> Server:
        kwargs: dict[str, Any] = dict(self.smtp)
        if self.mode in ("starttls", "tls"):
            assert self.cert is not None
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
            if self.mode == "starttls":
                kwargs.update(tls_context=ctx, require_starttls=True, auth_required=True)
            else:
                # aiosmtpd only counts STARTTLS as TLS for AUTH; on an implicit TLS port it
                # must be told not to insist, and the handler checks the login instead.
                kwargs.update(ssl_context=ctx, auth_require_tls=False)
            kwargs.update(authenticator=authenticator)
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, ready_timeout=5, **kwargs
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def servers(cert: tuple[Path, Path]) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(
        mode: str = "none", port: int | None = None, start: bool = True, **smtp: Any
    ) -> Server:
        srv = Server(mode, cert, port, **smtp)
        started.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in started:
        srv.stop()


# -- the notifier ------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data")
    yield s
    s.close()


def make_settings(port: int, security: str = "none", **email: Any) -> Settings:
    creds = {"username": USER, "password": PASSWORD} if security != "none" else {}
    return Settings(
        business=Business(
            name="Café Zürich",
            timezone="Europe/Zurich",
            country="CH",
            owner_email="owner@example.com",
        ),
        email=Email(
            smtp_host="127.0.0.1",
            smtp_port=port,
            security=security,  # type: ignore[arg-type]
            from_address="frontdesk@example.com",
            **{**creds, **email},
        ),
    )


@pytest.fixture
def make_notifier(
    store: Store, clock: Clock, client_tls: ssl.SSLContext
) -> Iterator[Callable[..., tuple[Notifier, Box]]]:
    made: list[Notifier] = []

    def make(
        port: int, security: str = "none", st: Store | None = None, **email: Any
    ) -> tuple[Notifier, Box]:
        box = Box(make_settings(port, security, **email))
        n = Notifier(
            st or store,
            box,
            clock=clock,
            ssl_context=client_tls,
            timeout=5,
            local_hostname="frontdesk.test",
            page_url="http://frontdesk.local:8080",  # the box's own address (config.page_url)
        )
        made.append(n)
        return n, box

    yield make
    for n in made:
        assert n.stop(timeout=5)


def wav_bytes(seconds: float = 2.0) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    buf = io.BytesIO()
    sf.write(
        buf,
        (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"),
        8000,
        format="WAV",
        subtype="PCM_16",
    )
    return buf.getvalue()


def voicemail(store: Store, clock: Clock, **kw: Any) -> VoicemailNotice:
    ref = store.media.write(wav_bytes(), "wav")
    args: dict[str, Any] = {
        "number": "+41446681800",
        "at": clock.now,
        "duration_s": 42,
        "contact_name": "Jürgen Müller",
        "audio_ref": ref,
        "record_id": "2026-11:7",
        "line": "Office",
    }
    args.update(kw)
    return VoicemailNotice(**args)


def parts(msg: EmailMessage) -> list[str]:
    return [p.get_content_type() for p in msg.walk()]


# -- delivery in each security mode -----------------------------------------------------------


def test_voicemail_plain_smtp_full_mime(
    servers: Any, make_notifier: Any, store: Store, clock: Clock
) -> None:
    srv = servers("none")
    n, _ = make_notifier(srv.port)
    msg_id = n.voicemail(voicemail(store, clock))
    assert msg_id is not None
    assert n.deliver_due() == 1

    (got,) = srv.inbox.received
    assert got.mail_from == "frontdesk@example.com"
    assert got.rcpt_tos == ["owner@example.com"]
    m = got.msg
    assert parts(m) == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "audio/mpeg",
    ]
    assert str(m["From"]) == "Café Zürich <frontdesk@example.com>"
    raw_head = got.raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in raw_head  # RFC 2047 for the non-ASCII names
    assert raw_head.isascii()
    assert str(m["Reply-To"]) == "owner@example.com"
    assert str(m["To"]) == "owner@example.com"
    assert m["Date"].datetime == clock.now
    stored = n.outbox.get(msg_id)
    assert stored is not None
    assert m["Message-ID"] == stored["message_id"]
    assert m["Subject"] == "Voicemail from Jürgen Müller (0:42)"
    assert m["Auto-Submitted"] == "auto-generated"

    text = m.get_body(("plain",)).get_content()
    assert "Jürgen Müller, 044 668 18 00" in text
    assert "Wed 25 Nov 2026, 14:05 (CET)" in text  # business timezone
    assert "http://frontdesk.local:8080/history/2026-11%3A7" in text
    assert text.count("The recording is attached.") == 1
    html = m.get_body(("html",)).get_content()
    assert 'href="http://frontdesk.local:8080/history/2026-11%3A7"' in html

    (att,) = list(m.iter_attachments())
    assert att.get_filename() == "voicemail-2026-11-25-1405.mp3"
    audio = att.get_content()
    assert audio == store.media.read(stored["attachments"][0]["ref"])
    data, rate = sf.read(io.BytesIO(audio))
    assert rate == 8000 and 1.5 < len(data) / rate < 2.5

    entry = n.message(msg_id)
    assert entry is not None and entry.state == "sent" and entry.attempts == 1
    assert entry.server_reply.startswith("250 2.0.0 Ok")


def test_starttls_with_auth(servers: Any, make_notifier: Any, clock: Clock) -> None:
    srv = servers("starttls")
    n, _ = make_notifier(srv.port, "starttls")
    n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now, reason="after hours"))
    assert n.deliver_due() == 1
    (got,) = srv.inbox.received
    assert got.authenticated
    assert got.msg["Subject"] == "Missed call from +1 202-555-0143"
    assert parts(got.msg) == ["multipart/alternative", "text/plain", "text/html"]


def test_implicit_tls_with_auth(servers: Any, make_notifier: Any, clock: Clock) -> None:
    srv = servers("tls")
    n, _ = make_notifier(srv.port, "tls")
    n.sms(SmsNotice(number="+41791234567", at=clock.now, text="Grüezi! Call me back 🙂"))
    assert n.deliver_due() == 1
    (got,) = srv.inbox.received
    assert got.authenticated
    assert "Grüezi! Call me back 🙂" in got.msg.get_body(("plain",)).get_content()


def test_wrong_password_waits_and_reports(servers: Any, make_notifier: Any, clock: Clock) -> None:
    srv = servers("starttls")
    n, box = make_notifier(srv.port, "starttls", password="wrong")
    msg_id = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    assert n.deliver_due() == 0
    entry = n.message(msg_id)
    assert entry.state == "queued" and entry.attempts == 1
    assert "refused the login" in entry.last_error and "535" in entry.last_error
    status = n.status()
    assert "535" in status.last_error and status.counts["queued"] == 1
    assert "wrong" not in status.last_error  # never the password
    box.email(password=PASSWORD)
    n.settings_changed()  # fixing the settings makes waiting messages due at once
    assert n.deliver_due() == 1
    assert n.status().last_error == ""


def test_untrusted_certificate_is_a_server_problem(
    servers: Any, store: Store, clock: Clock
) -> None:
    srv = servers("tls")
    box = Box(make_settings(srv.port, "tls"))
    n = Notifier(store, box, clock=clock, timeout=5)  # default context: the test CA is unknown
    msg_id = n.sms(SmsNotice(number="+41791234567", at=clock.now, text="hi"))
    assert n.deliver_due() == 0
    assert "not trusted" in n.message(msg_id).last_error
    assert srv.inbox.received == []


def test_system_certificates_are_loaded_once_and_only_for_encryption(
    servers: Any, store: Store, clock: Clock
) -> None:
    plain = servers("none")
    n = Notifier(store, Box(make_settings(plain.port, "none")), clock=clock, timeout=5)
    n.sms(SmsNotice(number="+41791234567", at=clock.now, text="plain"))
    assert n.deliver_due() == 1
    assert n.ssl_context is None  # a plain connection never reads the certificate store

    tls = servers("tls")
    n2 = Notifier(store, Box(make_settings(tls.port, "tls")), clock=clock, timeout=5)
    first = n2.sms(SmsNotice(number="+41791234567", at=clock.now, text="one"))
    assert n2.deliver_due() == 0
    loaded = n2.ssl_context
    assert loaded is not None
    assert "not trusted" in n2.message(first).last_error
    n2.outbox.retry(first)
    assert n2.deliver_due() == 0
    assert n2.ssl_context is loaded  # the next connection reuses it


# -- header injection --------------------------------------------------------------------------


def test_a_sent_message_keeps_its_facts_not_its_bodies(
    servers: Any, make_notifier: Any, clock: Clock
) -> None:
    srv = servers("none")
    n, _ = make_notifier(srv.port)
    msg_id = n.sms(SmsNotice(number="+41791234567", at=clock.now, text="hello there"))
    assert n.outbox.get(msg_id)["text"]  # queued: the bodies are what will be sent
    assert n.deliver_due() == 1
    doc = n.outbox.get(msg_id)
    assert doc["state"] == "sent" and doc["message_id"] and doc["subject"]
    assert doc["text"] == "" and doc["html"] == ""
    assert n.outbox.entry(msg_id).server_reply.startswith("250")
    assert not n.outbox.retry(msg_id)  # never built again
    assert len(srv.inbox.received) == 1


def test_header_injection_is_impossible(
    servers: Any, make_notifier: Any, store: Store, clock: Clock
) -> None:
    srv = servers("none")
    n, _ = make_notifier(srv.port)
    evil = "Eve\r\nBcc: victim@example.com\r\nX-Injected: yes"
    n.sms(
        SmsNotice(
            number="+41791234567\r\nX-Number: 1",
            at=clock.now,
            contact_name=evil,
            text="Hi\r\nBcc: victim2@example.com\n\nX-Body-Injected: 1\x00\x1b[31m",
        )
    )
    n.fax(
        FaxNotice(
            number="",
            at=clock.now,
            pages=1,
            remote_id="ACME\nSubject: fake\u2028X: y",
            contact_name="\u202eevil",
        )
    )
    n.voicemail(voicemail(store, clock, contact_name="Mallory\rCc: cc@example.com"))
    assert n.deliver_due() == 3
    assert len(srv.inbox.received) == 3
    for got in srv.inbox.received:
        assert got.rcpt_tos == ["owner@example.com"]
        m = got.msg
        names = [k.lower() for k in m]
        assert not {"bcc", "cc", "x-injected", "x-number", "x", "x-body-injected"} & set(names)
        assert names.count("subject") == 1
        assert "\r" not in m["Subject"] and "\n" not in m["Subject"]
        assert "\u202e" not in m["Subject"]
        head = got.raw.split(b"\r\n\r\n", 1)[0]
        assert b"\x00" not in got.raw and b"\x1b" not in got.raw
        assert b"\nBcc" not in head and b"\nCc" not in head
    sms = srv.inbox.received[0].msg
    assert sms["Subject"].startswith("Text from Eve Bcc: victim@example.com X-Injected: yes")
    html = sms.get_body(("html",)).get_content()
    assert "<script" not in html


# -- retries -----------------------------------------------------------------------------------


def test_4xx_retried_with_backoff(servers: Any, make_notifier: Any, clock: Clock) -> None:
    srv = servers("none")
    srv.inbox.data_replies = ["451 4.3.0 Try again later"] * 3
    n, _ = make_notifier(srv.port)
    msg_id = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    start = clock.now
    waits = []
    for _ in range(3):
        assert n.deliver_due() == 0
        entry = n.message(msg_id)
        assert entry.state == "queued" and entry.last_error == "451 4.3.0 Try again later"
        waits.append((entry.next_attempt - clock.now).total_seconds())
        assert n.deliver_due() == 0  # not due yet: nothing tried
        clock.now = entry.next_attempt
    assert waits == [60, 120, 240]
    assert n.deliver_due() == 1
    entry = n.message(msg_id)
    assert entry.state == "sent" and entry.attempts == 4
    assert clock.now - start == timedelta(minutes=7)
    assert len(srv.inbox.received) == 1


def test_5xx_fails_with_server_words_and_retry_requeues(
    servers: Any, make_notifier: Any, clock: Clock
) -> None:
    srv = servers("none")
    srv.inbox.rcpt_replies = ["550 5.1.1 <owner@example.com>: Recipient address rejected"]
    n, _ = make_notifier(srv.port)
    msg_id = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    assert n.deliver_due() == 0
    entry = n.message(msg_id)
    assert entry.state == "failed"
    assert "550 5.1.1 <owner@example.com>: Recipient address rejected" in entry.last_error
    assert n.status().counts["failed"] == 1
    clock.advance(7200)
    assert n.deliver_due() == 0  # failed stays failed
    assert n.retry(msg_id)
    assert not n.retry(msg_id + 100)
    assert n.deliver_due() == 1
    assert n.message(msg_id).state == "sent"
    assert not n.retry(msg_id)  # a sent message is not sent again


def test_5xx_at_data(servers: Any, make_notifier: Any, clock: Clock) -> None:
    srv = servers("none")
    srv.inbox.data_replies = ["554 5.7.1 Message rejected as spam"]
    n, _ = make_notifier(srv.port)
    msg_id = n.sms(SmsNotice(number="+41791234567", at=clock.now, text="buy now"))
    n.deliver_due()
    assert n.message(msg_id).state == "failed"
    assert n.message(msg_id).last_error == "554 5.7.1 Message rejected as spam"


def test_server_down_then_up(servers: Any, make_notifier: Any, clock: Clock) -> None:
    srv = servers("none", start=False)
    n, _ = make_notifier(srv.port)
    a = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    b = n.missed_call(MissedCallNotice(number="+12025550144", at=clock.now))
    assert n.deliver_due() == 0
    for msg_id in (a, b):
        entry = n.message(msg_id)
        assert entry.state == "queued" and entry.attempts == 1
        assert "cannot reach 127.0.0.1" in entry.last_error
        assert entry.next_attempt == clock.now + timedelta(minutes=1)
    assert n.status().next_attempt == clock.now + timedelta(minutes=1)
    for _ in range(8):  # down for hours: the wait doubles up to one hour
        clock.now = n.status().next_attempt
        assert n.deliver_due() == 0
    assert n.message(a).next_attempt - clock.now == timedelta(hours=1)
    srv.start()
    clock.now = n.status().next_attempt
    assert n.deliver_due() == 2
    assert len(srv.inbox.received) == 2


def test_gives_up_after_a_week(servers: Any, make_notifier: Any, clock: Clock) -> None:
    srv = servers("none", start=False)
    n, _ = make_notifier(srv.port)
    msg_id = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    clock.advance(8 * 86400)
    n.deliver_due()
    entry = n.message(msg_id)
    assert entry.state == "failed" and entry.last_error.startswith("gave up after 7 days")


# -- at least once, never lost -----------------------------------------------------------------


def test_lost_reply_resends_same_message_id(servers: Any, make_notifier: Any, clock: Clock) -> None:
    srv = servers("none")
    srv.inbox.drop_after_data = 1
    n, _ = make_notifier(srv.port)
    msg_id = n.sms(SmsNotice(number="+41791234567", at=clock.now, text="hello"))
    assert n.deliver_due() == 0
    assert n.message(msg_id).state == "queued"
    clock.advance(60)
    assert n.deliver_due() == 1
    first, second = srv.inbox.received
    assert first.msg["Message-ID"] == second.msg["Message-ID"]
    assert first.raw == second.raw  # the very same message: a recognisable duplicate


def test_interrupted_send_resumes_after_restart(
    servers: Any, make_notifier: Any, tmp_path: Path, clock: Clock
) -> None:
    srv = servers("none")
    data = tmp_path / "restart"
    st = Store(data)
    n, _ = make_notifier(srv.port, st=st)
    msg_id = n.fax(FaxNotice(number="+41446681801", at=clock.now, pages=2, remote_id="ACME"))
    claimed = n.outbox.claim(msg_id)  # the worker took it: then the power went
    assert claimed is not None and claimed["state"] == "sending"
    st.close()

    st2 = Store(data)
    try:
        n2, _ = make_notifier(srv.port, st=st2)
        assert n2.message(msg_id).state == "sending"
        n2.start()  # recovers and delivers on the worker thread
        assert srv.inbox.arrived.wait(10)
        deadline = time.monotonic() + 10
        while n2.message(msg_id).state != "sent" and time.monotonic() < deadline:
            time.sleep(0.02)
        entry = n2.message(msg_id)
        assert entry.state == "sent" and entry.attempts == 2
        assert srv.inbox.received[0].msg["Message-ID"] == claimed["message_id"]
        assert n2.stop(timeout=5)
    finally:
        st2.close()


def test_outbox_survives_reopening_the_store(
    tmp_path: Path, clock: Clock, client_tls: ssl.SSLContext
) -> None:
    data = tmp_path / "reopen"
    st = Store(data)
    box = Box(make_settings(free_port()))
    n = Notifier(st, box, clock=clock, ssl_context=client_tls, timeout=5)
    msg_id = n.sms(SmsNotice(number="+41791234567", at=clock.now, text="keep me"))
    before = n.outbox.get(msg_id)
    st.close()
    st2 = Store(data)
    try:
        n2 = Notifier(st2, box, clock=clock)
        assert n2.outbox.get(msg_id) == before
        assert n2.status().counts == {"queued": 1, "sending": 0, "sent": 0, "failed": 0}
    finally:
        st2.close()


def test_links_go_to_the_owners_address_else_the_boxs_own(
    servers: Any, make_notifier: Any, clock: Clock
) -> None:
    """`email.web_url` empty: links to this box's own address (the machine config's
    `web.public_url`, else its name and port); the owner's address wins; "none": no links."""
    srv = servers("none")
    n, box = make_notifier(srv.port)
    notice = SmsNotice(number="+41791234567", at=clock.now, text="hi", record_id="2026-11:3")
    n.sms(notice)
    box.email(web_url="https://desk.example.com/")
    n.sms(notice)
    box.email(web_url="none")
    n.sms(notice)
    assert n.deliver_due() == 3
    texts = [r.msg.get_body(("plain",)).get_content() for r in srv.inbox.received]
    assert "http://frontdesk.local:8080/history/2026-11%3A3" in texts[0]
    assert "https://desk.example.com/history/2026-11%3A3" in texts[1]
    assert "/history/" not in texts[2] and "http" not in texts[2]


def test_a_mail_server_not_up_yet_at_start_up_is_tried_again_in_seconds(
    servers: Any, store: Store, clock: Clock
) -> None:
    """Just after the start, a server that refuses the connection (a relay on this machine
    or the demo's sink not listening yet) is tried again after STARTUP_RETRY, the try not
    counted, instead of after the backoff; once it listens the email goes at that next try.
    After the start-up grace a refused connection waits the backoff as any failure does."""
    from firmware_app.services.notify import service as notify_service

    srv = servers("none", start=False)
    n = Notifier(store, Box(make_settings(srv.port)), timeout=5)  # the real clock
    msg_id = n.sms(SmsNotice(number="+41791234567", at=datetime.now(UTC), text="waiting"))
    assert msg_id is not None
    n.worker.start()
    try:
        deadline = time.monotonic() + 60
        while (entry := n.outbox.entry(msg_id)) is not None and not entry.last_error:
            assert time.monotonic() < deadline, "no first try"
            time.sleep(0.05)
        assert entry is not None and entry.state == "queued", entry
        assert "connection refused" in entry.last_error.lower(), entry.last_error
        assert entry.attempts == 0  # the server was not there yet: no failure counted
        assert entry.next_attempt is not None
        assert entry.next_attempt - entry.last_attempt == notify_service.STARTUP_RETRY
        srv.start()
        while (entry := n.outbox.entry(msg_id)) is not None and entry.state != "sent":
            assert time.monotonic() < deadline, "not sent once the server listened"
            time.sleep(0.05)
        assert entry is not None and entry.attempts == 1
        assert [r.msg["Subject"] for r in srv.inbox.received] == [
            "Text from 079 123 45 67: waiting"
        ]
    finally:
        n.stop(timeout=5)

    srv.stop()
    late = Notifier(store, Box(make_settings(srv.port)), clock=clock, timeout=5)
    late.worker.started_at = time.monotonic() - notify_service.STARTUP_GRACE - 1
    later = late.sms(SmsNotice(number="+41791234567", at=clock.now, text="later"))
    assert later is not None and late.deliver_due() == 0
    entry = late.outbox.entry(later)
    assert entry is not None and entry.attempts == 1
    assert entry.next_attempt == clock.now + backoff(1)


# -- attachment limit --------------------------------------------------------------------------


def test_attachment_over_the_limit_becomes_a_link(
    servers: Any, make_notifier: Any, store: Store, clock: Clock
) -> None:
    srv = servers("none")
    n, _ = make_notifier(srv.port, attachment_limit_mb=1)
    big = store.media.write(b"%PDF-1.4\n" + b"0" * (1536 * 1024), "pdf")
    small = store.media.write(b"%PDF-1.4\nsmall\n%%EOF\n", "pdf")
    n.fax(
        FaxNotice(number="+41446681801", at=clock.now, pages=30, pdf_ref=big, record_id="2026-11:9")
    )
    n.fax(FaxNotice(number="+41446681801", at=clock.now, pages=1, pdf_ref=small))
    assert n.deliver_due() == 2
    big_msg, small_msg = (r.msg for r in srv.inbox.received)
    assert list(big_msg.iter_attachments()) == []
    assert parts(big_msg) == ["multipart/alternative", "text/plain", "text/html"]
    text = big_msg.get_body(("plain",)).get_content()
    assert "fax-2026-11-25-1405.pdf (1.5 MB) is too large to attach." in text
    assert "http://frontdesk.local:8080/history/2026-11%3A9" in text
    assert "attached as a PDF" not in text  # the bodies never claim what is not there
    html = big_msg.get_body(("html",)).get_content()
    assert "too large to attach" in html and "attached as a PDF" not in html
    url = "http://frontdesk.local:8080/history/2026-11%3A9"
    assert f'<a href="{url}">{url}</a>' in html
    assert len(srv.inbox.received[0].raw) < 100_000
    (att,) = list(small_msg.iter_attachments())
    assert att.get_content_type() == "application/pdf"
    assert att.get_content() == store.media.read(small)
    small_text = small_msg.get_body(("plain",)).get_content()
    assert small_text.count("The fax is attached as a PDF.") == 1


# -- the worker thread and the test button -----------------------------------------------------


def test_worker_wakes_on_queue_and_stops_promptly(
    servers: Any, make_notifier: Any, clock: Clock
) -> None:
    srv = servers("none")
    n, _ = make_notifier(srv.port)
    n.start()
    time.sleep(0.05)  # the worker is idle now, sleeping for minutes unless woken
    t0 = time.monotonic()
    n.sms(SmsNotice(number="+41791234567", at=clock.now, text="wake up"))
    assert srv.inbox.arrived.wait(5)
    assert time.monotonic() - t0 < 3
    assert n.status().running
    t1 = time.monotonic()
    assert n.stop(timeout=5)
    assert time.monotonic() - t1 < 2
    assert not n.status().running


def test_starttls_on_a_tls_only_port_is_explained(
    servers: Any, store: Store, clock: Clock, client_tls: ssl.SSLContext
) -> None:
    """The classic mistake: STARTTLS on port 465. The server waits for a TLS greeting, we
    wait for its banner; the read times out (smtplib calls that a disconnection), and the
    owner is told to check the encryption setting, not that the server hung up."""
    srv = servers("tls")
    box = Box(make_settings(srv.port, "starttls"))
    n = Notifier(store, box, clock=clock, ssl_context=client_tls, timeout=1)
    result = n.send_test("someone@example.com")
    assert not result.ok
    assert "did not answer in time" in result.explanation
    assert "465 uses TLS, 587 STARTTLS" in result.explanation
    assert "hung up" not in result.explanation
    assert n.stop(timeout=5)


def test_send_test_reports_the_servers_answer(servers: Any, make_notifier: Any) -> None:
    srv = servers("starttls")
    n, _ = make_notifier(srv.port, "starttls")
    result = n.send_test("someone@example.com")
    assert result.ok and result.code == 250
    assert result.answer == "250 2.0.0 Ok: queued as 4711"
    (got,) = srv.inbox.received
    assert got.rcpt_tos == ["someone@example.com"]
    assert got.msg["Subject"] == "Frontdesk test email for Café Zürich"
    assert n.status().counts["queued"] == 0  # never queued

    bad = n.send_test(
        "someone@example.com", make_settings(srv.port, "starttls", password="nope").email
    )
    assert not bad.ok and "535" in bad.answer

    srv.inbox.rcpt_replies = ["550 5.1.1 No such user"]
    refused = n.send_test("nobody@example.com")
    assert not refused.ok and refused.code == 550 and "No such user" in refused.answer

    down = n.send_test("someone@example.com", make_settings(free_port(), "none").email)
    assert not down.ok and "cannot reach" in down.answer
    assert not n.send_test("not an address").ok


def test_sent_messages_are_pruned(
    servers: Any, make_notifier: Any, store: Store, clock: Clock
) -> None:
    srv = servers("none")
    n, _ = make_notifier(srv.port, keep_sent_days=30)
    old = n.voicemail(voicemail(store, clock))
    assert n.deliver_due() == 1
    mp3 = n.outbox.get(old)["owned_media"][0]
    assert store.media.path(mp3).exists()
    clock.advance(20 * 86400)
    recent = n.sms(SmsNotice(number="+41791234567", at=clock.now, text="new"))
    failed_srv_reply = ["554 no"]
    srv.inbox.data_replies = failed_srv_reply
    n.deliver_due()
    clock.advance(11 * 86400)
    assert n.prune() == 1
    assert n.message(old) is None
    assert not store.media.path(mp3).exists()
    assert n.message(recent).state == "failed"  # failed ones stay until handled
    assert n.delete(recent) and n.message(recent) is None


def test_saving_email_settings_retries_waiting_messages(
    servers: Any, make_notifier: Any, clock: Clock
) -> None:
    from firmware_app.events import EventBus, SettingsChanged

    srv = servers("starttls")
    n, box = make_notifier(srv.port, "starttls", password="wrong")
    bus = EventBus()
    n.subscribe(bus)
    msg_id = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    assert n.deliver_due() == 0
    box.email(password=PASSWORD)
    bus.publish(SettingsChanged(sections=("hours",)))
    assert n.deliver_due() == 0  # unrelated settings: still waiting its minute
    bus.publish(SettingsChanged(sections=("email",)))
    assert n.deliver_due() == 1
    assert n.message(msg_id).state == "sent"


# -- unexpected errors: never stuck `sending`, always a reason -----------------------------------

UTF8_USER, UTF8_PASSWORD = "büro@example.com", "pässwörd£"


def utf8_authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == UTF8_USER.encode()
        and auth_data.password == UTF8_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_non_ascii_password_logs_in_as_utf8(
    servers: Any, make_notifier: Any, clock: Clock, mechanism: str
) -> None:
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    srv = servers(
        "none",
        authenticator=utf8_authenticator,
        auth_require_tls=False,
        auth_exclude_mechanism=[other],
    )
    n, _ = make_notifier(srv.port, username=UTF8_USER, password=UTF8_PASSWORD)
    assert n.send_test("owner@example.com").ok
    n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    assert n.deliver_due() == 1
    assert all(r.authenticated for r in srv.inbox.received)


def test_non_ascii_password_without_a_usable_login_method_is_explained(
    servers: Any, make_notifier: Any, clock: Clock
) -> None:
    srv = servers(
        "none",
        authenticator=utf8_authenticator,
        auth_require_tls=False,
        auth_exclude_mechanism=["PLAIN", "LOGIN"],
    )
    n, _ = make_notifier(srv.port, username=UTF8_USER, password=UTF8_PASSWORD)
    result = n.send_test("owner@example.com")
    assert not result.ok
    assert "characters such as ä or £" in result.explanation
    assert "codec" not in result.explanation
    msg_id = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    assert n.deliver_due() == 0
    entry = n.message(msg_id)
    assert entry.state == "queued" and entry.attempts == 1
    assert "no login method" in entry.last_error
    assert UTF8_PASSWORD not in entry.last_error and UTF8_PASSWORD not in n.status().last_error
    assert srv.inbox.received == []


def test_an_unexpected_error_defers_with_its_reason_and_the_next_round_sends(
    servers: Any, make_notifier: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from firmware_app.services.notify import smtp as smtp_module

    srv = servers("none")
    n, _ = make_notifier(srv.port)
    a = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    b = n.sms(SmsNotice(number="+41791234567", at=clock.now, text="second"))
    real_send = smtp_module.SmtpConnection.send
    calls = []

    def faulty(self: Any, msg: EmailMessage, sender: str, rcpt: Any) -> Any:
        calls.append(msg["Message-ID"])
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real_send(self, msg, sender, rcpt)

    monkeypatch.setattr(smtp_module.SmtpConnection, "send", faulty)
    assert n.deliver_due() == 1  # the fault hit the first only; the second went out
    first = n.message(a)
    assert first.state == "queued" and first.attempts == 1
    assert first.last_error == "unexpected error while sending: RuntimeError: boom"
    assert first.next_attempt == clock.now + timedelta(minutes=1)
    assert n.message(b).state == "sent"
    clock.advance(60)
    assert n.deliver_due() == 1
    assert n.message(a).state == "sent"
    assert len(srv.inbox.received) == 2


def test_a_failure_after_the_send_never_leaves_a_message_sending(
    servers: Any, make_notifier: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = servers("none")
    n, _ = make_notifier(srv.port)
    msg_id = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))

    def broken(*args: Any, **kwargs: Any) -> bool:
        raise OSError("disk gone")

    monkeypatch.setattr(n.outbox, "mark_sent", broken)
    with pytest.raises(OSError):
        n.deliver_due()
    entry = n.message(msg_id)
    assert entry.state == "queued"
    assert entry.last_error == "an unexpected error interrupted sending"
    monkeypatch.undo()
    clock.advance(60)
    assert n.deliver_due() == 1  # sent again: at least once, same Message-ID
    first, second = srv.inbox.received
    assert first.raw == second.raw


def test_the_worker_puts_back_what_a_failed_round_left_sending(
    servers: Any, make_notifier: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = servers("none")
    n, _ = make_notifier(srv.port)
    msg_id = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    rounds = []

    def failing_round() -> int:
        rounds.append(n.outbox.claim(msg_id))
        raise RuntimeError("round broke")

    monkeypatch.setattr(n, "deliver_due", failing_round)
    n.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        entry = n.message(msg_id)
        if rounds and entry.state == "queued" and entry.last_error:
            break
        time.sleep(0.02)
    assert n.stop(timeout=5)
    entry = n.message(msg_id)
    assert rounds and rounds[0] is not None
    assert entry.state == "queued"
    assert entry.last_error == "delivery was interrupted: RuntimeError: round broke"
    assert srv.inbox.received == []


def test_send_test_explains_an_unexpected_error(
    servers: Any, make_notifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from firmware_app.services.notify import smtp as smtp_module

    srv = servers("none")
    n, _ = make_notifier(srv.port)

    def faulty(*args: Any, **kwargs: Any) -> Any:
        raise LookupError("no such thing")

    monkeypatch.setattr(smtp_module.SmtpConnection, "send", faulty)
    result = n.send_test("owner@example.com")
    assert not result.ok
    assert result.explanation.startswith("Something unexpected went wrong")
    assert "LookupError: no such thing" in result.answer


# -- some recipients refused -------------------------------------------------------------------


def test_partly_refused_recipients_get_their_own_copy(
    servers: Any, make_notifier: Any, store: Store, clock: Clock
) -> None:
    """A 4xx for one recipient is tried again for that recipient only; a 5xx for another is
    a failure with the server's words and a retry; the accepted one gets it once."""
    srv = servers("none")
    grey, ok, gone = "grey@example.com", "ok@example.com", "gone@example.com"
    srv.inbox.refuse = {
        grey: ["450 4.2.0 Greylisted, try again later"],
        gone: ["550 5.1.1 No such user"],
    }
    n, _ = make_notifier(srv.port, voicemail_to=[grey, ok, gone], keep_sent_days=30)
    msg_id = n.voicemail(voicemail(store, clock))
    mp3 = n.outbox.get(msg_id)["owned_media"][0]
    assert n.deliver_due() == 1
    (first,) = srv.inbox.received
    assert first.rcpt_tos == [ok]
    assert str(first.msg["To"]) == f"{grey}, {ok}, {gone}"

    parent = n.message(msg_id)
    assert parent.state == "sent"
    assert grey in parent.last_error and "450 4.2.0 Greylisted" in parent.last_error
    assert gone in parent.last_error and "550 5.1.1 No such user" in parent.last_error
    copies = [e for e in n.messages() if e.copy_of == msg_id]
    later = next(e for e in copies if e.rcpt == (grey,))
    failed = next(e for e in copies if e.rcpt == (gone,))
    assert later.state == "queued" and later.attempts == 1
    assert later.next_attempt == clock.now + timedelta(minutes=1)
    assert failed.state == "failed" and failed.last_error == f"{gone}: 550 5.1.1 No such user"
    assert later.message_id == failed.message_id == parent.message_id
    assert f"#{later.id}" in parent.last_error and f"#{failed.id}" in parent.last_error
    assert n.status().counts == {"queued": 1, "sending": 0, "sent": 1, "failed": 1}
    assert "No such user" in n.status().last_error

    assert n.deliver_due() == 0  # the greylisted one waits its minute
    clock.advance(60)
    assert n.deliver_due() == 1
    second = srv.inbox.received[1]
    assert second.rcpt_tos == [grey]
    assert second.raw == first.raw  # the same message, bytes and Message-ID
    assert n.message(later.id).state == "sent"

    clock.advance(31 * 86400)  # the sent ones are pruned; the failed copy keeps the MP3
    assert n.prune() == 2
    assert store.media.path(mp3).exists()
    assert n.retry(failed.id)
    assert n.deliver_due() == 1
    third = srv.inbox.received[2]
    assert third.rcpt_tos == [gone] and third.raw == first.raw
    everyone = [a for r in srv.inbox.received for a in r.rcpt_tos]
    assert sorted(everyone) == sorted([grey, ok, gone])  # each once, nobody lost
    assert n.delete(failed.id)
    assert not store.media.path(mp3).exists()  # the last message using it went


# -- no mail server set yet --------------------------------------------------------------------


def test_emails_wait_for_a_mail_server_and_go_out_once_one_is_set(
    servers: Any, make_notifier: Any, store: Store, clock: Clock
) -> None:
    srv = servers("none")
    n, box = make_notifier(srv.port)
    box.email(smtp_host="")
    msg_id = n.missed_call(MissedCallNotice(number="+12025550143", at=clock.now))
    assert msg_id is not None
    assert n.deliver_due() == 0
    entry = n.message(msg_id)
    assert entry.state == "queued" and entry.attempts == 0
    assert not n.status().configured and n.status().counts["queued"] == 1
    assert n.outbox.failing_since(clock.now) is None  # waiting, not failing
    clock.advance(3 * 86400)
    assert n.prune() == 0  # kept for a week
    box.email(smtp_host="127.0.0.1")
    n.settings_changed()
    assert n.deliver_due() == 1
    assert n.message(msg_id).state == "sent"
    (got,) = srv.inbox.received
    assert got.msg["Subject"] == "Missed call from +1 202-555-0143"


def test_emails_waiting_for_a_mail_server_are_bounded(
    make_notifier: Any, store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from firmware_app.services.notify import service

    n, box = make_notifier(free_port())
    box.email(smtp_host="")
    old = n.voicemail(voicemail(store, clock))
    mp3 = n.outbox.get(old)["owned_media"][0]
    clock.advance(8 * 86400)  # a week and a day later: the first one goes
    ids = [n.sms(SmsNotice(number="+41791234567", at=clock.now, text=f"n{i}")) for i in range(5)]
    monkeypatch.setattr(service, "HOLD_MAX", 3)  # and only the newest 3 are kept
    assert n.prune() == 3
    assert n.message(old) is None and not store.media.path(mp3).exists()
    assert [n.message(i) is not None for i in ids] == [False, False, True, True, True]
