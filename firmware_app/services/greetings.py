"""Greetings: what callers hear for each mode and step, as 8 kHz PCM (the `GreetingSource`).

Each greeting is the default text (written from the business name, hours, closures and menus,
spoken by espeak-ng), the owner's own text, or an uploaded recording (checked by content,
size-capped, converted to 8 kHz mono and normalised). Spoken audio is cached in the media
store keyed by text, voice and speed.

The daemon stays light until a call needs sound: every greeting is spoken at start-up and after
a settings change in a short-lived child process (`media.speech.SpeechRenderer`), which takes
the audio libraries (numpy, soundfile, soxr) with it when it exits; the daemon only stores the
WAV files it sends back. The first ring of a call loads the libraries and the cached greetings
on a worker thread, while the line is still ringing, so the answered call plays at once. A
greeting missing from the cache when a call needs it is spoken in the daemon, never on a line's
thread before its cache was looked at.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ..errors import FieldProblem, FrontdeskError, SettingsError, StoreError
from ..events import EventBus, SettingsChanged
from ..media.speech import (
    PEAK_DBFS,
    RATE,
    TARGET_RMS_DBFS,
    TTS_TIMEOUT,
    SpeechError,
    SpeechJob,
    SpeechRenderer,
    Tts,
    normalise,
)
from ..modem.events import IncomingCall
from ..routing.plan import CHOICES_ONLY
from ..settings.greetings import FIXED_KEYS, MAX_TEXT, Greeting, greeting_key, voice_name
from ..settings.model import Settings, settings_to_dict
from ..settings.routing import DAY_NAMES, WEEKDAYS, Hours, parse_date, parse_interval
from ..store import Store
from ..workers import OnDemandExecutor
from .settings import SettingsService

if TYPE_CHECKING:
    from ..media.codecs import Samples

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_SECONDS = 300.0
SILENT_DBFS = -55.0
SECTIONS_USED = frozenset({"business", "hours", "holidays", "rules", "greetings"})
DB, CACHE_KEY = "greetings", "tts_cache"

LABELS: dict[str, tuple[str, str]] = {
    "open": ("Open", "When the office is open, before the call is put through."),
    "closed": ("Closed", "Outside opening hours, before voicemail."),
    "holiday": ("Public holiday", "On a public holiday the office closes for."),
    "voicemail": ("Voicemail prompt", "Just before the beep."),
    "connecting": ("Connecting you", "Before Frontdesk puts the caller through to staff."),
    "accept_call": ("Staff: press 1 to accept", "Played to the staff member who picks up."),
    "not_accepted": (
        "Call not accepted",
        "To blocked or rejected callers on analog lines, when set to hear it before the "
        "hang-up (Settings, Calls).",
    ),
    "recording_notice": ("Recording notice", "Before a call that is recorded."),
    "goodbye": ("Goodbye", "At the end of the call."),
    "screen": ("Screening", "Asks callers to press 1 before anything else (robocalls)."),
}


class GreetingError(FrontdeskError):
    """An upload or a greeting change was refused; the message says why and what to do."""


# -- speaking times, days and hours the way people say them --------------------------------

_ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
]
_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty"}
_ORDINAL = [
    *("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"),
    *("tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth"),
    *("seventeenth", "eighteenth", "nineteenth", "twentieth"),
]


def number_words(n: int) -> str:
    """0 to 59 in words: 7 -> "seven", 45 -> "forty-five"."""
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def ordinal_words(n: int) -> str:
    """1 to 31: "first", "twenty-second", "thirty-first"."""
    if n <= 20:
        return _ORDINAL[n - 1]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ORDINAL[ones - 1]}" if ones else "ieth")


def say_time(minutes: int, *, part_of_day: bool = False) -> str:
    """Minutes after midnight as said aloud: 540 "nine", 1050 "five thirty", 725 "twelve oh
    five", 720 "noon", 0 or 1440 "midnight"; `part_of_day` adds "in the morning" etc."""
    minutes %= 1440
    h, m = divmod(minutes, 60)
    if m == 0 and h == 12:
        return "noon"
    if m == 0 and h == 0:
        return "midnight"
    hour = number_words(h % 12 or 12)
    if m == 0:
        text = hour
    elif m < 10:
        text = f"{hour} oh {number_words(m)}"
    else:
        text = f"{hour} {number_words(m)}"
    if part_of_day:
        if h < 5:
            text += " at night"
        elif h < 12:
            text += " in the morning"
        elif h < 18:
            text += " in the afternoon"
        else:
            text += " in the evening"
    return text


def say_interval(text: str) -> str:
    """ "09:00-17:30" -> "nine to five thirty"; unusual hours name the part of the day."""
    parsed = parse_interval(text)
    if parsed is None:
        return text
    start, end = parsed
    if start == 0 and end == 1440:
        return "all day"
    usual = 5 * 60 <= start < 17 * 60 and end <= 22 * 60
    return f"{say_time(start, part_of_day=not usual)} to {say_time(end, part_of_day=not usual)}"


def say_list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def say_days(days: list[int]) -> str:
    """Weekday numbers (0 Monday) as "Monday to Friday", "Monday and Wednesday"..."""
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    names = [DAY_NAMES[WEEKDAYS[i]] for i in range(7)]
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{names[run[0]]} to {names[run[-1]]}")
        else:
            parts.extend(names[d] for d in run)
    return say_list(parts)


def say_hours(hours: Hours) -> str:
    """The weekly hours as one sentence: "We are open Monday to Friday, nine to five thirty,
    and Saturday, ten to one." """
    week = hours.weekly()
    if all(day == ["00:00-24:00"] for day in week):
        return "We are open around the clock."
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, intervals in enumerate(week):
        if intervals:
            groups.setdefault(tuple(intervals), []).append(i)
    if not groups:
        return "We have no regular opening hours."
    parts = [
        f"{say_days(days)}, {say_list([say_interval(t) for t in intervals])}"
        for intervals, days in sorted(groups.items(), key=lambda kv: kv[1][0])
    ]
    if len(parts) == 1:
        return f"We are open {parts[0]}."
    return "We are open " + ", ".join(parts[:-1]) + ", and " + parts[-1] + "."


def say_date(day: dt.date) -> str:
    return f"{day:%A}, the {ordinal_words(day.day)} of {day:%B}"


def _digit_words(digit: str, country: str) -> str:
    if digit == "*":
        return "star"
    if digit == "#":
        return "pound" if country in ("US", "CA") else "the hash key"
    return digit


_ACTION_WORDS = {
    "ring_staff": "To speak to someone",
    "voicemail": "To leave a message",
    "message": "To hear more",
    "repeat": "To hear these choices again",
}


def default_text(key: str, settings: Settings) -> str:
    """The words Frontdesk says for `key` when the owner set nothing."""
    name = settings.business.name.strip() or "us"
    thanks = f"Thanks for calling {name}."
    hours = say_hours(settings.hours)
    country = settings.business.country
    if key == "open":
        return f"{thanks} Please stay on the line."
    if key == "closed":
        return f"{thanks} We are closed. {hours}"
    if key == "holiday":
        return f"{thanks} We are closed today for the public holiday. {hours}"
    if key == "voicemail":
        end = _digit_words("#", country)
        return f"Please leave a message after the tone. When you are done, hang up or press {end}."
    if key == "connecting":
        return "Please hold while we connect you."
    if key == "accept_call":
        return f"This is a call for {name}. Press 1 to accept it."
    if key == "not_accepted":
        return f"Sorry, {name} does not accept this call. Goodbye."
    if key == "recording_notice":
        return "This call is recorded."
    if key == "goodbye":
        return f"Thank you for calling {name}. Goodbye."
    if key == "screen":
        return f"{thanks} To be put through, please press 1."
    kind, _, ident = key.partition(":")
    if kind == "closure":
        for closure in settings.holidays.closures:
            if closure.id == ident:
                reason = closure.reason.strip()
                why = f" for {reason}" if reason else ""
                last = parse_date(closure.end)
                back = f" We are back on {say_date(last + dt.timedelta(days=1))}." if last else ""
                return f"{thanks} We are closed{why}.{back}"
        return f"{thanks} We are closed."
    if kind == "menu":
        # `menu:<mode>:choices`: the choices alone, said after the owner's own greeting.
        ident, _, part = ident.partition(":")
        for menu in settings.rules.menus:
            if menu.mode == ident and menu.options:
                # While the time's greeting has its default words, the menu is the first
                # thing a caller hears (routing plays it instead of that greeting), so it
                # starts with that greeting's welcome.
                said = [] if part == "choices" else [_menu_welcome(ident, settings)]
                for o in menu.options:
                    what = o.label.strip() or _ACTION_WORDS.get(o.action, "")
                    said.append(
                        f"{what[:1].upper()}{what[1:]}, press {_digit_words(o.digit, country)}."
                    )
                return " ".join(said)
        return ""
    if kind == "message":
        return "This message has not been recorded yet."
    return ""


def _menu_welcome(mode: str, settings: Settings) -> str:
    """What a key menu of `mode` says before its choices: the mode's welcome (the open
    greeting's thanks, the closed or holiday greeting with the hours)."""
    if mode == "open":
        name = settings.business.name.strip() or "us"
        return f"Thanks for calling {name}."
    if mode in ("closed", "holiday"):
        return default_text(mode, settings)
    name = settings.business.name.strip() or "us"
    return f"Thanks for calling {name}. We are closed."


def menu_replaces(key: str, settings: Settings) -> bool:
    """Whether a key menu is said at the times greeting `key` is for (routing: with its
    default words the menu is said in its place, the menu's default words beginning with
    its welcome; with the owner's words or recording it is played first, then the menu; a
    holiday or closure without a menu of its own uses the closed menu)."""
    kind = key.partition(":")[0]
    wanted = {
        "open": ("open",),
        "closed": ("closed",),
        "holiday": ("holiday", "closed"),
        "closure": ("closure", "closed"),
    }.get(kind, ())
    return any(m.mode in wanted and m.options for m in settings.rules.menus)


MENU_NOTE = (
    " A key menu is set for this time: with your own words or recording this greeting is "
    "played first, then the menu; with the default words the menu is said in its place, "
    "starting with the same welcome."
)


def spoken_keys(settings: Settings) -> list[str]:
    """Every greeting key a call can play: `known_keys`, and each menu's choices alone
    (`menu:<mode>:choices`, said after the owner's own greeting for its time)."""
    keys = known_keys(settings)
    keys += [f"menu:{m.mode}:choices" for m in settings.rules.menus if m.options]
    return list(dict.fromkeys(keys))


def known_keys(settings: Settings) -> list[str]:
    """Every greeting key the current settings can play, in page order."""
    keys = list(FIXED_KEYS)
    keys += [f"closure:{c.id}" for c in settings.holidays.closures]
    keys += [f"menu:{m.mode}" for m in settings.rules.menus if m.options]
    messages = sorted(
        {
            o.target
            for m in settings.rules.menus
            for o in m.options
            if o.action == "message" and o.target
        }
    )
    keys += [f"message:{t}" for t in messages if greeting_key(f"message:{t}") is None]
    return keys


def label_for(key: str, settings: Settings) -> tuple[str, str]:
    note = MENU_NOTE if menu_replaces(key, settings) else ""
    if key in LABELS:
        label, words = LABELS[key]
        return label, words + note
    kind, _, ident = key.partition(":")
    if kind == "closure":
        reason = next((c.reason for c in settings.holidays.closures if c.id == ident), "")
        return f"Closure: {reason or ident}", "During this closure, before voicemail." + note
    if kind == "menu":
        return f"Key menu ({ident})", (
            "What callers hear at this time: the welcome, then the choices. When the "
            "greeting for this time has your own words or recording, callers hear it first "
            "and then these words; the default words then leave out the welcome."
        )
    if kind == "message":
        return f"Message: {ident}", "Played when a caller picks it in a key menu."
    return key, ""


# -- audio helpers ----------------------------------------------------------------------------


def sniff(data: bytes) -> str | None:
    """The audio container by its first bytes: wav, flac, ogg, mp3; None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def convert_upload(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Samples:
    """An uploaded recording as normalised 8 kHz mono int16; GreetingError says what is wrong."""
    import numpy as np

    from ..media.codecs import read_wav, resample

    if not data:
        raise GreetingError("the file is empty: choose a recording (WAV, MP3, OGG or FLAC)")
    if len(data) > max_bytes:
        raise GreetingError(
            f"the file is {len(data) / 1e6:.1f} MB; recordings up to "
            f"{max_bytes / 1e6:.0f} MB are accepted (a 5-minute MP3 is about 5 MB)"
        )
    kind = sniff(data)
    if kind is None:
        raise GreetingError("this is not a WAV, MP3, OGG or FLAC recording (checked by content)")
    try:
        samples, rate = read_wav(data)
    except Exception as exc:  # libsndfile refuses it: damaged or not audio after all
        raise GreetingError(f"the {kind.upper()} file could not be read as audio ({exc})") from None
    if rate <= 0 or samples.size == 0:
        raise GreetingError("the recording holds no sound")
    seconds = samples.size / rate
    if seconds > MAX_SECONDS:
        raise GreetingError(
            f"the recording is {seconds:.0f} s long; "
            f"greetings up to {MAX_SECONDS:.0f} s are accepted"
        )
    pcm = resample(samples, rate, RATE)
    level = float(np.sqrt(np.mean((pcm.astype(np.float64) / 32768.0) ** 2)))
    if level <= 10 ** (SILENT_DBFS / 20):
        raise GreetingError("the recording is silent: check the microphone and record it again")
    return normalise(pcm)


@dataclasses.dataclass(frozen=True, slots=True)
class GreetingInfo:
    """One greeting as the page shows it."""

    key: str
    label: str
    purpose: str
    mode: str  # default | text | recording
    text: str  # the words said (own or default); "" for a recording
    default_text: str
    own_text: str
    recording: str
    voice: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Spec:
    mode: str
    text: str
    voice: str
    speed: int
    recording: str

    def tts_hash(self) -> str:
        raw = f"{self.voice}\0{self.speed}\0{self.text}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]


class GreetingsService:
    """The `GreetingSource` of call sessions, and what the greetings page changes."""

    def __init__(
        self,
        store: Store,
        settings: SettingsService,
        bus: EventBus | None = None,
        *,
        tts: Tts | None = None,
        background: bool = False,
    ) -> None:
        self._store = store
        self._settings = settings
        self._bus = bus
        self.tts = tts or Tts()
        self._renderer = SpeechRenderer(self.tts.program, self.tts.timeout)
        self._lock = threading.RLock()  # the memory cache and speaking in this process
        self._cache_lock = threading.Lock()  # the store document `greetings/tts_cache`
        self._memory: dict[str, tuple[_Spec, Samples]] = {}
        self._inflight: dict[str, threading.Event] = {}  # hashes the child is speaking now
        self._background = background
        self._closed = False
        self._pool_lock = threading.Lock()
        self._pool: OnDemandExecutor | None = None
        self._warm_pool: OnDemandExecutor | None = None
        self._warming: Future[int] | None = None
        self.prepared: Future[int] | None = None  # the latest preparation (start-up, changes)
        self.generated = 0  # texts spoken by espeak-ng (not from the cache): for tests and logs
        self._unsubscribe: list[Callable[[], None]] = []
        if bus is not None:
            self._unsubscribe.append(bus.subscribe(SettingsChanged, self._on_settings_changed))

    # -- GreetingSource ---------------------------------------------------------------------

    def audio(self, key: str) -> Samples:
        """The greeting as 8 kHz PCM; a generated default when the owner set none."""
        from ..media import tones

        if key == "beep":
            return tones.beep()
        settings = self._settings.get()
        spec = self._spec(key, settings)
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None and hit[0] == spec:
                return hit[1]
            pcm = self._render(key, spec)
            self._memory[key] = (spec, pcm)
            return pcm

    def wav(self, key: str) -> bytes:
        """The greeting as a WAV file (the page's preview player). A stored recording or cached
        speech is sent as it is on disk, without loading the audio libraries."""
        if key != "beep":
            data = self._stored_wav(self._spec(key, self._settings.get()))
            if data is not None:
                return data
        from ..media.codecs import write_wav

        return write_wav(self.audio(key), RATE)

    # -- what the page shows ----------------------------------------------------------------

    def keys(self) -> list[str]:
        return known_keys(self._settings.get())

    def info(self, key: str) -> GreetingInfo:
        settings = self._settings.get()
        if greeting_key(key) is not None and key not in known_keys(settings):
            raise KeyError(key)
        label, purpose = label_for(key, settings)
        own = settings.greetings.get(key)
        default = default_text(key, settings)
        mode = own.mode if own is not None else "default"
        text = own.text if own is not None and own.mode == "text" else default
        return GreetingInfo(
            key=key,
            label=label,
            purpose=purpose,
            mode=mode,
            text="" if mode == "recording" else text,
            default_text=default,
            own_text=own.text if own is not None else "",
            recording=own.recording if own is not None and mode == "recording" else "",
            voice=(own.voice if own is not None else "") or settings.greetings.voice,
        )

    def all(self) -> list[GreetingInfo]:
        return [self.info(k) for k in self.keys()]

    # -- changes ----------------------------------------------------------------------------

    def set_text(self, key: str, text: str, voice: str = "") -> None:
        """Say `text` for `key` (spoken with `voice`, or the default voice)."""
        text = text.replace("\r\n", "\n").strip()
        problems = []
        if not text:
            problems.append(FieldProblem("text", text, "some words to say"))
        elif len(text) > MAX_TEXT:
            problems.append(FieldProblem("text", f"{len(text)} characters", f"up to {MAX_TEXT}"))
        if voice_name(voice) is not None:
            problems.append(FieldProblem("voice", voice, voice_name(voice) or ""))
        if problems:
            raise SettingsError(problems, "greetings")
        self._update(key, {"mode": "text", "text": text, "voice": voice})

    def upload(self, key: str, data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
        """Store an uploaded recording for `key`; returns its media reference."""
        from ..media.codecs import write_wav

        self._check_key(key)
        pcm = convert_upload(data, max_bytes=max_bytes)
        ref = self._store.media.write(write_wav(pcm, RATE), "wav")
        try:
            self._update(key, {"mode": "recording", "recording": ref})
        except Exception:
            self._store.media.delete(ref)
            raise
        log.info("greeting %s: recording stored (%.1f s)", key, pcm.size / RATE)
        return ref

    def reset(self, key: str) -> None:
        """Back to the default text (an uploaded recording is deleted)."""
        self._check_key(key)
        settings = self._settings.get()
        items = [dataclasses.asdict(g) for g in settings.greetings.items if g.key != key]
        self._save(settings, {"items": items})

    def set_voice(self, voice: str, speed: int) -> None:
        settings = self._settings.get()
        self._save(settings, {"voice": voice, "speed": speed})

    def voices(self) -> list[tuple[str, str]]:
        return self.tts.voices()

    # -- preparing and warming ----------------------------------------------------------------

    def start(self) -> Future[int]:
        """From now on, speak greetings again when the settings change and load them at a
        call's first ring; speak the missing ones now (in a child process)."""
        self._background = True
        if self._bus is not None:
            self._unsubscribe.append(self._bus.subscribe(IncomingCall, self._on_ring))
        return self.prepare()

    def prepare(self) -> Future[int]:
        """Speak every greeting missing from the cache, in a child process started from the
        worker thread (start-up, after settings changed). The future gives how many texts
        were spoken."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = OnDemandExecutor("greetings")
            self.prepared = self._pool.submit(self._prepare_all)
            return self.prepared

    def warm(self) -> Future[int]:
        """Load the audio libraries and every greeting that is ready into memory, on a worker
        thread (a call's first ring: the line is answered seconds later). Returns how many
        greetings are in memory."""
        with self._pool_lock:
            if self._warming is not None and not self._warming.done():
                return self._warming
            if self._warm_pool is None:
                self._warm_pool = OnDemandExecutor("warm")
            self._warming = self._warm_pool.submit(self._warm_all)
            return self._warming

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self._closed = True
        self.tts.stop()  # a greeting being spoken now ends at once
        self._renderer.stop()  # and so does the child process
        with self._pool_lock:
            pools, self._pool, self._warm_pool = (self._pool, self._warm_pool), None, None
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def _prepare_all(self) -> int:
        """Speak the texts whose audio is not cached yet, in one child process."""
        if self._closed:
            return 0
        settings = self._settings.get()
        cache = self._cache()
        jobs: dict[str, SpeechJob] = {}
        for key in spoken_keys(settings):
            spec = self._spec(key, settings)
            if spec.mode != "text" or not spec.text.strip():
                continue  # recordings are files already; nothing to say is silence
            digest = spec.tts_hash()
            if digest not in jobs and not self._on_disk(cache.get(digest)):
                jobs[digest] = SpeechJob(digest, spec.text, spec.voice, spec.speed)
        spoken = 0
        if jobs and not self.tts.available:
            log.warning("%s is not installed: spoken greetings are silence", self.tts.program)
        elif jobs:
            with self._cache_lock:
                for digest in jobs:
                    self._inflight.setdefault(digest, threading.Event())
            try:
                spoken = self._renderer.render(list(jobs.values()), self._rendered)
            except (SpeechError, StoreError, OSError) as exc:
                if not self._closed:
                    log.warning("greetings could not be spoken: %s", exc)
            finally:
                with self._cache_lock:
                    for digest in jobs:
                        event = self._inflight.pop(digest, None)
                        if event is not None:
                            event.set()
            log.info("greetings: %d of %d spoken", spoken, len(jobs))
        self._prune()
        return spoken

    def _rendered(self, digest: str, wav: bytes | None, error: str) -> None:
        """One text back from the child process: stored before anyone is told it is there."""
        if wav is None:
            log.error("a greeting cannot be spoken: %s", error)
        else:
            self._store_spoken(digest, wav)
            self.generated += 1
        with self._cache_lock:
            event = self._inflight.pop(digest, None)
        if event is not None:
            event.set()

    def _warm_all(self) -> int:
        settings = self._settings.get()
        cache = self._cache()
        ready = 0
        for key in spoken_keys(settings):
            if self._closed:
                break
            spec = self._spec(key, settings)
            spoken = spec.mode == "text" and bool(spec.text.strip())
            if spoken and not self._on_disk(cache.get(spec.tts_hash())):
                continue  # not spoken yet: the call waits for it, not this warm-up
            try:
                self.audio(key)
                ready += 1
            except Exception as exc:
                log.warning("greeting %s could not be loaded: %s", key, exc)
        return ready

    def _on_ring(self, event: IncomingCall) -> None:
        if not self._closed:
            self.warm()  # handlers return at once; the loading runs on the warm-up thread

    def _on_settings_changed(self, event: SettingsChanged) -> None:
        if SECTIONS_USED & set(event.sections) and self._background and not self._closed:
            self.prepare()  # handlers return at once; the work runs on the worker thread

    # -- internals --------------------------------------------------------------------------

    def _check_key(self, key: str) -> None:
        if greeting_key(key) is not None:
            raise GreetingError(f"{key!r} is not a greeting")

    def _spec(self, key: str, settings: Settings) -> _Spec:
        g = settings.greetings
        # A menu's choices alone are the menu's own words or recording when the owner set
        # them (said as they are), else its default words without the welcome.
        base = key.removesuffix(CHOICES_ONLY) if key.startswith("menu:") else key
        own = g.get(base)
        if own is not None and own.mode == "recording" and own.recording:
            return _Spec("recording", "", "", 0, own.recording)
        text = own.text if own is not None and own.mode == "text" else default_text(key, settings)
        voice = (own.voice if own is not None else "") or g.voice
        return _Spec("text", text, voice, g.speed, "")

    def _render(self, key: str, spec: _Spec) -> Samples:
        from ..media import tones
        from ..media.codecs import read_wav, resample, write_wav

        if spec.mode == "recording":
            try:
                pcm, rate = read_wav(self._store.media.path(spec.recording))
                return resample(pcm, rate, RATE)
            except (StoreError, OSError, RuntimeError) as exc:
                log.error("greeting %s: recording %s unreadable (%s)", key, spec.recording, exc)
                settings = self._settings.get()
                g = settings.greetings
                spec = _Spec("text", default_text(key, settings), g.voice, g.speed, "")
        if not spec.text.strip():
            return tones.silence(0.3)
        digest = spec.tts_hash()
        self._wait_inflight(digest)
        ref = self._cache().get(digest)
        if ref:
            try:
                pcm, rate = read_wav(self._store.media.path(ref))
                return resample(pcm, rate, RATE)
            except (StoreError, OSError, RuntimeError):
                log.info("greeting cache %s missing; speaking it again", ref)
        try:
            pcm = self.tts.speak(spec.text, spec.voice, spec.speed)
        except SpeechError as exc:
            log.error("greeting %s cannot be spoken: %s", key, exc)
            return tones.silence(0.3)
        self.generated += 1
        self._store_spoken(digest, write_wav(pcm, RATE))
        return pcm

    def _stored_wav(self, spec: _Spec) -> bytes | None:
        """The WAV file behind `spec` as stored (a recording, or cached speech); None when
        there is none and it must be made."""
        if spec.mode == "recording":
            ref = spec.recording
        elif spec.text.strip():
            digest = spec.tts_hash()
            self._wait_inflight(digest)
            ref = self._cache().get(digest, "")
        else:
            return None
        if not ref:
            return None
        try:
            return self._store.media.read(ref)
        except StoreError:
            return None

    def _wait_inflight(self, digest: str) -> None:
        """When the child process is speaking this text now, wait for it (bounded)."""
        with self._cache_lock:
            event = self._inflight.get(digest)
        if event is not None:
            event.wait(self.tts.timeout + 5.0)

    def _on_disk(self, ref: str | None) -> bool:
        if not ref:
            return False
        try:
            return self._store.media.path(ref).is_file()
        except StoreError:
            return False

    def _store_spoken(self, digest: str, wav: bytes) -> None:
        """Keep spoken audio: the file is written (atomically) before the cache names it."""
        ref = self._store.media.write(wav, "wav")
        with self._cache_lock:
            cache = self._cache()
            old = cache.get(digest)
            cache[digest] = ref
            self._store.put_document(DB, CACHE_KEY, {"refs": cache})
        if old and old != ref:
            with contextlib.suppress(StoreError):
                self._store.media.delete(old)

    def _cache(self) -> dict[str, str]:
        doc = self._store.get_document(DB, CACHE_KEY) or {}
        refs = doc.get("refs", {})
        return dict(refs) if isinstance(refs, dict) else {}

    def _prune(self) -> None:
        """Delete spoken audio no current greeting uses."""
        settings = self._settings.get()
        wanted = {self._spec(k, settings).tts_hash() for k in spoken_keys(settings)}
        with self._cache_lock:
            cache = self._cache()
            stale = {h: r for h, r in cache.items() if h not in wanted}
            if not stale:
                return
            self._store.put_document(
                DB, CACHE_KEY, {"refs": {h: r for h, r in cache.items() if h in wanted}}
            )
        for ref in stale.values():  # the cache no longer names them
            with contextlib.suppress(StoreError):
                self._store.media.delete(ref)

    def _update(self, key: str, fields: dict[str, Any]) -> None:
        self._check_key(key)
        settings = self._settings.get()
        items = [dataclasses.asdict(g) for g in settings.greetings.items]
        current = next((i for i in items if i["key"] == key), None)
        if current is None:
            current = dataclasses.asdict(Greeting(key=key))
            items.append(current)
        old_ref = current.get("recording", "")
        current.update(fields)
        if current["mode"] != "recording":
            current["recording"] = ""
        self._save(settings, {"items": items})
        if old_ref and old_ref != current.get("recording"):
            self._forget_recording(old_ref)

    def _save(self, settings: Settings, fields: dict[str, Any]) -> None:
        data = settings_to_dict(settings)["greetings"]
        old = {g.recording for g in settings.greetings.items if g.recording}
        data.update(fields)
        self._settings.save_section("greetings", data)
        now = {g.recording for g in self._settings.get().greetings.items if g.recording}
        for ref in old - now:
            self._forget_recording(ref)

    def _forget_recording(self, ref: str) -> None:
        in_use = {g.recording for g in self._settings.get().greetings.items}
        if ref not in in_use:
            with contextlib.suppress(StoreError):
                self._store.media.delete(ref)


__all__ = [
    "PEAK_DBFS",
    "RATE",
    "TARGET_RMS_DBFS",
    "TTS_TIMEOUT",
    "GreetingError",
    "GreetingInfo",
    "GreetingsService",
    "SpeechError",
    "Tts",
    "convert_upload",
    "default_text",
    "known_keys",
    "normalise",
    "say_hours",
    "say_interval",
    "say_time",
    "sniff",
    "spoken_keys",
]
