"""Which audio path a GSM line's calls take, and opening it for one call.

PCM over a USB serial port (SIM7600, EC25, Huawei) when the machine config names the port
(`audio.pcm_port`) or detection finds it beside the AT port, else the USB sound card
(`audio.device`). The runner asks `channel(line, call)` for an answered call; putting a call
through asks `outgoing(line)` for the staff member's call on a second line. Nothing is opened
before a call needs it; a sound card carries one call at a time.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..config import AudioConfig
from ..events import EventBus
from ..modem.detect import pcm_port_for

if TYPE_CHECKING:
    from .gsm_voice import GsmVoiceChannel

# The channels (numpy, the DSP) are imported when a call needs them, not at start-up.
SERIAL_PCM_VENDORS = frozenset({"simcom", "quectel", "huawei"})  # gsm_voice.SERIAL_PCM

log = logging.getLogger(__name__)

_LINE_NUMBER = re.compile(r"line(\d+)$")


@dataclass(frozen=True, slots=True)
class AudioPath:
    """How one line's call audio flows: `serial` (PCM on `where`) or `sound_card` (ALSA)."""

    kind: Literal["serial", "sound_card"]
    where: str
    vendor: str = ""

    @property
    def words(self) -> str:
        if self.kind == "serial":
            return f"PCM over USB serial {self.where}"
        return f"sound card {self.where}"


class CallAudio:
    """The `services.call_audio` hook: GSM call audio channels, started and ready to use.

    `options` go to the channels (tests: `realtime=False`, `capture_device=...`).
    """

    def __init__(
        self,
        bus: EventBus,
        config: AudioConfig,
        *,
        sys_root: str = "/sys",
        known: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        self._bus = bus
        self._config = config
        # PCM ports by line name known without detection: a simulated modem's (the demo).
        # `audio.pcm_port` still wins for a line it names.
        self._known = dict(known or {})
        self._sys_root = sys_root
        self._options = options
        self._lock = threading.Lock()
        self._cards_in_use: set[str] = set()
        self._found: dict[str, str] = {}  # line port -> detected PCM port (probing is cheap)

    # -- which path ---------------------------------------------------------------------------

    def configured_port(self, line_name: str) -> str:
        """`audio.pcm_port` for this line ("" = not set: detection decides)."""
        known = self._known.get(line_name, "")
        m = _LINE_NUMBER.match(line_name)
        if m is None:
            return known
        index = int(m.group(1)) - 1
        ports = self._config.pcm_port
        if 0 <= index < len(ports):
            value = ports[index].strip()
            return (known if value.lower() == "auto" else value) or known
        return known

    def path(self, line: Any) -> AudioPath | None:
        """The audio path of `line`'s calls, or None (not a GSM line, or no audio found)."""
        profile = getattr(line, "profile", None)
        if profile is None or profile.kind != "gsm":
            return None
        vendor = profile.vendor
        port = self.configured_port(line.name)
        if port.lower() != "none" and vendor in SERIAL_PCM_VENDORS:
            if not port:
                key = str(line.port)
                if key not in self._found:
                    self._found[key] = pcm_port_for(profile, key, sys_root=self._sys_root)
                port = self._found[key]
            if port:
                return AudioPath("serial", port, vendor)
        if self._config.device:
            return AudioPath("sound_card", self._config.device, vendor)
        return None

    def describe(self, line: Any) -> str:
        """For pages: how this line's calls are heard, or why they cannot be."""
        found = self.path(line)
        if found is not None:
            return found.words
        return "no call audio: set audio.pcm_port or audio.device in the machine config"

    def can_carry(self, line: Any) -> bool:
        """True when a call on `line` could get audio now (a busy sound card cannot)."""
        found = self.path(line)
        if found is None:
            return False
        if found.kind == "sound_card":
            with self._lock:
                return found.where not in self._cards_in_use
        return True

    # -- opening ------------------------------------------------------------------------------

    def channel(self, line: Any, call: Any = None) -> GsmVoiceChannel | None:
        """A started channel for the answered call on `line`; None when it has no audio."""
        from .gsm_voice import GsmSerialPcmChannel, GsmSoundCardChannel

        found = self.path(line)
        if found is None:
            log.warning("%s: %s", line.name, self.describe(line))
            return None
        made: GsmVoiceChannel
        if found.kind == "sound_card":
            with self._lock:
                if found.where in self._cards_in_use:
                    log.warning("%s: sound card %s carries another call", line.name, found.where)
                    return None
                self._cards_in_use.add(found.where)
            made = GsmSoundCardChannel(
                line, found.where, bus=self._bus, vendor=found.vendor, **self._options
            )
            made.closed_callbacks.append(lambda: self._release(found.where))
        else:
            options = {k: v for k, v in self._options.items() if k != "capture_device"}
            made = GsmSerialPcmChannel(
                line, found.where, bus=self._bus, vendor=found.vendor, **options
            )
        try:
            made.start()
        except Exception as exc:
            log.error("%s: call audio (%s) cannot start: %s", line.name, found.words, exc)
            made.close()
            return None
        log.info("%s: call audio: %s", line.name, found.words)
        return made

    def outgoing(self, line: Any) -> GsmVoiceChannel | None:
        """A started channel for a call we placed on `line` (the bridge's staff side)."""
        return self.channel(line, None)

    def _release(self, device: str) -> None:
        with self._lock:
            self._cards_in_use.discard(device)


__all__ = ["AudioPath", "CallAudio"]
