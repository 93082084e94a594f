"""ALSA audio for GSM calls through a USB sound card (or a modem's USB audio), via pyalsaaudio.

One duplex pair of PCM devices, 16-bit mono at 8 kHz, read and written in 20 ms periods:
blocking calls, paced by the sound card itself. pyalsaaudio is imported only when a device is
opened (the `audio` extra), so nothing else needs it installed. Never used on a line thread.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)

RATE = 8000
PERIOD = 160  # samples: 20 ms
FRAME_BYTES = PERIOD * 2


class AlsaError(OSError):
    """The sound card cannot be opened or stopped working; the message names the device."""


def _alsaaudio() -> Any:
    try:
        return importlib.import_module("alsaaudio")
    except ImportError:
        raise AlsaError(
            "pyalsaaudio is not installed: install Frontdesk with the audio extra "
            "(pip install 'frontdesk[audio]') for GSM call audio through a sound card"
        ) from None


def devices() -> list[str]:
    """ALSA PCM device names (`alsaaudio.pcms()`), for the config page and `modem probe`."""
    return list(_alsaaudio().pcms())


class AlsaDuplex:
    """Capture and playback on ALSA devices, one 20 ms frame (320 bytes S16_LE) at a time.

    `device` is used for both directions unless `capture_device` names another one (tests use
    the `file` plugin: playback to a file, capture from a file). Use `plughw:` names so ALSA
    converts to the card's own rate and channels.
    """

    def __init__(
        self, device: str, *, capture_device: str | None = None, period: int = PERIOD
    ) -> None:
        self.device = device
        self.capture_device = capture_device or device
        self.period = period
        self._capture: Any = None
        self._playback: Any = None

    def open(self) -> AlsaDuplex:
        alsa = _alsaaudio()
        common = {
            "rate": RATE,
            "channels": 1,
            "format": alsa.PCM_FORMAT_S16_LE,
            "periodsize": self.period,
        }
        try:
            self._playback = alsa.PCM(alsa.PCM_PLAYBACK, device=self.device, **common)
            self._capture = alsa.PCM(alsa.PCM_CAPTURE, device=self.capture_device, **common)
        except alsa.ALSAAudioError as exc:
            self.close()
            raise AlsaError(f"sound card {self.device!r} cannot be opened: {exc}") from None
        return self

    def read_frame(self) -> bytes | None:
        """One period of captured audio (blocks for it); None when the card is gone."""
        if self._capture is None:
            return None
        want = self.period * 2
        got = b""
        for _ in range(50):
            try:
                n, data = self._capture.read()
            except Exception as exc:  # alsaaudio.ALSAAudioError: unplugged
                log.warning("sound card %s: capture failed: %s", self.capture_device, exc)
                return None
            if n < 0:  # overrun (-EPIPE): pyalsaaudio recovered it; read again
                continue
            got += bytes(data)
            if len(got) >= want:
                return got[:want]
        return got.ljust(want, b"\0")

    def write_frame(self, data: bytes) -> None:
        if self._playback is None:
            return
        try:
            self._playback.write(data)
        except Exception as exc:
            log.warning("sound card %s: playback failed: %s", self.device, exc)

    def close(self) -> None:
        if self._playback is not None and hasattr(self._playback, "drain"):
            try:
                self._playback.drain()  # play what is queued; close alone drops it
            except Exception:
                log.debug("draining %s", self.device, exc_info=True)
        for pcm in (self._capture, self._playback):
            if pcm is not None:
                try:
                    pcm.close()
                except Exception:
                    log.debug("closing %s", self.device, exc_info=True)
        self._capture = self._playback = None

    def __enter__(self) -> AlsaDuplex:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["FRAME_BYTES", "PERIOD", "RATE", "AlsaDuplex", "AlsaError", "devices"]
