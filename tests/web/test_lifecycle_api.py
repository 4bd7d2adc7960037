"""A dataset's life over the API (issue 16, lifecycle): delete with its results, clone,
sort; the confirm uses what the user changed after drafting; a redraft takes feedback."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from datagems.errors import StoreRejected
from datagems.job import lifecycle as jobs
from datagems.job import removal
from datagems.job.state import summary_of
from datagems.store import keys
from tests.web.harness import LiveApp, confirm, draft, finish_job


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApp]:
    app = LiveApp(tmp_path).start()
    yield app
    app.stop()


def finished_job(live: LiveApp, client: httpx.Client, **changes: object) -> str:
    job_id = confirm(client, totalRecords=3, **changes)
    finish_job(live, job_id, [{"subject": "a"}, None, {"subject": "c"}])
    assert client.get(f"/api/tasks/{job_id}").json()["job"]["status"] == "succeeded"
    return job_id


def stored_traces(live: LiveApp, job_id: str, owner: str) -> dict[str, object]:
    """Every key of the job that a delete must remove, as the store has it now."""
    cstore = live.services.cstore
    return {
        "base": cstore.hget_raw(keys.JOBS, job_id),
        "peers": cstore.hgetall_raw(keys.job_peers(job_id)),
        "summary": cstore.hget_raw(keys.user_jobs(owner), job_id),
        "open": cstore.hget_raw(keys.OPEN_JOBS, job_id),
        "closed": cstore.hget_raw(keys.CLOSED_JOBS, job_id),
        "commands": cstore.hget_raw(keys.JOB_COMMANDS, job_id),
        "cancel": cstore.hget_raw(keys.CANCELS, job_id),
    }


def readable(live: LiveApp, cid: str) -> bool:
    try:
        live.services.r1fs.get_file(cid, secret=live.services.r1fs_secret)
    except StoreRejected:
        return False
    return True


def test_a_finished_job_is_deleted_with_its_keys_and_its_files(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = finished_job(live, alice)
    base = live.services.jobs.get(job_id)
    cids = removal.file_cids(base, live.services.peers.all(job_id))
    assert len(cids) == 2 and all(readable(live, cid) for cid in cids)  # details, slice

    answer = alice.delete(f"/api/tasks/{job_id}")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"jobId": job_id, "deleted": True}
    traces = stored_traces(live, job_id, "alice")
    assert all(not value for value in traces.values()), {k: v for k, v in traces.items() if v}
    assert not any(readable(live, cid) for cid in cids)
    assert alice.get(f"/api/tasks/{job_id}").status_code == 404
    assert job_id not in {job["id"] for job in alice.get("/api/tasks").json()["jobs"]}
    assert alice.delete(f"/api/tasks/{job_id}").status_code == 404


def test_a_running_job_is_not_deleted_and_the_answer_says_to_cancel_it_first(
    live: LiveApp,
) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=3)
    finish_job(live, job_id, [{"subject": "a"}], upload=False)  # one done, one in flight

    answer = alice.delete(f"/api/tasks/{job_id}")
    assert answer.status_code == 409
    assert "cancel it first" in answer.json()["error"]
    assert live.services.jobs.get(job_id) is not None

    # cancelled, its peer still stopping (it has not uploaded): not yet
    assert alice.post(f"/api/tasks/{job_id}/cancel").status_code == 202
    answer = alice.delete(f"/api/tasks/{job_id}")
    assert answer.status_code == 409 and "still stopping" in answer.json()["error"]
    finish_job(live, job_id, [{"subject": "a"}])  # it stopped and uploaded what it made
    assert alice.delete(f"/api/tasks/{job_id}").status_code == 200
    assert live.services.jobs.get(job_id) is None


def test_nobody_deletes_a_job_of_someone_else_but_an_admin(live: LiveApp) -> None:
    from tests.fleet import ADMIN_PASSWORD

    alice = live.login("alice")
    job_id = finished_job(live, alice)
    assert live.login("bob").delete(f"/api/tasks/{job_id}").status_code == 404
    assert live.services.jobs.get(job_id) is not None
    assert live.login("admin", ADMIN_PASSWORD).delete(f"/api/tasks/{job_id}").status_code == 200
    assert live.services.jobs.get(job_id) is None


def test_two_deletes_at_once_both_end_with_the_job_gone(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = finished_job(live, alice)
    answers: list[int] = []
    start = threading.Barrier(4)

    def delete() -> None:
        client = live.login("alice")
        start.wait()
        answers.append(client.delete(f"/api/tasks/{job_id}").status_code)

    threads = [threading.Thread(target=delete) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(set(answers)) in ([200], [200, 404]), answers
    traces = stored_traces(live, job_id, "alice")
    assert all(not value for value in traces.values()), {k: v for k, v in traces.items() if v}


def test_a_deleted_jobs_draft_cannot_be_confirmed_again(live: LiveApp) -> None:
    alice = live.login("alice")
    drafted = draft(alice, totalRecords=2)
    job_id = alice.post("/api/tasks/confirm", json={"draftToken": drafted["draftToken"]}).json()[
        "jobId"
    ]
    finish_job(live, job_id, [{"subject": "a"}, {"subject": "b"}])
    assert alice.delete(f"/api/tasks/{job_id}").status_code == 200
    again = alice.post("/api/tasks/confirm", json={"draftToken": drafted["draftToken"]})
    assert again.status_code == 400
    assert live.services.jobs.get(job_id) is None


def test_a_clone_is_a_new_draft_with_the_jobs_schema_and_settings(live: LiveApp) -> None:
    alice = live.login("alice")
    drafted = draft(alice, title="Tickets", totalRecords=4, datasetMode="classification")
    schema = drafted["schema"]
    schema["properties"]["extra"] = {"type": "integer", "minimum": 1}
    job_id = alice.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "schema": schema}
    ).json()["jobId"]

    clone = alice.post(f"/api/tasks/{job_id}/clone")
    assert clone.status_code == 200, clone.text
    cloned = clone.json()
    assert cloned["clonedFrom"] == job_id
    assert cloned["title"] == "Tickets" and cloned["totalRecords"] == 4
    assert cloned["schema"] == schema and list(cloned["schema"]["properties"]) == list(
        schema["properties"]
    )
    assert cloned["datasetMode"] is True
    made = alice.post("/api/tasks/confirm", json={"draftToken": cloned["draftToken"]})
    assert made.status_code == 200, made.text
    new_id = made.json()["jobId"]
    assert new_id != job_id
    details = alice.get(f"/api/tasks/{new_id}").json()["details"]
    assert details["schema"] == schema and details["totalRecords"] == 4
    assert live.login("bob").post(f"/api/tasks/{job_id}/clone").status_code == 404


def test_the_confirm_makes_the_job_with_the_records_typed_after_drafting(
    live: LiveApp,
) -> None:
    alice = live.login("alice")
    drafted = draft(alice, totalRecords=5)
    answer = alice.post(
        "/api/tasks/confirm",
        json={"draftToken": drafted["draftToken"], "totalRecords": 7, "title": "Renamed"},
    )
    assert answer.status_code == 200, answer.text
    job = alice.get(f"/api/tasks/{answer.json()['jobId']}").json()["job"]
    assert job["totalRecords"] == 7 and job["title"] == "Renamed"
    too_many = alice.post(
        "/api/tasks/confirm",
        json={"draftToken": draft(alice)["draftToken"], "totalRecords": 10**9},
    )
    assert too_many.status_code == 400 and "totalRecords" in too_many.json()["error"]


def test_a_redraft_sends_the_users_feedback_and_the_previous_schema_to_the_model(
    live: LiveApp,
) -> None:
    from datagems.web import draft_edits

    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    changed = draft_edits.with_feedback(messages, "add a severity field", {"type": "object"})
    assert changed[0] == messages[0]
    assert "Feedback on the previous draft: add a severity field" in changed[1]["content"]
    assert '{"type":"object"}' in changed[1]["content"]
    assert draft_edits.with_feedback(messages, "  ", None) == messages

    alice = live.login("alice")
    first = draft(alice)
    again = draft(
        alice, previousDraftToken=first["draftToken"], feedback="add a severity from 1 to 5"
    )
    assert again["schemaRefreshes"] == 1
    # the mock model changes the previous draft as asked (the real ones are told to)
    assert again["schema"]["properties"]["severity"]["maximum"] == 5
    assert set(first["schema"]["properties"]) < set(again["schema"]["properties"])


def test_the_list_sorts_by_title_and_oldest_first_across_pages(live: LiveApp) -> None:
    alice = live.login("alice")
    titles = ["delta", "Alpha", "charlie", "bravo", "echo"]
    made = []
    for n, title in enumerate(titles):
        job_id = str(uuid.uuid4())
        draft_ = {"title": title, "totalRecords": 1, "schema": {"type": "object"}}
        jobs.create_job(live.services, owner="alice", job_id=job_id, draft=draft_)
        base = live.services.jobs.get(job_id)
        base.created_at = f"2026-11-30T10:00:0{n}.000Z"
        live.services.jobs.put(base)
        live.services.user_jobs.put("alice", summary_of(base))
        if n % 2:
            state = live.services.peers.get(job_id, live.services.settings.host_addr)
            state.generated_ok = 1
            state.finished_at = state.started_at = base.created_at
            state.result_cid = live.services.r1fs.add_file(b"", "x.jsonl")
            live.services.peers.put(job_id, state)
            jobs.finalize(live.services, job_id)
        made.append(job_id)

    def every(**params: str) -> list[str]:
        found, cursor = [], None
        while True:
            query = {**params, "limit": "2", **({"cursor": cursor} if cursor else {})}
            answer = alice.get("/api/tasks", params=query)
            assert answer.status_code == 200, answer.text
            found += [job["title"] for job in answer.json()["jobs"]]
            cursor = answer.json()["nextCursor"]
            if not cursor:
                return found

    assert every(sort="title") == ["Alpha", "bravo", "charlie", "delta", "echo"]
    assert every(sort="oldest") == titles
    assert every() == titles[::-1]
    assert every(sort="title", q="a") == ["Alpha", "bravo", "charlie", "delta"]
    assert every(sort="oldest", status="succeeded") == ["Alpha", "bravo"]
    assert alice.get("/api/tasks", params={"sort": "size"}).status_code == 400
