"""GSM modem driver: start-up, SIM PIN without burning attempts, registration and signal.

Start-up per REFERENCE.md 2 (ATZ, ATE0, +CMEE=1, +CPIN?, +CREG=2, +CLIP=1, +CRC=1, +CMGF=0,
+CNMI). A PIN the SIM rejected (+CME ERROR: 16) is remembered (hashed, on disk) and never
sent again by itself; a SIM with one attempt left gets no automatic try; SIM busy (14, 515)
is retried with backoff. Signal and registration are polled at each health check (30 s),
with a look at +CLIP?; boot codes or +CLIP found off mean the modem reset: set it up again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..protocol.at import (
    URC,
    Command,
    ErrorResult,
    Response,
    Timeout,
    parse_creg,
    parse_csq,
    split_params,
    unquote,
)
from ..routing import LineCapabilities
from .driver import Driver, LineIO, Result, retry_busy

if TYPE_CHECKING:
    from .detect import Profile

log = logging.getLogger(__name__)

# 3GPP TS 27.007 7.2 <stat>.
REGISTRATION_WORDS = {
    0: "not registered",
    1: "registered (home)",
    2: "searching",
    3: "registration denied",
    4: "unknown",
    5: "registered (roaming)",
}
_WRONG_PIN = 16
_SIM_NOT_INSERTED = 10
# SMS initialisation over (SIM800 manual URC list: "SMS Ready"; SIM7600 "SMS DONE"; Quectel
# "+QIND: SMS DONE"): until then a freshly started modem refuses SMS commands, so start-up
# waits for it (REFERENCE.md 2), but only after a boot or a PIN: a modem that has been on
# for long said it long ago.
SMS_READY = frozenset({"SMS READY", "SMS DONE", "+QIND: SMS DONE"})
_JUST_STARTED = frozenset({"RDY", "+CFUN: 1", "+CPIN: READY", "CALL READY"})
SMS_READY_WAIT = 30.0  # seconds


class PinGuard:
    """Remembers PINs a SIM rejected (as salted hashes, in a file), so none is sent twice."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._hashes: set[str] = set()
        if path is not None:
            try:
                self._hashes = set(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                self._hashes = set()

    @staticmethod
    def _hash(pin: str) -> str:
        return hashlib.sha256(b"frontdesk-sim-pin:" + pin.encode()).hexdigest()

    def rejected(self, pin: str) -> bool:
        return self._hash(pin) in self._hashes

    def reject(self, pin: str) -> None:
        self._hashes.add(self._hash(pin))
        if self.path is not None:
            from ..store.durable import atomic_write

            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(sorted(self._hashes)).encode(), mode=0o600)

    def accepted(self, pin: str) -> None:
        """The SIM took `pin`: forget earlier rejections of it (it was changed meanwhile)."""
        if self._hash(pin) in self._hashes:
            self._hashes.discard(self._hash(pin))
            if self.path is not None:
                from ..store.durable import atomic_write

                atomic_write(self.path, json.dumps(sorted(self._hashes)).encode(), mode=0o600)


def _cpin_state(result: Result) -> str:
    """``+CPIN: SIM PIN`` -> ``SIM PIN``; also from a timeout (no OK after +CPIN?)."""
    lines = result.lines if isinstance(result, Response | Timeout | ErrorResult) else ()
    for line in lines:
        if line.upper().startswith("+CPIN:"):
            return line.split(":", 1)[1].strip().upper()
    if isinstance(result, ErrorResult) and result.code == _SIM_NOT_INSERTED:
        return "NOT INSERTED"
    return ""


class GsmDriver(Driver):
    kind = "gsm"

    def __init__(self, profile: Profile, pin_guard: PinGuard | None = None) -> None:
        super().__init__(profile)
        self.pins = pin_guard or PinGuard(None)
        self.sim_ready = False
        self.clip_on = False  # init switched +CLIP on
        self.curc_off = False  # Huawei: ^CURC=0 took (periodic ^RSSI/^BOOT stopped)
        self.pin_entered = False  # this start-up unlocked the SIM
        # Shorter for a modem that sends no OK after +CPIN? (found by the probe, or here).
        self._cpin_timeout = 1.0 if profile.cpin_no_ok else 5.0
        self._signal: tuple[int | None, str, str] | None = None

    @property
    def capabilities(self) -> LineCapabilities:
        return LineCapabilities.gsm()

    # -- start-up -------------------------------------------------------------------------------

    def initialise(self, io: LineIO) -> None:
        io.chat(Command("ATZ", timeout=5.0))
        io.chat("ATE0")
        io.chat("AT+CMEE=1")
        vendor = self.profile.vendor
        self.curc_off = False
        if vendor == "huawei":
            # stop ^RSSI/^BOOT floods (REFERENCE.md 2)
            self.curc_off = isinstance(io.chat("AT^CURC=0"), Response)
        if vendor == "quectel":
            io.chat('AT+QGPSCFG="outport","none"')  # keep GPS sentences off this port
        self.pin_entered = False
        if self.unlock(io):
            self.wait_sms_ready(io)
        self._set_up(io)

    def _set_up(self, io: LineIO) -> None:
        """What start-up does once the SIM is as ready as it gets: registration reports,
        caller ID, SMS (PDU mode, new-message reports), operator names, first poll."""
        io.chat("AT+CREG=2")
        if self.profile.lte:
            io.chat("AT+CEREG=2")
        self.clip_on = isinstance(retry_busy(io, Command("AT+CLIP=1")), Response)
        for text in ("AT+CRC=1", "AT+CMGF=0"):
            retry_busy(io, Command(text))
        if isinstance(retry_busy(io, Command("AT+CNMI=2,1,0,2,0")), ErrorResult):
            io.chat("AT+CNMI=2,1,0,0,0")  # no status reports on this modem
        io.chat("AT+COPS=3,0")  # operator as a long name
        self.monitor(io)

    def wait_sms_ready(self, io: LineIO) -> bool:
        """After a boot or a PIN, wait for the modem's "SMS Ready" (SIMCom, Quectel) before
        its SMS settings: until then they are refused (REFERENCE.md 2). True when ready."""
        if self.profile.vendor not in ("simcom", "quectel"):
            return True
        if not (self.pin_entered or io.urc_seen(_JUST_STARTED, within=SMS_READY_WAIT)):
            return True  # on for a while: its SMS initialisation is long over
        if io.urc_seen(SMS_READY, within=SMS_READY_WAIT):
            return True
        log.info("%s: waiting for the modem's SMS ready report", io.name)
        if io.wait_urc(SMS_READY, SMS_READY_WAIT):
            return True
        log.info("%s: no SMS ready report in %.0f s; going on", io.name, SMS_READY_WAIT)
        return False

    def _sim_state(self, io: LineIO) -> str:
        result = retry_busy(io, Command("AT+CPIN?", timeout=self._cpin_timeout))
        if isinstance(result, Timeout) and result.lines and self._cpin_timeout > 1.0:
            # REFERENCE.md 2: some modems send no OK after +CPIN?; the answer is enough.
            log.info("%s: the modem sends no OK after AT+CPIN?; taking its answer", io.name)
            self._cpin_timeout = 1.0
        return _cpin_state(result)

    def unlock(self, io: LineIO) -> bool:
        """Bring the SIM to READY if a PIN is needed and may be sent; say what is wrong."""
        state = self._sim_state(io)
        io.update(sim=state or "unknown")
        if state == "READY":
            self.sim_ready = True
            return True
        self.sim_ready = False
        if state == "SIM PIN":
            return self._enter_pin(io)
        if state == "SIM PUK":
            io.error(
                "the SIM card is blocked and needs its PUK code; unblock it in a phone, "
                "then plug it back in",
                "sim_puk",
            )
        elif state == "NOT INSERTED":
            io.error("there is no SIM card in the GSM modem", "sim_missing")
        else:
            io.error(f"the SIM card is not ready ({state or 'no answer'})", "sim_not_ready")
        return False

    def _enter_pin(self, io: LineIO) -> bool:
        pin = io.settings().sim_pin
        if not pin:
            io.error("the SIM card needs its PIN: enter it in Settings, Lines", "sim_pin_needed")
            return False
        if self.pins.rejected(pin):
            io.error(
                "the SIM card rejected the PIN in the settings before; Frontdesk does not send "
                "it again (each try uses up an attempt): correct it in Settings, Lines",
                "sim_pin_rejected",
            )
            return False
        left = self.pin_attempts(io)
        if left is not None and left <= 1:
            io.error(
                f"only {left} PIN attempt is left on the SIM card; Frontdesk will not risk it. "
                "Check the PIN in a phone, then save it again in Settings, Lines",
                "sim_pin_last_attempt",
            )
            return False
        result = io.chat(Command(f'AT+CPIN="{pin}"', timeout=15.0))
        if isinstance(result, Response):
            self.pins.accepted(pin)
            for delay in (0.2, 0.5, 1.0, 2.0, 4.0):
                state = self._sim_state(io)
                if state == "READY":
                    io.update(sim="READY")
                    self.sim_ready = True
                    self.pin_entered = True
                    log.info("%s: SIM unlocked", io.name)
                    return True
                io.pause(delay)
            io.error("the SIM card took the PIN but did not become ready", "sim_not_ready")
            return False
        if isinstance(result, ErrorResult) and result.code in (_WRONG_PIN, None):
            # Never again by itself: a second wrong try brings the SIM closer to its PUK.
            self.pins.reject(pin)
            left = self.pin_attempts(io)
            more = f" ({left} attempts left)" if left is not None else ""
            state = self._sim_state(io)
            io.update(sim=state or "SIM PIN")
            io.error(
                f"the SIM card rejected the PIN in the settings{more}; Frontdesk will not "
                "send it again: correct it in Settings, Lines",
                "sim_pin_wrong",
            )
            return False
        io.error(f"the SIM PIN could not be entered ({_words(result)})", "sim_pin_failed")
        return False

    def pin_attempts(self, io: LineIO) -> int | None:
        """PIN attempts left, where the modem can tell (SIMCom +SPIC, Quectel +QPINC,
        Huawei ^CPIN); None when it cannot."""
        vendor = self.profile.vendor
        if vendor == "simcom":
            r = io.chat("AT+SPIC")
            if isinstance(r, Response):
                for line in r.lines:
                    if line.upper().startswith("+SPIC:"):
                        return _int_at(line.split(":", 1)[1], 0)
        elif vendor == "quectel":
            r = io.chat('AT+QPINC="SC"')
            if isinstance(r, Response):
                for line in r.lines:
                    if line.upper().startswith("+QPINC:"):
                        return _int_at(line.split(":", 1)[1], 1)
        elif vendor == "huawei":
            r = io.chat("AT^CPIN?")
            if isinstance(r, Response):
                for line in r.lines:
                    if line.upper().startswith("^CPIN:"):
                        # ^CPIN: <code>,[<times>],<puk_times>,<pin_times>,<puk2>,<pin2>
                        return _int_at(line.split(":", 1)[1], 3)
        return None

    def settings_changed(self, io: LineIO) -> None:
        """A PIN saved in the settings: unlock, then the settings a locked SIM refused
        (SMS format and reports) are made now."""
        if not self.sim_ready:
            self.pin_entered = False
            if self.unlock(io):
                self.wait_sms_ready(io)
                self._set_up(io)

    # -- calls ----------------------------------------------------------------------------------

    def answer(self, io: LineIO) -> Result:
        return io.chat(Command("ATA", timeout=20.0))

    def hangup(self, io: LineIO) -> Result:
        result = io.chat(Command("AT+CHUP", timeout=10.0))
        if isinstance(result, ErrorResult):
            result = io.chat(Command("ATH", timeout=10.0))
        return result

    # -- monitoring -----------------------------------------------------------------------------

    def periodic(self, io: LineIO) -> bool:
        self.monitor(io)
        return self.settings_lost(io)

    def settings_lost(self, io: LineIO) -> bool:
        """+CLIP off although init switched it on: the modem was reset (a brown-out on a
        UART adapter restarts a SIM800 with the port still open, REFERENCE.md 3)."""
        if not self.clip_on:
            return False
        answer = io.chat(Command("AT+CLIP?", timeout=3.0))
        if not isinstance(answer, Response):
            return False
        for line in answer.lines:
            if line.upper().startswith("+CLIP:"):
                return _int_at(line.split(":", 1)[1], 0) == 0
        return False

    def restart_sign(self, urc: URC) -> str | None:
        """Boot codes (SIM800, SIM7600, EC25 manuals: RDY, +CFUN: 1; Huawei ^SYSSTART) mean
        the modem started again; Huawei ^RSSI/^BOOT after ^CURC=0 mean it forgot that
        setting, so it was reset. The codes that follow the SIM becoming ready (Call Ready,
        SMS Ready, +CPIN: READY, SMS DONE, PB DONE, +QIND: SMS DONE, +QUSIM) also come after
        a PIN is entered, so they only make the line check +CLIP."""
        name = urc.name
        if name in ("RDY", "^SYSSTART"):
            return "restart"
        if name == "+CFUN" and urc.args.strip() == "1":
            return "restart"
        if name in ("^RSSI", "^BOOT") and self.curc_off:
            return "restart"
        if name in ("Call Ready", "SMS Ready", "SMS DONE", "PB DONE", "+QUSIM"):
            return "check"
        if name == "+QIND" and urc.args.strip().upper() in ("SMS DONE", "PB DONE"):
            return "check"
        if name == "+CPIN" and urc.args.strip().upper() == "READY":
            return "check"
        return None

    def monitor(self, io: LineIO) -> None:
        """Signal, registration and operator; SignalChanged when any of them changed."""
        rssi: int | None = None
        csq = io.chat(Command("AT+CSQ", timeout=3.0))
        if isinstance(csq, Response) and csq.lines:
            parsed = parse_csq(csq.lines[0])
            if parsed is not None:
                rssi = parsed.rssi
        stat = self._registration(io, "AT+CREG?")
        if self.profile.lte and stat not in (1, 5):
            stat = self._registration(io, "AT+CEREG?")
        operator = ""
        if stat in (1, 5):
            cops = io.chat(Command("AT+COPS?", timeout=10.0))
            if isinstance(cops, Response) and cops.lines:
                params = split_params(cops.lines[0].split(":", 1)[-1])
                if len(params) >= 3:
                    operator = unquote(params[2])
        words = "unknown" if stat is None else REGISTRATION_WORDS.get(stat, "unknown")
        self._changed(io, rssi, words, operator)

    def _registration(self, io: LineIO, query: str) -> int | None:
        r = io.chat(Command(query, timeout=3.0))
        if isinstance(r, Response) and r.lines:
            creg = parse_creg(r.lines[0])
            if creg is not None:
                return creg.stat
        return None

    def _changed(self, io: LineIO, rssi: int | None, registration: str, operator: str) -> None:
        self._signal = (rssi, registration, operator)
        io.update(rssi=rssi, registration=registration, operator=operator)

    def on_urc(self, io: LineIO, urc: URC) -> None:
        name = urc.name
        if name in ("+CREG", "+CEREG"):
            creg = parse_creg(urc.line)
            if creg is not None:
                old = self._signal or (None, "", "")
                words = REGISTRATION_WORDS.get(creg.stat, "unknown")
                operator = old[2] if creg.registered else ""
                self._changed(io, old[0], words, operator)
        elif name == "+CPIN":
            state = urc.args.strip().upper()
            io.update(sim=state)
            if state == "READY":
                self.sim_ready = True  # ready after all (it was still starting at init)
            elif self.sim_ready:
                self.sim_ready = False
                io.error(f"the SIM card reports {state or 'a problem'}", "sim_changed")
        elif name.startswith("UNDER-VOLTAGE") or name.startswith("OVER-VOLTAGE"):
            io.error(f"the GSM modem reports {name.lower()}: check its power supply", "power")


def _int_at(text: str, index: int) -> int | None:
    params = split_params(text)
    if len(params) > index:
        value = unquote(params[index]).strip()
        if re.fullmatch(r"\d+", value):
            return int(value)
    return None


def _words(result: Result) -> str:
    if isinstance(result, ErrorResult):
        return result.message or result.result
    if isinstance(result, Timeout):
        return "no answer"
    return result.result
