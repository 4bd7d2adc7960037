"""Job control over HTTP on a fleet of two replicas (devnode + mock-llm + a, b):

- a job with failures -> retry-failed -> every index once in the export, fewer failures,
  exactly one new gateway call per retried record (one attempt per record here);
- extend by n -> N + n indices once, gateway calls grew by exactly n;
- the (k+1)-th creation inside the window gets 429 with Retry-After, confirming
  alternately on replica a and replica b.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from datagems.accounts.users import Accounts
from datagems.bench.procs import wait_until
from tests.fleet import AUTH_PEPPER, Fleet

pytestmark = pytest.mark.fleet
TASKS_PER_WINDOW = 3


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    env = {
        "DATAGEN_INFERENCE_MAX_ATTEMPTS": "1",  # one call per record: calls are countable
        "DATAGEN_TASK_MAX_PER_WINDOW": str(TASKS_PER_WINDOW),
        "DATAGEN_TASK_RATE_WINDOW_SECONDS": "600",
        "DATAGEN_MAX_RUNNING_JOBS_PER_USER": "10",
    }
    mock = ("--schema-violation-rate", "0.4", "--seed", "3")
    root = Path(tmp_path_factory.mktemp("control"))
    with Fleet(root, ["a", "b"], mock_args=mock, replica_env=env) as running:
        running.start_replicas()
        yield running


def user(fleet: Fleet, name: str, replica: str = "a") -> httpx.Client:
    """A non-admin account written on the fleet's CStore, signed in on one replica."""
    password = f"{name}-Passw0rd!"
    Accounts(fleet.cstore, "datagen:auth", AUTH_PEPPER).create(name, password)
    url = fleet.replicas[replica].url
    client = httpx.Client(base_url=url, headers={"Origin": url}, timeout=30)
    answer = client.post("/api/auth/login", json={"username": name, "password": password})
    assert answer.status_code == 200, answer.text
    return client


def on(client: httpx.Client, fleet: Fleet, replica: str) -> httpx.Client:
    """The same session, talking to another replica."""
    url = fleet.replicas[replica].url
    return httpx.Client(base_url=url, headers={"Origin": url}, cookies=client.cookies, timeout=30)


def create(client: httpx.Client, records: int) -> httpx.Response:
    drafted = client.post(
        "/api/tasks/schema",
        json={
            "title": "People",
            "totalRecords": records,
            "description": "Customers of a software company: name, age, email, plan.",
            "instructions": "Realistic, varied people.",
        },
    )
    assert drafted.status_code == 200, drafted.text
    return client.post("/api/tasks/confirm", json={"draftToken": drafted.json()["draftToken"]})


def settled(client: httpx.Client, job_id: str, timeout: float = 90, retry_round: int = 0) -> dict:
    """The job's view once finished, and caught up with ``retry_round`` (a command given
    through another replica shows here within the read cache's TTL)."""

    def done() -> dict | None:
        view = client.get(f"/api/tasks/{job_id}").json()
        finished = view["job"]["status"] in ("succeeded", "failed")
        return view if finished and view["control"]["retryRound"] >= retry_round else None

    return wait_until(done, timeout=timeout, interval=0.2, what=f"job {job_id} to finish")


def exported(client: httpx.Client, job_id: str) -> list:
    answer = client.get(f"/api/tasks/{job_id}/export?format=json")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_retry_failed_then_extend_over_http_counting_gateway_calls(fleet: Fleet) -> None:
    tom = user(fleet, "tom")
    answer = create(tom, 60)
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["jobId"]
    first = settled(tom, job_id)
    failed_before = first["job"]["totalFailed"]
    assert failed_before > 0 and first["usage"]["failureReasons"]["schema_violation"] > 0
    assert first["usage"]["records"] == 60 and first["usage"]["avgLatencyMs"] is not None
    assert sum(p["usage"]["records"] for p in first["peers"]) == 60
    assert sum(record is None for record in exported(tom, job_id)) == failed_before

    fleet.llm_config(schemaViolationRate=0.0)
    try:
        calls = fleet.llm_stats()["requests"]
        retried = on(tom, fleet, "b").post(f"/api/tasks/{job_id}/retry-failed")  # via b
        assert retried.status_code == 202, retried.text
        assert retried.json() == {"jobId": job_id, "retryRound": 1, "records": failed_before}
        view = settled(tom, job_id, retry_round=1)
        assert view["control"]["retryRound"] == 1
        assert fleet.llm_stats()["requests"] - calls == failed_before
        records = exported(tom, job_id)
        assert len(records) == 60
        assert sum(record is None for record in records) == view["job"]["totalFailed"] == 0
        again = tom.post(f"/api/tasks/{job_id}/retry-failed")
        assert again.status_code == 409
        assert again.json() == {"error": "the job has no failed records to retry"}

        calls = fleet.llm_stats()["requests"]
        extended = tom.post(f"/api/tasks/{job_id}/extend", json={"additionalRecords": 20})
        assert extended.status_code == 202, extended.text
        assert extended.json() == {"jobId": job_id, "totalRecords": 80}
        view = settled(tom, job_id)
        assert view["job"]["totalRecords"] == view["job"]["totalGenerated"] == 80
        assert view["control"]["extendedBy"] == 20
        assert fleet.llm_stats()["requests"] - calls == 20
        jsonl = tom.get(f"/api/tasks/{job_id}/export?format=jsonl").text.splitlines()
        assert len(exported(tom, job_id)) == 80 and len(jsonl) == 80
    finally:
        fleet.llm_config(schemaViolationRate=0.4)


def test_the_creation_after_k_in_the_window_is_429_through_two_replicas(fleet: Fleet) -> None:
    rita_a = user(fleet, "rita", "a")
    rita_b = on(rita_a, fleet, "b")
    made = []
    for turn in range(TASKS_PER_WINDOW):
        answer = create(rita_a if turn % 2 == 0 else rita_b, 1)
        assert answer.status_code == 200, (turn, answer.text)
        made.append(answer.json()["jobId"])
    refused = create(rita_b if TASKS_PER_WINDOW % 2 else rita_a, 1)
    assert refused.status_code == 429, refused.text
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 600
    assert refused.json()["error"] == (
        f"too many new jobs: at most {TASKS_PER_WINDOW} per 600 s per user; "
        f"try again in {retry_after} s"
    )
    assert create(rita_a, 1).status_code == 429  # and on the other replica too
    # another user is not affected
    assert create(user(fleet, "sam", "b"), 1).status_code == 200
    for job_id in made:
        settled(rita_a, job_id)
