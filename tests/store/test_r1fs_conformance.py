"""One conformance suite for the R1FS interface, run over every backend."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagems.errors import StoreRejected
from datagems.store.base import R1FS
from datagems.store.embedded import FolderR1FS
from datagems.store.http import HttpR1FS
from tests.store.conftest import DevNode


@pytest.fixture(params=["embedded", "http"])
def r1fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[R1FS]:
    if request.param == "embedded":
        store: R1FS = FolderR1FS(tmp_path / "r1fs")
    else:
        node: DevNode = request.getfixturevalue("devnode")
        store = HttpR1FS(node.r1fs_url, timeout=10)
    try:
        yield store
    finally:
        store.close()


def test_a_json_object_round_trips_through_add_json_and_get_json(r1fs: R1FS) -> None:
    data = {"id": "job-1", "schema": {"type": "object"}, "title": "Bücher 📚", "n": [1, 2.5]}
    cid = r1fs.add_json(data, filename="job-1_details.json")
    assert r1fs.get_json(cid) == data


def test_add_json_stores_compact_json_with_sorted_keys(r1fs: R1FS) -> None:
    cid = r1fs.add_json({"b": 1, "a": {"d": 2, "c": 3}})
    assert r1fs.get_file(cid) == b'{"a":{"c":3,"d":2},"b":1}'


def test_add_json_refuses_a_list(r1fs: R1FS) -> None:
    with pytest.raises(TypeError):
        r1fs.add_json([1, 2, 3])  # type: ignore[arg-type]


def test_bytes_round_trip_through_add_file_and_get_file(r1fs: R1FS) -> None:
    data = bytes(range(256)) * 40 + b"\x00\xff"
    cid = r1fs.add_file(data, "blob.bin")
    assert r1fs.get_file(cid) == data


def test_an_empty_file_round_trips(r1fs: R1FS) -> None:
    cid = r1fs.add_file(b"", "empty.jsonl")
    assert r1fs.get_file(cid) == b""


def test_add_path_streams_a_multi_megabyte_file_and_reads_it_back_in_chunks(
    r1fs: R1FS, tmp_path: Path
) -> None:
    path = tmp_path / "slice.jsonl"
    data = os.urandom(6 * 1024 * 1024 + 17)
    path.write_bytes(data)
    cid = r1fs.add_path(path, "job_a.jsonl")
    digest = hashlib.sha256()
    chunks = 0
    with r1fs.open_file(cid) as stream:
        for chunk in stream:
            digest.update(chunk)
            chunks += 1
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert chunks > 1


def test_a_file_added_with_a_secret_is_read_back_only_with_that_secret(r1fs: R1FS) -> None:
    cid = r1fs.add_file(b"private rows", "private.jsonl", secret="s3cret-value")
    assert r1fs.get_file(cid, secret="s3cret-value") == b"private rows"
    with pytest.raises(StoreRejected) as wrong:
        r1fs.get_file(cid, secret="another-secret")
    with pytest.raises(StoreRejected):
        r1fs.get_file(cid)
    assert "s3cret-value" not in str(wrong.value)
    assert "another-secret" not in str(wrong.value)


def test_add_path_and_add_json_keep_their_secret_too(r1fs: R1FS, tmp_path: Path) -> None:
    path = tmp_path / "secret.bin"
    path.write_bytes(b"streamed secret content")
    path_cid = r1fs.add_path(path, "secret.bin", secret="path-secret")
    json_cid = r1fs.add_json({"a": 1}, secret="json-secret")
    assert r1fs.get_file(path_cid, secret="path-secret") == b"streamed secret content"
    assert r1fs.get_json(json_cid, secret="json-secret") == {"a": 1}
    with pytest.raises(StoreRejected):
        r1fs.get_file(path_cid)
    with pytest.raises(StoreRejected):
        r1fs.get_json(json_cid, secret="path-secret")


def test_a_file_added_without_a_secret_is_refused_with_one(r1fs: R1FS) -> None:
    cid = r1fs.add_file(b"open", "open.txt")
    with pytest.raises(StoreRejected):
        r1fs.get_file(cid, secret="unexpected")


def test_a_missing_cid_is_refused(r1fs: R1FS) -> None:
    with pytest.raises(StoreRejected):
        r1fs.get_file("QmDoesNotExist0000000000000000000000000000000")
    with pytest.raises(StoreRejected):
        r1fs.get_json("../etc/passwd")
