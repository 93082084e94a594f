"""The simulated SIM's message memory: numbered slots holding PDUs with a status.

Follows 3GPP TS 27.005 (stat 0 received unread .. 3 stored sent, 4 all; <length> counts the
TPDU octets without the SMSC address). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

REC_UNREAD = 0
REC_READ = 1
STO_UNSENT = 2
STO_SENT = 3
ALL = 4


class PduError(ValueError):
    """A PDU that is not hex or whose length does not add up."""


def pdu_bytes(pdu_hex: str) -> bytes:
    """Decode a hex PDU, raising PduError on anything else."""
    text = pdu_hex.strip()
    try:
        data = bytes.fromhex(text)
    except ValueError as exc:
        raise PduError(f"PDU is not hex: {text[:40]!r}") from exc
    if not data:
        raise PduError("PDU is empty")
    return data


def tpdu_length(pdu_hex: str) -> int:
    """TS 27.005 <length>: octets after the SMSC address field (first octet = its length)."""
    data = pdu_bytes(pdu_hex)
    sca_len = data[0]
    if sca_len + 1 > len(data):
        raise PduError(f"SMSC length {sca_len} is longer than the PDU ({len(data)} octets)")
    return len(data) - sca_len - 1


@dataclass(slots=True)
class StoredSms:
    """One slot: status (0-3) and the PDU with its SMSC address, as hex."""

    stat: int
    pdu: str

    @property
    def length(self) -> int:
        return tpdu_length(self.pdu)


class SmsMemory:
    """One message memory ("SM" on the SIM, "ME" in the phone) with 1-based slots."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.slots: dict[int, StoredSms] = {}

    @property
    def used(self) -> int:
        return len(self.slots)

    def store(self, pdu_hex: str, stat: int) -> int | None:
        """Store in the lowest free slot; None when full."""
        tpdu_length(pdu_hex)  # validates
        for index in range(1, self.capacity + 1):
            if index not in self.slots:
                self.slots[index] = StoredSms(stat=stat, pdu=pdu_hex.strip().upper())
                return index
        return None

    def read(self, index: int) -> StoredSms | None:
        """The message in a slot; reading a received unread message marks it read."""
        sms = self.slots.get(index)
        if sms is not None and sms.stat == REC_UNREAD:
            self.slots[index] = StoredSms(stat=REC_READ, pdu=sms.pdu)
        return sms

    def listing(self, stat: int) -> list[tuple[int, StoredSms]]:
        """Messages with a status (4 = all), in slot order; unread ones become read."""
        out = []
        for index in sorted(self.slots):
            sms = self.slots[index]
            if stat in (ALL, sms.stat):
                out.append((index, sms))
                if sms.stat == REC_UNREAD:
                    self.slots[index] = StoredSms(stat=REC_READ, pdu=sms.pdu)
        return out

    def delete(self, index: int, delflag: int = 0) -> None:
        """TS 27.005 +CMGD: delflag 0 the one slot, 1 read, 2 read+sent, 3 +unsent, 4 all."""
        if delflag == 0:
            self.slots.pop(index, None)
            return
        doomed = {
            1: {REC_READ},
            2: {REC_READ, STO_SENT},
            3: {REC_READ, STO_SENT, STO_UNSENT},
            4: {REC_READ, REC_UNREAD, STO_SENT, STO_UNSENT},
        }[delflag]
        for i in [i for i, s in self.slots.items() if s.stat in doomed]:
            del self.slots[i]


# Commands of the message service (TS 27.005 3 and 4): a failure is `+CMS ERROR: <err>`
# (3.2.5). Other commands that need the SIM fail with `+CME ERROR: <err>` (TS 27.007 9.2).
MESSAGE_SERVICE_COMMANDS = frozenset(
    {"+CPMS", "+CSCA", "+CMGL", "+CMGR", "+CMGD", "+CMGS", "+CMGW", "+CMSS", "+CMGC", "+CNMA"}
)
SIM_COMMANDS = frozenset({"+CPIN", "+CPBR", "+CPBW", "+CPBS", "+CPBF", "+CLCK", "+CPWD", "+CRSM"})
CMS_SIM_BUSY = 314  # TS 27.005 3.2.5; SIM800 Series AT Command Manual V1.09, +CMS error list
CME_SIM_BUSY = 14  # TS 27.007 9.2.1; same manual, +CME error list


@dataclass(slots=True)
class SimBusy:
    """A SIM too busy to answer (after power-on, during phonebook or SMS initialisation, or
    while the network writes to it). Commands named in `commands` (all commands that need the
    SIM when empty) fail with `cms` (message service: 314 SIM busy by TS 27.005 3.2.5, or e.g.
    500 unknown error) or `cme` (others, and message commands too when `cms` is 0: 14 SIM
    busy, TS 27.007 9.2.1), `times` times in all or until cleared (`times` None). Test forms
    (`AT+CMGR=?`) are answered as usual."""

    commands: frozenset[str] = frozenset()
    times: int | None = None
    cms: int = CMS_SIM_BUSY
    cme: int = CME_SIM_BUSY
    answered: int = 0  # busy answers given so far

    def answer(self, name: str, form: str) -> tuple[str, int] | None:
        """("cms", code) or ("cme", code) if this command is refused now, else None."""
        if form == "test" or self.times == 0:
            return None
        if self.commands:
            if name not in self.commands:
                return None
        elif name not in MESSAGE_SERVICE_COMMANDS and name not in SIM_COMMANDS:
            return None
        if self.times is not None:
            self.times -= 1
        self.answered += 1
        if name in MESSAGE_SERVICE_COMMANDS and self.cms:
            return ("cms", self.cms)
        return ("cme", self.cme)  # cms 0: as modems that answer SMS commands with +CME


def pdu_bytes_safe(pdu_hex: str) -> bytes | None:
    """`pdu_bytes`, or None for text that is not a PDU."""
    try:
        return pdu_bytes(pdu_hex)
    except PduError:
        return None


def _swapped(value: int) -> int:
    """Two decimal digits as one semi-octet pair, low digit first (TS 23.040 9.1.2.3)."""
    return (value % 10) << 4 | (value // 10) % 10


def scts_octets(when: datetime) -> bytes:
    """TS 23.040 9.2.3.11 time stamp: YYMMDDhhmmss and the zone in quarters of an hour."""
    offset = when.utcoffset() or timedelta(0)
    quarters = int(offset.total_seconds() // 900)
    zone = _swapped(abs(quarters)) | (0x08 if quarters < 0 else 0)
    fields = (when.year % 100, when.month, when.day, when.hour, when.minute, when.second)
    return bytes(_swapped(v) for v in fields) + bytes((zone,))


def _smsc_field(number: str) -> bytes:
    digits = number.lstrip("+")
    if len(digits) % 2:
        digits += "F"
    bcd = bytes(int(digits[i + 1], 16) << 4 | int(digits[i], 16) for i in range(0, len(digits), 2))
    return bytes((len(bcd) + 1, 0x91)) + bcd


def _address_field(number: str) -> bytes:
    """TS 23.040 9.1.2.5 address: digit count, TOA (0x91 with "+", else 0x81), BCD."""
    digits = number.lstrip("+")
    padded = digits + ("F" if len(digits) % 2 else "")
    bcd = bytes(int(padded[i + 1], 16) << 4 | int(padded[i], 16) for i in range(0, len(padded), 2))
    return bytes((len(digits), 0x91 if number.startswith("+") else 0x81)) + bcd


def _submit_fields(submit: bytes) -> tuple[int, str, bytes, int]:
    """(first octet, destination, PID/DCS, offset of TP-UDL) of an SMS-SUBMIT with its SMSC
    field first (TS 23.040 9.2.2.2: MTI, MR, DA, PID, DCS, VP as VPF says, UDL, UD)."""
    pos = submit[0] + 1
    first = submit[pos]
    if first & 0x03 != 0x01:
        raise PduError(f"not an SMS-SUBMIT (first octet {first:02X})")
    pos += 2  # first octet, TP-MR
    digits, toa = submit[pos], submit[pos + 1]
    bcd = submit[pos + 2 : pos + 2 + (digits + 1) // 2]
    number = "".join(f"{b & 0x0F:X}{b >> 4:X}" for b in bcd)[:digits]
    destination = ("+" if toa >> 4 & 0x07 == 1 else "") + number
    pos += 2 + (digits + 1) // 2
    pid_dcs = submit[pos : pos + 2]
    pos += 2
    vpf = first >> 3 & 0x03
    pos += {0: 0, 2: 1, 1: 7, 3: 7}[vpf]  # TS 23.040 9.2.3.3: none, relative, enhanced, absolute
    if pos >= len(submit) or len(pid_dcs) != 2:
        raise PduError("SMS-SUBMIT ends before its TP-UDL")
    return first, destination, pid_dcs, pos


def submit_destination(submit: bytes) -> str:
    """The TP-DA of an SMS-SUBMIT: where the network delivers it."""
    return _submit_fields(submit)[1]


def deliver_from_submit(
    submit: bytes, sender: str, when: datetime, smsc: str = "+447785016005"
) -> str:
    """What the service centre makes of a SUBMIT for its recipient (TS 23.040 9.2.2.1): an
    SMS-DELIVER with TP-OA the sender's number, TP-SCTS `when`, and TP-PID, TP-DCS, TP-UDHI,
    TP-RP, TP-UDL and TP-UD exactly as the sender wrote them. SMSC field first. Written
    from the spec here, apart from the daemon's codec."""
    first, _destination, pid_dcs, udl_at = _submit_fields(submit)
    # TP-MTI 00, TP-MMS 1 (no more messages waiting), UDHI and RP as the SUBMIT had them.
    deliver_first = 0x04 | (first & 0x40) | (first & 0x80)
    tpdu = (
        bytes((deliver_first,))
        + _address_field(sender)
        + pid_dcs
        + scts_octets(when)
        + submit[udl_at:]
    )
    return (_smsc_field(smsc) + tpdu).hex().upper()


def status_report_pdu(
    submit: bytes, reference: int, status: int, when: datetime, smsc: str = "+447785016005"
) -> str:
    """An SMS-STATUS-REPORT (TS 23.040 9.2.2.3) for a SUBMIT the host sent: TP-MR
    `reference`, TP-RA copied from the SUBMIT's TP-DA, TP-SCTS and TP-DT `when`, TP-ST
    `status` (0 received by the recipient, 0x40+ permanent errors). SMSC field first."""
    sca = submit[0]
    da_digits = submit[sca + 3]
    da = submit[sca + 3 : sca + 5 + (da_digits + 1) // 2]
    stamp = scts_octets(when)
    # First octet 0x06: TP-MTI 10 (status report), TP-MMS 1 (no more messages).
    tpdu = bytes((0x06, reference & 0xFF)) + da + stamp + stamp + bytes((status & 0xFF,))
    return (_smsc_field(smsc) + tpdu).hex().upper()
