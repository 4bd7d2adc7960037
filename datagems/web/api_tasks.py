"""``/api/tasks*``: draft a schema, preview, confirm, list, view, cancel, records, export,
and the live event stream of one job.

Everything is read from CStore / R1FS through ``datagems.jobs`` and ``datagems.export``;
store calls are sync and run in a worker thread so the event loop never blocks. The read
routes (list, view, records, export, events) read jobs through the app's read cache
(``datagems.web.cache``); the writes (confirm, cancel, retry, extend) read the store
directly and invalidate the cache, so the caller sees the change at once.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import time
from typing import Any

import orjson
from aiohttp import web

from datagems import caps, commands, export, jobs, listing
from datagems.accounts.tokens import (
    INVALID_DRAFT,
    DraftLedger,
    issue_draft,
    job_id_for_draft,
    read_draft,
)
from datagems.errors import (
    BadRequest,
    Conflict,
    DatagemsError,
    InferenceError,
    NotFound,
    SchemaInvalid,
    StoreUnavailable,
    UpstreamError,
)
from datagems.inference import prompts
from datagems.inference.extract import extract_json
from datagems.models import (
    TERMINAL_STATUSES,
    CommandDecision,
    InferenceSpec,
    JobBase,
    JobCommand,
    JobDetails,
    PeerState,
    dataset_mode_flag,
    now_iso,
)
from datagems.quality.variables import proposed_variables
from datagems.schema_tools import (
    check_schema,
    compile_validator,
    draft_problem,
    sanitize_schema,
)
from datagems.ssrf import check_public_url
from datagems.web import api_quality, limits
from datagems.web.auth import Caller, caller, session_secret
from datagems.web.bodies import (
    ConfirmBody,
    ExtendBody,
    InferenceOverrides,
    PreviewBody,
    SchemaBody,
    read_body,
)
from datagems.web.cache import CachedView
from datagems.web.keys import LIMITERS, READ_CACHE, SERVICES, STATE

logger = logging.getLogger(__name__)
DRAFT_ATTEMPTS = 3
PREVIEW_RECORDS = 3
EVENT_INTERVAL_SECONDS = 0.75
HEARTBEAT_SECONDS = 15.0
DRAFT_TEMPERATURE = 0.2
DRAFT_MAX_TOKENS = 2048
RECORD_MAX_TOKENS = 1024
CONTENDED_ATTEMPTS = 8  # a confirm counting against others' confirms backs off this often


# --------------------------------------------------------------------------- helpers


async def _inference_spec(
    request: web.Request, body: InferenceOverrides, base: dict[str, Any] | None = None
) -> InferenceSpec:
    """The inference choice of the form (over a draft's), user URLs SSRF-checked."""
    spec = InferenceSpec.model_validate(base or {})
    if body.use_external_api is not None:
        spec.use_external_api = body.use_external_api
    if body.profile_id is not None:
        spec.profile_id = body.profile_id or None
    if body.inference_base_url:
        settings = request.app[SERVICES].settings
        spec.base_url = await asyncio.to_thread(
            check_public_url, body.inference_base_url, allow_private=settings.allow_private_urls
        )
    if body.inference_path is not None:
        spec.path = body.inference_path or None
    if body.inference_model is not None:
        spec.model = body.inference_model or None
    if body.inference_params is not None:
        spec.parameters = body.inference_params
    if spec.use_external_api and not spec.profile_id:
        raise BadRequest("choose an inference profile to use an external API")
    if not spec.use_external_api:
        spec.profile_id = None
    return spec


def _provider(request: web.Request, spec: InferenceSpec, owner: str) -> Any:
    return jobs.provider_for(request.app[SERVICES], spec, owner)


def _read_draft(request: web.Request, token: str, who: Caller) -> dict[str, Any]:
    return read_draft(session_secret(request), token, who.username)


def _checked(schema: dict[str, Any]) -> dict[str, Any]:
    """A user-edited schema: cleaned of the harmless mistakes, then checked field by field."""
    check_schema(schema)
    return schema


def _temperature(spec: InferenceSpec, default: float) -> float:
    value = (spec.parameters or {}).get("temperature")
    return float(value) if isinstance(value, int | float) else default


class DraftRefused(SchemaInvalid):
    """The model answered something that is not the JSON Schema of a record."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"the draft was refused: {problem}")
        self.problem = problem


def _draft_once(
    provider: Any,
    messages: list[dict[str, str]],
    spec: InferenceSpec,
    warnings: list[str],
    proposed: list[dict[str, Any]] | None = None,
) -> dict:
    """One draft call; ``DraftRefused`` when the answer is not a schema (an example record,
    a bare map, a fragment): it is never turned into one. The variables it proposes go to
    ``proposed`` (each invalid one dropped with a warning)."""
    completion = provider.complete(
        messages,
        schema=None,
        temperature=_temperature(spec, DRAFT_TEMPERATURE),
        max_tokens=DRAFT_MAX_TOKENS,
    )
    raw = extract_json(completion.text)
    proposals = api_quality.take_proposals(raw)
    problem = draft_problem(raw)
    if problem is not None:
        raise DraftRefused(problem)
    schema = sanitize_schema(raw, warnings)
    check_schema(schema)
    if proposed is not None:
        proposed[:] = proposed_variables(proposals, warnings)
    return schema


def _redraft_messages(messages: list[dict[str, str]], problem: str) -> list[dict[str, str]]:
    """The draft question again, with why the last answer was refused (not the answer)."""
    *head, last = messages
    return [
        *head,
        {
            **last,
            "content": (
                f"{last['content']}\nA previous answer was refused: {problem}. Answer with "
                'a JSON Schema whose "properties" give each field a "type", not example values.'
            ),
        },
    ]


def _json(body: bytes, status: int = 200) -> web.Response:
    """A response of JSON already serialized (orjson)."""
    return web.Response(body=body, status=status, content_type="application/json")


async def owned_job(request: web.Request, job_id: str) -> jobs.JobView:
    """The job read from the store now, when the caller may see it; 404 otherwise (never
    403: no enumeration). For the writes, which must act on the latest state."""
    who = caller(request)
    view = await asyncio.to_thread(jobs.load_job, request.app[SERVICES], job_id)
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
    body = orjson.dumps(view_payload(cached.view, details, originals))
    if details is not None or not cached.view.job.job_details_cid:
        cached.body = body  # not when the details could not be read: try again next time
    return body


async def job_details(request: web.Request, view: jobs.JobView) -> JobDetails | None:
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
        "failureReasons": {},
    }
    for state in peers.values():
        mine = peer_usage(state)
        for name in ("records", "tokensIn", "tokensOut", "retries", "duplicates"):
            usage[name] += mine[name]
        for reason, count in mine["failureReasons"].items():
            usage["failureReasons"][reason] = usage["failureReasons"].get(reason, 0) + count
        records += mine["records"]
        latency += state.latency_ms_total
    if records:
        usage["avgLatencyMs"] = round(latency / records, 1)
    return usage


def coverage_payload(view: jobs.JobView) -> list[dict[str, Any]]:
    """Who covers each peer's ranges: itself, or the live peer that took them over."""
    covered = jobs.coverage(view.job, view.peers, view.commands)
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


def control_payload(view: jobs.JobView) -> dict[str, Any]:
    """What the owner asked since confirming: the retry round and the extensions."""
    commands = view.commands
    extensions = [r.wire() for r in commands.extensions] if commands else []
    return {
        "retryRound": commands.retry_round if commands else 0,
        "retryRequestedAt": commands.retry_requested_at if commands else None,
        "extensions": extensions,
        "extendedBy": sum(r["end"] - r["start"] for r in extensions),
    }


def mixed_fleet_notes(view: jobs.JobView, originals: list[str]) -> list[str]:
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
    view: jobs.JobView, details: JobDetails | None, originals: list[str] | None = None
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


# --------------------------------------------------------------------------- drafting


async def draft_schema(request: web.Request) -> web.Response:
    who = caller(request)
    services = request.app[SERVICES]
    body = await read_body(
        request, SchemaBody, context={"max_records": services.settings.max_records_per_job}
    )
    refreshes = 0
    if body.previous_draft_token:
        try:
            previous = _read_draft(request, body.previous_draft_token, who)
            refreshes = int(previous.get("schemaRefreshes") or 0) + 1
        except BadRequest:
            refreshes = 0
    spec = await _inference_spec(request, body)
    provider = await asyncio.to_thread(_provider, request, spec, who.username)
    dataset_mode = dataset_mode_flag(body.dataset_mode)  # a boolean, as the original's
    messages = prompts.schema_draft_messages(
        title=body.title,
        description=body.description,
        instructions=body.instructions,
        total_records=body.total_records,
        dataset_mode=dataset_mode,
    )
    started = time.perf_counter()
    failed = 0
    schema: dict[str, Any] | None = None
    last_error: DatagemsError | None = None
    refused: list[str] = []
    warnings: list[str] = []
    proposed: list[dict[str, Any]] = []
    question = messages
    try:
        for _attempt in range(DRAFT_ATTEMPTS):
            try:
                warnings.clear()
                schema = await asyncio.to_thread(
                    _draft_once, provider, messages, spec, warnings, proposed
                )
                break
            except (InferenceError, SchemaInvalid) as exc:
                failed += 1
                last_error = exc
                logger.warning("schema draft attempt %d failed: %s", failed, exc)
                if isinstance(exc, DraftRefused):
                    refused.append(exc.message)
                    messages = _redraft_messages(question, exc.problem)
                if isinstance(exc, InferenceError) and not exc.retryable:
                    break
    finally:
        await asyncio.to_thread(provider.close)
    state = request.app[STATE]
    state.drafts += 1
    state.drafts_failed_attempts += failed
    if schema is None:
        detail = last_error.message if last_error else "no answer"
        raise UpstreamError(f"the model did not draft a valid schema ({detail})")
    duration_ms = round((time.perf_counter() - started) * 1000)  # whole ms, as the original
    generated_at = now_iso()
    draft = {
        "title": body.title,
        "totalRecords": body.total_records,
        "description": body.description,
        "instructions": body.instructions,
        "schema": schema,
        "schemaGeneratedAt": generated_at,
        "schemaDurationMs": duration_ms,
        "schemaRefreshes": refreshes,
        "datasetMode": dataset_mode,
        "inference": spec.wire(),
    }
    token = issue_draft(session_secret(request), who.username, draft)
    answer: dict[str, Any] = {
        "schema": schema,
        "schemaGeneratedAt": generated_at,
        "schemaDurationMs": duration_ms,
        "schemaRefreshes": refreshes,
        "draftToken": token,
        "failedAttempts": failed,
    }
    if refused:  # ours, only when there is something to say
        answer["refusedDrafts"] = refused
    if proposed:  # ours: per-record variables the user may keep at confirm
        answer["variables"] = proposed
    if warnings:
        answer["warnings"] = list(warnings)
    return web.json_response(answer)


def _preview_one(
    provider: Any,
    details: JobDetails,
    validator: Any,
    index: int,
    total: int,
    conditioning: Any = None,
) -> dict[str, Any]:
    from datagems.inference.constrain import constrained_schema
    from datagems.inference.generation import sampling_for

    messages = prompts.record_messages(
        details=details, index=index, total=total, conditioning=conditioning
    )
    sampling = sampling_for(details.json_schema, details.inference.parameters, RECORD_MAX_TOKENS)
    started = time.perf_counter()
    try:
        completion = provider.complete(
            messages,
            schema=constrained_schema(details.json_schema),
            temperature=sampling.temperature,
            max_tokens=sampling.max_tokens,
            params=sampling.params,
            seed=prompts.record_seed(details.id, index),
        )
        data = extract_json(completion.text)
    except InferenceError as exc:
        return {"i": index, "ok": False, "reason": exc.reason, "error": exc.message}

    latency = round((time.perf_counter() - started) * 1000, 1)
    errors = validator.errors(data)
    if errors:
        return {
            "i": index,
            "ok": False,
            "reason": "schema_violation",
            "error": "; ".join(errors[:3]),
            "data": data,
            "latencyMs": latency,
        }
    return {"i": index, "ok": True, "data": data, "latencyMs": latency}


async def preview(request: web.Request) -> web.Response:
    """Three sample records with the drafted (or edited) schema; not part of any job."""
    who = caller(request)
    body = await read_body(request, PreviewBody)
    draft = _read_draft(request, body.draft_token, who)
    schema = _checked(body.json_schema) if body.json_schema is not None else draft["schema"]
    await asyncio.to_thread(request.app[LIMITERS].preview_user.hit, who.username)
    spec = InferenceSpec.model_validate(draft.get("inference") or {})
    details = JobDetails(
        id="preview",
        owner=who.username,
        title=draft.get("title", ""),
        description=draft.get("description", ""),
        instructions=draft.get("instructions", ""),
        json_schema=schema,
        inference=spec,
        dataset_mode=draft.get("datasetMode"),
        total_records=int(draft.get("totalRecords") or PREVIEW_RECORDS),
    )
    validator = compile_validator(schema)
    conditioning = await asyncio.to_thread(  # the variables' values of the job's first records
        api_quality.preview_conditioning,
        request.app[SERVICES],
        body,
        details,
        job_id_for_draft(str(draft.get("jti", ""))),
        secret=session_secret(request),
    )
    provider = await asyncio.to_thread(_provider, request, spec, who.username)
    started = time.perf_counter()
    total = max(PREVIEW_RECORDS, details.total_records or 0)
    try:
        records = await asyncio.gather(
            *(
                asyncio.to_thread(
                    _preview_one, provider, details, validator, i, total, conditioning
                )
                for i in range(PREVIEW_RECORDS)
            )
        )
    finally:
        await asyncio.to_thread(provider.close)
    for record in records if conditioning is not None else ():
        record.update(conditioning.entry(record["i"]))
    state = request.app[STATE]
    state.preview_calls += 1
    state.preview_records_ok += sum(1 for r in records if r["ok"])
    state.preview_records_failed += sum(1 for r in records if not r["ok"])
    return web.json_response(
        {
            "records": records,
            "schema": schema,
            "durationMs": round((time.perf_counter() - started) * 1000, 1),
        }
    )


def _job_started(services: Any, job_id: str) -> bool:
    """Is the job of this id written whole (its base and every peer state)?"""
    job = services.jobs.get(job_id)
    if job is None:
        return False
    states = services.peers.all(job_id)
    return all(peer in states for peer in job.peers)


async def confirm(request: web.Request) -> web.Response:
    """Start the job of a draft, once.

    The job id comes from the draft (``job_id_for_draft``). A draft whose job is written
    whole was used: 400 as for any replay. One request at a time holds the draft
    (``DraftLedger.claim``): a second confirm of it while the first runs gets 409. A claim
    left by a confirm that died half-way is taken over once it is stale, and the job is
    finished (``create_job`` is idempotent for one job id). The caps are checked before
    anything is written, and counted again once the job's base is written
    (``limits.admit``): of concurrent confirms on any replicas, those one too many are
    refused (429), their base removed and their draft released.
    """
    who = caller(request)
    services = request.app[SERVICES]
    body = await read_body(request, ConfirmBody)
    draft = _read_draft(request, body.draft_token, who)
    if body.json_schema is not None:
        draft["schema"] = _checked(body.json_schema)
    draft["inference"] = (await _inference_spec(request, body, draft.get("inference"))).wire()
    draft.update(
        await asyncio.to_thread(
            functools.partial(
                api_quality.confirmed_fields,
                services,
                body,
                username=who.username,
                secret=session_secret(request),
            )
        )
    )
    jti = draft.get("jti")
    if not jti:
        raise BadRequest(INVALID_DRAFT)
    job_id = job_id_for_draft(jti)
    ledger = DraftLedger(services.cstore)
    if await asyncio.to_thread(_job_started, services, job_id):
        raise BadRequest(INVALID_DRAFT)  # a replayed draft
    claimed = await asyncio.to_thread(ledger.claimed, jti)
    if claimed is not None and claimed.get("jobId") not in (None, job_id):
        raise BadRequest(INVALID_DRAFT)
    if claimed is None:  # not resuming: refuse early what the count after would refuse
        total = int(draft.get("totalRecords") or 0)
        await asyncio.to_thread(limits.check_creation, services, who)
        await asyncio.to_thread(limits.check_capacity, services, who, new_records=total)
    else:
        logger.warning("draft of job %s is claimed: confirming it if its claim is stale", job_id)
    await asyncio.to_thread(ledger.claim, jti, job_id)
    job_fields = {k: v for k, v in draft.items() if k not in ("jti", "sub", "exp", "iat", "typ")}
    create = functools.partial(
        jobs.create_job,
        services,
        owner=who.username,
        draft=job_fields,
        job_id=job_id,
        admit=functools.partial(limits.admit, services, who),
    )
    try:
        for attempt in range(1, CONTENDED_ATTEMPTS + 1):
            try:
                job = await asyncio.to_thread(create)
                break
            except caps.Contended:  # other confirms of this user are counting: back off
                if attempt == CONTENDED_ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0.05, 0.25) * 2 ** min(attempt, 3))
    except DatagemsError:
        await asyncio.to_thread(ledger.release, jti)  # nothing was started: the draft may retry
        raise
    finally:
        request.app[READ_CACHE].jobs_changed(job_id)
    logger.info("%s confirmed job %s (%d records)", who.username, job.id, job.total_records)
    return web.json_response({"jobId": job.id})


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
    command owner decides (``datagems.commands``); the usual refusals come first."""
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
    job's command owner decides (``datagems.commands``); the usual refusals come first."""
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
    live, finished ones from the user's own job hash (``datagems.listing``)."""
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
            jobs.request_cancel, request.app[SERVICES], view.job.id, who.username
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
        export.records_page, request.app[SERVICES], view.job.id, offset=offset, limit=limit
    )
    return web.json_response(page)


CONTENT_TYPES = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}


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
    fmt = request.query.get("format", "json").lower()
    if fmt not in export.FORMATS:
        raise BadRequest(f"format must be one of {', '.join(export.FORMATS)}")
    partial = request.query.get("partial", "").lower() in ("1", "true", "yes")
    with_vars = request.query.get("vars", "").lower() in ("1", "true", "yes")
    chunks = await _within(
        request,
        stall,
        functools.partial(
            export.export_chunks, services, view.job.id, fmt, partial=partial, with_vars=with_vars
        ),
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
                "Content-Type": CONTENT_TYPES[fmt],
                "Content-Disposition": f'attachment; filename="{view.job.id}.{fmt}"',
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
            if status in TERMINAL_STATUSES:
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
