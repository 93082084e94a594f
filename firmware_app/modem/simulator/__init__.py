"""Simulated modems on a pty for tests and `frontdesk demo`.

`create("sim800", folder)` gives a started modem whose `path` a daemon opens with pyserial
exactly as it opens /dev/ttyACM0. Personalities follow vendor manuals and REFERENCE.md,
quirks included, never the daemon's expectations.
"""

from .callerid import CallerId, CidForm
from .fax2 import FaxMachine
from .fax_line import VirtualLine
from .fax_machine import LineFax
from .modem import SimulatedModem, create, personality_by_name
from .personalities import PERSONALITIES, PERSONALITY_NAMES, Personality
from .voice import VoiceCaller

__all__ = [
    "PERSONALITIES",
    "PERSONALITY_NAMES",
    "CallerId",
    "CidForm",
    "FaxMachine",
    "LineFax",
    "Personality",
    "SimulatedModem",
    "VirtualLine",
    "VoiceCaller",
    "create",
    "personality_by_name",
]
