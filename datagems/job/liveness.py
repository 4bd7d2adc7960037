"""Which peers of a fleet are alive, the original app's peers included, and who takes over
the range of one that is not.

Two kinds of peer can share a fleet (one CStore, one peer list):

- a **DataGems replica** (this app) writes a heartbeat in ``datagen:replicas`` every third of
  ``DATAGEN_PEER_LEASE_SECONDS``. It is alive while its heartbeat, or its peer state in
  the job, is younger than that lease.
- the **original app** (TypeScript DataGems 1.1.3) writes no heartbeat, ever: a peer never
  seen in ``datagen:replicas`` is taken to be one (so is a replica of ours that never
  started). It writes only its own peer state: ``startedAt`` when it picks a job up (no
  ``lastUpdateAt`` then), ``lastUpdateAt`` after every K records (its records are called
  one after the other), ``finishedAt`` at the end; and it works one job at a time, so a
  job waiting for it sees nothing while it works another. Its liveness is therefore
  judged by its latest write **in any job** (``PeerActivity``), or the job's confirmation
  when that is later: it is alive while that is younger than its lease, the larger of
  ``DATAGEN_ORIGINAL_PEER_LEASE_SECONDS`` (900 s: five records of three minutes each) and
  three times its observed time per K records. A working original peer is thus not taken
  over while each of its records takes under a fifth of that lease; a dead one is, at
  most that long after its last write.

A dead peer's range is taken over by the first DataGems replica after it in the job's peer
order that is alive by its heartbeat (the original app cannot take anything over): every
replica computes the same taker from the same store, without talking to the others.
The original app also cannot retry failed records or take records added to a job: a
finished range of an original peer that is behind the job's commands gets its taker at
once (``needs_taker``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from datagems.job.state import coverage
from datagems.models import JobBase, JobCommands, PeerState, ReplicaBeat, parse_iso

PACE_MARGIN = 3.0  # an original peer's lease is at least this many times its time per K records


def fresh(stamp: str | None, now: datetime, lease: timedelta) -> bool:
    moment = parse_iso(stamp)
    return moment is not None and now - moment <= lease


@dataclass
class PeerActivity:
    """The latest write of each peer seen in any job, and its pace (seconds per K records),
    kept between polls: a peer of the original app shows it is alive only there."""

    k: int
    last: dict[str, datetime] = field(default_factory=dict)
    pace: dict[str, float] = field(default_factory=dict)

    def see(self, peers: dict[str, PeerState]) -> None:
        """Note what the peers of one job wrote themselves (not a taker's completion)."""
        for peer_id, state in peers.items():
            ends = [m for m in map(parse_iso, (state.last_update_at, state.finished_at)) if m]
            completed = parse_iso(state.completed_at) if state.completed_by else None
            if completed is not None:  # a taker wrote those (startedAt it leaves as it was)
                ends = [m for m in ends if m > completed]
            started = parse_iso(state.started_at)
            moments = [*ends, *([started] if started else [])]
            if moments and (peer_id not in self.last or max(moments) > self.last[peer_id]):
                self.last[peer_id] = max(moments)
            updated = parse_iso(state.last_update_at)
            if (
                completed is None
                and started
                and updated
                and updated > started
                and state.done >= self.k
            ):
                per_k = (updated - started).total_seconds() * self.k / state.done
                self.pace[peer_id] = per_k


@dataclass(frozen=True)
class Fleet:
    """What one poll knows about the fleet's peers."""

    beats: dict[str, ReplicaBeat]
    activity: PeerActivity
    now: datetime
    lease: timedelta  # DATAGEN_PEER_LEASE_SECONDS
    original_lease: timedelta  # DATAGEN_ORIGINAL_PEER_LEASE_SECONDS

    def is_original(self, peer: str) -> bool:
        """Never wrote a heartbeat: the original app (or a replica that never started)."""
        return peer not in self.beats

    def lease_of(self, peer: str) -> timedelta:
        if not self.is_original(peer):
            return self.lease
        paced = timedelta(seconds=PACE_MARGIN * self.activity.pace.get(peer, 0.0))
        return max(self.original_lease, paced)

    def alive(self, peer: str, job: JobBase, state: PeerState | None) -> bool:
        if not self.is_original(peer):
            beat = self.beats[peer]
            own = state.last_update_at if state and not state.completed_by else None
            return fresh(beat.last_seen_at, self.now, self.lease) or fresh(
                own or job.created_at, self.now, self.lease
            )
        last = self.activity.last.get(peer)
        created = parse_iso(job.created_at)
        since = max((m for m in (last, created) if m is not None), default=None)
        return since is not None and self.now - since <= self.lease_of(peer)

    def can_take_over(self, peer: str) -> bool:
        """A replica of ours whose heartbeat is fresh (the original app takes nothing over)."""
        beat = self.beats.get(peer)
        return beat is not None and fresh(beat.last_seen_at, self.now, self.lease)


def needs_taker(
    job: JobBase, peers: dict[str, PeerState], fleet: Fleet, commands: JobCommands | None = None
) -> list[str]:
    """Peers whose ranges someone else must work now: dead ones with a range nobody has
    uploaded, and peers of the original app whose own range is done but behind the job's
    commands (a retry round, records added), which it will never catch up with."""
    covered = coverage(job, peers, commands)
    found = []
    for peer in job.peers:
        account = covered.get(peer)
        if account is not None and account.uploaded:
            continue
        state = peers.get(peer)
        if not fleet.alive(peer, job, state):
            found.append(peer)
        elif (
            fleet.is_original(peer)
            and state is not None
            and state.result_cid
            and state.done >= state.assigned
        ):
            found.append(peer)  # finished, but deaf to the commands since
    return found


def taker_for(peer: str, job: JobBase, fleet: Fleet) -> str | None:
    """The first replica of ours after ``peer`` in the job's peer order (ring) that is alive
    by its heartbeat, or None."""
    order = job.peers
    start = order.index(peer)
    for step in range(1, len(order)):
        candidate = order[(start + step) % len(order)]
        if fleet.can_take_over(candidate):
            return candidate
    return None
