"""Job commands (retry failed records, add records): each applied once, in one order, by
one writer — or refused.

CStore has no transactions: two replicas that read a job's command log, change it and
write it back lose one change, or append the same range twice (issue 13). So:

- **A request writes its command to the inbox** (``datagen:job-inbox``) under a fresh
  unique id: a field nobody else writes, so no request overwrites another.
- **The job's command owner is the only writer of its command log**
  (``datagen:job-commands``): the first peer in the job's peer list whose replica is
  alive (its heartbeat, ``datagen:replicas``, within the lease). Every replica computes
  the same owner from the same store. The owner decides the job's waiting
  commands in ``(requestedAt, id)`` order, each against the job as the earlier ones left
  it: a retry round needs a finished job with failed records, added records start at the
  job's current total, a cancelled job takes neither, and both count against the caps
  (``datagems.job.caps``). It writes the log with its decision on every command (under the
  command's id) and only then removes them from the inbox: a command seen again is never
  applied again.
- **The request waits for its decision** (and takes it itself when its replica is the
  owner) and answers with it: 202 with what was applied, or the refusal (409, 429, 400).
- **A command is decided within** ``DATAGEN_COMMAND_WAIT_SECONDS`` **or never**: the owner
  refuses an older one unseen, and a request that has no decision by then (plus a grace
  for the owner's write) answers 503, nothing changed.

If the owner dies, the next live peer becomes the owner once the lease has passed and
continues from the log. Two replicas that both think they own a job for a moment (a lease
boundary) read the same log and inbox and decide the same way.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from datagems.errors import (
    BadRequest,
    Conflict,
    DatagemsError,
    NotFound,
    RateLimited,
    ServiceUnavailable,
)
from datagems.job import caps, index, lifecycle, removal
from datagems.job.state import JobView
from datagems.models import (
    CommandDecision,
    JobBase,
    JobCommand,
    JobCommands,
    Range,
    ReplicaBeat,
    now_iso,
    parse_iso,
)
from datagems.quality import resample
from datagems.services import Services

logger = logging.getLogger(__name__)
KINDS = ("retry", "extend", "delete", "resample")
DECIDED_GRACE_SECONDS = 2.0  # after the wait (at most half of it): a late decision lands
DECISIONS_KEPT_SECONDS = 3600.0  # decisions older than this leave the log
WAIT_POLL_SECONDS = 0.1


def new_command(
    kind: str,
    job_id: str,
    username: str,
    *,
    via: str,
    additional: int = 0,
    exempt: bool = False,
    indices: list[int] | None = None,
    max_records: int = 0,
) -> JobCommand:
    if kind not in KINDS:
        raise ValueError(f"unknown command {kind!r}")
    return JobCommand(
        id=uuid.uuid4().hex,
        job_id=job_id,
        kind=kind,
        additional=additional,
        indices=list(indices or []),
        max_records=max_records,
        requested_by=username,
        exempt=exempt,
        requested_at=now_iso(),
        via=via,
    )


def _alive(beat: ReplicaBeat | None, now: datetime, lease: timedelta) -> bool:
    seen = parse_iso(beat.last_seen_at) if beat else None
    return seen is not None and now - seen <= lease


def owner_of(
    job: JobBase, beats: dict[str, ReplicaBeat], me: str, now: datetime, lease: timedelta
) -> str | None:
    """The job's command owner: its first peer whose replica heartbeat is within the lease
    (as every replica reads it: a replica back from a stop owns again once it has beaten);
    when none is, ``me`` if it is a peer of the job (a replica without an engine)."""
    for peer in job.peers:
        if _alive(beats.get(peer), now, lease):
            return peer
    return me if me in job.peers else None


def _lease(services: Services) -> timedelta:
    return timedelta(seconds=services.settings.peer_lease_seconds)


def _deadline(command: JobCommand, services: Services) -> datetime | None:
    requested = parse_iso(command.requested_at)
    if requested is None:
        return None
    return requested + timedelta(seconds=services.settings.command_wait_seconds)


# --------------------------------------------------------------------------- the owner


def _decision(command: JobCommand, me: str, status: int, **fields: object) -> CommandDecision:
    return CommandDecision(
        kind=command.kind,
        applied=status == 202,
        status=status,
        decided_at=now_iso(),
        decided_by=me,
        **fields,  # type: ignore[arg-type]
    )


def _refusal(command: JobCommand, me: str, error: DatagemsError) -> CommandDecision:
    retry_after = error.retry_after if isinstance(error, RateLimited) else None
    return _decision(command, me, error.status, error=error.message, retry_after=retry_after)


def _decide(
    services: Services, view: JobView, log: JobCommands, command: JobCommand, me: str
) -> CommandDecision | None:
    """Decide one command against the job as the earlier ones left it; apply it to
    ``log`` and ``view.job`` when it is accepted. None: not yet (only admissions still
    being decided stand in the way of a cap: the next turn decides)."""
    job = view.job
    deadline = _deadline(command, services)
    if deadline is None or datetime.now(UTC) > deadline:
        return _refusal(
            command,
            me,
            ServiceUnavailable("the job's replicas did not answer in time; nothing was changed"),
        )
    if command.kind == "delete":  # carried out by ``apply_pending`` (``datagems.job.removal``)
        refused = removal.refusal(services, view)
        return _refusal(command, me, refused) if refused else _decision(command, me, 202)
    if command.kind == "retry":
        if job.status not in ("succeeded", "failed"):
            return _refusal(
                command,
                me,
                Conflict(f"the job is {job.status}: retry failed records once it has finished"),
            )
        if job.total_failed == 0:
            return _refusal(command, me, Conflict("the job has no failed records to retry"))
        records = job.total_failed
        try:
            if not command.exempt:
                caps.check_running(services, job.owner, new_records=records, job_id=job.id)
        except caps.Contended:
            return None
        except RateLimited as exc:
            return _refusal(command, me, exc)
        log.retry_round += 1
        log.retry_requested_at = command.requested_at
        job.status = "running"
        return _decision(command, me, 202, retry_round=log.retry_round, records=records)
    if command.kind == "resample":
        return _decide_resample(services, job, log, command, me)
    # extend
    if view.cancel is not None or job.status == "cancelled":
        return _refusal(command, me, Conflict("a cancelled job cannot be extended"))
    maximum = services.settings.max_records_per_job
    additional = command.additional
    if additional < 1 or job.total_records + additional > maximum:
        return _refusal(
            command,
            me,
            BadRequest(
                f"additionalRecords must be between 1 and {maximum - job.total_records} "
                f"(at most {maximum} records per job)"
            ),
        )
    outstanding = 0
    if job.status in caps.ACTIVE:
        outstanding = max(0, job.total_records - job.total_generated)
    try:
        if not command.exempt:
            caps.check_running(
                services, job.owner, new_records=outstanding + additional, job_id=job.id
            )
    except caps.Contended:
        return None
    except RateLimited as exc:
        return _refusal(command, me, exc)
    # split over the replicas of ours only (those seen in datagen:replicas), when the job
    # has any: a peer of the original app never learns of an extension
    beats = services.replicas.all()
    ours = [p for p in job.peers if p in beats]
    peers = ours if ours and ours != job.peers else None
    start = job.total_records
    log.extensions.append(Range(start=start, end=start + additional, peers=peers))
    job.total_records += additional
    job.status = "running"
    return _decision(command, me, 202, total_records=job.total_records)


def _decide_resample(
    services: Services, job: JobBase, log: JobCommands, command: JobCommand, me: str
) -> CommandDecision | None:
    """A resample round (``datagems.quality.resample``): the near-duplicates of the
    command never resampled before, within the budget, each once."""
    if job.status not in ("succeeded", "failed"):
        return _refusal(
            command,
            me,
            Conflict(f"the job is {job.status}: resample near-duplicates once it has finished"),
        )
    budget = services.settings.resample_max_records
    if command.max_records > 0:
        budget = min(budget, command.max_records)
    chosen = resample.choose(log, command.indices, job.total_records, budget)
    if not chosen:
        return _refusal(
            command,
            me,
            Conflict("no near-duplicate left to resample (each record is resampled once)"),
        )
    try:
        if not command.exempt:
            caps.check_running(services, job.owner, new_records=len(chosen), job_id=job.id)
    except caps.Contended:
        return None
    except RateLimited as exc:
        return _refusal(command, me, exc)
    round_ = resample.open_round(log, chosen, command.requested_at)
    job.status = "running"
    return _decision(command, me, 202, retry_round=round_, records=len(chosen), indices=chosen)


def _prune(log: JobCommands) -> None:
    now = datetime.now(UTC)
    keep = timedelta(seconds=DECISIONS_KEPT_SECONDS)
    for command_id, decision in list(log.decisions.items()):
        decided = parse_iso(decision.decided_at)
        if decided is None or now - decided > keep:
            del log.decisions[command_id]


def apply_pending(services: Services, job_id: str, pending: list[JobCommand]) -> int:
    """Decide ``pending`` (the job's commands in the inbox) as the job's command owner:
    write the log, reopen the job if a command was applied, then empty the inbox of them.
    Returns how many were decided now. The caller holds ``services.command_lock``."""
    me = services.settings.host_addr
    log = services.commands.get(job_id)
    view = lifecycle.load_job(services, job_id)
    decided = 0
    applied = deleted = False
    done: list[JobCommand] = []
    for command in sorted(pending, key=lambda c: (c.requested_at, c.id)):
        if command.id in log.decisions:
            done.append(command)
            continue
        if view is None and command.kind == "delete":
            done.append(command)  # already gone: its request sees it so; no log for it
            continue
        if view is None:
            decision: CommandDecision | None = _refusal(command, me, NotFound("job not found"))
        else:
            decision = _decide(services, view, log, command, me)
        if decision is None:
            break  # this one and the later ones wait for the next turn, in order
        if decision.applied and command.kind == "delete":
            deleted, view = True, None  # the later commands find no job
        done.append(command)
        log.decisions[command.id] = decision
        decided += 1
        applied = applied or decision.applied
        logger.info(
            "job %s: %s by %s %s (%s)",
            job_id,
            command.kind,
            command.requested_by,
            "applied" if decision.applied else f"refused {decision.status}",
            decision.error or f"round {log.retry_round}, {len(log.extensions)} extensions",
        )
    if deleted:  # its log goes with it: the requests wait for the job to be gone
        removal.remove(services, job_id)
    elif decided:
        if applied and view is not None:  # in the open-jobs index before it opens again
            index.open_job(services, view.job)
        _prune(log)
        log.owner = me
        log.updated_at = now_iso()
        services.commands.put(log)
        if applied and view is not None:
            job = view.job
            job.job_finished_at = None
            lifecycle.write_back(services, job)
    for command in done:
        services.inbox.remove(command.id)
    return decided


def _pending_by_job(services: Services) -> dict[str, list[JobCommand]]:
    by_job: dict[str, list[JobCommand]] = defaultdict(list)
    for command in services.inbox.all().values():
        by_job[command.job_id].append(command)
    return by_job


def apply_owned(services: Services) -> int:
    """The poller's turn: decide the waiting commands of every job this replica owns."""
    by_job = _pending_by_job(services)
    if not by_job:
        return 0
    me = services.settings.host_addr
    now = datetime.now(UTC)
    beats = services.replicas.all()
    decided = 0
    for job_id, pending in by_job.items():
        job = services.jobs.get(job_id)
        if job is None:
            _drop_stale(services, pending, now)
            continue
        if owner_of(job, beats, me, now, _lease(services)) != me:
            continue
        with services.command_lock:
            decided += apply_pending(services, job_id, pending)
    return decided


def _drop_stale(services: Services, pending: list[JobCommand], now: datetime) -> None:
    """Commands of a job that no longer exists: removed once nobody waits for them."""
    grace = timedelta(seconds=_grace(services))
    for command in pending:
        deadline = _deadline(command, services)
        if deadline is None or now > deadline + grace:
            services.inbox.remove(command.id)


def apply_if_owner(services: Services, job: JobBase) -> bool:
    """Decide the job's waiting commands now when this replica owns it (a request taken by
    the owner is answered at once). False when another replica owns it."""
    me = services.settings.host_addr
    owner = owner_of(job, services.replicas.all(), me, datetime.now(UTC), _lease(services))
    if owner != me:
        return False
    with services.command_lock:
        pending = [c for c in services.inbox.all().values() if c.job_id == job.id]
        if pending:
            apply_pending(services, job.id, pending)
    return True


# --------------------------------------------------------------------------- the request


def submit(services: Services, command: JobCommand) -> None:
    services.inbox.put(command)


def decision_of(services: Services, command: JobCommand) -> CommandDecision | None:
    return services.commands.get(command.job_id).decisions.get(command.id)


def give_up_at(services: Services, command: JobCommand) -> float:
    """When (``time.monotonic``) a request stops waiting for its command's decision."""
    deadline = _deadline(command, services)
    left = (deadline - datetime.now(UTC)).total_seconds() if deadline else 0.0
    return time.monotonic() + max(0.0, left) + _grace(services)


def _grace(services: Services) -> float:
    return min(DECIDED_GRACE_SECONDS, services.settings.command_wait_seconds / 2)


def raise_for(decision: CommandDecision | None) -> CommandDecision:
    """The decision when applied; its refusal raised otherwise (None: nobody decided)."""
    if decision is None:
        raise ServiceUnavailable(
            "the job's replicas did not answer in time; nothing was changed: try again"
        )
    if decision.applied:
        return decision
    message = decision.error or "refused"
    errors: dict[int, Callable[[str], DatagemsError]] = {
        400: BadRequest,
        404: NotFound,
        409: Conflict,
        503: ServiceUnavailable,
    }
    if decision.status == 429:
        raise RateLimited(message, retry_after=decision.retry_after or 1)
    raise errors.get(decision.status, Conflict)(message)


def run(services: Services, command: JobCommand) -> CommandDecision:
    """Submit ``command`` and wait for its decision (blocking: tools and tests; the web
    handlers wait without blocking). Raises the refusal."""
    job = services.jobs.get(command.job_id)
    if job is None:
        raise NotFound("job not found")
    submit(services, command)
    apply_if_owner(services, job)
    until = give_up_at(services, command)
    decision = decision_of(services, command)
    while decision is None and time.monotonic() < until:
        time.sleep(WAIT_POLL_SECONDS)
        decision = decision_of(services, command)
    return raise_for(decision)
