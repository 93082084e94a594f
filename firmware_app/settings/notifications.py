"""Settings: the daily email summary and the warnings about problems with the box.

Part of the settings document (and so of every backup); the email service reads it.
"""

from __future__ import annotations

import dataclasses

from ..errors import FieldProblem
from .schema import email_list, hhmm, setting


@dataclasses.dataclass(slots=True, kw_only=True)
class Notifications:
    digest: bool = setting(
        True,
        label="Send a daily summary",
        help="One email a day with the calls, voicemail, texts and faxes of the last 24 hours.",
    )
    digest_time: str = setting(
        "18:00",
        label="Summary time",
        check=hhmm,
        widget="time",
        help="When the summary is sent, in the business's timezone.",
    )
    digest_quiet_days: bool = setting(
        False,
        label="Also on quiet days",
        help="Off: no summary when there were no calls, voicemail, texts or faxes.",
    )
    digest_to: list[str] = setting(  # noqa: RUF009 - setting() is a field()
        default_factory=list,
        label="Summary goes to",
        check=email_list,
        help="Empty: the owner email.",
    )
    alerts: bool = setting(
        True,
        label="Warn me when something is wrong",
        help="A phone line down for over 5 minutes, a SIM card problem, a nearly full disk, "
        "email failing for over an hour. One email per problem, not one per retry.",
    )
    alert_when_fixed: bool = setting(
        True, label="Tell me when it is fixed", help="A second email when the problem is over."
    )
    alerts_to: list[str] = setting(  # noqa: RUF009 - setting() is a field()
        default_factory=list,
        label="Warnings go to",
        check=email_list,
        help="Empty: the owner email.",
    )

    def validate(self) -> list[FieldProblem]:
        if self.digest_time == "24:00":
            return [FieldProblem("digest_time", self.digest_time, "a time from 00:00 to 23:59")]
        return []
