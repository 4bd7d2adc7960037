"""The dashboard's record list: one page of a job's records, in flight and finished.

In-flight records come from the peer states (``recent``, ``inFlight``); finished ones from
the merged result slices (``export.merged_entries``), so the page shows what an export
would hold for the indexes already uploaded, and what is still being called.
"""

from __future__ import annotations

from typing import Any

from datagems.errors import NotFound
from datagems.job.export import merged_entries
from datagems.job.lifecycle import load_job
from datagems.job.state import result_cids
from datagems.services import Services


def records_page(services: Services, job_id: str, *, offset: int, limit: int) -> dict[str, Any]:
    """In-flight and finished records of ``[offset, offset + limit)`` with their state."""
    view = load_job(services, job_id)
    if view is None:
        raise NotFound("job not found")
    offset, limit = max(0, offset), max(1, min(limit, 500))
    end = offset + limit
    known: dict[int, dict[str, Any]] = {}
    in_flight: list[dict[str, Any]] = []
    for peer_id, state in view.peers.items():
        for record in state.recent:
            if offset <= record.i < end:
                known[record.i] = {
                    "i": record.i,
                    "state": "ok" if record.ok else "failed",
                    "attempt": record.attempts,
                    "reason": record.reason,
                    "message": record.message,
                    "peer": peer_id,
                    "data": record.data,
                }
        for flying in state.in_flight:
            item = {
                "i": flying.i,
                "state": flying.state,
                "attempt": flying.attempt,
                "reason": flying.reason,
                "startedAt": flying.started_at,
                "peer": peer_id,
            }
            in_flight.append(item)
            if offset <= flying.i < end:
                known[flying.i] = item
    if result_cids(view.peers):
        ranges = [(s.range.start, s.range.end, p) for p, s in view.peers.items()]

        def peer_of(index: int) -> str | None:
            return next((p for start, stop, p in ranges if start <= index < stop), None)

        for entry in merged_entries(services, job_id, partial=True):
            index = entry["i"]
            if index >= end:
                break
            if index < offset:
                continue
            known[index] = {
                "i": index,
                "state": "ok" if entry.get("ok") else "failed",
                "attempt": entry.get("attempts", 1),
                "reason": entry.get("reason"),
                "message": entry.get("error"),
                "data": entry.get("data"),
                "vars": entry.get("vars"),  # the record's variables (datagems.quality)
                "peer": peer_of(index),
                "tries": entry.get("tries"),  # per attempt: what was done, and why it failed
            }
    records = [{k: v for k, v in known[i].items() if v is not None} for i in sorted(known)]
    in_flight.sort(key=lambda item: item["i"])
    return {
        "total": view.job.total_records,
        "offset": offset,
        "limit": limit,
        "records": records,
        "inFlight": [{k: v for k, v in item.items() if v is not None} for item in in_flight],
    }
