"""Scenario 2: no fixed overhead: a tiny job costs about what its records cost."""

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
    share,
    wait_finished,
)


def no_fixed_overhead(ctx: Context, deadline: Deadline) -> Scenario:
    s = ctx.sizes
    n, latency = s.s2_records, s.s2_latency_ms
    ideal = IN_FLIGHT / (latency / 1000)
    sc = Scenario("2", "No fixed overhead: records/s vs C/L")
    sc.settings = {"N": n, "latencyMs": latency, "C": IN_FLIGHT, "replicas": 1}
    with Stack(ctx.work / "s2", ctx.logs, deadline) as stack:
        stack.peers = ["a"]
        stack.devnode()
        gateway = stack.mock_llm(latency_ms=latency)
        stack.replica("a", gateway, replica_knobs())
        services = open_services(stack)
        try:
            with GatewayWatcher([gateway], n) as calls:
                started = time.perf_counter()
                job_id = confirm(services, n)
                view = wait_finished(services, job_id, deadline)
                wall = time.perf_counter() - started
        finally:
            services.close()
    seconds = job_seconds(view) or wall
    rate = view.job.total_ok / seconds
    ratio = share(rate, ideal)
    sc.add("C/L", ideal, "rec/s")
    sc.add("replica", rate, "rec/s")
    sc.add("share of C/L", ratio, "", ">= 0.95", ratio is not None and ratio >= 0.95)
    sc.notes.append(
        f"{view.job.total_ok} ok in {seconds:.2f} s (ideal {n / ideal:.2f} s; "
        f"confirm to finished as seen by polling: {wall:.2f} s); {calls.phases(view)}"
    )
    sc.add("calls only (first to last at the gateway)", calls.rate, "rec/s")
    return sc
