"""Poller: every ``DATAGEN_JOB_POLL_SECONDS``, finds the work this peer should do.

Per poll: one ``hgetall`` of the jobs hash, of the cancel requests and of the replica
heartbeats, plus one ``hgetall`` of the peer states of each unfinished job of this peer.
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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pykka

from datagems.actors.base import Actor, Ticker
from datagems.actors.messages import CancelJob, ChildFailed, StartJob, Tick
from datagems.errors import StoreError
from datagems.jobs import coverage
from datagems.models import (
    TERMINAL_STATUSES,
    JobBase,
    JobCommands,
    PeerState,
    ReplicaBeat,
    parse_iso,
)
from datagems.services import Services

if TYPE_CHECKING:
    from datagems.actors.supervisor import Supervisor

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


class Poller(Actor):
    def __init__(self, services: Services, supervisor: pykka.ActorRef[Supervisor]) -> None:
        super().__init__()
        self.services = services
        self.peer = services.settings.host_addr
        self.lease = timedelta(seconds=services.settings.peer_lease_seconds)
        self.supervisor = supervisor
        self._ticker: Ticker | None = None

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
        services = self.services
        jobs = services.jobs.all()
        cancels = services.cancels.all()
        all_commands = services.commands.all()
        beats: dict[str, ReplicaBeat] | None = None
        now = datetime.now(UTC)
        for job_id, job in jobs.items():
            if self.peer not in job.peers:
                continue
            # a cancelled job still needs this peer to stop and upload what it has done
            if job.status in TERMINAL_STATUSES and job_id not in cancels:
                continue
            peers = services.peers.all(job_id)
            if job_id in cancels:
                self.supervisor.tell(CancelJob(job_id=job_id))
            commands = all_commands.get(job_id)
            mine = coverage(job, peers, commands).get(self.peer)
            if mine is not None and not mine.uploaded:
                self.supervisor.tell(StartJob(job_id=job_id))
            if job_id in cancels:
                continue
            if beats is None:
                beats = services.replicas.all()
            for dead in dead_peers(job, peers, beats, now, self.lease, commands):
                if taker_for(dead, job, peers, beats, now, self.lease) == self.peer:
                    self.supervisor.tell(StartJob(job_id=job_id, owner=dead))
