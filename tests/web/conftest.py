"""Fixtures of the web tests: one in-process app per module (fast), fresh clients per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.harness import LiveApp


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    app = LiveApp(Path(tmp_path_factory.mktemp("web"))).start()
    yield app
    app.stop()
