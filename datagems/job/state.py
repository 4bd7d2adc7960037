"""A job's state derived from what its peers wrote: pure functions of the stored parts.

The stored job base is a cache: its totals and status are derived from the peer states
(``derive``), each peer's ranges and who covers them (``coverage``) from the base, the peer
states and the job's commands. Nothing here reads or writes the store; ``lifecycle`` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from datagems.models import (
    TERMINAL_STATUSES,
    CancelRequest,
    FleetMetrics,
    JobBase,
    JobCommands,
    JobSummary,
    PeerState,
    Range,
    now_iso,
    parse_iso,
    split_ranges,
)

CONFIRM_GRACE_SECONDS = 300.0  # a base still without peer states after this never started


@dataclass(frozen=True)
class JobView:
    job: JobBase  # status and totals derived from the peer states
    peers: dict[str, PeerState]
    cancel: CancelRequest | None
    commands: JobCommands | None = None


def summary_of(job: JobBase) -> JobSummary:
    """The owner's summary of the job, with the job's ``updatedAt`` (as the original)."""
    return JobSummary(
        id=job.id,
        title=job.title,
        status=job.status,
        total_records=job.total_records,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


def peer_ranges(job: JobBase, peer: str, first: Range, commands: JobCommands | None) -> list[Range]:
    """Every range ``peer`` owns: its first (from the confirm), then its share of each
    extension, split over the job's peers like a new job."""
    ranges = [first]
    for extension in commands.extensions if commands else []:
        for owner, share in split_ranges(extension.size, extension.peers or job.peers or [peer]):
            if owner == peer and share.size:
                ranges.append(
                    Range(start=extension.start + share.start, end=extension.start + share.end)
                )
    return ranges


def caught_up(extensions_done: int, retry_round: int, commands: JobCommands | None) -> bool:
    """Has an account (a peer state or a takeover) caught up with the job's commands?"""
    if commands is None:
        return True
    return extensions_done >= len(commands.extensions) and retry_round >= commands.retry_round


@dataclass(frozen=True)
class Coverage:
    """Who works (or worked) one peer's ranges: the peer itself, or a taker after it died."""

    peer: str
    by: str
    assigned: int
    ok: int
    failed: int
    result_cid: str | None
    finished_at: str | None
    current: bool = True  # caught up with the job's commands (retry, extend)

    @property
    def uploaded(self) -> bool:
        return bool(self.result_cid) and self.current

    @property
    def complete(self) -> bool:
        return self.uploaded and self.ok + self.failed >= self.assigned


def coverage(
    job: JobBase, peers: dict[str, PeerState], commands: JobCommands | None = None
) -> dict[str, Coverage]:
    """For each peer of the job, the best account of its ranges: a complete one first
    (its own before a takeover's), else the one furthest along."""
    covered: dict[str, Coverage] = {}
    for peer in job.peers or list(peers):
        candidates = []
        own = peers.get(peer)
        if own is None:
            continue
        assigned = sum(r.size for r in peer_ranges(job, peer, own.range, commands))
        candidates.append(
            Coverage(
                peer,
                own.completed_by or peer,
                assigned,
                own.generated_ok,
                own.generated_failed,
                own.result_cid,
                own.finished_at or own.cancelled_at,
                caught_up(own.extensions_done, own.retry_round, commands),
            )
        )
        for taker, state in peers.items():
            took = state.takeovers.get(peer)
            if took is not None and taker != peer:
                candidates.append(
                    Coverage(
                        peer,
                        taker,
                        assigned,
                        took.generated_ok,
                        took.generated_failed,
                        took.result_cid,
                        took.finished_at or took.cancelled_at,
                        caught_up(took.extensions_done, took.retry_round, commands),
                    )
                )
        covered[peer] = max(
            candidates,
            key=lambda c: (c.complete, c.uploaded, c.current, c.ok + c.failed, c.by == peer),
        )
    return covered


def unfinished_confirm(job: JobBase) -> bool:
    """A base without peer states past ``CONFIRM_GRACE_SECONDS``: its confirm died before
    admitting it (a confirm retried with the same draft finishes it)."""
    created = parse_iso(job.created_at)
    if created is None:
        return False
    return (datetime.now(UTC) - created).total_seconds() > CONFIRM_GRACE_SECONDS


def result_cids(peers: dict[str, PeerState]) -> list[str]:
    """Every uploaded slice of the job: takeovers first, then the peers' own slices (the
    ones the original app exports), so an index in both reads as in the own slice when the
    export merges them (``datagems.job.export``: the last ok line wins)."""
    cids = [t.result_cid for s in peers.values() for t in s.takeovers.values() if t.result_cid]
    cids += [s.result_cid for s in peers.values() if s.result_cid]
    return list(dict.fromkeys(reversed(cids)))[::-1]


def derive(
    job: JobBase,
    peers: dict[str, PeerState],
    cancel: CancelRequest | None,
    commands: JobCommands | None = None,
) -> JobBase:
    """The job base with totals and status computed from the peer states.

    A stored final status stands while every peer is caught up with it; a retry or an
    extension asked since makes the job run again until they have."""
    derived = job.model_copy(deep=True)
    if not cancel_applies(cancel, commands):
        cancel = None
    if not peers:
        if job.status not in TERMINAL_STATUSES and unfinished_confirm(job):
            derived.status = "failed"
            derived.error = "its confirm did not finish"
        return derived
    covered = coverage(job, peers, commands)
    if job.peers and all(p in covered for p in job.peers):
        # the first ranges plus every extension, whatever a stale base says
        derived.total_records = sum(covered[p].assigned for p in job.peers)
    start_errors = [s.start_error for s in peers.values() if s.start_error]
    start_errors += [t.start_error for s in peers.values() for t in s.takeovers.values()]
    derived.error = next((e for e in start_errors if e), None)
    derived.total_ok = sum(c.ok for c in covered.values())
    derived.total_failed = sum(c.failed for c in covered.values())
    derived.total_generated = derived.total_ok + derived.total_failed
    started = [s.started_at for s in peers.values() if s.started_at]
    derived.job_started_at = min(started) if started else job.job_started_at
    complete = bool(job.peers) and all(p in covered and covered[p].complete for p in job.peers)
    caught = all(c.current for c in covered.values())
    if job.status in TERMINAL_STATUSES and caught:
        pass
    elif cancel is not None or job.status == "cancelled":
        derived.status = "cancelled"
    elif complete:
        derived.status = "succeeded" if derived.total_ok > 0 else "failed"
    elif derived.total_generated > 0 or started:
        derived.status = "running"
    else:
        derived.status = "queued"
    if derived.status not in TERMINAL_STATUSES:
        derived.job_finished_at = None
    elif not derived.job_finished_at:
        finished = [c.finished_at for c in covered.values()]
        derived.job_finished_at = max((f for f in finished if f), default=None) or now_iso()
    derived.records_duration_ms = job.records_duration_ms
    if derived.job_started_at and derived.job_finished_at:
        begin, end = parse_iso(derived.job_started_at), parse_iso(derived.job_finished_at)
        if begin and end:
            derived.records_duration_ms = max(0, round((end - begin).total_seconds() * 1000))
    return derived


def reads_cancel(job: JobBase) -> bool:
    """Does a cancel request count for this stored base? (Not once it succeeded or failed.)"""
    return job.status in ("queued", "running", "cancelled")


def settled(job: JobBase, peers: dict[str, PeerState], commands: JobCommands | None) -> bool:
    """Every range has an uploaded slice (complete, or what was done before a cancel)."""
    covered = coverage(job, peers, commands)
    return all(p in covered and covered[p].uploaded for p in job.peers)


def cancel_applies(cancel: CancelRequest | None, commands: JobCommands | None) -> bool:
    """Does a cancel request stop the job's current work? Not once a later retry round
    was asked (the job had finished before the cancel reached its peers)."""
    if cancel is None:
        return False
    return commands is None or cancel.retry_round >= commands.retry_round


def fleet_metrics(jobs: Iterable[JobBase]) -> FleetMetrics:
    listed = list(jobs)
    stamps = [j.created_at for j in listed if j.created_at]
    stamps += [j.job_started_at for j in listed if j.job_started_at]
    return FleetMetrics(
        total_jobs=len(listed),
        total_records_requested=sum(j.total_records for j in listed),
        total_records_generated=sum(j.total_ok for j in listed),
        active_jobs=sum(1 for j in listed if j.status in ("queued", "running")),
        failed_jobs=sum(1 for j in listed if j.status == "failed"),
        last_job_at=max(stamps, default=None),
    )


def add_metrics(one: FleetMetrics, other: FleetMetrics) -> FleetMetrics:
    stamps = [s for s in (one.last_job_at, other.last_job_at) if s]
    return FleetMetrics(
        total_jobs=one.total_jobs + other.total_jobs,
        total_records_requested=one.total_records_requested + other.total_records_requested,
        total_records_generated=one.total_records_generated + other.total_records_generated,
        active_jobs=one.active_jobs + other.active_jobs,
        failed_jobs=one.failed_jobs + other.failed_jobs,
        last_job_at=max(stamps, default=None),
    )


def view_of(
    job: JobBase,
    peers: dict[str, PeerState],
    cancel: CancelRequest | None,
    commands: JobCommands | None,
) -> JobView:
    """The job as the user sees it over its stored parts: status and totals derived."""
    if not cancel_applies(cancel, commands):
        cancel = None
    return JobView(derive(job, peers, cancel, commands), peers, cancel, commands)


def needs_finalizing(stored: JobBase, view: JobView) -> bool:
    """Is ``view`` finished (every range in, or cancelled) while its stored base does not
    say so yet (not final, or other totals)?"""
    derived = view.job
    return (
        derived.status in TERMINAL_STATUSES
        and settled(derived, view.peers, view.commands)
        and (
            stored.status not in TERMINAL_STATUSES
            or stored.total_generated != derived.total_generated
        )
    )
