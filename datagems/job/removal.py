"""Deleting a job with its results: its CStore keys and its R1FS files.

Who deletes: the job's command owner (``datagems.job.commands``), the one writer of its
command log, so a delete is decided in one order with the retries and extensions asked
of the same job: a retry decided first makes the job run again and the delete is
refused (409); a delete decided first leaves later commands nothing to act on (404).
When no replica can own the job (none of its peers is alive and the replica that took
the request is not one of them), the request's replica deletes it itself: nobody else
writes a finished job's keys then.

What may be deleted: a job that has stopped. A queued or running job is refused with
what to do (cancel it first); so is a cancelled job whose peers are still uploading what
they made (``settled``), until they have or until they have been silent for the peer
lease (a dead peer never uploads).

How: every step is idempotent, so two deletes at once (two replicas, two tabs) both
finish the job's removal and a delete that a store outage cut half-way is finished by
the next one. R1FS files go first (their CIDs are read from the peer states and the
base, which go after them), then the peer states, the job's cancel and command log, its
index entries and its owner's summary, and the base last: until then the job is still
listed, so a half-done delete can always be asked again. A reader that read the job
before the delete may write its finished base back once afterwards; the removal reads
the keys back and deletes again what came back.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from datagems.errors import Conflict, DatagemsError, NotFound, StoreRejected
from datagems.job.state import JobView, settled
from datagems.models import TERMINAL_STATUSES, JobBase, PeerState, parse_iso
from datagems.services import Services
from datagems.store import keys

logger = logging.getLogger(__name__)


def refusal(services: Services, view: JobView | None) -> DatagemsError | None:
    """Why the job cannot be deleted now (``None``: it can)."""
    if view is None:
        return NotFound("job not found")
    job = view.job
    if job.status not in TERMINAL_STATUSES:
        return Conflict(
            f"the job is {job.status}: cancel it first, then delete it once it has stopped"
        )
    if not settled(job, view.peers, view.commands) and not _silent(services, view.peers):
        return Conflict(
            "the job's peers are still stopping and uploading what they made: "
            "delete it in a few seconds"
        )
    return None


def _silent(services: Services, peers: dict[str, PeerState]) -> bool:
    """No peer state of the job has moved within the peer lease (its writers are gone)."""
    lease = timedelta(seconds=services.settings.peer_lease_seconds)
    now = datetime.now(UTC)
    for state in peers.values():
        stamps = [state.last_update_at, state.started_at, state.cancelled_at, state.finished_at]
        seen = [parse_iso(s) for s in stamps if s]
        latest = max((s for s in seen if s is not None), default=None)
        if latest is not None and now - latest <= lease:
            return False
    return True


def file_cids(job: JobBase, peers: dict[str, PeerState]) -> list[str]:
    """Every R1FS file the job references: its details, every slice and error file."""
    cids = [job.job_details_cid]
    for state in peers.values():
        cids += [state.result_cid, state.errors_cid]
        for took in state.takeovers.values():
            cids += [took.result_cid, took.errors_cid, took.seeded_from]
    return [cid for cid in dict.fromkeys(cids) if cid]


def remove(services: Services, job_id: str) -> int:
    """Delete the job's files and keys (idempotent); how many R1FS files were found."""
    job = services.jobs.get(job_id)
    peers = services.peers.all(job_id)
    found = 0
    if job is not None:
        for cid in file_cids(job, peers):
            found += _delete_file(services, cid)
    _remove_keys(services, job_id, job.owner if job is not None else None)
    # a reader that derived the job before the delete writes its base back once at most
    back = services.jobs.get_raw(job_id) is not None or services.peers.all_raw(job_id)
    if back:
        logger.warning("job %s: written again during its delete: deleting again", job_id)
        _remove_keys(services, job_id, job.owner if job is not None else None)
    logger.info("job %s deleted (%d files)", job_id, found)
    return found


def _delete_file(services: Services, cid: str) -> int:
    try:
        return int(bool(services.r1fs.delete_file(cid)))
    except StoreRejected as exc:  # already gone, or a node that keeps it: not ours to retry
        logger.warning("R1FS file %s of a deleted job was not removed: %s", cid, exc)
        return 0


def _remove_keys(services: Services, job_id: str, owner: str | None) -> None:
    services.peers.delete_all(job_id)
    services.cstore.hset(keys.CANCELS, job_id, None)
    services.cstore.hset(keys.JOB_COMMANDS, job_id, None)
    services.index.drop_open(job_id)
    services.index.drop_closed(job_id)
    if owner:
        services.user_jobs.delete(owner, job_id)
    services.jobs.delete(job_id)


def wait_removed(services: Services, job_id: str) -> bool:
    """Is the job gone (its base)? What a delete request waits for."""
    return services.jobs.get_raw(job_id) is None
