from datagems import jobs
from datagems.models import CancelRequest, JobBase, PeerState, Range


def job(**changes) -> JobBase:
    return JobBase(id="j", owner="alice", total_records=10, peers=["a", "b"], **changes)


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
    assert jobs.derive(job(), {"a": state("a", 0, 5), "b": state("b", 5, 10)}, None).status == (
        "queued"
    )
    running = jobs.derive(job(), {"a": state("a", 0, 5, ok=2), "b": state("b", 5, 10)}, None)
    assert (running.status, running.total_ok) == ("running", 2)
    done = jobs.derive(
        job(),
        {"a": state("a", 0, 5, ok=5, cid="x"), "b": state("b", 5, 10, ok=4, failed=1, cid="y")},
        None,
    )
    assert (done.status, done.total_generated, done.total_failed) == ("succeeded", 10, 1)
    assert done.job_finished_at


def test_a_job_whose_every_record_failed_is_failed_not_succeeded() -> None:
    peers = {"a": state("a", 0, 5, failed=5, cid="x"), "b": state("b", 5, 10, failed=5, cid="y")}
    assert jobs.derive(job(), peers, None).status == "failed"


def test_a_job_is_not_complete_while_a_peer_has_no_result_cid() -> None:
    peers = {"a": state("a", 0, 5, ok=5, cid="x"), "b": state("b", 5, 10, ok=5)}
    assert jobs.derive(job(), peers, None).status == "running"


def test_a_cancel_request_makes_an_unfinished_job_cancelled() -> None:
    cancel = CancelRequest(job_id="j", requested_by="alice", requested_at="2026-11-22T02:00:00Z")
    peers = {"a": state("a", 0, 5, ok=1), "b": state("b", 5, 10)}
    assert jobs.derive(job(), peers, cancel).status == "cancelled"
    assert jobs.derive(job(status="succeeded"), peers, cancel).status == "succeeded"
