"""``GET /api/tasks`` pages: newest first, a cursor, a bounded page size, filters by status,
title text and (admins) owner; every job listed exactly once however the pages are cut,
and never missing while jobs finish or come from the original DataGems."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from datagems.bench.original import confirm_as_original
from datagems.job import lifecycle, listing
from datagems.store import keys
from tests.fleet import ADMIN_PASSWORD
from tests.web.harness import LiveApp, eventually

DRAFT = {"totalRecords": 2, "schema": {"type": "object"}}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApp]:
    """A fresh app per test: each counts every job it sees."""
    app = LiveApp(tmp_path).start()
    yield app
    app.stop()


def make_job(live: LiveApp, owner: str, title: str, *, finished: bool = True) -> str:
    job_id = str(uuid.uuid4())
    lifecycle.create_job(live.services, owner=owner, job_id=job_id, draft={**DRAFT, "title": title})
    if finished:
        finish(live, job_id)
    return job_id


def finish(live: LiveApp, job_id: str) -> None:
    """Play the peer: its range done and uploaded, then the final base written."""
    services = live.services
    state = services.peers.get(job_id, services.settings.host_addr)
    state.generated_ok = state.assigned
    state.started_at = state.finished_at = state.last_update_at = "2026-11-30T10:00:00.000Z"
    state.result_cid = services.r1fs.add_file(b"", f"{job_id}.jsonl")
    services.peers.put(job_id, state)
    lifecycle.finalize(services, job_id)


def page(client: httpx.Client, **params: str | int) -> dict:
    answer = client.get("/api/tasks", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def every_page(client: httpx.Client, **params: str | int) -> list[dict]:
    """Follow ``nextCursor`` to the end; every job of every page, in order."""
    found: list[dict] = []
    cursor = None
    for _ in range(100):
        answer = page(client, **params, **({"cursor": cursor} if cursor else {}))
        assert len(answer["jobs"]) <= int(params.get("limit", listing.PAGE_SIZE))
        found += answer["jobs"]
        cursor = answer["nextCursor"]
        if cursor is None:
            return found
    raise AssertionError("the pages never ended")


def newest_first(listed: list[dict]) -> bool:
    keys_ = [(job["createdAt"], job["id"]) for job in listed]
    return keys_ == sorted(keys_, reverse=True)


def test_pages_list_every_job_once_newest_first_however_they_are_cut(live: LiveApp) -> None:
    alice = live.login("alice")
    made = [make_job(live, "alice", f"Batch {n}", finished=n % 3 != 0) for n in range(23)]
    make_job(live, "bob", "Not alice's")
    for limit in (1, 7, 23, 200):
        listed = every_page(alice, limit=limit)
        assert sorted(job["id"] for job in listed) == sorted(made), limit
        assert newest_first(listed)
    first = page(alice, limit=5)
    assert len(first["jobs"]) == 5 and first["nextCursor"]
    assert page(alice)["jobs"][0]["id"] == made[-1]


def test_filters_by_status_and_title_text_page_too(live: LiveApp) -> None:
    alice = live.login("alice")
    running = [make_job(live, "alice", f"Cats {n}", finished=False) for n in range(4)]
    done = [make_job(live, "alice", f"Dogs {n}") for n in range(5)]
    queued = {job["id"] for job in every_page(alice, status="queued", limit=3)}
    assert queued == set(running)
    succeeded = every_page(alice, status="succeeded,failed", limit=2)
    assert {job["id"] for job in succeeded} == set(done)
    assert all(job["status"] == "succeeded" for job in succeeded)
    assert {job["id"] for job in every_page(alice, q="DOGS 3")} == {done[3]}
    assert {job["id"] for job in every_page(alice, q="cats", status="queued")} == set(running)
    assert every_page(alice, q="birds") == []


def test_admins_list_everyone_or_one_owner_and_users_only_their_own(live: LiveApp) -> None:
    alice, admin = live.login("alice"), live.login("admin", ADMIN_PASSWORD)
    hers = {make_job(live, "alice", "Hers") for _ in range(3)}
    his = {make_job(live, "bob", "His") for _ in range(2)}
    assert {job["id"] for job in every_page(admin, all="true", limit=2)} == hers | his
    assert {job["id"] for job in every_page(admin, owner="bob")} == his
    assert every_page(admin) == []  # the admin's own jobs: none
    assert {job["id"] for job in every_page(alice, all="true")} == hers  # not an admin
    assert {job["id"] for job in every_page(alice, owner="bob")} == hers


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": listing.MAX_PAGE_SIZE + 1},
        {"limit": "ten"},
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJhIl0"},  # valid base64 of a list that is not a key
        {"status": "sleeping"},
        {"q": "x" * (listing.MAX_TEXT + 1)},
    ],
)
def test_a_bad_page_request_is_a_400(live: LiveApp, params: dict) -> None:
    answer = live.login("alice").get("/api/tasks", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]


def test_a_job_never_leaves_the_list_while_jobs_finish(live: LiveApp) -> None:
    alice = live.login("alice")
    assert every_page(alice, limit=5) == []  # the listing's head is read now, before the jobs
    made = [make_job(live, "alice", f"Job {n}", finished=False) for n in range(12)]
    eventually(lambda: len(every_page(alice, limit=5)) == 12, "the new jobs to be listed")
    stop = threading.Event()

    def finish_them() -> None:
        for job_id in made:
            if stop.is_set():
                return
            finish(live, job_id)

    worker = threading.Thread(target=finish_them)
    worker.start()
    try:
        while worker.is_alive():
            assert {job["id"] for job in every_page(alice, limit=5)} == set(made)
    finally:
        stop.set()
        worker.join(30)
    eventually(
        lambda: all(job["status"] == "succeeded" for job in every_page(alice)),
        "every job to show finished",
    )


def test_pages_further_down_than_the_head_still_list_every_job(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "HEAD_ROWS", 4)
    alice = live.login("alice")
    made = [make_job(live, "alice", f"Deep {n}") for n in range(15)]
    open_one = make_job(live, "alice", "Still open", finished=False)
    listed = every_page(alice, limit=3)
    assert [job["id"] for job in listed].count(open_one) == 1
    assert sorted(job["id"] for job in listed) == sorted([*made, open_one])
    assert newest_first(listed)


def test_jobs_the_original_wrote_are_listed_finished_or_not(live: LiveApp) -> None:
    tess_jobs = live.login("admin", ADMIN_PASSWORD)
    page(tess_jobs, owner="tess")  # a head for tess is kept from now on
    services = live.services
    running = confirm_as_original(
        services.cstore,
        services.r1fs,
        owner="tess",
        title="Running in the original",
        total=3,
        peers=["local"],
        schema={"type": "object"},
        gateway_url="http://127.0.0.1:1",
    )
    finished = confirm_as_original(
        services.cstore,
        services.r1fs,
        owner="tess",
        title="Finished in the original",
        total=3,
        peers=["local"],
        schema={"type": "object"},
        gateway_url="http://127.0.0.1:1",
    )
    for hkey in (keys.JOBS, keys.user_jobs("tess")):  # the original finished it (no index)
        value = orjson.loads(services.cstore.hget_raw(hkey, finished))
        services.cstore.hset_raw(
            hkey, finished, orjson.dumps({**value, "status": "succeeded"}).decode()
        )

    def both() -> bool:
        listed = {job["id"]: job for job in every_page(tess_jobs, owner="tess")}
        return listed.keys() == {running, finished} and listed[finished]["status"] == "succeeded"

    eventually(both, "the original's jobs to be listed")


def test_an_unreadable_job_is_listed_as_such_and_never_cuts_the_pages_short(
    live: LiveApp,
) -> None:
    alice = live.login("alice")
    made = [make_job(live, "alice", f"Readable {n}") for n in range(9)]
    broken = made[4]
    live.services.cstore.hset_raw(keys.JOBS, broken, "not json at all")
    for limit in (1, 2, 3, 4):
        listed = every_page(alice, limit=limit)
        assert sorted(job["id"] for job in listed) == sorted(made), limit
        odd = next(job for job in listed if job["id"] == broken)
        assert odd["status"] == "unreadable" and "reason" not in odd  # why: admins only
