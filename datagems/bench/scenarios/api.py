"""Scenario 7: the API under load while a job runs."""

from __future__ import annotations

import contextlib
import statistics

from datagems.bench.procs import Deadline, Stack, wait_until
from datagems.bench.scenarios.base import IN_FLIGHT, Context, Scenario
from datagems.bench.scenarios.probes import (
    RouteMissing,
    confirm,
    login,
    open_services,
    percentile,
    replica_knobs,
    seed_finished_job,
    timed_requests,
)
from datagems.job import lifecycle


def api_under_load(ctx: Context, deadline: Deadline) -> Scenario:
    s = ctx.sizes
    concurrency = 4
    sc = Scenario("7", "API under load: GET /api/tasks and /api/tasks/{id} while a job runs")
    sc.settings = {
        "jobsInStore": s.s7_jobs,
        "requestsPerRoute": s.s7_requests,
        "concurrency": concurrency,
        "runningJob": f"N={s.s7_running_records}, L=50 ms, C={IN_FLIGHT}",
        "auth": "session cookie from POST /api/auth/login",
    }
    with Stack(ctx.work / "s7", ctx.logs, deadline) as stack:
        stack.peers = ["a"]
        stack.devnode()
        gateway = stack.mock_llm(latency_ms=50)
        _, url = stack.replica("a", gateway, replica_knobs())
        services = open_services(stack)
        try:
            finished = [seed_finished_job(services, 10, seed=i) for i in range(s.s7_jobs - 1)]
            running = confirm(services, s.s7_running_records)

            def is_running() -> bool:
                view = lifecycle.load_job(services, running)
                return bool(view and view.job.status == "running" and view.job.total_generated)

            wait_until(is_running, deadline=deadline, interval=0.1, what="the job to run")
            try:
                client = login(url)
            except RouteMissing as exc:
                sc.status = f"skipped: route missing ({exc})"
                return sc
            with contextlib.closing(client):
                probe = client.get("/api/tasks")
                if probe.status_code == 404:
                    sc.status = "skipped: route missing (GET /api/tasks)"
                    return sc
                listed = len(probe.json().get("jobs", []))
                ids = [running, *finished]
                routes = {
                    "GET /api/tasks": ["/api/tasks"] * s.s7_requests,
                    "GET /api/tasks/{id}": [
                        f"/api/tasks/{ids[i % len(ids)] if i % 2 else running}"
                        for i in range(s.s7_requests)
                    ],
                }
                for name, paths in routes.items():
                    latencies, errors = timed_requests(client, paths, concurrency, deadline)
                    p99 = percentile(latencies, 0.99)
                    sc.add(f"{name} p50", statistics.median(latencies), "ms")
                    sc.add(f"{name} p99", p99, "ms", "< 100", p99 < 100 and not errors)
                    if errors:
                        sc.notes.append(f"{name}: {errors} requests did not answer 200")
            view = lifecycle.load_job(services, running)
            made = view.job.total_generated if view else "?"
            sc.notes.append(
                f"{listed} jobs listed; the running job had {made} of "
                f"{s.s7_running_records} records when the load ended"
            )
        finally:
            services.close()
    return sc
