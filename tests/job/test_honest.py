"""When a cancel has truly ended: every DataGems peer has stopped its own range and any
range it took over; a peer silent past its lease counts as stopped, the original app's
peers are not waited for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datagems.job.honest import settled, state_of, still_working
from datagems.job.state import JobView
from datagems.models import (
    CancelRequest,
    InFlightRecord,
    JobBase,
    PeerState,
    Range,
    Takeover,
)
from datagems.settings import Settings


def ago(seconds: float) -> str:
    """A stamp ``seconds`` before now: the wall clock ``settled`` and ``state_of`` read
    (a module-level now went stale when the module ran long after its import)."""
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def view(**peers: PeerState) -> JobView:
    job = JobBase.model_validate(
        {"id": "j1", "owner": "u", "status": "cancelled", "peers": list(peers), "totalRecords": 8}
    )
    cancel = CancelRequest.model_validate(
        {"jobId": "j1", "requestedBy": "u", "requestedAt": ago(1)}
    )
    return JobView(job, dict(peers), cancel)


def peer(name: str, **fields: object) -> PeerState:
    return PeerState.model_validate({"peerId": name, "range": Range(start=0, end=4), **fields})


def test_a_peer_with_calls_in_flight_keeps_the_cancel_going(settings: Settings) -> None:
    busy = peer("a", startedAt=ago(5), lastUpdateAt=ago(1), inFlight=[InFlightRecord(i=1)])
    shown = view(a=busy, b=peer("b", cancelledAt=ago(0.5), startedAt=ago(5), resultCid="Qm1"))
    assert still_working(shown, [], settings) == ["a"]
    assert not settled(shown, [], settings)
    state = state_of(shown, [], {}, [], settings)
    assert state["label"] == "Cancelling…" and "a still finishing" in state["why"]


def test_stopped_never_started_or_silent_past_the_lease_is_ended(settings: Settings) -> None:
    lease = settings.peer_lease_seconds
    stopped = peer("a", startedAt=ago(9), cancelledAt=ago(1), resultCid="Qm1")
    waiting = peer("b")
    silent = peer("c", startedAt=ago(lease * 3), lastUpdateAt=ago(lease * 2),
                  inFlight=[InFlightRecord(i=2)])  # fmt: skip
    shown = view(a=stopped, b=waiting, c=silent)
    assert still_working(shown, [], settings) == []
    assert state_of(shown, [], {}, [], settings)["label"] == "Cancelled"


def test_a_live_peer_still_finishing_a_dead_peers_range_keeps_it_going(settings: Settings) -> None:
    taker = peer(
        "a",
        startedAt=ago(9),
        lastUpdateAt=ago(1),
        cancelledAt=ago(1),
        takeovers={"b": Takeover(peer_id="b", range=Range(start=4, end=8), started_at=ago(3))},
    )
    shown = view(a=taker, b=peer("b", startedAt=ago(600), lastUpdateAt=ago(600)))
    assert still_working(shown, [], settings) == ["a"]


def test_the_original_apps_peers_are_not_waited_for(settings: Settings) -> None:
    original = peer("ts1", startedAt=ago(5), lastUpdateAt=ago(1), inFlight=[InFlightRecord(i=0)])
    assert still_working(view(ts1=original), ["ts1"], settings) == []
