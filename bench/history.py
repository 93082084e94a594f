"""Contact-centre pages with a big history: p50/p95 of the dashboard, inbox, timelines,
search, the Calls and Voicemail filters and the API with 100,000 interactions over 12 months
and 5,000 contacts; how long the history index takes to build and to open; and the memory of
a real daemon (`frontdesk run`) holding that data.

Run: `python bench/history.py [interactions] [contacts]`. Target: p95 <= 100 ms per page on a
2-core x86 machine. The data is written straight into the store's files (fast); the index is
then built from them as on the first start after an upgrade, closed, and opened again as on
any later start; the pages read through the real store. Then the same data dir is handed to
a `frontdesk run` child (as systemd starts it: MALLOC_ARENA_MAX=2, READY=1), whose resident
memory is read from /proc: settled after start, after the same pages over HTTP, and after a
start that had to rebuild the index (the first start after an upgrade), with the peak
(VmHWM) of each. Prints figures only; no assertions.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import random
import re
import resource
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import firmware_app.services.auth as auth_module
from firmware_app.config import MachineConfig, StoreConfig
from firmware_app.services import Services
from firmware_app.services.history import Interaction
from firmware_app.services.system import ClockSync
from firmware_app.store import Store
from web_ui import create_app

PASSWORD = "benchmark password"

REQUESTS = 60
TARGET_MS = 100.0
WORDS = ["boiler", "leak", "tuesday", "invoice", "quote", "oven", "kitchen", "urgent", "thanks"]
RARE = "gasket"  # in one text in a thousand, spread over the year


def rss_mb() -> tuple[float, float]:
    now = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return now, peak


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Browser:
    """The owner's browser over real HTTP: logs in with the CSRF token, keeps the cookie."""

    def __init__(self, base: str) -> None:
        self.base = base
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as r:
            return str(r.read().decode())

    def post(self, path: str, fields: dict[str, str | list[str]], token_from: str) -> str:
        """A form POST with the CSRF token of the page at `token_from`."""
        page = self.get(token_from)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        body = urllib.parse.urlencode({"csrf_token": token, **fields}, doseq=True).encode()
        with self.opener.open(self.base + path, body, timeout=30) as r:
            return str(r.read().decode())

    def login(self, password: str) -> None:
        page = self.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        body = urllib.parse.urlencode({"csrf_token": token, "password": password}).encode()
        with self.opener.open(self.base + "/login", body, timeout=30) as r:
            r.read()
        if "Log out" not in self.get("/"):
            raise RuntimeError("could not log in to the daemon")


def daemon_memory(data: Path, pages: dict[str, Callable[[], str]], now: datetime) -> None:
    """RSS of `frontdesk run` on `data`: settled, after the pages over HTTP, after two
    records are changed (two handled items reopened: one of this month, whose records the
    store then keeps in memory, and one a year back, whose month it reads and lets go
    later), and after a start that rebuilt the history index; with the peak (VmHWM) of each
    run."""
    from footprint import settle
    from soak_rig import DaemonProcess, free_port

    folder = Path(tempfile.mkdtemp(prefix="frontdesk-history-daemon-"))
    port = free_port()
    config = folder / "frontdesk.toml"
    config.write_text(
        f'[store]\ndata_dir = "{data}"\n[web]\nlisten = "127.0.0.1:{port}"\n'
        '[modem]\ndevices = ["auto"]\n[log]\nlevel = "info"\n'
    )
    log_file = folder / "daemon.log"
    daemon = DaemonProcess(config, data, log_file)
    try:
        life = daemon.start(timeout=120)
        settle(life.pid)
        time.sleep(2)
        settled = vm_kb(life.pid, "VmRSS")
        browser = Browser(f"http://127.0.0.1:{port}")
        browser.login(PASSWORD)
        for _ in range(5):
            for url in pages.values():
                path = url()
                if path.startswith("/api/"):
                    continue  # the API needs a token of its own; the pages cover the same reads
                browser.get(path)
        loaded = vm_kb(life.pid, "VmRSS")
        old = now - timedelta(days=360)
        for record_id in (f"{now:%Y-%m}:1", f"{old:%Y-%m}:5"):  # handled: reopen each
            browser.post("/history/handled", {"reopen": record_id}, token_from="/inbox/")
        wrote, peak = vm_kb(life.pid, "VmRSS"), vm_kb(life.pid, "VmHWM")
        print(f"daemon started in {life.ready_s:.2f} s (history index from its snapshot)")
        print(
            f"daemon RSS: {settled / 1024:.0f} MB settled, {loaded / 1024:.0f} MB after the "
            f"pages over HTTP, {wrote / 1024:.0f} MB after two records changed, peak "
            f"{peak / 1024:.0f} MB"
        )
        daemon.stop()
        shutil.rmtree(data / "index")  # the first start after an upgrade: no index yet
        life = daemon.start(timeout=120)
        deadline = time.monotonic() + 600
        # the index's snapshot is written once every month is read (the log is only
        # flushed at exit)
        while not (data / "index" / "history.idx").exists():
            if time.monotonic() > deadline or daemon.proc is None or daemon.proc.poll() is not None:
                raise RuntimeError(f"the daemon did not rebuild the history index; see {log_file}")
            time.sleep(0.2)
        built_s = time.monotonic() - life.started
        settle(life.pid)
        time.sleep(2)
        rebuilt, rebuilt_peak = vm_kb(life.pid, "VmRSS"), vm_kb(life.pid, "VmHWM")
        print(
            f"daemon rebuilding the index at start: ready in {life.ready_s:.2f} s, index "
            f"built {built_s:.0f} s after the start; RSS then {rebuilt / 1024:.0f} MB, "
            f"peak {rebuilt_peak / 1024:.0f} MB"
        )
        daemon.stop()
    finally:
        daemon.close()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"FIGURE\tdaemon RSS settled (100k history)\t{settled / 1024:.1f}\tMB\t-\t")
    print(f"FIGURE\tdaemon RSS after pages (100k history)\t{loaded / 1024:.1f}\tMB\t-\t")
    print(f"FIGURE\tdaemon RSS after writes (100k history)\t{wrote / 1024:.1f}\tMB\t-\t")
    print(f"FIGURE\tdaemon RSS peak (100k history)\t{peak / 1024:.1f}\tMB\t-\t")
    print(f"FIGURE\tdaemon RSS peak, index rebuilt\t{rebuilt_peak / 1024:.1f}\tMB\t-\t")


def since(now: datetime, hours: int) -> str:
    return f"{now - timedelta(hours=hours):%Y-%m-%dT%H:%M:%SZ}"


def prefill(data: Path, n: int, n_contacts: int, now: datetime) -> list[Interaction]:
    """Write history months (with their journals, as the store leaves them), contacts and the
    inbox as the store's files."""
    rnd = random.Random(7)
    contact_numbers = [f"+4420794{i:05d}" for i in range(n_contacts)]
    strangers = [f"+4411349{i:05d}" for i in range(15000)]
    contacts = {
        str(i + 1): {
            "name": f"Customer {i:05d}",
            "company": f"Company {i % 700}",
            "phones": [{"number": num, "label": "work"}],
            "email": f"c{i}@example.com",
            "notes": "",
            "tags": ["customer"] if i % 3 else ["supplier"],
            "vip": i % 50 == 0,
            "blocked": i % 97 == 0 and i % 50 != 0,
            "created": now.isoformat(),
            "updated": now.isoformat(),
        }
        for i, num in enumerate(contact_numbers)
    }
    (data / "contacts.json").write_text(json.dumps({"contacts": contacts}))
    span = timedelta(days=365).total_seconds()
    months: dict[str, dict[str, dict]] = {}
    inbox: dict[str, dict] = {}
    items: list[Interaction] = []
    for k in range(n):
        start = now - timedelta(seconds=span * (n - k) / n)
        number = rnd.choice(contact_numbers) if rnd.random() < 0.6 else rnd.choice(strangers)
        roll = rnd.random()
        if roll < 0.55:
            channel, direction, outcome = "call", "in", rnd.choice(["answered"] * 5 + ["missed"])
        elif roll < 0.7:
            channel, direction, outcome = "call", "in", "voicemail"
        elif roll < 0.85:
            channel, direction, outcome = "sms", "in", "received"
        elif roll < 0.95:
            channel, direction, outcome = "sms", "out", "sent"
        else:
            channel, direction, outcome = "fax", "in", "received"
        recent = k > n - 300
        item = Interaction(
            channel=channel,  # type: ignore[arg-type]
            direction=direction,  # type: ignore[arg-type]
            outcome=outcome,
            start=start,
            number=number,
            line=rnd.choice(["line1", "line2"]),
            duration=rnd.randint(5, 400) if channel == "call" else 0.0,
            text=" ".join(rnd.sample(WORDS, 4) + ([RARE] if k % 1000 == 7 else []))
            if channel == "sms"
            else "",
            media=(f"media/{start:%Y/%m}/bench{k:08d}.mp3",) if outcome == "voicemail" else (),
            handled_at=None if recent else start + timedelta(hours=1),
            handled_by="" if recent else "Maria",
        )
        month = f"{start:%Y-%m}"
        table = months.setdefault(month, {})
        doc_id = len(table) + 1
        table[str(doc_id)] = item.to_record()
        rid = f"{month}:{doc_id}"
        if item.open:
            inbox[str(len(inbox) + 1)] = {"record": rid, "channel": channel, "line": item.line}
        items.append(item)
    (data / "history").mkdir(exist_ok=True)
    for month, table in months.items():
        (data / "history" / f"{month}.json").write_text(json.dumps({"records": table}))
        (data / "history" / f"{month}.json.journal").write_bytes(b"")
    (data / "inbox.json").write_text(json.dumps({"open": inbox}))
    return items


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    n_contacts = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    logging.disable(logging.WARNING)
    auth_module.HASH_METHOD = "scrypt:1024:8:1"
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        items = prefill(data, n, n_contacts, now)
        config = MachineConfig(store=StoreConfig(data_dir=tmp))
        store = Store(data)
        services = Services.build(config, store)
        services.settings.save_section(
            "business", {"name": "Bench Ltd", "timezone": "Europe/London", "country": "GB"}
        )
        services.stats.rebuild(items)
        del items
        print(
            f"prefill: {n} interactions, {n_contacts} contacts in {time.perf_counter() - t0:.1f} s"
        )
        t0 = time.perf_counter()
        services.history.start_index()  # the first start after an upgrade: read every month
        built = time.perf_counter() - t0
        services.history.close()
        store.close()
        size = sum(f.stat().st_size for f in (data / "index").iterdir()) / 1e6
        print(f"history index built from the store in {built:.1f} s ({size:.0f} MB on disk)")
        store = Store(data)
        services = Services.build(config, store)
        t0 = time.perf_counter()
        services.history.start_index()  # any later start: the snapshot
        opened = time.perf_counter() - t0
        print(f"history index opened from its snapshot in {opened * 1000:.0f} ms")
        print(f"FIGURE\thistory index open (100k)\t{opened * 1000:.1f}\tms\t-\t")
        services.system.clock_probe = lambda: ClockSync(True, "kernel", "bench")
        app = create_app(services)
        client = app.test_client()
        page = client.get("/setup").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        client.post(
            "/setup",
            data={
                "csrf_token": token,
                "name": "Bench Ltd",
                "timezone": "Europe/London",
                "country": "GB",
                "owner_email": "owner@example.com",
                "password": PASSWORD,
                "confirm": PASSWORD,
            },
        )
        rnd = random.Random(3)
        contact_ids = list(range(1, n_contacts + 1))
        pages = {
            "dashboard /": lambda: "/",
            "inbox /inbox/": lambda: "/inbox/",
            "inbox voicemail": lambda: "/inbox/?channel=voicemail&line=line2",
            "contacts /contacts/": lambda: "/contacts/",
            "timeline contact": lambda: f"/contacts/{rnd.choice(contact_ids)}",
            "timeline number": lambda: f"/numbers/+4411349{rnd.randrange(15000):05d}",
            "search name": lambda: f"/search?q=Customer+{rnd.randrange(n_contacts):05d}",
            "search number": lambda: f"/search?q=07946+{rnd.randrange(n_contacts):05d}",
            "search sms text": lambda: f"/search?q={rnd.choice(WORDS)}",
            "search rare word": lambda: f"/search?q={RARE}",
            "calls /calls/": lambda: "/calls/",
            "calls missed": lambda: "/calls/?outcome=missed",
            "calls by day": lambda: f"/calls/?day={now - timedelta(days=rnd.randrange(365)):%F}",
            "calls by number": lambda: f"/calls/?number={rnd.randrange(15000):05d}",
            "voicemail open": lambda: "/voicemail/",
            "voicemail all": lambda: "/voicemail/?show=all",
            "api inbox": lambda: "/api/v1/inbox",
            "api since 1 hour": lambda: f"/api/v1/interactions?since={since(now, 1)}",
            "api since 30 days": lambda: f"/api/v1/interactions?limit=500&since={since(now, 720)}",
        }
        _, secret = services.auth.create_token("bench")
        headers = {"Authorization": f"Bearer {secret}"}
        print(f"{'page':22} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        worst = 0.0
        for name, url in pages.items():
            h = headers if name.startswith("api") else {}
            warm = client.get(url(), headers=h)  # warm
            if b"Log out" not in warm.data and not name.startswith("api"):
                print("not logged in?", warm.status_code, warm.data[:200], file=sys.stderr)
                return 1
            times = []
            for _ in range(REQUESTS):
                path = url()
                t = time.perf_counter()
                response = client.get(path, headers=h)
                times.append((time.perf_counter() - t) * 1000)
                if response.status_code != 200:
                    print(f"{path}: HTTP {response.status_code}", file=sys.stderr)
                    return 1
            times.sort()
            p50, p95 = times[len(times) // 2], times[int(len(times) * 0.95) - 1]
            worst = max(worst, p95)
            print(f"{name:22} {p50:8.2f} {p95:8.2f} {times[-1]:8.2f}")
        verdict = "within" if worst <= TARGET_MS else "OVER"
        print(f"worst p95 {worst:.2f} ms: {verdict} the {TARGET_MS:.0f} ms target")
        print(f"FIGURE\thistory pages worst p95 (100k)\t{worst:.2f}\tms\t{TARGET_MS:g}\t<=")
        now_mb, peak_mb = rss_mb()
        print(
            f"memory (RSS) of the benchmark process itself: {now_mb:.0f} MB now, "
            f"{peak_mb:.0f} MB peak (with its own copies of the data; see the daemon below)"
        )
        figures = services.history.index.memory()
        print(
            f"open items {services.history.open_count()}; index: {figures['keys']} keys, "
            f"{figures['ids']} ids, {figures['records']} records"
        )
        services.history.close()
        store.close()
        daemon_memory(data, pages, now)
    return 0


if __name__ == "__main__":
    sys.exit(main())
