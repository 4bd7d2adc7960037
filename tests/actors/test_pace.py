"""LatencyPacer: the in-flight level follows the server's queueing."""

from __future__ import annotations

from datagems.actors.pace import LatencyPacer


def serve_one_at_a_time(pacer: LatencyPacer, rounds: int, generation_ms: float = 100) -> None:
    """A one-slot server: with n calls in flight, each waits for the n - 1 before it."""
    for _ in range(rounds):
        in_flight = pacer.allowed
        for position in range(1, in_flight + 1):
            pacer.observe(generation_ms * position, 20, in_flight)


def test_a_one_slot_server_brings_the_level_down_to_about_one():
    pacer = LatencyPacer(16)
    serve_one_at_a_time(pacer, 10)
    levels = []
    for _ in range(30):
        serve_one_at_a_time(pacer, 1)
        levels.append(pacer.allowed)
    assert set(levels) <= {1, 2}  # between one and two calls, never sixteen again


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
