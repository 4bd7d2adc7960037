"""The web layer's read cache, over HTTP: this replica's writes show at once, other
writers' (here the tests, writing the store as another replica would) within the TTL.

No timing is asserted: a change made elsewhere is waited for on a condition, with a
timeout far above ``READ_TTL_SECONDS``.
"""

from __future__ import annotations

import httpx

from datagems.job import commands, lifecycle
from datagems.models import CancelRequest, now_iso
from datagems.web.cache import READ_TTL_SECONDS
from tests.fleet import ADMIN_PASSWORD
from tests.web.harness import USER_PASSWORD, LiveApp, confirm, eventually, finish_job

GOOD = {"subject": "Printer", "body": "It jams.", "priority": "low"}
WAIT = max(10.0, 20 * READ_TTL_SECONDS)  # a bound for the condition waits, not a measure


def listed(client: httpx.Client, everyone: bool = False) -> dict[str, dict]:
    answer = client.get("/api/tasks?all=true" if everyone else "/api/tasks")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    return {job["id"]: job for job in answer.json()["jobs"]}


def viewed(client: httpx.Client, job_id: str) -> dict:
    answer = client.get(f"/api/tasks/{job_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


# --------------------------------------------------------------------------- own writes


def test_a_job_created_through_the_api_is_listed_and_shown_at_once(live: LiveApp) -> None:
    alice = live.login("alice")
    admin = live.login("admin", ADMIN_PASSWORD)
    before, everyone = listed(alice), listed(admin, everyone=True)  # both lists now cached
    job_id = confirm(alice, title="Fresh")
    assert job_id not in before and job_id not in everyone
    mine = listed(alice)
    assert mine[job_id]["title"] == "Fresh" and mine[job_id]["status"] == "queued"
    assert next(iter(mine)) == job_id  # newest first
    assert job_id in listed(admin, everyone=True)
    assert viewed(alice, job_id)["job"]["id"] == job_id


def test_a_cancel_retry_and_extend_through_the_api_show_at_once(live: LiveApp) -> None:
    alice = live.login("alice")
    cancelled = confirm(alice, totalRecords=2)
    assert viewed(alice, cancelled)["job"]["status"] == "queued"  # cached as queued
    assert alice.post(f"/api/tasks/{cancelled}/cancel").status_code == 202
    assert viewed(alice, cancelled)["job"]["status"] == "cancelled"
    assert listed(alice)[cancelled]["status"] == "cancelled"

    job_id = confirm(alice, totalRecords=3)
    finish_job(live, job_id, [GOOD, None, GOOD])
    assert viewed(alice, job_id)["job"]["status"] == "succeeded"  # a finished view, kept
    assert alice.post(f"/api/tasks/{job_id}/retry-failed").status_code == 202
    view = viewed(alice, job_id)
    assert view["job"]["status"] == "running" and view["control"]["retryRound"] == 1
    extended = alice.post(f"/api/tasks/{job_id}/extend", json={"additionalRecords": 2})
    assert extended.status_code == 202, extended.text
    view = viewed(alice, job_id)
    assert view["job"]["totalRecords"] == 5 and view["control"]["extendedBy"] == 2
    assert listed(alice)[job_id]["totalRecords"] == 5


# --------------------------------------------------------------------------- others' writes


def test_progress_written_by_another_replica_shows_within_the_ttl(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=4)
    assert viewed(alice, job_id)["job"]["status"] == "queued"
    assert listed(alice)[job_id]["status"] == "queued"
    finish_job(live, job_id, [GOOD, GOOD, None, GOOD])  # the peer's states, in the store

    def finished() -> bool:
        job = viewed(alice, job_id)["job"]
        return job["status"] == "succeeded" and job["totalOk"] == 3

    eventually(finished, "the view to show the job finished", timeout=WAIT)
    eventually(
        lambda: listed(alice)[job_id]["status"] == "succeeded",
        "the list to show the job finished",
        timeout=WAIT,
    )
    assert listed(alice)[job_id]["totalFailed"] == 1


def test_a_cancel_written_by_another_replica_shows_within_the_ttl(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=2)
    assert viewed(alice, job_id)["job"]["status"] == "queued"
    live.services.cancels.request(
        CancelRequest(job_id=job_id, requested_by="alice", requested_at=now_iso())
    )
    eventually(
        lambda: viewed(alice, job_id)["job"]["status"] == "cancelled",
        "the view to show the cancel",
        timeout=WAIT,
    )
    eventually(
        lambda: listed(alice)[job_id]["status"] == "cancelled",
        "the list to show the cancel",
        timeout=WAIT,
    )


def test_a_finished_job_reopened_by_another_replica_shows_within_the_ttl(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=3)
    finish_job(live, job_id, [GOOD, None, GOOD])
    lifecycle.finalize(live.services, job_id)  # the peer finalizes the stored base
    assert live.services.jobs.get(job_id).status == "succeeded"
    assert viewed(alice, job_id)["job"]["status"] == "succeeded"  # finished: kept as it is
    retry = commands.new_command("retry", job_id, "alice", via="b")  # taken by replica b
    commands.run(live.services, retry)  # and decided by this one, the job's owner

    def reopened() -> bool:
        view = viewed(alice, job_id)
        return view["job"]["status"] == "running" and view["control"]["retryRound"] == 1

    eventually(reopened, "the view to show the retry", timeout=WAIT)
    eventually(
        lambda: listed(alice)[job_id]["status"] == "running",
        "the list to show the retry",
        timeout=WAIT,
    )


def test_a_finished_job_rewritten_elsewhere_and_still_finished_shows_within_the_ttl(
    live: LiveApp,
) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=2, title="Before")
    finish_job(live, job_id, [GOOD, GOOD])
    lifecycle.finalize(live.services, job_id)
    assert viewed(alice, job_id)["job"]["title"] == "Before"  # finished: kept as it is
    job = live.services.jobs.get(job_id)
    job.title = "After"  # another writer (the original DataGems) rewrites the base
    live.services.jobs.put(job)
    eventually(
        lambda: viewed(alice, job_id)["job"]["title"] == "After",
        "the view to show the rewritten base",
        timeout=WAIT,
    )
    assert viewed(alice, job_id)["job"]["status"] == "succeeded"
    assert listed(alice)[job_id]["title"] == "After"


def test_a_job_created_by_another_replica_shows_within_the_ttl(live: LiveApp) -> None:
    alice = live.login("alice")
    listed(alice)
    job = lifecycle.create_job(
        live.services,
        owner="alice",
        draft={"title": "Elsewhere", "totalRecords": 2, "schema": {"type": "object"}},
        job_id="11111111-2222-5333-8444-555555555555",
    )
    eventually(lambda: job.id in listed(alice), "the list to show the job", timeout=WAIT)
    assert viewed(alice, job.id)["job"]["title"] == "Elsewhere"


# --------------------------------------------------------------------------- accounts


def test_an_account_deleted_through_this_replica_is_refused_at_once(live: LiveApp) -> None:
    live.accounts.create("gwen", USER_PASSWORD)
    gwen = live.login("gwen")
    assert gwen.get("/api/auth/me").status_code == 200  # the account is now cached
    admin = live.login("admin", ADMIN_PASSWORD)
    deleted = admin.request("DELETE", "/api/admin/accounts", json={"username": "gwen"})
    assert deleted.status_code == 200, deleted.text
    assert gwen.get("/api/auth/me").status_code == 401
    assert gwen.get("/api/tasks").status_code == 401


def test_an_account_deleted_by_another_replica_is_refused_within_the_ttl(live: LiveApp) -> None:
    live.accounts.create("dora", USER_PASSWORD)
    dora = live.login("dora")
    assert dora.get("/api/auth/me").status_code == 200  # the account is now cached
    assert dora.get("/api/tasks").status_code == 200
    live.accounts.soft_delete("dora", "admin")
    eventually(
        lambda: dora.get("/api/tasks").status_code == 401,
        "the deleted account's session to be refused",
        timeout=WAIT,
    )
    assert dora.get("/api/auth/me").status_code == 401


def test_a_password_changed_by_another_replica_refuses_the_old_one_at_once(
    live: LiveApp,
) -> None:
    live.accounts.create("emil", USER_PASSWORD)
    emil = live.login("emil")
    assert emil.get("/api/auth/me").status_code == 200
    live.accounts.set_password("emil", "a-new-Passw0rd-for-emil")
    with live.client() as client:
        old = client.post("/api/auth/login", json={"username": "emil", "password": USER_PASSWORD})
        assert old.status_code == 401  # sign-in never reads the cache
    me = live.login("emil", "a-new-Passw0rd-for-emil").get("/api/auth/me").json()
    assert (me["username"], me["role"]) == ("emil", "user")


def test_a_role_changed_by_another_replica_applies_within_the_ttl(live: LiveApp) -> None:
    live.accounts.create("finn", USER_PASSWORD, role="admin")
    finn = live.login("finn")
    assert finn.get("/api/admin/accounts").status_code == 200  # cached as an admin
    hkey = live.services.settings.auth_hkey
    record = live.services.cstore.hget(hkey, "finn")
    live.services.cstore.hset(hkey, "finn", {**record, "role": "user"})
    eventually(
        lambda: finn.get("/api/admin/accounts").status_code == 403,
        "the admin rights to end",
        timeout=WAIT,
    )
    assert finn.get("/api/auth/me").json()["role"] == "user"
