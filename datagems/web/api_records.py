"""``/api/tasks/{id}/rows`` and ``/api/tasks/{id}/records/{index}``: the records view.

A page of records filtered (``show``: all, ok, failed, retried, in_flight) and searched
(``q``), cut on the server (``datagems.job.browse``), and one record's detail: its prompt
and every attempt with its raw answer, error, latency and tokens. Reads only: the job is
read through the app's read cache, the slices through the record index.
"""

from __future__ import annotations

import asyncio
import functools

from aiohttp import web

from datagems.errors import BadRequest
from datagems.job import browse
from datagems.web.api_jobs import _int_query
from datagems.web.keys import RECORD_INDEX, SERVICES
from datagems.web.presenters import job_details, owned_view

MAX_PAGE = 200


async def task_rows(request: web.Request) -> web.Response:
    """One page of the job's records for the grid, with the counts of every filter."""
    cached = await owned_view(request, request.match_info["id"])
    offset = _int_query(request, "offset", 0, 0, 10_000_000)
    limit = _int_query(request, "limit", 50, 1, MAX_PAGE)
    show = request.query.get("show", "all")
    if show not in browse.SHOWS:
        raise BadRequest(f"show must be one of {', '.join(browse.SHOWS)}")
    details = cached.details or await job_details(request, cached.view)
    body = await asyncio.to_thread(
        functools.partial(
            browse.page,
            request.app[SERVICES],
            request.app[RECORD_INDEX],
            cached.view,
            details,
            offset=offset,
            limit=limit,
            show=show,
            q=request.query.get("q", ""),
        )
    )
    return web.json_response(body)


async def task_record(request: web.Request) -> web.Response:
    """One record: its data or error, its prompt, every attempt kept."""
    cached = await owned_view(request, request.match_info["id"])
    raw = request.match_info["index"]
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest("index must be a whole number")
    details = cached.details or await job_details(request, cached.view)
    body = await asyncio.to_thread(
        browse.detail,
        request.app[SERVICES],
        request.app[RECORD_INDEX],
        cached.view,
        details,
        int(raw),
    )
    return web.json_response(body)
