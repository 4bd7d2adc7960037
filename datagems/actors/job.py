"""JobActor: works this replica's slice of one job, then uploads it and stops.

Start: load the job base, details (R1FS) and own peer state; compile the schema once;
resume from the local result file (indices already there are never called again).
Run: keep up to the in-flight cap of records busy on the call loop (per job and
replica-wide); append every outcome to the local file before it counts; tell the writer.
End: sort the slice, upload it (and its failures) to R1FS, tell the writer the CID
(it writes the state and finalizes the job), tell the supervisor, stop. A failed upload
is retried on later ticks; a cancel request uploads what is done and stops at once.
Writer restarted (``WriterRestarted``): open the range again on the new writer, counts
re-derived from the local file; what is told to a dead writer meanwhile is dropped.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
import pykka

from datagems.actors.base import Actor, Slots, Ticker
from datagems.actors.messages import (
    CancelJob,
    ChildFailed,
    Drain,
    JobDropped,
    JobEnded,
    JobOpened,
    PaceChanged,
    RangeFailed,
    RecordDone,
    RecordsStarted,
    SliceUploaded,
    Tick,
    WriterRestarted,
)
from datagems.actors.pace import LatencyPacer, LoopLag
from datagems.actors.record import CallLoop, RecordJob, run_record
from datagems.errors import BadRequest, DatagemsError, NotFound, StoreError
from datagems.inference import Provider
from datagems.inference.pipeline import RecordOutcome
from datagems.job.results import ResultFile, ResumeState
from datagems.job.seen import SeenRecords
from datagems.job.state import cancel_applies, coverage, peer_ranges
from datagems.models import (
    TERMINAL_STATUSES,
    CancelRequest,
    JobBase,
    JobCommands,
    JobDetails,
    PeerState,
    Range,
    Takeover,
)
from datagems.quality import resample
from datagems.services import Services

if TYPE_CHECKING:
    from datagems.actors.supervisor import Supervisor
    from datagems.actors.writer import CStoreWriter
    from datagems.quality.conditioning import Conditioning

logger = logging.getLogger(__name__)
TICK_SECONDS = 0.2
UPLOAD_RETRY_CAP_SECONDS = 30.0
CANNOT_START = "cannot_start"  # the failure reason of records whose work could not start


def opened_state(
    stored: PeerState | None,
    *,
    peer: str,
    owner: str,
    owner_range: Range,
    ranges: list[Range],
    done: ResumeState,
    retry_round: int,
    seeded_from: str | None = None,
) -> tuple[PeerState, Takeover | None]:
    """What a job actor tells the writer when it opens a range (at start, and again after a
    writer restart): this peer's state as stored, with the range's counts from its local
    result file, the truth. A failed record still due for a retry this round is not counted
    (its retry's outcome will be). For a dead peer's range the counts go in a ``Takeover``,
    with the owner's upload it started from (``seeded_from``); an own range is the peer's
    own again (no ``completedBy`` from a taker).
    """
    state = stored.model_copy(deep=True) if stored is not None else PeerState(peer_id=peer)
    state.in_flight = []
    assigned = sum(r.size for r in ranges)
    ok, failed = done.ok_count, done.failed_count - len(done.to_retry(retry_round))
    if owner == peer:
        state.completed_by = state.completed_at = None
        state.start_error = None
        state.ranges, state.assigned = list(ranges), assigned
        state.generated_ok, state.generated_failed = ok, failed
        return state, None
    before = state.takeovers.get(owner)
    takeover = Takeover(
        peer_id=owner,
        range=owner_range,
        ranges=list(ranges),
        assigned=assigned,
        generated_ok=ok,
        generated_failed=failed,
        started_at=before.started_at if before and not before.result_cid else None,
        seeded_from=seeded_from,
    )
    return state, takeover


class JobActor(Actor):
    def __init__(
        self,
        services: Services,
        job_id: str,
        *,
        supervisor: pykka.ActorRef[Supervisor],
        writer: pykka.ActorRef[CStoreWriter],
        slots: Slots,
        calls: CallLoop,
        owner: str | None = None,
    ) -> None:
        super().__init__()
        self.services = services
        self.settings = services.settings
        self.job_id = job_id
        self.peer = services.settings.host_addr
        self.owner = owner or self.peer  # whose range this actor works
        self.takeover = self.owner != self.peer
        self.taken_from = self.owner if self.takeover else None  # as the supervisor keys it
        self.supervisor = supervisor
        self.writer = writer
        self.slots = slots
        self.calls = calls
        self.in_flight: dict[int, concurrent.futures.Future[None]] = {}
        self.pending: list[int] = []  # indices still to start, popped from the end
        self.retry_due = 0  # the latest round that retries failed records
        self.retried: set[int] = set()
        self.resampling: dict[int, int] = {}  # near-duplicates to call again -> their round
        self.seen = SeenRecords()
        # the range's counts: from the local file at (re)open, then one per outcome (a
        # record due for a retry this round counts neither until its new outcome)
        self.ok_count = 0
        self.failed_count = 0
        self.version = (0, 0)  # (extensions, retry round) of the job's commands it works
        self.draining = False
        self.cancelled = False
        self.finished = False
        self.upload_failures = 0
        self.upload_retry_at = 0.0
        self.provider: Provider | None = None
        self.results: ResultFile | None = None
        self.stored: PeerState | None = None  # this peer's state as read at (re)open
        self.seeded_from: str | None = None  # the owner's upload this range started from
        self.work: RecordJob | None = None
        self.conditioning: Conditioning | None = None  # the job's variables and seed rows
        self.pace = LatencyPacer(services.settings.max_in_flight_per_job)  # set at start
        self.pace_shown = -1
        self.lag = LoopLag()  # the call loop's lag, measured while this job runs
        self._lag_ticker: concurrent.futures.Future[None] | None = None
        self._ticker: Ticker | None = None

    # -- life --------------------------------------------------------------------------
    def start_up(self) -> None:
        """Load the job; open the result file; tell the writer the range is open; start."""
        loaded = self._load()
        if loaded is None:
            return
        job, peers, cancel, commands = loaded
        details = self.services.details.get(job.job_details_cid or "")
        done = self._open_results(job, peers, commands)
        if self.takeover:
            logger.warning(
                "job %s: taking over the range of %s, silent past its lease",
                self.job_id,
                self.owner,
            )
        self._plan(done)
        cannot_start = self._connect(job, details)
        self.stored = peers.get(self.peer)
        self._announce(self.stored, done)
        self._ticker = Ticker(self.actor_ref, Tick(), TICK_SECONDS).start()
        if cancel is not None:
            self._cancel()
        elif cannot_start is not None:
            self._fail_pending(cannot_start)
        else:
            self._fill()

    def _load(
        self,
    ) -> tuple[JobBase, dict[str, PeerState], CancelRequest | None, JobCommands] | None:
        """The job, its peer states, cancel request and commands; None (and the actor ends)
        when there is nothing to do for this range."""
        services = self.services
        job = services.jobs.get(self.job_id)
        peers = services.peers.all(self.job_id)
        commands = services.commands.get(self.job_id)
        cancel = services.cancels.get(self.job_id)
        cancel = cancel if cancel_applies(cancel, commands) else None
        if job is None or self.owner not in peers or self._range_done(job, peers, commands, cancel):
            self._end("nothing to do here")
            return None
        if job.status in TERMINAL_STATUSES and cancel is None and not self._behind(commands):
            self._end("nothing to do here")
            return None
        return job, peers, cancel, commands

    def _open_results(
        self, job: JobBase, peers: dict[str, PeerState], commands: JobCommands
    ) -> ResumeState:
        """The range's result file (seeded from its latest upload when there is none here),
        cut of a torn tail, and what it says is done."""
        self.owner_range = peers[self.owner].range
        self.ranges = peer_ranges(job, self.owner, self.owner_range, commands)
        self.version = (len(commands.extensions), commands.retry_round)
        suffix = f"_by_{self.peer}" if self.takeover else ""
        self.results = ResultFile(
            self.settings.local_cache_dir / f"{self.job_id}_{self.owner}{suffix}.jsonl"
        )
        mine = peers.get(self.peer)
        if not self.results.exists():
            self.seeded_from = self._seed_from_upload(peers)
        elif self.takeover and mine is not None and self.owner in mine.takeovers:
            self.seeded_from = mine.takeovers[self.owner].seeded_from
        done = self.results.resume(self.ranges)
        self.retry_due = resample.retry_round_of(commands)  # a resample round retries none
        self.retried = set(done.to_retry(self.retry_due))
        due = resample.due(commands, self.ranges, done.resampled)
        self.resampling = {i: r for i, r in due.items() if done.ok.get(i)}  # ok ones only
        return done

    def _plan(self, done: ResumeState) -> None:
        """The indices to call: those of the ranges not ok in the file, and this round's
        retries of failed ones."""
        todo = [i for r in self.ranges for i in range(r.start, r.end) if i not in done.ok]
        todo += self.retried
        todo += self.resampling  # ok records found near-duplicates, called once again
        self.pending = sorted(set(todo), reverse=True)

    def _connect(self, job: JobBase, details: JobDetails) -> DatagemsError | None:
        """The provider (one connection pool) and what every record of the job shares.
        Returns why the work cannot start (its inference profile is gone, its URL refused,
        its schema unusable), if so: no record is started then."""
        from datagems.inference.pipeline import record_calls
        from datagems.job.lifecycle import provider_for

        cannot_start: DatagemsError | None = None
        calls: Any = None
        try:
            self.conditioning = self._conditioning(details)
        except ValueError as exc:  # variables this version cannot read: say so, start none
            cannot_start = BadRequest(f"the job's variables or seed data: {exc}")
        try:
            self.provider = provider_for(
                self.services,
                details.inference,
                job.owner,
                max_connections=min(self.settings.max_in_flight_per_job, self.slots.capacity),
            )
            calls = record_calls(
                details,
                self.provider,
                job_id=self.job_id,
                total=job.total_records,
                attempts=self.settings.attempts_per_record,
                max_tokens=self.settings.record_max_tokens,
                round_=self.version[1],
                conditioning=self.conditioning,
            )
        except (NotFound, BadRequest) as exc:
            cannot_start = exc
        self.pace = self._pacer(details)
        self.work = RecordJob(
            calls=calls,  # None: nothing starts
            owner=self.owner,
            pacer=self.slots,
            job=self.actor_ref,
            writer=self.writer,
            pace=self.pace,
        )
        logger.info(
            "job %s: working %s, %d to call (%d failed ones again)",
            self.job_id,
            ", ".join(f"[{r.start}, {r.end})" for r in self.ranges),
            len(self.pending),
            len(self.retried),
        )
        return cannot_start

    def _conditioning(self, details: JobDetails) -> Conditioning | None:
        """The job's variables and seed rows (``datagems.quality``); a failed R1FS read of
        the rows raises (the supervisor starts the job again later)."""
        from datagems.quality import conditioning

        return conditioning.load(details, self.services.r1fs, self.services.r1fs_secret)

    def _announce(self, stored: PeerState | None, done: ResumeState) -> None:
        """Tell the writer the range is open, its counts from the file."""
        state, takeover = opened_state(
            stored,
            peer=self.peer,
            owner=self.owner,
            owner_range=self.owner_range,
            ranges=self.ranges,
            done=done,
            retry_round=self.retry_due,
            seeded_from=self.seeded_from,
        )
        counts: PeerState | Takeover = takeover or state
        self.ok_count, self.failed_count = counts.generated_ok, counts.generated_failed
        self._tell_writer(JobOpened(job_id=self.job_id, state=state, takeover=takeover))

    def _writer_restarted(self, writer: pykka.ActorRef[CStoreWriter]) -> None:
        """A new writer knows nothing of this range: open it again, counts from the file
        (what the dead one counted but had not written, and what was told to it while it
        was down, is all there), with the records in flight."""
        self.writer = writer
        if self.work is None or self.results is None or self.finished:
            return  # ended, or ending: a slice the dead writer lost is redone on a later poll
        self.work = dataclasses.replace(self.work, writer=writer)
        try:  # the other figures (tokens, retries...) as the dead writer last wrote them
            self.stored = self.services.peers.get(self.job_id, self.peer) or self.stored
        except StoreError as exc:
            logger.warning("job %s: own state not read again (%s)", self.job_id, exc)
        self._announce(self.stored, self.results.resume(self.ranges))
        self.pace_shown = -1  # shown again by the next tick
        if self.in_flight:
            self._tell_writer(
                RecordsStarted(job_id=self.job_id, owner=self.owner, indices=tuple(self.in_flight))
            )

    def _tell_writer(self, message: Any) -> None:
        """Tell the writer; while it is dead (until the supervisor's ``WriterRestarted``)
        the message is dropped: the outcome is in the file, and is counted from there."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.writer.tell(message)

    def _pacer(self, details: Any) -> LatencyPacer:
        """The job's in-flight pacing, starting where the server was last seen (pace.py)."""
        from datagems.actors.pace import SLOW_START

        cap = self.settings.max_in_flight_per_job
        if self._lag_ticker is None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing will run
                self._lag_ticker = self.calls.submit(self.lag.run())
        known = getattr(getattr(self.provider, "negotiation", None), "known_in_flight", None)
        if known:
            why = "starting where the last job on it ended"
            return LatencyPacer(cap, known, why=why, lag=self.lag)
        if details.inference.use_external_api:
            return LatencyPacer(cap, SLOW_START, lag=self.lag)
        return LatencyPacer(cap, lag=self.lag)

    def cleanup(self) -> None:
        if self._ticker:
            self._ticker.stop()
        if self._lag_ticker is not None:
            self._lag_ticker.cancel()
        negotiation = getattr(self.provider, "negotiation", None)
        if negotiation is not None and self.pace.observed:
            negotiation.remember_in_flight(self.pace.allowed)
        self._forget_in_flight()
        if self.results:
            self.results.close()
        if self.provider:
            provider, self.provider = self.provider, None
            try:
                self.calls.submit(provider.aclose())
            except RuntimeError:  # the loop is closed: its connections went with it
                provider.close()
        if not self.finished:
            self._tell_writer(JobDropped(job_id=self.job_id, owner=self.owner))

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        super().on_failure(exception_type, exception_value, traceback)
        with contextlib.suppress(pykka.ActorDeadError):
            self.supervisor.tell(
                ChildFailed(
                    kind="job",
                    job_id=self.job_id,
                    owner=self.taken_from,
                    error=str(exception_value)[:200],
                )
            )

    def on_receive(self, message: Any) -> None:
        match message:
            case RecordOutcome():
                self._outcome(message)
            case Tick():
                self._tick()
            case CancelJob():
                if message.retry_round >= self.version[1]:  # not a round reopened since
                    self._cancel()
            case Drain():
                self.draining = True
            case WriterRestarted():
                self._writer_restarted(message.writer)
            case _:
                logger.warning("job actor: unexpected message %r", type(message).__name__)

    def _range_done(
        self,
        job: JobBase,
        peers: dict[str, PeerState],
        commands: JobCommands,
        cancel: CancelRequest | None,
    ) -> bool:
        """The owner's ranges are uploaded, caught up with the job's commands: by the owner
        (complete, for a takeover), or by a taker (so an owner back after a takeover does
        not call its records again). An upload cut short by a cancel that no longer
        applies (a later retry round) is not done."""
        covered = coverage(job, peers, commands).get(self.owner)
        if covered is None or not covered.uploaded:
            return False
        if not covered.complete and cancel is None:
            return False
        return not self.takeover or covered.by != self.owner or covered.complete

    def _behind(self, commands: JobCommands) -> bool:
        """Did the owner ask for a retry or an extension this range has not caught up with?"""
        return bool(commands.extensions or commands.retry_round)

    def _seed_from_upload(self, peers: dict[str, PeerState]) -> str | None:
        """No local file (a new host, a taker): start from the range's latest upload, so a
        retry calls only the failed records and a resume only the missing ones. Returns
        the CID it started from."""
        owner_state = peers.get(self.owner)
        cids = [owner_state.result_cid] if owner_state and owner_state.result_cid else []
        cids += [
            took.result_cid
            for state in peers.values()
            if (took := state.takeovers.get(self.owner)) is not None and took.result_cid
        ]
        assert self.results is not None
        for cid in cids[:1]:
            try:
                with self.services.r1fs.open_file(cid, secret=self.services.r1fs_secret) as data:
                    self.results.seed(data)
                return cid
            except StoreError as exc:
                logger.warning("job %s: could not seed from slice %s: %s", self.job_id, cid, exc)
        return None

    def in_flight_count(self) -> int:
        return len(self.in_flight)

    # -- work --------------------------------------------------------------------------
    def _fill(self) -> None:
        cap = min(self.settings.max_in_flight_per_job, self.pace.allowed)
        started: list[int] = []
        while (
            self.pending
            and not self.draining
            and not self.cancelled
            and len(self.in_flight) < cap
            and self.slots.try_acquire()
        ):
            index = self.pending.pop()
            assert self.work is not None
            self.in_flight[index] = self.calls.submit(run_record(self.work, index))
            started.append(index)
        if started:
            self._tell_writer(
                RecordsStarted(job_id=self.job_id, owner=self.owner, indices=tuple(started))
            )
        if not self.pending and not self.in_flight and not self.finished:
            self._finish()

    def _forget_in_flight(self) -> None:
        """Cancel the records in flight (they send nothing more) and free their slots."""
        for future in self.in_flight.values():
            future.cancel()
        self.slots.release(len(self.in_flight))
        self.in_flight.clear()

    def _outcome(self, outcome: RecordOutcome) -> None:
        if self.in_flight.pop(outcome.i, None) is None:
            return
        self.slots.release()
        entry: dict[str, Any] = {"i": outcome.i, "ok": outcome.ok}
        if self.version[1]:
            entry["round"] = self.version[1]
        resampled = self.resampling.pop(outcome.i, None)
        if resampled is not None:  # an ok record called again: it stays counted as ok
            entry["resampled"] = resampled
        duplicate = False
        if outcome.ok:
            entry["data"] = outcome.data
            duplicate = self.seen.add(outcome.data)
            self.ok_count += resampled is None
        else:
            entry.update(error=outcome.error, reason=outcome.reason)
            self.failed_count += resampled is None
        if self.conditioning is not None:  # the values it was given (quality)
            entry.update(self.conditioning.entry(outcome.i))
        if outcome.attempts > 1:
            entry["attempts"] = outcome.attempts
        if outcome.tries and (not outcome.ok or outcome.attempts > 1):
            entry["tries"] = list(outcome.tries)
        assert self.results is not None
        self.results.append(entry)  # on disk before it counts as done
        self._tell_writer(
            RecordDone(
                job_id=self.job_id,
                owner=self.owner,
                outcome=outcome,
                ok_count=self.ok_count,
                failed_count=self.failed_count,
                duplicate=duplicate,
            )
        )
        self._fill()

    def _fail_pending(self, error: DatagemsError) -> None:
        """The range's work cannot start (its inference profile is gone, its URL refused,
        its schema unusable) and waiting will not change that: every record still to make
        fails with the reason, so the job ends failed and shows why, and retry-failed calls
        them again once the cause is fixed. Then the slice is uploaded as usual."""
        message = f"{CANNOT_START}: {error.message}"
        logger.warning("job %s: the range of %s cannot start: %s", self.job_id, self.owner, error)
        indices = sorted(i for i in self.pending if i not in self.resampling)
        self.pending.clear()  # near-duplicates due for a resample stay as they are
        self.resampling.clear()
        extra = {"round": self.version[1]} if self.version[1] else {}
        assert self.results is not None
        self.results.append_many(
            [
                {
                    "i": i,
                    "ok": False,
                    "error": message,
                    "reason": CANNOT_START,
                    **extra,
                    **(self.conditioning.entry(i) if self.conditioning else {}),
                }
                for i in indices
            ]
        )
        self.failed_count += len(indices)
        if indices:
            self._tell_writer(
                RangeFailed(
                    job_id=self.job_id,
                    owner=self.owner,
                    first=indices[0],
                    count=len(indices),
                    reason=CANNOT_START,
                    error=error.message,
                    ok_count=self.ok_count,
                    failed_count=self.failed_count,
                )
            )
        self._finish()

    def _tick(self) -> None:
        if self.finished:
            return
        if self.pace.version != self.pace_shown:
            self.pace_shown = self.pace.version
            self._tell_writer(PaceChanged(job_id=self.job_id, pace=self.pace.snapshot()))
        if self.pending and not self.draining and not self.cancelled:
            self._fill()
        elif self.upload_failures and time.monotonic() >= self.upload_retry_at:
            self._finish()

    def _cancel(self) -> None:
        if self.cancelled or self.finished:
            return
        logger.info("job %s: cancelled; uploading what is done", self.job_id)
        self.cancelled = True
        self.pending.clear()
        self._forget_in_flight()
        self._finish()

    def _finish(self) -> None:
        """Upload the sorted slice and its failures; retried on ticks while R1FS fails."""
        assert self.results is not None
        r1fs, secret = self.services.r1fs, self.services.r1fs_secret
        name = f"{self.job_id}_{self.owner}" + (f"_by_{self.peer}" if self.takeover else "")
        try:
            path, failures = self.results.write_slice(
                self.results.path.with_name(f"{name}.slice.jsonl"), self.ranges
            )
            result_cid = r1fs.add_path(path, f"{name}.jsonl", secret=secret)
            errors_cid = None
            if failures:
                errors_cid = r1fs.add_file(
                    orjson.dumps(failures), f"{name}_errors.json", secret=secret
                )
        except (StoreError, OSError) as exc:
            self.upload_failures += 1
            delay = min(UPLOAD_RETRY_CAP_SECONDS, 0.5 * 2**self.upload_failures)
            self.upload_retry_at = time.monotonic() + delay
            logger.warning(
                "job %s: slice upload failed (%s); retry in %.1fs", self.job_id, exc, delay
            )
            return
        self.finished = True
        self._tell_writer(
            SliceUploaded(
                job_id=self.job_id,
                owner=self.owner,
                result_cid=result_cid,
                errors_cid=errors_cid,
                cancelled=self.cancelled,
                ranges=self.ranges,
                extensions_done=self.version[0],
                retry_round=self.version[1],
            )
        )
        self._end("slice uploaded" if not self.cancelled else "cancelled")

    def _end(self, why: str) -> None:
        self.finished = True
        logger.info("job %s: %s", self.job_id, why)
        with contextlib.suppress(pykka.ActorDeadError):
            self.supervisor.tell(JobEnded(job_id=self.job_id, owner=self.taken_from))
        self.stop()
