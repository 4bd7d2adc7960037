"""Job control over HTTP on the in-process app (no engine: the tests play the peers):
retry-failed and extend answers, per-user caps, usage and takeovers in the job view, the
API token, and the crash-safe confirm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from datagems.accounts.tokens import DraftLedger, job_id_for_draft, read_draft
from datagems.models import PeerState, Range, RecentRecord, Takeover, now_iso
from datagems.store import keys
from tests.fleet import ADMIN_PASSWORD, SESSION_SECRET
from tests.web.harness import USER_PASSWORD, LiveApp, confirm, draft, finish_job

GOOD = {"subject": "Printer", "body": "It jams.", "priority": "low"}


def job_view(client: httpx.Client, job_id: str) -> dict:
    answer = client.get(f"/api/tasks/{job_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


# --------------------------------------------------------------------------- retry-failed


def test_retry_failed_answers_202_with_the_round_and_the_job_runs_again(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=4)
    finish_job(live, job_id, [GOOD, None, GOOD, None])
    assert job_view(alice, job_id)["job"]["status"] == "succeeded"

    answer = alice.post(f"/api/tasks/{job_id}/retry-failed")
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"jobId": job_id, "retryRound": 1, "records": 2}
    view = job_view(alice, job_id)
    assert view["job"]["status"] == "running"
    assert view["control"]["retryRound"] == 1 and view["control"]["retryRequestedAt"]

    again = alice.post(f"/api/tasks/{job_id}/retry-failed")
    assert again.status_code == 409
    assert again.json()["error"] == (
        "the job is running: retry failed records once it has finished"
    )


def test_retry_failed_is_409_without_failures_or_before_the_end_and_404_for_others(
    live: LiveApp,
) -> None:
    alice, bob = live.login("alice"), live.login("bob")
    queued = confirm(alice, totalRecords=2)
    answer = alice.post(f"/api/tasks/{queued}/retry-failed")
    assert answer.status_code == 409
    assert "the job is queued" in answer.json()["error"]

    clean = confirm(alice, totalRecords=2)
    finish_job(live, clean, [GOOD, GOOD])
    answer = alice.post(f"/api/tasks/{clean}/retry-failed")
    assert answer.status_code == 409
    assert answer.json() == {"error": "the job has no failed records to retry"}

    for path in (f"/api/tasks/{clean}/retry-failed", f"/api/tasks/{clean}/extend"):
        assert bob.post(path, json={"additionalRecords": 1}).status_code == 404


# --------------------------------------------------------------------------- extend


def test_extend_answers_202_with_the_new_total_and_refuses_out_of_bounds(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=3)
    finish_job(live, job_id, [GOOD, GOOD, GOOD])
    maximum = live.services.settings.max_records_per_job
    for bad in (0, -1, maximum, "2", 1.5, None, True):
        answer = alice.post(f"/api/tasks/{job_id}/extend", json={"additionalRecords": bad})
        assert answer.status_code == 400, (bad, answer.text)
    too_many = alice.post(f"/api/tasks/{job_id}/extend", json={"additionalRecords": maximum})
    assert too_many.json()["error"] == (
        f"additionalRecords must be between 1 and {maximum - 3} (at most {maximum} records per job)"
    )
    assert alice.post(f"/api/tasks/{job_id}/extend", json={}).status_code == 400

    answer = alice.post(f"/api/tasks/{job_id}/extend", json={"additionalRecords": 5})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"jobId": job_id, "totalRecords": 8}
    view = job_view(alice, job_id)
    assert view["job"]["totalRecords"] == 8 and view["job"]["status"] == "running"
    assert view["control"]["extensions"] == [{"start": 3, "end": 8}]
    assert view["control"]["extendedBy"] == 5


def test_a_cancelled_job_cannot_be_extended(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=2)
    assert alice.post(f"/api/tasks/{job_id}/cancel").status_code == 202
    answer = alice.post(f"/api/tasks/{job_id}/extend", json={"additionalRecords": 1})
    assert answer.status_code == 409
    assert answer.json() == {"error": "a cancelled job cannot be extended"}


# --------------------------------------------------------------------------- usage, takeovers


def test_the_job_view_has_usage_per_job_and_per_peer(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=4)
    finish_job(live, job_id, [GOOD, None, GOOD, GOOD])
    services = live.services
    state = services.peers.get(job_id, services.settings.host_addr)
    state.tokens_in, state.tokens_out, state.latency_ms_total = 400, 120, 1000.0
    state.retries, state.duplicates, state.abandoned_calls = 3, 1, 2
    services.peers.put(job_id, state)

    view = job_view(alice, job_id)
    expected = {
        "records": 4,
        "tokensIn": 400,
        "tokensOut": 120,
        "avgLatencyMs": 250.0,
        "retries": 3,
        "duplicates": 1,
        "abandonedCalls": 2,  # given up on timeout: the server may have billed them
        "failureReasons": {"schema_violation": 1},
    }
    assert view["usage"] == expected
    assert view["peers"][0]["usage"] == expected
    assert view["coverage"] == [
        {
            "peer": "local",
            "by": "local",
            "takenOver": False,
            "assigned": 4,
            "ok": 3,
            "failed": 1,
            "complete": True,
            "finishedAt": state.finished_at,
        }
    ]


def test_the_job_view_tells_whose_range_a_live_peer_finished(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=4)
    services = live.services
    job = services.jobs.get(job_id)
    job.peers, job.peer_count = ["local", "dead"], 2
    services.jobs.put(job)
    services.peers.put(
        job_id, PeerState(peer_id="dead", assigned=2, range=Range(start=2, end=4), generated_ok=1)
    )
    mine = services.peers.get(job_id, "local")
    mine.range, mine.assigned = Range(start=0, end=2), 2
    mine.generated_ok, mine.tokens_in, mine.latency_ms_total = 2, 50, 400.0
    mine.takeovers = {
        "dead": Takeover(
            peer_id="dead",
            range=Range(start=2, end=4),
            assigned=2,
            generated_ok=2,
            started_at=now_iso(),
        )
    }
    services.peers.put(job_id, mine)

    view = job_view(alice, job_id)
    by = {c["peer"]: c for c in view["coverage"]}
    assert by["dead"]["by"] == "local" and by["dead"]["takenOver"] is True
    assert by["dead"]["ok"] == 2 and by["local"]["by"] == "local"
    usage = {p["peerId"]: p["usage"] for p in view["peers"]}
    assert usage["local"]["records"] == 4 and usage["local"]["avgLatencyMs"] == 100.0
    assert view["peers"][0]["takeovers"]["dead"]["generatedOk"] == 2


def test_records_of_the_recent_list_carry_their_data(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=3)
    services = live.services
    state = services.peers.get(job_id, services.settings.host_addr)
    state.generated_ok, state.started_at = 1, now_iso()
    state.recent = [RecentRecord(i=0, ok=True, data={"subject": "<b>hi</b>"})]
    services.peers.put(job_id, state)
    page = alice.get(f"/api/tasks/{job_id}/records").json()
    assert page["records"][0]["data"] == {"subject": "<b>hi</b>"}


# --------------------------------------------------------------------------- API token


def test_an_api_token_is_issued_in_the_body_without_a_cookie_and_works_as_bearer(
    live: LiveApp,
) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:  # no Origin: a script
        answer = client.post(
            "/api/auth/token", json={"username": "alice", "password": USER_PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        assert "set-cookie" not in answer.headers
        body = answer.json()
        assert set(body) == {"token", "tokenType", "expiresAt", "username", "role"}
        assert body["tokenType"] == "Bearer" and body["username"] == "alice"
        assert body["role"] == "user" and body["expiresAt"].endswith("Z")
        me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
        assert (me.json()["username"], me.json()["role"]) == ("alice", "user")

        wrong = client.post("/api/auth/token", json={"username": "alice", "password": "nope"})
        unknown = client.post("/api/auth/token", json={"username": "zed", "password": "nope"})
        login = client.post("/api/auth/login", json={"username": "zed", "password": "nope"})
        assert wrong.status_code == unknown.status_code == login.status_code == 401
        assert wrong.json() == unknown.json() == login.json()
        assert client.post("/api/auth/token", json={}).status_code == 400


# --------------------------------------------------------------------------- crash-safe confirm


def test_a_confirm_that_died_after_claiming_the_draft_can_be_retried(live: LiveApp) -> None:
    alice = live.login("alice")
    token = draft(alice, totalRecords=2)["draftToken"]
    jti = read_draft(SESSION_SECRET, token, "alice")["jti"]
    job_id = job_id_for_draft(jti)
    DraftLedger(live.services.cstore).claim(jti, job_id)  # the replica died right here
    assert live.services.jobs.get(job_id) is None
    busy = alice.post("/api/tasks/confirm", json={"draftToken": token})
    assert busy.status_code == 409, busy.text  # as far as anyone knows, it is still at work
    assert busy.json() == {"error": "this draft is being confirmed by another request"}
    stale = {"jobId": job_id, "at": "2020-01-01T00:00:00.000Z", "nonce": "dead"}
    live.services.cstore.hset(keys.DRAFTS_USED, jti, stale)  # ... and that was long ago

    answer = alice.post("/api/tasks/confirm", json={"draftToken": token})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"jobId": job_id}
    assert job_view(alice, job_id)["job"]["totalRecords"] == 2
    replay = alice.post("/api/tasks/confirm", json={"draftToken": token})
    assert replay.status_code == 400
    assert replay.json() == {"error": "Invalid or expired draft"}


# --------------------------------------------------------------------------- per-user caps


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    app = LiveApp(
        Path(tmp_path_factory.mktemp("capped")),
        max_running_jobs_per_user=2,
        max_active_records_per_user=10,
        task_max_per_window=100,
    ).start()
    yield app
    app.stop()


def test_running_jobs_and_active_records_are_capped_per_user(capped: LiveApp) -> None:
    alice = capped.login("alice")
    first = confirm(alice, totalRecords=4)
    confirm(alice, totalRecords=4)
    token = draft(alice, totalRecords=1)["draftToken"]
    refused = alice.post("/api/tasks/confirm", json={"draftToken": token})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"] == (
        "you have 2 jobs running, the most allowed per user (2); "
        "wait for one to finish or cancel one"
    )
    assert refused.json()["retryAfter"] == int(refused.headers["Retry-After"])

    finish_job(capped, first, [GOOD] * 4)  # one ends: room again, the same draft confirms
    assert alice.post("/api/tasks/confirm", json={"draftToken": token}).status_code == 200

    bob = capped.login("bob")
    confirm(bob, totalRecords=8)
    token = draft(bob, totalRecords=3)["draftToken"]
    refused = bob.post("/api/tasks/confirm", json={"draftToken": token})
    assert refused.status_code == 429
    assert "still have 8 records to make" in refused.json()["error"]
    assert "room for 2 now" in refused.json()["error"]


def test_reopening_a_job_counts_against_the_caps_too(capped: LiveApp) -> None:
    capped.accounts.create("carol", USER_PASSWORD)
    carol = capped.login("carol")
    done = confirm(carol, totalRecords=2)
    finish_job(capped, done, [GOOD, None])
    confirm(carol, totalRecords=2)
    confirm(carol, totalRecords=2)
    for path, body in (
        (f"/api/tasks/{done}/retry-failed", None),
        (f"/api/tasks/{done}/extend", {"additionalRecords": 1}),
    ):
        answer = carol.post(path, json=body)
        assert answer.status_code == 429, path
        assert "jobs running" in answer.json()["error"]


def test_admins_are_exempt_from_the_caps(capped: LiveApp) -> None:
    admin = capped.login("admin", ADMIN_PASSWORD)
    ids = [confirm(admin, totalRecords=6) for _ in range(3)]  # 3 jobs, 18 records: over both
    assert len(set(ids)) == 3
    listed = {j["id"]: j for j in admin.get("/api/tasks").json()["jobs"]}
    assert all(listed[i]["status"] in ("queued", "running") for i in ids)
    assert sum(listed[i]["totalRecords"] for i in ids) == 18
