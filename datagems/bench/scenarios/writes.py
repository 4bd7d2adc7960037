"""Scenario 4: CStore writes per record and per job."""

from __future__ import annotations

import math

import httpx

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
from datagems.store import keys


def cstore_writes(ctx: Context, deadline: Deadline) -> Scenario:
    s = ctx.sizes
    n = s.s4_records
    peers = ["a", "b", "c"]
    k = 5
    sc = Scenario("4", "CStore writes per peer per job vs ceil(N/K)")
    sc.settings = {
        "N": n,
        "K": k,
        "progressFlushSeconds": 1.0,
        "latencyMs": 50,
        "C": IN_FLIGHT,
        "replicas": 3,
        "cstoreDelayMs (second run)": s.s4_cstore_delay_ms,
    }
    rates: list[float] = []
    call_rates: list[float | None] = []
    with Stack(ctx.work / "s4", ctx.logs, deadline) as stack:
        stack.peers = peers
        stack.devnode()
        gateway = stack.mock_llm(latency_ms=50)
        knobs = replica_knobs(DATAGEN_UPDATE_EVERY_K_REQUESTS=k, DATAGEN_PROGRESS_FLUSH_SECONDS="1")
        for peer in peers:
            stack.replica(peer, gateway, knobs)
        services = open_services(stack)
        try:
            for delay in (0, s.s4_cstore_delay_ms):
                httpx.post(
                    f"{stack.cstore_url}/__devnode/faults", json={"delayMs": delay}, timeout=10
                ).raise_for_status()
                with GatewayWatcher([gateway], n) as calls:
                    job_id = confirm(services, n)
                    view = wait_finished(services, job_id, deadline)
                seconds = job_seconds(view) or 1.0
                rates.append(view.job.total_ok / seconds)
                call_rates.append(calls.rate)
                sc.notes.append(f"CStore delay {delay} ms: {calls.phases(view)}")
                if delay == 0:
                    writes = stack.devnode_stats()["writes"].get(keys.job_peers(job_id), {})
                    sizes = {p: st.assigned for p, st in view.peers.items()}
            httpx.post(f"{stack.cstore_url}/__devnode/faults", json={}, timeout=10)
        finally:
            services.close()
    worst_excess = None
    for peer in peers:
        bound = math.ceil(sizes[peer] / k) + 10
        count = writes.get(peer, 0)
        excess = count - bound
        worst_excess = excess if worst_excess is None else max(worst_excess, excess)
        sc.add(
            f"writes by peer {peer} (ceil({sizes[peer]}/{k}) = {math.ceil(sizes[peer] / k)})",
            count,
            "",
            f"<= {bound}",
            count <= bound,
        )
    delay = s.s4_cstore_delay_ms
    sc.add("calls/s, CStore answering at once", call_rates[0], "rec/s")
    sc.add(f"calls/s, every CStore call +{delay} ms", call_rates[1], "rec/s")
    fast, slow = call_rates
    ratio = slow / fast if fast and slow else None
    sc.add(
        "calls/s slow / fast CStore (no write on a record's critical path)",
        ratio,
        "",
        ">= 0.90",
        ratio is not None and ratio >= 0.9,
    )
    sc.add("job records/s (start to last upload), fast CStore", rates[0], "rec/s")
    sc.add(f"job records/s (start to last upload), CStore +{delay} ms", rates[1], "rec/s")
    return sc
