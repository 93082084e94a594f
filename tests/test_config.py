"""Machine config: defaults, strict keys and types, the shipped example."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_app.config import MachineConfig, config_from_dict, demo_config, load_config, page_url
from firmware_app.errors import ConfigError

EXAMPLE = Path(__file__).parents[1] / "firmware_app" / "frontdesk.example.toml"


def test_example_file_parses_to_the_defaults() -> None:
    assert load_config(EXAMPLE) == MachineConfig()


def test_missing_default_file_means_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("firmware_app.config.DEFAULT_PATH", tmp_path / "absent.toml")
    assert load_config() == MachineConfig()


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="an existing file"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("data", "field", "allowed"),
    [
        ({"modem": {"device": "auto"}}, "modem.device", "one of: baudrate, devices"),
        ({"colour": "blue"}, "colour", "one of"),
        ({"modem": {"devices": "auto"}}, "modem.devices", "a list of strings"),
        ({"modem": {"baudrate": "fast"}}, "modem.baudrate", "an integer"),
        ({"modem": {"baudrate": 50}}, "modem.baudrate", "300 to 921600"),
        ({"web": {"listen": "8080"}}, "web.listen", "host:port"),
        ({"web": {"tls_cert": "/c.pem"}}, "web.tls_cert", "reverse proxy"),
        ({"web": {"tls_key": "/k.pem"}}, "web.tls_key", "web.trusted_proxy"),
        ({"web": {"trusted_proxy": "localhost"}}, "web.trusted_proxy", "IP address"),
        ({"web": {"trusted_proxy": "*"}}, "web.trusted_proxy", "IP address"),
        ({"log": {"level": "loud"}}, "log.level", "debug, info"),
        ({"log": "info"}, "log", "a [log] table"),
        ({"demo": True}, "demo", "one of: audio, clock, log, modem, panel, store, web"),
        ({"web": {"public_url": "frontdesk.local"}}, "web.public_url", "the address people"),
        ({"web": {"public_url": "http://"}}, "web.public_url", "the address people"),
        ({"web": {"public_url": "http://a b"}}, "web.public_url", "the address people"),
    ],
)
def test_bad_values_name_the_key(data: dict, field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_from_dict(data)
    found = {p.field: p.allowed for p in exc.value.problems}
    assert field in found and allowed in found[field], found


def test_bad_toml(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[web\nlisten=")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_config(p)


def test_values_are_read(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(
        '[modem]\ndevices = ["/dev/ttyACM0", "sim:sim800"]\n[web]\nlisten = "[::1]:9000"\n'
        '[store]\ndata_dir = "/srv/fd"\n'
    )
    cfg = load_config(p)
    assert cfg.modem.devices == ["/dev/ttyACM0", "sim:sim800"]
    assert cfg.listen_host_port == ("::1", 9000)
    assert cfg.data_dir == Path("/srv/fd")


@pytest.mark.parametrize(
    ("web", "url"),
    [
        ({}, "http://frontdesk.local:8080"),  # the image's name, announced by avahi
        ({"listen": "0.0.0.0:80"}, "http://frontdesk.local"),
        ({"listen": "[::]:8080"}, "http://frontdesk.local:8080"),
        ({"listen": "127.0.0.1:8123"}, "http://127.0.0.1:8123"),  # the demo
        ({"listen": "192.0.2.7:8080"}, "http://192.0.2.7:8080"),
        ({"listen": "[::1]:9000"}, "http://[::1]:9000"),
        ({"listen": "127.0.0.1:8080", "trusted_proxy": "127.0.0.1"}, "https://frontdesk.local"),
        ({"public_url": "https://desk.example.com/"}, "https://desk.example.com"),
    ],
)
def test_the_page_url_is_where_browsers_reach_the_box(web: dict, url: str) -> None:
    cfg = config_from_dict({"web": web})
    assert page_url(cfg, hostname="frontdesk") == url


def test_the_page_url_uses_the_machines_name() -> None:
    assert page_url(MachineConfig(), hostname="Office-Pi") == "http://office-pi.local:8080"
    assert page_url(MachineConfig(), hostname="desk.example.com") == (
        "http://desk.example.com:8080"
    )
    demo = demo_config(Path("/tmp/x"))
    demo.web.listen = "127.0.0.1:8099"
    assert page_url(demo, hostname="frontdesk") == "http://127.0.0.1:8099"
