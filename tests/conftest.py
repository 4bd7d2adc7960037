"""Fixtures shared by the whole suite. Server processes come from ``tests/servers.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datagems.schema.validate import RecordValidator
from datagems.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of an embedded-default replica whose data lives in ``tmp_path``."""
    return Settings.from_env({"DATAGEN_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture(autouse=True)
def compiled_and_bounded_validators_agree() -> Iterator[None]:
    """Every record any test validates in this process is also checked by the bounded
    jsonschema class alone: ``RecordValidator`` (compiled validator first) must give its
    verdict, and the compiled validator alone must never accept what it refuses."""
    original = RecordValidator.errors
    disagreements: list[str] = []

    def errors(self: RecordValidator, record: Any) -> list[str]:
        found = original(self, record)
        bounded = self.bounded_errors(record)
        if bool(found) != bool(bounded) or (self.compiled_verdict(record) and bounded):
            disagreements.append(f"{record!r:.300} under {self.schema}: {found} vs {bounded}")
        return found

    RecordValidator.errors = errors  # type: ignore[method-assign]
    try:
        yield
    finally:
        RecordValidator.errors = original  # type: ignore[method-assign]
    assert not disagreements, disagreements[:3]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The log scan for secrets (``tests/test_zz_logs.py``) runs after every other test."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/test_zz_logs.py"))
