"""Poller: every ``DATAGEN_JOB_POLL_SECONDS``, finds the work this peer should do.

Per poll: one ``hgetall`` of the jobs hash, of the cancel requests and of the replica
heartbeats, plus one ``hgetall`` of the peer states of each unfinished job of this peer
(and of a finished one once per command asked of it: a stale write of its base may say
finished while its peers have a retry round or added records to catch up with).
It asks the supervisor to start a job actor (the supervisor enforces the per-replica cap)
and forwards cancel requests. It never waits on another actor.

Every ``DATAGEN_COMMAND_POLL_SECONDS`` it also decides the job commands waiting in the
inbox for the jobs this replica owns (``datagems.commands``).

Takeover: a peer of the job whose range has no uploaded slice, whose state has not been
updated for ``DATAGEN_PEER_LEASE_SECONDS`` and whose replica heartbeat is as old, is dead.
Its range goes to the first live peer after it in the job's peer order: every replica
computes the same taker from the same store, without talking to the others. If two
disagree for a moment, both work the range; export keeps one result per index.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pykka

from datagems.actors.base import Actor, Ticker
from datagems.actors.messages import ApplyCommands, CancelJob, ChildFailed, StartJob, Tick
from datagems.commands import apply_owned
from datagems.errors import StoreError
from datagems.jobs import Coverage, cancel_applies, coverage
from datagems.models import (
    TERMINAL_STATUSES,
    JobBase,
    JobCommands,
    PeerState,
    ReplicaBeat,
    parse_iso,
)
from datagems.services import Services

logger = logging.getLogger(__name__)


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


def unfinished(covered: Coverage, cancelled: bool) -> bool:
    """Has a range work left: no upload caught up with the job's commands, or one cut
    short by a cancel that no longer applies (a later retry round reopened the job)?"""
    return not covered.uploaded or (not covered.complete and not cancelled)


def version(commands: JobCommands | None) -> tuple[int, int]:
    """How far a job's commands go: (extensions, retry round)."""
    return (len(commands.extensions), commands.retry_round) if commands else (0, 0)


class Poller(Actor):
    def __init__(self, services: Services, supervisor: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.services = services
        self.peer = services.settings.host_addr
        self.lease = timedelta(seconds=services.settings.peer_lease_seconds)
        self.supervisor = supervisor
        self.checked: dict[str, tuple[int, int]] = {}  # finished jobs seen caught up
        self._ticker: Ticker | None = None
        self._commands_ticker: Ticker | None = None

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
        beats: dict[str, ReplicaBeat] | None = None
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
                continue
            peers = services.peers.all(job_id)
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
            if beats is None:
                beats = services.replicas.all()
            for dead in dead_peers(job, peers, beats, now, self.lease, commands):
                if taker_for(dead, job, peers, beats, now, self.lease) == self.peer:
                    self.supervisor.tell(StartJob(job_id=job_id, owner=dead))
