"""What the scenarios share: opening the store of a stack, confirming and waiting for a job,
sampling CPU and memory, watching the gateway, signing in, seeding a finished job, timing
requests, profiling a replica."""

from __future__ import annotations

import math
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from datagems.bench.loadgen import LoadResult
from datagems.bench.procs import ADMIN_PASSWORD, Deadline, Stack, Timeout, wait_until
from datagems.bench.scenarios.base import DRAFT, IN_FLIGHT, OWNER, SCHEMA, Context
from datagems.job import lifecycle
from datagems.job.state import JobView
from datagems.mock.records import RecordFactory
from datagems.models import TERMINAL_STATUSES, JobDetails, PeerState, now_iso, parse_iso
from datagems.services import Services


def open_services(stack: Stack, gateway: str = "http://127.0.0.1:1") -> Services:
    return Services.open(stack.settings(), gateway)


def confirm(services: Services, total: int) -> str:
    job_id = str(uuid.uuid4())
    lifecycle.create_job(
        services, owner=OWNER, job_id=job_id, draft={**DRAFT, "totalRecords": total}
    )
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
) -> JobView:
    def done() -> JobView | None:
        view = lifecycle.load_job(services, job_id)
        return view if view and view.job.status in TERMINAL_STATUSES else None

    return wait_until(done, deadline=deadline, interval=interval, what=f"job {job_id} to finish")


def job_seconds(view: JobView) -> float | None:
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

    def phases(self, view: JobView) -> str:
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


class RouteMissing(Exception):
    pass


def login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, headers={"Origin": url}, timeout=60)
    answer = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    if answer.status_code == 404:
        client.close()
        raise RouteMissing("/api/auth/login")
    answer.raise_for_status()
    return client


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
    lifecycle.finalize(services, job_id)
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
