"""Who is alive in a fleet with peers of the original app, and who takes over whom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from datagems.job.liveness import Fleet, PeerActivity, needs_taker, taker_for
from datagems.models import JobBase, JobCommands, PeerState, Range, ReplicaBeat

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
ORIGINAL_LEASE = timedelta(seconds=900)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def job(
    job_id: str = "j", created: datetime = T0, peers: tuple[str, ...] = ("ts", "py")
) -> JobBase:
    return JobBase(
        id=job_id, owner="o", peers=list(peers), created_at=iso(created), total_records=20
    )


def state(peer: str, start: int, end: int, **fields: object) -> PeerState:
    return PeerState(
        peer_id=peer, assigned=end - start, range=Range(start=start, end=end), **fields
    )


def fleet(now: datetime, activity: PeerActivity, beats: tuple[str, ...] = ("py",)) -> Fleet:
    known = {p: ReplicaBeat(peer_id=p, last_seen_at=iso(now)) for p in beats}
    return Fleet(known, activity, now, LEASE, ORIGINAL_LEASE)


def test_a_peer_never_seen_beating_is_the_original_apps_and_judged_by_its_writes_in_any_job() -> (
    None
):
    activity = PeerActivity(k=5)
    busy = {"ts": state("ts", 0, 10, started_at=iso(T0 + timedelta(minutes=20)))}
    activity.see(busy)  # it works another job, started 20 minutes after ours was confirmed
    waiting = job(created=T0)
    peers = {"ts": state("ts", 0, 10), "py": state("py", 10, 20, result_cid="Qm1", generated_ok=10)}
    later = fleet(T0 + timedelta(minutes=30), activity)
    assert later.is_original("ts") and not later.is_original("py")
    assert needs_taker(waiting, peers, later) == []  # silent here, busy there: alive
    dead = fleet(T0 + timedelta(minutes=36), activity)
    assert needs_taker(waiting, peers, dead) == ["ts"]
    assert taker_for("ts", waiting, dead) == "py"


def test_an_original_peer_slower_than_the_lease_per_k_records_gets_a_longer_lease() -> None:
    activity = PeerActivity(k=5)
    started, updated = T0, T0 + timedelta(minutes=10)  # 10 records in 10 minutes
    activity.see(
        {
            "ts": state(
                "ts", 0, 20, started_at=iso(started), last_update_at=iso(updated), generated_ok=10
            )
        }
    )
    now = fleet(updated + timedelta(minutes=14), activity)
    assert now.lease_of("ts") == timedelta(minutes=15)  # 3 x 5 minutes per K, over 900 s
    assert now.alive("ts", job(created=T0), None)


def test_what_a_taker_wrote_into_a_dead_peers_state_is_not_its_activity() -> None:
    activity = PeerActivity(k=5)
    done_by_taker = state(
        "ts",
        0,
        10,
        started_at=iso(T0),
        finished_at=iso(T0 + timedelta(hours=1)),
        last_update_at=iso(T0 + timedelta(hours=1)),
        completed_by="py",
        completed_at=iso(T0 + timedelta(hours=1)),
    )
    activity.see({"ts": done_by_taker})
    assert activity.last["ts"] == T0


def test_only_a_replica_of_ours_with_a_fresh_heartbeat_takes_over() -> None:
    now = T0 + timedelta(hours=2)
    beats = {
        "py1": ReplicaBeat(peer_id="py1", last_seen_at=iso(T0)),  # stale
        "py2": ReplicaBeat(peer_id="py2", last_seen_at=iso(now)),
    }
    shared = Fleet(beats, PeerActivity(k=5), now, LEASE, ORIGINAL_LEASE)
    ring = job(peers=("ts", "ts2", "py1", "py2"))
    assert taker_for("ts", ring, shared) == "py2"
    assert taker_for("py2", ring, shared) is None  # py1 is stale, the others are originals


def test_a_finished_original_peer_behind_a_retry_gets_its_taker_at_once() -> None:
    activity = PeerActivity(k=5)
    finished = state(
        "ts", 0, 10, generated_ok=8, generated_failed=2, result_cid="Qm1", started_at=iso(T0)
    )
    activity.see({"ts": finished})
    peers = {
        "ts": finished,
        "py": state("py", 10, 20, generated_ok=10, result_cid="Qm2", retry_round=1),
    }
    commands = JobCommands(job_id="j", retry_round=1)
    now = fleet(T0 + timedelta(seconds=5), activity)
    assert now.alive("ts", job(), finished)
    assert needs_taker(job(), peers, now, commands) == ["ts"]
    assert needs_taker(job(), peers, now, None) == []  # nothing asked: nothing to do


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.1, max_value=899.0), min_size=1, max_size=30),
    probe=st.floats(min_value=0.0, max_value=1.0),
    jobs_count=st.integers(min_value=1, max_value=3),
)
def test_an_original_peer_that_writes_within_its_lease_is_never_taken_over(
    gaps: list[float], probe: float, jobs_count: int
) -> None:
    """It works ``jobs_count`` jobs one after the other, each write (in whichever job it is
    working) within its lease of the one before; a job still waiting for it is never
    handed to a taker, whenever the poll happens."""
    activity = PeerActivity(k=5)
    moment = T0
    stamps = []
    for gap in gaps:
        moment += timedelta(seconds=gap)
        stamps.append(moment)
    per_job = max(1, len(stamps) // jobs_count)
    for index in range(0, len(stamps), per_job):
        chunk = stamps[index : index + per_job]
        worked = state("ts", 0, 10, started_at=iso(chunk[0]), last_update_at=iso(chunk[-1]))
        activity.see({"ts": worked})
    waiting = job("waiting", created=T0)
    peers = {"ts": state("ts", 0, 10), "py": state("py", 10, 20)}
    # any moment up to one lease after its last write
    now = stamps[-1] + timedelta(seconds=probe * 899.0)
    assert "ts" not in needs_taker(waiting, peers, fleet(now, activity))
