"""Email notifications: durable outbox, SMTP delivery worker, MIME, message builders.

Channel code calls `Notifier.voicemail/missed_call/sms/fax` with a notice dataclass; the web
pages call `status`, `messages`, `retry`, `delete` and `send_test`; the daemon calls `start`
and `stop`. See docs/email.md.
"""

from __future__ import annotations

from .errors import MailServerError, MessageRejected, NotifyError
from .messages import (
    Attachment,
    Context,
    Draft,
    FaxNotice,
    MissedCallNotice,
    SmsNotice,
    VoicemailNotice,
    check_email_message,
    fax_message,
    missed_call_message,
    sms_message,
    voicemail_message,
)
from .outbox import Outbox, OutboxEntry, backoff
from .service import DeliveryWorker, Notifier, OutboxStatus, TestResult

__all__ = [
    "Attachment",
    "Context",
    "DeliveryWorker",
    "Draft",
    "FaxNotice",
    "MailServerError",
    "MessageRejected",
    "MissedCallNotice",
    "Notifier",
    "NotifyError",
    "Outbox",
    "OutboxEntry",
    "OutboxStatus",
    "SmsNotice",
    "TestResult",
    "VoicemailNotice",
    "backoff",
    "check_email_message",
    "fax_message",
    "missed_call_message",
    "sms_message",
    "voicemail_message",
]
