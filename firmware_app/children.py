"""Short-lived child processes the daemon runs so that heavy libraries never load into it
(speech in firmware_app.media.speech, holiday tables in firmware_app.holiday_calendar): the
two things both sides of that pattern need. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill a child started with `start_new_session=True` and anything it started."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


def lower_priority() -> None:
    """In the child: let a line's audio and the web page come first. Under
    systemd/frontdesk.service the system-call filter (~@resources) refuses this with EPERM
    and the child keeps the daemon's priority."""
    with contextlib.suppress(OSError):
        os.nice(10)
