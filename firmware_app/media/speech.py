"""Speech: text to 8 kHz telephone audio with espeak-ng, in this process or a short-lived one.

`Tts.speak` runs espeak-ng (a subprocess, no shell, bounded by a timeout), resamples its
22.05 kHz WAV to 8 kHz and normalises it. That needs numpy, soundfile and soxr (about 12 MB
resident, and seconds to import on a Raspberry Pi), so work that nobody waits for, such as
preparing every greeting at start-up or after a settings change, runs in a child process
instead: `SpeechRenderer.render` starts `python -m firmware_app.media.speech`, sends it the
texts as JSON on stdin and reads back one WAV per text on stdout. The child exits when it is
done, and with it the libraries; the daemon keeps only the WAV bytes, which it stores.

Importing this module costs only the standard library: the audio libraries load inside the
functions that need them.

Child protocol (stdin, one JSON document):
    {"program": "espeak-ng", "timeout": 30.0,
     "jobs": [{"id": "...", "text": "...", "voice": "en-us", "speed": 150}, ...]}
stdout, per job in order: a JSON header line, {"id": ..., "size": N} followed by N bytes of
WAV (8 kHz mono 16-bit), or {"id": ..., "error": "why"} with no bytes after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..children import kill_group, lower_priority
from ..errors import FrontdeskError

if TYPE_CHECKING:
    from .codecs import Samples

RATE = 8000
TTS_TIMEOUT = 30.0
TARGET_RMS_DBFS = -18.0
PEAK_DBFS = -1.0
# A voice is a name espeak-ng lists ("en-us", "de", "en-gb+f3"), never an option: the same
# form the greetings settings accept (firmware_app/settings/greetings.py).
_VOICE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{1,8})*(?:\+[a-z0-9]{1,16})?$")


class SpeechError(FrontdeskError):
    """espeak-ng is missing, failed, took too long, or speech was stopped."""


def normalise(samples: Samples) -> Samples:
    """Bring speech to about -18 dBFS RMS with peaks at most -1 dBFS."""
    import numpy as np

    x = samples.astype(np.float64) / 32768.0
    if x.size == 0:
        return samples
    rms = float(np.sqrt(np.mean(x * x)))
    peak = float(np.max(np.abs(x)))
    if rms <= 0.0 or peak <= 0.0:
        return samples
    gain = min(10 ** (TARGET_RMS_DBFS / 20) / rms, 10 ** (PEAK_DBFS / 20) / peak, 30.0)
    out: Samples = np.clip(np.round(x * gain * 32768.0), -32768, 32767).astype(np.int16)
    return out


class Tts:
    """espeak-ng as a subprocess (no shell), bounded by a timeout; `stop()` ends a running one
    (the daemon's shutdown must not wait for speech nobody will hear).

    `own_session`: espeak-ng runs in a session of its own so that killing it takes anything it
    started; the render child turns it off, so that killing the child's group ends espeak-ng
    with it."""

    def __init__(
        self, program: str = "espeak-ng", timeout: float = TTS_TIMEOUT, *, own_session: bool = True
    ) -> None:
        self.program = program
        self.timeout = timeout
        self.own_session = own_session
        self._voices: list[tuple[str, str]] | None = None
        self._running: set[subprocess.Popen[bytes]] = set()
        self._running_lock = threading.Lock()
        self._stopped = False

    def stop(self) -> None:
        """End any speech being generated now, and refuse new work. Safe twice."""
        with self._running_lock:
            self._stopped = True
            running = list(self._running)
        for proc in running:
            if self.own_session:
                kill_group(proc)
            else:
                with contextlib.suppress(OSError):
                    proc.kill()

    def _run(self, args: list[str], timeout: float) -> tuple[int, bytes]:
        """Run the program; (return code, stderr). Raises TimeoutExpired or SpeechError."""
        with self._running_lock:
            if self._stopped:
                raise SpeechError("speech is stopped (shutting down)")
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=self.own_session,
            )
            self._running.add(proc)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            if self.own_session:
                kill_group(proc)
            else:
                proc.kill()
            proc.communicate()
            raise
        finally:
            with self._running_lock:
                self._running.discard(proc)
        return proc.returncode, err

    @property
    def available(self) -> bool:
        return shutil.which(self.program) is not None

    def speak(self, text: str, voice: str, speed: int) -> Samples:
        """`text` said by `voice` at `speed` words a minute, as normalised 8 kHz int16."""
        from . import tones
        from .codecs import to_telephone

        if not text.strip():
            return tones.silence(0.3)
        if not _VOICE.match(voice):
            raise SpeechError(f"{voice!r} is not a voice name")
        spoken = " " + text if text.startswith("-") else text  # never read as an option
        with tempfile.TemporaryDirectory(prefix="frontdesk-tts-") as tmp:
            out = Path(tmp) / "speech.wav"
            try:
                code, stderr = self._run(
                    [self.program, "-w", str(out), "-v", voice, "-s", str(speed), spoken],
                    self.timeout,
                )
            except FileNotFoundError:
                raise SpeechError(f"{self.program} is not installed") from None
            except subprocess.TimeoutExpired:
                raise SpeechError(f"{self.program} took longer than {self.timeout:.0f} s") from None
            if code != 0 or not out.is_file() or out.stat().st_size < 100:
                err = stderr.decode("utf-8", "replace").strip()[:200]
                raise SpeechError(f"{self.program} failed ({err or code})")
            return normalise(to_telephone(out, RATE))

    def voices(self) -> list[tuple[str, str]]:
        """(voice, language name) pairs espeak-ng offers; empty when it is missing."""
        if self._voices is None:
            found: list[tuple[str, str]] = []
            try:
                done = subprocess.run(
                    [self.program, "--voices"], capture_output=True, timeout=10, check=False
                )
                for line in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
                    cols = line.split()
                    if len(cols) >= 4 and _VOICE.match(cols[1]):
                        found.append((cols[1], cols[3].replace("_", " ")))
            except (OSError, subprocess.TimeoutExpired):
                found = []
            self._voices = sorted(set(found))
        return self._voices


# -- rendering in a child process -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SpeechJob:
    """One text to say: `id` comes back with its audio."""

    id: str
    text: str
    voice: str
    speed: int


# Called once per job as its audio arrives: (job id, WAV bytes or None, error or "").
ResultHandler = Callable[[str, bytes | None, str], None]


class SpeechRenderer:
    """Renders texts in a child process (`python -m firmware_app.media.speech`) so that the
    audio libraries never load into the caller. One render at a time per renderer; `stop()`
    kills a running child and refuses new work."""

    def __init__(self, program: str = "espeak-ng", timeout: float = TTS_TIMEOUT) -> None:
        self.program = program
        self.timeout = timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            proc = self._proc
        if proc is not None:
            kill_group(proc)

    def render(self, jobs: Sequence[SpeechJob], on_result: ResultHandler) -> int:
        """Say every job's text in one child process; `on_result` gets each as it is done,
        in order. Returns how many came back as audio. Raises SpeechError when the child
        could not run, died or ran past its time (`timeout` per job, plus one to start)."""
        if not jobs:
            return 0
        request = {
            "program": self.program,
            "timeout": self.timeout,
            "jobs": [
                {"id": j.id, "text": j.text, "voice": j.voice, "speed": j.speed} for j in jobs
            ],
        }
        with self._lock:
            if self._stopped:
                raise SpeechError("speech is stopped (shutting down)")
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", __name__],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,  # its espeak-ng runs go with it when it is killed
                )
            except OSError as exc:
                raise SpeechError(f"the speech process could not start ({exc})") from None
            self._proc = proc
        overrun = threading.Timer(self.timeout * (len(jobs) + 1), kill_group, (proc,))
        overrun.daemon = True
        overrun.start()
        errors = bytearray()
        drain = threading.Thread(target=_drain, args=(proc.stderr, errors), daemon=True)
        drain.start()
        spoken = answered = 0
        try:
            assert proc.stdin is not None and proc.stdout is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(json.dumps(request).encode())
                proc.stdin.close()
            for job in jobs:
                header = proc.stdout.readline()
                if not header:
                    break
                reply = json.loads(header)
                if reply.get("id") != job.id:
                    raise SpeechError("the speech process answered out of order")
                if "error" in reply:
                    answered += 1
                    on_result(job.id, None, str(reply["error"]))
                    continue
                size = int(reply["size"])
                data = proc.stdout.read(size)
                if len(data) != size:
                    break
                spoken += 1
                answered += 1
                on_result(job.id, data, "")
            code = proc.wait()
        finally:
            overrun.cancel()
            if proc.poll() is None:
                kill_group(proc)
                proc.wait()
            drain.join()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            with self._lock:
                self._proc = None
        if answered < len(jobs):
            why = errors.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"code {code}"]
            raise SpeechError(f"the speech process ended early ({why[0][:200]})")
        return spoken


def _drain(stream: IO[bytes] | None, into: bytearray) -> None:
    if stream is None:
        return
    for chunk in iter(lambda: stream.read(4096), b""):
        if len(into) < 16384:
            into.extend(chunk)


def _child(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The render child: jobs from stdin, WAVs to stdout (the protocol in the module text)."""
    lower_priority()
    from .codecs import write_wav  # numpy, soundfile, soxr: in this process only

    request: dict[str, Any] = json.loads(stdin.read())
    tts = Tts(str(request["program"]), float(request["timeout"]), own_session=False)
    for job in request["jobs"]:
        try:
            wav = write_wav(tts.speak(str(job["text"]), str(job["voice"]), int(job["speed"])), RATE)
        except SpeechError as exc:
            stdout.write(json.dumps({"id": job["id"], "error": str(exc)}).encode() + b"\n")
        else:
            stdout.write(json.dumps({"id": job["id"], "size": len(wav)}).encode() + b"\n")
            stdout.write(wav)
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.stdin.buffer, sys.stdout.buffer))
