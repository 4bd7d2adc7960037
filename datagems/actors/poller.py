"""Poller: every ``DATAGEN_JOB_POLL_SECONDS``, finds the jobs with work for this peer.

One ``hgetall`` of the jobs hash and one of the cancel requests per poll, plus one
``hget`` of this peer's state for each unfinished job it has not seen finish here. It
asks the supervisor to start a job actor (the supervisor enforces the per-replica cap)
and forwards cancel requests. It never waits on another actor.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pykka

from datagems.actors.base import Actor, Ticker
from datagems.actors.messages import CancelJob, ChildFailed, StartJob, Tick
from datagems.errors import StoreError
from datagems.models import TERMINAL_STATUSES
from datagems.services import Services

logger = logging.getLogger(__name__)


class Poller(Actor):
    def __init__(self, services: Services, supervisor: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.services = services
        self.peer = services.settings.host_addr
        self.supervisor = supervisor
        self.done_here: set[str] = set()  # jobs whose slice this peer has uploaded
        self._ticker: Ticker | None = None

    def on_start(self) -> None:
        self._ticker = Ticker(self.actor_ref, Tick(), self.services.settings.job_poll_seconds)
        self._ticker.start()
        self.actor_ref.tell(Tick())

    def cleanup(self) -> None:
        if self._ticker:
            self._ticker.stop()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        super().on_failure(exception_type, exception_value, traceback)
        with contextlib.suppress(pykka.ActorDeadError):
            self.supervisor.tell(ChildFailed(kind="poller", error=str(exception_value)[:200]))

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Tick):
            try:
                self.poll()
            except StoreError as exc:
                logger.warning("poll skipped: %s", exc)

    def poll(self) -> None:
        services = self.services
        jobs = services.jobs.all()
        cancels = services.cancels.all()
        for job_id, job in jobs.items():
            if self.peer not in job.peers or job_id in self.done_here:
                continue
            # a cancelled job still needs this peer to stop and upload what it has done
            if job.status in TERMINAL_STATUSES and job_id not in cancels:
                continue
            state = services.peers.get(job_id, self.peer)
            if state is None:
                continue
            if state.result_cid:
                self.done_here.add(job_id)
                continue
            if job_id in cancels:
                self.supervisor.tell(CancelJob(job_id=job_id))
            self.supervisor.tell(StartJob(job_id=job_id))
