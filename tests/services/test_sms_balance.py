"""The SIM card balance (USSD): every GSM line checked on a schedule and kept per line, a
low-balance incident per line (resolved once topped up), a check with no answer; the Lines
page shows each GSM line's balance and runs a check, the Messages page too. Simulated SIM800
modems on ptys, real lines."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from firmware_app.events import EventBus
from firmware_app.modem import events as ev
from firmware_app.modem.line import Line
from firmware_app.modem.simulator import SimulatedModem, create
from firmware_app.services import Services
from firmware_app.services.history import HistoryService
from firmware_app.services.lines import LinesService
from firmware_app.services.scheduler import Scheduler
from firmware_app.services.sms import SmsService
from firmware_app.store import Store
from tests.modem.test_lines_service import with_lines  # noqa: F401 - fixture
from tests.services.test_sms_intake import FAST_LINE, FAST_SMS, T0, Box, FakeAlerts, Lines
from tests.web.conftest import (  # noqa: F401 - fixtures
    Owner,
    app,
    client,
    fast_hash,
    logged_in,
    owner,
    services,
)

pytestmark = pytest.mark.timeout(60)


def wait(pred: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> object:
        return self.now


class TwoSims:
    """Two SIM800s on ptys, a line on each, one SMS service."""

    def __init__(self, tmp: Path) -> None:
        self.modems: list[SimulatedModem] = [create("sim800", tmp / f"dev{i}") for i in (1, 2)]
        self.bus = EventBus()
        self.store = Store(tmp / "data")
        self.box = Box()
        self.alerts = FakeAlerts()
        self.clock = Clock()
        up: set[str] = set()
        ready = threading.Event()

        def line_up(e: ev.LineUp) -> None:
            up.add(e.line)
            if len(up) == 2:
                ready.set()

        self.bus.subscribe(ev.LineUp, line_up)
        lines = Lines()
        for i, modem in enumerate(self.modems, 1):
            lines.items.append(Line(f"line{i}", str(modem.path), bus=self.bus, options=FAST_LINE))
        self.lines = lines.items
        self.sms = SmsService(
            self.store,
            self.bus,
            self.box,
            HistoryService(self.store, self.bus),
            lines,
            alerts=self.alerts,
            clock=self.clock,  # type: ignore[arg-type]
            options=replace(FAST_SMS, ussd_timeout=1.0),
        )
        self.sms.subscribe()
        self.sms.worker.start()
        for line in self.lines:
            line.start()
        assert ready.wait(15), "the lines did not come up"

    def close(self) -> None:
        for line in self.lines:
            line.stop()
            line.join(3)
            line.close()
        self.sms.worker.stop()
        self.sms.worker.join(5)
        self.sms.close()
        self.store.close()
        for modem in self.modems:
            modem.close()


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[TwoSims]:
    rig = TwoSims(tmp_path)
    yield rig
    rig.close()


def test_every_line_is_checked_on_schedule_and_kept_per_line(sims: TwoSims) -> None:
    sims.box.sms(ussd_interval_hours=6, low_balance=5.0)
    sims.modems[0].set_ussd_reply("Balance: EUR 4,20. Valid until 31/12/2026")
    sims.modems[1].set_ussd_reply("Your balance is 12.34 EUR.")
    scheduler = Scheduler(clock=sims.clock)  # type: ignore[arg-type]
    sims.sms.schedule(scheduler)
    assert [name for name, _ in scheduler.describe()] == ["balance check"]
    scheduler.run_pending()
    assert sims.sms.balance() is None  # not due yet
    sims.clock.now = T0 + timedelta(hours=6, seconds=1)
    scheduler.run_pending()
    wait(lambda: sims.sms.balance("line1") is not None and sims.sms.balance("line2") is not None)
    one, two = sims.sms.balance("line1"), sims.sms.balance("line2")
    assert one is not None and (one.line, one.amount, one.error) == ("line1", 4.2, "")
    assert two is not None and (two.line, two.amount, two.text) == (
        "line2",
        12.34,
        "Your balance is 12.34 EUR.",
    )
    assert [m.ussd_requests for m in sims.modems] == [["*100#"], ["*100#"]]
    assert sims.sms.low_balance(one) and not sims.sms.low_balance(two)
    wait(lambda: "balance:line2" in sims.alerts.resolved and sims.alerts.raised != [])
    assert [key for key, *_ in sims.alerts.raised] == ["balance:line1"]
    assert "less than 5" in sims.alerts.raised[0][2]
    assert "balance:line2" in sims.alerts.resolved
    # Topped up: the next check of line 1 resolves its incident.
    sims.modems[0].set_ussd_reply("Balance: EUR 24,20")
    sims.sms.check_balance("line1")
    wait(lambda: "balance:line1" in sims.alerts.resolved)
    assert sims.sms.balance("line1").amount == 24.2  # type: ignore[union-attr]
    assert sims.sms.balance("line2") == two  # untouched


def test_a_check_without_an_answer_says_so(sims: TwoSims) -> None:
    """The modem takes the request (OK) and the network never answers: the check is pending
    (asking again sends nothing more) until `ussd_timeout`, then says so."""
    sims.modems[1].set_ussd_reply(None)
    sims.sms.check_balance("line2")
    wait(lambda: sims.sms.balance_pending("line2") and sims.modems[1].ussd_requests != [])
    sims.sms.check_balance("line2")
    sims.sms.check_balance("line1")  # the other line is asked meanwhile
    wait(lambda: sims.sms.balance("line1") is not None)
    assert sims.sms.balance_pending("line2") and sims.modems[1].ussd_requests == ["*100#"]
    sims.clock.now += timedelta(seconds=2)  # past the 1 s this service waits
    wait(lambda: sims.sms.balance("line2") is not None)
    got = sims.sms.balance("line2")
    assert got is not None and got.error == "no answer from the network" and got.amount is None
    assert not sims.sms.balance_pending("line2")
    assert sims.modems[1].ussd_requests == ["*100#"]
    assert sims.sms.balance("line1").amount == 12.34  # type: ignore[union-attr]


# -- the Lines and Messages pages ------------------------------------------------------------


@pytest.fixture
def sms_on_lines(
    services: Services,  # noqa: F811
    with_lines: LinesService,  # noqa: F811
) -> Iterator[SmsService]:
    sms = SmsService(
        services.store,
        services.bus,
        services.settings.get,
        services.history,
        with_lines,
        alerts=services.alerts,
        options=FAST_SMS,
    )
    sms.subscribe()
    sms.worker.start()
    services.sms = sms
    yield sms
    sms.worker.stop()
    sms.worker.join(5)
    sms.close()


def test_the_lines_page_shows_and_runs_the_balance_check(
    logged_in: Owner,  # noqa: F811
    services: Services,  # noqa: F811
    sms_on_lines: SmsService,
) -> None:
    settings = services.settings.get()
    services.settings.save(settings.replace("sms", replace(settings.sms, low_balance=20.0)))
    page = logged_in.client.get("/lines/").get_data(as_text=True)
    assert page.count("Check balance (*100#)") == 1  # the GSM line only
    assert 'action="/lines/line2/balance"' in page and "Not checked yet" in page
    assert "Checked only when asked" in page
    response = logged_in.post("/lines/line2/balance", token_from="/lines/")
    assert response.status_code == 302 and response.headers["Location"].endswith("#line-line2")
    # The answer is kept first, then the low-balance incident is opened.
    wait(lambda: bool(services.alerts.open_incidents()))
    fragment = logged_in.client.get("/lines/list").get_data(as_text=True)
    assert "Your balance is 12.34 EUR." in fragment  # the simulator's network
    assert '<span class="badge badge-warning">Low</span>' in fragment
    assert "the warning is for less than 20" in fragment
    (incident,) = services.alerts.open_incidents()
    assert incident.key == "balance:line2" and "low on credit" in incident.title
    messages = logged_in.client.get("/messages/").get_data(as_text=True)
    assert "Your balance is 12.34 EUR." in messages and 'href="/lines/"' in messages
    # Not a GSM line, or no code: said in words, nothing asked.
    wrong = logged_in.post("/lines/line1/balance", token_from="/lines/")
    text = logged_in.client.get(wrong.headers["Location"]).get_data(as_text=True)
    assert "line1 is not a mobile (GSM) line" in text
    services.settings.save(
        services.settings.get().replace("sms", replace(services.settings.get().sms, ussd_code=""))
    )
    none = logged_in.post("/lines/line2/balance", token_from="/lines/")
    text = logged_in.client.get(none.headers["Location"]).get_data(as_text=True)
    assert "No balance check code is set" in text
