"""The takeover decision, directly: who is dead, and who takes its range (no process).

Every peer here is a replica of ours (it has written a heartbeat); peers of the original
app, which never do, are in ``tests/test_liveness.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datagems.liveness import Fleet, PeerActivity, needs_taker
from datagems.liveness import taker_for as ring_taker
from datagems.models import JobBase, PeerState, Range, ReplicaBeat, Takeover

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
PEERS = ["a", "b", "c"]


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def job() -> JobBase:
    return JobBase(id="j", owner="alice", total_records=9, peers=PEERS, created_at=ago(3600))


def state(peer: str, updated: float | None, cid: str | None = None) -> PeerState:
    start = PEERS.index(peer) * 3
    return PeerState(
        peer_id=peer,
        assigned=3,
        range=Range(start=start, end=start + 3),
        last_update_at=ago(updated) if updated is not None else None,
        result_cid=cid,
    )


def beat(peer: str, seen: float) -> ReplicaBeat:
    return ReplicaBeat(peer_id=peer, last_seen_at=ago(seen))


STALE = 3600.0  # a replica of ours that stopped beating an hour ago


def fleet(beats: dict[str, ReplicaBeat]) -> Fleet:
    """Every peer has beaten once (a replica of ours); those not given, long ago."""
    known = {p: beat(p, STALE) for p in PEERS} | beats
    return Fleet(known, PeerActivity(k=5), NOW, LEASE, timedelta(seconds=900))


def dead_peers(
    job: JobBase, peers: dict[str, PeerState], beats: dict[str, ReplicaBeat]
) -> list[str]:
    return needs_taker(job, peers, fleet(beats))


def test_a_peer_silent_past_the_lease_with_no_upload_is_dead() -> None:
    peers = {"a": state("a", 1), "b": state("b", 61), "c": state("c", 5)}
    assert dead_peers(job(), peers, {}) == ["b"]


def test_a_peer_whose_replica_still_beats_is_alive_though_its_state_is_old() -> None:
    peers = {"a": state("a", 1), "b": state("b", 600), "c": state("c", 5)}
    assert dead_peers(job(), peers, {"b": beat("b", 10)}) == []


def test_a_peer_that_uploaded_its_slice_is_never_dead() -> None:
    peers = {"a": state("a", 1), "b": state("b", 600, cid="Qm"), "c": state("c", 5)}
    peers["b"].generated_ok = 3
    assert dead_peers(job(), peers, {}) == []


def test_a_peer_that_never_wrote_counts_from_the_jobs_creation() -> None:
    peers = {"a": state("a", 1), "b": state("b", None), "c": state("c", 5)}
    assert dead_peers(job(), peers, {}) == ["b"]
    fresh_job = job()
    fresh_job.created_at = ago(30)
    assert dead_peers(fresh_job, peers, {}) == []


def test_a_range_completed_by_a_taker_is_not_taken_again() -> None:
    peers = {"a": state("a", 1), "b": state("b", 600), "c": state("c", 5, cid="Qc")}
    peers["c"].takeovers["b"] = Takeover(
        peer_id="b", range=Range(start=3, end=6), assigned=3, generated_ok=3, result_cid="Qt"
    )
    assert dead_peers(job(), peers, {}) == []


def test_the_taker_is_the_first_live_peer_after_the_dead_one_in_the_jobs_order() -> None:
    beats = {"a": beat("a", 1), "c": beat("c", 5)}
    assert ring_taker("b", job(), fleet(beats)) == "c"
    beats["c"] = beat("c", 600)  # c silent too: the ring wraps round to a
    assert ring_taker("b", job(), fleet(beats)) == "a"
    assert ring_taker("c", job(), fleet(beats)) == "a"


def test_only_a_fresh_heartbeat_makes_a_peer_a_taker_and_nobody_live_means_no_taker() -> None:
    assert ring_taker("b", job(), fleet({})) is None
    assert ring_taker("b", job(), fleet({"a": beat("a", 3)})) == "a"


def test_every_replica_reading_the_same_store_picks_the_same_taker() -> None:
    beats = {"a": beat("a", 2), "c": beat("c", 2)}
    picks = {
        ring_taker("b", job(), fleet(dict(reversed(beats.items())))),
        ring_taker("b", job(), fleet(beats)),
    }
    assert picks == {"c"}
