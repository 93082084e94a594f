"""What sending email can fail with, apart from `smtp` (which loads smtplib and ssl only when
mail is sent): the notify service, the pages and the daemon catch these without loading it."""

from __future__ import annotations

from ...errors import FrontdeskError

DEFAULT_TIMEOUT = 30.0


class NotifyError(FrontdeskError):
    """Email could not be queued or sent."""


class MailServerError(NotifyError):
    """The mail server could not be reached, or refused the connection or the login.

    `str()` is the log line; `plain` says the same to the owner in plain words.
    """

    def __init__(self, message: str, plain: str = "", *, refused: bool = False) -> None:
        super().__init__(message)
        self.plain = plain or message
        self.refused = refused  # nothing listens on the port (yet): "connection refused"


class MessageRejected(NotifyError):
    """The mail server answered a message with an error reply."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{code} {text}".strip())

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600
