"""The engine over real processes: devnode + mock-llm + replicas on 127.0.0.1."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator

from datagems.bench.procs import wait_until
from datagems.job import lifecycle
from tests.actors.jobkit import (
    PERSON_SCHEMA,
    all_slice_lines,
    confirm_job,
    exported_entries,
    fleet_services,
    wait_for_status,
)
from tests.fleet import Fleet

pytestmark = pytest.mark.fleet
CAP = 16


def done_count(services, job_id: str, peer: str) -> int:
    state = services.peers.get(job_id, peer)
    return state.done if state else 0


def test_three_replicas_split_a_job_and_every_index_appears_once(tmp_path: Path) -> None:
    with Fleet(tmp_path, ["a", "b", "c"]) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 300)

        states = services.peers.all(job_id)
        assert {p: (s.range.start, s.range.end) for p, s in states.items()} == {
            "a": (0, 100),
            "b": (100, 200),
            "c": (200, 300),
        }
        view = wait_for_status(services, job_id, {"succeeded"})
        assert view.job.total_ok + view.job.total_failed == 300

        entries = exported_entries(services, job_id)
        assert [e["i"] for e in entries] == list(range(300))
        validator = Draft202012Validator(PERSON_SCHEMA)
        assert all(validator.is_valid(e["data"]) for e in entries if e["ok"])
        assert sum(e["ok"] for e in entries) == view.job.total_ok
        assert fleet.llm_stats()["requests"] == 300  # one call per record, no fault


def test_a_replica_killed_mid_slice_resumes_without_calling_records_twice(tmp_path: Path) -> None:
    with Fleet(tmp_path, ["a", "b", "c"], mock_args=("--latency-ms", "150")) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 300)
        wait_until(lambda: done_count(services, job_id, "b") >= 25, timeout=60, what="b at 25")
        fleet.replicas["b"].kill()
        fleet.replicas["b"].start()

        wait_for_status(services, job_id, {"succeeded"})
        indices = [e["i"] for e in all_slice_lines(services, job_id)]
        assert sorted(indices) == list(range(300))
        assert fleet.llm_stats()["requests"] <= 300 + CAP


def test_faulty_gateway_still_completes_with_named_reasons_and_bounded_calls(
    tmp_path: Path,
) -> None:
    args = ("--fail-rate", "0.3", "--invalid-rate", "0.1")
    with Fleet(tmp_path, ["a", "b", "c"], mock_args=args) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 150)

        view = wait_for_status(services, job_id, {"succeeded", "failed"})
        entries = exported_entries(services, job_id)
        assert [e["i"] for e in entries] == list(range(150))
        failed = [e for e in entries if not e["ok"]]
        assert all(e["reason"] for e in failed)
        assert {e["reason"] for e in failed} <= {
            "transport",
            "timeout",
            "provider_error",
            "invalid_json",
            "schema_violation",
            "rate_limited",
            "http_500",
            "http_502",
            "http_503",
        }
        attempts = services.settings.attempts_per_record
        assert fleet.llm_stats()["requests"] <= 150 * attempts
        assert view.job.total_ok > 0


def test_the_writer_writes_progress_about_once_every_k_records(tmp_path: Path) -> None:
    env = {"DATAGEN_UPDATE_EVERY_K_REQUESTS": "5", "DATAGEN_PROGRESS_FLUSH_SECONDS": "5"}
    with Fleet(tmp_path, ["a", "b", "c"], replica_env=env) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 300)
        wait_for_status(services, job_id, {"succeeded"})

        stats = httpx.get(f"{fleet.cstore_url}/__devnode/stats").json()
        writes = stats["writes"][f"datagen:job:{job_id}:peers"]
        for peer in ("a", "b", "c"):
            creation = 1  # the confirm wrote each peer's initial state
            assert writes[peer] - creation <= math.ceil(100 / 5) + 5, writes


def test_cancel_stops_every_replica_and_keeps_done_records_exportable(tmp_path: Path) -> None:
    with Fleet(tmp_path, ["a", "b", "c"], mock_args=("--latency-ms", "200")) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 3000)
        wait_until(
            lambda: all(done_count(services, job_id, p) >= 10 for p in "abc"),
            timeout=60,
            what="every peer at 10 records",
        )
        lifecycle.request_cancel(services, job_id, "alice")

        wait_until(
            lambda: all(
                s.cancelled_at and s.result_cid for s in services.peers.all(job_id).values()
            ),
            timeout=30,
            what="every peer stopped",
        )
        view = wait_for_status(services, job_id, {"cancelled"})
        calls_at_stop = fleet.llm_stats()["requests"]
        entries = exported_entries(services, job_id)
        assert len(entries) == view.job.total_generated >= 30
        assert len({e["i"] for e in entries}) == len(entries)
        assert calls_at_stop < 3000


def test_a_graceful_stop_with_records_in_flight_loses_nothing(tmp_path: Path) -> None:
    with Fleet(tmp_path, ["a"], mock_args=("--latency-ms", "300")) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 120)
        wait_until(lambda: done_count(services, job_id, "a") >= 20, timeout=60, what="20 done")

        assert fleet.replicas["a"].stop() == 0
        fleet.replicas["a"].start()

        wait_for_status(services, job_id, {"succeeded"})
        assert sorted(e["i"] for e in all_slice_lines(services, job_id)) == list(range(120))
        assert fleet.llm_stats()["requests"] <= 120 + CAP
