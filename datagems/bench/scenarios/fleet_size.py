"""Scenario "fleet size" (issue 18): what each replica of a 10-replica fleet asks of one
CStore node, idle and while the fleet runs one job.

Ten replicas at their defaults (poll every 5 s, progress at most every second, heartbeat
every 20 s) on one devnode, one mock-llm. The devnode counts every CStore request
(``GET /__devnode/stats``, reset before each window): over an idle window, then from the
job's confirm to its end (one job of ``records`` records split over the ten). Per replica =
the fleet's count / replicas / seconds (every replica does the same work).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx

from datagems.bench.procs import Deadline, Stack, wait_until
from datagems.bench.scenarios.base import OWNER, SCHEMA, Context, Scenario
from datagems.bench.scenarios.probes import open_services, wait_finished
from datagems.job import lifecycle


@dataclass(frozen=True)
class FleetSizes:
    replicas: int
    poll_seconds: float  # the replicas' DATAGEN_JOB_POLL_SECONDS (5: their default)
    idle_seconds: float
    records: int
    latency_ms: float
    bound_seconds: float

    @classmethod
    def for_run(cls, quick: bool) -> FleetSizes:
        if quick:
            return cls(
                replicas=2,
                poll_seconds=1.0,
                idle_seconds=1.0,
                records=60,
                latency_ms=20,
                bound_seconds=120,
            )
        return cls(
            replicas=10,
            poll_seconds=5.0,
            idle_seconds=30.0,
            records=8000,
            latency_ms=200,
            bound_seconds=420,
        )


def counted(stack: Stack) -> Counter[str]:
    """Requests the devnode received since its last reset, by path."""
    return Counter({p: int(n) for p, n in stack.devnode_stats()["requests"].items()})


def reset(stack: Stack) -> None:
    httpx.delete(f"{stack.cstore_url}/__devnode/stats", timeout=10).raise_for_status()


def fleet_size(ctx: Context, deadline: Deadline) -> Scenario:
    sizes = FleetSizes.for_run(ctx.sizes.quick)
    k = sizes.replicas
    sc = Scenario("fleet-size", f"Fleet size: CStore requests per replica, {k} replicas")
    sc.settings = {
        "replicas": k,
        "pollSeconds": sizes.poll_seconds,
        "idleWindowSeconds": sizes.idle_seconds,
        "job": f"N={sizes.records} over {k} replicas, L={sizes.latency_ms:g} ms, default C",
    }
    with Stack(ctx.work / "fleet-size", ctx.logs, deadline) as stack:
        stack.peers = [f"r{n}" for n in range(k)]
        stack.devnode()
        gateway = stack.mock_llm(latency_ms=sizes.latency_ms)
        knobs = {
            "DATAGEN_JOB_POLL_SECONDS": sizes.poll_seconds,
            "DATAGEN_LOG_LEVEL": "WARNING",
        }
        for peer in stack.peers:
            stack.replica(peer, gateway, knobs)
        services = open_services(stack)
        try:
            wait_until(
                lambda: len(services.replicas.all()) == k and services.index.meta(),
                deadline=deadline,
                interval=0.2,
                what="every replica to be up",
            )
            time.sleep(sizes.poll_seconds)  # the starts settle: every replica has polled
            reset(stack)
            began = time.perf_counter()
            time.sleep(sizes.idle_seconds)
            idle = counted(stack)
            idle_seconds = time.perf_counter() - began
            reset(stack)
            began = time.perf_counter()
            job_id = str(uuid.uuid4())
            draft = {"title": "Fleet", "totalRecords": sizes.records, "schema": SCHEMA}
            lifecycle.create_job(services, owner=OWNER, job_id=job_id, draft=draft)
            view = wait_finished(services, job_id, deadline, interval=0.5)
            running = counted(stack)
            running_seconds = time.perf_counter() - began
        finally:
            services.close()
    per_idle = sum(idle.values()) / k / idle_seconds
    per_running = sum(running.values()) / k / running_seconds
    sc.add("idle: CStore requests per replica", per_idle, "/s")
    sc.add("idle: CStore requests, whole fleet", sum(idle.values()) / idle_seconds, "/s")
    sc.add("one job running: CStore requests per replica", per_running, "/s")
    sc.add(
        "one job running: CStore requests, whole fleet",
        sum(running.values()) / running_seconds,
        "/s",
    )
    sc.add("one job: confirm to finished", running_seconds, "s")
    sc.notes.append(
        "idle, by path (fleet, per second): "
        + ", ".join(f"{p} {n / idle_seconds:.2f}" for p, n in sorted(idle.items()))
    )
    sc.notes.append(
        "running, by path (fleet, per second): "
        + ", ".join(f"{p} {n / running_seconds:.2f}" for p, n in sorted(running.items()))
        + f"; the job {view.job.status}, {view.job.total_ok} ok, {view.job.total_failed} failed"
    )
    return sc


fleet_size.bound_for = lambda quick: FleetSizes.for_run(quick).bound_seconds  # type: ignore[attr-defined]
