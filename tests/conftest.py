"""Fixtures shared by the whole suite. Server processes come from ``tests/servers.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from datagems.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of an embedded-default replica whose data lives in ``tmp_path``."""
    return Settings.from_env({"DATAGEN_DATA_DIR": str(tmp_path / "data")})
