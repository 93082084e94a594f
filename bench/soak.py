"""Soak: a compressed office day through a real `frontdesk run`, with faults, then a ledger.

Twelve lines are simulated modems on ptys in this process (five USR and two Conexant voice
lines, one Conexant fax-only line, four SIM800); the daemon is a child process that opens
their stable paths like /dev/serial/by-id. Calls (voicemail, missed, answered, forwarded,
blocked), texts (some multipart, some emoji) and faxes (to the fax-only line, or a calling
tone on a voice call that the daemon hands to its fax service; Class 2.0 from the
simulator's fax machine, station id "SOAK F<id>") follow a plan spread over the run while
the rig unplugs modems, hangs one, sends garbage, answers SIM busy, stops the mail server
for a stretch and SIGKILLs the daemon at random moments (the simulated modems see the port
close as DTR off and hang up, as a real modem with &D2 does). At the end every call, text,
fax and email is looked up in the store and the mail sink, item by item.

    make soak                                 # CALLS=1000 SMS=1000 FAXES=50 MINUTES=10
    SOAK_QUICK=1 .venv/bin/python bench/soak.py   # about 3 minutes (60 calls, 4 faxes)

Prints figures and FIGURE lines (bench/run_all.py); exits 1 when the ledger does not close.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak_rig import DaemonProcess, MailSink, Sample, free_port, sample
from soak_traffic import (
    BLOCKED_PREFIX,
    EXPECTED,
    Call,
    Delivered,
    Fax,
    Line,
    StoreWatcher,
    Text,
    caller_script,
    fax_machine,
    fax_tone_caller,
    make_sim_busy,
    now_utc,
    plan_faxes,
    plan_traffic,
    text_pdus,
    watch_deletes,
)

from firmware_app.workers import ON_DEMAND_IDLE

ANALOG, FAX_MODEM, GSM = "usr5637", "cx93010", "sim800"
# Seconds a line is busy with one call (rings, greeting, message, goodbye, the pause before
# the next), measured in earlier runs (docs/performance.md "How many calls fit").
ANALOG_CALL_SECONDS = 8.3
# A forwarded GSM call rings until the network forwards it on no reply (rules.ring_seconds,
# 5 s here), a blocked one is hung up at once: about 4.6 s a call on average.
GSM_CALL_SECONDS = 4.6
# RINGs of a GSM call the network is to forward: longer than its no-reply time (5 s), so the
# network, not the caller, ends the ringing (the simulator diverts it once AT+CCFC is set).
FORWARDED_RINGS = 12


def layout(calls: int, seconds: float) -> list[tuple[str, str]]:
    """(personality, role) of each line: enough voice lines for the planned call rate (three
    in five calls on analog lines, each line at most two-thirds busy), never fewer than
    seven analog and four GSM; one Conexant fax-only line. Calls go to the voice lines,
    faxes to the Conexant ones."""
    rate = calls / max(1.0, seconds)
    analog = max(7, math.ceil(rate * 0.6 * ANALOG_CALL_SECONDS * 1.5))
    gsm = max(4, math.ceil(rate * 0.4 * GSM_CALL_SECONDS * 1.5))
    conexant = max(2, analog // 3)
    lines = [(ANALOG, "voice")] * (analog - conexant) + [(FAX_MODEM, "voice")] * conexant
    return [*lines, (FAX_MODEM, "fax"), *[(GSM, "voice")] * gsm]


def figure(name: str, value: float, unit: str, target: str, op: str) -> None:
    """One machine-readable figure line for bench/run_all.py."""
    print(f"FIGURE\t{name}\t{value:.6g}\t{unit}\t{target}\t{op}", flush=True)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, "") or default)


@dataclass(frozen=True, slots=True)
class Warm:
    """The warm batch: the daemon before and after it, and what it carried."""

    before: Sample
    after: Sample
    calls: int
    texts: int
    same_life: bool


class Params:
    def __init__(self) -> None:
        self.quick = os.environ.get("SOAK_QUICK", "") not in ("", "0")
        q = self.quick
        self.calls = env_int("CALLS", 60 if q else 1000)
        self.sms = env_int("SMS", 100 if q else 1000)
        self.faxes = env_int("FAXES", 4 if q else 50)
        self.minutes = float(os.environ.get("MINUTES", "") or (2 if q else 10))
        self.kills = env_int("KILLS", 4 if q else 20)
        self.idle = env_int("IDLE_SECONDS", 20 if q else 60)
        # After the idle minute, a batch without faults in the same life (every library
        # loaded, every pool started): its RSS and thread growth is the leak check.
        self.warm_calls = env_int("WARM_CALLS", 24 if q else 60)
        self.warm_texts = env_int("WARM_TEXTS", 24 if q else 60)
        self.warm_seconds = float(env_int("WARM_SECONDS", 30 if q else 60))
        self.seed = env_int("SEED", 1)
        self.keep = os.environ.get("SOAK_KEEP", "") not in ("", "0")

    @property
    def seconds(self) -> float:
        return self.minutes * 60


SETTINGS = """schema_version = 2
[business]
name = "Soak Dental"
timezone = "Europe/London"
country = "GB"
owner_email = "owner@soak.example"
[email]
smtp_host = "127.0.0.1"
smtp_port = {port}
security = "none"
from_address = "desk@soak.example"
[notifications]
digest = false
[hours]
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]
[holidays]
observe = "none"
[staff]
members = [{{name = "Anna", mobile = "+447700900001", email = "anna@soak.example"}}]
[rules]
block = ["{blocked}*"]
ring_seconds = 5
office_phone = true
forward_calls = true
confirm_forwarded = false
[lines]
rings_before_answer = 2
fax_only = [{fax_only}]
fax_id = "+44 20 7946 0000"
[calls]
max_message_seconds = 20
silence_seconds = 2
[greetings]
speed = 260
items = [
  {{key = "open", mode = "text", text = "Hello."}},
  {{key = "voicemail", mode = "text", text = "Message, please."}},
  {{key = "goodbye", mode = "text", text = "Bye."}},
]
[forwarding]
network = true
no_reply_seconds = 5
"""


class Soak:
    def __init__(self, p: Params, folder: Path) -> None:
        self.p = p
        self.folder = folder
        self.rng = random.Random(p.seed)
        self.data = folder / "data"
        self.sink = MailSink()
        self.delivered = Delivered()
        self.lines: list[Line] = []
        self.kills = 0
        self.stop = threading.Event()  # no more traffic or faults
        self.polling_done = threading.Event()  # the daemon's line states are no longer read
        self.t0 = 0.0
        self.wall0 = 0.0  # time.time() at t0: record times -> run seconds
        self.log = folder / "daemon.log"
        self.daemon: DaemonProcess | None = None
        self.watcher = StoreWatcher(self.data)
        self.samples: list[tuple[float, Sample]] = []
        self.lock = threading.Lock()
        self.line_state: dict[str, str] = {}

    # -- set-up ------------------------------------------------------------------------------

    def build(self) -> None:
        dev = self.folder / "dev"
        for i, (personality, role) in enumerate(layout(self.p.calls, self.p.seconds), 1):
            line = Line(f"line{i}", personality, dev, role)
            self.lines.append(line)
            if line.kind == "gsm":
                watch_deletes(line, self.watcher, self.delivered)
                make_sim_busy(line)
        devices = ", ".join(f'"{line.path}"' for line in self.lines)
        config = self.folder / "frontdesk.toml"
        config.write_text(
            f'[store]\ndata_dir = "{self.data}"\n'
            f'[web]\nlisten = "127.0.0.1:{free_port()}"\n'
            f"[modem]\ndevices = [{devices}]\n"
            '[log]\nlevel = "info"\n'
        )
        self.seed_settings()
        self.daemon = DaemonProcess(config, self.data, self.log)

    def seed_settings(self) -> None:
        from firmware_app.events import EventBus
        from firmware_app.services.settings import SettingsService
        from firmware_app.store import Store

        fax_only = ", ".join(f'"{line.name}"' for line in self.lines if line.role == "fax")
        text = SETTINGS.format(port=self.sink.port, blocked=BLOCKED_PREFIX, fax_only=fax_only)
        with Store(self.data) as store:
            SettingsService(store, EventBus()).import_toml(text, "soak settings")

    # -- helpers -----------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def note(self, what: str) -> None:
        with self.lock:
            self.delivered.faults.append((self.elapsed(), what))
        print(f"  {self.elapsed():7.1f} s  {what}", flush=True)

    def poll_lines(self) -> None:
        """The daemon's view of its lines, every half second (control socket)."""
        assert self.daemon is not None
        while not self.polling_done.is_set():
            if self.daemon.up.is_set():
                got = self.daemon.control("lines.status", timeout=2.0)
                if isinstance(got, list):
                    self.line_state = {d.get("name", ""): d.get("state", "") for d in got}
                s = self.daemon.look()
                if s is not None and s.ok:
                    self.samples.append((self.elapsed(), s))
            time.sleep(0.5)

    def line_idle(self, line: Line, new_call: bool = True) -> bool:
        assert self.daemon is not None
        return (
            self.daemon.up.is_set()
            and not (new_call and line.faulted.is_set())
            and self.line_state.get(line.name) == "idle"
            and line.modem.call_state == "idle"
        )

    def wait_idle(self, line: Line, timeout: float, new_call: bool = True) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.line_idle(line, new_call):
                return True
            time.sleep(0.1)
        return False

    # -- traffic -----------------------------------------------------------------------------

    def call_worker(self, line: Line, queue: list[Call], last_due: float) -> None:
        while not self.stop.is_set():
            with self.lock:
                if not queue:
                    return
                call = queue.pop(0)
            while not self.stop.is_set() and self.elapsed() < call.due:
                time.sleep(0.05)
            if not self.wait_idle(line, 600) or self.stop.is_set():
                call.result = "not placed"
                with self.lock:
                    self.delivered.calls.append(call)
                continue
            with line.busy:
                self.place(line, call)

    def place(self, line: Line, call: Call) -> None:
        modem = line.modem
        call.line = line.name
        k0 = self.kills
        call.rang = self.elapsed()
        if line.kind == "analog":
            modem.voice.caller = caller_script(call.kind)
            rings = 2 if call.kind == "answered" else 8
            modem.ring(call.number, rings=rings, interval=0.8)
        else:
            rings = FORWARDED_RINGS if call.kind == "forwarded" else 6
            modem.ring(call.number, rings=rings, interval=0.8)
        # The call is over for the caller when the simulated line is idle again; the
        # daemon is done with it when its line is idle too.
        deadline = time.monotonic() + 60
        time.sleep(0.5)
        while modem.call_state != "idle" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        ok = self.wait_idle(line, 60, new_call=False)
        call.done = self.elapsed()
        if not ok and self.daemon is not None and self.daemon.up.is_set():
            call.result = "stuck"
            self.note(
                f"{line.name}: the line did not come back after call {call.id} (daemon: "
                f"{self.line_state.get(line.name)}, simulator: {modem.call_state})"
            )
        call.kills = (k0, self.kills)
        with self.lock:
            self.delivered.calls.append(call)

    def fax_worker(self, line: Line, queue: list[Fax]) -> None:
        while not self.stop.is_set():
            with self.lock:
                if not queue:
                    return
                fax = queue.pop(0)
            while not self.stop.is_set() and self.elapsed() < fax.due:
                time.sleep(0.05)
            if not self.wait_idle(line, 600) or self.stop.is_set():
                fax.result = "not placed"
                with self.lock:
                    self.delivered.faxes.append(fax)
                continue
            with line.busy:
                self.place_fax(line, fax)

    def place_fax(self, line: Line, fax: Fax) -> None:
        """A fax machine calls: as a fax to the fax-only line, or as a voice call that sends
        CNG once the greeting plays (the daemon switches it to fax)."""
        modem = line.modem
        fax.line = line.name
        k0 = self.kills
        fax.rang = self.elapsed()
        machine = fax_machine(fax)
        if line.role == "fax":
            modem.fax_call(machine, fax.number, rings=8, interval=0.8)
        else:
            modem.fax.machine = machine
            modem.voice.caller = fax_tone_caller()
            modem.ring(fax.number, rings=8, interval=0.8)
        deadline = time.monotonic() + 90
        time.sleep(0.5)
        while modem.call_state != "idle" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        ok = self.wait_idle(line, 60, new_call=False)
        modem.fax.machine = None
        fax.done = self.elapsed()
        if not ok and self.daemon is not None and self.daemon.up.is_set():
            fax.result = "stuck"
            self.note(
                f"{line.name}: the line did not come back after fax {fax.id} (daemon: "
                f"{self.line_state.get(line.name)}, simulator: {modem.call_state})"
            )
        fax.kills = (k0, self.kills)
        with self.lock:
            self.delivered.faxes.append(fax)

    def text_worker(self, texts: list[Text]) -> None:
        gsm = [line for line in self.lines if line.kind == "gsm"]
        for text in texts:
            while not self.stop.is_set() and self.elapsed() < text.due:
                time.sleep(0.02)
            if self.stop.is_set():
                return
            choices = [line for line in gsm if line.modem.plugged] or gsm
            line = choices[text.id % len(choices)]
            while not line.modem.plugged and not self.stop.is_set():
                time.sleep(0.1)
            pdus = text_pdus(text, now_utc())
            order = list(range(len(pdus)))
            if len(order) > 1 and text.id % 2:
                order.reverse()  # networks do not keep parts in order
            line.modem.deliver_parts(pdus, order)
            text.line = line.name
            text.delivered = self.elapsed()
            with self.lock:
                self.delivered.texts.append(text)

    # -- faults ------------------------------------------------------------------------------

    def fault_plan(self) -> list[tuple[float, str]]:
        span = self.p.seconds
        events: list[tuple[float, str]] = []
        kills = sorted(self.rng.uniform(0.05, 0.85) * span for _ in range(self.p.kills))
        events += [(t, "kill") for t in kills]
        events += [(0.25 * span, "smtp_down"), (0.25 * span + min(90, 0.15 * span), "smtp_up")]
        events += [(0.15 * span, "unplug"), (0.55 * span, "unplug")]
        events += [(0.35 * span, "hang")]
        events += [(f * span, "sim_busy") for f in (0.2, 0.45, 0.7)]
        events += [(t, "garbage") for t in range(10, int(span * 0.9), 15)]
        return sorted(events)

    def faults(self) -> None:
        for at, what in self.fault_plan():
            while not self.stop.is_set() and self.elapsed() < at:
                time.sleep(0.05)
            if self.stop.is_set():
                return
            if what in ("hang", "unplug"):  # these take a while: the others go on meanwhile
                threading.Thread(target=self.apply, args=(what,), daemon=True).start()
            else:
                self.apply(what)

    def apply(self, what: str) -> None:
        try:
            getattr(self, f"fault_{what}")()
        except Exception as exc:  # a fault that cannot be applied is reported, not fatal
            self.note(f"fault {what} not applied: {type(exc).__name__}: {exc}")

    def fault_kill(self) -> None:
        assert self.daemon is not None
        self.daemon.kill()
        self.line_state = {}  # the next life's lines are not up yet: ask it afresh
        self.kills += 1
        self.note(f"daemon SIGKILLed ({self.kills})")
        # The ports closed with the process: the simulated modems saw DTR drop and hung up
        # their calls (&D2), as real ones do.
        time.sleep(self.rng.uniform(0.2, 1.5))
        life = self.daemon.start()
        self.note(f"daemon ready again in {life.ready_s:.2f} s")

    def fault_smtp_down(self) -> None:
        self.sink.down()
        self.note("mail server down")

    def fault_smtp_up(self) -> None:
        self.sink.up()
        self.note("mail server up")

    def _quiet_line(self, kind: str) -> Line:
        candidates = [line for line in self.lines if line.kind == kind]
        line = self.rng.choice(candidates)
        line.faulted.set()
        with line.busy:  # no call on it now
            pass
        return line

    def fault_unplug(self) -> None:
        line = self._quiet_line(self.rng.choice(["analog", "gsm"]))
        line.modem.unplug()
        self.note(f"{line.name} unplugged")
        time.sleep(3)
        line.modem.replug()
        self.note(f"{line.name} plugged in again")
        line.faulted.clear()

    def fault_hang(self) -> None:
        line = self._quiet_line("gsm")
        line.modem.stop_answering()
        seconds = 100 if not self.p.quick else 30
        self.note(f"{line.name} stops answering for {seconds} s")
        self.stop.wait(seconds)
        line.modem.resume()
        self.note(f"{line.name} answers again")
        line.faulted.clear()

    def fault_garbage(self) -> None:
        line = self.rng.choice([line for line in self.lines if line.modem.call_state == "idle"])
        junk = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(8, 64)))
        line.modem.send_garbage(b"\r\n" + junk + b'\r\n+CMTI: "SM\r\nRI')
        self.note(f"{line.name}: {len(junk) + 12} bytes of garbage")

    def fault_sim_busy(self) -> None:
        line = self.rng.choice([line for line in self.lines if line.kind == "gsm"])
        line.sim_busy_until = time.monotonic() + 8
        self.note(f"{line.name}: SIM busy for 8 s")

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> int:
        assert self.daemon is not None
        calls, texts = plan_traffic(self.p.calls, self.p.sms, self.p.seconds, self.rng)
        faxes = plan_faxes(self.p.faxes, self.p.seconds, self.rng)
        print(
            f"soak: {len(calls)} calls, {len(texts)} texts, {self.p.faxes} faxes over "
            f"{self.p.minutes:g} min on {len(self.lines)} lines, {self.p.kills} kills",
            flush=True,
        )
        self.sink.up()
        first = self.daemon.start()
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=self.poll_lines, daemon=True)]
        threads[0].start()
        time.sleep(1.0)
        if not all(self.wait_idle(line, 30) for line in self.lines):
            print("  lines not idle after start:", self.line_state)
        time.sleep(10)  # the figures' starting point: ready and idle for 10 s
        start_sample = sample(first.pid)
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        last_due = self.p.seconds
        queues: dict[str, list[Call]] = {
            "analog": [c for c in calls if c.line_kind == "analog"],
            "gsm": [c for c in calls if c.line_kind == "gsm"],
        }
        fax_queues: dict[str, list[Fax]] = {
            "fax": [f for f in faxes if f.kind == "fax_only"],
            "voice": [f for f in faxes if f.kind == "cng"],
        }
        for line in self.lines:
            if line.role == "voice":
                threads.append(
                    threading.Thread(
                        target=self.call_worker,
                        args=(line, queues[line.kind], last_due),
                        daemon=True,
                    )
                )
            if line.fax:
                threads.append(
                    threading.Thread(
                        target=self.fax_worker, args=(line, fax_queues[line.role]), daemon=True
                    )
                )
        threads.append(threading.Thread(target=self.text_worker, args=(texts,), daemon=True))
        faults = threading.Thread(target=self.faults, daemon=True)
        for t in threads[1:]:
            t.start()
        faults.start()
        # Traffic runs to its plan; a backlog may run on for half the time again at most.
        hard_stop = self.p.seconds * 1.5 + 30
        workers = threads[1:]
        while any(t.is_alive() for t in workers) and self.elapsed() < hard_stop:
            time.sleep(0.5)
        traffic_s = self.elapsed()
        self.stop.set()  # stop placing more; faults stop too
        faults.join(120)
        for t in workers:
            t.join(70)
        self.stop.clear()
        self.sink.up()
        for line in self.lines:
            line.faulted.clear()
            line.modem.resume()
        # Let the daemon finish: SIMs empty, emails out.
        self.settle()
        end_busy = self.daemon.look() or Sample(at=time.monotonic())
        # The idle minute is the daemon's own: no more line-state requests on its socket.
        self.polling_done.set()
        threads[0].join(5)
        time.sleep(1)
        threads_before = self.daemon.control("debug.threads") or []
        before_idle = self.daemon.look() or Sample(at=time.monotonic())
        time.sleep(self.p.idle)
        after_idle = self.daemon.look() or Sample(at=time.monotonic())
        self.idle_threads(threads_before, self.daemon.control("debug.threads") or [])
        warm = self.warm_batch(calls, texts)
        self.stop.set()
        self.polling_done.set()
        threads[0].join(5)
        self.where_the_memory_is()
        code = self.daemon.stop()
        print(f"  daemon stopped (exit {code}); log: {self.log}")
        return self.report(
            calls, texts, faxes, traffic_s, start_sample, end_busy, before_idle, after_idle, warm
        )

    @staticmethod
    def idle_threads(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
        """Which of the daemon's threads used the CPU of the idle minute (`debug.threads`
        just before and after it, so the two requests are not inside it)."""
        was = {t["id"]: t.get("cpu_s") or 0.0 for t in before}
        used = Counter[str]()
        for t in after:
            used[str(t["name"])] += (t.get("cpu_s") or 0.0) - was.get(t["id"], 0.0)
        busy = [(name, cpu) for name, cpu in used.most_common(8) if cpu > 0]
        shown = ", ".join(f"{name} {cpu * 1000:.0f} ms" for name, cpu in busy) or "none"
        print(f"  idle minute, CPU by thread: {shown}")

    def up_during(self, start: float, end: float) -> str:
        """When a life of the daemon was ready during [start, end] (run seconds), as text;
        "" when it was down the whole time (killed and not yet ready again)."""
        assert self.daemon is not None
        for life in self.daemon.lifetimes:
            ready = life.started + life.ready_s - self.t0
            # Its last look is the moment it was killed or stopped (soak_rig.DaemonProcess).
            gone = life.last.at - self.t0 if life.last is not None else math.inf
            if ready <= end and gone >= start:
                return f"from {max(ready, start):.1f} s to {min(gone, end):.1f} s"
        return ""

    def where_the_memory_is(self) -> None:
        """The last life's resident memory by mapping (libraries, heap, anonymous) and its
        most numerous objects, from the control socket's `debug.memory`, printed to explain
        the RSS figures. Memory tracing starts with that request: it is stopped at once."""
        assert self.daemon is not None
        got = self.daemon.control("debug.memory", timeout=30.0, top=14)
        self.daemon.control("debug.memory", stop=True)
        if not isinstance(got, dict) or "mapped_kb" not in got:
            print("  resident memory by mapping: the daemon did not answer")
            return
        print(f"  resident memory at the end, {got.get('rss_kb', 0) / 1024:.1f} MB, by mapping:")
        for name, kb in got["mapped_kb"]:
            print(f"    {kb / 1024:6.1f} MB  {name}")
        objects = ", ".join(f"{n} {k}" for k, n in got.get("types", [])[:8])
        print(f"  {got.get('gc_objects', 0):,} objects; most numerous: {objects}")
        threads = self.daemon.control("debug.threads") or []
        by_name = Counter[str]()
        for t in threads:
            by_name[str(t["name"])] += t.get("cpu_s") or 0.0
        shown = ", ".join(f"{name} {cpu:.1f} s" for name, cpu in by_name.most_common(10))
        print(f"  the last life's CPU by thread (threads alive now): {shown}")
        # After every figure is taken: how much of the RSS is free memory the daemon's own
        # trim (memory.py, once traffic has settled) has not given back yet.
        trimmed = self.daemon.control("debug.trim", timeout=30.0)
        if isinstance(trimmed, dict):
            print(
                f"  a trim now: {trimmed['rss_before_kb'] / 1024:.1f} -> "
                f"{trimmed['rss_after_kb'] / 1024:.1f} MB"
            )

    def warm_batch(self, calls: list[Call], texts: list[Text]) -> Warm | None:
        """Calls and texts in the last life, after the run and its idle minute, with no
        faults: the daemon has loaded what calls, texts and faxes need and started its
        pools, so what its RSS and threads gain over the batch is what traffic leaves behind
        (a leak), not what the first call of a life loads. The batch's calls and texts join
        the ledger."""
        assert self.daemon is not None
        if not (self.p.warm_calls or self.p.warm_texts):
            return None
        wcalls, wtexts = plan_traffic(
            self.p.warm_calls,
            self.p.warm_texts,
            self.p.warm_seconds,
            self.rng,
            first_call=len(calls),
            first_text=len(texts),
            start=self.elapsed() + 2.0,
        )
        lives = len(self.daemon.lifetimes)
        self.polling_done.clear()
        poll = threading.Thread(target=self.poll_lines, daemon=True)
        poll.start()
        time.sleep(1.0)
        before = self.daemon.look() or Sample(at=time.monotonic())
        queues: dict[str, list[Call]] = {
            "analog": [c for c in wcalls if c.line_kind == "analog"],
            "gsm": [c for c in wcalls if c.line_kind == "gsm"],
        }
        workers = [
            threading.Thread(
                target=self.call_worker, args=(line, queues[line.kind], 0.0), daemon=True
            )
            for line in self.lines
            if line.role == "voice"
        ]
        workers.append(threading.Thread(target=self.text_worker, args=(wtexts,), daemon=True))
        for t in workers:
            t.start()
        for t in workers:
            t.join(self.p.warm_seconds * 3 + 120)
        self.settle()
        self.polling_done.set()
        poll.join(5)
        # Pools and caches at rest, as at the end of the idle minute: the threads of the
        # occasional jobs (call records, greetings, forwarding checks) end once idle.
        time.sleep(ON_DEMAND_IDLE + 5.0)
        after = self.daemon.look() or Sample(at=time.monotonic())
        calls.extend(wcalls)
        texts.extend(wtexts)
        same_life = len(self.daemon.lifetimes) == lives
        return Warm(before, after, len(wcalls), len(wtexts), same_life)

    def settle(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        gsm = [line for line in self.lines if line.kind == "gsm"]
        while time.monotonic() < deadline:
            on_sim = sum(len(line.modem.messages()) for line in gsm)
            if on_sim == 0:
                break
            time.sleep(0.5)
        expected = sum(
            1
            for c in self.delivered.calls
            if c.kind in ("voicemail", "missed") and c.kills[0] == c.kills[1] and not c.result
        )
        expected += len(self.delivered.texts)
        expected += sum(
            1 for f in self.delivered.faxes if f.kills[0] == f.kills[1] and not f.result
        )
        last = -1
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            got = len({r.message_id for r in self.sink.snapshot()})
            if got != last:
                last, quiet_since = got, time.monotonic()
            if got >= expected and time.monotonic() - quiet_since > 3:
                break
            time.sleep(0.5)
        print(f"  settled after {self.elapsed():.0f} s: {last} emails, about {expected} expected")

    # -- the ledger --------------------------------------------------------------------------

    def report(
        self,
        calls: list[Call],
        texts: list[Text],
        faxes: list[Fax],
        traffic_s: float,
        start: Sample,
        end_busy: Sample,
        before_idle: Sample,
        after_idle: Sample,
        warm: Warm | None = None,
    ) -> int:
        from firmware_app.events import EventBus
        from firmware_app.services.history import HistoryService
        from firmware_app.store import Store

        problems: list[str] = []
        with Store(self.data) as store:
            history = HistoryService(store, EventBus())
            records = history.newest(10**7, max_scan=10**7)
            outbox = [dict(doc, id=doc.doc_id) for doc in store.table("outbox", "messages").all()]
        by_number: dict[str, list[Any]] = defaultdict(list)
        sms_by_tag: dict[str, list[Any]] = defaultdict(list)
        fax_by_station: dict[str, list[Any]] = defaultdict(list)
        # A call still ringing when a new life comes up is taken without its caller ID (that
        # came between the first rings, to the old life): found by line and time instead.
        unnumbered: dict[str, list[Any]] = defaultdict(list)
        for r in records:
            if r.channel == "call" and not r.number:
                unnumbered[r.line].append(r)
            elif r.channel == "call":
                by_number[r.number].append(r)
            elif r.channel == "fax" and r.direction == "in":
                fax_by_station[r.name].append(r)
            elif r.channel == "sms" and r.direction == "in":
                tag = r.text[:8]
                sms_by_tag[tag].append(r)

        # Calls.
        placed = [c for c in self.delivered.calls if c.result != "not placed"]
        not_placed = len(calls) - len(placed)
        busy: dict[str, list[float]] = defaultdict(list)
        for c in placed:
            busy[f"{c.line_kind} {c.kind}"].append(c.done - c.rang)
        lost = dup = wrong = 0
        in_flight = in_flight_recorded = 0
        outcomes: Counter[str] = Counter()
        in_flight_outcomes: Counter[str] = Counter()
        for c in placed:
            got = by_number.get(c.number, [])
            if c.kills[0] != c.kills[1] and not got:
                for r in unnumbered.get(c.line, []):
                    at = r.start.timestamp() - self.wall0
                    if c.rang - 2 <= at <= c.done + 2:
                        got = [r]
                        unnumbered[c.line].remove(r)
                        break
            if c.kills[0] != c.kills[1]:
                # In flight at a kill: one record all the same, with the outcome it reached
                # or "interrupted" (written at the next start).
                in_flight += 1
                in_flight_recorded += bool(got)
                if len(got) == 1:
                    outcomes[got[0].outcome] += 1
                    in_flight_outcomes[got[0].outcome] += 1
                elif not got:
                    lost += 1
                    problems.append(
                        f"call {c.id} lost (in flight at a kill): {c.kind} from {c.number} on "
                        f"{c.line} at {c.rang:.1f}-{c.done:.1f} s"
                    )
                else:
                    dup += 1
                    problems.append(
                        f"call {c.id} ({c.number}, in flight at a kill): {len(got)} records"
                    )
                continue
            if not got:
                lost += 1
                problems.append(
                    f"call {c.id} lost: {c.kind} from {c.number} on {c.line} at {c.rang:.1f} s"
                )
            elif len(got) > 1:
                dup += 1
                problems.append(
                    f"call {c.id} ({c.number}): {len(got)} records {[r.id for r in got]}"
                )
            else:
                outcomes[got[0].outcome] += 1
                if got[0].outcome != EXPECTED[c.kind]:
                    wrong += 1
                    problems.append(
                        f"call {c.id} ({c.number} on {c.line}): expected {EXPECTED[c.kind]}, "
                        f"recorded {got[0].outcome} ({got[0].text})"
                    )
        # Faxes: one fax record per fax (found by the sender's station id) with the pages
        # sent, its PDF readable with as many pages; a calling tone also left its call record.
        import pypdfium2

        f_placed = [f for f in self.delivered.faxes if f.result != "not placed"]
        f_lost = f_dup = f_bad = f_in_flight = f_in_flight_recorded = 0
        f_unheard: list[str] = []  # rang only while the daemon was down
        f_busy: list[float] = []
        pdf_pages = 0
        with Store(self.data) as store:
            for f in f_placed:
                f_busy.append(f.done - f.rang)
                got = fax_by_station.get(f.station, [])
                if f.kills[0] != f.kills[1]:
                    f_in_flight += 1
                    # The call it came on: by number, or without one when it rang on into
                    # the next life (the caller ID went to the old one). A calling-tone fax
                    # has one with outcome `fax`; a fax-only line's call has one only when
                    # the daemon went before it knew a fax was coming.
                    calls_of = list(by_number.get(f.number, []))
                    for r in list(unnumbered.get(f.line, [])):
                        at = r.start.timestamp() - self.wall0
                        if f.rang - 2 <= at <= f.done + 2:
                            calls_of.append(r)
                            unnumbered[f.line].remove(r)
                    f_in_flight_recorded += bool(got or calls_of)
                    if not got and not calls_of:
                        what = (
                            f"fax {f.id} (in flight at a kill): {f.kind} from {f.number} on "
                            f"{f.line} at {f.rang:.1f}-{f.done:.1f} s"
                        )
                        heard = self.up_during(f.rang, f.done)
                        if heard:  # it rang while a life was up: it needs a record
                            f_lost += 1
                            problems.append(f"{what} lost: the daemon was up {heard}")
                        else:  # nobody was there to hear it: nothing to record
                            f_unheard.append(what)
                    if len(got) > 1:
                        f_dup += 1
                        problems.append(f"fax {f.id} (in flight at a kill): {len(got)} records")
                    extra = len(calls_of) if f.kind == "cng" else len(calls_of) + len(got)
                    if extra > 1:
                        f_dup += 1
                        problems.append(
                            f"fax {f.id} (in flight at a kill): {len(calls_of)} call records "
                            f"{[r.id for r in calls_of]}"
                        )
                    continue
                if not got:
                    f_lost += 1
                    problems.append(
                        f"fax {f.id} lost: {f.kind} from {f.number} on {f.line} at {f.rang:.1f} s"
                    )
                    continue
                if len(got) > 1:
                    f_dup += 1
                    problems.append(f"fax {f.id}: {len(got)} records {[r.id for r in got]}")
                r = got[0]
                wrong_fax = ""
                if r.outcome != "received" or r.details.get("pages") != f.pages:
                    wrong_fax = f"{r.outcome}, {r.details.get('pages')} pages ({r.text})"
                elif r.number != f.number:
                    wrong_fax = f"number {r.number}"
                else:
                    try:
                        pdf = pypdfium2.PdfDocument(store.media.read(r.media[0]))
                        n = len(pdf)
                        pdf.close()
                    except Exception as exc:
                        n = -1
                        wrong_fax = f"PDF unreadable: {type(exc).__name__}: {exc}"
                    pdf_pages += max(0, n)
                    if n >= 0 and n != f.pages:
                        wrong_fax = f"PDF of {n} pages"
                if f.kind == "cng" and [c.outcome for c in by_number.get(f.number, [])] != ["fax"]:
                    wrong_fax += f" call records {[c.outcome for c in by_number[f.number]]}"
                if wrong_fax:
                    f_bad += 1
                    problems.append(f"fax {f.id} ({f.pages} pages on {f.line}): {wrong_fax}")
        for name, left in unnumbered.items():
            for r in left:
                dup += 1
                problems.append(
                    f"call record {r.id} on {name} ({r.outcome}) without a number matches no "
                    "call or fax: a second record of a call still ringing at a kill?"
                )
        # Texts.
        t_lost = t_dup = t_bad = 0
        for t in self.delivered.texts:
            got = sms_by_tag.get(t.text[:8], [])
            if not got:
                t_lost += 1
                problems.append(
                    f"text {t.id} lost: from {t.number} on {t.line} at {t.delivered:.1f} s"
                )
            elif len(got) > 1:
                t_dup += 1
                problems.append(f"text {t.id} ({t.number}): {len(got)} records")
            elif got[0].text != t.text:
                t_bad += 1
                problems.append(f"text {t.id}: stored {got[0].text!r}, sent {t.text!r}")
        left_on_sim = {
            line.name: len(line.modem.messages()) for line in self.lines if line.kind == "gsm"
        }
        for name, n in left_on_sim.items():
            if n:
                problems.append(f"{name}: {n} messages still on the SIM")
        for e in self.delivered.early_deletes:
            problems.append(f"deleted from the SIM before it was stored: {e}")

        # Emails: each record that should have one has exactly one outbox message, sent, and
        # its Message-ID reached the sink (copies of one Message-ID are at-least-once resends).
        # An interrupted call's email is a missed-call one, or a voicemail one when its
        # recording was kept.
        wants = {
            "voicemail": ("voicemail",),
            "missed": ("missed_call",),
            "interrupted": ("missed_call", "voicemail"),
        }
        ours = {c.number for c in placed}
        stations = {f.station for f in f_placed}
        expected_mail: dict[str, tuple[str, ...]] = {}
        for r in records:
            if r.channel == "call" and r.number in ours and r.outcome in wants:
                expected_mail[r.id] = wants[r.outcome]
            elif r.channel == "sms" and r.direction == "in" and r.text.startswith("[S"):
                expected_mail[r.id] = ("sms",)
            elif r.channel == "fax" and r.name in stations and r.media:
                expected_mail[r.id] = ("fax",)
        by_record: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in outbox:
            by_record[m.get("record_id", "")].append(m)
        received = self.sink.snapshot()
        copies = Counter(r.message_id for r in received)
        m_lost = m_dup_records = m_unsent = 0
        pdf_mail = {r.message_id for r in received if "application/pdf" in r.attachments}
        f_no_pdf = 0
        for rid, kinds_wanted in expected_mail.items():
            msgs = [m for m in by_record.get(rid, []) if m.get("kind") in kinds_wanted]
            kind = "/".join(kinds_wanted)
            if kinds_wanted == ("fax",):
                for m in msgs:
                    if copies.get(m.get("message_id", "")) and m["message_id"] not in pdf_mail:
                        f_no_pdf += 1
                        problems.append(f"record {rid}: fax email {m['message_id']} has no PDF")
            if not msgs:
                m_lost += 1
                problems.append(f"no {kind} email queued for record {rid}")
                continue
            if len(msgs) > 1:
                m_dup_records += 1
                problems.append(f"record {rid}: {len(msgs)} {kind} emails (distinct Message-IDs)")
            for m in msgs:
                if copies.get(m.get("message_id", ""), 0) == 0:
                    m_unsent += 1
                    problems.append(
                        f"record {rid}: {kind} email {m['message_id']} not received "
                        f"(outbox state {m.get('state')}, {m.get('attempts')} attempts, "
                        f"{m.get('last_error', '')})"
                    )
        resent = {mid: n for mid, n in copies.items() if n > 1}
        kinds = Counter(r.kind for r in received)
        known_ids = {m.get("message_id") for m in outbox}
        strangers = [r for r in received if r.message_id not in known_ids]
        for r in strangers:
            problems.append(
                f"received a message the outbox does not know: {r.message_id} {r.subject}"
            )

        # Figures.
        lives = self.daemon.lifetimes if self.daemon else []
        cpu_total = sum((life.last.cpu_s if life.last else 0.0) for life in lives)
        cpu_startup = sum((life.at_ready.cpu_s if life.at_ready else 0.0) for life in lives)
        written = sum((life.last.write_bytes if life.last else 0) for life in lives)
        written_startup = sum((life.at_ready.write_bytes if life.at_ready else 0) for life in lives)
        interactions = len(placed) + len(self.delivered.texts) + len(f_placed)
        idle_cpu = (after_idle.cpu_s - before_idle.cpu_s) / max(
            1e-9, after_idle.at - before_idle.at
        )
        rss_start = start.rss_kb / 1024
        rss_end = after_idle.rss_kb / 1024
        peak = max((s.rss_kb for _, s in self.samples), default=0) / 1024
        ready = [life.ready_s for life in lives]

        print()
        print(f"traffic: {traffic_s:.0f} s for a plan of {self.p.seconds:.0f} s")
        print(
            f"calls: planned {len(calls)}, placed {len(placed)}, not placed in time {not_placed}; "
            f"recorded as {dict(outcomes)}"
        )
        print(
            "  line busy per call (ring to idle again), mean s: "
            + ", ".join(f"{k} {sum(v) / len(v):.1f}" for k, v in sorted(busy.items()))
        )
        print(
            f"  lost {lost}, duplicated {dup}, wrong outcome {wrong}; in flight at a kill "
            f"{in_flight} (recorded {in_flight_recorded}: {dict(in_flight_outcomes)})"
        )
        parts = sum(t.parts for t in self.delivered.texts)
        print(
            f"texts: delivered {len(self.delivered.texts)} ({parts} parts); lost {t_lost}, "
            f"duplicated {t_dup}, altered {t_bad}; SIM deletes checked {self.delivered.deletes}, "
            f"before storing {len(self.delivered.early_deletes)}; left on SIMs {left_on_sim}"
        )
        print(
            f"emails: expected {len(expected_mail)}, not queued {m_lost}, more than one per "
            f"record {m_dup_records}, never received {m_unsent}; received {len(received)} "
            f"({len(copies)} distinct Message-IDs, {len(resent)} received more than once, "
            f"at-least-once); by kind {dict(kinds)}"
        )
        f_kinds = Counter(f.kind for f in f_placed)
        print(
            f"faxes: planned {len(faxes)}, placed {len(f_placed)} ({dict(f_kinds)}), "
            f"{sum(f.pages for f in f_placed)} pages; lost {f_lost}, duplicated {f_dup}, "
            f"wrong {f_bad}, email without PDF {f_no_pdf}; PDF pages read back {pdf_pages}; "
            f"in flight at a kill {f_in_flight} (recorded {f_in_flight_recorded}); line busy "
            f"per fax {sum(f_busy) / max(1, len(f_busy)):.1f} s"
        )
        for what in f_unheard:
            print(f"  {what}: rang only while the daemon was down, nothing to record")
        print(f"daemon lives: {len(lives)}, start-to-ready {min(ready):.2f}-{max(ready):.2f} s")
        print(
            f"RSS: {rss_start:.1f} MB at start (ready, idle 10 s), {end_busy.rss_kb / 1024:.1f} MB "
            f"after traffic, {rss_end:.1f} MB at the end, peak {peak:.1f} MB"
        )
        print(f"threads: {start.threads} at start, {after_idle.threads} at the end")
        if warm is not None:
            print(
                f"warm batch ({warm.calls} calls, {warm.texts} texts, no faults, "
                f"{'the same life' if warm.same_life else 'the daemon restarted meanwhile'}): "
                f"RSS {warm.before.rss_kb / 1024:.1f} -> {warm.after.rss_kb / 1024:.1f} MB, "
                f"threads {warm.before.threads} -> {warm.after.threads}"
            )
        print(
            f"CPU: {cpu_total:.1f} s in all ({cpu_startup:.1f} s starting up), "
            f"{(cpu_total - cpu_startup) / max(1, interactions) * 1000:.1f} ms per interaction; "
            f"idle {idle_cpu * 100:.3f} % of a core over {after_idle.at - before_idle.at:.0f} s"
        )
        print(
            f"written to disk: {written / 1e6:.1f} MB "
            f"({written_startup / 1e6:.1f} MB starting up), "
            f"{written / max(1, interactions) / 1000:.1f} KB per interaction"
        )
        figure("soak: calls lost or duplicated", lost + dup, "calls", "0", "<=")
        figure(
            "soak: texts lost, duplicated or altered", t_lost + t_dup + t_bad, "texts", "0", "<="
        )
        figure(
            "soak: faxes lost, duplicated or wrong",
            f_lost + f_dup + f_bad + f_no_pdf,
            "faxes",
            "0",
            "<=",
        )
        figure("soak: SIM deletes before storing", len(self.delivered.early_deletes), "", "0", "<=")
        figure("soak: emails missing or doubled", m_lost + m_dup_records + m_unsent, "", "0", "<=")
        figure("soak: RSS growth", rss_end - rss_start, "MB", "10", "<=")
        figure("soak: thread growth", after_idle.threads - start.threads, "threads", "0", "<=")
        if warm is not None and warm.same_life:
            figure(
                "soak: RSS growth over a warm batch (leak check)",
                (warm.after.rss_kb - warm.before.rss_kb) / 1024,
                "MB",
                "10",
                "<=",
            )
            figure(
                "soak: thread growth over a warm batch (leak check)",
                warm.after.threads - warm.before.threads,
                "threads",
                "0",
                "<=",
            )
        figure(
            "soak: CPU per interaction",
            (cpu_total - cpu_startup) / max(1, interactions) * 1000,
            "ms",
            "2",
            "<=",
        )
        figure("soak: idle CPU after the run", idle_cpu * 100, "% core", "0.05", "<=")
        figure(
            "soak: disk written per interaction",
            written / max(1, interactions) / 1000,
            "KB",
            "100",
            "<=",
        )
        figure("soak: calls placed", len(placed), "calls", str(self.p.calls), ">=")
        figure("soak: faxes placed", len(f_placed), "faxes", str(self.p.faxes), ">=")
        if problems:
            print(f"\nledger: {len(problems)} differences")
            for line in problems[:400]:
                print("  " + line)
            if len(problems) > 400:
                print(f"  ... and {len(problems) - 400} more")
        else:
            print("\nledger: closed: every call, text, fax and email accounted for")
        print("\nfaults:")
        for at, what in self.delivered.faults:
            print(f"  {at:7.1f} s  {what}")
        failed = lost + dup + t_lost + t_dup + t_bad + m_lost + m_dup_records + m_unsent
        failed += f_lost + f_dup + f_bad + f_no_pdf
        return 1 if failed else 0

    def close(self) -> None:
        self.stop.set()
        self.polling_done.set()
        if self.daemon is not None:
            self.daemon.close()
        self.sink.down()
        for line in self.lines:
            line.close()


def main() -> int:
    p = Params()
    folder = Path(tempfile.mkdtemp(prefix="frontdesk-soak-"))
    soak = Soak(p, folder)
    try:
        soak.build()
        return soak.run()
    finally:
        soak.close()
        if p.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
