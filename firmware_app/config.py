"""Machine config: where the modems, sound card, data and web page are (TOML).

Read once at start-up from /etc/frontdesk/frontdesk.toml (or --config). Every key has a
default; an unknown key or a wrong type is an error naming it. Owner settings (hours, staff,
greetings...) do not live here: they are in the store, edited in the web UI.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from .errors import ConfigError, FieldProblem

DEFAULT_PATH = Path("/etc/frontdesk/frontdesk.toml")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(slots=True)
class ModemConfig:
    # "auto" probes /dev/serial/by-id, /dev/ttyACM*, /dev/ttyUSB*; otherwise paths or pyserial
    # URLs; "sim:<personality>" starts a simulated modem on a pty (demo and tests).
    devices: list[str] = field(default_factory=lambda: ["auto"])
    baudrate: int = 115200


@dataclass(slots=True)
class AudioConfig:
    # ALSA device for GSM call audio through a USB sound card ("" = none).
    device: str = ""
    # PCM-over-USB-serial port of each line, in line order (line1 first): a path or URL, ""
    # or "auto" = the port detection expects for the modem's model, "none" = do not use one.
    pcm_port: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StoreConfig:
    data_dir: str = "/var/lib/frontdesk"


@dataclass(slots=True)
class WebConfig:
    listen: str = "0.0.0.0:8080"
    # The address of a reverse proxy on this machine that serves HTTPS in front of the page
    # (e.g. "127.0.0.1"); only its X-Forwarded-Proto/-For/-Host headers are believed.
    # Frontdesk itself serves plain HTTP (docs/web.md, "HTTPS").
    trusted_proxy: str = ""
    # Where people's browsers reach the page, for the links in emails (e.g.
    # "https://desk.example.com"); "" = worked out from the listen address (`page_url`).
    public_url: str = ""


# Keys that once existed, with what to do instead: named in the error, not just "unknown".
_NO_TLS = (
    "no such key: Frontdesk serves plain HTTP; for HTTPS put a reverse proxy in front and "
    "set web.trusted_proxy (docs/web.md, HTTPS)"
)
REMOVED_KEYS = {"web.tls_cert": _NO_TLS, "web.tls_key": _NO_TLS}


@dataclass(slots=True)
class LogConfig:
    level: str = "info"


@dataclass(slots=True)
class ClockConfig:
    # true: business-hours decisions wait for an NTP-synchronised clock (the Pi has no RTC).
    require_time_sync: bool = False


# BCM GPIO numbers usable on the 40-pin header; 0 or -1 means "not fitted".
PANEL_PINS = range(2, 28)


@dataclass(slots=True)
class PanelConfig:
    """The optional front panel on the Pi's GPIO header (BCM numbers; see hw/gpio.md)."""

    ready_led: int = 0
    line_leds: list[int] = field(default_factory=list)  # one per line, in line order
    message_led: int = 0
    override_button: int = 0
    modem_power: int = 0  # relay or MOSFET module switching the modem's USB 5 V
    leds_active_high: bool = True  # LED from the pin through a resistor to GND
    button_pull_up: bool = True  # button from the pin to GND, internal pull-up
    modem_power_active_high: bool = True  # true: driving the pin high cuts the modem's power
    long_press_seconds: float = 2.0
    power_cycle_seconds: float = 5.0
    power_cycle_after: int = 3  # failed soft resets of a line before its power is cycled

    def pins(self) -> dict[str, int]:
        """The fitted pins by field name (line LEDs as line_leds[N])."""
        named = {
            "ready_led": self.ready_led,
            "message_led": self.message_led,
            "override_button": self.override_button,
            "modem_power": self.modem_power,
        }
        named.update({f"line_leds[{i}]": pin for i, pin in enumerate(self.line_leds)})
        return {name: pin for name, pin in named.items() if pin > 0}

    @property
    def fitted(self) -> bool:
        return bool(self.pins())


@dataclass(slots=True)
class MachineConfig:
    modem: ModemConfig = field(default_factory=ModemConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    web: WebConfig = field(default_factory=WebConfig)
    log: LogConfig = field(default_factory=LogConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    panel: PanelConfig = field(default_factory=PanelConfig)
    # Set only by `frontdesk demo` (demo_config): a local mail sink and demo settings. Not
    # a config file key: an appliance never runs the demo's mail sink.
    demo: bool = False

    @property
    def data_dir(self) -> Path:
        return Path(self.store.data_dir)

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return parse_listen(self.web.listen)


def page_url(config: MachineConfig, hostname: str | None = None) -> str:
    """The web page's address as people's browsers reach it, for links in emails:
    `web.public_url`, else from `web.listen`: one address (127.0.0.1 in the demo) as it is;
    every address (0.0.0.0) by this machine's name, `<hostname>.local` as avahi announces
    it on the LAN (a name with a dot as it is); behind an HTTPS proxy (`web.trusted_proxy`)
    https on the proxy's usual port. `hostname`: the machine's name (default: the system's)."""
    if config.web.public_url:
        return config.web.public_url.rstrip("/")
    try:
        host, port = config.listen_host_port
    except ValueError:
        host, port = "0.0.0.0", 8080  # noqa: S104 - only a name for links
    if config.web.trusted_proxy:
        scheme, port = "https", 443
    else:
        scheme = "http"
    if host in ("0.0.0.0", "::") or config.web.trusted_proxy:  # noqa: S104
        import socket

        name = (socket.gethostname() if hostname is None else hostname).strip().lower()
        name = name or "frontdesk"
        host = name if "." in name else f"{name}.local"
    elif ":" in host:
        host = f"[{host}]"  # an IPv6 address
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(text)
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - the appliance serves the LAN


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}


# Fields of MachineConfig that only code sets, never a config file.
CODE_ONLY = {"demo"}


def _build(cls: type, data: dict[str, Any], prefix: str, problems: list[FieldProblem]) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)} - (CODE_ONLY if cls is MachineConfig else set())
    for key in data:
        if key not in known:
            allowed = REMOVED_KEYS.get(prefix + key) or "one of: " + ", ".join(sorted(known))
            problems.append(FieldProblem(prefix + key, data[key], allowed))
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data or f.name not in known:
            continue
        value, hint, name = data[f.name], hints[f.name], prefix + f.name
        if is_dataclass(hint):
            if isinstance(value, dict):
                kwargs[f.name] = _build(hint, value, name + ".", problems)  # type: ignore[arg-type]
            else:
                problems.append(FieldProblem(name, value, f"a [{name}] table"))
        elif hint == list[str]:
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                kwargs[f.name] = list(value)
            else:
                problems.append(FieldProblem(name, value, "a list of strings"))
        elif hint == list[int]:
            if isinstance(value, list) and all(type(v) is int for v in value):
                kwargs[f.name] = list(value)
            else:
                problems.append(FieldProblem(name, value, "a list of integers"))
        elif hint is float and type(value) in (int, float):
            kwargs[f.name] = float(value)
        elif type(value) is hint:
            kwargs[f.name] = value
        else:
            problems.append(FieldProblem(name, value, _TYPE_NAMES.get(hint, str(hint))))
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], source: str = "config") -> MachineConfig:
    problems: list[FieldProblem] = []
    cfg: MachineConfig = _build(MachineConfig, data, "", problems)
    if not problems:
        problems.extend(_check(cfg))
    if problems:
        raise ConfigError(problems, source)
    return cfg


def _check(cfg: MachineConfig) -> list[FieldProblem]:
    out = []
    if cfg.log.level.lower() not in LOG_LEVELS:
        out.append(FieldProblem("log.level", cfg.log.level, "one of " + ", ".join(LOG_LEVELS)))
    try:
        parse_listen(cfg.web.listen)
    except ValueError:
        out.append(FieldProblem("web.listen", cfg.web.listen, "host:port, e.g. 0.0.0.0:8080"))
    if cfg.web.trusted_proxy:
        try:
            ipaddress.ip_address(cfg.web.trusted_proxy)
        except ValueError:
            out.append(
                FieldProblem(
                    "web.trusted_proxy",
                    cfg.web.trusted_proxy,
                    'the IP address the proxy connects from, e.g. "127.0.0.1", or ""',
                )
            )
    url = cfg.web.public_url
    if url and (
        not url.startswith(("http://", "https://"))
        or len(url) > 200
        or any(c.isspace() or ord(c) < 32 for c in url)
        or len(url.split("://", 1)[1].strip("/")) == 0
    ):
        out.append(
            FieldProblem(
                "web.public_url",
                url,
                'the address people open, e.g. "http://frontdesk.local:8080", or "" to work '
                "it out from web.listen",
            )
        )
    if not cfg.modem.devices:
        out.append(FieldProblem("modem.devices", [], 'at least one device, or ["auto"]'))
    if not 300 <= cfg.modem.baudrate <= 921600:
        out.append(FieldProblem("modem.baudrate", cfg.modem.baudrate, "300 to 921600"))
    if not cfg.store.data_dir:
        out.append(FieldProblem("store.data_dir", "", "a folder path"))
    for i, port in enumerate(cfg.audio.pcm_port):
        if port != port.strip() or "\n" in port:
            out.append(FieldProblem(f"audio.pcm_port[{i}]", port, 'a port path, "auto" or "none"'))
    out.extend(_check_panel(cfg.panel))
    return out


def _check_panel(panel: PanelConfig) -> list[FieldProblem]:
    out = []
    allowed = "a BCM GPIO number from 2 to 27, or 0 for not fitted"
    named = {
        "ready_led": panel.ready_led,
        "message_led": panel.message_led,
        "override_button": panel.override_button,
        "modem_power": panel.modem_power,
    }
    named.update({f"line_leds[{i}]": pin for i, pin in enumerate(panel.line_leds)})
    seen: dict[int, str] = {}
    for name, pin in named.items():
        if pin in (0, -1):
            continue
        if pin not in PANEL_PINS:
            out.append(FieldProblem(f"panel.{name}", pin, allowed))
        elif pin in seen:
            out.append(FieldProblem(f"panel.{name}", pin, f"a pin not used by panel.{seen[pin]}"))
        else:
            seen[pin] = name
    if len(panel.line_leds) > 8:
        out.append(FieldProblem("panel.line_leds", panel.line_leds, "at most 8 line LEDs"))
    if not 0.5 <= panel.long_press_seconds <= 30:
        out.append(
            FieldProblem("panel.long_press_seconds", panel.long_press_seconds, "0.5 to 30 seconds")
        )
    if not 1 <= panel.power_cycle_seconds <= 60:
        out.append(
            FieldProblem("panel.power_cycle_seconds", panel.power_cycle_seconds, "1 to 60 seconds")
        )
    if not 1 <= panel.power_cycle_after <= 20:
        out.append(FieldProblem("panel.power_cycle_after", panel.power_cycle_after, "1 to 20"))
    return out


def load_config(path: Path | str | None = None) -> MachineConfig:
    """Read the machine config; a missing default file means all defaults."""
    p = Path(path) if path is not None else DEFAULT_PATH
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        if path is None:
            return MachineConfig()
        raise ConfigError([FieldProblem("config", str(p), "an existing file")], str(p)) from None
    except OSError as exc:
        raise ConfigError(
            [FieldProblem("config", str(p), f"a readable file ({exc.strerror})")], str(p)
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([FieldProblem("config", str(p), f"valid TOML ({exc})")], str(p)) from None
    return config_from_dict(data, str(p))


def demo_config(data_dir: Path) -> MachineConfig:
    """The embedded default `frontdesk demo` runs on: simulated lines, local folder, loopback."""
    return MachineConfig(
        # The GSM line is a SIM7600: its call audio is PCM over its USB audio port, which
        # the simulator serves (a SIM800 needs a sound card), so demo calls on it are heard.
        modem=ModemConfig(devices=["sim:usr5637", "sim:sim7600"]),
        store=StoreConfig(data_dir=str(data_dir)),
        web=WebConfig(listen="127.0.0.1:8080"),
        demo=True,
    )
