"""Supervisor: owns the replica's children — the CStore writer, the poller and the job
actors —, starts them, restarts failed ones with backoff and a budget, and stops them.

- ``StartJob``: ignored when the job runs here already, is cooling off after a failure,
  the replica is at ``DATAGEN_MAX_CONCURRENT_JOBS_PER_INSTANCE`` or the writer is down
  (being restarted); the poller asks again.
- ``ChildFailed``: a failed child may start again after a backoff (1 s, 2 s, 4 s...);
  past the budget (``RESTART_BUDGET`` failures in ``RESTART_WINDOW_SECONDS``) it waits
  ``GIVE_UP_SECONDS``. Job actors start again when the poller asks; the poller and the
  writer on the next ``Tick``. A new writer is announced to every running job actor
  (``WriterRestarted``): each opens its range again with counts from its result file, so
  progress the dead writer held unwritten is re-derived, never lost nor counted twice.
- Stop: ``drain`` stops the poller and tells the job actors ``Drain``; ``cleanup`` stops
  the poller and the job actors. The writer is stopped last, by the engine (after the job
  actors' final outcomes reached it): ``writer_ref`` hands it over.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any

import pykka

from datagems.actors.base import Actor, Slots
from datagems.actors.job import JobActor
from datagems.actors.messages import (
    CancelJob,
    ChildFailed,
    Drain,
    JobEnded,
    StartJob,
    Tick,
    WriterRestarted,
)
from datagems.actors.record import CallLoop
from datagems.actors.writer import CStoreWriter
from datagems.services import Services

if TYPE_CHECKING:
    from datagems.actors.poller import Poller

logger = logging.getLogger(__name__)
RESTART_BUDGET = 5
RESTART_WINDOW_SECONDS = 600.0
GIVE_UP_SECONDS = 300.0


def work_key(job_id: str, owner: str | None) -> str:
    """``job`` for this peer's own range, ``job@peer`` for a takeover of ``peer``'s."""
    return job_id if owner is None else f"{job_id}@{owner}"


class Supervisor(Actor):
    def __init__(self, services: Services, slots: Slots, calls: CallLoop) -> None:
        super().__init__()
        self.services = services
        self.slots = slots
        self.calls = calls
        self.writer: pykka.ActorRef[CStoreWriter] | None = None
        self.jobs: dict[str, pykka.ActorRef[JobActor]] = {}
        self.failures: dict[str, deque[float]] = defaultdict(deque)
        self.not_before: dict[str, float] = {}
        self.poller: pykka.ActorRef[Poller] | None = None
        self.stopping = False

    def start_up(self) -> None:
        self._start_writer()

    def on_receive(self, message: Any) -> None:
        match message:
            case StartJob():
                self._start_job(message.job_id, message.owner)
            case CancelJob():
                for key, ref in self.jobs.items():
                    if key.split("@")[0] == message.job_id:
                        with contextlib.suppress(pykka.ActorDeadError):  # ending meanwhile
                            ref.tell(message)
            case JobEnded():
                self.jobs.pop(work_key(message.job_id, message.owner), None)
            case ChildFailed():
                self._child_failed(message)
            case Tick():
                if self.writer is None and not self.stopping:
                    self._start_writer()
                if self.poller is None and not self.stopping:
                    self.start_poller()

    # -- commands (by proxy, from the engine) ------------------------------------------
    def start_poller(self) -> None:
        from datagems.actors.poller import Poller

        if self._cooling("poller"):
            return
        self.poller = Poller.start(self.services, self.actor_ref)

    def drain(self) -> int:
        """Stop polling and stop starting records; returns the number of running jobs."""
        self.stopping = True
        if self.poller is not None:
            self.poller.stop(block=False)
            self.poller = None
        for ref in self.jobs.values():
            ref.tell(Drain())
        return len(self.jobs)

    def running_jobs(self) -> list[str]:
        return sorted(self.jobs)

    def job_refs(self) -> list[pykka.ActorRef[Any]]:
        return list(self.jobs.values())

    def writer_ref(self) -> pykka.ActorRef[CStoreWriter] | None:
        """The writer now (None while it is being restarted): the engine stops it last."""
        return self.writer

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        super().on_failure(exception_type, exception_value, traceback)
        if self.writer is not None:  # the engine cannot ask a dead supervisor for it
            self.writer.stop(block=False)  # it flushes what it holds as it stops

    def cleanup(self) -> None:
        self.stopping = True
        if self.poller is not None:
            self.poller.stop(block=False)
        for ref in list(self.jobs.values()):
            ref.stop(block=False)  # the engine waits for them, outside any actor
        self.jobs.clear()

    # -- internals ---------------------------------------------------------------------
    def _cooling(self, key: str) -> bool:
        return time.monotonic() < self.not_before.get(key, 0.0)

    def _start_writer(self) -> None:
        if self._cooling("writer"):
            return
        self.writer = CStoreWriter.start(self.services, supervisor=self.actor_ref)
        if self.jobs:  # they hold the dead writer's ref (none do at the first start)
            logger.warning("writer restarted: %d job actors reopen their ranges", len(self.jobs))
            for ref in self.jobs.values():
                ref.tell(WriterRestarted(writer=self.writer))

    def _start_job(self, job_id: str, owner: str | None) -> None:
        key = work_key(job_id, owner)
        if self.stopping or self.writer is None or key in self.jobs or self._cooling(key):
            return
        if len(self.jobs) >= self.services.settings.max_concurrent_jobs:
            return
        self.jobs[key] = JobActor.start(
            self.services,
            job_id,
            supervisor=self.actor_ref,
            writer=self.writer,
            slots=self.slots,
            calls=self.calls,
            owner=owner,
        )

    def _child_failed(self, message: ChildFailed) -> None:
        key = message.kind
        if message.kind == "job" and message.job_id:
            key = work_key(message.job_id, message.owner)
            self.jobs.pop(key, None)
        if message.kind == "poller":
            self.poller = None
        if message.kind == "writer":
            self.writer = None  # job actors drop what they tell it until the successor
        now = time.monotonic()
        history = self.failures[key]
        history.append(now)
        while history and history[0] < now - RESTART_WINDOW_SECONDS:
            history.popleft()
        if len(history) > RESTART_BUDGET:
            delay = GIVE_UP_SECONDS
            logger.error(
                "%s failed %d times: pausing it for %.0fs (%s)",
                key,
                len(history),
                delay,
                message.error,
            )
        else:
            delay = min(60.0, 2.0 ** (len(history) - 1))
            logger.warning("%s failed (%s); restart in %.0fs", key, message.error, delay)
        self.not_before[key] = now + delay
