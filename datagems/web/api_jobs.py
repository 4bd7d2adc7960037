"""``/api/tasks*`` of existing jobs: list, view, cancel, retry, extend, records, export.

Everything is read from CStore / R1FS through ``datagems.job``; store calls are sync and
run in a worker thread so the event loop never blocks. The read routes (list, view,
records, export) read jobs through the app's read cache (``datagems.web.cache``); the
writes (cancel, retry, extend) read the store directly and invalidate the cache, so the
caller sees the change at once. Drafting and confirming are ``api_drafts``'; the live
event stream ``api_events``'.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from aiohttp import web

from datagems.errors import BadRequest, Conflict, StoreUnavailable
from datagems.job import commands, lifecycle, listing, rows
from datagems.job.records import records_page
from datagems.models import TERMINAL_STATUSES, CommandDecision, JobBase, JobCommand
from datagems.web import limits
from datagems.web.auth import caller
from datagems.web.bodies import ExtendBody, read_body
from datagems.web.keys import READ_CACHE, SERVICES, STATE
from datagems.web.presenters import owned_job, owned_view, view_body

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- helpers


def _json(body: bytes, status: int = 200) -> web.Response:
    """A response of JSON already serialized (orjson)."""
    return web.Response(body=body, status=status, content_type="application/json")


# --------------------------------------------------------------------------- drafting


async def _decided(request: web.Request, job: JobBase, command: JobCommand) -> CommandDecision:
    """Submit a job command and wait, without blocking, for the owner's decision (taken
    here when this replica owns the job). Raises the refusal (409, 429, 400) or 503."""
    services = request.app[SERVICES]
    try:
        await asyncio.to_thread(commands.submit, services, command)
        await asyncio.to_thread(commands.apply_if_owner, services, job)
        until = commands.give_up_at(services, command)
        decision = await asyncio.to_thread(commands.decision_of, services, command)
        while decision is None and time.monotonic() < until:
            await asyncio.sleep(commands.WAIT_POLL_SECONDS)
            decision = await asyncio.to_thread(commands.decision_of, services, command)
    finally:
        request.app[READ_CACHE].jobs_changed(job.id)
    return commands.raise_for(decision)


async def retry_failed(request: web.Request) -> web.Response:
    """Call again, once, every record of a finished job that ended failed (202). The job's
    command owner decides (``datagems.job.commands``); the usual refusals come first."""
    who = caller(request)
    services = request.app[SERVICES]
    view = await owned_job(request, request.match_info["id"])
    job = view.job
    if job.status not in ("succeeded", "failed"):
        raise Conflict(f"the job is {job.status}: retry failed records once it has finished")
    if job.total_failed == 0:
        raise Conflict("the job has no failed records to retry")
    await asyncio.to_thread(
        limits.check_capacity, services, who, new_records=job.total_failed, job_id=job.id
    )
    command = commands.new_command(
        "retry",
        job.id,
        who.username,
        via=services.settings.host_addr,
        exempt=limits.exempt(services, who),
    )
    decision = await _decided(request, job, command)
    answer = {"jobId": job.id, "retryRound": decision.retry_round, "records": decision.records}
    return web.json_response(answer, status=202)


async def extend_task(request: web.Request) -> web.Response:
    """Append ``additionalRecords`` records to a job, split over its peers (202). The
    job's command owner decides (``datagems.job.commands``); the usual refusals come first."""
    who = caller(request)
    services = request.app[SERVICES]
    body = await read_body(request, ExtendBody)
    view = await owned_job(request, request.match_info["id"])
    job = view.job
    if job.status == "cancelled":
        raise Conflict("a cancelled job cannot be extended")
    maximum = services.settings.max_records_per_job
    additional = body.additional_records
    if additional < 1 or job.total_records + additional > maximum:
        raise BadRequest(
            f"additionalRecords must be between 1 and {maximum - job.total_records} "
            f"(at most {maximum} records per job)"
        )
    outstanding = 0
    if job.status in ("queued", "running"):
        outstanding = max(0, job.total_records - job.total_generated)
    await asyncio.to_thread(
        limits.check_capacity,
        services,
        who,
        new_records=outstanding + additional,
        job_id=job.id,
    )
    command = commands.new_command(
        "extend",
        job.id,
        who.username,
        via=services.settings.host_addr,
        additional=additional,
        exempt=limits.exempt(services, who),
    )
    decision = await _decided(request, job, command)
    return web.json_response({"jobId": job.id, "totalRecords": decision.total_records}, status=202)


# --------------------------------------------------------------------------- reading


async def list_tasks(request: web.Request) -> web.Response:
    """One page of the caller's jobs (an admin's: everyone's with ``?all=true``, or one
    user's with ``?owner=``), newest first: ``{"jobs", "nextCursor"}``. Filters ``status``
    (comma list) and ``q`` (title text); ``limit`` up to ``listing.MAX_PAGE_SIZE``; pass
    ``nextCursor`` back as ``cursor`` for the next page. From the read cache: open jobs
    live, finished ones from the user's own job hash (``datagems.job.listing``)."""
    who = caller(request)
    query = listing.parse_query(request.query, username=who.username, is_admin=who.is_admin)
    return _json(await request.app[READ_CACHE].listing(query, admin=who.is_admin))


async def get_task(request: web.Request) -> web.Response:
    cached = await owned_view(request, request.match_info["id"])
    return _json(await view_body(request, cached))


async def cancel_task(request: web.Request) -> web.Response:
    who = caller(request)
    view = await owned_job(request, request.match_info["id"])
    if view.job.status in TERMINAL_STATUSES:
        return web.json_response(
            {"ok": True, "jobId": view.job.id, "status": view.job.status}, status=202
        )
    try:
        await asyncio.to_thread(
            lifecycle.request_cancel, request.app[SERVICES], view.job.id, who.username
        )
    finally:
        request.app[READ_CACHE].jobs_changed(view.job.id)
    return web.json_response({"ok": True, "jobId": view.job.id, "status": "cancelling"}, status=202)


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None
    if value < low or value > high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


async def task_records(request: web.Request) -> web.Response:
    view = (await owned_view(request, request.match_info["id"])).view
    offset = _int_query(request, "offset", 0, 0, 10_000_000)
    limit = _int_query(request, "limit", 50, 1, 500)
    page = await asyncio.to_thread(
        records_page, request.app[SERVICES], view.job.id, offset=offset, limit=limit
    )
    return web.json_response(page)


async def _within(request: web.Request, seconds: float, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in an export thread, given ``seconds``: past them ``StoreUnavailable``
    (503 with ``Retry-After``), and the thread is left to end on the store's own timeout
    (exports have threads of their own: a stalled store never starves the other routes)."""
    pool = request.app[STATE].export_pool
    task = asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.add_done_callback(_discard_result)
        raise StoreUnavailable(f"the store did not answer the export's reads within {seconds} s")
    return task.result()


def _discard_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.info("a stalled export read ended: %s", task.exception())


async def export_task(request: web.Request) -> web.StreamResponse:
    """The merged file, streamed. Every read of the store is bounded
    (``DATAGEN_EXPORT_STALL_SECONDS``): stalled before the first byte, the answer is 503
    with ``Retry-After``; stalled mid-file, the connection is cut, never left hanging."""
    services = request.app[SERVICES]
    stall = services.settings.export_stall_seconds
    try:  # the view may need the job's details from R1FS too
        cached = await asyncio.wait_for(owned_view(request, request.match_info["id"]), stall)
    except TimeoutError:
        raise StoreUnavailable(f"the job's view was not read within {stall} s") from None
    view = cached.view
    options = rows.parse_options(request.query)  # the row set and its columns (job.rows)
    fmt = options.fmt
    chunks = await _within(
        request, stall, functools.partial(rows.export_chunks, services, view.job, options)
    )
    stalled = False
    try:
        try:
            # errors surface before the headers
            first = await _within(request, stall, next, chunks, None)
        except StoreUnavailable:
            stalled = True
            raise
        response = web.StreamResponse(
            headers={
                "Content-Type": rows.CONTENT_TYPES[fmt],
                "Content-Disposition": f'attachment; filename="{rows.file_name(view.job, fmt)}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            }
        )
        await response.prepare(request)
        chunk = first
        while chunk is not None:
            if chunk:
                await response.write(chunk)
            try:
                chunk = await _within(request, stall, next, chunks, None)
            except StoreUnavailable as exc:
                stalled = True
                logger.warning("export of job %s cut mid-file: %s", view.job.id, exc)
                if request.transport is not None:  # the client sees a cut download
                    request.transport.close()
                return response
        await response.write_eof()
        return response
    finally:
        close = getattr(chunks, "close", None)
        if close is not None and not stalled:  # a stalled one is still running: let it end
            await asyncio.to_thread(close)


# --------------------------------------------------------------------------- live events
