"""``/api/tasks/{id}/report`` on the in-process app: a running job's report is live (its
latest records, built at most every few seconds however often it is asked), a finished
one is built once per set of slices, the cost follows the prices of the job's inference
profile, and the per-job threshold is kept with the job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from datagems.models import RecentRecord, now_iso
from datagems.web.api_report import REPORT_CACHE
from tests.web.harness import LiveApp, draft, finish_job


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    live = LiveApp(Path(tmp_path_factory.mktemp("report-api"))).start()
    yield live
    live.stop()


def test_the_cost_follows_the_prices_set_on_the_jobs_profile(app: LiveApp) -> None:
    alice = app.login("alice")
    saved = alice.post(
        "/api/user/settings",
        json={
            "name": "Priced",
            "baseUrl": app.services.settings.inference_base_url,
            "apiKey": "sk-test-1234567890",
            "priceInPerMillion": 0.5,
            "priceOutPerMillion": 2,
            "setActive": True,
        },
    )
    assert saved.status_code == 200, saved.text
    profile = saved.json()["profiles"][0]
    assert (profile["priceInPerMillion"], profile["priceOutPerMillion"]) == (0.5, 2.0)
    drafted = draft(alice, totalRecords=2)
    confirmed = alice.post(
        "/api/tasks/confirm",
        json={
            "draftToken": drafted["draftToken"],
            "useExternalApi": True,
            "profileId": profile["id"],
            "nearDuplicateThreshold": 0.9,
        },
    )
    assert confirmed.status_code == 200, confirmed.text
    job_id = confirmed.json()["jobId"]
    services = app.services
    state = services.peers.get(job_id, services.settings.host_addr)
    state.tokens_in, state.tokens_out = 2_000_000, 500_000
    services.peers.put(job_id, state)
    finish_job(app, job_id, [{"subject": "a"}, {"subject": "b"}])

    report = alice.get(f"/api/tasks/{job_id}/report").json()
    assert report["usage"]["cost"] == {
        "input": 1.0,
        "output": 1.0,
        "total": 2.0,
        "pricePerMillionIn": 0.5,
        "pricePerMillionOut": 2.0,
    }
    assert report["nearDuplicates"]["threshold"] == 0.9  # the job's own
    assert (
        alice.get(f"/api/tasks/{job_id}/report?threshold=0.5").json()["nearDuplicates"]["threshold"]
        == 0.5
    )
    assert alice.get(f"/api/tasks/{job_id}/report?threshold=2").status_code == 400
    cleared = alice.post(
        "/api/user/settings", json={"id": profile["id"], "priceInPerMillion": None}
    )
    assert "priceInPerMillion" not in cleared.json()["profiles"][0]
    assert cleared.json()["profiles"][0]["priceOutPerMillion"] == 2.0


def test_a_finished_report_is_built_once_and_a_running_one_shows_its_latest_records(
    app: LiveApp,
) -> None:
    bob = app.login("bob")
    drafted = draft(bob, totalRecords=4)
    job_id = bob.post("/api/tasks/confirm", json={"draftToken": drafted["draftToken"]}).json()[
        "jobId"
    ]
    services = app.services
    state = services.peers.get(job_id, services.settings.host_addr)
    state.started_at = now_iso()
    state.generated_ok = 2
    state.recent = [
        RecentRecord(i=0, ok=True, data={"subject": "x"}),
        RecentRecord(i=1, ok=True, data={"subject": "y"}),
    ]
    services.peers.put(job_id, state)
    app.app[REPORT_CACHE].kept.clear()
    live = bob.get(f"/api/tasks/{job_id}/report").json()
    assert live["partial"] and live["status"] == "running"
    assert live["records"]["ok"] == 2 and live["basis"] == {"slices": 0, "latest": 2}
    builds = app.app[REPORT_CACHE].builds
    for _ in range(5):
        bob.get(f"/api/tasks/{job_id}/report")
    assert app.app[REPORT_CACHE].builds == builds  # polls within the live interval: no rebuild

    finish_job(app, job_id, [{"subject": s} for s in "abcd"])

    def finished() -> dict | None:
        report = bob.get(f"/api/tasks/{job_id}/report").json()
        return report if report["status"] == "succeeded" else None

    from datagems.bench.procs import wait_until

    done = wait_until(finished, timeout=30, what="the finished report")
    assert done["records"]["ok"] == 4 and not done["partial"]
    builds = app.app[REPORT_CACHE].builds
    for _ in range(5):
        assert bob.get(f"/api/tasks/{job_id}/report").json()["records"]["ok"] == 4
    assert app.app[REPORT_CACHE].builds == builds
    assert orjson.loads(bob.get(f"/api/tasks/{job_id}/report").content)["jobId"] == job_id
