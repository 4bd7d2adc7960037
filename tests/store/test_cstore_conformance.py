"""One conformance suite for the CStore interface, run over every backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from datagems.store.base import CStore
from datagems.store.embedded import SqliteCStore
from datagems.store.http import HttpCStore
from tests.store.conftest import DevNode


@pytest.fixture(params=["embedded", "http"])
def cstore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CStore]:
    if request.param == "embedded":
        store: CStore = SqliteCStore(tmp_path / "cstore.sqlite3")
    else:
        node: DevNode = request.getfixturevalue("devnode")
        store = HttpCStore(node.cstore_url, peers=["a", "b"], timeout=10)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def key() -> str:
    """A fresh key per test: the devnode is shared by the module."""
    return f"test:{uuid.uuid4().hex}"


VALUES = [
    {"id": "j1", "nested": {"list": [1, 2, {"x": None}]}, "ok": True},
    [1, "two", 3.5, None, {"a": []}],
    "a plain sentence",
    42,
    -3.25,
    True,
    "unicode: ßecret ü 日本語 🦄",
    {"ключ": "значение", "emoji": "🚀"},
    "",
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_a_json_value_round_trips_through_set_and_get(cstore: CStore, key: str, value: Any) -> None:
    cstore.set(key, value)
    assert cstore.get(key) == value


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_a_json_value_round_trips_through_hset_hget_and_hgetall(
    cstore: CStore, key: str, value: Any
) -> None:
    cstore.hset(key, "field", value)
    assert cstore.hget(key, "field") == value
    assert cstore.hgetall(key) == {"field": value}


def test_values_are_written_as_json_text_like_every_ratio1_client(cstore: CStore, key: str) -> None:
    cstore.set(key, {"b": 1, "a": [1, 2]})
    cstore.hset(key, "f", {"x": "y"})
    assert orjson.loads(cstore.get_raw(key)) == {"b": 1, "a": [1, 2]}
    assert cstore.hget_raw(key, "f") == '{"x":"y"}'
    assert cstore.hgetall_raw(key) == {"f": '{"x":"y"}'}


def test_none_deletes_a_key(cstore: CStore, key: str) -> None:
    cstore.set(key, {"a": 1})
    cstore.set(key, None)
    assert cstore.get(key) is None


def test_none_deletes_a_field_and_leaves_the_others(cstore: CStore, key: str) -> None:
    cstore.hset(key, "keep", 1)
    cstore.hset(key, "drop", 2)
    cstore.hset(key, "drop", None)
    assert cstore.hget(key, "drop") is None
    assert cstore.hgetall(key) == {"keep": 1}


def test_a_missing_key_reads_none_and_a_missing_hash_reads_empty(cstore: CStore, key: str) -> None:
    assert cstore.get(key) is None
    assert cstore.hget(key, "nope") is None
    assert cstore.hgetall(key) == {}


def test_a_plain_non_json_string_stored_raw_reads_back_as_that_string(
    cstore: CStore, key: str
) -> None:
    cstore.set_raw(key, "not json {at all")
    cstore.hset_raw(key, "email", "alice")
    assert cstore.get(key) == "not json {at all"
    assert cstore.hget(key, "email") == "alice"
    assert cstore.hgetall(key) == {"email": "alice"}


def test_a_json_object_stored_raw_by_another_client_reads_back_as_the_object(
    cstore: CStore, key: str
) -> None:
    cstore.hset_raw(key, "f", {"stored": "as an object"})
    assert cstore.hget(key, "f") == {"stored": "as an object"}


def test_overwriting_a_field_keeps_the_last_value(cstore: CStore, key: str) -> None:
    for n in range(5):
        cstore.hset(key, "f", {"n": n})
    assert cstore.hget(key, "f") == {"n": 4}


def test_a_large_value_round_trips(cstore: CStore, key: str) -> None:
    value = {"rows": ["x" * 1000 + str(i) for i in range(3000)]}  # about 3 MB of JSON text
    cstore.set(key, value)
    cstore.hset(key, "big", value)
    assert cstore.get(key) == value
    assert cstore.hget(key, "big") == value


def test_a_hash_with_many_fields_reads_back_whole(cstore: CStore, key: str) -> None:
    for i in range(300):
        cstore.hset(key, f"field-{i}", {"i": i})
    assert cstore.hgetall(key) == {f"field-{i}": {"i": i} for i in range(300)}


def test_keys_and_fields_with_unicode_and_separators_are_kept_apart(
    cstore: CStore, key: str
) -> None:
    cstore.hset(f"{key}:ü", "a:b", 1)
    cstore.hset(f"{key}:ü", "a b&c=d", 2)
    cstore.set(f"{key}:ü", 3)
    assert cstore.hgetall(f"{key}:ü") == {"a:b": 1, "a b&c=d": 2}
    assert cstore.get(f"{key}:ü") == 3


def test_hsync_can_be_called_on_every_backend(cstore: CStore, key: str) -> None:
    cstore.hset(key, "f", 1)
    cstore.hsync(key)
    assert cstore.hget(key, "f") == 1


def test_a_scan_reads_every_field_of_a_big_hash_as_a_full_read_does(
    cstore: CStore, key: str
) -> None:
    for i in range(2500):  # more than a batch of the embedded scan and a chunk of the HTTP one
        cstore.hset_raw(key, f"job-{i}", orjson.dumps({"i": i, "text": "é" * (i % 50)}).decode())
    cstore.hset_raw(key, "plain", "not json")
    cstore.hset_raw(key, "object", {"stored": "as an object"})
    scanned = dict(cstore.hscan_raw(key))
    assert scanned == cstore.hgetall_raw(key)
    assert len(scanned) == 2502


def test_a_scan_of_a_missing_hash_yields_nothing(cstore: CStore, key: str) -> None:
    assert list(cstore.hscan_raw(key)) == []


def test_writes_go_on_while_a_scan_is_being_read(cstore: CStore, key: str) -> None:
    for i in range(3):
        cstore.hset(key, f"f{i}", i)
    scan = cstore.hscan_raw(key)
    first = next(scan)
    cstore.hset(key, "during", 1)  # the scan holds no lock that a write waits for
    rest = list(scan)
    assert {first[0], *(name for name, _ in rest)} >= {"f0", "f1", "f2"}
    assert cstore.hget(key, "during") == 1
