"""The front panel on gpiozero's MockFactory: LEDs follow lines and the inbox, the button
switches the override (short and long presses), the power switch pulses after failed resets."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from firmware_app.config import PanelConfig, config_from_dict
from firmware_app.errors import ConfigError
from firmware_app.events import DaemonStarted, DaemonStopping, EventBus
from firmware_app.modem import events as ev
from firmware_app.panel import Panel, routing_toggle

READY, LINE1, LINE2, MESSAGE, BUTTON, POWER = 17, 27, 22, 23, 24, 25


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = previous


def full_config(**changes: Any) -> PanelConfig:
    values: dict[str, Any] = {
        "ready_led": READY,
        "line_leds": [LINE1, LINE2],
        "message_led": MESSAGE,
        "override_button": BUTTON,
        "modem_power": POWER,
        "long_press_seconds": 0.3,
        "power_cycle_seconds": 0.2,
        "power_cycle_after": 3,
    }
    values.update(changes)
    return PanelConfig(**values)


@pytest.fixture
def panel(factory: MockFactory) -> Iterator[tuple[Panel, list[str]]]:
    calls: list[str] = []
    p = Panel(full_config(), toggle_override=calls.append, power_cycle_min_interval=0.0)
    yield p, calls
    p.close()


def blinking(p: Panel, pin: int, window: float = 0.6) -> bool:
    """Our blinks (but "call") change state within 0.6 s; a steady LED does not."""
    pin_obj = Device.pin_factory.pin(pin)
    first = pin_obj.state
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        if pin_obj.state != first:
            return True
        time.sleep(0.01)
    return False


def state(pin: int) -> bool:
    return bool(Device.pin_factory.pin(pin).state)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# -- LEDs ----------------------------------------------------------------------------------------


def test_ready_led_blinks_while_starting_then_stays_on(panel: tuple[Panel, list[str]]) -> None:
    p, _ = panel
    bus = EventBus()
    p.subscribe(bus)
    assert blinking(p, READY)
    bus.publish(DaemonStarted(version="test"))
    assert state(READY) and not blinking(p, READY)
    p.set_ready("trouble")
    assert blinking(p, READY)
    bus.publish(DaemonStopping(reason="test"))
    assert not state(READY)


def test_line_leds_follow_line_events(panel: tuple[Panel, list[str]]) -> None:
    p, _ = panel
    bus = EventBus()
    p.subscribe(bus)
    assert not state(LINE1) and not state(LINE2)
    bus.publish(ev.LineUp(line="line2", port="/dev/ttyACM1", description="GSM"))
    assert state(LINE2) and not state(LINE1)
    bus.publish(ev.LineUp(line="line1", port="/dev/ttyACM0", description="analog"))
    assert state(LINE1)
    bus.publish(
        ev.IncomingCall(line="line1", call_id=1, number="+441632960123", name=None, validity="ok")
    )
    assert blinking(p, LINE1)
    assert state(LINE2) and not blinking(p, LINE2)
    bus.publish(ev.CallAnswered(line="line1", call_id=1))
    assert p.lines[0] is not None and p.lines[0].pattern == "call"
    bus.publish(ev.CallEnded(line="line1", call_id=1))
    assert state(LINE1) and not blinking(p, LINE1)
    bus.publish(ev.LineDown(line="line1", port="/dev/ttyACM0", reason="unplugged"))
    assert not state(LINE1) and not blinking(p, LINE1)
    # A hang-up after the line went down leaves it dark.
    bus.publish(ev.CallerHungUp(line="line1", call_id=1, answered=False, reason="gone"))
    assert not state(LINE1)


def test_lines_without_a_led_and_other_names(panel: tuple[Panel, list[str]]) -> None:
    p, _ = panel
    p.line_state("line3", "idle")  # only two LEDs fitted: ignored
    p.line_state("gsm", "idle")  # not lineN: the first free LED
    assert state(LINE1)
    p.line_state("line2", "ringing")
    assert blinking(p, LINE2)


def test_message_led_blinks_while_items_are_unhandled(panel: tuple[Panel, list[str]]) -> None:
    p, _ = panel
    assert not state(MESSAGE) and not blinking(p, MESSAGE)
    p.set_unhandled(2)
    assert blinking(p, MESSAGE)
    p.set_unhandled(1)  # still waiting: the blink goes on without restarting
    assert p.message is not None and p.message.pattern == "messages"
    p.set_unhandled(0)
    assert not state(MESSAGE) and not blinking(p, MESSAGE)


def test_message_led_follows_inbox_events(panel: tuple[Panel, list[str]]) -> None:
    history = pytest.importorskip("firmware_app.services.history")
    p, _ = panel
    bus = EventBus()
    p.subscribe(bus)
    bus.publish(history.InboxChanged(open_count=3))
    assert blinking(p, MESSAGE)
    bus.publish(history.InboxChanged(open_count=0))
    assert not state(MESSAGE)


def test_active_low_leds(factory: MockFactory) -> None:
    with Panel(PanelConfig(ready_led=READY, leds_active_high=False)) as p:
        p.set_ready("running")
        assert not state(READY)  # active low: on is a low pin
        p.set_ready("off")
        assert state(READY)


# -- the button ----------------------------------------------------------------------------------


def press(pin: int, seconds: float) -> None:
    button = Device.pin_factory.pin(pin)
    button.drive_low()
    time.sleep(seconds)
    button.drive_high()


def test_short_press_toggles_until_next_change(panel: tuple[Panel, list[str]]) -> None:
    _, calls = panel
    press(BUTTON, 0.08)
    assert wait_for(lambda: calls == ["next_change"])
    press(BUTTON, 0.08)
    assert wait_for(lambda: calls == ["next_change", "next_change"])


def test_long_press_toggles_until_switched_back(panel: tuple[Panel, list[str]]) -> None:
    _, calls = panel
    button = Device.pin_factory.pin(BUTTON)
    button.drive_low()
    # The long press acts while the button is still held (feedback before letting go).
    assert wait_for(lambda: calls == ["switched_back"], timeout=1.5)
    time.sleep(0.05)
    button.drive_high()
    time.sleep(0.1)
    assert calls == ["switched_back"]  # releasing after a long press adds nothing


def test_a_failing_override_does_not_break_the_button(factory: MockFactory) -> None:
    def broken(kind: str) -> None:
        raise RuntimeError("store full")

    with Panel(PanelConfig(override_button=BUTTON), toggle_override=broken) as p:
        press(BUTTON, 0.08)
        assert wait_for(lambda: p.presses == ["next_change"])
        press(BUTTON, 0.08)
        assert wait_for(lambda: p.presses == ["next_change", "next_change"])


class FakeRouting:
    def __init__(self, is_open: bool, mode: str) -> None:
        self.is_open, self.mode = is_open, mode
        self.calls: list[tuple[str, str]] = []

    def status(self) -> Any:
        return SimpleNamespace(is_open=self.is_open, mode=self.mode)

    def set_override(self, state: str, until: str = "next_change", **kw: Any) -> None:
        self.calls.append((state, until))


@pytest.mark.parametrize(
    ("is_open", "mode", "kind", "expected"),
    [
        (True, "open", "next_change", ("closed", "next_change")),
        (False, "closed", "next_change", ("open", "next_change")),
        (False, "holiday", "switched_back", ("open", "switched_back")),
        (True, "override", "next_change", ("off", "next_change")),
        (True, "override", "switched_back", ("closed", "switched_back")),
    ],
)
def test_routing_toggle(is_open: bool, mode: str, kind: Any, expected: tuple[str, str]) -> None:
    routing = FakeRouting(is_open, mode)
    routing_toggle(routing)(kind)
    assert routing.calls == [expected]


def test_button_drives_the_routing_service(factory: MockFactory, store: Any) -> None:
    from firmware_app.services.routing import RoutingService
    from firmware_app.services.settings import SettingsService

    routing = RoutingService(SettingsService(store, EventBus()), lambda: _utc_now())
    before = routing.status()
    with Panel(
        PanelConfig(override_button=BUTTON, long_press_seconds=0.3),
        toggle_override=routing_toggle(routing),
    ):
        press(BUTTON, 0.08)
        assert wait_for(lambda: routing.status().mode == "override")
        assert routing.status().is_open is not before.is_open
        press(BUTTON, 0.08)  # again: back to the schedule
        assert wait_for(lambda: routing.status().mode != "override")
        assert routing.status().is_open is before.is_open


def _utc_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# -- the modem power switch ----------------------------------------------------------------------


def test_power_cycle_pulses_the_switch(panel: tuple[Panel, list[str]]) -> None:
    p, _ = panel
    pin = Device.pin_factory.pin(POWER)
    assert not pin.state  # the modem is powered from the start
    assert p.power_cycle_modem(0.15)
    assert wait_for(lambda: pin.state)
    assert not p.power_cycle_modem(0.15)  # one at a time
    assert wait_for(lambda: not p.cycling)
    assert not pin.state
    states = [s.state for s in pin.states]
    assert states[-2:] == [True, False]
    gap = pin.states[-1].timestamp - pin.states[-2].timestamp
    assert gap >= 0.1  # off for about the pulse asked for (0.15 s), not a blip


def test_watchdog_hook_cycles_power_after_n_failed_resets(
    panel: tuple[Panel, list[str]],
) -> None:
    p, _ = panel
    pin = Device.pin_factory.pin(POWER)
    assert not p.soft_reset_failed("line1")
    assert not p.soft_reset_failed("line1")
    assert not pin.state
    assert p.soft_reset_failed("line1")  # the third failure in a row
    assert wait_for(lambda: pin.state)
    assert wait_for(lambda: not p.cycling and not pin.state)
    # The count starts again; a line that came back up forgets its failures.
    assert not p.soft_reset_failed("line1")
    bus = EventBus()
    p.subscribe(bus)
    bus.publish(ev.LineUp(line="line1", port="/dev/ttyACM0", description="analog"))
    assert not p.soft_reset_failed("line1")
    assert not p.soft_reset_failed("line1")
    assert p.soft_reset_failed("line1")


def test_power_cycles_are_spaced(factory: MockFactory) -> None:
    now = [100.0]
    with Panel(full_config(), monotonic=lambda: now[0], power_cycle_min_interval=300.0) as p:
        assert p.power_cycle_modem(0.05)
        assert wait_for(lambda: not p.cycling)
        now[0] += 10
        assert not p.power_cycle_modem(0.05)
        now[0] += 300
        assert p.power_cycle_modem(0.05)


def test_power_restored_on_close_mid_cycle(factory: MockFactory) -> None:
    p = Panel(PanelConfig(modem_power=POWER, modem_power_active_high=False))
    pin = Device.pin_factory.pin(POWER)
    assert pin.state  # active low: high is "powered"
    assert p.power_cycle_modem(300)
    assert wait_for(lambda: not pin.state)
    started = time.monotonic()
    p.close()
    assert time.monotonic() - started < 150  # the 300 s pulse was cut short, not waited for
    assert [s.state for s in pin.states][-1] is True
    p.close()  # safe twice


def test_no_switch_no_cycle(factory: MockFactory) -> None:
    with Panel(PanelConfig(ready_led=READY)) as p:
        assert not p.power_cycle_modem()
        for _ in range(5):
            assert not p.soft_reset_failed("line1")


# -- config and start-up weight ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("panel", "field", "allowed"),
    [
        ({"ready_led": 40}, "panel.ready_led", "2 to 27"),
        ({"ready_led": 1}, "panel.ready_led", "2 to 27"),
        ({"ready_led": 17, "message_led": 17}, "panel.message_led", "not used by panel.ready_led"),
        ({"line_leds": [27, 27]}, "panel.line_leds[1]", "not used"),
        ({"line_leds": ["27"]}, "panel.line_leds", "a list of integers"),
        ({"long_press_seconds": 0.1}, "panel.long_press_seconds", "0.5 to 30"),
        ({"long_press_seconds": "2"}, "panel.long_press_seconds", "a number"),
        ({"power_cycle_after": 0}, "panel.power_cycle_after", "1 to 20"),
        ({"modem_power_active_high": 1}, "panel.modem_power_active_high", "true or false"),
    ],
)
def test_bad_panel_config(panel: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"panel": panel})
    found = {p.field: p.allowed for p in exc.value.problems}
    assert field in found and allowed in found[field], found


def test_panel_config_reads_pins() -> None:
    cfg = config_from_dict(
        {"panel": {"ready_led": 17, "line_leds": [27, -1], "long_press_seconds": 3}}
    )
    assert cfg.panel.fitted
    assert cfg.panel.pins() == {"ready_led": 17, "line_leds[0]": 27}
    assert cfg.panel.long_press_seconds == 3.0
    assert not config_from_dict({}).panel.fitted


def test_gpiozero_is_not_imported_without_a_panel() -> None:
    code = (
        "import sys\n"
        "from firmware_app import daemon, config, panel\n"
        "cfg = config.MachineConfig()\n"
        "assert daemon.build_panel(cfg, None) is None\n"
        "print('gpiozero' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"


def test_daemon_builds_the_panel_and_survives_a_broken_one(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from firmware_app.daemon import build_panel

    cfg = config_from_dict({"panel": {"ready_led": READY, "override_button": BUTTON}})
    routing = FakeRouting(True, "open")
    built = build_panel(cfg, SimpleNamespace(routing=routing))
    assert built is not None
    try:
        press(BUTTON, 0.08)
        assert wait_for(lambda: routing.calls == [("closed", "next_change")])
    finally:
        built.close()
    taken = Panel(PanelConfig(ready_led=READY))  # the pin is in use: a second panel fails
    try:
        assert build_panel(cfg, None) is None
        assert "front panel left out" in caplog.text
    finally:
        taken.close()


def test_failed_reconnects_on_the_bus_cycle_the_modem_power(
    panel: tuple[Panel, list[str]],
) -> None:
    p, _ = panel
    pin = Device.pin_factory.pin(POWER)
    bus = EventBus()
    p.subscribe(bus)
    for attempt in (1, 2):
        bus.publish(ev.ReconnectFailed(line="line1", attempts=attempt, reason="no answer"))
    assert not pin.state
    bus.publish(ev.ReconnectFailed(line="line1", attempts=3, reason="no answer"))
    assert wait_for(lambda: pin.state)
    assert wait_for(lambda: not p.cycling and not pin.state)


def test_a_hung_modem_is_power_cycled_by_the_relay_and_comes_back(
    factory: MockFactory, tmp_path: Any
) -> None:
    """The whole chain on a real line: a simulated SIM800 hangs (reads, never answers); the
    line's reconnects fail one after another (ReconnectFailed); after `power_cycle_after` of
    them the panel pulses the relay. Here the relay really powers the modem: while it is
    energised the modem is off (unplugged from USB), when it drops the modem boots again,
    and the line comes back up on its own."""
    from firmware_app.modem.line import Line
    from firmware_app.modem.simulator import create
    from firmware_app.settings.lines import Lines
    from tests.modem.conftest import FAST, Recorder

    bus = EventBus()
    recorder = Recorder(bus)
    modem = create("sim800", tmp_path / "dev")
    line = Line(
        "line1",
        str(modem.path),
        bus=bus,
        settings=Lines,
        options=FAST,
        pin_file=tmp_path / "pins" / "line1.json",
    )
    # Cycles spaced a minute apart, as on the box (five minutes there): one pulse here.
    panel = Panel(full_config(power_cycle_seconds=0.5), power_cycle_min_interval=60.0)
    panel.subscribe(bus)
    relay = Device.pin_factory.pin(POWER)
    line.start()
    try:
        recorder.wait(ev.LineUp, timeout=30)
        mark = recorder.mark()
        modem.stop_answering()
        assert wait_for(lambda: relay.state, timeout=60)  # the supply is cut
        failed = recorder.of(ev.ReconnectFailed)
        assert failed and failed[-1].attempts >= 3, failed
        modem.unplug()  # no power: the modem is gone from USB
        assert wait_for(lambda: not relay.state, timeout=30)  # power back
        modem.replug()  # it boots
        up = recorder.wait(ev.LineUp, timeout=60, since=mark)
        assert up.line == "line1"
        assert [s.state for s in relay.states].count(True) == 1  # one pulse
    finally:
        line.stop()
        line.join(5)
        line.close()
        panel.close()
        modem.close()
