"""LatencyPacer: the in-flight level follows the server's queueing, not the replica's delay.

The pacer's clock is a fake one: ``simulate`` runs a discrete-event model of a server
(slots, time per call) and of the replica's call loop (lag added to each answer, CPU per
answer read one at a time), and advances the clock to each answer. No sleeps.
"""

from __future__ import annotations

import heapq
import random

from datagems.actors.pace import LatencyPacer, LoopLag


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(
    pacer: LatencyPacer | None,
    clock: FakeClock,
    *,
    slots: int,
    call_ms: float,
    lag_ms: float = 0.0,
    read_ms: float = 0.0,
    answers: int = 3000,
    in_flight: int = 64,
) -> tuple[float, list[int]]:
    """Keep the pacer's level of calls in flight (``in_flight`` without a pacer) against a
    server of ``slots`` slots taking ``call_ms`` per call, first come first served; each
    answer then waits up to ``lag_ms`` (the loop's lag) and ``read_ms`` of the loop's CPU.
    Returns answers per second and the level after each answer."""
    rng = random.Random(7)
    free = [0.0] * slots  # when each slot is free
    events: list[tuple[float, int, str, float, int]] = []
    loop_free = 0.0
    flying = done = seq = 0
    levels: list[int] = []

    def fill(now: float) -> None:
        nonlocal flying, seq
        while flying < (pacer.allowed if pacer else in_flight):
            flying += 1
            n = pacer.call_started() if pacer else flying
            end = max(now, heapq.heappop(free)) + call_ms / 1000
            heapq.heappush(free, end)
            seq += 1
            ready = end + rng.uniform(0, lag_ms) / 1000
            heapq.heappush(events, (ready, seq, "ready", now, n))

    fill(0.0)
    while done < answers:
        at, _, kind, started, n = heapq.heappop(events)
        clock.now = at
        if kind == "ready":  # the answer is in; the loop reads it when it is free
            loop_free = max(at, loop_free) + read_ms / 1000
            seq += 1
            heapq.heappush(events, (loop_free, seq, "read", started, n))
            continue
        flying -= 1
        done += 1
        if pacer:
            pacer.call_ended()
            pacer.observe((at - started) * 1000, 20, n)
            levels.append(pacer.allowed)
        fill(at)
    return done / clock.now, levels


def paced(
    cap: int, start: int | None = None, **server: float
) -> tuple[float, list[int], LatencyPacer]:
    clock = FakeClock()
    pacer = LatencyPacer(cap, start, clock=clock)
    rate, levels = simulate(pacer, clock, **server)  # type: ignore[arg-type]
    return rate, levels, pacer


def serve_one_at_a_time(pacer: LatencyPacer, clock: FakeClock, rounds: int) -> None:
    """A one-slot server, 100 ms per call: with n calls in flight, each waits for the n - 1
    before it."""
    for _ in range(rounds):
        in_flight = pacer.allowed
        started = clock.now
        for position in range(1, in_flight + 1):
            clock.now = started + 0.1 * position
            pacer.observe(100 * position, 20, in_flight)


def test_a_one_slot_server_brings_the_level_down_to_about_one():
    clock = FakeClock()
    pacer = LatencyPacer(16, clock=clock)
    serve_one_at_a_time(pacer, clock, 10)
    levels = []
    for _ in range(30):
        serve_one_at_a_time(pacer, clock, 1)
        levels.append(pacer.allowed)
    assert set(levels) <= {1, 2}  # between one and two calls, never sixteen again
    assert "queues" in pacer.snapshot()["reason"]


def test_a_one_slot_server_is_found_when_calls_overlap():
    rate, levels, pacer = paced(64, slots=1, call_ms=30, answers=400)
    assert max(levels[200:]) <= 2
    assert rate > 0.95 * 1000 / 30  # the server is kept busy all the same
    assert pacer.trials["confirmed"] >= 1


def test_a_one_slot_server_is_found_behind_a_lagging_replica():
    rate, levels, _ = paced(64, slots=1, call_ms=50, lag_ms=20, read_ms=1, answers=600)
    tail = levels[300:]
    assert sum(tail) / len(tail) <= 3  # a call or two, never the cap of 64 again
    assert rate > 0.8 * 1000 / 50


def test_a_lagging_replica_keeps_the_level_against_a_server_with_spare_slots():
    # latency 1-3x the baseline from the replica's own loop, and its CPU limits what it
    # reads: fewer calls in flight would only complete fewer per second
    server = {"slots": 10_000, "call_ms": 50, "lag_ms": 60, "read_ms": 1.2}
    fixed, _ = simulate(None, FakeClock(), **server)  # type: ignore[arg-type]
    rate, levels, pacer = paced(64, **server)
    assert rate >= 0.9 * fixed
    assert sum(levels) / len(levels) >= 56
    assert pacer.trials["refuted"] >= 1
    assert "replica" in pacer.snapshot()["reason"] or pacer.snapshot()["level"] == 64


def test_lag_alone_is_not_read_as_queueing():
    server = {"slots": 10_000, "call_ms": 50, "lag_ms": 100}
    fixed, _ = simulate(None, FakeClock(), **server)  # type: ignore[arg-type]
    rate, levels, _ = paced(64, **server)
    assert rate >= 0.85 * fixed
    assert sum(levels) / len(levels) >= 56  # trials to fewer, undone


def test_a_server_with_a_few_slots_is_kept_busy():
    server = {"slots": 8, "call_ms": 50, "answers": 2000}
    rate, levels, _ = paced(64, **server)  # type: ignore[arg-type]
    assert rate >= 0.95 * 8 / 0.05
    assert max(levels[1000:]) < 32  # most of sixty-four calls would only have waited


def test_a_server_with_many_slots_keeps_the_cap():
    pacer = LatencyPacer(16)
    for _ in range(200):
        pacer.observe(100, 20, 16)
    assert pacer.allowed == 16 and pacer.snapshot()["reason"] == "at the cap"


def test_slow_start_doubles_while_the_latency_stays_at_the_baseline():
    pacer = LatencyPacer(32, 2)
    levels = []
    for _ in range(4):
        level = pacer.allowed
        for _ in range(level):
            pacer.observe(100, 20, level)
        levels.append(pacer.allowed)
    assert levels == [4, 8, 16, 32]


def test_latency_is_compared_per_output_token():
    pacer = LatencyPacer(8)
    for tokens in (10, 40, 20, 80) * 10:  # long answers take longer: not queueing
        pacer.observe(10.0 * tokens, tokens, 8)
    assert pacer.allowed == 8


def test_a_gateway_whose_latency_does_not_grow_with_tokens_keeps_the_cap():
    pacer = LatencyPacer(64)
    for tokens in (30, 90, 45, 60, 75) * 40:  # a fixed overhead, whatever the length
        pacer.observe(50.0 + tokens % 7, tokens, 64)
    assert pacer.allowed == 64


def test_the_time_the_call_loop_was_late_is_not_the_servers():
    # a server answering in 50 ms; the loop stalled 0-400 ms while some calls were out
    clock = FakeClock()
    lag = LoopLag()
    pacer = LatencyPacer(64, clock=clock, lag=lag)
    rng = random.Random(3)
    for _ in range(2000):
        stall = rng.choice([0.0, 0.0, 0.0, rng.uniform(0.05, 0.4)])
        start = clock.now
        if stall:
            lag.spans.append((start + 0.01, start + 0.01 + stall))
        clock.now = start + 0.05 + stall + rng.uniform(0, 0.002)
        pacer.observe((clock.now - start) * 1000, 20, 64)
        clock.now += 0.001
    assert pacer.allowed == 64 and pacer.trials == {"confirmed": 0, "refuted": 0}
    assert pacer.snapshot()["reason"] == "at the cap"


def test_loop_lateness_counts_only_while_the_call_was_out():
    lag = LoopLag()
    lag.spans.extend([(1.0, 1.2), (2.0, 2.5)])
    lag.due = 3.0  # due at 3.0, not run yet
    assert lag.late_ms(0.0, 0.9) == 0
    assert round(lag.late_ms(1.1, 2.1)) == 200  # 0.1 of the first span, 0.1 of the second
    assert round(lag.late_ms(2.9, 3.25)) == 250  # late since 3.0, still open
