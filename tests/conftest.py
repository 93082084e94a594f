"""Shared fixtures: a fresh data dir and store per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_app.store import Store


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def store(data_dir: Path) -> Iterator[Store]:
    s = Store(data_dir)
    yield s
    s.close()
