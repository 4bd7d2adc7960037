"""How the task routes shape their answers: a job as its owner sees it (status, totals,
per-peer coverage and usage, control state, notes on a mixed fleet), read through the
app's read cache (``datagems.web.cache``) and checked to be the caller's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from datagems.errors import NotFound
from datagems.job import honest, lifecycle
from datagems.job.state import JobView, coverage
from datagems.models import JobDetails, PeerState
from datagems.web import api_quality
from datagems.web.auth import caller
from datagems.web.cache import CachedView
from datagems.web.keys import READ_CACHE, SERVICES


async def owned_job(request: web.Request, job_id: str) -> JobView:
    """The job read from the store now, when the caller may see it; 404 otherwise (never
    403: no enumeration). For the writes, which must act on the latest state."""
    who = caller(request)
    view = await asyncio.to_thread(lifecycle.load_job, request.app[SERVICES], job_id)
    if view is None or (view.job.owner != who.username and not who.is_admin):
        raise NotFound("job not found")
    return view


async def owned_view(request: web.Request, job_id: str) -> CachedView:
    """As ``owned_job``, from the read cache (at most ``READ_TTL_SECONDS`` behind others'
    writes, never behind this replica's): for the reads."""
    who = caller(request)
    cached = await request.app[READ_CACHE].job_view(job_id)
    if cached is None or (cached.view.job.owner != who.username and not who.is_admin):
        raise NotFound("job not found")
    return cached


async def view_body(request: web.Request, cached: CachedView) -> bytes:
    """The JSON of ``GET /api/tasks/{id}`` for a cached view, built once per view."""
    if cached.body is not None:
        return cached.body
    details = cached.details
    if details is None and cached.view.job.job_details_cid:  # not readable then: try again
        details = await job_details(request, cached.view)
    beats = await request.app[READ_CACHE].replicas()
    # a peer never seen beating is the original app's (none when no replica has ever beaten)
    originals = [p for p in cached.view.job.peers if p not in beats] if beats else []
    payload = view_payload(cached.view, details, originals)
    others = (
        await request.app[READ_CACHE].open_views() if cached.view.job.status == "queued" else []
    )
    settings = request.app[SERVICES].settings
    payload["state"] = honest.state_of(cached.view, originals, beats, others, settings)
    body = orjson.dumps(payload)
    # a queued job's reason follows other jobs and beats; a cancel's end, time (leases)
    status = cached.view.job.status
    volatile = status == "queued" or (status == "cancelled" and not payload["state"]["settled"])
    if (details is not None or not cached.view.job.job_details_cid) and not volatile:
        cached.body = body  # not when the details could not be read: try again next time
    return body


async def job_details(request: web.Request, view: JobView) -> JobDetails | None:
    """The job's details (R1FS), kept by CID; ``None`` (logged) when unreadable."""
    return await asyncio.to_thread(request.app[READ_CACHE].details.of, view.job, None)


def peer_usage(state: PeerState) -> dict[str, Any]:
    """What one peer spent: gateway tokens, latency per finished record, retries (extra
    attempts), identical records, failure reasons. Records it finished for a dead peer
    (takeovers) count here, with the peer that did the work."""
    records = state.done + sum(t.done for t in state.takeovers.values())
    return {
        "records": records,
        "tokensIn": state.tokens_in,
        "tokensOut": state.tokens_out,
        "avgLatencyMs": round(state.latency_ms_total / records, 1) if records else None,
        "retries": state.retries,
        "duplicates": state.duplicates,
        "abandonedCalls": state.abandoned_calls,
        "failureReasons": dict(state.failure_reasons),
    }


def job_usage(peers: dict[str, PeerState]) -> dict[str, Any]:
    """The job's usage: every peer's, summed (average latency weighted by records)."""
    records = latency = 0.0
    usage: dict[str, Any] = {
        "records": 0,
        "tokensIn": 0,
        "tokensOut": 0,
        "avgLatencyMs": None,
        "retries": 0,
        "duplicates": 0,
        "abandonedCalls": 0,
        "failureReasons": {},
    }
    for state in peers.values():
        mine = peer_usage(state)
        for name in ("records", "tokensIn", "tokensOut", "retries", "duplicates", "abandonedCalls"):
            usage[name] += mine[name]
        for reason, count in mine["failureReasons"].items():
            usage["failureReasons"][reason] = usage["failureReasons"].get(reason, 0) + count
        records += mine["records"]
        latency += state.latency_ms_total
    if records:
        usage["avgLatencyMs"] = round(latency / records, 1)
    return usage


def coverage_payload(view: JobView) -> list[dict[str, Any]]:
    """Who covers each peer's ranges: itself, or the live peer that took them over."""
    covered = coverage(view.job, view.peers, view.commands)
    return [
        {
            "peer": c.peer,
            "by": c.by,
            "takenOver": c.by != c.peer,
            "assigned": c.assigned,
            "ok": c.ok,
            "failed": c.failed,
            "complete": c.complete,
            "finishedAt": c.finished_at,
        }
        for c in covered.values()
    ]


def control_payload(view: JobView) -> dict[str, Any]:
    """What the owner asked since confirming: the retry round and the extensions."""
    commands = view.commands
    extensions = [r.wire() for r in commands.extensions] if commands else []
    return {
        "retryRound": commands.retry_round if commands else 0,
        "retryRequestedAt": commands.retry_requested_at if commands else None,
        "extensions": extensions,
        "extendedBy": sum(r["end"] - r["start"] for r in extensions),
    }


def mixed_fleet_notes(view: JobView, originals: list[str]) -> list[str]:
    """What the job's peers of the original app will not do, said on the job page."""
    if not originals:
        return []
    names = ", ".join(originals)
    them = "it" if len(originals) == 1 else "they"
    notes = [
        f"{names} {'runs' if len(originals) == 1 else 'run'} the original DataGems app: "
        f"{them} keep generating after a cancel, take no share of added records and retry "
        "no failed record; the DataGems replicas of the job do those for "
        f"{'it' if len(originals) == 1 else 'them'}."
    ]
    if view.job.status == "cancelled" or view.cancel is not None:
        working = [p for p in originals if p in view.peers and not view.peers[p].result_cid]
        if working:
            notes.append(
                f"Cancelled: the DataGems replicas stopped; {', '.join(working)} (the original "
                "app) does not know of cancels and keeps generating its share."
            )
    return notes


def view_payload(
    view: JobView, details: JobDetails | None, originals: list[str] | None = None
) -> dict[str, Any]:
    originals = originals or []
    order = list(view.job.peers) + [p for p in view.peers if p not in view.job.peers]
    peers = []
    for name in order:
        if name in view.peers:
            state = view.peers[name]
            kind = "original" if name in originals else "datagems"
            peers.append({**state.wire(), "usage": peer_usage(state), "kind": kind})
    return {
        "originalPeers": originals,
        "notes": mixed_fleet_notes(view, originals)
        + api_quality.conditioning_notes(details, originals),
        "job": view.job.wire(),
        "peers": peers,
        "details": details.wire() if details else None,
        "cancel": view.cancel.wire() if view.cancel else None,
        "usage": job_usage(view.peers),
        "coverage": coverage_payload(view),
        "control": control_payload(view),
    }
