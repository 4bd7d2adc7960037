"""The records view and the exports at 50 000 records (issue 16): not a test, a
measurement. ``.venv/bin/python -m tests.measure_records_view`` (in-process app on the
embedded store; one slice of 50 000 lines, every 17th failed after 3 attempts with their
raw answers, every 5th retried; pages: best of 3)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from datagems.models import Range
from tests.web.harness import LiveApp, confirm
from tests.web.test_records_api import play

N = 50_000


def entry(i: int) -> dict[str, Any]:
    if i % 17 == 0:
        tries = [
            {"n": k, "do": "first", "reason": "invalid_json", "error": "not JSON",
             "raw": "Sure! " * 20, "ms": 100.0}
            for k in (1, 2, 3)
        ]  # fmt: skip
        return {"i": i, "ok": False, "reason": "invalid_json", "attempts": 3,
                "error": "invalid_json: not JSON", "tries": tries}  # fmt: skip
    data = {
        "subject": f"Ticket {i}",
        "description": "It jams when printing double-sided pages, every time.",
        "priority": "low",
        "meta": {"lang": "en", "n": i},
    }
    return {"i": i, "ok": True, "data": data, **({"attempts": 2} if i % 5 == 0 else {})}


def timed(label: str, call: Any, repeat: int = 1) -> Any:
    best, answer = None, None
    for _ in range(repeat):
        start = time.perf_counter()
        answer = call()
        spent = time.perf_counter() - start
        best = spent if best is None else min(best, spent)
    print(f"{label:44s} {best * 1000:8.1f} ms")
    return answer


def main() -> None:
    live = LiveApp(Path(tempfile.mkdtemp())).start()
    try:
        client = live.login("alice")
        job_id = confirm(client, totalRecords=6)
        play(live, job_id, [entry(i) for i in range(N)])
        services = live.services
        assert services is not None
        peer = services.peers.get(job_id, services.settings.host_addr)
        assert peer is not None
        peer.range, peer.assigned = Range(start=0, end=N), N
        services.peers.put(job_id, peer)

        def rows(**params: Any) -> Any:
            return lambda: client.get(f"/api/tasks/{job_id}/rows", params=params)

        timed("first page, cold (reads the slice)", rows())
        timed("first page", rows(limit=50), 3)
        timed("page at offset 49 950", rows(offset=49_950, limit=50), 3)
        timed("failed filter", rows(show="failed", limit=50), 3)
        timed("retried filter at offset 5 000", rows(show="retried", offset=5000), 3)
        timed("search 'ticket 4999'", rows(q="ticket 4999"), 3)
        timed("detail of record 49 998", lambda: client.get(f"/api/tasks/{job_id}/records/49997"))
        url = f"/api/tasks/{job_id}/export"
        for fmt in ("json", "jsonl", "csv", "parquet"):
            for params in ({}, {"meta": "index,status,error", "flatten": "true"}):
                name = f"export {fmt} " + ("(meta, flatten)" if params else "(defaults)")
                answer = timed(
                    name, lambda p=params, f=fmt: client.get(url, params={"format": f, **p})
                )
                print(f"{'':44s} {len(answer.content) / 1e6:8.1f} MB")
    finally:
        live.stop()


if __name__ == "__main__":
    main()
