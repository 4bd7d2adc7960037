"""``/api/tasks/{id}/report`` (the quality report, ``datagems.quality.report``) and
``/api/tasks/{id}/resample-near-duplicates`` (``datagems.quality.resample``).

The report is built in a worker thread from the job's slices and kept per job
(``ReportCache``): a finished job's report is built once per set of slices and
threshold; a running job's at most every ``LIVE_SECONDS`` (``LARGE_LIVE_SECONDS`` past
``LARGE_RECORDS`` records), however often the page polls. Concurrent requests for one
job wait for one build. Reads never write: nothing of the report is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from pydantic import Field

from datagems.errors import BadRequest, Conflict
from datagems.job import commands
from datagems.job.state import result_cids
from datagems.models import TERMINAL_STATUSES
from datagems.quality import resample
from datagems.quality.report import job_report
from datagems.web import limits
from datagems.web.api_jobs import _decided
from datagems.web.auth import caller
from datagems.web.bodies import Body, read_body
from datagems.web.keys import SERVICES
from datagems.web.presenters import job_details, owned_job, owned_view

logger = logging.getLogger(__name__)
LIVE_SECONDS = 3.0
LARGE_RECORDS = 5_000
LARGE_LIVE_SECONDS = 20.0
JOBS_KEPT = 64
MAX_CANDIDATES = 5_000  # near-duplicates one resample request sends to the owner


@dataclass
class _Kept:
    key: tuple[Any, ...]
    body: bytes
    report: dict[str, Any]
    at: float


class ReportCache:
    """The latest report of recently asked jobs (``JOBS_KEPT``), one build at a time each."""

    def __init__(self) -> None:
        self.kept: OrderedDict[str, _Kept] = OrderedDict()
        self.locks: dict[str, asyncio.Lock] = {}
        self.builds = 0  # reports built (tests read it: polls do not rebuild)

    def fresh(self, job_id: str, key: tuple[Any, ...], running: bool, size: int) -> _Kept | None:
        kept = self.kept.get(job_id)
        if kept is None:
            return None
        if kept.key == key:
            return kept
        if running and kept.key[1] == key[1]:  # same job, same status: young enough?
            age = time.monotonic() - kept.at
            return (
                kept
                if age < (LARGE_LIVE_SECONDS if size > LARGE_RECORDS else LIVE_SECONDS)
                else None
            )
        return None

    def keep(self, job_id: str, kept: _Kept) -> None:
        self.kept[job_id] = kept
        self.kept.move_to_end(job_id)
        while len(self.kept) > JOBS_KEPT:
            dropped, _ = self.kept.popitem(last=False)
            self.locks.pop(dropped, None)


REPORT_CACHE = web.AppKey("report_cache", ReportCache)


def _threshold(request: web.Request) -> float | None:
    raw = request.query.get("threshold")
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest("threshold must be a number in (0, 1]") from None
    if not 0.0 < value <= 1.0:
        raise BadRequest("threshold must be a number in (0, 1]")
    return value


async def _report(request: web.Request, job_id: str) -> _Kept:
    """The job's report, from the cache when it still stands, else built now."""
    services = request.app[SERVICES]
    cache = request.app[REPORT_CACHE]
    cached = await owned_view(request, job_id)
    view = cached.view
    details = cached.details or await job_details(request, view)
    threshold = _threshold(request)
    chosen = threshold or getattr(details, "near_duplicate_threshold", None)
    job = view.job
    running = job.status not in TERMINAL_STATUSES
    recent = (
        tuple((p, tuple(r.i for r in s.recent)) for p, s in sorted(view.peers.items()))
        if running
        else ()
    )
    key = (
        job.id,
        job.status,
        tuple(result_cids(view.peers)),
        chosen or services.settings.near_duplicate_threshold,
        job.total_records,
        job.total_ok,
        job.total_failed,
        recent,
        sum(s.tokens_in + s.tokens_out for s in view.peers.values()),
    )
    kept = cache.fresh(job.id, key, running, job.total_generated)
    if kept is not None:
        return kept
    lock = cache.locks.setdefault(job.id, asyncio.Lock())
    async with lock:
        kept = cache.fresh(job.id, key, running, job.total_generated)
        if kept is not None:
            return kept
        report = await asyncio.to_thread(job_report, services, view, details, threshold=chosen)
        report["resamples"] = resample.summary(view.commands)
        report["resampleBudget"] = services.settings.resample_max_records
        kept = _Kept(key, orjson.dumps(report), report, time.monotonic())
        cache.builds += 1
        cache.keep(job.id, kept)
        return kept


async def task_report(request: web.Request) -> web.Response:
    """The quality report as JSON (``?download=true``: as ``report.json``)."""
    job_id = request.match_info["id"]
    kept = await _report(request, job_id)
    headers = {"Cache-Control": "no-store"}
    if request.query.get("download", "").lower() in ("1", "true", "yes"):
        headers["Content-Disposition"] = f'attachment; filename="{job_id}-report.json"'
    return web.Response(body=kept.body, content_type="application/json", headers=headers)


class ResampleBody(Body):
    max_records: int | None = Field(default=None, ge=1, le=100_000)


async def resample_near_duplicates(request: web.Request) -> web.Response:
    """Call again, once, the later member of each near-duplicate pair of a finished job,
    at most ``maxRecords`` (and ``DATAGEN_RESAMPLE_MAX_RECORDS``) of them (202). The job's
    command owner decides which (``datagems.quality.resample``)."""
    who = caller(request)
    services = request.app[SERVICES]
    body = await read_body(request, ResampleBody)
    view = await owned_job(request, request.match_info["id"])
    job = view.job
    if job.status not in ("succeeded", "failed"):
        raise Conflict(f"the job is {job.status}: resample near-duplicates once it has finished")
    kept = await _report(request, job.id)
    done = resample.resampled(view.commands)
    candidates = [i for i in kept.report["nearDuplicates"]["later"] if i not in done]
    if not candidates:
        raise Conflict("no near-duplicate left to resample (each record is resampled once)")
    budget = min(services.settings.resample_max_records, body.max_records or 10**9)
    await asyncio.to_thread(
        limits.check_capacity,
        services,
        who,
        new_records=min(budget, len(candidates)),
        job_id=job.id,
    )
    command = commands.new_command(
        "resample",
        job.id,
        who.username,
        via=services.settings.host_addr,
        exempt=limits.exempt(services, who),
        indices=candidates[:MAX_CANDIDATES],
        max_records=budget,
    )
    decision = await _decided(request, job, command)
    logger.info("%s resamples %d near-duplicates of job %s", who.username, decision.records, job.id)
    answer = {
        "jobId": job.id,
        "retryRound": decision.retry_round,
        "records": decision.records,
        "indices": decision.indices,
        "budget": budget,
    }
    return web.json_response(answer, status=202)
