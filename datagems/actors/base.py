"""What every actor shares: ``ping()``, cleanup on both stop paths, and a ticker thread."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pykka

from datagems.errors import DatagemsError

logger = logging.getLogger(__name__)


class Actor(pykka.ThreadingActor):
    """Base actor. Cleanup lives in ``cleanup()``, called from ``on_stop`` and ``on_failure``
    (pykka skips ``on_stop`` when an actor dies from an exception).

    Set-up goes in ``start_up()``: pykka does not call ``on_failure`` when ``on_start``
    raises, so this base does. An expected failure (a ``DatagemsError``: the store is down,
    a file is missing) is logged at WARNING and the actor stops; a surprise is re-raised
    for pykka to log with its traceback."""

    use_daemon_thread = True

    def ping(self) -> str:
        return "pong"

    def start_up(self) -> None:
        """Set-up, in the actor's thread, before the first message."""

    def on_start(self) -> None:
        try:
            self.start_up()
        except DatagemsError as exc:
            logger.warning("%s could not start: %s", type(self).__name__, exc)
            self.on_failure(type(exc), exc, exc.__traceback__)
            self.stop()
        except Exception as exc:
            self.on_failure(type(exc), exc, exc.__traceback__)
            raise

    def cleanup(self) -> None:
        """Release what the actor holds. Must be safe to call twice."""

    def on_stop(self) -> None:
        self.cleanup()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.cleanup()


class Ticker:
    """A daemon thread that ``tell``s an actor a message every ``interval`` seconds."""

    def __init__(self, ref: pykka.ActorRef[Any], message: Any, interval: float) -> None:
        self._ref = ref
        self._message = message
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ticker")

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._ref.tell(self._message)
            except pykka.ActorDeadError:
                return

    def stop(self) -> None:
        self._stop.set()


class Slots:
    """The replica-wide cap on records in flight (``DATAGEN_MAX_IN_FLIGHT``), thread-safe,
    with an adaptive level under it (AIMD) so a struggling gateway is not hammered.

    Job actors take a slot before starting a record and give it back with the outcome.
    Record actors report each call: a rate limit, a 5xx or a timeout halves the level (at
    most once a second); a success raises it by about one per level's worth of successes,
    back up to the cap. Nothing blocks on it except ``wait_idle`` at shutdown.
    """

    BACKOFF_INTERVAL_SECONDS = 1.0

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.level = float(capacity)
        self._used = 0
        self._last_cut = 0.0
        self._cond = threading.Condition()

    def try_acquire(self) -> bool:
        with self._cond:
            if self._used >= max(1, int(self.level)):
                return False
            self._used += 1
            return True

    def release(self, count: int = 1) -> None:
        with self._cond:
            self._used = max(0, self._used - count)
            self._cond.notify_all()

    def congested(self) -> None:
        now = time.monotonic()
        with self._cond:
            if now - self._last_cut >= self.BACKOFF_INTERVAL_SECONDS:
                self._last_cut = now
                self.level = max(1.0, self.level / 2)
                logger.warning("gateway struggling: in-flight level lowered to %d", self.level)

    def succeeded(self) -> None:
        with self._cond:
            if self.level < self.capacity:
                self.level = min(float(self.capacity), self.level + 1.0 / self.level)

    @property
    def used(self) -> int:
        return self._used

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._used == 0, timeout)
