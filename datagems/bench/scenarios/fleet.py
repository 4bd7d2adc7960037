"""Scenario 3: fleet scaling: one job over 1, 2 and more replicas."""

from __future__ import annotations

import time

from datagems.bench.procs import Deadline, Stack
from datagems.bench.scenarios.base import IN_FLIGHT, Context, Scenario
from datagems.bench.scenarios.probes import (
    GatewayWatcher,
    confirm,
    job_seconds,
    open_services,
    replica_knobs,
    wait_finished,
)
from datagems.job.state import JobView


def _fleet_run(
    ctx: Context, deadline: Deadline, name: str, peers: list[str], n: int
) -> tuple[float, JobView, str]:
    s = ctx.sizes
    with Stack(ctx.work / name, ctx.logs, deadline) as stack:
        stack.peers = peers
        stack.devnode()
        gateways = []
        for peer in peers:
            gateway = stack.mock_llm(
                latency_ms=s.s3_latency_ms, max_concurrency=s.s3_gateway_cap, name=f"mock-{peer}"
            )
            gateways.append(gateway)
            stack.replica(peer, gateway, replica_knobs())
        services = open_services(stack)
        try:
            with GatewayWatcher(gateways, n) as calls:
                started = time.perf_counter()
                job_id = confirm(services, n)
                view = wait_finished(services, job_id, deadline)
                wall = time.perf_counter() - started
        finally:
            services.close()
    seconds = job_seconds(view) or wall
    return view.job.total_ok / seconds, view, f"{len(peers)} replica(s): {calls.phases(view)}"


def fleet_scaling(ctx: Context, deadline: Deadline) -> Scenario:
    s = ctx.sizes
    per = s.s3_records_per_replica
    sc = Scenario("3", "Fleet scaling: 3 replicas vs 1, the gateway as the bottleneck")
    sc.settings = {
        "recordsPerReplica": per,
        "latencyMs": s.s3_latency_ms,
        "gatewayMaxConcurrency": s.s3_gateway_cap,
        "gateways": "one mock-llm per replica (each edge node has its own)",
        "C": IN_FLIGHT,
        "devnodes": 1,
    }
    one, _, phases_one = _fleet_run(ctx, deadline, "s3-one", ["a"], per)
    three, _, phases_three = _fleet_run(ctx, deadline, "s3-three", ["a", "b", "c"], per * 3)
    sc.notes += [phases_one, phases_three]
    cap = s.s3_gateway_cap / (s.s3_latency_ms / 1000)
    sc.add("gateway cap / L per replica", cap, "rec/s")
    sc.add("1 replica", one, "rec/s")
    sc.add("3 replicas", three, "rec/s")
    speedup = three / one if one else None
    sc.add("speed-up", speedup, "x", ">= 2.7", speedup is not None and speedup >= 2.7)
    return sc
