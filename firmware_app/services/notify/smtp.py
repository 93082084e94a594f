"""Talking to the mail server: plain, STARTTLS or implicit TLS, AUTH, timeouts, replies sorted.

Every failure ends as one of two exceptions: `MailServerError` (the server could not be
reached or refused the session: try again later) or `MessageRejected` (the server answered
this message with a 4xx, try later, or a 5xx, give up). Never logs the password.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from ...settings.model import Email
from .errors import DEFAULT_TIMEOUT, MailServerError, MessageRejected, NotifyError
from .mime import mime_policy

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Accepted",
    "MailServerError",
    "MessageRejected",
    "NotifyError",
    "SmtpConnection",
]


@dataclass(frozen=True, slots=True)
class Accepted:
    """The server took the message: its final reply, and any recipients it refused."""

    code: int
    text: str
    refused: tuple[tuple[str, int, str], ...] = ()

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


def _unreachable(host: str, port: int, exc: BaseException) -> str:
    """Why a connection failed, in the words an office owner can act on."""
    if isinstance(exc, socket.gaierror):
        return f"Could not find {host}: check the server name (and that this box is online)."
    if isinstance(exc, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        why = "no answer in time"
    elif isinstance(exc, smtplib.SMTPServerDisconnected) and str(exc).endswith("timed out"):
        # smtplib reports a read that timed out as a disconnection. The server took the
        # connection but never greeted us: typically STARTTLS (or none) on a TLS-only port.
        return (
            f"{host} took the connection on port {port} but did not answer in time. If the "
            "port is right, check the encryption setting: 465 uses TLS, 587 STARTTLS."
        )
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        why = "the server hung up"
    elif isinstance(exc, OSError) and exc.strerror:
        why = exc.strerror.lower()
    else:
        why = str(exc) or type(exc).__name__
    return f"Could not reach {host} on port {port}: {why}."


def _words(resp: bytes | str) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return " ".join(text.split())


class SmtpConnection:
    """One session with the mail server; a context manager that always says QUIT."""

    def __init__(
        self,
        cfg: Email,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.where = f"{cfg.smtp_host}:{cfg.smtp_port}"
        host, port = cfg.smtp_host, cfg.smtp_port
        # Only an encrypted connection needs the certificate store (loading it costs tens of
        # milliseconds of CPU and about a megabyte): plain ones never touch it.
        context = ssl_context
        if context is None and cfg.security != "none":
            context = ssl.create_default_context()
        helo = local_hostname or socket.gethostname() or "frontdesk.local"
        self._smtp: smtplib.SMTP | None = None
        try:
            if cfg.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.smtp_host,
                    cfg.smtp_port,
                    local_hostname=helo,
                    timeout=timeout,
                    context=context,
                )
            else:
                smtp = smtplib.SMTP(
                    cfg.smtp_host, cfg.smtp_port, local_hostname=helo, timeout=timeout
                )
            self._smtp = smtp
            smtp.ehlo()
            if cfg.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise MailServerError(
                        f"{self.where} does not offer STARTTLS; choose another encryption "
                        "setting or port",
                        f"{host} on port {port} does not offer STARTTLS. Choose another "
                        "encryption setting or port (465 with TLS, or 587 with STARTTLS).",
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if cfg.username:
                self._login(smtp, cfg.username, cfg.password)
        except MailServerError:
            self.close()
            raise
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            words = f"{exc.smtp_code} {_words(exc.smtp_error)}"
            raise MailServerError(
                f"{self.where} refused the login for {cfg.username!r}: {words}",
                f"The server refused the user name or password ({words}).",
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            self.close()
            raise MailServerError(
                f"{self.where}: {exc}",
                f"{host} does not accept a login on this connection ({exc}). Check the "
                "encryption setting: most servers only take a login over TLS or STARTTLS.",
            ) from None
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise MailServerError(
                f"{self.where}: the server's certificate is not trusted ({exc.verify_message})",
                f"The certificate of {host} is not valid ({exc.verify_message}).",
            ) from None
        except ssl.SSLError as exc:
            self.close()
            why = exc.reason or str(exc)
            raise MailServerError(
                f"cannot reach {self.where}: TLS failed: {why}",
                f"Could not start an encrypted connection with {host} on port {port} ({why}). "
                "Check the port and the encryption setting: 465 uses TLS, 587 STARTTLS.",
            ) from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            words = f"{exc.smtp_code} {_words(exc.smtp_error)}"
            raise MailServerError(
                f"{self.where} refused the session: {words}",
                f"{host} refused the connection ({words}).",
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            why = str(exc) or type(exc).__name__
            raise MailServerError(
                f"cannot reach {self.where}: {why}",
                _unreachable(host, port, exc),
                refused=isinstance(exc, ConnectionRefusedError),
            ) from None
        except UnicodeError as exc:
            self.close()
            raise MailServerError(
                f"{self.where}: a setting holds characters that cannot be sent: {exc}",
                f"The server name or user name contains characters that cannot be sent to "
                f"{host} ({exc}). Check them for typing mistakes.",
            ) from None

    def _login(self, smtp: smtplib.SMTP, user: str, password: str) -> None:
        """AUTH. smtplib sends credentials as ASCII only; a user name or password with other
        characters (ä, £, ...) goes as UTF-8 with PLAIN (RFC 4616 defines it as UTF-8) or
        LOGIN, whichever the server offers. Raises smtplib's exceptions like `login()`."""
        if user.isascii() and password.isascii():
            smtp.login(user, password)
            return
        if not smtp.has_extn("auth"):
            raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        offered = smtp.esmtp_features.get("auth", "").upper().split()

        def b64(text: str) -> str:
            return base64.b64encode(text.encode("utf-8")).decode("ascii")

        if "PLAIN" in offered:
            code, resp = smtp.docmd("AUTH", "PLAIN " + b64(f"\0{user}\0{password}"))
        elif "LOGIN" in offered:
            code, resp = smtp.docmd("AUTH", "LOGIN " + b64(user))
            if code == 334:
                code, resp = smtp.docmd(b64(password))
        else:
            raise MailServerError(
                f"{self.where} offers no login method for a non-ASCII user name or password "
                f"(it offers {' '.join(offered) or 'none'})",
                f"The user name or password contains characters such as ä or £, and "
                f"{self.cfg.smtp_host} has no login method that can carry them. Use a password "
                "of plain letters, digits and punctuation (many providers let you make an "
                "app password for this).",
            )
        if code not in (235, 503):
            raise smtplib.SMTPAuthenticationError(code, resp)

    @property
    def connected(self) -> bool:
        return self._smtp is not None

    def send(self, msg: EmailMessage, sender: str, recipients: Sequence[str]) -> Accepted:
        """Send one message: MAIL, RCPT for each, DATA. Raises MessageRejected or
        MailServerError; returns the server's final reply when it took the message."""
        smtp = self._smtp
        if smtp is None:
            raise MailServerError(f"not connected to {self.where}")
        addresses = [sender, *recipients]
        utf8 = any(not a.isascii() for a in addresses)
        options: list[str] = []
        if utf8:
            if not smtp.has_extn("smtputf8"):
                raise MessageRejected(553, "the mail server cannot take non-ASCII addresses")
            options.append("SMTPUTF8")
        data = msg.as_bytes(policy=mime_policy().clone(utf8=utf8))
        try:
            code, resp = smtp.mail(sender, options)
            if code != 250:
                self._reset()
                raise MessageRejected(code, _words(resp))
            refused: list[tuple[str, int, str]] = []
            for rcpt in recipients:
                code, resp = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    refused.append((rcpt, code, _words(resp)))
            if len(refused) == len(recipients):
                self._reset()
                worst = next((r for r in refused if r[1] < 500), refused[0])
                raise MessageRejected(worst[1], "; ".join(f"{a}: {c} {t}" for a, c, t in refused))
            try:
                code, resp = smtp.data(data)
            except smtplib.SMTPDataError as exc:
                self._reset()
                raise MessageRejected(exc.smtp_code, _words(exc.smtp_error)) from None
            if code != 250:
                self._reset()
                raise MessageRejected(code, _words(resp))
            return Accepted(code, _words(resp), tuple(refused))
        except MessageRejected:
            raise
        except smtplib.SMTPResponseException as exc:
            raise MessageRejected(exc.smtp_code, _words(exc.smtp_error)) from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            why = str(exc) or type(exc).__name__
            raise MailServerError(
                f"lost the connection to {self.where}: {why}",
                f"The connection to {self.cfg.smtp_host} was lost while sending ({why}).",
            ) from None

    def _reset(self) -> None:
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
