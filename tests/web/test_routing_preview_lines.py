"""The call preview and `frontdesk routing explain` against a running daemon with a simulated
analog modem (USR5637) and a simulated GSM modem (SIM7600 with PCM audio): every preview is
the plan a live call gets (`CallService.plan_for`), with the contacts' VIP and blocked flags
and each line's capabilities as they are now; the Hours preview page lists the real lines,
and the Call rules page the flagged contacts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_app.config import AudioConfig, MachineConfig, ModemConfig, StoreConfig
from firmware_app.daemon import Daemon
from firmware_app.modem.events import IncomingCall
from firmware_app.modem.simulator import create
from firmware_app.routing import ForwardTo, Reject
from firmware_app.sdnotify import Notifier
from firmware_app.services import Services
from firmware_app.services.contacts import Draft
from firmware_app.settings.routing import StaffMember
from web_ui import create_app

from .conftest import Owner

pytestmark = pytest.mark.timeout(90)

VIP, BLOCKED, OTHER = "+441632960999", "+441632960555", "+441632960123"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Services]:
    analog = create("usr5637", tmp_path / "dev-a")
    gsm = create("sim7600", tmp_path / "dev-g")
    audio = gsm.pcm_audio(speed=4.0)
    config = MachineConfig(
        modem=ModemConfig(devices=[str(analog.path), str(gsm.path)]),
        audio=AudioConfig(pcm_port=["none", str(audio.link)]),  # line1 analog, line2 GSM
        store=StoreConfig(data_dir=str(tmp_path / "data")),
    )
    daemon = Daemon(config, notifier=Notifier(None), web=False)
    try:
        services = daemon.start()
        s = services.settings.get()
        s.business.timezone = "Europe/London"
        s.business.country = "GB"
        s.staff.members = [StaffMember(name="Anna", mobile="+447700900001")]
        s = s.replace("rules", dataclasses.replace(s.rules, office_phone=False))
        services.settings.save(s)
        services.contacts.save(Draft(name="Vera", numbers=((VIP, "mobile"),), vip=True))
        services.contacts.save(Draft(name="Spam Co", numbers=((BLOCKED, "work"),), blocked=True))
        lines = services.extra["lines"]
        deadline = time.monotonic() + 30
        while not (
            len(lines.lines()) == 2
            and all(line.capabilities is not None for line in lines.lines())
            and all(st.state == "idle" for st in lines.statuses())
        ):
            assert time.monotonic() < deadline, lines.statuses()
            time.sleep(0.05)
        yield services
    finally:
        daemon.shutdown()
        analog.close()
        gsm.close()


def in_a_minute(services: Services) -> str:
    """A local time the override covers (it starts now; previews take whole minutes)."""
    local = services.routing.local_now() + dt.timedelta(minutes=1)
    return local.strftime("%Y-%m-%d %H:%M")


def test_preview_is_the_plan_a_live_call_gets(box: Services) -> None:
    services = box
    calls = services.extra["calls"]
    lines = {line.capabilities.kind: line for line in services.extra["lines"].lines()}
    assert set(lines) == {"analog", "gsm"}
    keys = [c.key for c in services.routing.line_choices() if c.real]
    assert keys == [line.name for line in services.extra["lines"].lines()]

    compared = 0
    for state in ("open", "closed"):
        services.routing.set_override(state, "switched_back")
        at = in_a_minute(services)
        for kind, line in lines.items():
            for number in (VIP, BLOCKED, OTHER, ""):
                preview, choice = services.routing.preview_on(at, number, line.name)
                event = IncomingCall(
                    line=line.name,
                    call_id=1,
                    number=number or None,
                    name=None,
                    validity="ok" if number else "withheld",
                )
                live = calls.plan_for(event, line)
                assert live is not None
                where = f"{state}, {kind}, {number or 'withheld'}"
                assert choice.caps == calls.capabilities(line), where
                assert preview.steps == live.steps, where
                assert preview.rule == live.rule, where
                compared += 1
    assert compared == 16

    # What the old preview got wrong: a VIP contact on the analog line of a box with a GSM
    # line is put through (called on the GSM line), a blocked contact is rejected.
    services.routing.set_override("closed", "switched_back")
    at = in_a_minute(services)
    vip = services.routing.preview(at, VIP, lines["analog"].name)
    assert vip.rule == "allow" and "a contact marked VIP" in vip.explanation
    (forward,) = [s for s in vip.steps if isinstance(s, ForwardTo)]
    assert forward.method == "dial_out" and [p.name for p in forward.people] == ["Anna"]
    blocked = services.routing.preview(at, BLOCKED, lines["gsm"].name)
    assert blocked.rule == "block" and isinstance(blocked.steps[0], Reject)
    assert "a blocked contact" in blocked.explanation

    explained = Daemon(services.config).control_handlers(services)["routing.explain"](
        at=at, number=VIP
    )
    assert explained["line_key"] == lines["analog"].name  # the first line by default
    assert explained["line"].startswith(f"{lines['analog'].name}: phone line")
    assert "calls staff on a mobile line" in explained["line"]
    assert explained["rule"] == "allow"


def test_pages_list_the_real_lines_and_the_flagged_contacts(box: Services) -> None:
    services = box
    app = create_app(services, {"TESTING": True})
    owner = Owner(app.test_client(), services)
    assert owner.setup().status_code == 302
    analog = next(
        line for line in services.extra["lines"].lines() if line.capabilities.kind == "analog"
    )
    services.routing.set_override("closed", "switched_back")
    query = {"at": in_a_minute(services).replace(" ", "T"), "caller": VIP, "line": analog.name}
    text = owner.client.get("/hours/preview", query_string=query).get_data(as_text=True)
    assert """<optgroup label="This box's lines">""" in text
    assert re.search(rf'<option value="{analog.name}" selected>{analog.name}: phone line', text)
    assert "Other kinds of line" in text
    words = " ".join(re.sub(r"<[^>]+>", " ", text).split())
    assert "Allow list: +441632960999 matches a contact marked VIP" in words
    assert "Call Anna for 35 s" in words
    assert f"On {analog.name}: phone line" in words

    rules = owner.client.get("/hours/rules/").get_data(as_text=True)
    words = " ".join(re.sub(r"<[^>]+>", " ", rules).split())
    assert "Contacts marked VIP" in words and "Vera +44 1632 960999" in words
    assert "Blocked contacts" in words and "Spam Co +44 1632 960555" in words
    vera = services.contacts.by_number(VIP)
    assert vera is not None and f'href="/contacts/{vera.id}"' in rules


def test_routing_explain_through_the_running_daemon(
    box: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`frontdesk routing explain` asks the running daemon over its control socket: the real
    lines by name, and bad input named field by field with exit code 2, as without one."""
    from firmware_app.cli import main

    services = box
    config = tmp_path / "fd.toml"
    config.write_text(f'[store]\ndata_dir = "{services.config.data_dir}"\n')
    analog = next(
        line for line in services.extra["lines"].lines() if line.capabilities.kind == "analog"
    )
    at = in_a_minute(services)
    assert main(["routing", "explain", "-c", str(config), "--number", OTHER, "--at", at]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"If {OTHER} calls at {at} on {analog.name}: phone line")

    assert main(["routing", "explain", "-c", str(config), "--at", "24/12"]) == 2
    err = capsys.readouterr().err
    assert "the call to explain is not valid" in err
    assert "at: '24/12' is not allowed; expected a date and time as YYYY-MM-DD HH:MM" in err
    args = ["routing", "explain", "-c", str(config), "--at", at, "--line", "isdn"]
    assert main(args) == 2
    assert "line: 'isdn' is not allowed; expected one of" in capsys.readouterr().err
