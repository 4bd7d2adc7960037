"""Supervisor: starts job actors on request, restarts failed children with backoff and a
budget, and stops everything it started.

- ``StartJob``: ignored when the job runs here already, is cooling off after a failure, or
  the replica is at ``DATAGEN_MAX_CONCURRENT_JOBS_PER_INSTANCE``; the poller asks again.
- ``ChildFailed``: a failed job actor may start again after a backoff (1 s, 2 s, 4 s...);
  past the budget (``RESTART_BUDGET`` failures in ``RESTART_WINDOW_SECONDS``) it waits
  ``GIVE_UP_SECONDS``. A failed poller is restarted the same way.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict, deque
from typing import Any

import pykka

from datagems.actors.base import Actor, Slots
from datagems.actors.job import JobActor
from datagems.actors.messages import CancelJob, ChildFailed, JobEnded, StartJob, Tick
from datagems.actors.record import CallLoop
from datagems.services import Services

logger = logging.getLogger(__name__)
RESTART_BUDGET = 5
RESTART_WINDOW_SECONDS = 600.0
GIVE_UP_SECONDS = 300.0


def work_key(job_id: str, owner: str | None) -> str:
    """``job`` for this peer's own range, ``job@peer`` for a takeover of ``peer``'s."""
    return job_id if owner is None else f"{job_id}@{owner}"


class Supervisor(Actor):
    def __init__(
        self, services: Services, writer: pykka.ActorRef[Any], slots: Slots, calls: CallLoop
    ) -> None:
        super().__init__()
        self.services = services
        self.writer = writer
        self.slots = slots
        self.calls = calls
        self.jobs: dict[str, pykka.ActorRef[Any]] = {}
        self.failures: dict[str, deque[float]] = defaultdict(deque)
        self.not_before: dict[str, float] = {}
        self.poller: pykka.ActorRef[Any] | None = None
        self.stopping = False

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
            ref.tell("drain")
        return len(self.jobs)

    def running_jobs(self) -> list[str]:
        return sorted(self.jobs)

    def job_refs(self) -> list[pykka.ActorRef[Any]]:
        return list(self.jobs.values())

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

    def _start_job(self, job_id: str, owner: str | None) -> None:
        key = work_key(job_id, owner)
        if self.stopping or key in self.jobs or self._cooling(key):
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
