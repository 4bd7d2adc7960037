"""Poller: every ``DATAGEN_JOB_POLL_SECONDS``, finds the work this peer should do.

It reads the open-jobs index (``datagems.job.index``), never every job: per poll one
``get`` of the original's mark (``datagen:metrics``: the cheap check that the original
DataGems wrote a job), one ``hgetall`` of the index, and per open job its base; per open
job of this peer also its peer states, cancel request and commands, and the replica
heartbeats. So a poll costs the open jobs, not history. It rebuilds the index from
``datagen:jobs`` (a streamed scan) at start, when the original's mark moves and every
``DATAGEN_INDEX_RECONCILE_SECONDS``; it closes the entries of jobs found final and drops
closes kept too long. It asks the supervisor to start a job actor (the supervisor enforces
the per-replica cap) and forwards cancel requests. It never waits on another actor.

A job of this peer found finished (every range in, or cancelled) but not finalized on two
polls in a row is finalized here (``lifecycle.finalize``): the writer of its last slice
finalizes it at once, so this is for a last range some other app finished (the original)
or a writer that died in between. The web layer never writes it (reads never write).

Every ``DATAGEN_COMMAND_POLL_SECONDS`` it also decides the job commands waiting in the
inbox for the jobs this replica owns (``datagems.job.commands``).

Takeover (``datagems.job.liveness``): a peer of the job whose range has no uploaded slice and
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
import zlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pykka

from datagems.actors.base import Actor, Ticker
from datagems.actors.messages import ApplyCommands, CancelJob, ChildFailed, StartJob, Tick
from datagems.errors import StoreError
from datagems.job import index
from datagems.job.commands import apply_owned
from datagems.job.lifecycle import (
    finalize,
    open_jobs,
    still_open,
    stored_metrics,
    stored_metrics_of,
    sync_metrics,
)
from datagems.job.liveness import Fleet, PeerActivity, needs_taker, taker_for
from datagems.job.state import (
    Coverage,
    add_metrics,
    cancel_applies,
    coverage,
    fleet_metrics,
    needs_finalizing,
    view_of,
)
from datagems.models import FleetMetrics, JobBase, OpenJob, parse_iso
from datagems.services import Services

if TYPE_CHECKING:
    from datagems.actors.supervisor import Supervisor

logger = logging.getLogger(__name__)
METRICS_SYNC_SECONDS = 5.0  # how often the original's datagen:metrics is checked
HISTORY_CLOCK_MARGIN_SECONDS = 10.0  # clocks of replicas differ by less than this
UNREADABLE_REMEMBERED = 1000  # job ids already reported as unreadable (reported once each)


def unfinished(covered: Coverage, cancelled: bool) -> bool:
    """Has a range work left: no upload caught up with the job's commands, or one cut
    short by a cancel that no longer applies (a later retry round reopened the job)?"""
    return not covered.uploaded or (not covered.complete and not cancelled)


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
        self._ticker: Ticker | None = None
        self._commands_ticker: Ticker | None = None
        self._metrics_due = 0.0
        self.mark: str | None = None  # the original's mark when the index was last checked
        self.indexed = False  # the index was brought in line with the jobs since the start
        self.check_at = 0.0  # monotonic: when the index is due for its periodic check
        self.forget_at = 0.0  # monotonic: when to drop old closes next
        self.unreadable: set[str] = set()
        self._closed_seen: dict[str, Any] = {}  # closed job id -> its entry as last seen
        self._history: FleetMetrics | None = None  # the finished jobs' part of the metrics
        self._stored_metrics: Any = None  # datagen:metrics as read this poll
        self._synced: Any = None  # as it was after the last sync
        self.rebuilds = 0  # rebuilds of the index by this poller
        self.finishing: set[str] = set()  # jobs found finished but not finalized, last poll
        self._history_open: set[str] = set()  # jobs left out of the finished part
        self._history_closed: dict[str, Any] = {}  # closes the finished part counts
        self._history_rebuilds = -1
        self._history_at: datetime | None = None  # when the finished part was read
        # this replica's own offset into the periodic check, so a fleet does not scan at once
        self.jitter = (zlib.crc32(self.peer.encode()) % 1000) / 10000

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
        self._stored_metrics = services.metrics.get_raw()
        self.keep_index()
        fleet: Fleet | None = None
        now = datetime.now(UTC)
        index_raw = services.index.open_raw()
        finishing: set[str] = set()
        for job_id, stored in index_raw.items():
            entry = services.index.parse_open(job_id, stored)
            job = self._open_job(job_id, entry, now) if entry is not None else None
            if job is None or self.peer not in job.peers:
                continue
            peers = services.peers.all(job_id)
            self.activity.see(peers)
            commands = services.commands.get(job_id)
            cancel = services.cancels.get(job_id)
            if cancel is not None and not cancel_applies(cancel, commands):
                cancel = None  # a retry round asked since reopened the job
            if cancel is not None:
                self.supervisor.tell(CancelJob(job_id=job_id, retry_round=cancel.retry_round))
            covered = coverage(job, peers, commands)
            mine = covered.get(self.peer)
            if mine is not None and unfinished(mine, cancel is not None):
                self.supervisor.tell(StartJob(job_id=job_id))
            if needs_finalizing(job, view_of(job, peers, cancel, commands)):
                finishing.add(job_id)
                if job_id in self.finishing:  # the writer of its last slice had its turn
                    finalize(services, job_id)
            if cancel is not None:
                continue
            if fleet is None:
                beats = services.replicas.all()
                fleet = Fleet(beats, self.activity, now, self.lease, self.original_lease)
            for owner in needs_taker(job, peers, fleet, commands):
                if taker_for(owner, job, fleet) == self.peer:
                    self.supervisor.tell(StartJob(job_id=job_id, owner=owner))
        self.finishing = finishing
        closed_raw = services.index.closed_raw()
        self._see_closed(closed_raw, now)
        self._sync_metrics(index_raw, closed_raw)

    def _open_job(self, job_id: str, entry: OpenJob, now: datetime) -> JobBase | None:
        """The job of an index entry when it can still need work; the entry is closed (the
        job is final) or dropped (no job came of the confirm) otherwise."""
        services = self.services
        stored = services.jobs.get_raw(job_id)
        if stored is None:
            opened = parse_iso(entry.opened_at)
            if opened is None or (now - opened).total_seconds() >= index.MISSING_GRACE_SECONDS:
                services.index.drop_open(job_id)
                logger.warning("job %s is in the open-jobs index but was never written", job_id)
            return None
        found = index.peek(job_id, stored)
        if found is None:
            self._unreadable(job_id)
            return None
        if found.final and still_open(services, job_id) is None:
            index.close_job(services, found)
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

    def _see_closed(self, closed_raw: dict[str, Any], now: datetime) -> None:
        """The jobs closed lately (``datagen:closed-jobs``, kept 30 minutes: not every
        job): their peers' last writes tell when a peer of the original app went idle."""
        for job_id, stored in closed_raw.items():
            if self._closed_seen.get(job_id) == stored:
                continue
            self._closed_seen[job_id] = stored
            job = self.services.jobs.get(job_id)
            if job is not None and self.peer in job.peers:
                self._see_finished(job, now)
        for job_id in [j for j in self._closed_seen if j not in closed_raw]:
            del self._closed_seen[job_id]
            self._seen_finished.pop(job_id, None)

    def keep_index(self) -> None:
        """Rebuild the open-jobs index at the first poll (whatever a crash left, it is
        repaired at the next start) and when it is stale (``datagems.job.index``): the check reads
        one key per poll, the meta only when the original's mark moved or the periodic
        check is due."""
        services = self.services
        reconcile = services.settings.index_reconcile_seconds
        mark = index.mark_of(self._stored_metrics)
        now = time.monotonic()
        if not self.indexed or mark != self.mark or now >= self.check_at:
            meta = services.index.meta()
            reason = index.stale_because(meta, mark, reconcile)
            if reason or not self.indexed:
                meta = index.rebuild(services, reason or "this replica started")
                self.rebuilds += 1
            self.mark, self.indexed = mark, True
            age = index.age_seconds(meta.built_at if meta else None) or 0.0
            self.check_at = now + max(1.0, reconcile * (1 + self.jitter) - age)
        if now >= self.forget_at:
            index.forget_old_closes(services)
            self.forget_at = now + index.CLOSED_KEPT_SECONDS / 6

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

    def _sync_metrics(self, index_raw: dict[str, Any], closed_raw: dict[str, Any]) -> None:
        """Keep the original's ``datagen:metrics`` equal to the jobs (``jobs.sync_metrics``)
        without reading every job each time: the finished jobs' part is read once (one
        streamed pass) and then kept up to date close by close (a job that closes since
        is added, read by itself); it is read again only after a rebuild of the index or
        when an older job is reopened. The open jobs' part is derived every
        ``METRICS_SYNC_SECONDS`` while there are any. A write of ours moves the original's
        mark: it is claimed in the index meta, so no replica rebuilds the index for it."""
        if time.monotonic() < self._metrics_due:
            return
        self._metrics_due = time.monotonic() + METRICS_SYNC_SECONDS
        services = self.services
        changed = self._keep_history(index_raw, closed_raw)
        if not changed and not index_raw and self._synced == self._stored_metrics:
            return  # nothing open, nothing closed, nothing written since the last sync
        assert self._history is not None
        opened = open_jobs(services)
        truth = add_metrics(self._history, fleet_metrics(opened))
        if any(job.id not in index_raw for job in opened):
            return  # the index moved meanwhile: next time
        before = services.metrics.get_raw()
        if before != self._stored_metrics:
            return  # written during this poll (the original?): the next poll looks first
        written = sync_metrics(services, truth)
        self._synced = services.metrics.get_raw() if written else before
        if written is not None:
            self.mark = index.claim_mark(services, self._synced)

    def _keep_history(self, index_raw: dict[str, Any], closed_raw: dict[str, Any]) -> bool:
        """The finished jobs' part of the metrics, up to date; whether it changed. A job is
        new to it when created after its read (by ``HISTORY_CLOCK_MARGIN_SECONDS``, for
        clocks that differ): such a job is added when it closes; any other change (an
        older job reopened, or closed again) reads it again."""
        services = self.services
        after = (self._history_at or datetime.now(UTC)) + timedelta(
            seconds=HISTORY_CLOCK_MARGIN_SECONDS
        )

        def new(created_at: str | None) -> bool:
            created = parse_iso(created_at)
            return created is not None and created > after

        reread = self._history is None or self._history_rebuilds != self.rebuilds
        for job_id in index_raw.keys() - self._history_open:
            entry = services.index.parse_open(job_id, index_raw[job_id])
            reread = reread or not new(entry.created_at if entry else None)
            self._history_open.add(job_id)
        closes = []
        for job_id, stored in closed_raw.items():
            if self._history_closed.get(job_id) == stored or job_id in index_raw:
                continue
            closed = services.index.parse_closed(job_id, stored)
            if job_id not in self._history_open and not new(closed.created_at if closed else None):
                reread = True  # counted already, and closed again since
            closes.append((job_id, stored))
        if reread:
            self._history_at = datetime.now(UTC)
            self._history = stored_metrics(services, frozenset(index_raw))
            self._history_open = set(index_raw)
            self._history_closed = dict(closed_raw)
            self._history_rebuilds = self.rebuilds
            return True
        for job_id, stored in closes:
            self._history_closed[job_id] = stored
            self._history_open.discard(job_id)
            finished = stored_metrics_of(services, job_id)
            if finished is not None and self._history is not None:
                self._history = add_metrics(self._history, finished)
        for job_id in [j for j in self._history_closed if j not in closed_raw]:
            del self._history_closed[job_id]
        return bool(closes)
