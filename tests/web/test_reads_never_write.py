"""Reads never write: a job every peer finished but nobody finalized yet is shown finished
by every read route, and none of them writes CStore; finalizing is the engine's one
idempotent operation (``lifecycle.finalize``)."""

from __future__ import annotations

from typing import Any

import pytest

from datagems.job import lifecycle
from datagems.store.base import CStore
from tests.web.harness import LiveApp, confirm, finish_job


class WriteSpy:
    """Every CStore write of the app's store (``set_raw`` / ``hset_raw``: the backend's)."""

    def __init__(self, cstore: CStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes: list[str] = []
        set_raw, hset_raw = cstore.set_raw, cstore.hset_raw

        def spied_set(key: str, value: Any) -> None:
            self.writes.append(key)
            set_raw(key, value)

        def spied_hset(hkey: str, field: str, value: Any) -> None:
            self.writes.append(f"{hkey}[{field}]")
            hset_raw(hkey, field, value)

        monkeypatch.setattr(cstore, "set_raw", spied_set)
        monkeypatch.setattr(cstore, "hset_raw", spied_hset)


def test_a_get_of_a_finished_job_not_yet_finalized_writes_nothing_to_cstore(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = live.login("alice")
    job_id = confirm(client, totalRecords=3)
    finish_job(live, job_id, [{"n": 1}, None, {"n": 3}])  # every range in, base not final
    services = live.services
    assert services is not None
    assert services.jobs.get(job_id).status == "queued"
    spy = WriteSpy(services.cstore, monkeypatch)

    view = client.get(f"/api/tasks/{job_id}")
    assert view.status_code == 200 and view.json()["job"]["status"] == "succeeded"
    assert client.get("/api/tasks").status_code == 200
    assert client.get(f"/api/tasks/{job_id}/records").status_code == 200
    exported = client.get(f"/api/tasks/{job_id}/export?format=json")
    assert exported.status_code == 200 and exported.json() == [{"n": 1}, None, {"n": 3}]
    with client.stream("GET", f"/api/tasks/{job_id}/events") as events:
        assert b"event: end" in b"".join(events.iter_bytes())
    assert client.get(f"/jobs/{job_id}").status_code == 200

    assert spy.writes == []
    assert services.jobs.get(job_id).status == "queued"  # shown finished, stored as it was


def test_finalizing_writes_the_finished_base_once_and_then_nothing(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = live.login("alice")
    job_id = confirm(client, totalRecords=2)
    finish_job(live, job_id, [{"n": 1}, {"n": 2}])
    services = live.services
    assert services is not None
    spy = WriteSpy(services.cstore, monkeypatch)

    finalized = lifecycle.finalize(services, job_id)
    assert finalized is not None and finalized.status == "succeeded"
    stored = services.jobs.get(job_id)
    assert stored.status == "succeeded" and stored.total_ok == 2
    assert any(job_id in key for key in spy.writes)

    spy.writes.clear()
    assert lifecycle.finalize(services, job_id).status == "succeeded"
    assert spy.writes == []  # idempotent: the stored base already says it
