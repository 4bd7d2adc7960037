"""Two OS processes writing one hash at the same time lose no field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datagems.bench.procs import clean_env
from datagems.store.base import CStore
from datagems.store.embedded import SqliteCStore
from datagems.store.http import HttpCStore
from tests.servers import ROOT
from tests.store.conftest import DevNode

FIELDS_PER_WRITER = 1000
HKEY = "datagen:job:concurrent:peers"

# A writer opens its store, says "ready", waits for "go" on stdin, writes its fields.
WRITER = """
import sys
from pathlib import Path
from datagems.store.embedded import SqliteCStore
from datagems.store.http import HttpCStore

kind, target, name, count, hkey = sys.argv[1:6]
store = SqliteCStore(Path(target)) if kind == "embedded" else HttpCStore(target, peers=[name])
store.hset(hkey, f"{name}-warmup", 0)
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(count)):
    store.hset(hkey, f"{name}-{i}", {"writer": name, "i": i})
store.close()
print("done", flush=True)
"""


def run_writers(kind: str, target: str) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, kind, target, name, str(FIELDS_PER_WRITER), HKEY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(),
            cwd=ROOT,
            text=True,
        )
        for name in ("w1", "w2")
    ]
    try:
        for writer in writers:  # both are connected before either writes
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready", writer.stderr
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        for writer in writers:
            out, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()


def assert_every_field_present(store: CStore) -> None:
    fields = store.hgetall(HKEY)
    for name in ("w1", "w2"):
        for i in range(FIELDS_PER_WRITER):
            assert fields[f"{name}-{i}"] == {"writer": name, "i": i}
    assert len(fields) == 2 * FIELDS_PER_WRITER + 2  # and the two warm-up fields


@pytest.mark.fleet
def test_two_processes_writing_one_hash_in_the_same_sqlite_file_lose_no_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.sqlite3"
    SqliteCStore(path).close()  # the schema exists before both start
    run_writers("embedded", str(path))
    store = SqliteCStore(path)
    try:
        assert_every_field_present(store)
    finally:
        store.close()


@pytest.mark.fleet
def test_two_processes_writing_one_hash_through_the_devnode_lose_no_field(
    devnode: DevNode,
) -> None:
    run_writers("http", devnode.cstore_url)
    store = HttpCStore(devnode.cstore_url, peers=["w1", "w2"])
    try:
        assert_every_field_present(store)
        counts = devnode.stats()["writes"][HKEY]
        assert all(counts[f"w1-{i}"] == 1 and counts[f"w2-{i}"] == 1 for i in range(1000))
    finally:
        store.close()
