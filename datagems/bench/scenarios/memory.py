"""Scenario 5: memory of a replica while a large job runs and its pages are read."""

from __future__ import annotations

import contextlib
import time

from datagems.bench.procs import Deadline, Stack, wait_until
from datagems.bench.scenarios.base import IN_FLIGHT, MB, Context, Scenario
from datagems.bench.scenarios.probes import (
    RouteMissing,
    RssSampler,
    confirm,
    login,
    open_services,
    replica_knobs,
)
from datagems.job import lifecycle
from datagems.job.state import JobView
from datagems.models import TERMINAL_STATUSES


def memory(ctx: Context, deadline: Deadline) -> Scenario:
    s = ctx.sizes
    n = s.s5_records
    sc = Scenario("5", "Memory: peak RSS of a replica running N records at L=0")
    sc.settings = {"N": n, "latencyMs": 0, "C": IN_FLIGHT, "replicas": 1}
    marks: list[tuple[int, float]] = []
    with Stack(ctx.work / "s5", ctx.logs, deadline) as stack:
        stack.peers = ["a"]
        stack.devnode()
        gateway = stack.mock_llm(latency_ms=0)
        proc, url = stack.replica("a", gateway, replica_knobs())
        services = open_services(stack)
        try:
            with RssSampler(proc.pid) as rss:
                idle = rss.process.memory_info().rss
                job_id = confirm(services, n)
                tenth = None

                def progress() -> JobView | None:
                    nonlocal tenth
                    view = lifecycle.load_job(services, job_id)
                    if view is None:
                        return None
                    marks.append((view.job.total_generated, rss.peak / MB))
                    if tenth is None and view.job.total_generated >= n / 10:
                        tenth = rss.peak
                    return view if view.job.status in TERMINAL_STATUSES else None

                view = wait_until(progress, deadline=deadline, interval=0.5, what="the job")
                run_peak = rss.peak
                export_peak = after = None
                try:
                    client = login(url)
                except RouteMissing:
                    sc.notes.append("after export: skipped: route missing (/api/auth/login)")
                else:
                    with contextlib.closing(client):
                        rss.reset_peak()
                        for fmt in ("json", "jsonl", "csv"):
                            path = f"/api/tasks/{job_id}/export"
                            with client.stream("GET", path, params={"format": fmt}) as answer:
                                if answer.status_code == 404:
                                    sc.notes.append("after export: skipped: route missing")
                                    break
                                answer.raise_for_status()
                                for _ in answer.iter_bytes():
                                    pass
                        else:
                            time.sleep(1.0)
                            export_peak = rss.peak
                            after = rss.process.memory_info().rss
        finally:
            services.close()
    sc.add("idle RSS before the job", idle / MB, "MB")
    sc.add("peak RSS after 10% of N", (tenth or 0) / MB or None, "MB")
    sc.add("peak RSS while running", run_peak / MB, "MB", "< 200", run_peak / MB < 200)
    growth = (run_peak - tenth) / MB if tenth else None
    sc.add(
        "growth from 10% to 100% of N",
        growth,
        "MB",
        "< 20 (flat in N)",
        growth is not None and growth < 20,
    )
    if export_peak is not None and after is not None:
        sc.add(
            "peak RSS during export (JSON, JSONL, CSV)",
            export_peak / MB,
            "MB",
            "< 200",
            export_peak / MB < 200,
        )
        sc.add("RSS after export", after / MB, "MB")
    sc.notes.append(
        f"job {view.job.status}: {view.job.total_ok} ok, {view.job.total_failed} failed"
    )
    return sc
