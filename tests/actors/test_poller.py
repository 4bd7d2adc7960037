"""The poller works from the open-jobs index: a job the original DataGems writes straight
into ``datagen:jobs`` is still found and worked, and a crash between a job's write and its
index entry is repaired when the replica starts again. Real processes: devnode, mock
gateway, replica."""

from __future__ import annotations

from pathlib import Path

import pytest

from datagems import job_index, jobs
from datagems.bench.original import confirm_as_original
from datagems.models import TERMINAL_STATUSES
from datagems.store import keys
from tests.actors.jobkit import (
    PERSON_SCHEMA,
    confirm_job,
    exported_entries,
    fleet_services,
    wait_for_status,
)
from tests.fleet import Fleet
from tests.servers import wait_until

pytestmark = pytest.mark.fleet


def test_a_job_the_original_writes_straight_into_the_store_is_found_and_worked(
    tmp_path: Path,
) -> None:
    with Fleet(tmp_path, peers=["a"]) as fleet:
        services = fleet_services(fleet)
        done = confirm_job(services, 2)  # history the replica finds at start
        fleet.start_replicas()
        wait_for_status(services, done, {"succeeded"})
        job_id = confirm_as_original(
            fleet.cstore,
            fleet.r1fs,
            owner="tess",
            title="Bikes from the original",
            total=4,
            peers=["a"],
            schema=PERSON_SCHEMA,
            gateway_url=fleet.llm_url,
        )
        assert job_id not in job_index.open_entries(services)  # the original never indexes
        view = wait_for_status(services, job_id, {"succeeded"})
        assert view.job.total_ok == 4
        assert [entry["i"] for entry in exported_entries(services, job_id)] == [0, 1, 2, 3]
        wait_until(
            lambda: job_id not in job_index.open_entries(services),
            what="the finished job to leave the index",
        )


def test_a_crash_between_a_jobs_write_and_its_index_entry_is_repaired_at_the_next_start(
    tmp_path: Path,
) -> None:
    with Fleet(tmp_path, peers=["a"]) as fleet:
        services = fleet_services(fleet)
        fleet.start_replicas()
        finished = confirm_job(services, 2)
        wait_for_status(services, finished, {"succeeded"})
        fleet.replicas["a"].stop()
        # a job written by a replica that died before its entry (an older version, or a
        # write a replicated store lost): the index is current but lacks the job
        missing = confirm_job(services, 3)
        services.cstore.hset_raw(keys.OPEN_JOBS, missing, None)
        # a replica that wrote a final base and died before taking its entry out
        job_index.open_job(services, services.jobs.get(finished))
        assert set(job_index.open_entries(services)) == {finished}
        fleet.start_replicas()
        view = wait_for_status(services, missing, {"succeeded"})
        assert view.job.total_ok == 3
        wait_until(
            lambda: not job_index.open_entries(services),
            what="the index to hold no finished job",
        )
        assert jobs.load_job(services, finished).job.status in TERMINAL_STATUSES
