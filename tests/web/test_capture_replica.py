"""A Python replica on a devnode seeded with the original app's recorded run: it lists every
job the original made, shows each job page, and exports each finished job with the same
records as the original's own export (``exports/``: JSON equal, CSV the same rows)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import orjson
import pytest

from tests import capture
from tests.fleet import Fleet

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module", params=capture.STORES)
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A devnode holding one captured store, and a replica (peer ``py``) on it, configured
    with the original's secrets (session secret, auth hash key, pepper)."""
    stage = request.param
    root: Path = tmp_path_factory.mktemp(f"capture-{stage}")
    env = {
        "DATAGEN_SESSION_SECRET": capture.SESSION_SECRET,
        "R1EN_CSTORE_AUTH_HKEY": "datagen:auth",
        "R1EN_CSTORE_AUTH_SECRET": capture.AUTH_PEPPER,
        "R1EN_CSTORE_AUTH_BOOTSTRAP_ADMIN_PWD": capture.ADMIN_PASSWORD,
    }
    with Fleet(root, ["py"], replica_env=env) as fleet:
        capture.seed(fleet.cstore, fleet.r1fs, stage)
        fleet.start_replicas()
        yield stage, fleet


def login(fleet: Fleet, username: str, password: str) -> closing[httpx.Client]:
    url = fleet.replicas["py"].url
    client = httpx.Client(base_url=url, headers={"Origin": url}, timeout=30)
    answer = client.post("/api/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return closing(client)


def test_every_captured_job_is_listed(seeded) -> None:
    stage, fleet = seeded
    captured = capture.jobs(stage)
    with login(fleet, "admin", capture.ADMIN_PASSWORD) as admin:
        listed = admin.get("/api/tasks", params={"all": "true"}).json()["jobs"]
    assert {job["id"] for job in listed} == set(captured)
    for job in listed:
        stored = captured[job["id"]]
        assert job["status"] == stored["status"]
        assert job["datasetMode"] is stored["datasetMode"]
        assert (job["totalOk"], job["totalFailed"]) == (stored["totalOk"], stored["totalFailed"])
    if stage == "stage2":  # the owner signs in with the password the original mailed her
        with login(fleet, *capture.TESS) as tess:
            mine = tess.get("/api/tasks").json()["jobs"]
        assert {job["id"] for job in mine} == set(captured)


def test_every_captured_job_has_its_page(seeded) -> None:
    stage, fleet = seeded
    with login(fleet, "admin", capture.ADMIN_PASSWORD) as admin:
        for job_id, stored in capture.jobs(stage).items():
            page = admin.get(f"/jobs/{job_id}")
            assert page.status_code == 200 and job_id in page.text
            view = admin.get(f"/api/tasks/{job_id}").json()
            assert view["job"]["status"] == stored["status"]
            assert view["details"]["inference"]["path"] == "/create_chat_completion"
            assert {p["peerId"] for p in view["peers"]} == set(stored["peers"])


def test_every_finished_job_exports_the_records_the_original_exports(seeded) -> None:
    stage, fleet = seeded
    exports = {k: v for k, v in capture.exports().items() if capture.stage_of(k) == stage}
    assert exports
    with login(fleet, "admin", capture.ADMIN_PASSWORD) as admin:
        for job_id, (their_json, their_csv) in exports.items():
            ours = admin.get(f"/api/tasks/{job_id}/export", params={"format": "json"})
            assert ours.status_code == 200
            assert orjson.loads(ours.content) == their_json, job_id
            ours_csv = rows(admin.get(f"/api/tasks/{job_id}/export", params={"format": "csv"}).text)
            # the original writes a blank line (no record to a reader) per failed index; ours
            # a row of empty cells, so the CSV has the JSON's rows: the rest is the same
            assert len(ours_csv) == len(their_json), job_id
            assert [r for r in ours_csv if any(r.values())] == rows(their_csv), job_id


def test_the_metrics_agree_with_the_captured_jobs_on_both_dashboards(seeded) -> None:
    """The original's datagen:metrics counted a record made twice twice (it ran two worker
    loops on one slice); the replica rewrites it from the jobs, as its own metrics are."""
    stage, fleet = seeded
    jobs = capture.jobs(stage).values()
    expected = {
        "totalJobs": len(jobs),
        "totalRecordsRequested": sum(j["totalRecords"] for j in jobs),
        "totalRecordsGenerated": sum(j["totalOk"] for j in jobs),
        "activeJobs": 0,
        "failedJobs": sum(1 for j in jobs if j["status"] == "failed"),
        "lastJobAt": max(j.get(k, "") for j in jobs for k in ("createdAt", "jobStartedAt")),
    }
    with login(fleet, "admin", capture.ADMIN_PASSWORD) as admin:
        assert admin.get("/api/metrics").json()["metrics"] == expected
    from datagems.bench.procs import wait_until

    wait_until(lambda: fleet.cstore.get("datagen:metrics") == expected, timeout=30)


def rows(text: str) -> list[dict[str, str]]:
    """The CSV's records, as a reader sees them (blank lines are no records)."""
    return list(csv.DictReader(io.StringIO(text)))


def test_the_captured_secrets_never_reach_the_replicas_log(seeded) -> None:
    _, fleet = seeded
    output = fleet.replicas["py"].process.output()
    assert output and not [secret for secret in capture.SECRETS if secret in output]
