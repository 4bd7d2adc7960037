"""Scenario 1: throughput of one replica against the load generator's limit of the same
gateway (what the machine allows)."""

from __future__ import annotations

import time

from datagems.bench.loadgen import measure_limit
from datagems.bench.procs import Deadline, Stack
from datagems.bench.scenarios.base import IN_FLIGHT, MB, Context, Scenario
from datagems.bench.scenarios.probes import (
    GatewayWatcher,
    RssSampler,
    confirm,
    cpu_seconds,
    details_for_limit,
    job_seconds,
    limit_of,
    open_services,
    replica_knobs,
    share,
    start_profile,
    stop_profile,
    wait_finished,
)


def throughput(ctx: Context, deadline: Deadline) -> Scenario:
    s = ctx.sizes
    n, latency = s.s1_records, s.s1_latency_ms
    sc = Scenario("1", "Throughput: one replica vs the aiohttp limit")
    sc.settings = {"N": n, "latencyMs": latency, "C": IN_FLIGHT, "replicas": 1}
    with Stack(ctx.work / "s1", ctx.logs, deadline) as stack:
        stack.peers = ["a"]
        stack.devnode()
        gateway = stack.mock_llm(latency_ms=latency)
        limit = measure_limit(gateway, details_for_limit(), n, IN_FLIGHT, deadline.left())
        limit_rate = limit_of(limit, n)
        proc, _ = stack.replica("a", gateway, replica_knobs())
        services = open_services(stack)
        try:
            cpu_before = cpu_seconds(proc.pid)
            with RssSampler(proc.pid) as rss, GatewayWatcher([gateway], n) as calls:
                profiler = start_profile(ctx, proc.pid, "s1-replica")
                started = time.perf_counter()
                job_id = confirm(services, n)
                view = wait_finished(services, job_id, deadline)
                wall = time.perf_counter() - started
                stop_profile(profiler)
            cpu = cpu_seconds(proc.pid) - cpu_before
        finally:
            services.close()
    seconds = job_seconds(view) or wall
    rate = view.job.total_ok / seconds
    ratio = share(rate, limit_rate)
    sc.add("limit (aiohttp, C in flight)", limit_rate, "rec/s")
    sc.add("replica", rate, "rec/s")
    sc.add(
        "share of the limit", ratio, "", ">= 0.60 (aim 0.80)", ratio is not None and ratio >= 0.6
    )
    sc.add("replica, calls only (first to last at the gateway)", calls.rate, "rec/s")
    sc.add("orchestration CPU per record", cpu / n * 1000, "ms")
    sc.add("replica peak RSS", rss.peak / MB, "MB")
    sc.notes.append(
        f"job {view.job.status}: {view.job.total_ok} ok, {view.job.total_failed} failed in "
        f"{seconds:.2f} s (confirm to finished as seen by polling: {wall:.2f} s); limit run "
        f"{limit.ok}/{limit.requests} ok in {limit.seconds:.2f} s; {calls.phases(view)}"
    )
    sc.notes.append(calls.pacing(view))
    return sc
