"""Media files (voicemail audio, fax PDFs, greetings): written atomically, read safely.

A file is complete on disk, fsync'd and renamed into place, before any record points at it.
References are relative paths like `media/2026/11/<id>.wav`; resolving one can never leave
the media folder.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ..errors import StoreError
from .durable import atomic_write

_EXT = re.compile(r"^[a-z0-9]{1,8}$")
_REF = re.compile(r"^media/\d{4}/\d{2}/[A-Za-z0-9_-]{8,64}\.[a-z0-9]{1,8}$")


class MediaStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "media"
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, data: bytes | Iterator[bytes], ext: str, when: datetime | None = None) -> str:
        """Store bytes under a generated name; returns the reference to keep in a record."""
        if not _EXT.match(ext):
            raise StoreError(
                f"media extension {ext!r} is not allowed; use 1-8 lowercase letters/digits"
            )
        when = when or datetime.now(UTC)
        folder = self.root / f"{when:%Y}" / f"{when:%m}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{secrets.token_urlsafe(12)}.{ext}"
        atomic_write(folder / name, data)
        return f"media/{when:%Y}/{when:%m}/{name}"

    def path(self, ref: str) -> Path:
        """The file behind a reference; refuses anything that is not a media reference."""
        if not isinstance(ref, str) or not _REF.match(ref):
            raise StoreError(f"{ref!r} is not a media reference")
        p = (self.data_dir / ref).resolve()
        if not p.is_relative_to(self.root.resolve()):
            raise StoreError(f"{ref!r} points outside the media folder")
        return p

    def read(self, ref: str) -> bytes:
        try:
            return self.path(ref).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"media file {ref} is missing") from None

    def delete(self, ref: str) -> None:
        self.path(ref).unlink(missing_ok=True)

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
