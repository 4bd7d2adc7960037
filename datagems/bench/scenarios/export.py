"""Scenario 6: export of a large finished job in each format (time, memory)."""

from __future__ import annotations

from datagems.bench.procs import Deadline, Stack
from datagems.bench.scenarios.base import MB, Context, Scenario
from datagems.bench.scenarios.probes import open_services, run_probe, seed_finished_job


def export(ctx: Context, deadline: Deadline) -> Scenario:
    small, big = ctx.sizes.s6_records
    peers = ["a", "b", "c"]
    sc = Scenario("6", "Export: time and peak memory to stream N records")
    sc.settings = {
        "N": big,
        "flatnessCheckN": small,
        "slices": len(peers),
        "path": "export_chunks over the devnode (HTTP R1FS) in a subprocess, to /dev/null",
    }
    with Stack(ctx.work / "s6", ctx.logs, deadline) as stack:
        stack.peers = peers
        stack.devnode()
        services = open_services(stack)
        try:
            jobs_by_size = {size: seed_finished_job(services, size) for size in (small, big)}
        finally:
            services.close()
        for fmt in ("json", "jsonl", "csv"):
            deadline.check(f"export {fmt}")
            small_run = run_probe(stack, jobs_by_size[small], fmt, deadline)
            big_run = run_probe(stack, jobs_by_size[big], fmt, deadline)
            sc.add(
                f"{fmt.upper()} time",
                big_run["seconds"],
                "s",
                "< 10",
                big_run["seconds"] < 10,
            )
            sc.add(f"{fmt.upper()} peak RSS", big_run["peakRssMb"], "MB")
            growth = big_run["peakRssMb"] - small_run["peakRssMb"]
            sc.add(
                f"{fmt.upper()} peak RSS growth {small} -> {big}",
                growth,
                "MB",
                "< 10 (flat in N)",
                growth < 10,
            )
            sc.notes.append(
                f"{fmt}: {big_run['bytes'] / MB:.1f} MB out; process RSS before export "
                f"{big_run['rssBeforeMb']:.0f} MB"
            )
    return sc
