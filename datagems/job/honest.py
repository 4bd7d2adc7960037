"""What the job page says of a job's state, truthfully (``view.state`` of the job view).

- A finished job with failed records is "Completed — 3 failed" (tone ``warn``), never the
  plain "Succeeded" of a job whose every record is ok.
- A cancelled job is "Cancelling…" until every DataGems peer working its ranges has
  stopped and uploaded what it made (or never started, or stopped reporting): until then
  the page stays live (``settled`` false) while its counts still rise. Peers of the
  original app do not know of cancels and are not waited for (the page says so).
- Every peer's ranges follow the job's extensions (its first range, then its share of
  each extension), from the job's commands, as soon as an extension is decided.
- A queued job says what it waits for: which peer, and why (its next poll, its other
  jobs, no heartbeat).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from datagems.job.state import JobView, peer_ranges
from datagems.models import TERMINAL_STATUSES, PeerState, ReplicaBeat, parse_iso
from datagems.settings import Settings


def _age(stamp: str | None, now: datetime) -> float | None:
    when = parse_iso(stamp) if stamp else None
    return (now - when).total_seconds() if when else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def ranges_of(view: JobView) -> dict[str, dict[str, Any]]:
    """Every peer's ranges (``[[start, end], ...]``) and assigned count, extensions included."""
    shown: dict[str, dict[str, Any]] = {}
    for peer in view.job.peers or list(view.peers):
        own = view.peers.get(peer)
        if own is None:
            continue
        ranges = peer_ranges(view.job, peer, own.range, view.commands)
        shown[peer] = {
            "ranges": [[r.start, r.end] for r in ranges if r.end > r.start],
            "assigned": sum(r.size for r in ranges),
        }
    return shown


def _gone(state: PeerState, now: datetime, lease: float) -> bool:
    """Has a peer stopped reporting (its calls in flight died with it)?"""
    age = _age(state.last_update_at or state.started_at, now)
    return age is not None and age > lease


def _stopped(state: PeerState, now: datetime, lease: float) -> bool:
    """Has a peer stopped working its own range since the cancel?"""
    if _gone(state, now, lease):
        return True
    if state.in_flight:
        return False
    if state.cancelled_at or state.finished_at:
        return True
    return not state.started_at and not state.done  # never started: a cancel is read first


def _taking_over(state: PeerState, now: datetime, lease: float) -> bool:
    """Is a live peer still finishing a dead peer's range?"""
    if _gone(state, now, lease):
        return False
    return any(
        t.started_at and not (t.cancelled_at or t.finished_at) for t in state.takeovers.values()
    )


def still_working(
    view: JobView, originals: Iterable[str], settings: Settings, now: datetime | None = None
) -> list[str]:
    """The DataGems peers that have not yet stopped after the job's cancel."""
    now = now or datetime.now(UTC)
    originals = set(originals)
    lease = settings.peer_lease_seconds
    return [
        peer
        for peer, state in view.peers.items()
        if peer not in originals
        and (not _stopped(state, now, lease) or _taking_over(state, now, lease))
    ]


def settled(view: JobView, originals: Iterable[str], settings: Settings) -> bool:
    """Will the job's page change no more (so its live stream may end)?"""
    if view.job.status not in TERMINAL_STATUSES:
        return False
    if view.job.status == "cancelled" or view.cancel is not None:
        return not still_working(view, originals, settings)
    return True


def _working_on(peer: str, others: Iterable[JobView]) -> int:
    """How many other open jobs ``peer`` is working on now."""
    count = 0
    for other in others:
        state = other.peers.get(peer)
        if state is not None and state.started_at and not (state.finished_at or state.cancelled_at):
            count += 1
    return count


def queued_reason(
    view: JobView,
    originals: Iterable[str],
    beats: dict[str, ReplicaBeat],
    others: Iterable[JobView],
    settings: Settings,
    now: datetime | None = None,
) -> str | None:
    """Why a queued job has not started: what each of its peers is waiting for."""
    if view.job.status != "queued":
        return None
    now = now or datetime.now(UTC)
    originals = set(originals)
    others = [o for o in others if o.job.id != view.job.id]
    waiting = [p for p in view.job.peers or list(view.peers) if not _started(view, p)]
    if not view.peers:
        return "Waiting for the confirm to write the peers' ranges."
    reasons = []
    poll = f"{settings.job_poll_seconds:g} s"
    for peer in waiting:
        if peer in originals:
            reasons.append(
                f"{peer} (the original app) takes it at its next poll (every {poll}), "
                "once it has finished its current job"
            )
            continue
        beat = beats.get(peer)
        age = _age(beat.last_seen_at, now) if beat else None
        if beat is None or age is None:
            reasons.append(f"{peer} has never been seen: it takes its range once it runs")
        elif age > settings.peer_lease_seconds:
            reasons.append(
                f"{peer} was last seen {age:.0f} s ago: a live peer takes its range over "
                f"once its lease ({settings.peer_lease_seconds:g} s) runs out"
            )
        else:
            busy = _working_on(peer, others)
            limit = settings.max_concurrent_jobs
            if busy >= limit:
                reasons.append(
                    f"{peer} is working on {_plural(busy, 'other job')} (at most {limit} at "
                    "once): it starts this one when one of them ends"
                )
            else:
                reasons.append(f"{peer} takes it at its next poll (every {poll})")
    if not reasons:
        return "Every peer has its range: the first records are on their way."
    return "Waiting for " + "; ".join(reasons) + "."


def _started(view: JobView, peer: str) -> bool:
    state = view.peers.get(peer)
    if state is None:
        return False
    return bool(state.started_at or state.done or state.result_cid)


def state_of(
    view: JobView,
    originals: Iterable[str],
    beats: dict[str, ReplicaBeat],
    others: Iterable[JobView],
    settings: Settings,
) -> dict[str, Any]:
    """``{"label", "tone", "settled", "why", "stillWorking", "ranges"}`` for the job page."""
    originals = list(originals)
    job = view.job
    status = job.status
    why: str | None = None
    working: list[str] = []
    if status == "succeeded" and job.total_failed:
        label, tone = f"Completed — {job.total_failed:,} failed", "warn"
    elif status == "succeeded":
        label, tone = "Completed", "ok"
    elif status == "failed":
        label, tone = "Failed", "bad"
        why = job.error
    elif status == "cancelled" or view.cancel is not None:
        working = still_working(view, originals, settings)
        if working:
            label, tone = "Cancelling…", "busy"
            why = f"Stopping: {', '.join(working)} still finishing calls already made."
        else:
            label, tone = "Cancelled", "idle"
    elif status == "running":
        label, tone = "Running", "busy"
    else:
        label, tone = "Queued", "idle"
        why = queued_reason(view, originals, beats, others, settings)
    return {
        "label": label,
        "tone": tone,
        "settled": settled(view, originals, settings),
        "why": why,
        "stillWorking": working,
        "ranges": ranges_of(view),
    }
