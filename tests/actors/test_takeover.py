"""A dead replica's range is finished by a survivor; a late return changes nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from datagems.bench.procs import wait_until
from datagems.models import parse_iso
from tests.actors.jobkit import confirm_job, exported_entries, fleet_services, wait_for_status
from tests.fleet import Fleet

pytestmark = pytest.mark.fleet
LEASE = 3.0
ENV = {"DATAGEN_PEER_LEASE_SECONDS": str(LEASE)}


def done_count(services, job_id: str, peer: str) -> int:
    state = services.peers.get(job_id, peer)
    return state.done if state else 0


def test_a_replica_killed_for_good_has_its_range_finished_by_a_survivor(tmp_path: Path) -> None:
    with Fleet(
        tmp_path, ["a", "b", "c"], mock_args=("--latency-ms", "100"), replica_env=ENV
    ) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 450)
        wait_until(lambda: done_count(services, job_id, "b") >= 20, timeout=60, what="b at 20")
        fleet.replicas["b"].kill()
        stopped = services.peers.get(job_id, "b")  # its last own write: nothing comes after
        assert stopped is not None

        view = wait_for_status(services, job_id, {"succeeded"}, timeout=60)

        assert [e["i"] for e in exported_entries(services, job_id)] == list(range(450))
        takers = [p for p, s in view.peers.items() if "b" in s.takeovers]
        assert takers == ["c"]  # the next live peer after b in the job's peer order
        took, left = view.peers["c"].takeovers["b"], view.peers["b"]
        assert took.result_cid and took.done == took.assigned == left.assigned == 150
        assert stopped.done < stopped.assigned and not stopped.result_cid  # b stopped mid-range
        silent = parse_iso(took.started_at) - parse_iso(stopped.last_update_at)
        assert silent > timedelta(seconds=LEASE)  # taken only once b was silent past its lease
        # b's own state then shows the range done by c, for the original app's readers
        assert left.completed_by == "c" and left.result_cid == took.result_cid
        assert left.done == left.assigned


def test_a_replica_back_during_its_takeover_leaves_every_index_once(tmp_path: Path) -> None:
    with Fleet(tmp_path, ["a", "b"], mock_args=("--latency-ms", "100"), replica_env=ENV) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        job_id = confirm_job(services, 300)
        wait_until(lambda: done_count(services, job_id, "b") >= 10, timeout=60, what="b at 10")
        fleet.replicas["b"].kill()
        wait_until(
            lambda: "b" in services.peers.get(job_id, "a").takeovers,
            timeout=30,
            what="a taking over b",
        )

        fleet.replicas["b"].start()  # b resumes its own range while a works it too
        view = wait_for_status(services, job_id, {"succeeded"}, timeout=60)

        entries = exported_entries(services, job_id)
        assert [e["i"] for e in entries] == list(range(300))
        assert view.job.total_generated == 300
