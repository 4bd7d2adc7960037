"""Per-record variables and seed data on the web side (``datagems.quality``): the seed file
upload, what a draft proposes, what a confirm keeps, and what the job page says of them.

``POST /api/seeds`` reads a CSV or JSONL file (raw body, bounded by
``DATAGEN_SEED_MAX_BYTES``; ``?filename=`` tells its kind), checks every line (400 naming
the first bad one), stores its rows in R1FS and answers ``{cid, token, rows, columns}``; a
confirm refers to it as ``seedData: {cid, token, mode}``. The token binds the CID to the
uploader (an HMAC under the session secret): a confirm cannot condition a job on a file
it did not upload (a result slice of another user's job, say, whose CID it learnt).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from typing import Any

from aiohttp import web

from datagems.errors import BadRequest, DatagemsError, PayloadTooLarge
from datagems.models import JobDetails
from datagems.quality import conditioning, seeds
from datagems.quality import variables as vars_
from datagems.quality.conditioning import Conditioning, has_conditioning
from datagems.quality.proposals import PROPOSALS_KEY
from datagems.web.auth import caller, session_secret
from datagems.web.bodies import Conditioned
from datagems.web.keys import SERVICES

logger = logging.getLogger(__name__)


async def _bounded_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the seed file is over {limit} bytes")
    data = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        data.extend(chunk)
        if len(data) > limit:
            raise PayloadTooLarge(f"the seed file is over {limit} bytes")
    return bytes(data)


async def upload_seed(request: web.Request) -> web.Response:
    """Store a seed file's rows in R1FS; ``{cid, rows, columns, filename}``."""
    who = caller(request)
    services = request.app[SERVICES]
    filename = request.query.get("filename", "")[:200]
    data = await _bounded_body(request, services.settings.seed_max_bytes)
    rows = await asyncio.to_thread(seeds.parse_seed_file, data, filename)
    stored = seeds.rows_jsonl(rows)
    cid = await asyncio.to_thread(
        services.r1fs.add_file, stored, "seed.jsonl", secret=services.r1fs_secret
    )
    logger.info("%s uploaded a seed file of %d rows (%s)", who.username, len(rows), cid)
    columns = seeds.columns_of(rows)
    token = seed_token(session_secret(request), who.username, cid)
    return web.json_response(
        {
            "cid": cid,
            "token": token,
            "rows": len(rows),
            "columns": columns,
            "filename": filename or None,
        }
    )


def seed_token(secret: str, username: str, cid: str) -> str:
    """Proof that ``username`` uploaded the seed file ``cid`` (on any replica)."""
    mac = hmac.new(secret.encode(), f"seed-file:{username}:{cid}".encode(), hashlib.sha256)
    return mac.hexdigest()[:40]


def take_proposals(raw: Any) -> Any:
    """The variables a drafted schema proposes, taken out of it (``None`` when none)."""
    if isinstance(raw, dict):
        return raw.pop(PROPOSALS_KEY, None)
    return None


def confirmed_fields(
    services: Any, body: Conditioned, *, username: str, secret: str
) -> dict[str, Any]:
    """What a confirm adds to the job's draft: the variables kept (each checked, 400
    naming the bad one), the seed, and the seed file's reference with its row count (the
    file one ``username`` uploaded: its token checked under ``secret``)."""
    fields: dict[str, Any] = {}
    if body.variables:
        try:
            fields["variables"] = [vars_.wire(v) for v in vars_.parse_variables(body.variables)]
        except vars_.VariableError as exc:
            raise BadRequest(str(exc)) from exc
    if body.seed is not None:
        fields["seed"] = body.seed
    if body.seed_data is not None:
        expected = seed_token(secret, username, body.seed_data.cid)
        given = body.seed_data.token.encode("utf-8", "replace")  # any text, not only ASCII
        if not hmac.compare_digest(expected.encode(), given):
            raise BadRequest("seedData: not a seed file you uploaded (cid and token differ)")
        try:
            rows = seeds.load_rows(services.r1fs, body.seed_data.cid, secret=services.r1fs_secret)
        except (DatagemsError, ValueError) as exc:  # not there, or not a seed file of ours
            raise BadRequest(f"seedData: no seed file {body.seed_data.cid!r}") from exc
        if not rows or not all(isinstance(row, dict) for row in rows):
            raise BadRequest(f"seedData: {body.seed_data.cid!r} is not a seed file")
        fields["seedData"] = seeds.SeedData(
            cid=body.seed_data.cid,
            mode=body.seed_data.mode,
            rows=len(rows),
            columns=seeds.columns_of(rows),
        ).model_dump(exclude_none=True)
    return fields


def preview_conditioning(
    services: Any, body: Conditioned, details: JobDetails, job_id: str, *, secret: str
) -> Conditioning | None:
    """The conditioning of a preview: the body's variables and seed file, drawn as for the
    job the draft would start (its id gives the seed), so the samples show the values
    records 0, 1, 2 of that job get."""
    fields = confirmed_fields(services, body, username=details.owner, secret=secret)
    if not fields:
        return None
    fields.setdefault("seed", vars_.job_seed(job_id))
    shaped = details.model_copy(
        update={
            "variables": fields.get("variables"),
            "seed_data": fields.get("seedData"),
            "seed": fields["seed"],
        }
    )
    return conditioning.load(shaped, services.r1fs, services.r1fs_secret)


def conditioning_notes(details: JobDetails | None, originals: list[str]) -> list[str]:
    """What the job page says when a job with variables or seed data meets the original
    app, which ignores both: whom it was kept from, or who made records without them."""
    if details is None or not has_conditioning(details):
        return []
    notes = []
    left_out = details.original_peers_left_out or []
    if left_out:
        notes.append(
            "This job has per-record variables or seed data, which the original DataGems "
            f"app ignores: it was split over the DataGems replicas only; {', '.join(left_out)} "
            "(the original app) took no share."
        )
    ignoring = [p for p in originals if p not in left_out]
    if ignoring:
        notes.append(
            f"{', '.join(ignoring)} (the original app) ignores this job's per-record variables "
            "and seed data: the records of its share were made without them."
        )
    return notes
