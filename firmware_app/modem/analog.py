"""Analog voice/fax modem driver: init, caller ID kept on, answer in voice mode, hang up.

Init follows REFERENCE.md 1: ATZ, E0 V1 Q0, no auto-answer (the line counts rings), the
line's country (AT+GCI), caller ID on and verified with AT+VCID? after every reset
(Conexant modems forget it); the health check asks AT+VCID? too, so a reset the port did not
notice is found and the modem set up again. Runs on the line worker through `LineIO` only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..protocol.at import Command, ErrorResult, Response
from ..routing import LineCapabilities
from .driver import Driver, LineIO, Result

if TYPE_CHECKING:
    from .detect import Profile

log = logging.getLogger(__name__)

ANSWER_TIMEOUT = 30.0  # ATA on a fax/data line negotiates before answering
# AT+FCLASS=? classes the fax service can receive with (firmware_app.fax.session.fax_class).
FAX_CLASSES = frozenset({"1", "1.0", "2", "2.0"})


class AnalogDriver(Driver):
    kind = "analog"

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._io: LineIO | None = None  # for the lines settings (fax-only), once initialised
        self.caller_id_on = False  # init switched caller ID on and saw it stick

    @property
    def capabilities(self) -> LineCapabilities:
        """Fax from the detected profile's fax classes; fax-only and hook-flash transfer
        (a voice modem on a PBX/Centrex line) from the lines settings."""
        can_fax = bool(FAX_CLASSES.intersection(self.profile.fax_classes))
        fax_only = can_transfer = False
        io = self._io
        if io is not None:
            try:
                lines = io.settings()
                fax_only = io.name in lines.fax_only
                can_transfer = self.profile.voice and io.name in lines.transfer_lines
            except Exception:
                log.exception("%s: the lines settings are unreadable", io.name)
        return LineCapabilities.analog(
            can_receive_fax=can_fax, fax_only=fax_only, can_transfer=can_transfer
        )

    def initialise(self, io: LineIO) -> None:
        self._io = io
        reset = io.chat(Command("ATZ", timeout=5.0))
        if not isinstance(reset, Response):
            io.error(f"the modem did not accept ATZ ({_result_words(reset)})", "reset_failed")
        io.chat("ATE0V1Q0")
        io.chat("ATS0=0")  # never auto-answer: Frontdesk counts rings and decides
        country = io.settings().country
        gci = io.chat(f"AT+GCI={country}")
        if isinstance(gci, ErrorResult):
            log.info(
                "%s: the modem does not take AT+GCI=%s; using its own setting", io.name, country
            )
        self.enable_caller_id(io)

    def enable_caller_id(self, io: LineIO) -> bool:
        """Send the caller-ID command and check it stuck (home-assistant/core #57765)."""
        command = self.profile.caller_id_command
        self.caller_id_on = False
        if not command:
            return False
        seen = ""
        for _ in range(2):
            io.chat(command)
            answer = io.chat(self._caller_id_query)
            if isinstance(answer, Response):
                seen = " ".join(answer.lines)
                value = seen.split(":", 1)[-1].strip()
                if value.startswith("1"):
                    io.update(caller_id=True)
                    self.caller_id_on = True
                    return True
        io.update(caller_id=False)
        io.error(
            f"caller ID could not be switched on ({self._caller_id_query} answers "
            f"{seen or 'nothing'}); "
            "calls are taken without the caller's number",
            "caller_id_off",
        )
        return False

    @property
    def _caller_id_query(self) -> str:
        return "AT#CID?" if self.profile.caller_id_command.startswith("AT#CID") else "AT+VCID?"

    def periodic(self, io: LineIO) -> bool:
        """The health check asks whether caller ID is still on (it doubles as `AT`): an
        analog modem says nothing when it resets (power dip, USB hub), and a Conexant then
        has +VCID off (home-assistant/core #57765)."""
        if not self.caller_id_on:
            return super().periodic(io)
        return self.settings_lost(io)

    def settings_lost(self, io: LineIO) -> bool:
        if not self.caller_id_on:
            return False
        answer = io.chat(Command(self._caller_id_query, timeout=2.0))
        if not isinstance(answer, Response):
            return False
        value = " ".join(answer.lines).split(":", 1)[-1].strip()
        return value.startswith("0")

    def answer(self, io: LineIO) -> Result:
        if not self.profile.voice:
            # No voice mode (fax-only modems such as iaxmodem): answer as the modem can.
            return io.chat(Command("ATA", timeout=ANSWER_TIMEOUT))
        # ITU-T V.253: voice mode, then off-hook to the line (REFERENCE.md 1 "Voice mode").
        result = io.chat(Command("AT+FCLASS=8;+VLS=1", timeout=10.0))
        if isinstance(result, ErrorResult):
            fclass = io.chat("AT+FCLASS=8")
            if isinstance(fclass, ErrorResult):
                io.error(
                    "the modem refused voice mode (AT+FCLASS=8); USR5637 units need firmware "
                    "1.2.23 or later to answer calls",
                    "voice_refused",
                )
                return fclass
            result = io.chat(Command("AT+VLS=1", timeout=10.0))
        return result

    def hangup(self, io: LineIO) -> Result:
        result = io.chat(Command("ATH", timeout=5.0))
        if self.profile.voice:
            io.chat("AT+FCLASS=0")
        return result

    def reject(self, io: LineIO) -> Result:
        """Pick up and put down at once: the caller hears the line drop."""
        result = io.chat(Command("ATH1", timeout=5.0))
        io.pause(1.0)
        io.chat(Command("ATH0", timeout=5.0))
        return result


def _result_words(result: Result) -> str:
    if isinstance(result, ErrorResult):
        return result.result
    if isinstance(result, Response):
        return result.result
    return "no answer"
