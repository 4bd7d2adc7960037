"""Faults: the store going away mid-job, and kill -9 of a replica at random moments.

``make test`` runs a short form; ``DATAGEMS_SOAK=1`` (``make soak``) the full one.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import httpx
import pytest

from datagems.bench.procs import wait_until
from tests.actors.jobkit import all_slice_lines, confirm_job, fleet_services, wait_for_status
from tests.fleet import ADMIN_PASSWORD, Fleet

pytestmark = pytest.mark.fleet
SOAK = os.environ.get("DATAGEMS_SOAK") == "1"
CAP = 16


def done_count(services, job_id: str, peer: str) -> int:
    state = services.peers.get(job_id, peer)
    return state.done if state else 0


def test_the_store_down_mid_job_answers_503_and_the_job_completes_after(tmp_path: Path) -> None:
    total = 600 if SOAK else 240
    with Fleet(tmp_path, ["a"], mock_args=("--latency-ms", "100")) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, total)
        web = httpx.Client(base_url=fleet.replicas["a"].url, timeout=10)
        web.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        wait_until(lambda: done_count(services, job_id, "a") >= 20, timeout=60, what="20 done")

        fleet.devnode.stop()
        down_at = time.monotonic()
        answers = [web.get("/api/tasks"), web.get(f"/api/tasks/{job_id}")]
        # generation goes on without the store; it stays down until the local file has
        # grown to the target (and, in the soak, for at least 30 s)
        result_file = fleet.root / "replica-a" / "cache" / f"{job_id}_a.jsonl"
        outage = 30.0 if SOAK else 0.0

        def outage_over() -> bool:
            lines = len(result_file.read_bytes().splitlines()) if result_file.exists() else 0
            return lines >= total // 2 and time.monotonic() - down_at >= outage

        wait_until(outage_over, timeout=120, what="records written during the outage")
        fleet.devnode.start()

        assert [a.status_code for a in answers] == [503, 503]
        assert all("error" in a.json() for a in answers)
        wait_for_status(services, job_id, {"succeeded"}, timeout=90)
        assert sorted(e["i"] for e in all_slice_lines(services, job_id)) == list(range(total))


def test_kill_9_at_random_moments_loses_nothing_and_calls_each_record_about_once(
    tmp_path: Path,
) -> None:
    total, kills = (600, 20) if SOAK else (300, 6)
    rng = random.Random(7)
    targets = sorted(rng.sample(range(5, total - 5), kills))
    args = ("--latency-ms", "40", "--jitter-ms", "40")
    with Fleet(tmp_path, ["a"], mock_args=args) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, total)
        replica = fleet.replicas["a"]
        for target in targets:
            reached = wait_until(
                lambda t=target: (
                    done_count(services, job_id, "a") >= t or wait_for_done(services, job_id)
                ),
                timeout=60,
                interval=0.01,
                what=f"{target} records",
            )
            replica.kill()
            replica.start()
            if reached == "done":
                break

        wait_for_status(services, job_id, {"succeeded"}, timeout=90)
        assert sorted(e["i"] for e in all_slice_lines(services, job_id)) == list(range(total))
        assert fleet.llm_stats()["requests"] <= total + kills * CAP


def wait_for_done(services, job_id: str) -> str | None:
    state = services.peers.get(job_id, "a")
    return "done" if state and state.result_cid else None
