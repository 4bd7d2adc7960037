"""Exports that cannot hang and a CSV that always says what its columns are (issue 13,
item 14). The slices live on a real devnode's R1FS, which the test freezes (SIGSTOP): its
port still accepts connections, and nothing ever answers."""

from __future__ import annotations

import csv
import io
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from datagems.bench.procs import devnode_command, free_port
from tests.fleet import ADMIN_PASSWORD
from tests.servers import ServerProcess
from tests.web.harness import LiveApp, confirm, finish_job

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def devnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("devnode")
    cstore_port, r1fs_port = free_port(), free_port()
    node = ServerProcess(
        "devnode-export",
        devnode_command(cstore_port, r1fs_port, root),
        ready_url=f"http://127.0.0.1:{cstore_port}/get_status",
    )
    node.start()
    node.r1fs_url = f"http://127.0.0.1:{r1fs_port}"  # type: ignore[attr-defined]
    yield node
    if node.proc is not None and node.alive:
        os.kill(node.proc.pid, signal.SIGCONT)
    node.stop()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, devnode: ServerProcess) -> Iterator[LiveApp]:
    live = LiveApp(
        Path(tmp_path_factory.mktemp("export-bounds")),
        r1fs_url=devnode.r1fs_url,  # type: ignore[attr-defined]
        store_timeout_seconds=60.0,  # a store call alone would wait this long, and retry
        export_stall_seconds=1.0,
    ).start()
    yield live
    live.stop()


def test_a_csv_of_a_job_without_one_ok_record_has_the_schemas_header(app: LiveApp) -> None:
    """It was one blank line with no header."""
    alice = app.login("alice")
    job_id = confirm(alice, totalRecords=3)
    finish_job(app, job_id, [None, None, None])
    fields = list(alice.get(f"/api/tasks/{job_id}").json()["details"]["schema"]["properties"])
    answer = alice.get(f"/api/tasks/{job_id}/export", params={"format": "csv"})
    assert answer.status_code == 200, answer.text
    rows = list(csv.reader(io.StringIO(answer.text)))
    # a row per index, empty when failed: as the JSON's nulls (and the original's CSV)
    assert rows == [fields] + [[""] * len(fields)] * 3
    assert alice.get(f"/api/tasks/{job_id}/export").json() == [None, None, None]
    only_ok = alice.get(
        f"/api/tasks/{job_id}/export", params={"format": "csv", "failed": "exclude"}
    )
    assert list(csv.reader(io.StringIO(only_ok.text))) == [fields]


def test_an_export_whose_store_reads_hang_answers_503_with_retry_after(
    app: LiveApp, devnode: ServerProcess
) -> None:
    """It answered nothing for over 90 s."""
    alice = app.login("alice")
    job_id = confirm(alice, totalRecords=2)
    finish_job(app, job_id, [{"a": 1}, {"a": 2}])
    # the job's view and the list read its details once (R1FS), then keep them
    assert alice.get(f"/api/tasks/{job_id}").json()["details"]
    assert alice.get("/api/tasks").status_code == 200
    assert devnode.proc is not None
    os.kill(devnode.proc.pid, signal.SIGSTOP)
    try:
        for fmt in ("csv", "json", "parquet"):
            answer = alice.get(
                f"/api/tasks/{job_id}/export", params={"format": fmt}, timeout=httpx.Timeout(60)
            )
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["Retry-After"]) >= 1
            assert "127.0.0.1" not in answer.text and "http" not in answer.json()["error"]
        # many at once: their stalled reads wait in the export threads, and every other
        # route still answers (the threads all routes share are not theirs to hold)
        with ThreadPoolExecutor(12) as pool:
            futures = [
                pool.submit(
                    alice.get,
                    f"/api/tasks/{job_id}/export",
                    params={"format": "jsonl"},
                    timeout=httpx.Timeout(60),
                )
                for _ in range(12)
            ]
            assert {future.result().status_code for future in futures} == {503}
        # their reads are still stuck (the store's own timeout is 60 s here), yet a route
        # that reads the store in a thread answers
        assert alice.get("/api/user/settings", timeout=httpx.Timeout(20)).status_code == 200
        assert alice.get("/api/tasks", timeout=httpx.Timeout(20)).status_code == 200
    finally:
        os.kill(devnode.proc.pid, signal.SIGCONT)
    back = alice.get(f"/api/tasks/{job_id}/export", timeout=httpx.Timeout(120))
    assert back.status_code == 200 and back.json() == [{"a": 1}, {"a": 2}]
    admin = app.login("admin", ADMIN_PASSWORD)
    assert admin.get(f"/api/tasks/{job_id}/export").status_code == 200
