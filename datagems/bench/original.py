"""The original DataGems (TypeScript 1.1.3) confirming a job: its writer sequence, replayed.

What ``POST /api/tasks/confirm`` of the original writes, in its order, with its shapes and
key order (``ts-1.1.3-capture`` README §4, ``stage2/writes.jsonl``): the details to R1FS
(``add_json``), the job base to ``datagen:jobs`` (``queued``), the owner's summary to
``datagen:user:{owner}:jobs``, one state per peer to ``datagen:job:{id}:peers`` (floor /
remainder split in peer order), then ``datagen:metrics`` read and rewritten (the defaults
first when the key is missing). It never writes DataGems' own keys (the open-jobs index
among them). ``tests/bench/test_original.py`` checks these writes against the capture.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from datagems.models import split_ranges
from datagems.store import keys
from datagems.store.base import R1FS, CStore, decode_value

GATEWAY_PATH = "/create_chat_completion"
METRICS_DEFAULTS: dict[str, Any] = {
    "totalJobs": 0,
    "totalRecordsRequested": 0,
    "totalRecordsGenerated": 0,
    "activeJobs": 0,
    "failedJobs": 0,
    "lastJobAt": None,
}


def iso_ms(ms: int) -> str:
    """``Date.toISOString()`` of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def stringify(value: Any) -> str:
    """``JSON.stringify``: compact, keys in insertion order."""
    return orjson.dumps(value).decode()


def confirm_as_original(
    cstore: CStore,
    r1fs: R1FS,
    *,
    owner: str,
    title: str,
    total: int,
    peers: list[str],
    schema: dict[str, Any],
    gateway_url: str,
    description: str = "A used bicycle listed for sale",
    instructions: str = "Each record is one used bicycle for sale.",
    created_ms: int | None = None,
    dataset_mode: bool = False,
) -> str:
    """Write a confirmed job exactly as the original does; returns its id."""
    ms = created_ms if created_ms is not None else int(time.time() * 1000)
    job_id = f"job_{ms}_{secrets.token_hex(3)}"
    created = iso_ms(ms)
    details = {
        "id": job_id,
        "owner": owner,
        "description": description,
        "instructions": instructions,
        "schema": schema,
        "inference": {"useExternalApi": False, "baseUrl": gateway_url, "path": GATEWAY_PATH},
        "datasetMode": dataset_mode,
        "createdAt": created,
        "schemaGeneratedAt": created,
        "schemaDurationMs": 5,
        "schemaRefreshes": 0,
    }
    cid = r1fs.add_json(details, filename=f"{job_id}_details.json")
    base = {
        "id": job_id,
        "owner": owner,
        "title": title,
        "status": "queued",
        "totalRecords": total,
        "datasetMode": dataset_mode,
        "peers": peers,
        "peerCount": len(peers),
        "totalGenerated": 0,
        "totalOk": 0,
        "totalFailed": 0,
        "jobDetailsCid": cid,
        "createdAt": created,
        "schemaGeneratedAt": created,
        "schemaDurationMs": 5,
        "schemaRefreshes": 0,
        "updatedAt": created,
    }
    cstore.hset_raw(keys.JOBS, job_id, stringify(base))
    summary = {
        "id": job_id,
        "title": title,
        "status": "queued",
        "createdAt": created,
        "updatedAt": created,
    }
    cstore.hset_raw(keys.user_jobs(owner), job_id, stringify(summary))
    for peer, share in split_ranges(total, peers):
        state = {
            "peerId": peer,
            "assigned": share.size,
            "range": {"start": share.start, "end": share.end},
            "generatedOk": 0,
            "generatedFailed": 0,
        }
        cstore.hset_raw(keys.job_peers(job_id), peer, stringify(state))
    metrics = decode_value(cstore.get_raw(keys.METRICS))
    if not isinstance(metrics, dict):
        metrics = dict(METRICS_DEFAULTS)
        cstore.set_raw(keys.METRICS, stringify(metrics))
    metrics = {
        **metrics,
        "totalJobs": int(metrics.get("totalJobs") or 0) + 1,
        "totalRecordsRequested": int(metrics.get("totalRecordsRequested") or 0) + total,
        "lastJobAt": created,
    }
    cstore.set_raw(keys.METRICS, stringify(metrics))
    return job_id
