"""Scenario "history" (issue 18): what a replica costs with 0, 5 000 and 50 000 finished
jobs in the store, idle, listing and picking up work.

Per size, a fresh devnode whose SQLite file is seeded directly, in bulk, with what months
of use leave (``seed_history``: every job finished, its base, its owner's summary and its
peer state, and the original's ``datagen:metrics``; no open-jobs index, so the replica
builds it at start), plus one page (50) of recent finished jobs at every size, so that
the first page compared across sizes is a full one. One replica at its defaults (poll
every 5 s), the bench's mock-llm. Measured: the index rebuild at start; over an idle
window the replica's and the devnode's CPU (psutil, user + system) and the replica's RSS
(sampled every 0.1 s); the first page of ``GET /api/tasks`` (signed in as the owner of
every job; p50 / p99 over sequential requests, and its size); how long a newly confirmed
job takes to be picked up (its peer state's ``startedAt``, written by the replica) when
confirmed half a second after a poll, so the figure is one poll interval minus that half
second plus the work of the poll that finds it; the same for a job written by the
original's writer sequence (``datagems.bench.original``), which that poll finds by a scan.
The last size's figures are compared with the 0-job ones.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from datagems.bench.original import confirm_as_original, iso_ms
from datagems.bench.procs import Deadline, Stack, wait_until
from datagems.bench.scenarios.base import MB, OWNER, SCHEMA, Context, Scenario
from datagems.bench.scenarios.probes import (
    RssSampler,
    cpu_seconds,
    login,
    open_services,
    percentile,
)
from datagems.job import lifecycle, listing
from datagems.models import TERMINAL_STATUSES
from datagems.services import Services
from datagems.store import keys
from datagems.store.embedded import SqliteCStore

TOLERANCE = 0.20  # "within 20 % of the 0-job figure"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class HistorySizes:
    jobs: tuple[int, ...]
    poll_seconds: float  # the replica's DATAGEN_JOB_POLL_SECONDS (5: its default)
    settle_seconds: float  # after the start, before the idle window
    idle_seconds: float
    requests: int
    pickups: int
    bound_seconds: float

    @classmethod
    def for_run(cls, quick: bool) -> HistorySizes:
        if quick:
            return cls(
                jobs=(0, 100),
                poll_seconds=1.0,
                settle_seconds=0.5,
                idle_seconds=1.0,
                requests=10,
                pickups=1,
                bound_seconds=120,
            )
        return cls(
            jobs=(0, 5_000, 50_000),
            poll_seconds=5.0,
            settle_seconds=3.0,
            idle_seconds=40.0,
            requests=200,
            pickups=3,
            bound_seconds=720,
        )


# -- seeding ------------------------------------------------------------------------------
def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def seed_history(path: Path, count: int, peer: str, owner: str = OWNER, seed: int = 18) -> None:
    """Write ``count`` finished jobs straight into a devnode's SQLite file, in bulk: for
    each, its base (``datagen:jobs``), its owner's summary and its peer state, as months of
    use leave them; created one every few minutes over the last ``count`` / 300 days.
    Ends with the original's ``datagen:metrics`` counting them."""
    SqliteCStore(path).close()  # the schema
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000) - 60_000
    span = max(1, count) * 288_000  # about 300 jobs a day
    rows: list[tuple[str, str, str, int]] = []
    last = None
    for n in range(count):
        created_ms = now_ms - span + n * (span // max(1, count))
        started_ms = created_ms + rng.randint(200, 5_000)
        finished_ms = started_ms + rng.randint(2_000, 120_000)
        total = rng.choice((10, 50, 100, 500, 1000))
        failed = rng.randint(0, total // 20)
        job_id = f"job_{created_ms}_{rng.getrandbits(24):06x}"
        created, finished = iso_ms(created_ms), iso_ms(finished_ms)
        status = "succeeded" if failed < total else "failed"
        base = {
            "id": job_id,
            "owner": owner,
            "title": f"Customers batch {n}",
            "status": status,
            "totalRecords": total,
            "datasetMode": False,
            "peers": [peer],
            "peerCount": 1,
            "totalGenerated": total,
            "totalOk": total - failed,
            "totalFailed": failed,
            "jobDetailsCid": "Qm" + f"{rng.getrandbits(176):044x}",
            "createdAt": created,
            "schemaGeneratedAt": created,
            "schemaDurationMs": rng.randint(800, 4000),
            "schemaRefreshes": 0,
            "updatedAt": finished,
            "jobStartedAt": iso_ms(started_ms),
            "jobFinishedAt": finished,
            "recordsDurationMs": finished_ms - started_ms,
        }
        summary = {
            "id": job_id,
            "title": base["title"],
            "status": status,
            "createdAt": created,
            "updatedAt": finished,
        }
        state = {
            "peerId": peer,
            "assigned": total,
            "range": {"start": 0, "end": total},
            "generatedOk": total - failed,
            "generatedFailed": failed,
            "startedAt": iso_ms(started_ms),
            "lastUpdateAt": finished,
            "resultCid": "Qm" + f"{rng.getrandbits(176):044x}",
            "errorsCid": "Qm" + f"{rng.getrandbits(176):044x}",
            "finishedAt": finished,
        }
        rows.append((keys.JOBS, job_id, _dumps(base), 1))
        rows.append((keys.user_jobs(owner), job_id, _dumps(summary), 1))
        rows.append((keys.job_peers(job_id), peer, _dumps(state), 1))
        last = created
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.executemany(
            "INSERT OR REPLACE INTO hkv (hkey, field, value, is_text) VALUES (?, ?, ?, ?)", rows
        )
        metrics = {
            "totalJobs": count,
            "totalRecordsRequested": 0,
            "totalRecordsGenerated": 0,
            "activeJobs": 0,
            "failedJobs": 0,
            "lastJobAt": last,
        }
        db.execute(
            "INSERT OR REPLACE INTO kv (key, value, is_text) VALUES (?, ?, 1)",
            (keys.METRICS, _dumps(metrics)),
        )
        db.execute("COMMIT")
    finally:
        db.close()


# -- measuring ----------------------------------------------------------------------------
def cpu_share(pid: int, seconds: float) -> float:
    """Share of one core (%) the process used over the next ``seconds``."""
    before, started = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.perf_counter() - started) * 100


def devnode_requests(stack: Stack) -> int:
    return sum(int(n) for n in stack.devnode_stats()["requests"].values())


def started_at(services: Services, job_id: str, peer: str) -> float | None:
    state = services.peers.get(job_id, peer)
    return time.time() if state is not None and state.started_at else None


def next_poll(stack: Stack, deadline: Deadline, poll: float) -> float:
    """Wait for the replica's next poll (its one ``hgetall`` of the open-jobs index when
    idle: the devnode counts it) and return when it was seen (``time.time``)."""
    client = httpx.Client(timeout=5)
    try:

        def hgetalls() -> int:
            stats = client.get(f"{stack.cstore_url}/__devnode/stats").json()
            return int(stats["requests"].get("/hgetall", 0))

        before = hgetalls()
        wait_until(
            lambda: hgetalls() > before,
            deadline=deadline,
            interval=0.02,
            what="the replica's next poll",
            timeout=poll * 3,
        )
        return time.time()
    finally:
        client.close()


@dataclass(frozen=True)
class Pickup:
    seconds: float  # from the write to the replica's start of the job
    work: float  # from the poll that found it to that start: the poll's own work
    first_poll: bool  # found by the first poll after the write


def picked_up(
    stack: Stack,
    services: Services,
    peer: str,
    deadline: Deadline,
    write: Callable[[], str],
    poll: float,
) -> Pickup:
    """Write a job (``write``) half a second after a poll; how long until the replica
    started it (its peer state's ``startedAt``), then wait for it to finish."""
    polled = next_poll(stack, deadline, poll)
    time.sleep(max(0.0, polled + 0.5 - time.time()))
    wrote = time.time()
    job_id = write()
    seen = wait_until(
        lambda: started_at(services, job_id, peer),
        deadline=deadline,
        interval=0.02,
        what="the new job to be picked up",
        timeout=poll * 4,
    )
    wait_finished_job(services, job_id, deadline)
    return Pickup(seen - wrote, seen - (polled + poll), seen < polled + 2 * poll)


def wait_finished_job(services: Services, job_id: str, deadline: Deadline) -> None:
    def done() -> bool:
        view = lifecycle.load_job(services, job_id)
        return bool(view and view.job.status in TERMINAL_STATUSES)

    wait_until(done, deadline=deadline, interval=0.1, what=f"job {job_id} to finish", timeout=60)


def one_size(
    ctx: Context, deadline: Deadline, size: int, sizes: HistorySizes
) -> dict[str, float | None]:
    peer = "a"
    root = ctx.work / f"history-{size}"
    (root / "devnode").mkdir(parents=True, exist_ok=True)
    seeded = time.perf_counter()
    seed_history(root / "devnode" / "cstore.sqlite3", size + listing.PAGE_SIZE, peer)
    figures: dict[str, float | None] = {"seedSeconds": time.perf_counter() - seeded}
    with Stack(root, ctx.logs, deadline) as stack:
        stack.peers = [peer]
        stack.devnode()
        gateway = stack.mock_llm(latency_ms=20)
        knobs = {"DATAGEN_JOB_POLL_SECONDS": sizes.poll_seconds, "DATAGEN_LOG_LEVEL": "WARNING"}
        started = time.perf_counter()
        proc, url = stack.replica(peer, gateway, knobs)
        services = open_services(stack)
        try:
            wait_until(
                lambda: services.index.meta(),
                deadline=deadline,
                interval=0.1,
                what="the open-jobs index to be built",
            )
            figures["readyAndIndexedSeconds"] = time.perf_counter() - started
            meta = services.index.meta()
            figures["indexedJobs"] = meta.jobs if meta else None
            time.sleep(sizes.settle_seconds)  # the start settles
            devnode_pid = stack.procs[0].pid
            devnode_before = cpu_seconds(devnode_pid)
            requests_before = devnode_requests(stack)
            with RssSampler(proc.pid) as rss:
                window = time.perf_counter()
                figures["idleCpuPercent"] = cpu_share(proc.pid, sizes.idle_seconds)
                elapsed = time.perf_counter() - window
            devnode_cpu = cpu_seconds(devnode_pid) - devnode_before
            figures["devnodeCpuPercent"] = devnode_cpu / elapsed * 100
            store_requests = devnode_requests(stack) - requests_before
            figures["storeRequestsPerSecond"] = store_requests / elapsed
            figures["idleRssMb"] = rss.peak / MB
            with contextlib.closing(login(url)) as client:
                cold = time.perf_counter()
                answer = client.get("/api/tasks")
                figures["firstPageColdMs"] = (time.perf_counter() - cold) * 1000
                answer.raise_for_status()
                figures["firstPageKb"] = len(answer.content) / 1024
                figures["firstPageJobs"] = len(answer.json()["jobs"])
                latencies = []
                for _ in range(sizes.requests):
                    began = time.perf_counter()
                    client.get("/api/tasks").raise_for_status()
                    latencies.append((time.perf_counter() - began) * 1000)
            figures["firstPageP50Ms"] = statistics.median(latencies)
            figures["firstPageP99Ms"] = percentile(latencies, 0.99)
            figures["rssAfterListingMb"] = psutil.Process(proc.pid).memory_info().rss / MB

            def ours() -> str:
                job_id = str(uuid.uuid4())
                draft = {"title": "Pick me up", "totalRecords": 5, "schema": SCHEMA}
                lifecycle.create_job(services, owner=OWNER, job_id=job_id, draft=draft)
                return job_id

            def originals() -> str:
                return confirm_as_original(
                    services.cstore,
                    services.r1fs,
                    owner="tess",
                    title="Written by the original",
                    total=5,
                    peers=[peer],
                    schema=SCHEMA,
                    gateway_url=gateway,
                )

            for name, write in (("pickup", ours), ("original", originals)):
                trials = [
                    picked_up(stack, services, peer, deadline, write, sizes.poll_seconds)
                    for _ in range(sizes.pickups)
                ]
                figures[f"{name}Seconds"] = max(t.seconds for t in trials)
                figures[f"{name}WorkSeconds"] = max(t.work for t in trials)
                figures[f"{name}FirstPoll"] = float(all(t.first_poll for t in trials))
        finally:
            services.close()
    return figures


# -- the scenario -------------------------------------------------------------------------
def _add(sc: Scenario, name: str, value: float | None, unit: str, limit: float | None) -> None:
    if limit is None:
        sc.add(name, value, unit)
    else:
        sc.add(name, value, unit, f"<= {limit:g}", value is not None and value <= limit)


def _ratio(value: float | None, base: float | None, floor: float = 0.0) -> float | None:
    """``value / base``, ``base`` taken as at least ``floor`` (a measurement's resolution)."""
    if value is None or base is None or not max(base, floor):
        return None
    return value / max(base, floor)


def history(ctx: Context, deadline: Deadline) -> Scenario:
    sizes = HistorySizes.for_run(ctx.sizes.quick)
    sc = Scenario("history", "History: a replica with 0 / 5 000 / 50 000 finished jobs")
    sc.settings = {
        "finishedJobs": list(sizes.jobs),
        "recentJobs": f"{listing.PAGE_SIZE} more at every size, so every first page is full",
        "owner": "every job is the signed-in user's (admin): the worst case for a listing",
        "pollSeconds": sizes.poll_seconds,
        "idleWindowSeconds": sizes.idle_seconds,
        "firstPageRequests": sizes.requests,
        "pickupTrials": sizes.pickups,
    }
    results: dict[int, dict[str, float | None]] = {}
    for size in sizes.jobs:
        deadline.check(f"history at {size} jobs")
        results[size] = one_size(ctx, deadline, size, sizes)
    biggest, zero = results[sizes.jobs[-1]], results[sizes.jobs[0]]
    for size, figures in results.items():
        at = f"{size} jobs"
        last = size == sizes.jobs[-1]

        def add(name: str, key: str, unit: str, limit: float | None = None) -> None:
            _add(sc, f"{at}: {name}", figures[key], unit, limit)  # noqa: B023 - called at once

        add("seeded (bulk write into SQLite)", "seedSeconds", "s")
        add("index built at start (replica ready + scan)", "readyAndIndexedSeconds", "s")
        add("idle replica CPU", "idleCpuPercent", "% core", 2.0 if last else None)
        add("idle devnode CPU", "devnodeCpuPercent", "% core")
        add("idle store requests", "storeRequestsPerSecond", "/s")
        add("replica RSS (idle peak)", "idleRssMb", "MB", 150.0 if last else None)
        add("replica RSS after the listing", "rssAfterListingMb", "MB")
        add("first page p50", "firstPageP50Ms", "ms")
        add("first page p99", "firstPageP99Ms", "ms", 100.0 if last else None)
        add("first page size", "firstPageKb", "KB", 100.0 if last else None)
        add("first page, first request after start", "firstPageColdMs", "ms")
        for kind, label in (("pickup", "new job"), ("original", "original's job")):
            add(f"{label} started (written 0.5 s after a poll)", f"{kind}Seconds", "s")
            add(f"{label}: work of the poll that found it", f"{kind}WorkSeconds", "s")
            first = figures[f"{kind}FirstPoll"] == 1.0
            name = f"{at}: {label} found by the first poll after it was written"
            sc.add(name, 1.0 if first else 0.0, "", "yes", first)
    tick = 0.01 / sizes.idle_seconds * 100  # one CPU-time tick over the window, in % core
    for name, label, floor in (
        ("idleCpuPercent", "idle replica CPU", tick),
        ("idleRssMb", "replica RSS", 0.0),
        ("firstPageP99Ms", "first page p99", 0.0),
        ("pickupSeconds", "pickup", 0.0),
    ):
        ratio = _ratio(biggest[name], zero[name], floor)
        sc.add(
            f"{label}, {sizes.jobs[-1]} jobs / 0 jobs",
            ratio,
            "x",
            f"<= {1 + TOLERANCE:.2f}",
            ratio is not None and ratio <= 1 + TOLERANCE,
        )
    sc.notes.append(
        "first page: GET /api/tasks (50 jobs, newest first) as the owner of every job; "
        "pickup: a job confirmed 0.5 s after a poll, so at best one poll interval minus 0.5 s; "
        f"ratios: a 0-job CPU figure is taken as at least one CPU tick over the window "
        f"({tick:.3f} % core)"
    )
    return sc


history.bound_for = lambda quick: HistorySizes.for_run(quick).bound_seconds  # type: ignore[attr-defined]
