"""Email pages through the test client, against a real aiosmtpd server on 127.0.0.1:
settings and presets, test email wording, outbox retry and delete, API, demo mailbox."""

from __future__ import annotations

import io
import mailbox
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from firmware_app.demo import DemoMailSink
from firmware_app.services import Services
from firmware_app.services.notify import MissedCallNotice, SmsNotice
from tests.services.test_notify_delivery import Inbox, Server, cert, free_port
from web_ui import create_app

from .conftest import Owner

pytestmark = pytest.mark.timeout(30)
__all__ = ["cert"]  # the session fixture that makes a certificate for the TLS server

HOSTILE = '"><script>alert(1)</script>'


@pytest.fixture
def smtp(cert: tuple[Path, Path]) -> Iterator[Callable[..., Server]]:
    started: list[Any] = []

    def make(mode: str = "none") -> Server:
        srv = Server(mode, cert)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def refusing_auth() -> Iterator[tuple[int, Inbox]]:
    """A plain server that offers AUTH and refuses every user name and password."""

    def no(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)

    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        ready_timeout=5,
        authenticator=no,
        auth_require_tls=False,
    )
    controller.start()
    yield port, inbox
    controller.stop()


def email_form(port: int, **changes: str) -> dict[str, str]:
    form = {
        "smtp_host": "127.0.0.1",
        "smtp_port": str(port),
        "security": "none",
        "username": "",
        "password": "",
        "from_address": "desk@rossi.example",
        "reply_to": "",
        "voicemail_to": "",
        "missed_call_to": "",
        "sms_to": "",
        "fax_to": "",
        "attachment_limit_mb": "10",
        "web_url": "http://desk.local:8080",
        "keep_sent_days": "30",
        "test_to": "anna@rossi.example",
    }
    form.update(changes)
    return form


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def plain(page: str) -> str:
    """The page's text with tags removed and entities for quotes undone (for wording checks)."""
    words = re.sub(r"<[^>]+>", " ", page).replace("&#39;", "'").replace("&#34;", '"')
    return " ".join(words.split())


@pytest.fixture(autouse=True)
def quick_smtp(services: Services) -> None:
    services.notify.timeout = 5


# -- settings ----------------------------------------------------------------------------------


def test_settings_page_replaces_the_generic_one(logged_in: Owner) -> None:
    response = logged_in.client.get("/settings/email")
    assert response.status_code == 302 and response.headers["Location"] == "/email/"
    page = text(logged_in.client.get("/email/"))
    for label in ("Gmail", "Microsoft 365", "Fastmail", "iCloud", "Yahoo", "Another provider"):
        assert label in page
    assert 'data-host="smtp.gmail.com" data-port="587" data-security="starttls"' in page
    assert "Mail server" in page and "Who gets what" in page and "Daily summary" in page
    assert 'href="/email/"' in text(logged_in.client.get("/settings/"))


def test_preset_without_script_fills_in_but_saves_nothing(
    logged_in: Owner, services: Services
) -> None:
    page = text(logged_in.client.get("/email/?preset=fastmail"))
    assert 'value="smtp.fastmail.com"' in page
    assert 'id="f-smtp_port" name="smtp_port"' in page and 'value="465"' in page
    assert re.search(r'<option value="tls" selected>', page)
    assert "app password" in page
    assert services.settings.get().email.smtp_host == ""
    assert 'value="smtp.fastmail.com"' not in text(logged_in.client.get("/email/?preset=nonsense"))


def test_save_validates_inline_and_never_shows_the_password(
    logged_in: Owner, services: Services
) -> None:
    response = logged_in.post(
        "/email/",
        email_form(2525, smtp_port="lots", password="hunter2-secret", sms_to="ok@example.com\nbad"),
    )
    assert response.status_code == 422
    page = text(response)
    assert "There are 2 problems; nothing was saved" in page
    assert "Port: “lots” is not allowed. Expected a whole number." in page
    assert "Text messages go to:" in page
    assert "hunter2-secret" not in page
    assert services.settings.get().email.smtp_host == ""

    response = logged_in.post("/email/", email_form(2525, password="hunter2-secret"))
    assert response.status_code == 302
    assert services.settings.get().email.password == "hunter2-secret"
    page = text(logged_in.client.get("/email/"))
    assert "Email saved" in page and "hunter2-secret" not in page
    assert "Saved; type to replace it" in page


def test_a_new_mail_server_needs_its_password_typed_again(
    logged_in: Owner, services: Services
) -> None:
    form = email_form(2525, smtp_host="smtp.old.example", username="anna", password="old-pass-1")
    assert logged_in.post("/email/", form).status_code == 302
    assert services.settings.get().email.password == "old-pass-1"
    # Same server, another port: the saved password stays.
    assert (
        logged_in.post("/email/", {**form, "smtp_port": "587", "password": ""}).status_code == 302
    )
    assert services.settings.get().email.password == "old-pass-1"
    # Another server with a login: refused until its password is typed; nothing saved.
    moved = {**form, "smtp_host": "mail.new.example", "password": "", "action": "test"}
    response = logged_in.post("/email/", moved)
    assert response.status_code == 422
    page = plain(text(response))
    assert "Password: the mail server changed, so type its password again" in page
    assert "old-pass-1" not in text(response)
    email = services.settings.get().email
    assert (email.smtp_host, email.password) == ("smtp.old.example", "old-pass-1")
    assert (
        logged_in.post("/email/", {**moved, "action": "save", "password": "new-pass-2"}).status_code
        == 302
    )
    email = services.settings.get().email
    assert (email.smtp_host, email.password) == ("mail.new.example", "new-pass-2")
    # Another server without a login: the old password is dropped, not kept for later.
    bare = {**form, "smtp_host": "relay.example", "username": "", "password": ""}
    assert logged_in.post("/email/", bare).status_code == 302
    email = services.settings.get().email
    assert (email.smtp_host, email.username, email.password) == ("relay.example", "", "")


def test_a_backup_without_passwords_restores_and_keeps_the_saved_one(
    logged_in: Owner, services: Services
) -> None:
    form = email_form(2525, smtp_host="smtp.rossi.example", username="anna", password="pw-9x7")
    assert logged_in.post("/email/", form).status_code == 302
    assert "Download without passwords" in text(logged_in.client.get("/backup/"))
    full = logged_in.client.get("/backup/settings.toml").get_data(as_text=True)
    assert 'password = "pw-9x7"' in full
    response = logged_in.client.get("/backup/settings.toml?secrets=0")
    assert "without-passwords" in response.headers["Content-Disposition"]
    bare = response.get_data(as_text=True)
    assert "pw-9x7" not in bare and "password =" not in bare and "sim_pin" not in bare
    assert "leaves out the passwords and the SIM PIN" in bare
    assert 'smtp_host = "smtp.rossi.example"' in bare
    # Restoring it changes the server back and keeps the saved password.
    other = {**form, "smtp_host": "smtp.rossi.example", "smtp_port": "465", "password": ""}
    assert logged_in.post("/email/", other).status_code == 302
    preview = logged_in.post(
        "/backup/restore",
        {"file": (io.BytesIO(bare.encode()), "b.toml")},
        token_from="/backup/",
        content_type="multipart/form-data",
    )
    page = text(preview)
    assert "email.smtp_port" in page and "email.password" not in page
    token = re.search(r'name="token" value="([A-Za-z0-9_-]+)"', page)
    assert token is not None
    logged_in.post("/backup/restore/confirm", {"token": token.group(1)}, token_from="/backup/")
    email = services.settings.get().email
    assert (email.smtp_port, email.password) == (2525, "pw-9x7")


# -- test email --------------------------------------------------------------------------------


def test_test_email_success(logged_in: Owner, smtp: Callable[..., Server]) -> None:
    srv = smtp("none")
    response = logged_in.post("/email/", email_form(srv.port, action="test"))
    assert response.status_code == 200
    page = plain(text(response))
    assert "The test email was sent" in page
    assert "127.0.0.1 took the test email (250 2.0.0 Ok: queued as 4711)" in page
    (got,) = srv.inbox.received
    assert got.rcpt_tos == ["anna@rossi.example"]


def test_test_email_refused_login_in_plain_words(
    logged_in: Owner, refusing_auth: tuple[int, Inbox]
) -> None:
    port, inbox = refusing_auth
    form = email_form(port, action="test", username="anna", password="wrong-pass-123")
    response = logged_in.post("/email/", form)
    assert response.status_code == 422
    page = text(response)
    words = plain(page)
    assert "The test email could not be sent" in words
    assert "The server refused the user name or password (535 5.7.8" in words
    assert "wrong-pass-123" not in page
    assert inbox.received == []


def test_test_email_non_ascii_password_in_plain_words(logged_in: Owner) -> None:
    """A password with ä or £, on a server whose only login method cannot carry it."""
    inbox = Inbox()
    srv = Server(
        "none",
        None,
        authenticator=lambda *a: AuthResult(success=True, handled=False),
        auth_require_tls=False,
        auth_exclude_mechanism=["PLAIN", "LOGIN"],
    )
    srv.inbox = inbox
    srv.start()
    try:
        form = email_form(srv.port, action="test", username="anna", password="pässwörd£")
        response = logged_in.post("/email/", form)
    finally:
        srv.stop()
    assert response.status_code == 422
    page = text(response)
    words = plain(page)
    assert "The test email could not be sent" in words
    assert "The user name or password contains characters such as ä or £" in words
    assert "codec" not in words and "pässwörd£" not in page
    assert inbox.received == []


def test_test_email_unreachable_port_in_plain_words(logged_in: Owner) -> None:
    port = free_port()
    response = logged_in.post("/email/", email_form(port, action="test"))
    assert response.status_code == 422
    assert f"Could not reach 127.0.0.1 on port {port}: connection refused." in plain(text(response))


def test_test_email_untrusted_certificate_in_plain_words(
    logged_in: Owner, smtp: Callable[..., Server]
) -> None:
    srv = smtp("tls")
    response = logged_in.post("/email/", email_form(srv.port, action="test", security="tls"))
    assert "The certificate of 127.0.0.1 is not valid" in plain(text(response))


def test_test_email_to_a_bad_address(logged_in: Owner, smtp: Callable[..., Server]) -> None:
    srv = smtp("none")
    response = logged_in.post("/email/", email_form(srv.port, action="test", test_to=HOSTILE))
    page = text(response)
    assert "is not an email address" in plain(page)
    assert HOSTILE not in page


# -- summary and warnings ----------------------------------------------------------------------


def test_summary_preferences(logged_in: Owner, services: Services) -> None:
    form = {"digest": "1", "digest_time": "7pm", "digest_to": "", "alerts": "1", "alerts_to": ""}
    response = logged_in.post("/email/summary", form, token_from="/email/")
    assert response.status_code == 422
    assert "Summary time: “7pm” is not allowed" in text(response)
    form["digest_time"] = "19:30"
    response = logged_in.post("/email/summary", form, token_from="/email/")
    assert response.status_code == 302
    prefs = services.notify.prefs.get()
    assert prefs.digest_time == "19:30" and not prefs.alert_when_fixed


# -- outbox ------------------------------------------------------------------------------------


def configure(services: Services, port: int) -> None:
    services.settings.save_section(
        "email",
        {"smtp_host": "127.0.0.1", "smtp_port": port, "security": "none"},
    )


def test_outbox_shows_a_5xx_reason_and_retry_sends(
    logged_in: Owner, services: Services, smtp: Callable[..., Server]
) -> None:
    srv = smtp("none")
    configure(services, srv.port)
    srv.inbox.rcpt_replies = ["550 5.1.1 <anna@rossi.example>: Recipient address rejected"]
    n = services.notify
    msg_id = n.missed_call(MissedCallNotice(number="+442079460000", at=datetime.now(UTC)))
    assert n.deliver_due() == 0
    page = text(logged_in.client.get("/email/outbox"))
    assert "Failed" in page
    assert "The mail server refused it: 550 anna@rossi.example: 550 5.1.1" in page
    assert "&lt;anna@rossi.example&gt;: Recipient address rejected" in page
    assert "Missed call from 020 7946 0000" in page
    assert f"/email/outbox/{msg_id}/retry" in page

    response = logged_in.post(f"/email/outbox/{msg_id}/retry", {}, token_from="/email/outbox")
    assert response.status_code == 302
    assert n.deliver_due() == 1
    assert len(srv.inbox.received) == 1
    page = text(logged_in.client.get("/email/outbox?state=sent"))
    assert "Sent" in page and "after 2 attempts" in page

    # dashboard card: last sent, nothing failing
    home = plain(text(logged_in.client.get("/")))
    assert "Email Last sent" in home and "Failing None" in home


def test_outbox_delete_and_retry_all(
    logged_in: Owner, services: Services, smtp: Callable[..., Server]
) -> None:
    srv = smtp("none")
    configure(services, srv.port)
    srv.inbox.data_replies = ["554 5.7.1 Spam"] * 2
    n = services.notify
    first = n.sms(SmsNotice(number="+442079460000", at=datetime.now(UTC), text="one"))
    second = n.sms(SmsNotice(number="+442079460001", at=datetime.now(UTC), text="two"))
    assert n.deliver_due() == 0
    assert "Failing 2" in plain(text(logged_in.client.get("/")))
    response = logged_in.post(f"/email/outbox/{first}/delete", {}, token_from="/email/outbox")
    assert response.status_code == 302 and n.message(first or 0) is None
    assert "was deleted" in text(logged_in.client.get("/email/outbox"))
    response = logged_in.post("/email/outbox/retry-all", {}, token_from="/email/outbox")
    assert response.status_code == 302
    assert n.deliver_due() == 1 and n.message(second or 0).state == "sent"  # type: ignore[union-attr]


def test_outbox_shows_partly_refused_recipients(
    logged_in: Owner, services: Services, smtp: Callable[..., Server]
) -> None:
    srv = smtp("none")
    services.settings.save_section(
        "email",
        {
            "smtp_host": "127.0.0.1",
            "smtp_port": srv.port,
            "security": "none",
            "missed_call_to": ["anna@rossi.example", "ben@rossi.example"],
        },
    )
    srv.inbox.refuse = {"ben@rossi.example": ["550 5.1.1 Mailbox unavailable"]}
    n = services.notify
    msg_id = n.missed_call(MissedCallNotice(number="+442079460000", at=datetime.now(UTC)))
    assert n.deliver_due() == 1
    (copy,) = [e for e in n.messages() if e.copy_of == msg_id]
    page = plain(text(logged_in.client.get("/email/outbox")))
    assert (
        f"Refused for ben@rossi.example (ben@rossi.example: 550 5.1.1 Mailbox unavailable); "
        f"see #{copy.id}." in page
    )
    assert f"A copy of #{msg_id} for the recipient the server did not take at first" in page
    assert "The mail server refused it: ben@rossi.example: 550 5.1.1 Mailbox unavailable" in page
    assert f"/email/outbox/{copy.id}/retry" in text(logged_in.client.get("/email/outbox"))
    assert "Failing 1" in plain(text(logged_in.client.get("/")))
    _, secret = services.auth.create_token("Outbox check")
    api = logged_in.client.application.test_client().get(
        "/api/v1/outbox?state=failed", headers={"Authorization": f"Bearer {secret}"}
    )
    (entry,) = api.get_json()["messages"]
    assert entry["rcpt"] == ["ben@rossi.example"] and entry["copy_of"] == msg_id
    assert entry["to"] == ["anna@rossi.example", "ben@rossi.example"]
    response = logged_in.post(f"/email/outbox/{copy.id}/retry", {}, token_from="/email/outbox")
    assert response.status_code == 302
    assert n.deliver_due() == 1
    assert [r.rcpt_tos for r in srv.inbox.received] == [
        ["anna@rossi.example"],
        ["ben@rossi.example"],
    ]


def test_hostile_text_is_escaped_on_the_outbox(
    logged_in: Owner, services: Services, smtp: Callable[..., Server]
) -> None:
    srv = smtp("none")
    configure(services, srv.port)
    srv.inbox.data_replies = [f"451 {HOSTILE}"]
    n = services.notify
    n.sms(SmsNotice(number=HOSTILE, at=datetime.now(UTC), text=HOSTILE, contact_name=HOSTILE))
    n.deliver_due()
    services.alerts.raise_incident("x", HOSTILE, HOSTILE)
    for path in ("/email/outbox", "/"):
        page = text(logged_in.client.get(path))
        assert "<script>alert(1)</script>" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path


def test_outbox_forms_need_login_and_csrf(logged_in: Owner, services: Services) -> None:
    configure(services, free_port())
    msg_id = services.notify.missed_call(MissedCallNotice(number="", at=datetime.now(UTC)))
    assert logged_in.client.post(f"/email/outbox/{msg_id}/delete").status_code == 400
    assert services.notify.message(msg_id or 0) is not None


# -- API ---------------------------------------------------------------------------------------


def test_api_outbox(logged_in: Owner, services: Services) -> None:
    configure(services, free_port())
    services.notify.missed_call(MissedCallNotice(number="+442079460000", at=datetime.now(UTC)))
    api = logged_in.client.application.test_client()
    assert api.get("/api/v1/outbox").status_code == 401
    _, secret = services.auth.create_token("Status screen")
    auth = {"Authorization": f"Bearer {secret}"}
    body = api.get("/api/v1/outbox", headers=auth).get_json()
    assert body["configured"] is True and body["counts"]["queued"] == 1
    (msg,) = body["messages"]
    assert msg["kind"] == "missed_call" and msg["state"] == "queued"
    assert msg["message_id"].startswith("<")
    assert api.get("/api/v1/outbox?state=sent", headers=auth).get_json()["messages"] == []
    bad = api.get("/api/v1/outbox?state=lost", headers=auth)
    assert bad.status_code == 400 and "state must be one of" in bad.get_json()["error"]
    assert api.get("/api/v1/outbox?limit=0", headers=auth).status_code == 400


# -- demo mailbox ------------------------------------------------------------------------------


def test_demo_mailbox_lists_and_shows_messages_safely(services: Services, tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    sink = DemoMailSink(tmp_path / "demo")
    services.extra["demo_mail"] = sink
    app = create_app(services, {"TESTING": True})
    owner = Owner(app.test_client(), services)
    assert owner.setup().status_code == 302

    msg = EmailMessage()
    msg["Subject"] = f"Text from {HOSTILE}"
    msg["From"] = "Rossi <desk@rossi.example>"
    msg["To"] = "anna@rossi.example"
    msg.set_content(f"Plain part {HOSTILE}")
    msg.add_alternative(f"<p>HTML part</p><script>alert(2)</script>{HOSTILE}", subtype="html")
    msg.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="../../fax 1.pdf"
    )
    key = mailbox.Maildir(sink.folder, create=True).add(msg.as_bytes())

    page = text(owner.client.get("/demo-mail/"))
    assert "Demo mailbox" in page and f"/demo-mail/{key}" in page
    assert "<script>" not in page
    page = text(owner.client.get(f"/demo-mail/{key}"))
    assert "Plain part" in page and "<script>" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page  # the HTML source, escaped
    assert '<iframe class="mail-html" sandbox src=' in page
    frame = owner.client.get(f"/demo-mail/{key}/html")
    csp = frame.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    part = owner.client.get(f"/demo-mail/{key}/part/0")
    assert part.data == b"%PDF-1.4 fake"
    assert part.headers["Content-Type"] == "application/octet-stream"
    assert part.headers["Content-Disposition"] == 'attachment; filename="fax-1.pdf"'
    assert owner.client.get(f"/demo-mail/{key}/part/1").status_code == 404
    assert owner.client.get("/demo-mail/nope").status_code == 404
    assert owner.client.get("/demo-mail/..%2F..%2Fsettings.json").status_code == 404


def test_no_demo_mailbox_outside_the_demo(logged_in: Owner) -> None:
    assert logged_in.client.get("/demo-mail/").status_code == 404
    assert "Demo mailbox" not in text(logged_in.client.get("/"))


# -- in a real browser: screenshots on a phone and a desktop -----------------------------------


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")
@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_email_pages_in_a_browser(
    services: Services, tmp_path: Path, smtp: Callable[..., Server], device: str
) -> None:
    import threading

    import waitress
    from playwright.sync_api import sync_playwright

    from .browser import ARGS, SHOTS, VIEWPORTS, run_quietly
    from .browser import shot as _shot
    from .conftest import PASSWORD

    (tmp_path / "demo").mkdir()
    sink = DemoMailSink(tmp_path / "demo", port=free_port())
    services.extra["demo_mail"] = sink
    sink.start()
    srv = smtp("none")
    app = create_app(services)
    web = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=run_quietly(web), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{web.effective_port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            width, height = VIEWPORTS[device]
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(5000)
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "console",
                lambda m: problems.append(m.text) if "Content Security" in m.text else None,
            )
            page.goto(base + "/setup")
            page.fill("#f-name", "Rossi Plumbing")
            page.fill("#f-owner_email", "anna@rossi.example")
            page.fill("#f-password", PASSWORD)
            page.fill("#f-confirm", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/")

            # The provider picker fills the fields with script.
            page.goto(base + "/email/")
            page.select_option("#f-preset", "gmail")
            assert page.input_value("#f-smtp_host") == "smtp.gmail.com"
            assert page.input_value("#f-smtp_port") == "587"
            assert "app password" in page.inner_text("#preset-note")
            assert page.is_hidden("#preset-fill")
            _shot(page, f"{device}-email-01-preset")

            # A server that is not there: the reason in plain words.
            page.fill("#f-smtp_host", "127.0.0.1")
            page.fill("#f-smtp_port", str(free_port()))
            page.select_option("#f-security", "none")
            page.click("button[value=test]")
            assert "connection refused" in page.inner_text("#test-result")
            _shot(page, f"{device}-email-02-test-failed")
            # The demo's sink: it works, and the email shows in the demo mailbox.
            page.fill("#f-smtp_port", str(sink.port))
            page.click("button[value=test]")
            assert "took the test email" in page.inner_text("#test-result")
            _shot(page, f"{device}-email-03-test-ok")

            # A refused message in the outbox.
            services.settings.save_section(
                "email", {"smtp_host": "127.0.0.1", "smtp_port": srv.port, "security": "none"}
            )
            srv.inbox.rcpt_replies = ["550 5.1.1 <anna@rossi.example>: Recipient address rejected"]
            n = services.notify
            n.missed_call(
                MissedCallNotice(
                    number="+442079460000",
                    at=datetime.now(UTC),
                    contact_name="Jürgen Müller",
                    reason="after hours",
                )
            )
            n.sms(SmsNotice(number="+447700900123", at=datetime.now(UTC), text="Running late"))
            n.deliver_due()
            page.goto(base + "/email/outbox")
            assert "Recipient address rejected" in page.inner_text(".outbox-failed")
            _shot(page, f"{device}-email-04-outbox")
            page.goto(base + "/")
            _shot(page, f"{device}-email-05-home")

            page.goto(base + "/demo-mail/")
            page.click(".outbox-subject a")
            page.wait_for_selector("iframe.mail-html")
            assert "Email from Frontdesk works" in page.inner_text(".mail-text")
            frame = page.frame_locator("iframe.mail-html")
            assert "Email from Frontdesk works" in frame.locator("h2").inner_text()
            _shot(page, f"{device}-email-06-demo-message")
            frame_box = page.locator("iframe.mail-html")
            frame_box.scroll_into_view_if_needed()
            frame_box.screenshot(path=str(SHOTS / f"{device}-email-07-demo-html.png"))
            assert problems == []
            browser.close()
    finally:
        web.close()
        web.task_dispatcher.shutdown(timeout=2)
        thread.join(timeout=5)
        sink.stop()
        sink.join(5)
        sink.close()  # as the daemon's closers do once every worker has stopped
