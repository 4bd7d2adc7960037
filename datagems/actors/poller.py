"""Poller: every ``DATAGEN_JOB_POLL_SECONDS``, finds the work this peer should do.

It reads the open-jobs index (``datagems.job_index``), never every job: per poll one
``get`` of the original's mark (``datagen:metrics``: the cheap check that the original
DataGems wrote a job), one ``hgetall`` of the index, and per open job its base; per open
job of this peer also its peer states, cancel request and commands, and the replica
heartbeats when a peer may be dead. So a poll costs the open jobs, not history. It
rebuilds the index from ``datagen:jobs`` (a streamed scan) at start when it is missing
or stale, when the original's mark moves and every ``DATAGEN_INDEX_RECONCILE_SECONDS``;
it closes the entries of jobs found final and drops closes kept too long.
It asks the supervisor to start a job actor (the supervisor enforces the per-replica cap)
and forwards cancel requests. It never waits on another actor.

Takeover: a peer of the job whose range has no uploaded slice, whose state has not been
updated for ``DATAGEN_PEER_LEASE_SECONDS`` and whose replica heartbeat is as old, is dead.
Its range goes to the first live peer after it in the job's peer order: every replica
computes the same taker from the same store, without talking to the others. If two
disagree for a moment, both work the range; export keeps one result per index.
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pykka

from datagems import job_index
from datagems.actors.base import Actor, Ticker
from datagems.actors.messages import CancelJob, ChildFailed, StartJob, Tick
from datagems.errors import StoreError
from datagems.jobs import coverage, still_open
from datagems.models import (
    JobBase,
    JobCommands,
    OpenJob,
    PeerState,
    ReplicaBeat,
    parse_iso,
)
from datagems.services import Services

if TYPE_CHECKING:
    from datagems.actors.supervisor import Supervisor

logger = logging.getLogger(__name__)
UNREADABLE_REMEMBERED = 1000  # job ids already reported as unreadable (reported once each)


def fresh(stamp: str | None, now: datetime, lease: timedelta) -> bool:
    moment = parse_iso(stamp)
    return moment is not None and now - moment <= lease


def taker_for(
    dead: str,
    job: JobBase,
    peers: dict[str, PeerState],
    beats: dict[str, ReplicaBeat],
    now: datetime,
    lease: timedelta,
) -> str | None:
    """The first live peer after ``dead`` in the job's peer order (ring), or None."""
    order = job.peers
    start = order.index(dead)
    for step in range(1, len(order)):
        peer = order[(start + step) % len(order)]
        beat = beats.get(peer)
        state = peers.get(peer)
        if (beat and fresh(beat.last_seen_at, now, lease)) or (
            state and fresh(state.last_update_at, now, lease)
        ):
            return peer
    return None


def dead_peers(
    job: JobBase,
    peers: dict[str, PeerState],
    beats: dict[str, ReplicaBeat],
    now: datetime,
    lease: timedelta,
    commands: JobCommands | None = None,
) -> list[str]:
    """Peers with a range nobody has uploaded, silent (state and replica) past the lease."""
    covered = coverage(job, peers, commands)
    dead = []
    for peer in job.peers:
        if peer in covered and covered[peer].uploaded:
            continue
        state, beat = peers.get(peer), beats.get(peer)
        last = (state.last_update_at if state else None) or job.created_at
        if fresh(last, now, lease) or (beat and fresh(beat.last_seen_at, now, lease)):
            continue
        dead.append(peer)
    return dead


class Poller(Actor):
    def __init__(self, services: Services, supervisor: pykka.ActorRef[Supervisor]) -> None:
        super().__init__()
        self.services = services
        self.peer = services.settings.host_addr
        self.lease = timedelta(seconds=services.settings.peer_lease_seconds)
        self.supervisor = supervisor
        self._ticker: Ticker | None = None
        self.mark: str | None = None  # the original's mark when the index was last checked
        self.checked = False  # the index was brought in line with the jobs since the start
        self.check_at = 0.0  # monotonic: when the index is due for its periodic check
        self.forget_at = 0.0  # monotonic: when to drop old closes next
        self.unreadable: set[str] = set()
        # this replica's own offset into the periodic check, so a fleet does not scan at once
        self.jitter = (zlib.crc32(self.peer.encode()) % 1000) / 10000

    def start_up(self) -> None:
        self._ticker = Ticker(self.actor_ref, Tick(), self.services.settings.job_poll_seconds)
        self._ticker.start()
        self.actor_ref.tell(Tick())

    def cleanup(self) -> None:
        if self._ticker:
            self._ticker.stop()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        super().on_failure(exception_type, exception_value, traceback)
        with contextlib.suppress(pykka.ActorDeadError):
            self.supervisor.tell(ChildFailed(kind="poller", error=str(exception_value)[:200]))

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Tick):
            try:
                self.poll()
            except StoreError as exc:
                logger.warning("poll skipped: %s", exc)

    def poll(self) -> None:
        self.keep_index()
        services = self.services
        beats: dict[str, ReplicaBeat] | None = None
        now = datetime.now(UTC)
        for job_id, entry in job_index.open_entries(services).items():
            job = self._open_job(job_id, entry, now)
            if job is None or self.peer not in job.peers:
                continue
            peers = services.peers.all(job_id)
            cancel = services.cancels.get(job_id)
            if cancel is not None:
                self.supervisor.tell(CancelJob(job_id=job_id))
            commands = services.commands.get(job_id)
            mine = coverage(job, peers, commands).get(self.peer)
            if mine is not None and not mine.uploaded:
                self.supervisor.tell(StartJob(job_id=job_id))
            if cancel is not None:
                continue
            if beats is None:
                beats = services.replicas.all()
            for dead in dead_peers(job, peers, beats, now, self.lease, commands):
                if taker_for(dead, job, peers, beats, now, self.lease) == self.peer:
                    self.supervisor.tell(StartJob(job_id=job_id, owner=dead))

    def _open_job(self, job_id: str, entry: OpenJob, now: datetime) -> JobBase | None:
        """The job of an index entry when it can still need work; the entry is closed (the
        job is final) or dropped (no job came of the confirm) otherwise."""
        services = self.services
        stored = services.jobs.get_raw(job_id)
        if stored is None:
            opened = parse_iso(entry.opened_at)
            if opened is None or (now - opened).total_seconds() >= job_index.MISSING_GRACE_SECONDS:
                services.index.drop_open(job_id)
                logger.warning("job %s is in the open-jobs index but was never written", job_id)
            return None
        found = job_index.peek(job_id, stored)
        if found is None:
            self._unreadable(job_id)
            return None
        if found.final and still_open(services, job_id) is None:
            job_index.close_job(services, found)
            return None
        if self.peer not in found.peers:
            return None  # the job's own peers work it (and close it)
        job = services.jobs.parse_raw(job_id, stored)
        if job is None:
            self._unreadable(job_id)
        return job

    def _unreadable(self, job_id: str) -> None:
        if job_id in self.unreadable:
            return
        if len(self.unreadable) >= UNREADABLE_REMEMBERED:
            self.unreadable.clear()
        self.unreadable.add(job_id)
        logger.warning("job %s cannot be read: left alone, the other jobs go on", job_id)

    def keep_index(self) -> None:
        """Rebuild the open-jobs index at the first poll (whatever a crash left, it is
        repaired at the next start) and when it is stale (``job_index``): the check reads
        one key per poll, the meta only when the original's mark moved or the periodic
        check is due."""
        services = self.services
        reconcile = services.settings.index_reconcile_seconds
        mark = job_index.original_mark(services)
        now = time.monotonic()
        if not self.checked or mark != self.mark or now >= self.check_at:
            meta = services.index.meta()
            reason = job_index.stale_because(meta, mark, reconcile)
            if reason or not self.checked:
                meta = job_index.rebuild(services, reason or "this replica started")
            self.mark, self.checked = mark, True
            age = job_index.age_seconds(meta.built_at if meta else None) or 0.0
            self.check_at = now + max(1.0, reconcile * (1 + self.jitter) - age)
        if now >= self.forget_at:
            job_index.forget_old_closes(services)
            self.forget_at = now + job_index.CLOSED_KEPT_SECONDS / 6
