"""Public-holiday tables for the daemon, computed in a short-lived child process.

The `holidays` package costs about 10 MB resident once imported (its __init__ loads every
country it knows) and more once a table is built. The daemon needs far less: the configured
country's holidays for last year, this year and the next two, and, for the settings checks
and the business page, the list of countries and their regions. `HolidayTables` gets these
from `python -m firmware_app.holiday_calendar` (the child exits, and the package with it),
keeps them in `data_dir/holidays.json` (written atomically, so a power cut leaves the old
file or the new one) and serves them to the routing as its `HolidayProvider`.

When a table is missing (the first start, a new country, New Year, a preview of a far-off
date) a lookup starts the child and waits for it; only when the child cannot answer (it
failed or ran out of time) is the table computed in this process, as before, and logged:
a call is routed correctly whatever the memory it costs. The tables follow the settings
(SettingsChanged of `business`) and the calendar (a check every few hours).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import holiday_calendar
from ..children import kill_group
from ..errors import FrontdeskError
from ..holiday_calendar import YearTable
from ..routing import hours
from ..store.durable import atomic_write

if TYPE_CHECKING:
    from ..events import EventBus, SettingsChanged
    from ..settings.model import Settings
    from .scheduler import Scheduler

log = logging.getLogger(__name__)

FILE = "holidays.json"
FORMAT = 1
CHILD_TIMEOUT = 60.0
"""The child's time limit: on a Raspberry Pi Zero 2 W it needs a few seconds."""
KEEP_PLACES = 4
"""Tables kept for this many country/region pairs: the configured one first."""
CHECK_HOURS = 6
"""How often the tables are checked against the calendar (a new year needs a new table)."""

Place = tuple[str, str]
"""(country code, subdivision code or "")."""
Countries = Mapping[str, tuple[str, tuple[str, ...]]]


class HolidayTablesError(FrontdeskError):
    """The holiday-table child could not run, failed, or ran out of time."""


def years_around(today: dt.date) -> range:
    """The years kept ready: last year, this year and the next two."""
    return range(today.year - 1, today.year + 3)


class HolidayTables:
    """A `HolidayProvider` (firmware_app/routing/hours.py) backed by `data_dir/holidays.json`
    and a child process that fills it. Thread-safe; `close()` kills a running child."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        timeout: float = CHILD_TIMEOUT,
        python: str = sys.executable,
    ) -> None:
        self.path = Path(data_dir) / FILE
        self.timeout = timeout
        self._clock = clock
        self._python = python
        self._cond = threading.Condition()
        self._tables: dict[Place, dict[int, YearTable]] = {}
        self._has_catalogue = False
        self._configured: Place | None = None
        self._pending: dict[Place, set[int]] = {}
        self._pending_catalogue = False
        self._failed: set[tuple[Place, int] | None] = set()
        """Asked of the last child and not answered (None: the catalogue): served in-process."""
        self._worker: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False
        self._previous: hours.HolidayProvider | None = None
        self.children = 0
        """Child runs finished (answered or not)."""
        self.in_process = 0
        """Lookups that had to load the holidays package into this process."""
        self._load()

    # -- the file -----------------------------------------------------------------------------

    def _read(self) -> dict[str, Any] | None:
        """The file's document when it is ours and was made by the installed package."""
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable, computing the holiday tables again: %s", self.path, exc)
            return None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return None
        if doc.get("package") != holiday_calendar.package_version():
            log.info("the holidays package changed; computing the holiday tables again")
            return None
        return doc

    def _load(self) -> None:
        doc = self._read()
        if doc is None:
            return
        try:
            for entry in doc.get("tables", []):
                self._tables[(str(entry["country"]), str(entry["subdivision"]))] = _years(
                    entry["years"]
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning(
                "holiday tables in %s are damaged, computing them again: %s", self.path, exc
            )
            self._tables.clear()
        self._has_catalogue = isinstance(doc.get("catalogue"), dict)

    def _write(self, tables: Mapping[Place, Mapping[int, YearTable]], catalogue: Any) -> None:
        """Store `tables` and the catalogue; called on the refresh thread only."""
        doc = {
            "format": FORMAT,
            "package": holiday_calendar.package_version(),
            "tables": [
                {
                    "country": country,
                    "subdivision": subdivision,
                    "years": {
                        str(year): [[day.isoformat(), name] for day, name in table]
                        for year, table in sorted(years.items())
                    },
                }
                for (country, subdivision), years in tables.items()
            ],
        }
        if catalogue is not None:
            doc["catalogue"] = catalogue
        atomic_write(self.path, json.dumps(doc, ensure_ascii=False).encode())

    # -- the provider -------------------------------------------------------------------------

    def year(self, country: str, subdivision: str, year: int) -> YearTable:
        place = (country, subdivision)
        with self._cond:
            table = self._tables.get(place, {}).get(year)
            if table is not None:
                return table
            if not self._stopped and (place, year) not in self._failed:
                wanted = {year}
                if place == self._configured:
                    wanted.update(years_around(self._clock().date()))
                self._ask({place: wanted}, catalogue=False)
                self._wait(lambda: year in self._tables.get(place, {}), (place, year))
                table = self._tables.get(place, {}).get(year)
                if table is not None:
                    return table
            self.in_process += 1
        log.warning(
            "public holidays of %s%s for %d computed in the daemon itself (the table process "
            "could not give them); the holidays package stays loaded until a restart",
            country,
            f"-{subdivision}" if subdivision else "",
            year,
        )
        return hours.LIBRARY.year(country, subdivision, year)

    def countries(self) -> Countries:
        with self._cond:
            if not self._has_catalogue and not self._stopped and None not in self._failed:
                self._ask({}, catalogue=True)
                self._wait(lambda: self._has_catalogue, None)
            ready = self._has_catalogue
        if ready:
            try:
                doc = json.loads(self.path.read_bytes())
                return {
                    str(code): (str(name), tuple(str(s) for s in subdivisions))
                    for code, (name, subdivisions) in doc["catalogue"].items()
                }
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("the country list in %s is unreadable: %s", self.path, exc)
        with self._cond:
            self.in_process += 1
        log.warning("the list of holiday countries was built in the daemon itself")
        return hours.LIBRARY.countries()

    def _wait(self, ready: Callable[[], bool], item: tuple[Place, int] | None) -> None:
        """Wait (holding the condition) until `ready()`, the child gave up on `item`, or the
        child's time limit has passed with some to spare."""
        deadline = time.monotonic() + self.timeout + 5.0
        while not ready() and item not in self._failed and not self._stopped:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    # -- keeping the tables ready ---------------------------------------------------------------

    def has(self, country: str, subdivision: str, years: Iterable[int]) -> bool:
        """True when every one of `years` is on hand for the place (no child needed)."""
        with self._cond:
            have = self._tables.get((country, subdivision), {})
            return all(year in have for year in years)

    def ensure(self, country: str, subdivision: str) -> bool:
        """Make the tables of the configured place ready for the years around today, in the
        background. Returns True when a child was asked for something."""
        place = (country, subdivision)
        wanted = set(years_around(self._clock().date()))
        with self._cond:
            if place != self._configured:
                self._configured = place
                self._failed.clear()  # a new place: the child may well answer this time
            missing = wanted - set(self._tables.get(place, {}))
            self._failed -= {(place, year) for year in missing}
            if not self._has_catalogue:
                self._failed.discard(None)
            if not missing and self._has_catalogue:
                return False
            self._ask({place: missing} if missing else {}, catalogue=not self._has_catalogue)
            return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no child runs nor is due; True if so within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._worker is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def follow(
        self,
        settings: Callable[[], Settings],
        bus: EventBus,
        scheduler: Scheduler | None = None,
    ) -> Callable[[], None]:
        """Keep the tables of the configured country and region ready: now, when the business
        settings change, and every few hours (for the year turn). Returns an unsubscribe."""
        from ..events import SettingsChanged

        def check() -> None:
            business = settings().business
            self.ensure(business.country, business.subdivision)

        def changed(event: SettingsChanged) -> None:
            if "business" in event.sections:
                check()

        check()
        unsubscribe = bus.subscribe(SettingsChanged, changed)
        if scheduler is not None:
            scheduler.every(CHECK_HOURS).hours.named("holiday tables").do(check)
        return unsubscribe

    # -- the child ------------------------------------------------------------------------------

    def _ask(self, tables: Mapping[Place, set[int]], *, catalogue: bool) -> None:
        """Queue work for the child (holding the condition); start the refresh thread."""
        for place, years in tables.items():
            self._pending.setdefault(place, set()).update(years)
        self._pending_catalogue = self._pending_catalogue or catalogue
        if self._worker is None and not self._stopped:
            self._worker = threading.Thread(
                target=self._refresh, name="holiday-tables", daemon=True
            )
            self._worker.start()

    def _refresh(self) -> None:
        while True:
            with self._cond:
                if self._stopped or not (self._pending or self._pending_catalogue):
                    self._worker = None
                    self._cond.notify_all()
                    return
                tables, self._pending = self._pending, {}
                catalogue, self._pending_catalogue = self._pending_catalogue, False
            asked: set[tuple[Place, int] | None] = set()
            asked.update((place, year) for place, years in tables.items() for year in years)
            if catalogue:
                asked.add(None)
            request = {
                "tables": [
                    {"country": c, "subdivision": s, "years": sorted(years)}
                    for (c, s), years in tables.items()
                ],
                "catalogue": catalogue,
            }
            started = time.monotonic()
            try:
                reply = self._run_child(request)
                got, new_catalogue = _parse(reply, catalogue)
            except HolidayTablesError as exc:
                log.error("holiday tables: %s", exc)
                got, new_catalogue = {}, None
            self._store(got, new_catalogue)
            with self._cond:
                answered: set[tuple[Place, int] | None] = set()
                answered.update((place, year) for place, years in got.items() for year in years)
                if new_catalogue is not None:
                    answered.add(None)
                self._failed |= asked - answered
                self._failed -= answered
                self.children += 1
                self._cond.notify_all()
            log.info(
                "holiday tables ready: %s in %.1f s",
                ", ".join(
                    f"{c}{'-' + s if s else ''} {min(y)}-{max(y)}" for (c, s), y in got.items()
                )
                or ("country list" if new_catalogue is not None else "nothing"),
                time.monotonic() - started,
            )

    def _store(self, got: dict[Place, dict[int, YearTable]], catalogue: Any) -> None:
        """Merge a child's answer, write the file, then serve it (refresh thread only)."""
        if not got and catalogue is None:
            return
        with self._cond:
            tables = dict(self._tables)
            configured = self._configured
        for place, years in got.items():
            tables[place] = {**tables.pop(place, {}), **years}  # the newest last
        keep = [p for p in tables if p != configured][-(KEEP_PLACES - 1) :]
        if configured in tables:
            keep.insert(0, configured)
        tables = {p: tables[p] for p in keep}
        if catalogue is None and self._has_catalogue:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                catalogue = json.loads(self.path.read_bytes()).get("catalogue")
        try:
            self._write(tables, catalogue)
        except OSError as exc:  # served from memory all the same, computed again next start
            log.error("holiday tables could not be stored in %s: %s", self.path, exc)
        with self._cond:
            self._tables = tables
            self._has_catalogue = self._has_catalogue or catalogue is not None

    def _run_child(self, request: dict[str, Any]) -> Any:
        with self._cond:
            if self._stopped:
                raise HolidayTablesError("stopped (shutting down)")
            try:
                proc = subprocess.Popen(
                    [self._python, "-m", "firmware_app.holiday_calendar"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as exc:
                raise HolidayTablesError(f"the table process could not start ({exc})") from None
            self._proc = proc
        try:
            out, err = proc.communicate(json.dumps(request).encode(), timeout=self.timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.communicate()
            raise HolidayTablesError(
                f"the table process took longer than {self.timeout:.0f} s"
            ) from None
        finally:
            with self._cond:
                self._proc = None
        if proc.returncode != 0:
            why = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [
                f"code {proc.returncode}"
            ]
            raise HolidayTablesError(f"the table process failed ({why[0][:200]})")
        try:
            return json.loads(out)
        except ValueError as exc:
            raise HolidayTablesError(f"the table process answered nonsense ({exc})") from None

    # -- installing and closing -----------------------------------------------------------------

    def install(self) -> None:
        """Serve the routing's holiday lookups from here (hours.install_holiday_provider)."""
        self._previous = hours.install_holiday_provider(self)

    def close(self) -> None:
        """Kill a running child, refuse new ones, and give the routing its default back.
        Lookups after this are answered from memory or in this process. Safe twice."""
        with self._cond:
            self._stopped = True
            proc, worker = self._proc, self._worker
            self._cond.notify_all()
        if proc is not None:
            kill_group(proc)
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=2.0)
        if hours.holiday_provider() is self:
            hours.install_holiday_provider(self._previous)


def _years(raw: Mapping[str, Any]) -> dict[int, YearTable]:
    return {
        int(year): tuple((dt.date.fromisoformat(str(day)), str(name)) for day, name in rows)
        for year, rows in raw.items()
    }


def _parse(reply: Any, catalogue: bool) -> tuple[dict[Place, dict[int, YearTable]], Any]:
    """The tables and catalogue of a child's reply; HolidayTablesError when it is malformed."""
    got: dict[Place, dict[int, YearTable]] = {}
    try:
        for entry in reply["tables"]:
            place = (str(entry["country"]), str(entry["subdivision"]))
            if "error" in entry:
                log.warning(
                    "no holiday tables for %s: %s", "-".join(filter(None, place)), entry["error"]
                )
                continue
            got[place] = _years(entry["years"])
        found = reply.get("catalogue") if catalogue else None
        if found is not None:
            for code, (name, subdivisions) in found.items():
                if not isinstance(code, str) or not isinstance(name, str):
                    raise TypeError("a country without a name")
                if not all(isinstance(s, str) for s in subdivisions):
                    raise TypeError("a region code that is not text")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HolidayTablesError(f"the table process answered nonsense ({exc})") from None
    return got, found
