"""Answers from a user's provider are read with a cap (issue 13, item 12): a replica
process against a provider that answers 150 MB keeps its memory and fails the records
with a named reason."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import psutil
import pytest

from datagems.job import lifecycle
from datagems.models import InferenceProfile, UserSettings
from tests.actors.jobkit import PERSON_SCHEMA, fleet_services, wait_for_status
from tests.fleet import Fleet

pytestmark = pytest.mark.fleet
MB = 2**20


class PeakRss:
    """Samples a process's RSS in a thread while the block runs; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(2)


def test_a_150_mb_provider_answer_keeps_the_replica_small_and_fails_provider_error(
    tmp_path: Path,
) -> None:
    with Fleet(tmp_path, ["a"]) as fleet:
        fleet.start_replicas()
        fleet.llm_config(hugeAnswerMb=150)
        services = fleet_services(fleet)
        profile = InferenceProfile(id="big", base_url=f"{fleet.llm_url}/v1", model="mock-llm")
        services.user_settings.put("alice", UserSettings(profiles=[profile]))
        job_id = str(uuid.uuid4())
        draft = {
            "title": "People",
            "totalRecords": 3,
            "description": "Customers",
            "schema": PERSON_SCHEMA,
            "inference": {"useExternalApi": True, "profileId": "big"},
        }
        pid = fleet.replicas["a"].process.proc.pid
        with PeakRss(pid) as rss:
            lifecycle.create_job(services, owner="alice", job_id=job_id, draft=draft)
            view = wait_for_status(services, job_id, {"failed", "succeeded"}, timeout=120)
        assert fleet.llm_stats()["modes"]["huge"] >= 3
    assert view.job.status == "failed" and view.job.total_failed == 3
    assert view.peers["a"].failure_reasons == {"provider_error": 3}
    assert "larger than" in (view.peers["a"].recent[-1].message or "")
    print(f"replica peak RSS {rss.peak / MB:.0f} MB")
    assert rss.peak < 200 * MB, f"peak RSS {rss.peak / MB:.0f} MB"
