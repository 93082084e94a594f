"""Start-up weight: a production daemon starts without the audio and fax-image libraries.

numpy, soundfile, soxr, Pillow, img2pdf and pypdfium2 take seconds to import on a Raspberry
Pi and about 12 MB each time; they load with the first call, fax or upload that needs them.
Greetings are spoken at start-up in a child process, so the daemon stays free of them even
once every greeting is ready. The `holidays` package (about 10 MB) is left to a child too:
the daemon keeps only the tables, even after the country changes and a holiday is looked
up. Mail code (smtplib, email.policy with its header registry, the SMTP session) loads when
an email is built or sent: the outbox is on disk, so nothing waits on it. The fax engine,
contacts import/export, calendar files and ctypes load with their first use (LAZY), and
so does the web page (Flask, werkzeug with ssl, jinja2, wtforms, the pages): its first
request builds it, and the next ones are served by the same app. The daemon runs in a
subprocess so that what other tests imported does not count.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

HEAVY = ("numpy", "soundfile", "soxr", "PIL", "img2pdf", "pypdfium2", "holidays")
# Modules (full names) an idle daemon has no use for until there is mail to build or send.
LAZY = (
    "smtplib",
    "email.policy",
    "email.headerregistry",
    "firmware_app.services.notify.smtp",
    # the T.30 engine and the Class 1 driver: with the first fax
    "firmware_app.protocol.t30",
    "firmware_app.fax.class1",
    "firmware_app.fax.pipe",
    # contacts import/export and calendar files: with the first page that needs them
    "firmware_app.contacts_io",
    "web_ui.ical",
    # the kernel clock check (adjtimex): with the first check
    "ctypes",
)
# The web page: with its first request.
WEB = ("flask", "werkzeug", "werkzeug.security", "jinja2", "wtforms", "ssl", "web_ui")

SCRIPT = """
import socket, sys, time

from firmware_app.config import MachineConfig, StoreConfig, WebConfig
from firmware_app.daemon import Daemon
from firmware_app.sdnotify import Notifier

s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
config = MachineConfig(
    store=StoreConfig(data_dir=sys.argv[1]), web=WebConfig(listen=f"127.0.0.1:{port}")
)
daemon = Daemon(config, notifier=Notifier(None))
services = daemon.start()
print("SPOKEN:", services.greetings.prepared.result(timeout=30), flush=True)
# A public holiday of a newly chosen country and region closes the office all the same.
business = {"name": "Shop", "timezone": "Europe/Berlin", "country": "DE", "subdivision": "BY"}
services.settings.save_section("business", business)
plan = services.routing.preview("2026-01-06 10:00")  # Epiphany: Bavaria only
print("PLAN:", plan.mode, plan.status.reason, flush=True)
print("IN-PROCESS:", services.extra["holidays"].in_process, flush=True)
time.sleep(1.0)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
print("HEAVY:" + ",".join(heavy), flush=True)
print("LAZY:" + ",".join(sorted(set(sys.modules) & set(sys.argv[3].split(",")))), flush=True)
# The first email built loads what it needs.
from firmware_app.services.notify.mime import Sender, build_message
doc = {"message_id": "<1@x>", "created": "2026-11-20T12:00:00+00:00", "to": ["a@example.com"],
       "subject": "s", "text": "t", "html": "<p>t</p>", "attachments": []}
build_message(doc, Sender(name="Shop", address="shop@example.com"), services.store.media)
print("BUILT:" + ",".join(sorted(set(sys.modules) & set(sys.argv[3].split(",")))), flush=True)
web = set(sys.argv[4].split(","))
print("WEB-IDLE:" + ",".join(sorted(set(sys.modules) & web)), flush=True)
import urllib.request
for path in ("/healthz", "/login"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as answer:
        print("PAGE:", path, answer.status, flush=True)
print("WEB-USED:" + ",".join(sorted(set(sys.modules) & web)), flush=True)
print("APP-BUILT:", daemon.web.app.built, flush=True)
"""


def test_the_daemon_starts_without_audio_fax_image_or_holiday_libraries(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(tmp_path / "data"),
            ",".join(HEAVY),
            ",".join(LAZY),
            ",".join(WEB),
        ],
        capture_output=True,
        text=True,
        timeout=45,
        cwd=Path(__file__).resolve().parent.parent,
    )
    lines = [x for x in run.stdout.splitlines() if x.startswith("HEAVY:")]
    assert lines, f"the daemon did not start:\n{run.stdout}\n{run.stderr[-3000:]}"
    assert lines[-1] == "HEAVY:", f"imported at start-up: {lines[-1][6:]}"
    assert "LAZY:\n" in run.stdout, f"mail code imported at start-up:\n{run.stdout}"
    assert "BUILT:email.headerregistry,email.policy" in run.stdout, run.stderr[-3000:]
    if shutil.which("espeak-ng"):  # the greetings were spoken all the same (in a child)
        spoken = [x for x in run.stdout.splitlines() if x.startswith("SPOKEN:")]
        assert spoken and int(spoken[0].split()[1]) > 0, run.stderr[-3000:]
    assert "PLAN: holiday Heilige Drei Könige" in run.stdout, run.stderr[-3000:]
    assert "IN-PROCESS: 0" in run.stdout
    # The web page loads with its first request, and then serves every page.
    assert "WEB-IDLE:\n" in run.stdout, f"web page loaded at start-up:\n{run.stdout}"
    assert "PAGE: /healthz 200" in run.stdout and "PAGE: /login 200" in run.stdout
    assert "WEB-USED:" + ",".join(sorted(WEB)) in run.stdout, run.stdout
    assert "APP-BUILT: True" in run.stdout
