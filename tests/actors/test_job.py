"""What a job actor tells the writer when it opens a range, at start or after the writer
was restarted, directly (no actor, no store): counts come from the local result file."""

from __future__ import annotations

from datagems.actors.job import opened_state
from datagems.job.results import ResumeState
from datagems.models import PeerState, Range, Takeover

RANGES = [Range(start=0, end=10), Range(start=20, end=25)]


def stored(**changes) -> PeerState:
    return PeerState(
        peer_id="a",
        assigned=10,
        range=Range(start=0, end=10),
        generated_ok=2,  # behind the file: the writer died before writing the rest
        tokens_in=700,
        retries=3,
        **changes,
    )


def file_with(ok: list[int], failed: dict[int, int]) -> ResumeState:
    """``failed`` maps an index to the retry round it last failed in."""
    return ResumeState(
        ok={**dict.fromkeys(ok, True), **dict.fromkeys(failed, False)}, failed_round=failed
    )


def test_the_own_ranges_counts_come_from_the_file_and_the_rest_from_the_stored_state() -> None:
    before = stored(in_flight=[])
    state, takeover = opened_state(
        before,
        peer="a",
        owner="a",
        owner_range=RANGES[0],
        ranges=RANGES,
        done=file_with(ok=[0, 1, 2, 3, 20], failed={4: 0, 5: 0}),
        retry_round=0,
    )
    assert takeover is None
    assert (state.generated_ok, state.generated_failed, state.assigned) == (5, 2, 15)
    assert state.ranges == RANGES and state.in_flight == []
    assert (state.tokens_in, state.retries) == (700, 3)  # figures the file does not hold
    assert before.generated_ok == 2  # the stored state read is not changed


def test_a_failed_record_due_for_a_retry_this_round_is_not_counted_yet() -> None:
    state, _ = opened_state(
        stored(),
        peer="a",
        owner="a",
        owner_range=RANGES[0],
        ranges=RANGES,
        done=file_with(ok=[0, 1], failed={4: 0, 5: 1, 6: 1}),  # 4 not retried in round 1 yet
        retry_round=1,
    )
    assert (state.generated_ok, state.generated_failed) == (2, 2)


def test_a_dead_peers_range_is_counted_in_a_takeover_that_keeps_its_start() -> None:
    mine = stored()
    mine.takeovers["b"] = Takeover(
        peer_id="b", range=Range(start=10, end=20), started_at="2026-11-22T02:00:00.000Z"
    )
    state, takeover = opened_state(
        mine,
        peer="a",
        owner="b",
        owner_range=Range(start=10, end=20),
        ranges=[Range(start=10, end=20)],
        done=file_with(ok=[10, 11, 12], failed={13: 0}),
        retry_round=0,
    )
    assert state.generated_ok == 2  # the own range's counts are not touched
    assert takeover is not None
    assert (takeover.peer_id, takeover.assigned) == ("b", 10)
    assert (takeover.generated_ok, takeover.generated_failed) == (3, 1)
    assert takeover.started_at == "2026-11-22T02:00:00.000Z"


def test_a_first_takeover_by_a_peer_with_no_state_yet_starts_fresh() -> None:
    state, takeover = opened_state(
        None,
        peer="c",
        owner="b",
        owner_range=Range(start=10, end=20),
        ranges=[Range(start=10, end=20)],
        done=ResumeState(),
        retry_round=0,
    )
    assert state.peer_id == "c" and takeover is not None
    assert (takeover.generated_ok, takeover.generated_failed, takeover.started_at) == (0, 0, None)
