"""The takeover decision, directly: who is dead, and who takes its range (no process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datagems.actors.poller import dead_peers, taker_for
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


def test_a_peer_silent_past_the_lease_with_no_upload_is_dead() -> None:
    peers = {"a": state("a", 1), "b": state("b", 61), "c": state("c", 5)}
    assert dead_peers(job(), peers, {}, NOW, LEASE) == ["b"]


def test_a_peer_whose_replica_still_beats_is_alive_though_its_state_is_old() -> None:
    peers = {"a": state("a", 1), "b": state("b", 600), "c": state("c", 5)}
    assert dead_peers(job(), peers, {"b": beat("b", 10)}, NOW, LEASE) == []


def test_a_peer_that_uploaded_its_slice_is_never_dead() -> None:
    peers = {"a": state("a", 1), "b": state("b", 600, cid="Qm"), "c": state("c", 5)}
    peers["b"].generated_ok = 3
    assert dead_peers(job(), peers, {}, NOW, LEASE) == []


def test_a_peer_that_never_wrote_counts_from_the_jobs_creation() -> None:
    peers = {"a": state("a", 1), "b": state("b", None), "c": state("c", 5)}
    assert dead_peers(job(), peers, {}, NOW, LEASE) == ["b"]
    fresh_job = job()
    fresh_job.created_at = ago(30)
    assert dead_peers(fresh_job, peers, {}, NOW, LEASE) == []


def test_a_range_completed_by_a_taker_is_not_taken_again() -> None:
    peers = {"a": state("a", 1), "b": state("b", 600), "c": state("c", 5, cid="Qc")}
    peers["c"].takeovers["b"] = Takeover(
        peer_id="b", range=Range(start=3, end=6), assigned=3, generated_ok=3, result_cid="Qt"
    )
    assert dead_peers(job(), peers, {}, NOW, LEASE) == []


def test_the_taker_is_the_first_live_peer_after_the_dead_one_in_the_jobs_order() -> None:
    peers = {"a": state("a", 1), "b": state("b", 600), "c": state("c", 5)}
    assert taker_for("b", job(), peers, {}, NOW, LEASE) == "c"
    peers["c"] = state("c", 600)  # c silent too: the ring wraps round to a
    assert taker_for("b", job(), peers, {}, NOW, LEASE) == "a"
    assert taker_for("c", job(), peers, {}, NOW, LEASE) == "a"


def test_a_heartbeat_alone_makes_a_peer_a_taker_and_nobody_live_means_no_taker() -> None:
    silent = {p: state(p, 600) for p in PEERS}
    assert taker_for("b", job(), silent, {}, NOW, LEASE) is None
    assert taker_for("b", job(), silent, {"a": beat("a", 3)}, NOW, LEASE) == "a"


def test_every_replica_reading_the_same_store_picks_the_same_taker() -> None:
    peers = {"a": state("a", 1), "b": state("b", 600), "c": state("c", 5)}
    shuffled = {p: peers[p] for p in ("c", "b", "a")}  # another read order of the hash
    beats = {"a": beat("a", 2), "c": beat("c", 2)}
    picks = {
        taker_for("b", job(), view, dict(reversed(beats.items())), NOW, LEASE)
        for view in (peers, shuffled)
    }
    assert picks == {"c"}
