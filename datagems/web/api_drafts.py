"""``/api/tasks/draft-schema``, ``/preview`` and ``/confirm``: draft a record schema with
the model, preview a few records against it, and confirm the draft into a job.

Store calls are sync and run in a worker thread so the event loop never blocks; a confirm
reads the store directly and invalidates the read cache, so the caller sees the job at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from typing import Any

from aiohttp import web

from datagems.accounts.tokens import (
    INVALID_DRAFT,
    DraftLedger,
    issue_draft,
    job_id_for_draft,
    read_draft,
)
from datagems.errors import BadRequest, DatagemsError, InferenceError, SchemaInvalid, UpstreamError
from datagems.inference import prompts
from datagems.inference.extract import extract_json
from datagems.inference.pipeline import RecordCalls, RecordOutcome, generate, record_calls
from datagems.job import caps, lifecycle
from datagems.models import InferenceSpec, JobDetails, dataset_mode_flag, now_iso
from datagems.quality.variables import proposed_variables
from datagems.schema.check import check_schema
from datagems.schema.sanitize import draft_problem, sanitize_schema
from datagems.ssrf import check_public_url
from datagems.web import api_quality, draft_edits, limits
from datagems.web.auth import Caller, caller, session_secret
from datagems.web.bodies import ConfirmBody, InferenceOverrides, PreviewBody, SchemaBody, read_body
from datagems.web.keys import LIMITERS, READ_CACHE, SERVICES, STATE

logger = logging.getLogger(__name__)

DRAFT_ATTEMPTS = 3

PREVIEW_RECORDS = 3

DRAFT_TEMPERATURE = 0.2

DRAFT_MAX_TOKENS = 2048

PREVIEW_ATTEMPTS = 1  # a failing sample is shown as it failed (a job would try it again)

CONTENDED_ATTEMPTS = 8  # a confirm counting against others' confirms backs off this often


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
    return lifecycle.provider_for(request.app[SERVICES], spec, owner)


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


async def draft_schema(request: web.Request) -> web.Response:
    who = caller(request)
    services = request.app[SERVICES]
    body = await read_body(
        request, SchemaBody, context={"max_records": services.settings.max_records_per_job}
    )
    refreshes = 0
    previous_schema = None
    if body.previous_draft_token:
        try:
            previous = _read_draft(request, body.previous_draft_token, who)
            refreshes = int(previous.get("schemaRefreshes") or 0) + 1
            previous_schema = previous.get("schema")
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
    messages = draft_edits.with_feedback(messages, body.feedback, previous_schema)
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


async def _previews(calls: RecordCalls) -> list[RecordOutcome]:
    try:
        return list(await asyncio.gather(*(generate(calls, i) for i in range(PREVIEW_RECORDS))))
    finally:
        await calls.provider.aclose()


def _preview_records(calls: RecordCalls) -> list[RecordOutcome]:
    """The preview's records through the record pipeline, on a loop of this worker thread
    (their validation never holds the web's loop)."""
    return asyncio.run(_previews(calls))


def _preview_payload(outcome: RecordOutcome) -> dict[str, Any]:
    shown: dict[str, Any] = {"i": outcome.i, "ok": outcome.ok}
    if outcome.ok:
        shown["data"] = outcome.data
    else:
        shown.update(reason=outcome.reason, error=outcome.error)
    if outcome.latency_ms:
        shown["latencyMs"] = round(outcome.latency_ms, 1)
    return shown


async def preview(request: web.Request) -> web.Response:
    """Three sample records with the drafted (or edited) schema; not part of any job."""
    who = caller(request)
    body = await read_body(request, PreviewBody)
    draft = _read_draft(request, body.draft_token, who)
    max_records = request.app[SERVICES].settings.max_records_per_job
    draft = draft_edits.apply_changes(draft, body, max_records)
    schema = _checked(body.json_schema) if body.json_schema is not None else draft["schema"]
    await asyncio.to_thread(request.app[LIMITERS].preview_user.hit, who.username)
    # as the job would record it: a profile's temperature and max tokens under the job's own
    spec = await asyncio.to_thread(
        lifecycle.recorded_inference,
        request.app[SERVICES],
        draft.get("inference") or {},
        who.username,
    )
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
        calls = record_calls(
            details,
            provider,
            job_id=details.id,
            total=total,
            attempts=PREVIEW_ATTEMPTS,
            max_tokens=request.app[SERVICES].settings.record_max_tokens,
            conditioning=conditioning,
        )
    except BaseException:
        await asyncio.to_thread(provider.close)
        raise
    outcomes = await asyncio.to_thread(_preview_records, calls)
    records = [_preview_payload(outcome) for outcome in outcomes]
    for record in records if conditioning is not None else ():  # the values each was given
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
    draft = draft_edits.apply_changes(draft, body, services.settings.max_records_per_job)
    if body.json_schema is not None:
        draft["schema"] = _checked(body.json_schema)
    if body.near_duplicate_threshold is not None:
        draft["nearDuplicateThreshold"] = body.near_duplicate_threshold
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
    if claimed is not None and claimed.get("done"):
        raise BadRequest(INVALID_DRAFT)  # its job was made (and maybe deleted since)
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
        lifecycle.create_job,
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
    await asyncio.to_thread(ledger.finish, jti, job_id)
    logger.info("%s confirmed job %s (%d records)", who.username, job.id, job.total_records)
    return web.json_response({"jobId": job.id})
