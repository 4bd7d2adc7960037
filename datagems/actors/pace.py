"""LatencyPacer: a job's in-flight level follows the server's queueing, not only errors.

A server that runs one request at a time answers the k-th of n concurrent calls after k
generation times: the queue sits inside the server, and error-driven pacing (``Slots``)
never sees it. Each answer's latency per output token is compared with the lowest seen
recently (the baseline: the server's own speed, no queue). When a call took more than
``TOLERANCE`` times the baseline, the level is cut to what would have kept it there —
``in flight at its start * TOLERANCE / ratio`` (a server with c slots and n calls queues
n / c deep) — and otherwise it grows by one per level's worth of answers, up to the cap
(``DATAGEN_MAX_IN_FLIGHT_PER_JOB``). A one-slot server settles at one or two calls in
flight; a server with many slots stays at the cap.

Records report from the call loop's thread; the job actor reads ``level`` from its own:
a lock keeps them apart. ``snapshot()`` is what the job page shows (level, cap, reason).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

TOLERANCE = 1.5
BASELINE_WINDOW = 64


class LatencyPacer:
    def __init__(self, cap: int) -> None:
        self.cap = max(1, cap)
        self.level = float(self.cap)
        self.reason = "starting at the cap"
        self.ratio: float | None = None
        self.baseline: float | None = None
        self._recent: deque[float] = deque(maxlen=BASELINE_WINDOW)
        self._lock = threading.Lock()
        self.calls = 0  # calls of this job in flight now (the call loop counts them)
        self.version = 0  # bumped when the shown level or reason changes

    def call_started(self) -> int:
        """A call starts: the number in flight with it (for its ``observe``)."""
        with self._lock:
            self.calls += 1
            return self.calls

    def call_ended(self) -> None:
        with self._lock:
            self.calls = max(0, self.calls - 1)

    @property
    def allowed(self) -> int:
        with self._lock:
            return max(1, int(self.level))

    def observe(self, latency_ms: float, tokens_out: int | None, in_flight: int) -> None:
        """One answer: its latency, its output tokens, the calls in flight at its start."""
        cost = latency_ms / max(1, tokens_out or 1)
        with self._lock:
            before = (int(self.level), self.reason)
            self._recent.append(cost)
            self.baseline = min(self._recent)
            ratio = cost / self.baseline if self.baseline > 0 else 1.0
            self.ratio = ratio
            if ratio > TOLERANCE:
                target = max(1.0, max(1, in_flight) * TOLERANCE / ratio)
                if target < self.level:
                    self.level = target
                    self.reason = f"latency {ratio:.1f}x the server's baseline: it queues"
            elif self.level < self.cap:
                self.level = min(float(self.cap), self.level + 1.0 / self.level)
                self.reason = "latency at the baseline: raising"
            elif self.reason != "at the cap":
                self.reason = "at the cap"
            if (int(self.level), self.reason) != before:
                self.version += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "level": max(1, int(self.level)),
                "cap": self.cap,
                "reason": self.reason,
                "latencyRatio": round(self.ratio, 2) if self.ratio is not None else None,
            }
