"""Deleting a job on a fleet (devnode + mock-llm + replicas a and b): the delete goes
through the job's command owner, two deletes at once on two replicas both end with the
job gone, and its CStore keys and R1FS files are gone as the devnode's HTTP API sees it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from datagems.bench.procs import wait_until
from datagems.errors import StoreRejected
from datagems.store import keys
from tests.fleet import ADMIN_PASSWORD, Fleet

pytestmark = pytest.mark.fleet
PEERS = ("a", "b")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = Path(tmp_path_factory.mktemp("lifecycle"))
    env = {"DATAGEN_COMMAND_POLL_SECONDS": "0.1"}
    with Fleet(root, list(PEERS), mock_args=("--seed", "5"), replica_env=env) as running:
        running.start_replicas()
        yield running


def admin(fleet: Fleet) -> dict[str, httpx.Client]:
    first = fleet.replicas[PEERS[0]].url
    login = httpx.post(
        f"{first}/api/auth/login",
        json={"username": "admin", "password": ADMIN_PASSWORD},
        headers={"Origin": first},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    return {
        peer: httpx.Client(
            base_url=fleet.replicas[peer].url,
            headers={"Origin": fleet.replicas[peer].url},
            cookies=login.cookies,
            timeout=60,
        )
        for peer in PEERS
    }


def finished_job(client: httpx.Client, records: int = 6) -> str:
    drafted = client.post(
        "/api/tasks/schema",
        json={
            "title": "Pharmacy incidents",
            "totalRecords": records,
            "description": "Incident reports for a hospital pharmacy.",
            "instructions": "What happened, how severe, which medication.",
        },
    )
    assert drafted.status_code == 200, drafted.text
    made = client.post("/api/tasks/confirm", json={"draftToken": drafted.json()["draftToken"]})
    assert made.status_code == 200, made.text
    job_id = made.json()["jobId"]
    wait_until(
        lambda: (
            client.get(f"/api/tasks/{job_id}").json()["job"]["status"] in ("succeeded", "failed")
        ),
        timeout=90,
        what="the job finishes",
    )
    return job_id


def test_two_deletes_at_once_on_two_replicas_remove_every_key_and_file(fleet: Fleet) -> None:
    clients = admin(fleet)
    job_id = finished_job(clients["a"])
    base = fleet.cstore.hget(keys.JOBS, job_id)
    peers = fleet.cstore.hgetall(keys.job_peers(job_id))
    cids = [base["jobDetailsCid"]] + [p["resultCid"] for p in peers.values()]
    assert len(cids) == 1 + len(PEERS)
    for cid in cids:
        assert fleet.r1fs.get_file(cid)  # readable (the default secret of the fleet)

    answers: dict[str, int] = {}
    start = threading.Barrier(len(PEERS))

    def delete(peer: str) -> None:
        start.wait()
        answers[peer] = clients[peer].delete(f"/api/tasks/{job_id}").status_code

    threads = [threading.Thread(target=delete, args=(peer,)) for peer in PEERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert 200 in answers.values() and set(answers.values()) <= {200, 404}, answers

    # as the devnode's HTTP API has them now
    assert fleet.cstore.hget(keys.JOBS, job_id) is None
    assert fleet.cstore.hgetall(keys.job_peers(job_id)) == {}
    assert fleet.cstore.hget(keys.user_jobs("admin"), job_id) is None
    assert fleet.cstore.hget(keys.OPEN_JOBS, job_id) is None
    assert fleet.cstore.hget(keys.CLOSED_JOBS, job_id) is None
    assert fleet.cstore.hget(keys.JOB_COMMANDS, job_id) is None
    assert not [c for c in fleet.cstore.hgetall(keys.JOB_INBOX).values() if c["jobId"] == job_id]
    for cid in cids:
        with pytest.raises(StoreRejected):
            fleet.r1fs.get_file(cid)
        status = httpx.get(f"{fleet.r1fs_url}/get_file", params={"cid": cid}, timeout=10)
        assert status.status_code == 404
    for client in clients.values():
        assert client.get(f"/api/tasks/{job_id}").status_code == 404
        listed = client.get("/api/tasks", params={"all": "true"}).json()["jobs"]
        assert job_id not in {job["id"] for job in listed}


def test_a_delete_of_a_running_job_is_refused_on_every_replica(fleet: Fleet) -> None:
    clients = admin(fleet)
    fleet.llm_config(latencyMs=400)
    try:
        drafted = clients["a"].post(
            "/api/tasks/schema",
            json={
                "title": "Slow",
                "totalRecords": 40,
                "description": "Customers: name and city.",
                "instructions": "Varied.",
            },
        )
        made = clients["a"].post(
            "/api/tasks/confirm", json={"draftToken": drafted.json()["draftToken"]}
        )
        job_id = made.json()["jobId"]
        for client in clients.values():
            answer = client.delete(f"/api/tasks/{job_id}")
            assert answer.status_code == 409, answer.text
            assert "cancel it first" in answer.json()["error"]
        assert fleet.cstore.hget(keys.JOBS, job_id) is not None
        assert clients["b"].post(f"/api/tasks/{job_id}/cancel").status_code == 202

        def deleted() -> bool:
            answer = clients["b"].delete(f"/api/tasks/{job_id}")
            assert answer.status_code in (200, 409), answer.text
            return answer.status_code == 200

        wait_until(deleted, timeout=60, what="the cancelled job stops and is deleted")
        assert fleet.cstore.hget(keys.JOBS, job_id) is None
        assert fleet.cstore.hgetall(keys.job_peers(job_id)) == {}
    finally:
        fleet.llm_config(latencyMs=0)
