"""Retry failed records and extend a job, over a fleet, counting gateway calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from datagems.bench.procs import wait_until
from datagems.errors import Conflict
from tests.actors.jobkit import (
    all_slice_lines,
    ask,
    confirm_job,
    exported_entries,
    fleet_services,
    wait_for_status,
)
from tests.fleet import Fleet

pytestmark = pytest.mark.fleet
ONE_ATTEMPT = {"DATAGEN_INFERENCE_MAX_ATTEMPTS": "1"}


def caught_up(services, job_id: str, retry_round: int = 0, extensions: int = 0) -> bool:
    states = services.peers.all(job_id).values()
    return all(
        s.result_cid and s.retry_round >= retry_round and s.extensions_done >= extensions
        for s in states
    )


def test_retry_failed_calls_each_failed_record_once_and_the_export_improves(
    tmp_path: Path,
) -> None:
    mock = ("--schema-violation-rate", "0.4", "--seed", "3")
    with Fleet(tmp_path, ["a", "b", "c"], mock_args=mock, replica_env=ONE_ATTEMPT) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 120)
        first = wait_for_status(services, job_id, {"succeeded"})
        failed_before = [e["i"] for e in exported_entries(services, job_id) if not e["ok"]]
        assert first.job.total_failed == len(failed_before) > 0
        calls_before = fleet.llm_stats()["requests"]
        fleet.llm_config(schemaViolationRate=0.0)

        ask(services, "retry", job_id)
        wait_until(
            lambda: caught_up(services, job_id, retry_round=1),
            timeout=60,
            what="every peer through retry round 1",
        )
        view = wait_for_status(services, job_id, {"succeeded"})

        entries = exported_entries(services, job_id)
        assert [e["i"] for e in entries] == list(range(120))
        assert view.job.total_failed == sum(not e["ok"] for e in entries) < len(failed_before)
        assert fleet.llm_stats()["requests"] - calls_before == len(failed_before)
        retried = {e["i"]: e for e in entries if e["i"] in failed_before}
        assert all(e["history"][0]["reason"] == "schema_violation" for e in retried.values())


def test_retry_failed_is_refused_for_a_job_without_failures(tmp_path: Path) -> None:
    with Fleet(tmp_path, ["a"]) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 10)
        wait_for_status(services, job_id, {"succeeded"})
        with pytest.raises(Conflict, match="no failed records"):
            ask(services, "retry", job_id)


def test_extending_a_job_calls_only_the_new_records_split_over_every_peer(
    tmp_path: Path,
) -> None:
    with Fleet(tmp_path, ["a", "b", "c"]) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 90)
        wait_for_status(services, job_id, {"succeeded"})
        calls_before = fleet.llm_stats()["requests"]

        ask(services, "extend", job_id, 30)
        wait_until(
            lambda: caught_up(services, job_id, extensions=1),
            timeout=60,
            what="every peer through the extension",
        )
        view = wait_for_status(services, job_id, {"succeeded"})

        assert view.job.total_records == view.job.total_generated == 120
        assert [e["i"] for e in exported_entries(services, job_id)] == list(range(120))
        assert sorted(e["i"] for e in all_slice_lines(services, job_id)) == list(range(120))
        assert fleet.llm_stats()["requests"] - calls_before == 30
        shares = {p: [(r.start, r.end) for r in s.ranges] for p, s in view.peers.items()}
        assert shares == {
            "a": [(0, 30), (90, 100)],
            "b": [(30, 60), (100, 110)],
            "c": [(60, 90), (110, 120)],
        }
