"""A job's life seen from the store: create, read (with derived totals), cancel, finalize.

The stored job base is a cache: every read derives its totals and status from the peer
states (``state.derive``) and writes nothing; the engine writes the derived base back once
the job is finished (``finalize``), idempotently. Used by the web layer and the actors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from datagems.errors import DatagemsError, NotFound
from datagems.job import index
from datagems.job.state import (
    JobView,
    add_metrics,
    derive,
    fleet_metrics,
    needs_finalizing,
    reads_cancel,
    summary_of,
    view_of,
)
from datagems.models import (
    TERMINAL_STATUSES,
    CancelRequest,
    FleetMetrics,
    InferenceSpec,
    JobBase,
    JobDetails,
    PeerState,
    Takeover,
    now_iso,
    split_ranges,
)
from datagems.services import Services
from datagems.store.base import decode_value

if TYPE_CHECKING:
    from datagems.inference import Provider
    from datagems.inference.capabilities import Capability, Negotiation

logger = logging.getLogger(__name__)
GATEWAY_PATH = "/create_chat_completion"


def create_job(
    services: Services,
    *,
    owner: str,
    draft: dict[str, Any],
    job_id: str,
    admit: Callable[[JobBase], None] | None = None,
) -> JobBase:
    """Write a confirmed job: details to R1FS and the base, then, once ``admit`` lets it in,
    one state per peer and the owner's summary.

    The base goes first: it is the record the per-user caps count (``datagems.job.caps``), and
    no replica works on a job before its peer states exist. ``admit`` raising refuses the
    job: its base is removed and the error goes up. Idempotent for one ``job_id``: a second
    confirm of the same draft returns the job; one that died half-way finishes it.
    """
    existing = services.jobs.get(job_id)
    states = services.peers.all(job_id) if existing is not None else {}
    if existing is not None and all(p in states for p in existing.peers):
        return existing
    job = existing or _new_base(services, owner=owner, draft=draft, job_id=job_id)
    index.open_job(services, job)  # first: a crash below leaves an entry, never a lost job
    if existing is None:
        services.jobs.put(job)
    if admit is not None:
        try:
            admit(job)
        except DatagemsError:
            services.jobs.delete(job_id)
            services.index.drop_open(job_id)
            raise
    for peer, assigned in split_ranges(job.total_records, job.peers):
        if peer not in states:  # a resumed confirm never resets a peer's progress
            services.peers.put(
                job_id, PeerState(peer_id=peer, assigned=assigned.size, range=assigned)
            )
    services.user_jobs.put(job.owner, summary_of(job))
    logger.info(
        "job %s created: %d records over %d peers", job_id, job.total_records, len(job.peers)
    )
    return job


def _new_base(services: Services, *, owner: str, draft: dict[str, Any], job_id: str) -> JobBase:
    """The details of a new job, written to R1FS, and its base (not stored yet)."""
    now = now_iso()
    total = int(draft["totalRecords"])
    peers = list(services.settings.chainstore_peers)
    conditioned = bool(draft.get("variables") or draft.get("seedData"))
    peers, left_out = _peers_for_conditioning(services, peers) if conditioned else (peers, [])
    inference = recorded_inference(services, draft.get("inference") or {}, owner)
    mock = services.settings.uses_mock_inference and not inference.use_external_api
    details = JobDetails(
        id=job_id,
        owner=owner,
        title=draft.get("title", ""),
        description=draft.get("description", ""),
        instructions=draft.get("instructions", ""),
        json_schema=draft["schema"],
        inference=inference,
        dataset_mode=draft.get("datasetMode"),
        total_records=total,
        created_at=now,
        meta={"builtinMock": True} if mock else None,  # placeholder records: said on its page
        schema_generated_at=draft.get("schemaGeneratedAt"),
        schema_duration_ms=draft.get("schemaDurationMs") or 0,
        schema_refreshes=draft.get("schemaRefreshes") or 0,
        near_duplicate_threshold=draft.get("nearDuplicateThreshold"),
        seed=draft.get("seed"),
        variables=draft.get("variables") or None,
        seed_data=draft.get("seedData") or None,
        original_peers_left_out=left_out or None,
    )
    cid = services.details.put(details)
    return JobBase(
        id=job_id,
        owner=owner,
        title=details.title,
        status="queued",
        total_records=total,
        dataset_mode=details.dataset_mode,
        peers=peers,
        peer_count=len(peers),
        job_details_cid=cid,
        created_at=now,
        schema_generated_at=details.schema_generated_at,
        schema_duration_ms=details.schema_duration_ms,
        schema_refreshes=details.schema_refreshes,
        updated_at=now,
    )


def _peers_for_conditioning(services: Services, peers: list[str]) -> tuple[list[str], list[str]]:
    """A job with per-record variables or seed data goes to the replicas of ours only (those
    seen in ``datagen:replicas``; the original app would ignore both), when it has any:
    the peers kept, and those of the original left out (the job page names them)."""
    beats = services.replicas.all()
    ours = [p for p in peers if p in beats]
    if not ours or ours == peers:
        return peers, []
    return ours, [p for p in peers if p not in ours]


def recorded_inference(services: Services, given: dict[str, Any], owner: str) -> InferenceSpec:
    """The inference choice as the job details record it, as the original does: where the
    records go (``baseUrl`` and ``path``), the gateway's unless an external profile's."""
    spec = InferenceSpec.model_validate(given)
    if spec.use_external_api and spec.profile_id:
        profiles = services.user_settings.get(owner).profiles
        profile = next((p for p in profiles if p.id == spec.profile_id), None)
        if profile is not None:
            spec.base_url = spec.base_url or profile.base_url
            spec.path = spec.path or profile.path or "/chat/completions"
            spec.model = spec.model or profile.model
            spec.parameters = profile.record_parameters(spec.parameters)
        return spec
    spec.use_external_api = False
    parts = urlsplit(services.gateway_url)  # no credentials, query or fragment
    netloc = parts.hostname or ""
    netloc = f"[{netloc}]" if ":" in netloc else netloc
    netloc += f":{parts.port}" if parts.port else ""
    spec.base_url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    spec.path = GATEWAY_PATH
    return spec


def load_job(services: Services, job_id: str) -> JobView | None:
    """The job as the user sees it, derived from its parts. Reads only: finalizing a
    finished job is the engine's (``finalize``)."""
    job = services.jobs.get(job_id)
    if job is None:
        return None
    peers = services.peers.all(job_id)
    cancel = services.cancels.get(job_id) if reads_cancel(job) else None
    commands = services.commands.get(job_id)
    return view_of(job, peers, cancel, commands)


def finalize(services: Services, job_id: str) -> JobBase | None:
    """Write a finished job's derived base (and its owner's summary) back, closing its
    open-jobs entry, once every range is in or it was cancelled. Idempotent: nothing is
    written while the job still runs or when the stored base already says it. The engine's
    one way to finalize: the writer after a slice upload, the poller for a job whose last
    range some other app finished. Returns the derived job (``None``: absent)."""
    view = load_job(services, job_id)
    if view is None:
        return None
    stored = services.jobs.get(job_id)
    if stored is not None and needs_finalizing(stored, view):
        write_back(services, view.job)
    return view.job


def write_back(services: Services, job: JobBase) -> None:
    """Store a derived base and the owner's summary; any peer may do it. A final base then
    leaves the open-jobs index, an open one is (again) in it (``datagems.job.index``)."""
    job.updated_at = now_iso()
    services.jobs.put(job)
    services.user_jobs.put(job.owner, summary_of(job))
    if job.status in TERMINAL_STATUSES:
        index.close_job(services, job)
    else:
        index.open_job(services, job)
    logger.log(
        logging.INFO if job.status in TERMINAL_STATUSES else logging.DEBUG,
        "job %s is %s (%d ok, %d failed)",
        job.id,
        job.status,
        job.total_ok,
        job.total_failed,
    )


def refresh_totals(services: Services, job_id: str) -> bool:
    """Write a running job's status and totals into its stored base and its owner's
    summary, as the original app does after every K records (its dashboard reads only the
    base). Any peer may: a stale write is harmless, as every reader derives the job again
    and the peer that finishes it writes the final base. Returns whether it wrote."""
    stored = services.jobs.get(job_id)
    if stored is None or stored.status in TERMINAL_STATUSES:
        return False
    peers = services.peers.all(job_id)
    cancel = services.cancels.get(job_id)
    job = derive(stored, peers, cancel, services.commands.get(job_id))
    if job.status in TERMINAL_STATUSES:
        return False  # finalizing is the engine's (``finalize``)
    shown = ("status", "total_ok", "total_failed", "total_records", "job_started_at")
    if all(getattr(job, name) == getattr(stored, name) for name in shown):
        return False
    write_back(services, job)
    return True


def complete_for_owner(
    services: Services, job_id: str, taker: str, took: Takeover, previous: str | None
) -> bool:
    """Write the owner's own peer state as finished by ``taker`` (``completedBy``), so the
    original app, which shows and exports only the owners' states, sees the range done.

    Only while the owner's state holds nothing the taker's slice lacks: no ``resultCid``
    (it died before uploading), the slice the taker started from (``seededFrom``: the
    taker's is that one plus the records it called since, a retry), or the taker's own
    previous one (``previous``). An owner that came back and uploaded its own keeps it:
    no record is ever lost, and every slice stays in the export (``result_cids``)."""
    state = services.peers.get(job_id, took.peer_id)
    if state is None or not took.result_cid or state.result_cid == took.result_cid:
        return False
    if state.result_cid not in (None, took.seeded_from, previous):
        return False
    now = now_iso()
    state.assigned = took.assigned
    state.generated_ok, state.generated_failed = took.generated_ok, took.generated_failed
    state.result_cid, state.errors_cid = took.result_cid, took.errors_cid
    state.finished_at = state.last_update_at = took.finished_at or now
    state.ranges = list(took.ranges) or state.ranges
    state.extensions_done, state.retry_round = took.extensions_done, took.retry_round
    state.completed_by, state.completed_at = taker, now
    services.peers.put(job_id, state)
    logger.info(
        "job %s: the state of %s now shows its range finished by %s", job_id, state.peer_id, taker
    )
    return True


def still_open(services: Services, job_id: str) -> JobBase | None:
    """The job, derived, when it can still need work: its stored status is not final, or
    it is final but a retry or an extension asked since has not been caught up with by
    every peer. ``None`` when it is finished (or absent, or unreadable)."""
    job = services.jobs.get(job_id)
    if job is None:
        return None
    cancel = services.cancels.get(job_id) if reads_cancel(job) else None
    if job.status in TERMINAL_STATUSES:
        commands = services.commands.get(job_id)
        if not commands.extensions and not commands.retry_round:
            return None  # nothing was asked of it since it finished
        derived = derive(job, services.peers.all(job_id), cancel, commands)
        return derived if derived.status not in TERMINAL_STATUSES else None
    return derive(job, services.peers.all(job_id), cancel, services.commands.get(job_id))


def open_jobs(services: Services, owner: str | None = None) -> list[JobBase]:
    """The jobs that can still need work (the open-jobs index, ``still_open``), status
    and totals derived from their peer states, newest first; only ``owner``'s when given.
    Costs the open jobs, not history: what per-user caps and the poller need."""
    listed = []
    for job_id, entry in index.open_entries(services).items():
        if owner is not None and entry.owner != owner:
            continue
        job = still_open(services, job_id)
        if job is not None and (owner is None or job.owner == owner):
            listed.append(job)
    listed.sort(key=lambda j: j.created_at or "", reverse=True)
    return listed


def list_jobs(services: Services, owner: str | None) -> list[JobBase]:
    """The owner's jobs (every job for ``None``), newest first, open ones derived.

    Reads every job (streamed, so memory grows with the answer, not with history): for a
    page use ``GET /api/tasks`` (``datagems.job.listing``); for caps, ``open_jobs``."""
    derived = {job.id: job for job in open_jobs(services, owner)}
    listed = list(derived.values())
    for job_id, stored in services.jobs.scan_raw():
        if job_id in derived:
            continue
        job = services.jobs.parse_raw(job_id, stored)
        if job is not None and (owner is None or job.owner == owner):
            listed.append(job)
    listed.sort(key=lambda j: j.created_at or "", reverse=True)
    return listed


def request_cancel(services: Services, job_id: str, username: str) -> None:
    view = load_job(services, job_id)
    if view is None:
        raise NotFound("job not found")
    if view.job.status in TERMINAL_STATUSES:
        return
    services.cancels.request(
        CancelRequest(
            job_id=job_id,
            requested_by=username,
            requested_at=now_iso(),
            retry_round=view.commands.retry_round if view.commands else 0,
        )
    )
    logger.info("job %s: cancel requested by %s", job_id, username)


def metrics(services: Services) -> dict[str, Any]:
    """The contract's metrics, derived from the jobs and their peer states (so no lost
    update can corrupt them): jobs, records asked for, records generated (ok), jobs queued
    or running, jobs failed, and when a job was last confirmed or started (the original's
    ``lastJobAt``). One streamed pass over every job; the open ones derived."""
    return metrics_of(services).wire()


def stored_metrics(services: Services, leave_out: Collection[str] = ()) -> FleetMetrics:
    """``fleet_metrics`` of every job as stored but those of ``leave_out`` (the open
    ones, counted derived): one streamed pass, each base read without the model."""
    total = requested = generated = active = failed = 0
    last: str | None = None
    for job_id, stored in services.jobs.scan_raw():
        if job_id in leave_out:
            continue
        value = decode_value(stored)
        if not isinstance(value, dict) or not isinstance(value.get("status"), str):
            continue
        status = value["status"]
        total += 1
        requested += _count(value.get("totalRecords"))
        generated += _count(value.get("totalOk"))
        active += status in ("queued", "running")
        failed += status == "failed"
        for name in ("createdAt", "jobStartedAt"):
            stamp = value.get(name)
            if isinstance(stamp, str) and (last is None or stamp > last):
                last = stamp
    return FleetMetrics(
        total_jobs=total,
        total_records_requested=requested,
        total_records_generated=generated,
        active_jobs=active,
        failed_jobs=failed,
        last_job_at=last,
    )


def stored_metrics_of(services: Services, job_id: str) -> FleetMetrics | None:
    """``stored_metrics`` of one job (``None``: absent or unreadable)."""
    stored = services.jobs.get_raw(job_id)
    value = decode_value(stored)
    if not isinstance(value, dict) or not isinstance(value.get("status"), str):
        return None
    stamps = [value.get(name) for name in ("createdAt", "jobStartedAt")]
    return FleetMetrics(
        total_jobs=1,
        total_records_requested=_count(value.get("totalRecords")),
        total_records_generated=_count(value.get("totalOk")),
        active_jobs=int(value["status"] in ("queued", "running")),
        failed_jobs=int(value["status"] == "failed"),
        last_job_at=max((s for s in stamps if isinstance(s, str)), default=None),
    )


def metrics_of(services: Services) -> FleetMetrics:
    opened = open_jobs(services)
    stored = stored_metrics(services, {job.id for job in opened})
    return add_metrics(stored, fleet_metrics(opened))


def sync_metrics(services: Services, truth: FleetMetrics | None = None) -> FleetMetrics | None:
    """Rewrite the original's ``datagen:metrics`` from the derived truth (``truth``, or
    ``metrics_of``) when it differs; returns what it wrote, or ``None``.

    The original updates that key by read-modify-write (per record, per job start and end),
    which loses updates when peers write at once and counts a record made twice twice; any
    replica may set it to what the jobs say, idempotently."""
    truth = truth or metrics_of(services)
    if services.metrics.get() == truth:
        return None
    services.metrics.put(truth)
    logger.debug("datagen:metrics rewritten from the jobs: %s", truth.wire())
    return truth


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def provider_for(
    services: Services, spec: InferenceSpec, owner: str, *, max_connections: int = 16
) -> Provider:
    """The provider a job's records go to: the owner's OpenAI profile, or the gateway.

    ``max_connections`` bounds its async connection pool (the job's records in flight)."""
    from datagems.inference import GatewayProvider, OpenAIProvider

    settings = services.settings
    if spec.use_external_api and spec.profile_id:
        from datagems.ssrf import check_public_url

        user_settings = services.user_settings.get(owner)
        profile = next((p for p in user_settings.profiles if p.id == spec.profile_id), None)
        if profile is None:
            raise NotFound("inference profile not found")
        base_url = check_public_url(profile.base_url, allow_private=settings.allow_private_urls)
        model = spec.model or profile.model
        path = spec.path or profile.path or "/chat/completions"
        return OpenAIProvider(
            base_url,
            api_key=profile.api_key,
            model=model,
            path=path,
            timeout=settings.inference_timeout_seconds,
            log_requests=settings.log_inference_requests,
            max_connections=max_connections,
            max_answer_bytes=settings.max_answer_bytes,
            negotiation=negotiation_for(
                services, OpenAIProvider.forms, profile.base_url, path, model
            ),
        )
    token = settings.inference_token.get_secret_value() if settings.inference_token else None
    return GatewayProvider(
        services.gateway_url,
        token=token,
        timeout=settings.inference_timeout_seconds,
        log_requests=settings.log_inference_requests,
        max_connections=max_connections,
        max_answer_bytes=settings.max_answer_bytes,
        negotiation=negotiation_for(
            services, GatewayProvider.forms, services.gateway_url, "/create_chat_completion", None
        ),
    )


def negotiation_for(
    services: Services, forms: tuple[str, ...], base_url: str, path: str, model: str | None
) -> Negotiation:
    """The structured-output form of an endpoint: as remembered in the store, else to be
    learned by the first call (and then remembered, from a worker thread)."""
    import threading

    from datagems.inference.capabilities import (
        CapabilitiesRepo,
        Negotiation,
        endpoint_key,
        endpoint_of,
    )

    endpoint = endpoint_of(base_url, path)
    key = endpoint_key(endpoint, model)
    repo = CapabilitiesRepo(services.cstore)

    def remember(capability: Capability) -> None:
        threading.Thread(
            target=repo.put, args=(key, capability), daemon=True, name="remember-caps"
        ).start()

    return Negotiation(
        forms, endpoint=endpoint, model=model, known=repo.get(key), on_learned=remember
    )
