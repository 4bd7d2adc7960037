from hypothesis import given, settings
from hypothesis import strategies as st

from datagems.job.state import coverage, derive, peer_ranges
from datagems.models import (
    CancelRequest,
    JobBase,
    JobCommands,
    PeerState,
    Range,
    Takeover,
    split_ranges,
)


def job(**changes) -> JobBase:
    return JobBase(
        **{"id": "j", "owner": "alice", "total_records": 10, "peers": ["a", "b"], **changes}
    )


def state(peer: str, start: int, end: int, ok: int = 0, failed: int = 0, cid=None) -> PeerState:
    return PeerState(
        peer_id=peer,
        assigned=end - start,
        range=Range(start=start, end=end),
        generated_ok=ok,
        generated_failed=failed,
        result_cid=cid,
        started_at="2026-11-22T02:00:00.000Z" if ok or failed else None,
    )


def test_a_job_is_queued_then_running_then_succeeded_from_its_peer_states() -> None:
    assert derive(job(), {"a": state("a", 0, 5), "b": state("b", 5, 10)}, None).status == ("queued")
    running = derive(job(), {"a": state("a", 0, 5, ok=2), "b": state("b", 5, 10)}, None)
    assert (running.status, running.total_ok) == ("running", 2)
    done = derive(
        job(),
        {"a": state("a", 0, 5, ok=5, cid="x"), "b": state("b", 5, 10, ok=4, failed=1, cid="y")},
        None,
    )
    assert (done.status, done.total_generated, done.total_failed) == ("succeeded", 10, 1)
    assert done.job_finished_at


def test_a_job_whose_every_record_failed_is_failed_not_succeeded() -> None:
    peers = {"a": state("a", 0, 5, failed=5, cid="x"), "b": state("b", 5, 10, failed=5, cid="y")}
    assert derive(job(), peers, None).status == "failed"


def test_a_job_is_not_complete_while_a_peer_has_no_result_cid() -> None:
    peers = {"a": state("a", 0, 5, ok=5, cid="x"), "b": state("b", 5, 10, ok=5)}
    assert derive(job(), peers, None).status == "running"


def test_a_cancel_request_makes_an_unfinished_job_cancelled() -> None:
    cancel = CancelRequest(job_id="j", requested_by="alice", requested_at="2026-11-22T02:00:00Z")
    peers = {"a": state("a", 0, 5, ok=1), "b": state("b", 5, 10)}
    assert derive(job(), peers, cancel).status == "cancelled"
    assert derive(job(status="succeeded"), peers, cancel).status == "succeeded"


# -- the split of extensions and the coverage of a job, directly (no process) -----------


def commands(*extensions: tuple[int, int], retry_round: int = 0) -> JobCommands:
    return JobCommands(
        job_id="j",
        retry_round=retry_round,
        extensions=[Range(start=s, end=e) for s, e in extensions],
    )


def test_an_extension_is_split_over_the_peers_like_a_new_job() -> None:
    extended = commands((10, 15))  # 10 records on a and b, then 5 more
    assert peer_ranges(job(), "a", Range(start=0, end=5), extended) == [
        Range(start=0, end=5),
        Range(start=10, end=13),
    ]
    assert peer_ranges(job(), "b", Range(start=5, end=10), extended) == [
        Range(start=5, end=10),
        Range(start=13, end=15),
    ]


def test_a_peer_with_no_share_of_a_small_extension_gets_no_empty_range() -> None:
    three = job(peers=["a", "b", "c"])
    assert peer_ranges(three, "c", Range(start=7, end=10), commands((10, 12))) == [
        Range(start=7, end=10)
    ]


@settings(max_examples=30, deadline=None)
@given(
    total=st.integers(0, 40),
    peer_count=st.integers(1, 5),
    extension_sizes=st.lists(st.integers(1, 30), max_size=4),
)
def test_every_index_of_a_job_and_its_extensions_has_exactly_one_owner(
    total: int, peer_count: int, extension_sizes: list[int]
) -> None:
    peers = [f"p{n}" for n in range(peer_count)]
    extensions, start = [], total
    for size in extension_sizes:
        extensions.append((start, start + size))
        start += size
    extended = commands(*extensions)
    covered = sorted(
        i
        for peer, first in split_ranges(total, peers)
        for r in peer_ranges(job(peers=peers), peer, first, extended)
        for i in range(r.start, r.end)
    )
    assert covered == list(range(start))  # every index once: no gap, no overlap


def test_a_dead_peers_range_is_covered_by_its_takers_complete_upload() -> None:
    taker = state("a", 0, 5, ok=5, cid="x")
    taker.takeovers["b"] = Takeover(
        peer_id="b", range=Range(start=5, end=10), assigned=5, generated_ok=5, result_cid="t"
    )
    covered = coverage(job(), {"a": taker, "b": state("b", 5, 10, ok=2)})
    assert (covered["b"].by, covered["b"].ok, covered["b"].complete) == ("a", 5, True)
    assert derive(job(), {"a": taker, "b": state("b", 5, 10, ok=2)}, None).status == ("succeeded")


def test_a_peers_own_complete_upload_wins_over_a_takers() -> None:
    taker = state("a", 0, 5, ok=5, cid="x")
    taker.takeovers["b"] = Takeover(
        peer_id="b", range=Range(start=5, end=10), assigned=5, generated_ok=5, result_cid="t"
    )
    covered = coverage(job(), {"a": taker, "b": state("b", 5, 10, ok=5, cid="y")})
    assert (covered["b"].by, covered["b"].result_cid) == ("b", "y")


def test_while_nobody_has_uploaded_the_account_furthest_along_counts() -> None:
    taker = state("a", 0, 5, ok=5, cid="x")
    taker.takeovers["b"] = Takeover(
        peer_id="b", range=Range(start=5, end=10), assigned=5, generated_ok=4
    )
    covered = coverage(job(), {"a": taker, "b": state("b", 5, 10, ok=2)})
    assert (covered["b"].by, covered["b"].ok, covered["b"].uploaded) == ("a", 4, False)


def test_an_upload_from_before_an_extension_no_longer_covers_the_peer() -> None:
    peers = {"a": state("a", 0, 5, ok=5, cid="x"), "b": state("b", 5, 10, ok=5, cid="y")}
    covered = coverage(job(), peers, commands((10, 14)))
    assert [(c.assigned, c.current, c.uploaded) for c in covered.values()] == [
        (7, False, False),
        (7, False, False),
    ]
    peers["a"].extensions_done = 1
    assert coverage(job(), peers, commands((10, 14)))["a"].uploaded
    assert not coverage(job(), peers, commands((10, 14)))["a"].complete  # 5 of 7 done
