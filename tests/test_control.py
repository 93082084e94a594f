"""The control socket through a real Unix socket: requests, errors, the diagnostics commands,
and a stop that wakes the server at once (it does not poll)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_app.control import ControlClient, ControlServer
from firmware_app.errors import FieldProblem, FrontdeskError, ValidationError


class Held:
    def __init__(self) -> None:
        self.payload = bytearray(1000)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    srv = ControlServer(tmp_path, {"echo": lambda text: text.upper()})
    srv.start()
    yield srv
    srv.stop()
    assert srv.join(10)
    srv.close()
    if tracemalloc.is_tracing():
        tracemalloc.stop()


def test_requests_and_errors(server: ControlServer, tmp_path: Path) -> None:
    client = ControlClient(tmp_path, timeout=10)
    assert client.call("echo", text="hi") == "HI"
    with pytest.raises(FrontdeskError, match="unknown command"):
        client.call("nope")
    with pytest.raises(FrontdeskError):
        client.call("echo")  # a missing argument is the caller's mistake, not a crash


def test_bad_input_comes_back_field_by_field(tmp_path: Path) -> None:
    """A handler's ValidationError reaches the client as one (the CLI exits with 2 and
    names each field), not as a bare failure."""

    def explain(at: str) -> None:
        raise ValidationError(
            [FieldProblem("at", at, "a date and time as YYYY-MM-DD HH:MM")], "preview"
        )

    srv = ControlServer(tmp_path, {"routing.explain": explain})
    srv.start()
    try:
        with pytest.raises(ValidationError) as err:
            ControlClient(tmp_path, timeout=10).call("routing.explain", at="24/12")
    finally:
        srv.stop()
        assert srv.join(10)
        srv.close()
    (problem,) = err.value.problems
    assert (problem.field, problem.value) == ("at", "24/12")
    assert problem.allowed == "a date and time as YYYY-MM-DD HH:MM"
    assert err.value.context == "preview"


def test_debug_threads_names_each_thread_with_its_cpu(
    server: ControlServer, tmp_path: Path
) -> None:
    threads = ControlClient(tmp_path, timeout=10).call("debug.threads")
    names = {t["name"] for t in threads}
    assert "control" in names
    assert all(t["cpu_s"] is None or t["cpu_s"] >= 0 for t in threads)


def test_debug_memory_starts_tracing_then_reports_what_grew(
    server: ControlServer, tmp_path: Path
) -> None:
    client = ControlClient(tmp_path, timeout=60)
    first = client.call("debug.memory")
    assert str(first["tracing"]).startswith("started")
    assert first["rss_kb"] > 0 and first["mapped_kb"]
    assert client.call("debug.memory", top=5)["tracing"] is True
    kept = [Held() for _ in range(2000)]  # about 2 MB more, made in this file
    report = client.call("debug.memory", top=5)
    assert any(__file__ in site["where"][0] for site in report["grown"])
    assert any(name == "Held" and more >= 2000 for name, more in report["types_grown"])
    assert client.call("debug.memory", stop=True) == {"tracing": False}
    assert not tracemalloc.is_tracing()
    del kept


def test_stop_wakes_the_server_without_waiting_for_a_poll(tmp_path: Path) -> None:
    srv = ControlServer(tmp_path, {})
    srv.start()
    assert ControlClient(tmp_path, timeout=10).call("debug.threads")
    srv.stop()
    assert srv.join(10)  # woken by the pipe; a poll-free server would otherwise wait 10 s
    srv.close()
    assert not (tmp_path / "control.sock").exists()
