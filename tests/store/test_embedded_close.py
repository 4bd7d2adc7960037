"""Closing the embedded store while worker threads still write (a replica stopping)."""

from __future__ import annotations

import threading
from pathlib import Path

from datagems.bench.procs import wait_until
from datagems.errors import StoreUnavailable
from datagems.store.embedded import SqliteCStore

THREADS = 4
WRITES = 300


def test_a_store_closed_under_writing_threads_fails_their_writes_cleanly(tmp_path: Path) -> None:
    store = SqliteCStore(tmp_path / "cstore.sqlite")
    landed = [0] * THREADS
    errors: list[BaseException] = []

    def write(n: int) -> None:
        for i in range(WRITES):
            try:
                store.hset("datagen:test", f"{n}-{i}", {"i": i})
                landed[n] += 1
            except StoreUnavailable:
                pass  # closed under it: a clear store error, never a crash
            except BaseException as exc:  # anything else is a bug
                errors.append(exc)
                return

    threads = [threading.Thread(target=write, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    wait_until(lambda: sum(landed) >= THREADS, timeout=30, what="the first writes")
    store.close()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    # what landed before or after the close is stored, whole
    again = SqliteCStore(tmp_path / "cstore.sqlite")
    stored = again.hgetall("datagen:test")
    again.close()
    assert len(stored) == sum(landed)
    assert all(value == {"i": int(field.split("-")[1])} for field, value in stored.items())
