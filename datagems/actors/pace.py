"""LatencyPacer: a job's in-flight level follows the server's queueing, not only errors.

A server that runs one request at a time answers the k-th of n concurrent calls after k
generation times: the queue sits inside the server, and error-driven pacing (``Slots``)
never sees it. Each answer's latency per output token is compared with the lowest seen
recently (the baseline: the server's own speed, no queue), and with the lowest latency
per call: an answer is expected to take the larger of the two (a short answer costs a
server's fixed overhead, a long one its tokens), so a gateway whose latency does not
grow with tokens is not read as queueing.

Latency alone cannot tell whose queue it is. The replica's own call loop adds delay too:
hundreds of records share one asyncio loop, and on a loaded machine an answer waits for
the loop (lag, other records' parsing and validation) before it is read — that delay
grows with the in-flight level exactly as a server's queue does. What tells them apart is
throughput: a server that queues completes as many calls per second with fewer in flight,
while a client that merely adds delay completes fewer. So a cut is a **trial**:

- when an answer took more than ``TOLERANCE`` times what was expected, the level is cut to
  what would have kept it there (``in flight at its start * TOLERANCE / ratio``: a server
  with c slots and n calls queues n / c deep), and the completions per second of the last
  answers before the cut are kept;
- once the calls started under the new level answer (``TRIAL_ANSWERS`` of them, or two
  levels' worth), their completions per second are compared with those: if they held
  (``>= (new / old) ** HELD_EXPONENT`` of before: flat for a server's queue, in
  proportion for a client's delay, this is a quarter of the way in log scale) the server
  queues and the cut stays; if they fell, the latency was the replica's own — the level
  goes back to where it was, and further cuts wait (``HOLD_SECONDS``, doubling with each
  refuted trial, up to ``HOLD_CAP_SECONDS``); a confirmed cut resets that;
- no cut is tried before ``TRIAL_ANSWERS`` answers (there is nothing to compare with),
  none while a trial runs, and the level does not grow during one.

Otherwise the level grows by one per level's worth of answers, up to the cap
(``DATAGEN_MAX_IN_FLIGHT_PER_JOB``). A one-slot server settles at one or two calls in
flight; a server with many slots stays at the cap, loaded replica or not.

Where it starts: at the level remembered for the server (``Capability.in_flight``, the
level the last job on it ended at); for a server never seen, a user's OpenAI-compatible
endpoint (often one model on one machine) starts at ``SLOW_START`` and doubles each
round trip while the latency stays at the baseline (slow start), and the Ratio1 gateway
starts at the cap (a node's serving stack queues for itself).

Records report from the call loop's thread; the job actor reads ``level`` from its own:
a lock keeps them apart. ``snapshot()`` is what the job page shows (level, cap, reason).
The clock is injectable so the rules are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TOLERANCE = 1.5
BASELINE_WINDOW = 64
SLOW_START = 2
TRIAL_ANSWERS = 8  # answers a completion rate is measured over, at least
HELD_EXPONENT = 0.25  # completions "held" after a cut new/old: >= (new/old) ** this of before
HOLD_SECONDS = 1.0  # after a refuted trial, no cut for this long (doubling, capped)
HOLD_CAP_SECONDS = 60.0
ANSWER_TIMES = 512  # answer times kept for the completion rate before a cut
LAG_TICK_SECONDS = 0.02  # the call loop's timer for its lag, while a job runs
LAG_SPANS = 4096  # late spans kept (a minute and more of ticks)


class LoopLag:
    """When the call loop ran late: a timer on the loop every ``LAG_TICK_SECONDS``, and the
    spans between when it was due and when it ran (the loop busy with other records'
    parsing and validation, or the machine's other processes holding the CPU).

    An answer that reaches a late loop waits for it before its record reads it, so its
    latency holds the loop's lateness. ``late_ms(start, end)`` is how long the loop was
    late while a call was out (spans that ended, and the one still open now);
    ``LatencyPacer`` takes it off the call's latency to keep the server's part. Everything
    here runs on the call loop's thread, as do the records that ask.
    """

    def __init__(self, tick: float = LAG_TICK_SECONDS) -> None:
        self.tick = tick
        self.due: float | None = None  # when the timer should run next
        self.spans: deque[tuple[float, float]] = deque(maxlen=LAG_SPANS)

    def late_ms(self, start: float, end: float) -> float:
        late = 0.0
        if self.due is not None and end > self.due:  # late now: the timer has not run yet
            late += end - max(self.due, start)
        for begun, ended in reversed(self.spans):
            if ended <= start:
                break
            late += max(0.0, min(ended, end) - max(begun, start))
        return late * 1000

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.due = due = loop.time() + self.tick
            await asyncio.sleep(self.tick)
            ran = loop.time()
            if ran - due > 0.0005:
                self.spans.append((due, ran))


@dataclass
class _Trial:
    """A cut being tried: the level it came from, the completion rate there."""

    from_level: float
    rate_before: float
    ratio: float
    cut_at: float
    started: float | None = None  # time of the first answer of a call started under the cut
    answers: int = 0  # answers since then


class LatencyPacer:
    def __init__(
        self,
        cap: int,
        start: int | None = None,
        *,
        why: str = "",
        clock: Callable[[], float] = time.monotonic,
        lag: LoopLag | None = None,
    ) -> None:
        self.cap = max(1, cap)
        self.level = float(min(self.cap, start)) if start else float(self.cap)
        self.slow_start = self.level < self.cap
        self.reason = why or ("starting at the cap" if not self.slow_start else "slow start")
        self.ratio: float | None = None
        self.baseline: float | None = None
        self._recent: deque[float] = deque(maxlen=BASELINE_WINDOW)
        self._latencies: deque[float] = deque(maxlen=BASELINE_WINDOW)
        self._answered: deque[float] = deque(maxlen=ANSWER_TIMES)
        self._clock = clock
        self._lag = lag
        self.lag_ms = 0.0  # how late the call loop was during the last answer's call
        self._lock = threading.Lock()
        self._trial: _Trial | None = None
        self._hold_until = 0.0
        self._refuted = 0  # refuted trials in a row
        self._floor = 0.0  # no cut below this: halfway (log scale) to the last refuted trial
        self.calls = 0  # calls of this job in flight now (the call loop counts them)
        self.observed = 0  # answers seen
        self.trials = {"confirmed": 0, "refuted": 0}
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
            now = self._clock()
            self.observed += 1
            self._answered.append(now)
            before = (int(self.level), self.reason)
            call_start = now - latency_ms / 1000
            self.lag_ms = self._lag.late_ms(call_start, now) if self._lag else 0.0
            latency_ms = max(latency_ms - self.lag_ms, 0.1)  # the server's part
            self._recent.append(latency_ms / tokens)
            self._latencies.append(latency_ms)
            self.baseline = min(self._recent)
            expected = max(self.baseline * tokens, min(self._latencies))
            ratio = latency_ms / expected if expected > 0 else 1.0
            self.ratio = ratio
            holding = now < self._hold_until  # the latency was just shown to be ours
            if self._trial is not None:
                self._judge(now, call_start)
            elif ratio > TOLERANCE:
                if not holding:
                    self._queueing(now, ratio, in_flight)
            elif self.level < self.cap:
                step = 1.0 if self.slow_start else 1.0 / self.level
                self.level = min(float(self.cap), self.level + step)
                if not holding:
                    self.reason = "latency at the baseline: raising"
            elif self.reason != "at the cap" and not holding:
                self.reason = "at the cap"
            if (int(self.level), self.reason) != before:
                self.version += 1

    def _queueing(self, now: float, ratio: float, in_flight: int) -> None:
        """An answer took ``ratio`` times what was expected: try a cut, unless one was just
        refuted or there is nothing yet to compare the completions with."""
        target = max(1.0, self._floor, max(1, in_flight) * TOLERANCE / ratio)
        self.slow_start = False
        if int(target) >= int(self.level):
            return
        rate = self._rate(max(TRIAL_ANSWERS, int(self.level)))
        if rate is None:
            return
        self._trial = _Trial(from_level=self.level, rate_before=rate, ratio=ratio, cut_at=now)
        self.level = target
        self.reason = f"latency {ratio:.1f}x the server's baseline: testing whether it queues"

    def _judge(self, now: float, call_start: float) -> None:
        """A trial runs: count the answers from the first of a call started under the cut,
        then compare their completions per second with those before it."""
        trial = self._trial
        assert trial is not None
        if trial.started is None:
            if call_start < trial.cut_at:
                return  # a call from before the cut
            trial.started = now
        trial.answers += 1
        wanted = max(TRIAL_ANSWERS, 2 * int(self.level))
        if trial.answers < wanted:
            return
        self._trial = None
        rate = self._per_second(trial.answers, trial.started, now)
        share = int(self.level) / int(trial.from_level)
        if rate is None or rate >= trial.rate_before * share**HELD_EXPONENT:
            self.trials["confirmed"] += 1
            self._refuted = 0
            self._floor = 0.0
            self.reason = (
                f"latency {trial.ratio:.1f}x the server's baseline and as many answers per "
                f"second with fewer in flight: it queues"
            )
            return
        self.trials["refuted"] += 1
        self._refuted += 1
        hold = min(HOLD_CAP_SECONDS, HOLD_SECONDS * 2 ** (self._refuted - 1))
        self._hold_until = now + hold
        self._floor = (self.level * trial.from_level) ** 0.5  # the next trial cuts less deep
        self.level = trial.from_level
        self.reason = (
            f"latency {trial.ratio:.1f}x the baseline, but fewer answers per second with "
            f"fewer in flight ({rate:.0f} vs {trial.rate_before:.0f}/s): the delay is this "
            f"replica's, not the server's queue"
        )

    def _rate(self, answers: int) -> float | None:
        """Answers per second over the last ``answers`` answers (None: too few, no time)."""
        times = self._answered
        n = min(len(times), answers)
        if n < TRIAL_ANSWERS:
            return None
        return self._per_second(n, times[-n], times[-1])

    def _per_second(self, answers: int, first: float, last: float) -> float | None:
        """``answers`` answers from ``first`` to ``last``, per second of the time the call
        loop was not late (a stall of the replica is not the server's pace either; at
        least a quarter of the time counts)."""
        elapsed = last - first
        if elapsed <= 0:
            return None
        late = self._lag.late_ms(first, last) / 1000 if self._lag else 0.0
        return (answers - 1) / max(elapsed - late, elapsed / 4)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "level": max(1, int(self.level)),
                "cap": self.cap,
                "reason": self.reason,
                "latencyRatio": round(self.ratio, 2) if self.ratio is not None else None,
                "trials": dict(self.trials),
                "loopLagMs": round(self.lag_ms, 1),
            }
