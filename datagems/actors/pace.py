"""LatencyPacer: a job's in-flight level follows the server's queueing, not only errors.

A server that runs one request at a time answers the k-th of n concurrent calls after k
generation times: the queue sits inside the server, and error-driven pacing (``Slots``)
never sees it. Each answer's latency per output token is compared with the lowest seen
recently (the baseline: the server's own speed, no queue), and with the lowest latency
per call: an answer is expected to take the larger of the two (a short answer costs a
server's fixed overhead, a long one its tokens), so a gateway whose latency does not
grow with tokens is not read as queueing. When a call took more than ``TOLERANCE``
times what was expected, the level is cut to what would have kept it there —
``in flight at its start * TOLERANCE / ratio`` (a server with c slots and n calls queues
n / c deep) — and otherwise it grows by one per level's worth of answers, up to the cap
(``DATAGEN_MAX_IN_FLIGHT_PER_JOB``). A one-slot server settles at one or two calls in
flight; a server with many slots stays at the cap.

Where it starts: at the level remembered for the server (``Capability.in_flight``, the
level the last job on it ended at); for a server never seen, a user's OpenAI-compatible
endpoint (often one model on one machine) starts at ``SLOW_START`` and doubles each
round trip while the latency stays at the baseline (slow start), and the Ratio1 gateway
starts at the cap (a node's serving stack queues for itself).

Records report from the call loop's thread; the job actor reads ``level`` from its own:
a lock keeps them apart. ``snapshot()`` is what the job page shows (level, cap, reason).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

TOLERANCE = 1.5
BASELINE_WINDOW = 64
SLOW_START = 2


class LatencyPacer:
    def __init__(self, cap: int, start: int | None = None, *, why: str = "") -> None:
        self.cap = max(1, cap)
        self.level = float(min(self.cap, start)) if start else float(self.cap)
        self.slow_start = self.level < self.cap
        self.reason = why or ("starting at the cap" if not self.slow_start else "slow start")
        self.ratio: float | None = None
        self.baseline: float | None = None
        self._recent: deque[float] = deque(maxlen=BASELINE_WINDOW)
        self._latencies: deque[float] = deque(maxlen=BASELINE_WINDOW)
        self._lock = threading.Lock()
        self.calls = 0  # calls of this job in flight now (the call loop counts them)
        self.observed = 0  # answers seen
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
        tokens = max(1, tokens_out or 1)
        with self._lock:
            self.observed += 1
            before = (int(self.level), self.reason)
            self._recent.append(latency_ms / tokens)
            self._latencies.append(latency_ms)
            self.baseline = min(self._recent)
            expected = max(self.baseline * tokens, min(self._latencies))
            ratio = latency_ms / expected if expected > 0 else 1.0
            self.ratio = ratio
            if ratio > TOLERANCE:
                target = max(1.0, max(1, in_flight) * TOLERANCE / ratio)
                self.slow_start = False
                if target < self.level:
                    self.level = target
                    self.reason = f"latency {ratio:.1f}x the server's baseline: it queues"
            elif self.level < self.cap:
                step = 1.0 if self.slow_start else 1.0 / self.level
                self.level = min(float(self.cap), self.level + step)
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
