"""A simulated mobile network for texts: simulated modems join with their numbers, and a
text one of them sends (AT+CMGS) reaches the one it is addressed to, converted by the service
centre as TS 23.040 says (`sms.deliver_from_submit`). Parts can be held and delivered in any
order, as real networks do.

Used by tests to put an independent client (gammu driving one simulated phone) in front of
Frontdesk's intake on another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from .modem import SimulatedModem
from .sms import deliver_from_submit, pdu_bytes, submit_destination


def _digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


class SmsNetwork:
    """`join(modem, number)`; texts sent by a joined modem to a joined number are delivered
    at once (on a thread of their own), or kept while `hold` until `release(order)`."""

    def __init__(
        self,
        *,
        hold: bool = False,
        smsc: str = "+447785016005",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.hold = hold
        self.smsc = smsc
        self.clock = clock
        self._numbers: dict[str, SimulatedModem] = {}
        self._held: list[tuple[SimulatedModem, str]] = []
        self._lock = threading.Lock()
        self.undeliverable: list[str] = []  # SUBMITs to numbers nobody joined with

    def join(self, modem: SimulatedModem, number: str) -> None:
        with self._lock:
            self._numbers[_digits(number)] = modem
        modem.on_sms_sent(lambda pdu: self._sent(number, pdu))

    def _sent(self, sender: str, pdu_hex: str) -> None:
        """On the sending modem's thread: convert, then hold or hand to a delivery thread
        (never delivered from here: the sending modem's lock is held)."""
        submit = pdu_bytes(pdu_hex)
        with self._lock:
            target = self._numbers.get(_digits(submit_destination(submit)))
        if target is None:
            self.undeliverable.append(pdu_hex)
            return
        deliver = deliver_from_submit(submit, sender, self.clock(), self.smsc)
        with self._lock:
            if self.hold:
                self._held.append((target, deliver))
                return
        threading.Thread(target=target.deliver_sms, args=(deliver,), daemon=True).start()

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def release(self, order: Sequence[int] | None = None) -> int:
        """Deliver what was held, in `order` (indices into what was held; default as sent).
        Returns how many texts were delivered."""
        with self._lock:
            held, self._held = self._held, []
        for i in order if order is not None else range(len(held)):
            target, deliver = held[i]
            target.deliver_sms(deliver)
        return len(held)
