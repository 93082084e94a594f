"""The front panel on the Pi's GPIO header: ready, line and message LEDs, the day/night button
and the switch that power-cycles the modem.

Built by the daemon only when `[panel]` names a pin: gpiozero is imported then and never
otherwise. Reacts to bus events, changes the override only through the callable it is given,
and never blocks a publisher (blinking and the power pulse run on their own threads).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from .config import PanelConfig
from .events import DaemonStarted, DaemonStopping, EventBus

log = logging.getLogger(__name__)

LineState = Literal["down", "idle", "ringing", "call"]
ReadyState = Literal["off", "starting", "running", "trouble"]
OverrideKind = Literal["next_change", "switched_back"]

# LED patterns as (seconds on, seconds off); None: steady on; absent: off.
BLINKS: dict[str, tuple[float, float] | None] = {
    "starting": (0.5, 0.5),
    "running": None,
    "trouble": (0.1, 0.4),
    "idle": None,
    "ringing": (0.15, 0.15),
    "call": (0.8, 0.2),
    "messages": (0.3, 1.2),
}
BOUNCE_SECONDS = 0.03
POWER_CYCLE_MIN_INTERVAL = 300.0  # seconds between two power cycles of the modem
_LINE_NUMBER = re.compile(r"line(\d+)$")


class Routing(Protocol):
    """What the button needs from the routing service."""

    def status(self) -> Any: ...

    def set_override(
        self, state: Any, until: Any = ..., until_time: str = ..., note: str = ...
    ) -> Any: ...


def routing_toggle(routing: Routing) -> Callable[[OverrideKind], str]:
    """The button's action on the routing service; returns the new state in words.

    A short press while an override is on switches it off (the schedule rules again);
    otherwise the press flips open and closed, until the next change or until switched back.
    """

    def toggle(kind: OverrideKind) -> str:
        status = routing.status()
        if kind == "next_change" and status.mode == "override":
            routing.set_override("off")
            return "override off"
        state = "closed" if status.is_open else "open"
        routing.set_override(state, until=kind, note="panel button")
        return f"{state} until {'the next change' if kind == 'next_change' else 'switched back'}"

    return toggle


class _Led:
    """One LED that remembers its pattern, so repeating a state does not restart a blink."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.pattern: str = "off"

    def show(self, pattern: str) -> None:
        if pattern == self.pattern:
            return
        self.pattern = pattern
        blink = BLINKS.get(pattern, ()) if pattern != "off" else ()
        if blink == ():
            self.device.off()
        elif blink is None:
            self.device.on()
        else:
            on, off = blink  # type: ignore[misc]
            self.device.blink(on_time=on, off_time=off)


class Panel:
    """LEDs, the override button and the modem power switch, as fitted in `config`."""

    def __init__(
        self,
        config: PanelConfig,
        *,
        toggle_override: Callable[[OverrideKind], object] | None = None,
        pin_factory: Any = None,
        monotonic: Callable[[], float] = time.monotonic,
        power_cycle_min_interval: float = POWER_CYCLE_MIN_INTERVAL,
    ) -> None:
        from gpiozero import LED, Button, DigitalOutputDevice  # lazy: only with a panel

        self.config = config
        self.toggle_override = toggle_override
        self._monotonic = monotonic
        self._min_interval = power_cycle_min_interval
        self._lock = threading.Lock()
        self._devices: list[Any] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self._line_index: dict[str, int] = {}
        self._line_states: dict[str, LineState] = {}
        self._failed_resets: dict[str, int] = {}
        self._last_cycle: float | None = None
        self._cycle_stop = threading.Event()
        self._cycle_thread: threading.Thread | None = None
        self._held = False
        self._closed = False
        self.presses: list[OverrideKind] = []  # what the button did, newest last (for the log)

        def led(pin: int) -> _Led | None:
            if pin <= 0:
                return None
            device = LED(
                pin,
                active_high=config.leds_active_high,
                initial_value=False,
                pin_factory=pin_factory,
            )
            self._devices.append(device)
            return _Led(device)

        try:
            self.ready = led(config.ready_led)
            self.lines = [led(pin) for pin in config.line_leds]
            self.message = led(config.message_led)
            self.button: Any = None
            if config.override_button > 0:
                self.button = Button(
                    config.override_button,
                    pull_up=config.button_pull_up,
                    bounce_time=BOUNCE_SECONDS,
                    hold_time=config.long_press_seconds,
                    pin_factory=pin_factory,
                )
                self._devices.append(self.button)
                self.button.when_pressed = self._pressed
                self.button.when_held = self._long_press
                self.button.when_released = self._released
            self.modem_power: Any = None
            if config.modem_power > 0:
                # Inactive (the modem powered) from the first moment the pin is an output.
                self.modem_power = DigitalOutputDevice(
                    config.modem_power,
                    active_high=config.modem_power_active_high,
                    initial_value=False,
                    pin_factory=pin_factory,
                )
                self._devices.append(self.modem_power)
        except Exception:
            self.close()
            raise
        if self.ready is not None:
            self.ready.show("starting")
        log.info("front panel on GPIO %s", _describe(config))

    # -- inputs: the daemon and the bus ---------------------------------------------------------

    def subscribe(self, bus: EventBus) -> None:
        """Follow the daemon, line and inbox events on `bus` (those whose modules exist)."""
        subs = self._unsubscribe
        subs.append(bus.subscribe(DaemonStarted, lambda e: self.set_ready("running")))
        subs.append(bus.subscribe(DaemonStopping, lambda e: self.set_ready("off")))
        try:
            from .modem import events as ev
        except ImportError:  # lines not built into this version: the daemon calls line_state
            ev = None  # type: ignore[assignment]
        if ev is not None:
            subs.append(bus.subscribe(ev.LineUp, self._on_line_up))
            subs.append(bus.subscribe(ev.LineDown, lambda e: self.line_state(e.line, "down")))
            subs.append(bus.subscribe(ev.ReconnectFailed, lambda e: self.soft_reset_failed(e.line)))
            subs.append(
                bus.subscribe(ev.IncomingCall, lambda e: self.line_state(e.line, "ringing"))
            )
            subs.append(bus.subscribe(ev.CallAnswered, lambda e: self.line_state(e.line, "call")))
            subs.append(bus.subscribe(ev.CallEnded, self._on_call_over))
            subs.append(bus.subscribe(ev.CallerHungUp, self._on_call_over))
        try:
            from .services.history import InboxChanged
        except ImportError:  # no inbox yet: the daemon calls set_unhandled
            return
        subs.append(bus.subscribe(InboxChanged, lambda e: self.set_unhandled(e.open_count)))

    def _on_line_up(self, event: Any) -> None:
        self.line_recovered(event.line)
        self.line_state(event.line, "idle")

    def _on_call_over(self, event: Any) -> None:
        if self._line_states.get(event.line) in ("ringing", "call"):
            self.line_state(event.line, "idle")

    def set_ready(self, state: ReadyState) -> None:
        """starting: slow blink; running: on; trouble: fast blink; off."""
        if self.ready is not None and not self._closed:
            self.ready.show(state)

    def line_state(self, line: str, state: LineState) -> None:
        """down: off; idle: on; ringing: fast blink; call: mostly on."""
        with self._lock:
            self._line_states[line] = state
            index = self._index_of(line)
            led = self.lines[index] if index is not None and index < len(self.lines) else None
        if led is not None and not self._closed:
            led.show("off" if state == "down" else state)

    def _index_of(self, line: str) -> int | None:
        """line1 -> LED 0, line2 -> LED 1; other names in the order first seen."""
        if line not in self._line_index:
            m = _LINE_NUMBER.match(line)
            taken = set(self._line_index.values())
            if m and int(m.group(1)) >= 1 and int(m.group(1)) - 1 not in taken:
                self._line_index[line] = int(m.group(1)) - 1
            else:
                free = [i for i in range(len(self.lines)) if i not in taken]
                if not free:
                    return None
                self._line_index[line] = free[0]
        return self._line_index[line]

    def set_unhandled(self, count: int) -> None:
        """The message LED blinks while `count` items wait for someone; off at zero."""
        if self.message is not None and not self._closed:
            self.message.show("messages" if count > 0 else "off")

    # -- the button -----------------------------------------------------------------------------

    def _pressed(self) -> None:
        self._held = False

    def _long_press(self) -> None:
        self._held = True
        self._toggle("switched_back")

    def _released(self) -> None:
        if not self._held:
            self._toggle("next_change")
        self._held = False

    def _toggle(self, kind: OverrideKind) -> None:
        self.presses.append(kind)
        del self.presses[:-20]
        if self.toggle_override is None:
            log.info("panel button pressed (%s); no override is connected", kind)
            return
        try:
            result = self.toggle_override(kind)
        except Exception:
            log.exception("panel button: switching the override failed")
            return
        log.info("panel button: %s", result if isinstance(result, str) else kind)

    # -- the modem power switch -----------------------------------------------------------------

    @property
    def cycling(self) -> bool:
        thread = self._cycle_thread
        return thread is not None and thread.is_alive()

    def power_cycle_modem(self, seconds: float | None = None) -> bool:
        """Cut the modem's USB power for `seconds` (default from the config), in the background.

        False when no switch is fitted, a cycle is running, or the last one was too recent.
        """
        if self.modem_power is None or self._closed:
            log.warning("modem power cycle asked for, but no power switch is fitted")
            return False
        seconds = self.config.power_cycle_seconds if seconds is None else seconds
        with self._lock:
            now = self._monotonic()
            if self.cycling:
                return False
            if self._last_cycle is not None and now - self._last_cycle < self._min_interval:
                log.warning(
                    "modem power cycle skipped: the last one was %.0f s ago",
                    now - self._last_cycle,
                )
                return False
            self._last_cycle = now
            self._cycle_stop.clear()
            self._cycle_thread = threading.Thread(
                target=self._cycle, args=(seconds,), name="modem-power", daemon=True
            )
            self._cycle_thread.start()
        return True

    def _cycle(self, seconds: float) -> None:
        log.warning("cutting the modem's USB power for %.1f s", seconds)
        try:
            self.modem_power.on()
            self._cycle_stop.wait(seconds)
        finally:
            self.modem_power.off()
        log.info("modem power restored")

    def soft_reset_failed(self, line: str) -> bool:
        """The line watchdog's hook: one more soft reset of `line` failed.

        After `power_cycle_after` failures in a row the modem's power is cycled (when a switch
        is fitted); returns True when that started.
        """
        with self._lock:
            count = self._failed_resets.get(line, 0) + 1
            self._failed_resets[line] = count
        if count < self.config.power_cycle_after or self.modem_power is None:
            return False
        log.warning("%s: %d soft resets failed; power-cycling the modem", line, count)
        if self.power_cycle_modem():
            with self._lock:
                self._failed_resets[line] = 0
            return True
        return False

    def line_recovered(self, line: str) -> None:
        with self._lock:
            self._failed_resets.pop(line, None)

    # -- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        """Everything off and released; the modem keeps (or gets back) its power. Safe twice."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._closed = True
        self._cycle_stop.set()
        thread = self._cycle_thread
        if thread is not None:
            thread.join(2.0)
        for device in reversed(self._devices):
            try:
                device.close()
            except Exception:
                log.debug("closing %s", device, exc_info=True)
        self._devices.clear()

    def __enter__(self) -> Panel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(config: PanelConfig) -> str:
    return ", ".join(f"{name} {pin}" for name, pin in config.pins().items())
