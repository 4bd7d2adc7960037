"""The poller. The takeover decision, directly: who is dead, and who takes its range (no
process); every peer here is a replica of ours (it has written a heartbeat); peers of the
original app, which never do, are in ``tests/job/test_liveness.py``. And, with real processes
(devnode, mock gateway, replica), its work from the open-jobs index: a job the original
DataGems writes straight into ``datagen:jobs`` is still found and worked, and a crash
between a job's write and its index entry is repaired when the replica starts again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datagems.bench.original import confirm_as_original
from datagems.bench.procs import wait_until
from datagems.job import commands, index, lifecycle
from datagems.job.liveness import Fleet, PeerActivity, needs_taker
from datagems.job.liveness import taker_for as ring_taker
from datagems.models import TERMINAL_STATUSES, JobBase, PeerState, Range, ReplicaBeat, Takeover
from datagems.store import keys
from tests.actors.jobkit import (
    PERSON_SCHEMA,
    confirm_job,
    exported_entries,
    fleet_services,
    wait_for_status,
)
from tests.fleet import Fleet as LocalFleet

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


@pytest.mark.fleet
def test_a_job_the_original_writes_straight_into_the_store_is_found_and_worked(
    tmp_path: Path,
) -> None:
    with LocalFleet(tmp_path, peers=["a"]) as fleet:
        services = fleet_services(fleet)
        done = confirm_job(services, 2)  # history the replica finds at start
        fleet.start_replicas()
        wait_for_status(services, done, {"succeeded"})
        job_id = confirm_as_original(
            fleet.cstore,
            fleet.r1fs,
            owner="tess",
            title="Bikes from the original",
            total=4,
            peers=["a"],
            schema=PERSON_SCHEMA,
            gateway_url=fleet.llm_url,
        )
        assert job_id not in index.open_entries(services)  # the original never indexes
        view = wait_for_status(services, job_id, {"succeeded"})
        assert view.job.total_ok == 4
        assert [entry["i"] for entry in exported_entries(services, job_id)] == [0, 1, 2, 3]
        wait_until(
            lambda: job_id not in index.open_entries(services),
            what="the finished job to leave the index",
        )


@pytest.mark.fleet
def test_a_crash_between_a_jobs_write_and_its_index_entry_is_repaired_at_the_next_start(
    tmp_path: Path,
) -> None:
    with LocalFleet(tmp_path, peers=["a"]) as fleet:
        services = fleet_services(fleet)
        fleet.start_replicas()
        finished = confirm_job(services, 2)
        wait_for_status(services, finished, {"succeeded"})
        fleet.replicas["a"].stop()
        # a job written by a replica that died before its entry (an older version, or a
        # write a replicated store lost): the index is current but lacks the job
        missing = confirm_job(services, 3)
        services.cstore.hset_raw(keys.OPEN_JOBS, missing, None)
        # a replica that wrote a final base and died before taking its entry out
        index.open_job(services, services.jobs.get(finished))
        assert set(index.open_entries(services)) == {finished}
        fleet.start_replicas()
        view = wait_for_status(services, missing, {"succeeded"})
        assert view.job.total_ok == 3
        wait_until(
            lambda: not index.open_entries(services),
            what="the index to hold no finished job",
        )
        assert lifecycle.load_job(services, finished).job.status in TERMINAL_STATUSES


@pytest.mark.fleet
def test_the_originals_metrics_key_follows_the_jobs_without_a_rebuild_for_our_writes(
    tmp_path: Path,
) -> None:
    """The poller rewrites datagen:metrics from the jobs as they open, finish and reopen
    (its finished part kept close by close, not read whole each time); the index is not
    rebuilt for those writes of ours."""
    with LocalFleet(tmp_path, peers=["a"], mock_args=("--fail-rate", "0.3")) as fleet:
        services = fleet_services(fleet)
        before = confirm_job(services, 3)  # history the replica counts at start
        fleet.start_replicas()
        wait_for_status(services, before, {"succeeded", "failed"})
        made = [confirm_job(services, 4) for _ in range(3)]
        for job_id in made:
            wait_for_status(services, job_id, {"succeeded", "failed"})

        def synced() -> bool:
            return services.metrics.get() == lifecycle.metrics_of(services)

        wait_until(synced, what="datagen:metrics to say what the jobs say", timeout=60)
        built = services.index.meta().built_at
        failed = next(
            (j for j in [before, *made] if lifecycle.load_job(services, j).job.total_failed), None
        )
        if failed is not None:  # reopen an older job: its finished count leaves the history
            command = commands.new_command("retry", failed, "alice", via="test", exempt=True)
            with services.command_lock:
                commands.apply_pending(services, failed, [command])
            wait_for_status(services, failed, {"succeeded", "failed"})
        wait_until(synced, what="datagen:metrics to follow the retry", timeout=60)
        assert services.metrics.get().total_jobs == 4
        assert services.index.meta().built_at == built  # our writes never looked foreign
