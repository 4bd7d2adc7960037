"""The writer's every-K batching, directly on its per-job bookkeeping (no actor, no store)."""

from __future__ import annotations

from typing import Any

from datagems.actors.writer import _Tracked
from datagems.models import PeerState

K = 5


def tracked() -> _Tracked:
    return _Tracked(state=PeerState(peer_id="local"))


def finish(job: _Tracked, count: int) -> list[int]:
    """Count ``count`` finished records; the ordinals of those that asked for a write."""
    return [n for n in range(1, count + 1) if job.count_finished(K)]


def test_the_kth_finished_record_asks_for_a_write_and_the_ones_before_do_not() -> None:
    job = tracked()
    assert finish(job, K) == [K]
    assert job.dirty and job.finished_since_write == K


def test_a_burst_of_outcomes_queued_before_the_write_is_written_once() -> None:
    job = tracked()
    assert finish(job, 3 * K + 2) == [K]  # 17 outcomes ahead of the flush: one write asked
    job.flush_asked = False  # the flush is handled...
    job.written(now=1.0)  # ...and the write succeeds: all 17 are in it
    assert (job.dirty, job.finished_since_write, job.last_write) == (False, 0, 1.0)
    assert finish(job, K) == [K]  # the next write comes K records later, not sooner


def test_after_a_failed_write_the_next_outcome_asks_again() -> None:
    job = tracked()
    finish(job, K)
    job.flush_asked = False  # the flush is handled, but the store refused the write
    assert finish(job, 1) == [1]  # still K or more unwritten: ask at once, not K later
    assert job.dirty


def test_a_range_reopened_from_a_stale_store_keeps_the_usage_the_writer_counted() -> None:
    """A job actor restarted before the writer's last write landed reads the stored state:
    its counts come from the result file, but the usage only the writer counts (failure
    reasons, tokens, retries...) must stay the writer's, or a reason is lost."""
    from types import SimpleNamespace

    from datagems.actors.messages import JobOpened
    from datagems.actors.writer import CStoreWriter

    writes: list[str] = []
    writer: Any = SimpleNamespace(
        tracked={}, peer="c", _write=lambda job_id, force=False: writes.append(job_id)
    )
    stored = PeerState(peer_id="c", assigned=2)  # what the store held before the failure
    CStoreWriter._opened(writer, JobOpened(job_id="j", state=stored))
    counted = writer.tracked["j"].state
    counted.generated_failed = 2
    counted.failure_reasons = {"cannot_start": 2}
    counted.tokens_out, counted.retries = 40, 1

    reopened = stored.model_copy(update={"generated_failed": 2})  # counts from the file
    CStoreWriter._opened(writer, JobOpened(job_id="j", state=reopened))
    state = writer.tracked["j"].state
    assert state.generated_failed == 2
    assert state.failure_reasons == {"cannot_start": 2}
    assert (state.tokens_out, state.retries) == (40, 1)
    assert writes == ["j", "j"]
