"""A dataset's life after its job: delete it with its results, clone it (run again with
its schema and settings).

- ``DELETE /api/tasks/{id}``: the job's command owner deletes it (``datagems.job.commands``,
  ``datagems.job.removal``); this request waits, without blocking, until the job is gone
  (200) or the delete is refused (409: still running or stopping; 404). A job no replica
  can own is deleted here. Two deletes at once both end with the job gone.
- ``POST /api/tasks/{id}/clone``: a new draft (a draft token, as ``/api/tasks/schema``
  answers) with the job's title, records, description, instructions, schema, dataset
  mode and inference choice; confirming it makes a new job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from datagems.accounts.tokens import issue_draft
from datagems.errors import NotFound, ServiceUnavailable
from datagems.job import commands, removal
from datagems.models import InferenceSpec
from datagems.web.auth import caller, session_secret
from datagems.web.keys import READ_CACHE, SERVICES
from datagems.web.presenters import job_details, owned_job

logger = logging.getLogger(__name__)


async def delete_task(request: web.Request) -> web.Response:
    who = caller(request)
    services = request.app[SERVICES]
    view = await owned_job(request, request.match_info["id"])
    job = view.job
    refused = removal.refusal(services, view)
    if refused is not None:
        raise refused
    me = services.settings.host_addr
    lease = timedelta(seconds=services.settings.peer_lease_seconds)
    beats = await asyncio.to_thread(services.replicas.all)
    owner = commands.owner_of(job, beats, me, datetime.now(UTC), lease)
    try:
        if owner is None:  # no replica can own it: nobody else writes its keys
            await asyncio.to_thread(removal.remove, services, job.id)
        else:
            await _delete_through_owner(request, job.id, who.username)
    finally:
        request.app[READ_CACHE].jobs_changed(job.id)
    logger.info("%s deleted job %s", who.username, job.id)
    return web.json_response({"jobId": job.id, "deleted": True})


async def _delete_through_owner(request: web.Request, job_id: str, username: str) -> None:
    """Submit the delete and wait for the job to be gone, or for the owner's refusal."""
    services = request.app[SERVICES]
    command = commands.new_command("delete", job_id, username, via=services.settings.host_addr)
    job = await asyncio.to_thread(services.jobs.get, job_id)
    if job is None:
        return  # deleted meanwhile
    await asyncio.to_thread(commands.submit, services, command)
    await asyncio.to_thread(commands.apply_if_owner, services, job)
    until = commands.give_up_at(services, command)
    while True:
        if await asyncio.to_thread(removal.wait_removed, services, job_id):
            # the job went by another delete (or this one): a command of ours still in the
            # inbox has no job, so no owner will ever take it out
            await asyncio.to_thread(services.inbox.remove, command.id)
            return
        decision = await asyncio.to_thread(commands.decision_of, services, command)
        if decision is not None:
            commands.raise_for(decision)  # a refusal raises; an accepted delete is not logged
        if time.monotonic() >= until:
            raise ServiceUnavailable(
                "the job's replicas did not delete it in time; it may still go: reload to see"
            )
        await asyncio.sleep(commands.WAIT_POLL_SECONDS)


async def clone_task(request: web.Request) -> web.Response:
    who = caller(request)
    services = request.app[SERVICES]
    view = await owned_job(request, request.match_info["id"])
    details = await job_details(request, view)
    if details is None:
        raise NotFound("the job's details cannot be read: it cannot be cloned")
    spec: dict[str, Any] = {"useExternalApi": False}
    recorded = details.inference
    if recorded.use_external_api and recorded.profile_id and view.job.owner == who.username:
        spec = InferenceSpec(
            use_external_api=True,
            profile_id=recorded.profile_id,
            model=recorded.model,
            parameters=recorded.parameters,
        ).wire()
    draft = {
        "title": details.title,
        # what the dataset grew to (its additions too), within today's bound
        "totalRecords": min(view.job.total_records, services.settings.max_records_per_job),
        "description": details.description,
        "instructions": details.instructions,
        "schema": details.json_schema,
        "schemaGeneratedAt": details.schema_generated_at,
        "schemaDurationMs": 0,
        "schemaRefreshes": 0,
        "datasetMode": details.dataset_mode,
        "inference": spec,
    }
    token = issue_draft(session_secret(request), who.username, draft)
    answer = {
        **{k: v for k, v in draft.items() if k != "inference"},
        "profileId": spec.get("profileId"),
        "clonedFrom": view.job.id,
        "draftToken": token,
        "failedAttempts": 0,
    }
    if details.variables:  # ours (datagems.quality): shown in the editor, sent at confirm
        answer["variables"] = details.variables
    return web.json_response(answer)
