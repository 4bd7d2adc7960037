"""The seven scenarios of the benchmark (issue 5). Each one starts its own processes on
127.0.0.1, runs within its time bound and returns a ``Scenario`` with its figures, each
next to its target. Sizes come from ``Sizes`` (full, or tiny with ``--quick``).
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from datagems import jobs
from datagems.bench.loadgen import LoadResult, measure_limit
from datagems.bench.procs import ADMIN_PASSWORD, Deadline, Stack, Timeout, wait_until
from datagems.inference.fakedata import RecordFactory
from datagems.models import TERMINAL_STATUSES, JobDetails, PeerState, now_iso, parse_iso
from datagems.services import Services
from datagems.store import keys

OWNER = "admin"
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 18, "maximum": 90},
        "email": {"type": "string", "format": "email"},
        "plan": {"enum": ["free", "pro", "team"]},
        "city": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["name", "age", "email", "plan", "city"],
    "additionalProperties": False,
}
DRAFT = {
    "title": "Customers",
    "description": "Customers of a software company",
    "instructions": "Realistic, varied people.",
    "schema": SCHEMA,
}
MB = 2**20


# -- results ------------------------------------------------------------------------------
@dataclass
class Metric:
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    met: bool | None = None  # None: informative, no target

    def wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
        }


@dataclass
class Scenario:
    key: str
    title: str
    status: str = "ok"  # ok | timeout | error: ... | skipped: ...
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(
        self,
        name: str,
        value: float | None,
        unit: str = "",
        target: str = "",
        met: bool | None = None,
    ) -> None:
        self.metrics.append(Metric(name, value, unit, target, met))

    def wire(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "seconds": round(self.seconds, 1),
            "settings": self.settings,
            "metrics": [m.wire() for m in self.metrics],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Sizes:
    quick: bool
    s1_records: int
    s1_latency_ms: float
    s2_records: int
    s2_latency_ms: float
    s3_records_per_replica: int
    s3_latency_ms: float
    s3_gateway_cap: int
    s4_records: int
    s4_cstore_delay_ms: int
    s5_records: int
    s6_records: tuple[int, int]
    s7_jobs: int
    s7_requests: int
    s7_running_records: int
    bound_seconds: float
    s5_bound_seconds: float

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            quick=False,
            s1_records=5000,
            s1_latency_ms=50,
            s2_records=640,
            s2_latency_ms=1000,
            s3_records_per_replica=640,
            s3_latency_ms=500,
            s3_gateway_cap=32,
            s4_records=3000,
            s4_cstore_delay_ms=100,
            s5_records=100_000,
            s6_records=(10_000, 100_000),
            s7_jobs=100,
            s7_requests=400,
            s7_running_records=50_000,
            bound_seconds=300,
            s5_bound_seconds=1200,
        )

    @classmethod
    def tiny(cls) -> Sizes:
        return cls(
            quick=True,
            s1_records=50,
            s1_latency_ms=20,
            s2_records=64,
            s2_latency_ms=200,
            s3_records_per_replica=20,
            s3_latency_ms=100,
            s3_gateway_cap=8,
            s4_records=40,
            s4_cstore_delay_ms=20,
            s5_records=100,
            s6_records=(20, 100),
            s7_jobs=5,
            s7_requests=20,
            s7_running_records=400,
            bound_seconds=60,
            s5_bound_seconds=60,
        )


IN_FLIGHT = 64


@dataclass
class Context:
    sizes: Sizes
    work: Path  # scratch folder for process data
    logs: Path
    profile: bool = False
    out: Path | None = None


# -- helpers ------------------------------------------------------------------------------
def open_services(stack: Stack, gateway: str = "http://127.0.0.1:1") -> Services:
    return Services.open(stack.settings(), gateway)


def confirm(services: Services, total: int) -> str:
    job_id = str(uuid.uuid4())
    jobs.create_job(services, owner=OWNER, job_id=job_id, draft={**DRAFT, "totalRecords": total})
    return job_id


def details_for_limit() -> JobDetails:
    return JobDetails(
        id=str(uuid.uuid4()),
        owner=OWNER,
        title=DRAFT["title"],
        description=DRAFT["description"],
        instructions=DRAFT["instructions"],
        json_schema=SCHEMA,
    )


def wait_finished(
    services: Services, job_id: str, deadline: Deadline, interval: float = 0.1
) -> jobs.JobView:
    def done() -> jobs.JobView | None:
        view = jobs.load_job(services, job_id)
        return view if view and view.job.status in TERMINAL_STATUSES else None

    return wait_until(done, deadline=deadline, interval=interval, what=f"job {job_id} to finish")


def job_seconds(view: jobs.JobView) -> float | None:
    """From the first peer's start to the last peer's upload (the job's own timestamps)."""
    ms = view.job.records_duration_ms
    return ms / 1000 if ms else None


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = self.process.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, self.last)
            self._stop.wait(self.interval)

    def reset_peak(self) -> None:
        self.peak = self.last

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


class GatewayWatcher:
    """Polls mock-llm ``/stats`` every 50 ms: when the calls began and when all had answered.

    Its rate is the records' own pace at the gateway, whatever CStore does; comparing its
    times with the job's timestamps splits a job into start-up, calls and finalization.
    """

    def __init__(self, urls: list[str], total: int, interval: float = 0.05) -> None:
        self.urls = urls
        self.total = total
        self.interval = interval
        self.first: float | None = None  # wall clock (time.time)
        self.done: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="gateway-watcher")
        self._client = httpx.Client(timeout=5)
        self._base = 0
        self.in_flight: list[int] = []  # calls open at the gateway, every poll while calling

    def _stats(self) -> list[dict[str, Any]]:
        return [self._client.get(f"{url}/stats").json() for url in self.urls]

    def _counts(self) -> tuple[int, int]:
        stats = self._stats()
        return sum(int(s["requests"]) for s in stats), sum(int(s["inFlight"]) for s in stats)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                requests, in_flight = self._counts()
            except httpx.HTTPError:
                requests, in_flight = 0, 1
            now = time.time()
            requests -= self._base
            if self.first is None and requests > 0:
                self.first = now - self.interval / 2
            if self.first is not None:
                self.in_flight.append(in_flight)
            if self.done is None and requests >= self.total and in_flight == 0:
                self.done = now - self.interval / 2
                return
            self._stop.wait(self.interval)

    @property
    def seconds(self) -> float | None:
        if self.first is None or self.done is None:
            return None
        return self.done - self.first

    @property
    def rate(self) -> float | None:
        seconds = self.seconds
        return self.total / seconds if seconds else None

    def pacing(self, view: Any) -> str:
        """The calls open at the gateway while calling, and each peer's last pace."""
        seen = sorted(self.in_flight) or [0]
        paces = "; ".join(
            f"{peer}: level {p['level']} of {p['cap']}, trials {p.get('trials')}, {p['reason']}"
            for peer, state in view.peers.items()
            if (p := state.pace)
        )
        return (
            f"calls open at the gateway: median {seen[len(seen) // 2]}, mean "
            f"{sum(seen) / len(seen):.1f} over {len(seen)} polls; last pace: {paces or '-'}"
        )

    def phases(self, view: jobs.JobView) -> str:
        """``start -> first call``, ``calls``, ``last answer -> finished`` in seconds."""
        begin, end = parse_iso(view.job.job_started_at), parse_iso(view.job.job_finished_at)
        if begin is None or end is None or self.first is None or self.done is None:
            return "phases unknown"
        return (
            f"job start -> first call {self.first - begin.timestamp():.2f} s, calls "
            f"{self.done - self.first:.2f} s, last answer -> job finished "
            f"{end.timestamp() - self.done:.2f} s"
        )

    def __enter__(self) -> GatewayWatcher:
        self._base = self._counts()[0]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        try:
            if self.done is None:
                self._settle()
        except httpx.HTTPError:
            pass
        finally:
            self._client.close()

    def _settle(self) -> None:
        """The job ended between two samples: take the gateways' own last-answer time."""
        stats = self._stats()
        requests = sum(int(item["requests"]) for item in stats) - self._base
        answers = [item.get("lastAnswerAt") for item in stats if item.get("lastAnswerAt")]
        if requests >= self.total and answers and self.first is not None:
            self.done = max(float(at) for at in answers)


def share(value: float | None, limit: float | None) -> float | None:
    if value is None or not limit:
        return None
    return value / limit


def limit_of(result: LoadResult, total: int) -> float | None:
    return result.rate if result.ok == total else None


def replica_knobs(in_flight: int = IN_FLIGHT, **extra: Any) -> dict[str, Any]:
    knobs: dict[str, Any] = {
        "DATAGEN_MAX_IN_FLIGHT_PER_JOB": in_flight,
        "DATAGEN_MAX_IN_FLIGHT": in_flight,
    }
    knobs.update(extra)
    return knobs


def start_profile(ctx: Context, pid: int, name: str) -> subprocess.Popen[bytes] | None:
    """py-spy record of ``pid`` (GIL holder only: where its CPU goes), when asked and installed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not ctx.profile or ctx.out is None or not Path(spy).exists():
        return None
    target = ctx.out / f"{name}.collapsed.txt"
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--gil",
            "--format",
            "raw",
            "--rate",
            "100",
            "-o",
            str(target),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profile(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


# -- 1: throughput ------------------------------------------------------------------------
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


# -- 2: no fixed overhead -----------------------------------------------------------------
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


# -- 3: fleet scaling ---------------------------------------------------------------------
def _fleet_run(
    ctx: Context, deadline: Deadline, name: str, peers: list[str], n: int
) -> tuple[float, jobs.JobView, str]:
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


# -- 4: CStore writes ---------------------------------------------------------------------
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


# -- 5: memory ----------------------------------------------------------------------------
def login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, headers={"Origin": url}, timeout=60)
    answer = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    if answer.status_code == 404:
        client.close()
        raise RouteMissing("/api/auth/login")
    answer.raise_for_status()
    return client


class RouteMissing(Exception):
    pass


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

                def progress() -> jobs.JobView | None:
                    nonlocal tenth
                    view = jobs.load_job(services, job_id)
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


# -- 6: export ----------------------------------------------------------------------------
def seed_finished_job(services: Services, total: int, seed: int = 7) -> str:
    """A finished job of ``total`` records, its slices uploaded (no replica involved)."""
    job_id = confirm(services, total)
    factory = RecordFactory(SCHEMA)
    rng = random.Random(seed)
    tmp = services.settings.data_dir / "seed"
    tmp.mkdir(parents=True, exist_ok=True)
    for peer, state in services.peers.all(job_id).items():
        path = tmp / f"{job_id}_{peer}.jsonl"
        with open(path, "wb") as out:
            for i in range(state.range.start, state.range.end):
                out.write(orjson.dumps({"i": i, "ok": True, "data": factory.make(rng)}) + b"\n")
        cid = services.r1fs.add_path(path, f"{job_id}_{peer}.jsonl")
        path.unlink()
        stamp = now_iso()
        services.peers.put(
            job_id,
            PeerState(
                peer_id=peer,
                assigned=state.assigned,
                range=state.range,
                generated_ok=state.assigned,
                started_at=stamp,
                last_update_at=stamp,
                finished_at=stamp,
                result_cid=cid,
            ),
        )
    jobs.refresh(services, job_id)
    return job_id


def run_probe(stack: Stack, job_id: str, fmt: str, deadline: Deadline) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "datagems.bench.export_probe",
        "--cstore",
        stack.cstore_url,
        "--r1fs",
        stack.r1fs_url,
        "--peers",
        orjson.dumps(stack.peers).decode(),
        "--job",
        job_id,
        "--format",
        fmt,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=max(1.0, deadline.left()), check=True
        )
    except subprocess.TimeoutExpired:
        raise Timeout(f"export {fmt}") from None
    return orjson.loads(done.stdout.splitlines()[-1])


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


# -- 7: API under load --------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


def timed_requests(
    client: httpx.Client, paths: list[str], concurrency: int, deadline: Deadline
) -> tuple[list[float], int]:
    """GET every path with ``concurrency`` threads; latencies in ms and the error count."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    work = list(reversed(paths))

    def worker() -> None:
        nonlocal errors
        while True:
            with lock:
                if not work or deadline.left() <= 0:
                    return
                path = work.pop()
            started = time.perf_counter()
            try:
                ok = client.get(path).status_code == 200
            except httpx.HTTPError:
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                errors += 0 if ok else 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, deadline.left()))
    deadline.check("API requests")
    return latencies, errors


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
                view = jobs.load_job(services, running)
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
            view = jobs.load_job(services, running)
            made = view.job.total_generated if view else "?"
            sc.notes.append(
                f"{listed} jobs listed; the running job had {made} of "
                f"{s.s7_running_records} records when the load ended"
            )
        finally:
            services.close()
    return sc


def schema_set(ctx: Context, deadline: Deadline) -> Scenario:
    from datagems.bench.schema_set import schema_set as run  # its own module (issue 19)

    return run(ctx, deadline)


SCENARIOS: dict[str, tuple[str, Callable[[Context, Deadline], Scenario]]] = {
    "1": ("throughput", throughput),
    "2": ("overhead", no_fixed_overhead),
    "3": ("fleet", fleet_scaling),
    "4": ("writes", cstore_writes),
    "5": ("memory", memory),
    "6": ("export", export),
    "7": ("api", api_under_load),
    "8": ("schemas", schema_set),
}

# scenarios in modules of their own (they import the helpers above); a function may carry
# ``bound_for(quick) -> seconds`` for a time bound of its own
from datagems.bench.fleet_size import fleet_size  # noqa: E402
from datagems.bench.history import history  # noqa: E402

SCENARIOS["history"] = ("history", history)
SCENARIOS["fleet-size"] = ("fleet-size", fleet_size)
