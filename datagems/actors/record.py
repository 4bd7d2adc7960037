"""Records on the replica's call loop: each one runs the record pipeline
(``datagems.inference.pipeline.generate``: prompt, call, extract, validate, retries) and
tells its job actor the outcome.

A record runs as a coroutine on the replica's ``CallLoop`` (one asyncio loop on one
thread, one keep-alive connection pool per job), not as a thread of its own: measured on
this machine, a thread per record with a blocking client spent most of a core on thread
switches and client locks and reached a third of the gateway's limit, while the loop
reaches most of it (``BENCHMARKS.md``). It keeps the actor's contract: it is started by
its job actor, never waits on another actor, sends its outcome up by ``tell``, and ends.

The outcome goes up to the job actor; a retry's state goes to the writer (the job actor
tells the writer when records start). A cancelled record (its job cancelled or stopping)
sends nothing: its job has already forgotten it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

from datagems.actors.base import Slots
from datagems.actors.messages import RecordStateChanged
from datagems.actors.pace import LatencyPacer
from datagems.inference.pipeline import RecordCalls, RecordOutcome, generate

if TYPE_CHECKING:
    from datagems.actors.job import JobActor
    from datagems.actors.writer import CStoreWriter
    from datagems.inference.providers import Completion

logger = logging.getLogger(__name__)
CLOSE_SECONDS = 2.0  # at stop, how long connections may take to close


class CallLoop:
    """The replica's one asyncio loop, on one daemon thread, where every record runs.

    Job actors ``submit`` records and may ``cancel`` the futures they get back; they never
    wait on them (the outcome comes back by ``tell``). ``stop`` cancels what is left.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name="calls")

    def start(self) -> CallLoop:
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            # what is left: clients closing (let them finish), records of stopped jobs
            tasks = asyncio.all_tasks(self._loop)
            if tasks:
                self._loop.run_until_complete(asyncio.wait(tasks, timeout=CLOSE_SECONDS))
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Run ``coro`` on the loop. Raises ``RuntimeError`` when the loop is closed (a job
        actor's cleanup after the engine stopped): the coroutine is closed first, so it
        never runs and is not left un-awaited (Python warns of those at garbage collection)."""
        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:
            coro.close()
            raise

    def ping(self) -> str:
        async def pong() -> str:
            return "pong"

        return self.submit(pong()).result(timeout=5)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)


@dataclass(frozen=True)
class RecordJob:
    """A job's records as its job actor runs them: what the pipeline needs (``calls``),
    whose range it is, and what watches each call (the replica's slots, the job's pacer,
    the writer told of retries)."""

    calls: RecordCalls
    owner: str  # whose range: this peer, or the dead peer it took over from
    pacer: Slots  # told of every call's outcome: it adapts the in-flight level
    job: pykka.ActorRef[JobActor]
    writer: pykka.ActorRef[CStoreWriter]
    pace: LatencyPacer | None = None  # the job's in-flight level, following latency

    @property
    def job_id(self) -> str:
        return self.calls.job_id

    def call_started(self) -> int:
        return self.pace.call_started() if self.pace else 1

    def call_ended(self) -> None:
        if self.pace is not None:
            self.pace.call_ended()

    def answered(self, completion: Completion, started_with: int) -> None:
        self.pacer.succeeded()
        if self.pace is not None:
            self.pace.observe(completion.latency_ms, completion.tokens_out, started_with)

    def congested(self) -> None:
        self.pacer.congested()

    def retrying(self, index: int, attempt: int, reason: str) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.writer.tell(
                RecordStateChanged(
                    job_id=self.job_id,
                    owner=self.owner,
                    i=index,
                    attempt=attempt,
                    state="retrying",
                    reason=reason,
                )
            )


async def run_record(work: RecordJob, index: int) -> None:
    """Generate record ``index`` and tell its job the outcome."""
    try:
        outcome = await generate(work.calls, index, work)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug of ours: the record fails, the job goes on
        logger.exception("job %s: record %d failed unexpectedly", work.job_id, index)
        outcome = RecordOutcome(
            i=index, ok=False, reason="internal", error=f"internal: {type(exc).__name__}"
        )
    with contextlib.suppress(pykka.ActorDeadError):
        work.job.tell(outcome)
