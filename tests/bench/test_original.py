"""The original's writer sequence (``datagems.bench.original``), checked against what the
original really wrote in the capture (``ts-1.1.3-capture/stage3``: a two-peer confirm)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from datagems.bench.original import confirm_as_original
from datagems.store.embedded import FolderR1FS, SqliteCStore
from tests.servers import ROOT

CAPTURE = ROOT.parent / "shared" / "reference" / "ts-1.1.3-capture"
JOB = "job_1796076906069_464975"


class Recording(SqliteCStore):
    """An embedded store that remembers every write, as the capture's recorder did."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[tuple[str, str, str | None, Any]] = []

    def set_raw(self, key: str, value: Any) -> None:
        self.writes.append(("/set", key, None, value))
        super().set_raw(key, value)

    def hset_raw(self, hkey: str, field: str, value: Any) -> None:
        self.writes.append(("/hset", hkey, field, value))
        super().hset_raw(hkey, field, value)


def captured_confirm() -> list[tuple[str, str, str | None, Any]]:
    """The CStore writes of the stage-3 confirm, in order (up to the job's start)."""
    path = CAPTURE / "stage3" / "writes.jsonl"
    if not path.exists():
        pytest.skip(f"the capture is not beside the repository ({path})")
    found = []
    for line in path.read_text().splitlines():
        write = orjson.loads(line)
        if write["svc"] != "cstore" or write["path"] not in ("/set", "/hset"):
            continue
        body = orjson.loads(write["reqBody"])
        where = body.get("hkey", body["key"])
        if where == "datagen:auth":
            continue
        if write["path"] == "/hset" and "startedAt" in body["value"]:
            break  # the job started: the confirm is over
        field = body["key"] if write["path"] == "/hset" else None
        found.append((write["path"], where, field, body["value"]))
    return found


def shape(value: Any) -> Any:
    """Key order and JSON types, not values."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def test_a_confirm_writes_what_the_original_wrote_in_its_order_and_shapes(tmp_path: Path) -> None:
    expected = captured_confirm()
    store = Recording(tmp_path / "cstore.sqlite3")
    job_id = confirm_as_original(
        store,
        FolderR1FS(tmp_path / "r1fs"),
        owner="admin",
        title="Two-peer bikes (ts1+ts2)",
        total=12,
        peers=["ts1", "ts2"],
        schema={"type": "object"},
        gateway_url="http://127.0.0.1:8311",
        created_ms=1796076906069,
    )
    ours = [
        (path, where.replace(job_id, JOB), field and field.replace(job_id, JOB), value)
        for path, where, field, value in store.writes
    ]
    assert [w[:3] for w in ours] == [w[:3] for w in expected]
    for (_, where, _, mine), (_, _, _, theirs) in zip(ours, expected, strict=True):
        mine_value = orjson.loads(mine.replace(job_id, JOB))
        theirs_value = orjson.loads(theirs)
        assert shape(mine_value) == shape(theirs_value), where
        for name in ("id", "owner", "status", "peers", "range", "assigned", "totalJobs"):
            if name in theirs_value:
                assert mine_value[name] == theirs_value[name], (where, name)
        assert mine_value.get("createdAt") == theirs_value.get("createdAt"), where
    store.close()
