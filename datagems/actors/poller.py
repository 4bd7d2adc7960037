"""Poller: every ``DATAGEN_JOB_POLL_SECONDS``, finds the work this peer should do.

Per poll: one ``hgetall`` of the jobs hash, of the cancel requests and of the replica
heartbeats, plus one ``hgetall`` of the peer states of each unfinished job of this peer
(and of a finished one once per command asked of it: a stale write of its base may say
finished while its peers have a retry round or added records to catch up with).
It asks the supervisor to start a job actor (the supervisor enforces the per-replica cap)
and forwards cancel requests. It never waits on another actor.

Every ``DATAGEN_COMMAND_POLL_SECONDS`` it also decides the job commands waiting in the
inbox for the jobs this replica owns (``datagems.commands``).

Takeover (``datagems.liveness``): a peer of the job whose range has no uploaded slice and
that is dead — a replica of ours silent (state and heartbeat) for
``DATAGEN_PEER_LEASE_SECONDS``, a peer of the original app silent in every job for its own,
longer lease — or a peer of the original app whose range is behind the job's commands, has
its range worked by the first live replica of ours after it in the job's peer order: every
replica computes the same taker from the same store, without talking to the others. If two
disagree for a moment, both work the range; export keeps one result per index.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pykka

from datagems.actors.base import Actor, Ticker
from datagems.actors.messages import ApplyCommands, CancelJob, ChildFailed, StartJob, Tick
from datagems.commands import apply_owned
from datagems.errors import StoreError
from datagems.jobs import Coverage, cancel_applies, coverage, sync_metrics
from datagems.liveness import Fleet, PeerActivity, needs_taker, taker_for
from datagems.models import TERMINAL_STATUSES, JobBase, JobCommands, parse_iso
from datagems.services import Services

if TYPE_CHECKING:
    from datagems.actors.supervisor import Supervisor

logger = logging.getLogger(__name__)
METRICS_SYNC_SECONDS = 5.0  # how often the original's datagen:metrics is checked


def unfinished(covered: Coverage, cancelled: bool) -> bool:
    """Has a range work left: no upload caught up with the job's commands, or one cut
    short by a cancel that no longer applies (a later retry round reopened the job)?"""
    return not covered.uploaded or (not covered.complete and not cancelled)


def version(commands: JobCommands | None) -> tuple[int, int]:
    """How far a job's commands go: (extensions, retry round)."""
    return (len(commands.extensions), commands.retry_round) if commands else (0, 0)


class Poller(Actor):
    def __init__(self, services: Services, supervisor: pykka.ActorRef[Supervisor]) -> None:
        super().__init__()
        self.services = services
        self.peer = services.settings.host_addr
        self.lease = timedelta(seconds=services.settings.peer_lease_seconds)
        self.original_lease = timedelta(seconds=services.settings.original_peer_lease_seconds)
        self.activity = PeerActivity(k=services.settings.update_every_k)
        self._seen_finished: dict[str, str | None] = {}  # job id -> its base's updatedAt
        self.supervisor = supervisor
        self.checked: dict[str, tuple[int, int]] = {}  # finished jobs seen caught up
        self._ticker: Ticker | None = None
        self._commands_ticker: Ticker | None = None
        self._metrics_due = 0.0

    def start_up(self) -> None:
        settings = self.services.settings
        self._ticker = Ticker(self.actor_ref, Tick(), settings.job_poll_seconds)
        self._ticker.start()
        self._commands_ticker = Ticker(
            self.actor_ref, ApplyCommands(), settings.command_poll_seconds
        ).start()
        self.actor_ref.tell(Tick())

    def cleanup(self) -> None:
        if self._ticker:
            self._ticker.stop()
        if self._commands_ticker:
            self._commands_ticker.stop()

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
        elif isinstance(message, ApplyCommands):
            try:
                apply_owned(self.services)
            except StoreError as exc:
                logger.warning("job commands not decided yet: %s", exc)

    def poll(self) -> None:
        services = self.services
        jobs = services.jobs.all()
        all_commands = services.commands.all()
        cancels = {
            job_id: cancel
            for job_id, cancel in services.cancels.all().items()
            if cancel_applies(cancel, all_commands.get(job_id))
        }
        fleet: Fleet | None = None
        now = datetime.now(UTC)
        for job_id, job in jobs.items():
            if self.peer not in job.peers:
                continue
            commands = all_commands.get(job_id)
            # a cancelled job still needs this peer to stop and upload what it has done,
            # and a finished one may have been asked for more (a retry, records added)
            # after a stale write of its base: its peers are checked once per command
            if (
                job.status in TERMINAL_STATUSES
                and job_id not in cancels
                and (commands is None or self.checked.get(job_id) == version(commands))
            ):
                self._see_finished(job, now)
                continue
            peers = services.peers.all(job_id)
            self.activity.see(peers)
            if job_id in cancels:
                cancel = cancels[job_id]
                self.supervisor.tell(CancelJob(job_id=job_id, retry_round=cancel.retry_round))
            covered = coverage(job, peers, commands)
            mine = covered.get(self.peer)
            if mine is not None and unfinished(mine, job_id in cancels):
                self.supervisor.tell(StartJob(job_id=job_id))
            elif job.status in TERMINAL_STATUSES and all(c.current for c in covered.values()):
                self.checked[job_id] = version(commands)
            if job_id in cancels:
                continue
            if fleet is None:
                beats = services.replicas.all()
                fleet = Fleet(beats, self.activity, now, self.lease, self.original_lease)
            for owner in needs_taker(job, peers, fleet, commands):
                if taker_for(owner, job, fleet) == self.peer:
                    self.supervisor.tell(StartJob(job_id=job_id, owner=owner))
        self._sync_metrics()

    def _see_finished(self, job: JobBase, now: datetime) -> None:
        """A job finished within the original peers' lease: the last writes of its peers
        (once per change of its base) tell when a peer of the original app went idle."""
        updated = parse_iso(job.updated_at)
        if updated is None or now - updated > self.original_lease:
            self._seen_finished.pop(job.id, None)
            return
        if self._seen_finished.get(job.id) != job.updated_at:
            self._seen_finished[job.id] = job.updated_at
            self.activity.see(self.services.peers.all(job.id))

    def _sync_metrics(self) -> None:
        """Keep the original's ``datagen:metrics`` equal to the jobs (``jobs.sync_metrics``)."""
        if time.monotonic() < self._metrics_due:
            return
        self._metrics_due = time.monotonic() + METRICS_SYNC_SECONDS
        sync_metrics(self.services)
