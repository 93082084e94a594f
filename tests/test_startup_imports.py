"""Start-up weight: a production daemon starts without the audio and fax-image libraries.

numpy, soundfile, soxr, Pillow, img2pdf and pypdfium2 take seconds to import on a Raspberry
Pi; they load with the first call, fax or greeting that needs them. The daemon runs in a
subprocess so that what other tests imported does not count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

HEAVY = ("numpy", "soundfile", "soxr", "PIL", "img2pdf", "pypdfium2")

SCRIPT = """
import socket, sys, time
from concurrent.futures import Future

from firmware_app.config import MachineConfig, StoreConfig, WebConfig
from firmware_app.daemon import Daemon
from firmware_app.sdnotify import Notifier
from firmware_app.services.greetings import GreetingsService

# Preparing the greetings is background work that renders audio (numpy) by design: left out.
def no_warm_up(self):
    done = Future()
    done.set_result(0)
    return done

GreetingsService.start = no_warm_up

s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
config = MachineConfig(
    store=StoreConfig(data_dir=sys.argv[1]), web=WebConfig(listen=f"127.0.0.1:{port}")
)
daemon = Daemon(config, notifier=Notifier(None))
daemon.start()
time.sleep(2.0)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
print("HEAVY:" + ",".join(heavy), flush=True)
"""


def test_the_daemon_starts_without_audio_or_fax_image_libraries(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "data"), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=45,
        cwd=Path(__file__).resolve().parent.parent,
    )
    lines = [x for x in run.stdout.splitlines() if x.startswith("HEAVY:")]
    assert lines, f"the daemon did not start:\n{run.stdout}\n{run.stderr[-3000:]}"
    assert lines[-1] == "HEAVY:", f"imported at start-up: {lines[-1][6:]}"
