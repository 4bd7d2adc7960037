"""Fixtures of the accounts tests: one embedded CStore per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datagems.store.embedded import SqliteCStore


@pytest.fixture
def cstore(tmp_path: Path) -> Iterator[SqliteCStore]:
    store = SqliteCStore(tmp_path / "cstore.sqlite")
    yield store
    store.close()
