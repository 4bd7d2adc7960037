"""``/api/tasks/{id}/events``: the live event stream (server-sent events) of one job,
read through the app's read cache (``datagems.web.cache``), with heartbeats.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import orjson
from aiohttp import web

from datagems.errors import DatagemsError
from datagems.job import honest
from datagems.models import TERMINAL_STATUSES
from datagems.web.cache import CachedView
from datagems.web.keys import READ_CACHE, SERVICES, STATE
from datagems.web.presenters import owned_view, view_body

logger = logging.getLogger(__name__)

EVENT_INTERVAL_SECONDS = 0.75

HEARTBEAT_SECONDS = 15.0


async def _settled(request: web.Request, cached: CachedView) -> bool:
    """Will the job's page change no more? (A cancel has ended on every peer of ours.)"""
    beats = await request.app[READ_CACHE].replicas()
    originals = [p for p in cached.view.job.peers if p not in beats] if beats else []
    return honest.settled(cached.view, originals, request.app[SERVICES].settings)


def _sse(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def task_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the job view whenever it changes, read every ~0.75 s (through
    the read cache: every stream of a job shares its reads).

    Ends after the job reaches a terminal state (``event: end``), when the client goes
    away, or when the app stops.
    """
    cached = await owned_view(request, request.match_info["id"])
    job_id = cached.view.job.id
    cache = request.app[READ_CACHE]
    stopping = request.app[STATE].stopping
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(b"retry: 3000\n\n")
    last_digest = b""
    last_write = time.monotonic()
    try:
        while True:
            payload = await view_body(request, cached)
            digest = hashlib.blake2b(payload, digest_size=16).digest()
            if digest != last_digest:
                await response.write(_sse("job", payload))
                last_digest, last_write = digest, time.monotonic()
            elif time.monotonic() - last_write > HEARTBEAT_SECONDS:
                await response.write(b": keep-alive\n\n")
                last_write = time.monotonic()
            status = cached.view.job.status
            if status in TERMINAL_STATUSES and await _settled(request, cached):
                await response.write(_sse("end", orjson.dumps({"status": status})))
                break
            try:
                await asyncio.wait_for(stopping.wait(), EVENT_INTERVAL_SECONDS)
                break
            except TimeoutError:
                pass
            try:
                fresh = await cache.job_view(job_id)
            except DatagemsError as exc:  # the store hiccups: keep the stream, try again
                logger.warning("events of job %s: %s", job_id, exc)
                continue
            if fresh is None:
                break
            cached = fresh
    except (ConnectionResetError, ConnectionError):
        pass
    return response
