"""Contacts: people and companies with their numbers, VIP and blocked flags, and staff notes.

Numbers are stored in E.164 (read with the business's country) and shown the local way.
An in-memory index (number -> contact, search text) is rebuilt only after a change, so
caller lookups and searches never scan the database. Never talks to a modem.

The VIP and blocked flags and the call rules' allow and block lists are one list each:
a number is flagged on its contact when it has one, else it is an entry of the call
rules' list (`set_number_flag`); saving a contact takes over the exact entries of its
numbers as flags, and deleting a flagged contact gives its numbers back to the list, so a
caller is never let through or turned away differently because of where the flag sits.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from .. import numbers
from ..errors import FieldProblem, FrontdeskError, ValidationError
from ..events import EventBus
from ..routing.rules import matching_entry
from ..settings.model import Settings
from ..store import Store
from .history import ALL, HistoryService, Interaction, contact_key, number_key
from .history_index import fold, words_of

log = logging.getLogger(__name__)

DATABASE = "contacts"
NAME_MAX = 120
TEXT_MAX = 4000
TAG_MAX = 40
NUMBERS_MAX = 10
LABELS = ("mobile", "work", "home", "fax", "other")


class ContactError(FrontdeskError):
    """A contact that cannot be stored as given."""


@dataclasses.dataclass(frozen=True, slots=True)
class Phone:
    number: str  # E.164, or digits when it cannot be read as a phone number
    label: str = "mobile"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    id: int = 0
    name: str = ""
    company: str = ""
    phones: tuple[Phone, ...] = ()
    email: str = ""
    notes: str = ""
    tags: tuple[str, ...] = ()
    vip: bool = False
    blocked: bool = False
    created: str = ""
    updated: str = ""

    @property
    def title(self) -> str:
        """What a list shows: the name, else the company, else the first number."""
        return self.name or self.company or (self.phones[0].number if self.phones else "?")

    @property
    def numbers(self) -> tuple[str, ...]:
        return tuple(p.number for p in self.phones)

    def to_doc(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "company": self.company,
            "phones": [{"number": p.number, "label": p.label} for p in self.phones],
            "email": self.email,
            "notes": self.notes,
            "tags": list(self.tags),
            "vip": self.vip,
            "blocked": self.blocked,
            "created": self.created,
            "updated": self.updated,
        }

    @classmethod
    def from_doc(cls, doc_id: int, doc: Mapping[str, Any]) -> Contact:
        return cls(
            id=doc_id,
            name=str(doc.get("name", "")),
            company=str(doc.get("company", "")),
            phones=tuple(
                Phone(str(p.get("number", "")), str(p.get("label", "other")))
                for p in doc.get("phones", ())
                if isinstance(p, Mapping)
            ),
            email=str(doc.get("email", "")),
            notes=str(doc.get("notes", "")),
            tags=tuple(str(t) for t in doc.get("tags", ())),
            vip=bool(doc.get("vip", False)),
            blocked=bool(doc.get("blocked", False)),
            created=str(doc.get("created", "")),
            updated=str(doc.get("updated", "")),
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Draft:
    """A contact as typed or imported, before its numbers are read. `line`: source line."""

    name: str = ""
    company: str = ""
    numbers: tuple[tuple[str, str], ...] = ()  # (number as written, label)
    email: str = ""
    notes: str = ""
    tags: tuple[str, ...] = ()
    vip: bool = False
    blocked: bool = False
    line: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Note:
    """A staff note about a contact or a bare number."""

    id: int
    text: str
    by: str
    at: datetime
    contact_id: int | None
    number: str
    handled_at: datetime | None = None  # a note can be marked handled (done), like a record
    handled_by: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    message: str


Flag = Literal["vip", "blocked"]
LIST_OF: dict[str, str] = {"vip": "allow", "blocked": "block"}  # the call rules' list per flag


@dataclasses.dataclass(frozen=True, slots=True)
class Standing:
    """How routing treats a number: put through (VIP), turned away (blocked) or neither, and
    what decides it: a contact's flag, or an entry of the call rules' allow or block list
    (the number itself, or a prefix such as `+44870*`)."""

    flag: str = ""  # "vip", "blocked" or ""
    contact: Contact | None = None  # the flagged contact
    entry: str = ""  # the call rules' entry that matches, when no contact's flag decides it

    @property
    def by_prefix(self) -> bool:
        return self.entry.strip().endswith("*")


@dataclasses.dataclass(slots=True)
class ImportResult:
    added: int = 0
    updated: int = 0
    problems: list[RowProblem] = dataclasses.field(default_factory=list)


class _Index:
    """Everything a lookup or a search needs, made once per change of the contacts table."""

    def __init__(self, contacts: list[Contact]) -> None:
        self.contacts = {c.id: c for c in contacts}
        self.by_number: dict[str, int] = {}
        for c in sorted(contacts, key=lambda c: c.id):
            for n in c.numbers:
                self.by_number.setdefault(n, c.id)
        self.vip = frozenset(n for c in contacts if c.vip for n in c.numbers)
        self.blocked = frozenset(n for c in contacts if c.blocked for n in c.numbers)
        self.sorted = sorted(contacts, key=lambda c: (c.title.casefold(), c.id))
        self.text = {
            c.id: " ".join(
                [c.name, c.company, c.email, *c.tags, *c.numbers, *(_digits(n) for n in c.numbers)]
            ).casefold()
            for c in contacts
        }
        self.tags = sorted({t for c in contacts for t in c.tags}, key=str.casefold)


@functools.lru_cache(maxsize=32)
def _example(region: str) -> str:
    """What a bad number message asks for, with an example from the business's country."""
    import phonenumbers

    example = phonenumbers.example_number(region)
    if example is None:
        return "a phone number in international form, starting with + and the country code"
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    return (
        f"a phone number such as {national}, or in international form (+{example.country_code} ...)"
    )


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _row_problem(problem: FieldProblem) -> str:
    """An import row's problem in words: the value as written when there is one
    ("numbers '12': expected ..."), else only the field ("blocked: expected either ...")."""
    value = problem.value
    if value is None or value == "" or isinstance(value, bool):
        return f"{problem.field}: expected {problem.allowed}"
    return f"{problem.field} {value!r}: expected {problem.allowed}"


def _clean(text: str, limit: int) -> str:
    return " ".join(str(text).split())[:limit] if limit <= NAME_MAX else str(text).strip()[:limit]


class ContactsService:
    """The address book, its number index and the staff notes."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        settings: Callable[[], Settings],
        clock: Callable[[], datetime] | None = None,
        save_section: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._save_section = save_section
        self._table = store.table(DATABASE, "contacts")
        self._notes = store.table(DATABASE, "notes")
        self._lock = threading.RLock()
        self._index: _Index | None = None

    # -- numbers -----------------------------------------------------------------------------

    def region(self) -> str:
        return self._settings().business.country or "US"

    def normalise(self, number: str) -> str:
        return numbers.normalise(number, self.region())

    def display(self, number: str) -> str:
        return numbers.display(number, self.region()) if number else "Withheld"

    def caller(self, number: str, name: str = "") -> str:
        """How a timeline names someone: the contact's name, or "Unknown <number>"."""
        contact = self.by_number(number) if number else None
        if contact is not None:
            return contact.title
        if not number:
            return "Withheld number"
        shown = self.display(number)
        if name and name != number:
            return numbers.with_name(name, shown)
        return f"Unknown {shown}"

    # -- reading -----------------------------------------------------------------------------

    def _idx(self) -> _Index:
        with self._lock:
            if self._index is None:
                self._index = _Index([Contact.from_doc(d.doc_id, d) for d in self._table.all()])
            return self._index

    def _changed(self) -> None:
        with self._lock:
            self._index = None

    def count(self) -> int:
        return len(self._idx().contacts)

    def all(self) -> list[Contact]:
        return list(self._idx().sorted)

    def get(self, contact_id: int) -> Contact | None:
        return self._idx().contacts.get(contact_id)

    def by_number(self, number: str) -> Contact | None:
        if not number:
            return None
        idx = self._idx()
        cid = idx.by_number.get(number)
        if cid is None:
            cid = idx.by_number.get(self.normalise(number))
        return None if cid is None else idx.contacts.get(cid)

    def vip_numbers(self) -> frozenset[str]:
        """E.164 numbers of contacts marked VIP: routing puts them through like `rules.allow`."""
        return self._idx().vip

    def blocked_numbers(self) -> frozenset[str]:
        """E.164 numbers of blocked contacts: routing rejects them like `rules.block`."""
        return self._idx().blocked

    def tags(self) -> list[str]:
        return list(self._idx().tags)

    def search(self, query: str, limit: int = 50, tag: str = "") -> list[Contact]:
        """Contacts whose name, company, email, tags or numbers contain every word of `query`."""
        idx = self._idx()
        words = query.casefold().split()
        digits = _digits(query)
        if digits and len(digits) >= 3 and not any(c.isalpha() for c in query):
            words = [digits.lstrip("0") or digits]
        out: list[Contact] = []
        for c in idx.sorted:
            if tag and tag not in c.tags:
                continue
            text = idx.text[c.id]
            if all(w in text for w in words):
                out.append(c)
                if len(out) >= limit:
                    break
        return out

    # -- writing -----------------------------------------------------------------------------

    def _contact(self, draft: Draft, existing: Contact | None = None) -> Contact:
        problems: list[FieldProblem] = []
        name = _clean(draft.name, NAME_MAX)
        company = _clean(draft.company, NAME_MAX)
        phones: list[Phone] = []
        seen: set[str] = set()
        region = self.region()
        for i, (raw, label) in enumerate(draft.numbers[: NUMBERS_MAX + 1]):
            raw = raw.strip()
            if not raw:
                continue
            if i >= NUMBERS_MAX:
                problems.append(FieldProblem("numbers", raw, f"at most {NUMBERS_MAX} numbers"))
                break
            e164 = numbers.normalise(raw, region)
            if not e164.startswith("+") or not 8 <= len(e164) <= 16:
                problems.append(FieldProblem("numbers", raw, _example(region)))
                continue
            if e164 not in seen:
                seen.add(e164)
                phones.append(Phone(e164, label if label in LABELS else "other"))
        email = draft.email.strip()
        if email and ("@" not in email or " " in email or len(email) > 254):
            problems.append(FieldProblem("email", email, "an email address like anna@example.com"))
        if not (name or company or phones) and not problems:
            problems.append(FieldProblem("name", "", "a name, a company or a phone number"))
        if draft.vip and draft.blocked:
            problems.append(FieldProblem("blocked", True, "either VIP or blocked, not both"))
        if problems:
            raise ValidationError(problems, "contact")
        tags = tuple(dict.fromkeys(t.strip()[:TAG_MAX] for t in draft.tags if t.strip()))
        now = self._clock().astimezone(UTC).isoformat(timespec="seconds")
        return Contact(
            id=existing.id if existing else 0,
            name=name,
            company=company,
            phones=tuple(phones),
            email=email,
            notes=draft.notes.strip()[:TEXT_MAX],
            tags=tags,
            vip=draft.vip,
            blocked=draft.blocked,
            created=existing.created if existing else now,
            updated=now,
        )

    def save(self, draft: Draft, contact_id: int | None = None) -> Contact:
        """Add a contact, or replace contact `contact_id`; raises ValidationError naming fields.

        An exact entry of the call rules' allow or block list for one of its numbers becomes
        the contact's flag (and leaves the list), unless the form sets the other flag."""
        with self._lock:
            existing = self.get(contact_id) if contact_id else None
            if contact_id and existing is None:
                raise ContactError(f"there is no contact {contact_id}")
            contact = self._contact(draft, existing)
            contact = self._take_over_entries(contact)
            if existing is None:
                new_id = self._table.insert(contact.to_doc())
                contact = dataclasses.replace(contact, id=new_id)
            else:
                self._table.put(existing.id, contact.to_doc())
            self._changed()
        log.info("contact %s saved", contact.id)
        return contact

    def delete(self, contact_id: int) -> bool:
        """Delete a contact. A VIP's or blocked contact's numbers go to the call rules' allow
        or block list, so their calls are handled as before."""
        with self._lock:
            contact = self.get(contact_id)
            if contact is not None and (contact.vip or contact.blocked):
                flag: Flag = "vip" if contact.vip else "blocked"
                self._edit_lists(add={flag: list(contact.numbers)})
            ok = self._table.remove(contact_id)
            self._changed()
        return ok

    # -- the flags and the call rules' lists, as one ---------------------------------------

    def standing(self, number: str) -> Standing:
        """What routing does with a call from `number`, in the order it checks: the allow
        list, a VIP contact, the block list, a blocked contact."""
        normal = self.normalise(number) if number else ""
        if not normal:
            return Standing()
        rules, region = self._settings().rules, self.region()
        contact = self.by_number(normal)
        entry = matching_entry(normal, rules.allow, region)
        if entry:
            return Standing("vip", None, entry)
        if contact is not None and contact.vip:
            return Standing("vip", contact)
        entry = matching_entry(normal, rules.block, region)
        if entry:
            return Standing("blocked", None, entry)
        if contact is not None and contact.blocked:
            return Standing("blocked", contact)
        return Standing()

    def set_number_flag(self, number: str, flag: Flag, on: bool) -> Standing:
        """Make `number` VIP or blocked (or not): on its contact when it has one, else as an
        entry of the call rules' list. Turning a flag on clears the other; turning it off
        removes the number's exact entries. A prefix entry stays (the call rules page
        edits those); the returned standing then still names it."""
        normal = self.normalise(number)
        if not normal.startswith("+"):
            raise ValidationError(
                [FieldProblem("number", number, _example(self.region()))], "number"
            )
        other: Flag = "blocked" if flag == "vip" else "vip"
        with self._lock:
            contact = self.by_number(normal)
            if on and contact is not None:  # the contact's flag; no entry for the number
                self._edit_lists(remove={other: [normal], flag: [normal]})
                self.set_flags(contact.id, vip=flag == "vip", blocked=flag == "blocked")
            elif on:  # an exact entry on the other list would decide first: it goes
                self._edit_lists(remove={other: [normal]}, add={flag: [normal]})
            else:
                self._edit_lists(remove={flag: [normal]})
                if contact is not None and getattr(contact, flag):
                    self.set_flags(
                        contact.id,
                        vip=False if flag == "vip" else None,
                        blocked=False if flag == "blocked" else None,
                    )
        log.info("%s is %s %s", normal, "now" if on else "no longer", flag)
        return self.standing(normal)

    def _take_over_entries(self, contact: Contact) -> Contact:
        """A contact saved with numbers on the call rules' lists (as exact entries) takes
        them over as its flags."""
        rules, region = self._settings().rules, self.region()

        def exact(patterns: list[str]) -> list[str]:
            return [
                n
                for n in contact.numbers
                if (hit := matching_entry(n, patterns, region)) and not hit.strip().endswith("*")
            ]

        on_allow, on_block = exact(rules.allow), exact(rules.block)
        if not (on_allow or on_block):
            return contact
        vip, blocked = contact.vip, contact.blocked
        if not (vip or blocked):
            vip = bool(on_allow)
            blocked = not vip and bool(on_block)
        self._edit_lists(remove={"vip": on_allow, "blocked": on_block})
        if (vip, blocked) != (contact.vip, contact.blocked):
            log.info("contact takes over the call rules' entries of its numbers")
        return dataclasses.replace(contact, vip=vip, blocked=blocked)

    def _edit_lists(
        self,
        *,
        add: Mapping[str, list[str]] | None = None,
        remove: Mapping[str, list[str]] | None = None,
    ) -> None:
        """Add numbers to, or remove their exact entries from, the allow (`vip`) and block
        (`blocked`) lists of the call rules, in one save."""
        add, remove = add or {}, remove or {}
        if self._save_section is None or not (any(add.values()) or any(remove.values())):
            return
        region = self.region()
        rules = dataclasses.asdict(self._settings().rules)
        changed = False
        for flag, name in LIST_OF.items():
            entries: list[str] = list(rules[name])
            gone = {numbers.normalise(n, region) for n in remove.get(flag, [])}
            kept = [
                e
                for e in entries
                if e.strip().endswith("*") or numbers.normalise(e, region) not in gone
            ]
            have = {numbers.normalise(e, region) for e in kept if not e.strip().endswith("*")}
            for n in add.get(flag, []):
                if n not in have:
                    kept.append(n)
                    have.add(n)
            if kept != entries:
                rules[name] = kept
                changed = True
        if changed:
            self._save_section("rules", rules)

    def set_flags(
        self, contact_id: int, *, vip: bool | None = None, blocked: bool | None = None
    ) -> Contact:
        """Set a contact's flags. Exact entries of its numbers leave the call rules' lists,
        so the flag alone decides for them (an allow-list entry would otherwise win)."""
        with self._lock:
            c = self.get(contact_id)
            if c is None:
                raise ContactError(f"there is no contact {contact_id}")
            changed = dataclasses.replace(
                c,
                vip=c.vip if vip is None else vip,
                blocked=c.blocked if blocked is None else blocked,
            )
            if changed.vip and changed.blocked:
                changed = dataclasses.replace(changed, vip=vip is True, blocked=blocked is True)
            mine = list(c.numbers)
            self._edit_lists(remove={"vip": mine, "blocked": mine})
            self._table.put(c.id, changed.to_doc())
            self._changed()
            return changed

    def import_drafts(
        self, drafts: Iterable[Draft], problems: Sequence[RowProblem] = ()
    ) -> ImportResult:
        """Add or update contacts (matched by a shared number); bad rows are reported by line."""
        result = ImportResult(problems=list(problems))
        for draft in drafts:
            try:
                contact = self._take_over_entries(self._contact(draft))
            except ValidationError as exc:
                text = "; ".join(_row_problem(p) for p in exc.problems)
                result.problems.append(RowProblem(draft.line, text))
                continue
            with self._lock:
                existing = next(
                    (self.by_number(n) for n in contact.numbers if self.by_number(n)), None
                )
                if existing is None:
                    self._table.insert(contact.to_doc())
                    result.added += 1
                else:
                    merged = dataclasses.replace(
                        contact,
                        id=existing.id,
                        name=contact.name or existing.name,
                        company=contact.company or existing.company,
                        phones=existing.phones
                        + tuple(p for p in contact.phones if p.number not in existing.numbers),
                        email=contact.email or existing.email,
                        notes=contact.notes or existing.notes,
                        tags=tuple(dict.fromkeys(existing.tags + contact.tags)),
                        vip=contact.vip or existing.vip,
                        blocked=(contact.blocked or existing.blocked)
                        and not (contact.vip or existing.vip),
                        created=existing.created,
                    )
                    self._table.put(existing.id, merged.to_doc())
                    result.updated += 1
                self._changed()
        result.problems.sort(key=lambda p: p.line)
        return result

    # -- staff notes -------------------------------------------------------------------------

    def add_note(
        self, text: str, by: str, *, contact_id: int | None = None, number: str = ""
    ) -> Note:
        text = text.strip()
        if not text:
            raise ValidationError([FieldProblem("note", "", "some text")], "note")
        if contact_id is None and not number:
            raise ContactError("a note needs a contact or a number")
        at = self._clock()
        doc = {
            "text": text[:TEXT_MAX],
            "by": by[:NAME_MAX],
            "at": at.astimezone(UTC).isoformat(),
            "contact_id": contact_id,
            "number": number,
        }
        note_id = self._notes.insert(doc)
        return Note(note_id, text[:TEXT_MAX], by[:NAME_MAX], at, contact_id, number)

    def notes(self, *, contact_id: int | None = None, numbers_: Iterable[str] = ()) -> list[Note]:
        """Notes about a contact or any of `numbers_`, newest first."""
        wanted = set(numbers_)
        docs = self._notes.search(
            lambda d: (
                (contact_id is not None and d.get("contact_id") == contact_id)
                or (bool(d.get("number")) and d.get("number") in wanted)
            )
        )
        out = [_note(d.doc_id, d) for d in docs if d.get("at")]
        return sorted(out, key=lambda n: n.at, reverse=True)

    def note(self, note_id: int) -> Note | None:
        doc = self._notes.get(note_id)
        return None if doc is None or not doc.get("at") else _note(doc.doc_id, doc)

    def mark_note_handled(self, note_id: int, by: str, handled: bool = True) -> Note:
        """Mark a note handled (done), with who and when; or not handled again."""
        with self._lock:
            note = self.note(note_id)
            if note is None:
                raise ContactError(f"there is no note {note_id}")
            if handled and note.handled_at is None:
                at = self._clock().astimezone(UTC).isoformat()
                self._notes.update(note_id, {"handled_at": at, "handled_by": by[:NAME_MAX]})
            elif not handled:
                self._notes.update(note_id, {"handled_at": None, "handled_by": ""})
            changed = self.note(note_id)
            assert changed is not None
            return changed


def _note(doc_id: int, d: Mapping[str, Any]) -> Note:
    handled = d.get("handled_at")
    return Note(
        doc_id,
        str(d.get("text", "")),
        str(d.get("by", "")),
        datetime.fromisoformat(d["at"]),
        d.get("contact_id"),
        str(d.get("number", "")),
        datetime.fromisoformat(handled) if handled else None,
        str(d.get("handled_by", "")),
    )


# -- timelines, search -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One line of a timeline: an interaction, a staff note or an email sent about a record."""

    at: datetime
    kind: str  # "interaction", "note", "email"
    item: Any
    record_id: str = ""  # for an email: the record it was about


@dataclasses.dataclass(frozen=True, slots=True)
class EmailSent:
    """An email Frontdesk sent (or is sending) about a record, for its timeline."""

    to: tuple[str, ...]
    subject: str
    state: str  # queued, sending, sent, failed
    at: datetime  # when it was queued
    sent_at: datetime | None = None
    error: str = ""
    gone: bool = False  # no longer in the outbox (sent mail is kept there for some days)


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class Timeline:
    """One page of a timeline, newest first."""

    entries: list[Entry]
    total: int  # calls, texts and faxes in the whole timeline
    next_before: str | None  # the next (older) page's cursor
    complete: bool = True  # False while the history index is being built
    searched: int = 0  # records searched when not complete
    exact: bool = True

    @property
    def items(self) -> list[Interaction]:
        return [e.item for e in self.entries if e.kind == "interaction"]


@dataclasses.dataclass(frozen=True, slots=True)
class SearchResult:
    contacts: list[Contact]
    interactions: list[Interaction]
    numbers: list[str]  # bare numbers (no contact) that match
    total: int = 0  # calls, texts and faxes that match in all
    next_before: str | None = None  # the next page of them
    complete: bool = True  # False while the history index is being built
    searched: int = 0  # records searched when not complete
    broad: tuple[str, ...] = ()  # search words too short to match every word they start


class TimelineService:
    """Timelines per contact and per number, and search across contacts and history.

    Both read the history index (history_index.py): every record of a number or contact,
    and words of caller names and of texts and faxes, whatever their age."""

    def __init__(
        self,
        store: Store,
        history: HistoryService,
        contacts: ContactsService,
        outbox: Callable[[int], Sequence[Any]] | None = None,
        message: Callable[[int], Any] | None = None,
    ) -> None:
        self._store = store
        self._history = history
        self._contacts = contacts
        self._outbox = outbox  # the newest outbox messages (for records older than notes)
        self._message = message  # one outbox message by id

    def _timeline(self, keys: list[str], n: int, notes: list[Note], before: str | None) -> Timeline:
        page = self._history.query([keys], n, before=before)
        items = page.items
        upper = None
        if before:
            cursor = self._history.get(before)
            upper = cursor.start if cursor is not None else None
        lower = items[-1].start if page.next_before and items else None
        out = [Entry(i.start, "interaction", i) for i in items]
        out += [
            Entry(note.at, "note", note)
            for note in notes
            if (upper is None or note.at < upper) and (lower is None or note.at >= lower)
        ]
        unnoted = set()
        for i in items:
            notes_ = [e for e in i.details.get("emails", ()) if isinstance(e, Mapping)]
            if not notes_:
                unnoted.add(i.id)
            for note in notes_:
                sent = self._email(note)
                if sent is not None:
                    out.append(Entry(sent.at, "email", sent, i.id))
        if self._outbox is not None and unnoted:  # emails from before records kept notes
            for msg in self._outbox(500):
                if getattr(msg, "record_id", "") in unnoted:
                    out.append(Entry(msg.created, "email", msg, msg.record_id))
        out.sort(key=lambda e: e.at, reverse=True)
        return Timeline(out, page.total, page.next_before, page.complete, page.searched)

    def _email(self, note: Mapping[str, Any]) -> EmailSent | None:
        """A record's email note, with the state of its outbox message while it has one."""
        at = _when(note.get("at"))
        if at is None:
            return None
        state, sent_at, error = str(note.get("state", "")), _when(note.get("sent_at")), ""
        live = None
        if not note.get("removed") and self._message is not None and note.get("outbox"):
            live = self._message(int(note["outbox"]))
            if live is not None and live.message_id != note.get("message_id"):
                live = None  # the id went to another message since
        if live is not None:
            state, sent_at, error = live.state, live.sent_at, live.last_error
        return EmailSent(
            to=tuple(str(t) for t in note.get("to", ())),
            subject=str(note.get("subject", "")),
            state=state,
            at=at,
            sent_at=sent_at,
            error=error if state != "sent" else "",
            gone=live is None,
        )

    def for_contact(self, contact: Contact, n: int = 30, before: str | None = None) -> Timeline:
        """Everything with any of the contact's numbers (or its id), newest first."""
        keys = [*(number_key(num) for num in contact.numbers), contact_key(contact.id)]
        notes = self._contacts.notes(contact_id=contact.id, numbers_=contact.numbers)
        return self._timeline(keys, n, notes, before)

    def for_number(self, number: str, n: int = 30, before: str | None = None) -> Timeline:
        notes = self._contacts.notes(numbers_=[number])
        return self._timeline([number_key(number)], n, notes, before)

    def search(self, query: str, n: int = 30, before: str | None = None) -> SearchResult:
        """Contacts (from the contacts index); for digits, numbers seen in the history and
        their calls, texts and faxes; for words, caller names and the text of texts and
        faxes, across the whole history (a word of 3 letters or more also finds the words
        it starts)."""
        q = query.strip()
        if not q:
            return SearchResult([], [], [])
        contacts = self._contacts.search(q, n)
        digits = _digits(q)
        if len(digits) >= 3 and not any(c.isalpha() for c in q):
            needle = digits.lstrip("0") or digits
            seen = self._history.index.numbers_containing(needle)
            known = self._contacts._idx().by_number
            bare = [num for num in seen if num not in known][:n]
            ours = {num for c in contacts for num in c.numbers if needle in _digits(num)}
            keys = [number_key(num) for num in sorted(set(seen) | ours)]
            page = self._history.query([keys], n, before=before) if keys else None
        else:
            bare = []
            clauses: list[list[str]] = []
            broad: list[str] = []
            for word in sorted(words_of(q)):
                keys, whole = self._history.index.expand(word)
                clauses.append(keys)
                if not whole:
                    broad.append(word)
            if not self._history.index.ready:  # still being built: look through the newest
                folded = fold(q)
                page = self._history.query(
                    [ALL],
                    n,
                    before=before,
                    where=lambda i: (
                        folded in fold(i.name) or (i.channel != "call" and folded in fold(i.text))
                    ),
                )
            elif clauses and all(clauses):
                page = self._history.query(clauses, n, before=before)
            else:
                page = None
            if page is not None:
                return SearchResult(
                    contacts,
                    page.items,
                    bare,
                    page.total,
                    page.next_before,
                    page.complete,
                    page.searched,
                    tuple(broad),
                )
            return SearchResult(contacts, [], bare, broad=tuple(broad))
        if page is None:
            return SearchResult(contacts, [], bare)
        return SearchResult(
            contacts,
            page.items,
            bare,
            page.total,
            page.next_before,
            page.complete,
            page.searched,
        )


__all__ = [
    "LABELS",
    "Contact",
    "ContactError",
    "ContactsService",
    "Draft",
    "EmailSent",
    "Entry",
    "ImportResult",
    "Note",
    "Phone",
    "RowProblem",
    "SearchResult",
    "Standing",
    "Timeline",
    "TimelineService",
]
