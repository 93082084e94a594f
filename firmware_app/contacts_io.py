"""Contacts in and out as CSV and vCard (2.1, 3.0 and 4.0): text to drafts, contacts to text.

Pure: no store, no I/O. Readers return drafts carrying the line they started on and a list
of problems by line, so one bad row never loses the others. Numbers are read (E.164) later,
by the contacts service, which knows the business's country.
"""

from __future__ import annotations

import csv
import io
import quopri
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .services.contacts import Contact, Draft, RowProblem

MAX_ROWS = 20000
CSV_FIELDS = (
    "name",
    "company",
    "mobile",
    "work",
    "home",
    "fax",
    "other",
    "email",
    "tags",
    "vip",
    "blocked",
    "notes",
)
_ALIASES = {
    "full name": "name",
    "display name": "name",
    "fn": "name",
    "organisation": "company",
    "organization": "company",
    "org": "company",
    "phone": "mobile",
    "phone number": "mobile",
    "number": "mobile",
    "numbers": "mobile",
    "telephone": "mobile",
    "tel": "mobile",
    "mobile phone": "mobile",
    "cell": "mobile",
    "work phone": "work",
    "business phone": "work",
    "home phone": "home",
    "e-mail": "email",
    "email address": "email",
    "e-mail address": "email",
    "categories": "tags",
    "groups": "tags",
    "note": "notes",
    "first name": "given",
    "given name": "given",
    "last name": "family",
    "family name": "family",
    "surname": "family",
}
_TRUE = {"1", "yes", "y", "true", "x", "vip", "blocked"}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
# `="+442079460958"`: a formula whose value is the text, so Excel and Google Sheets keep the
# + and every digit instead of reading 442079460958 (shown as 4.42079E+11).
_AS_TEXT = re.compile(r'="((?:[^"]|"")*)"')
_NUMBER_CELL = re.compile(r"^[+0-9; ]*$")  # what a numbers cell holds: E.164 numbers and "; "


def decode(data: bytes) -> str:
    """Uploaded bytes as text: UTF-8 (with or without BOM), else Windows-1252."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in re.split(r"[;,\n]", value) if v.strip()]


def _unquote_cell(value: str) -> str:
    """Undo what the export writes to keep a spreadsheet's hands off a cell: the leading
    quote of a text that looks like a formula, and `="..."` around phone numbers."""
    if value[:1] == "'" and value[1:2] in _FORMULA:
        return value[1:]
    m = _AS_TEXT.fullmatch(value)
    if m is not None:
        return m.group(1).replace('""', '"')
    return value


# -- CSV ---------------------------------------------------------------------------------------


def read_csv(text: str) -> tuple[list[Draft], list[RowProblem]]:
    """Rows of a CSV with a header line (our columns, or common names from phone exports)."""
    drafts: list[Draft] = []
    problems: list[RowProblem] = []
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)  # spreadsheets in some countries write ";"
    reader = csv.reader(io.StringIO(text, newline=""), csv.excel, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return [], [RowProblem(1, "the file is empty")]
    except csv.Error as exc:
        return [], [RowProblem(1, f"cannot read the header line: {exc}")]
    keys = [_ALIASES.get(h.strip().casefold(), h.strip().casefold()) for h in header]
    known = set(CSV_FIELDS) | {"given", "family"}
    if not any(k in known for k in keys):
        return [], [
            RowProblem(1, "no known column in the header; expected " + ", ".join(CSV_FIELDS))
        ]
    line = reader.line_num + 1
    while True:
        start = line
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(RowProblem(start, f"cannot read this line: {exc}"))
            line = reader.line_num + 1
            continue
        line = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(drafts) >= MAX_ROWS:
            problems.append(RowProblem(start, f"more than {MAX_ROWS} rows; the rest was skipped"))
            break
        if len(row) > len(keys):
            problems.append(
                RowProblem(start, f"{len(row)} cells but the header names {len(keys)} columns")
            )
            continue
        cells: dict[str, list[str]] = {}
        for key, cell in zip(keys, row, strict=False):
            cells.setdefault(key, []).append(_unquote_cell(cell.strip()))

        def one(key: str, cells: dict[str, list[str]] = cells) -> str:
            return " ".join(v for v in cells.get(key, []) if v)

        name = one("name") or " ".join(p for p in (one("given"), one("family")) if p)
        phones = tuple(
            (n, label)
            for label in ("mobile", "work", "home", "fax", "other")
            for cell in cells.get(label, [])
            for n in _split_list(cell)
        )
        drafts.append(
            Draft(
                name=name,
                company=one("company"),
                numbers=phones,
                email=one("email"),
                notes="\n".join(v for v in cells.get("notes", []) if v),
                tags=tuple(t for cell in cells.get("tags", []) for t in _split_list(cell)),
                vip=one("vip").casefold() in _TRUE,
                blocked=one("blocked").casefold() in _TRUE,
                line=start,
            )
        )
    return drafts, problems


def _safe_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA) else value


def _number_cell(numbers: str, spreadsheet: bool) -> str:
    if not numbers or not spreadsheet or not _NUMBER_CELL.match(numbers):
        return numbers
    return f'="{numbers}"'


def write_csv(contacts: Iterable[Contact], *, spreadsheet: bool = True) -> str:
    """Every contact as CSV (our columns). `spreadsheet`: phone numbers as `="+44..."`, so
    Excel and Google Sheets keep them as text; else plain E.164 with every cell quoted
    (for programs, and LibreOffice's "Format quoted field as text"). Both read back."""
    out = io.StringIO()
    w = csv.writer(
        out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL if spreadsheet else csv.QUOTE_ALL
    )
    w.writerow(CSV_FIELDS)
    for c in contacts:
        by_label = {
            label: _number_cell(
                "; ".join(p.number for p in c.phones if p.label == label), spreadsheet
            )
            for label in ("mobile", "work", "home", "fax", "other")
        }
        w.writerow(
            [
                _safe_cell(c.name),
                _safe_cell(c.company),
                *by_label.values(),
                _safe_cell(c.email),
                _safe_cell("; ".join(c.tags)),
                "yes" if c.vip else "",
                "yes" if c.blocked else "",
                _safe_cell(c.notes),
            ]
        )
    return out.getvalue()


# -- vCard -------------------------------------------------------------------------------------

# RFC 6350 3.3 / RFC 2426 4: contentline = [group "."] name *(";" param) ":" value
_CONTENT_LINE = re.compile(r"^(?:[A-Za-z0-9-]+\.)?([A-Za-z0-9-]+)((?:;[^:]*)?):(.*)$", re.S)


@dataclass(slots=True)
class _Prop:
    name: str
    params: dict[str, list[str]]
    value: str
    line: int


def _unfold(text: str) -> Iterator[tuple[int, str]]:
    """Logical lines with the number of their first physical line (RFC 6350 3.2)."""
    current: str | None = None
    start = 0
    pending_qp = False
    for n, raw in enumerate(text.splitlines(), 1):
        if current is not None and (raw[:1] in (" ", "\t") or pending_qp):
            # 2.1 quoted-printable values continue after a soft break ("=" at the end).
            current = current[:-1] + raw if pending_qp else current + raw[1:]
        else:
            if current is not None:
                yield start, current
            current, start = raw, n
        pending_qp = (
            current.endswith("=")
            and "QUOTED-PRINTABLE" in current.split(":", 1)[0].upper()
            and ":" in current
        )
    if current is not None:
        yield start, current


def _params(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in re.findall(r';((?:[^;"]|"[^"]*")*)', text):
        key, eq, value = part.partition("=")
        if not eq:  # vCard 2.1 bare type: TEL;CELL;VOICE
            out.setdefault("TYPE", []).append(key.strip().lower())
            continue
        for v in re.findall(r'"[^"]*"|[^,]+', value):
            out.setdefault(key.strip().upper(), []).append(v.strip().strip('"').lower())
    return out


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value, flags=re.S)


def _components(value: str, sep: str = ";") -> list[str]:
    parts = re.split(r"(?<!\\)" + re.escape(sep), value)
    return [_unescape(p).strip() for p in parts]


def _decode_value(prop: _Prop) -> str:
    enc = (prop.params.get("ENCODING") or [""])[0]
    charset = (prop.params.get("CHARSET") or ["utf-8"])[0]
    if enc == "quoted-printable":
        raw = quopri.decodestring(prop.value.encode("latin-1", errors="replace"))
        try:
            return raw.decode(charset)
        except (LookupError, UnicodeDecodeError):
            return raw.decode("cp1252", errors="replace")
    return prop.value


def _tel_label(types: list[str]) -> str:
    kinds = {t for v in types for t in v.split(",")}
    if "fax" in kinds:
        return "fax"
    if kinds & {"cell", "mobile", "iphone"}:
        return "mobile"
    if "work" in kinds:
        return "work"
    if "home" in kinds:
        return "home"
    return "mobile" if not kinds - {"pref"} else "other"  # a bare TEL is mostly a mobile


def read_vcard(text: str) -> tuple[list[Draft], list[RowProblem]]:
    """Every card in a .vcf file (versions 2.1, 3.0 and 4.0)."""
    drafts: list[Draft] = []
    problems: list[RowProblem] = []
    card: list[_Prop] | None = None
    begin = 0
    for line, logical in _unfold(text):
        if not logical.strip():
            continue
        m = _CONTENT_LINE.match(logical)
        if m is None:
            if card is not None:
                problems.append(RowProblem(line, "not a vCard line (NAME:value expected)"))
            continue
        name, params, value = m.group(1).upper(), _params(m.group(2)), m.group(3)
        if name == "BEGIN" and value.strip().upper() == "VCARD":
            if card is not None:
                problems.append(RowProblem(begin, "card has no END:VCARD"))
            card, begin = [], line
            continue
        if name == "END" and value.strip().upper() == "VCARD":
            if card is None:
                problems.append(RowProblem(line, "END:VCARD without BEGIN:VCARD"))
                continue
            if len(drafts) >= MAX_ROWS:
                problems.append(RowProblem(begin, f"more than {MAX_ROWS} cards; rest skipped"))
                break
            drafts.append(_card(card, begin))
            card = None
            continue
        if card is not None:
            card.append(_Prop(name, params, value, line))
    if card is not None:
        problems.append(RowProblem(begin, "card has no END:VCARD"))
    if not drafts and not problems:
        problems.append(RowProblem(1, "no BEGIN:VCARD found: is this a vCard file?"))
    return drafts, problems


def _card(props: list[_Prop], line: int) -> Draft:
    name = family_given = company = email = notes = ""
    phones: list[tuple[str, str]] = []
    tags: list[str] = []
    vip = blocked = False
    for p in props:
        value = _decode_value(p)
        if p.name == "FN":
            name = _unescape(value).strip()
        elif p.name == "N":
            parts = [*_components(value), "", "", "", "", ""]
            family, given, middle, prefix, suffix = parts[:5]
            family_given = " ".join(x for x in (prefix, given, middle, family, suffix) if x)
        elif p.name == "ORG":
            company = _components(value)[0]
        elif p.name == "TEL":
            number = _unescape(value).strip()
            if number.lower().startswith("tel:"):
                number = number[4:].split(";", 1)[0]
            if number:
                phones.append((number, _tel_label(p.params.get("TYPE", []))))
        elif p.name == "EMAIL" and not email:
            email = _unescape(value).strip()
        elif p.name == "NOTE":
            notes = "\n".join(x for x in (notes, _unescape(value).strip()) if x)
        elif p.name == "CATEGORIES":
            tags.extend(t for t in _components(value, ",") if t)
        elif p.name == "X-FRONTDESK-VIP":
            vip = value.strip().casefold() in _TRUE
        elif p.name == "X-FRONTDESK-BLOCKED":
            blocked = value.strip().casefold() in _TRUE
    if name and name == company and not family_given:
        name = ""  # a company's card: FN repeats ORG
    return Draft(
        name=name or family_given,
        company=company,
        numbers=tuple(phones),
        email=email,
        notes=notes,
        tags=tuple(tags),
        vip=vip,
        blocked=blocked,
        line=line,
    )


def _escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """Lines of at most 75 octets, continued with a space (RFC 6350 3.2)."""
    out: list[str] = []
    current = b""
    for ch in line:
        b = ch.encode()
        if len(current) + len(b) > (75 if not out else 74):
            out.append(current.decode())
            current = b""
        current += b
    out.append(current.decode())
    return "\r\n ".join(out)


_TEL_TYPES = {
    "mobile": "CELL",
    "work": "WORK,VOICE",
    "home": "HOME,VOICE",
    "fax": "FAX",
    "other": "VOICE",
}


def write_vcard(contacts: Iterable[Contact]) -> str:
    """vCard 3.0, one card per contact, CRLF line ends."""
    lines: list[str] = []
    for c in contacts:
        display = c.name or c.company or (c.phones[0].number if c.phones else "")
        words = c.name.split()
        family, given = (words[-1], " ".join(words[:-1])) if words else ("", "")
        card = [
            "BEGIN:VCARD",
            "VERSION:3.0",
            f"FN:{_escape(display)}",
            f"N:{_escape(family)};{_escape(given)};;;",
        ]
        if c.company:
            card.append(f"ORG:{_escape(c.company)}")
        for p in c.phones:
            kind = _TEL_TYPES.get(p.label)
            card.append(f"TEL;TYPE={kind}:{p.number}" if kind else f"TEL:{p.number}")
        if c.email:
            card.append(f"EMAIL;TYPE=INTERNET:{_escape(c.email)}")
        if c.notes:
            card.append(f"NOTE:{_escape(c.notes)}")
        if c.tags:
            card.append("CATEGORIES:" + ",".join(_escape(t) for t in c.tags))
        if c.vip:
            card.append("X-FRONTDESK-VIP:yes")
        if c.blocked:
            card.append("X-FRONTDESK-BLOCKED:yes")
        card.append("END:VCARD")
        lines.extend(_fold(x) for x in card)
    return "".join(x + "\r\n" for x in lines)


__all__ = ["CSV_FIELDS", "decode", "read_csv", "read_vcard", "write_csv", "write_vcard"]
