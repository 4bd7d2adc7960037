"""CStoreWriter: the only actor that writes progress to CStore.

It keeps this peer's state of every job it works on — its own range and, after a
takeover, the dead peers' ranges it finishes (under ``takeovers``) — and writes it:
- when ``K`` more records have finished (``DATAGEN_UPDATE_EVERY_K_REQUESTS``), once the
  messages already queued are handled: under a burst it writes once for all of them, so
  it never falls behind the records (fewer writes, never more, than one per ``K``);
- on a tick, when something changed and the last write is older than
  ``DATAGEN_PROGRESS_FLUSH_SECONDS`` (so in-flight records stay visible), or when the
  heartbeat (``lastUpdateAt``) would otherwise grow older than a third of the lease;
- when a range opens, when a slice is uploaded (then it finalizes the job), and on stop.
After the write of a range opening and of every K records it refreshes the job's stored
base (status, totals) like the original app does (``lifecycle.refresh_totals``, at most every
``BASE_SECONDS``: a replica of ours makes records much faster than the original); after a taken
over range is uploaded it shows it finished in its owner's state too, for the original
app (``lifecycle.complete_for_owner``).
It also writes this replica's heartbeat (``datagen:replicas``) every third of the lease.
A failed write keeps the state dirty and is retried with backoff on later ticks: the
latest state is never lost, and a record's critical path never waits for CStore.
The supervisor starts it and restarts it if it dies; the job actors then open their
ranges again with counts re-derived from their local result files (``WriterRestarted``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import pykka

from datagems.actors.base import Actor, Ticker
from datagems.actors.messages import (
    ChildFailed,
    Flush,
    JobDropped,
    JobOpened,
    PaceChanged,
    RangeFailed,
    RecordDone,
    RecordsStarted,
    RecordStateChanged,
    SliceUploaded,
    Tick,
)
from datagems.errors import StoreError
from datagems.inference.pipeline import RecordOutcome
from datagems.job import lifecycle
from datagems.models import InFlightRecord, PeerState, RecentRecord, ReplicaBeat, now_iso
from datagems.services import Services

if TYPE_CHECKING:
    from datagems.actors.supervisor import Supervisor

logger = logging.getLogger(__name__)
RECENT_KEPT = 20
RECENT_DATA_BYTES = 1024
MAX_BACKOFF_SECONDS = 30.0
USAGE_COUNTERS = (  # PeerState fields this writer adds to as records end
    "failure_reasons",
    "retries",
    "duplicates",
    "tokens_in",
    "tokens_out",
    "latency_ms_total",
    "abandoned_calls",
)
BASE_SECONDS = 2.0  # the job base at most this often (the original's page reads every 10 s)


@dataclass
class _Tracked:
    """This peer's state of one job, and which of its ranges are still being worked."""

    state: PeerState
    active: set[str] = field(default_factory=set)  # range owners with a live job actor
    dirty: bool = True
    finished_since_write: int = 0
    last_write: float = 0.0
    failures: int = 0
    retry_at: float = 0.0
    finalize: bool = False
    in_flight: dict[int, InFlightRecord] = field(default_factory=dict)
    # records finished since the last write, newest last: made into ``recent`` on a write
    finished: deque[tuple[RecordOutcome, str]] = field(
        default_factory=lambda: deque(maxlen=RECENT_KEPT)
    )
    flush_asked: bool = False
    refresh_base: bool = False  # after the next write: the job's base, as the original
    base_refreshed: float = 0.0
    # taken-over ranges uploaded: (owner, the takeover's previous slice) to complete
    complete: list[tuple[str, str | None]] = field(default_factory=list)

    def count_finished(self, every_k: int) -> bool:
        """One more record finished. True when that makes ``every_k`` since the last write
        and no write is asked yet: the caller asks one, queued behind the messages already
        there, so a burst of outcomes is written once (never more than one write per K)."""
        self.dirty = True
        self.finished_since_write += 1
        if self.finished_since_write >= every_k and not self.flush_asked:
            self.flush_asked = True
            return True
        return False

    def written(self, now: float) -> None:
        """The state is in CStore: nothing is pending any more."""
        self.failures = 0
        self.dirty = False
        self.finished_since_write = 0
        self.last_write = now


def _small(data: Any) -> bool:
    """Small enough to ride in the peer state for the dashboard (about 1 KiB of JSON)."""
    return len(orjson.dumps(data)) <= RECENT_DATA_BYTES


def _recent(finished: tuple[RecordOutcome, str]) -> RecentRecord:
    outcome, finished_at = finished
    return RecentRecord(
        i=outcome.i,
        ok=outcome.ok,
        attempts=outcome.attempts,
        reason=outcome.reason,
        message=(outcome.error or "")[:200] or None,
        finished_at=finished_at,
        data=outcome.data if outcome.ok and _small(outcome.data) else None,
    )


class CStoreWriter(Actor):
    def __init__(
        self, services: Services, supervisor: pykka.ActorRef[Supervisor] | None = None
    ) -> None:
        super().__init__()
        self.services = services
        self.supervisor = supervisor
        self.settings = services.settings
        self.peer = services.settings.host_addr
        self.tracked: dict[str, _Tracked] = {}
        self.writes = 0
        self.started_at = now_iso()
        self.last_beat = 0.0
        self._ticker: Ticker | None = None

    def start_up(self) -> None:
        interval = min(self.settings.progress_flush_seconds, 1.0) / 2
        self._ticker = Ticker(self.actor_ref, Tick(), max(0.05, interval)).start()
        self._beat()

    def cleanup(self) -> None:
        if self._ticker:
            self._ticker.stop()

    def on_stop(self) -> None:
        super().on_stop()
        for job_id in list(self.tracked):
            self._write(job_id, force=True)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Dying: write nothing more (the state may be half-updated); the supervisor starts
        a successor and the job actors re-derive their counts from their files."""
        super().on_failure(exception_type, exception_value, traceback)
        if self.supervisor is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self.supervisor.tell(ChildFailed(kind="writer", error=str(exception_value)[:200]))

    def on_receive(self, message: Any) -> None:
        match message:
            case RecordsStarted():
                self._records_started(message)
            case RecordStateChanged():
                self._record_state(message)
            case RecordDone():
                self._record_done(message)
            case RangeFailed():
                self._range_failed(message)
            case Flush():
                tracked = self.tracked.get(message.job_id)
                if tracked is not None:
                    tracked.flush_asked = False
                    tracked.refresh_base = True
                    self._write(message.job_id)
            case Tick():
                self._tick()
            case JobOpened():
                self._opened(message)
            case SliceUploaded():
                self._slice_uploaded(message)
            case PaceChanged():
                tracked = self.tracked.get(message.job_id)
                if tracked is not None:
                    tracked.state.pace = dict(message.pace)
                    tracked.dirty = True
            case JobDropped():
                tracked = self.tracked.get(message.job_id)
                if tracked is not None:
                    tracked.active.discard(message.owner)
                    self._write(message.job_id, force=True)
            case _:
                logger.warning("writer: unexpected message %r", type(message).__name__)

    def write_count(self) -> int:
        return self.writes

    # -- events ------------------------------------------------------------------------
    def _opened(self, message: JobOpened) -> None:
        tracked = self.tracked.get(message.job_id)
        if tracked is None:
            tracked = self.tracked[message.job_id] = _Tracked(
                state=message.state.model_copy(deep=True)
            )
        elif message.takeover is None:  # own range (re)opened: keep takeovers we hold
            kept = tracked.state
            tracked.state = message.state.model_copy(deep=True)
            tracked.state.takeovers.update(kept.takeovers)
            # and the usage only this writer counts: the job actor read the stored state,
            # which can be behind this writer (a range reopened before a write landed)
            for name in USAGE_COUNTERS:
                setattr(tracked.state, name, copy.deepcopy(getattr(kept, name)))
        if message.takeover is not None:
            takeover = message.takeover.model_copy(deep=True)
            takeover.started_at = takeover.started_at or now_iso()
            tracked.state.takeovers[takeover.peer_id] = takeover
        tracked.active.add(message.takeover.peer_id if message.takeover else self.peer)
        tracked.finalize = False
        tracked.refresh_base = True
        self._write(message.job_id, force=True)

    def _records_started(self, message: RecordsStarted) -> None:
        tracked = self.tracked.get(message.job_id)
        if tracked is None:
            return
        started_at = now_iso()
        for index in message.indices:
            tracked.in_flight[index] = InFlightRecord(i=index, started_at=started_at)
        tracked.dirty = True

    def _record_state(self, message: RecordStateChanged) -> None:
        tracked = self.tracked.get(message.job_id)
        if tracked is None:
            return
        current = tracked.in_flight.get(message.i)
        tracked.in_flight[message.i] = InFlightRecord(
            i=message.i,
            attempt=message.attempt,
            state=message.state,
            started_at=current.started_at if current else now_iso(),
            reason=message.reason,
        )
        tracked.dirty = True

    def _record_done(self, message: RecordDone) -> None:
        tracked = self.tracked.get(message.job_id)
        if tracked is None:
            return
        outcome = message.outcome
        state = tracked.state
        tracked.in_flight.pop(outcome.i, None)
        counts: Any = state if message.owner == self.peer else state.takeovers.get(message.owner)
        if counts is None:
            return
        counts.generated_ok, counts.generated_failed = message.ok_count, message.failed_count
        if not outcome.ok:
            reason = outcome.reason or "failed"
            state.failure_reasons[reason] = state.failure_reasons.get(reason, 0) + 1
        state.retries += max(0, outcome.attempts - 1)
        state.tokens_in += outcome.tokens_in
        state.tokens_out += outcome.tokens_out
        state.latency_ms_total += outcome.latency_ms
        state.abandoned_calls += outcome.abandoned
        state.duplicates += 1 if message.duplicate else 0
        tracked.finished.append((outcome, now_iso()))
        if tracked.count_finished(self.settings.update_every_k):
            self.actor_ref.tell(Flush(job_id=message.job_id))

    def _range_failed(self, message: RangeFailed) -> None:
        tracked = self.tracked.get(message.job_id)
        if tracked is None:
            return
        state = tracked.state
        counts: Any = state if message.owner == self.peer else state.takeovers.get(message.owner)
        if counts is None:
            return
        counts.generated_ok, counts.generated_failed = message.ok_count, message.failed_count
        counts.start_error = message.error
        state.failure_reasons[message.reason] = (
            state.failure_reasons.get(message.reason, 0) + message.count
        )
        error = f"{message.reason}: {message.error}"
        first = RecordOutcome(i=message.first, ok=False, error=error, reason=message.reason)
        tracked.finished.append((first, now_iso()))
        tracked.dirty = True

    def _slice_uploaded(self, message: SliceUploaded) -> None:
        tracked = self.tracked.get(message.job_id)
        if tracked is None:
            return
        target: Any = (
            tracked.state
            if message.owner == self.peer
            else tracked.state.takeovers.get(message.owner)
        )
        if target is None:
            return
        if message.owner != self.peer and not message.cancelled:
            tracked.complete.append((message.owner, target.result_cid))
        target.result_cid = message.result_cid
        target.errors_cid = message.errors_cid
        target.ranges = list(message.ranges) or target.ranges
        target.extensions_done = message.extensions_done
        target.retry_round = message.retry_round
        if message.cancelled:
            target.cancelled_at = now_iso()
        else:
            target.finished_at = now_iso()
        tracked.active.discard(message.owner)
        if not tracked.active:
            tracked.in_flight.clear()
        tracked.finalize = True
        tracked.dirty = True
        self._write(message.job_id, force=True)

    def _tick(self) -> None:
        now = time.monotonic()
        heartbeat = self.settings.peer_lease_seconds / 3
        if now - self.last_beat >= heartbeat:
            self._beat()
        for job_id, tracked in list(self.tracked.items()):
            since = now - tracked.last_write
            due = tracked.dirty and since >= self.settings.progress_flush_seconds
            if due or since >= heartbeat or (tracked.failures and now >= tracked.retry_at):
                self._write(job_id)

    def _beat(self) -> None:
        try:
            self.services.replicas.beat(
                ReplicaBeat(peer_id=self.peer, last_seen_at=now_iso(), started_at=self.started_at)
            )
        except StoreError as exc:
            logger.warning("replica heartbeat not written: %s", exc)
        self.last_beat = time.monotonic()

    # -- the one place that writes progress --------------------------------------------
    def _write(self, job_id: str, *, force: bool = False) -> None:
        tracked = self.tracked.get(job_id)
        if tracked is None:
            return
        now = time.monotonic()
        if tracked.failures and now < tracked.retry_at and not force:
            return
        state = tracked.state
        if tracked.finished:
            state.recent = [*state.recent, *map(_recent, tracked.finished)][-RECENT_KEPT:]
            tracked.finished.clear()
        if self._deleted(job_id):
            # the job was deleted meanwhile (a cancelled job's delete while this replica
            # still had progress of it): writing would bring its peer state back
            self.tracked.pop(job_id, None)
            logger.info("job %s was deleted: its progress here is not written", job_id)
            return
        state.in_flight = sorted(tracked.in_flight.values(), key=lambda r: r.i)
        state.last_update_at = now_iso()
        if self.peer in tracked.active or state.generated_ok or state.generated_failed:
            state.started_at = state.started_at or state.last_update_at
        try:
            self.services.peers.put(job_id, state)
        except StoreError as exc:
            tracked.failures += 1
            delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(tracked.failures, 8))
            tracked.retry_at = now + delay
            logger.warning(
                "progress of job %s not written (%s); retry in %.1fs", job_id, exc, delay
            )
            return
        self.writes += 1
        tracked.written(now)
        if not tracked.active:
            self.tracked.pop(job_id, None)
        self._after_write(job_id, tracked)

    def _deleted(self, job_id: str) -> bool:
        try:
            return self.services.jobs.get_raw(job_id) is None
        except StoreError:  # cannot tell: write, as before
            return False

    def _after_write(self, job_id: str, tracked: _Tracked) -> None:
        """What the original app reads besides our state: the owners' states of the ranges
        we finished for them, and the job's base."""
        try:
            while tracked.complete:
                owner, previous = tracked.complete[0]
                took = tracked.state.takeovers.get(owner)
                if took is not None:
                    lifecycle.complete_for_owner(self.services, job_id, self.peer, took, previous)
                tracked.complete.pop(0)
            if tracked.finalize:
                tracked.finalize = tracked.refresh_base = False
                lifecycle.finalize(self.services, job_id)
            elif tracked.refresh_base and time.monotonic() - tracked.base_refreshed >= BASE_SECONDS:
                tracked.refresh_base, tracked.base_refreshed = False, time.monotonic()
                lifecycle.refresh_totals(self.services, job_id)
        except StoreError as exc:
            logger.warning("job %s: base or owners' states not written yet (%s)", job_id, exc)
