"""Engine: the actors of one replica, started and stopped in an explicit order.

start: call loop -> supervisor -> writer and poller (started, and restarted, by the
       supervisor).
stop:  poller stops, job actors stop starting records, in-flight records get
       ``DATAGEN_SHUTDOWN_GRACE_SECONDS`` to finish (their outcomes are written), then the
       job actors stop (abandoning what is left: it is redone on the next start), the
       supervisor stops, the call loop stops, and the writer flushes and stops last.
Blocking waits happen only here, at boot and shutdown, never inside an actor.
"""

from __future__ import annotations

import contextlib
import logging
import time

import pykka

from datagems.actors.base import Slots, Ticker
from datagems.actors.messages import Tick
from datagems.actors.record import CallLoop
from datagems.actors.supervisor import Supervisor
from datagems.actors.writer import CStoreWriter
from datagems.services import Services

logger = logging.getLogger(__name__)
SUPERVISOR_TICK_SECONDS = 1.0


class Engine:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.slots = Slots(services.settings.max_in_flight)
        self.calls = CallLoop()
        self.supervisor: pykka.ActorRef[Supervisor] | None = None
        self._ticker: Ticker | None = None

    def start(self) -> Engine:
        self.calls.start()
        self.supervisor = Supervisor.start(self.services, self.slots, self.calls)
        self.supervisor.proxy().start_poller().get()
        self._ticker = Ticker(self.supervisor, Tick(), SUPERVISOR_TICK_SECONDS).start()
        return self

    def stop(self, grace: float | None = None) -> None:
        grace = self.services.settings.shutdown_grace_seconds if grace is None else grace
        started = time.monotonic()
        if self._ticker:
            self._ticker.stop()
        writer: pykka.ActorRef[CStoreWriter] | None = None
        if self.supervisor is not None:
            try:
                running = self.supervisor.proxy().drain().get(timeout=10)
                writer = self.supervisor.proxy().writer_ref().get(timeout=10)  # final now
                if running and not self.slots.wait_idle(grace):
                    logger.warning(
                        "abandoning %d records in flight after %.1fs", self.slots.used, grace
                    )
                children = self.supervisor.proxy().job_refs().get(timeout=10)
                self.supervisor.stop(block=True, timeout=30)
                for ref in children:  # its own: other engines of this process keep theirs
                    with contextlib.suppress(pykka.ActorDeadError):  # it ended meanwhile
                        ref.stop(block=True, timeout=10)
            except (pykka.ActorDeadError, pykka.Timeout) as exc:
                logger.warning("supervisor did not stop cleanly: %s", exc)
        self.calls.stop()
        if writer is not None:
            try:
                writer.stop(block=True, timeout=30)
            except (pykka.ActorDeadError, pykka.Timeout) as exc:
                logger.warning("writer did not stop cleanly: %s", exc)
        logger.info("engine stopped in %.2fs", time.monotonic() - started)
