"""A fleet with peers of the original app (the stand-in of ``tests/original_peer.py``, which
writes what the recorded run of the original shows) and replicas of ours, on one devnode
and one mock gateway."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from datagems.bench.procs import wait_until
from datagems.job import lifecycle
from datagems.services import Services
from tests import capture
from tests.actors.jobkit import confirm_job, exported_entries, fleet_services
from tests.fleet import ADMIN_PASSWORD, Fleet
from tests.original_peer import OriginalPeer

pytestmark = pytest.mark.fleet
LABELLED: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "brand": {"type": "string", "minLength": 1},
        "year": {"type": "integer", "minimum": 1990, "maximum": 2025},
        "label": {"type": "string", "enum": ["good", "fair", "poor"]},
    },
    "required": ["brand", "year", "label"],
    "additionalProperties": False,
}


@contextmanager
def mixed(
    root: Path,
    peers: list[str],
    originals: list[str],
    *,
    env: dict[str, Any] | None = None,
    record_seconds: float = 0.0,
    mock_args: tuple[str, ...] = (),
) -> Iterator[tuple[Fleet, dict[str, OriginalPeer], Services]]:
    """devnode + mock gateway + the replicas of ours in ``peers`` + stand-ins for the
    original app's ``originals``."""
    replica_env = {"DATAGEN_PEER_LEASE_SECONDS": "2", **(env or {})}
    with Fleet(root, peers, replica_env=replica_env, mock_args=mock_args) as fleet:
        stand_ins = {
            peer: OriginalPeer(
                peer,
                peers,
                cstore_url=fleet.cstore_url,
                r1fs_url=fleet.r1fs_url,
                gateway_url=fleet.llm_url,
                cache_dir=root / f"original-{peer}",
                record_seconds=record_seconds,
            )
            for peer in originals
        }
        ours = [p for p in peers if p not in originals]
        try:
            if ours:
                fleet.start_replicas(ours)
            for stand_in in stand_ins.values():
                stand_in.start()
            yield fleet, stand_ins, fleet_services(fleet)
        finally:
            for stand_in in stand_ins.values():
                stand_in.close()


def stored_base(fleet: Fleet, job_id: str) -> dict[str, Any]:
    """The job base as stored: what the original app's dashboard shows."""
    return orjson.loads(fleet.cstore.hget_raw("datagen:jobs", job_id))


def stored_state(fleet: Fleet, job_id: str, peer: str) -> dict[str, Any]:
    return orjson.loads(fleet.cstore.hget_raw(f"datagen:job:{job_id}:peers", peer))


def original_view_done(fleet: Fleet, job_id: str) -> bool:
    """The original's test of a finished job: every peer state done, with a resultCid."""
    states = fleet.cstore.hgetall(f"datagen:job:{job_id}:peers").values()
    return all(
        s["generatedOk"] + s["generatedFailed"] >= s["assigned"] and s.get("resultCid")
        for s in states
    )


def gateway_calls(fleet: Fleet) -> int:
    return fleet.llm_stats()["byPath"].get("/create_chat_completion", 0)


def admin(fleet: Fleet, peer: str) -> closing[httpx.Client]:
    url = fleet.replicas[peer].url
    client = httpx.Client(base_url=url, headers={"Origin": url}, timeout=30)
    answer = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert answer.status_code == 200, answer.text
    return closing(client)


def test_the_stand_in_writes_what_and_when_the_original_did(tmp_path: Path) -> None:
    """Checked against the recorded two-peer run (stage 3): the same peer-state sequence
    (fields in order, no lastUpdateAt at start, one every K records, resultCid at the end),
    the base queued -> running -> succeeded, and the same shapes."""
    with mixed(tmp_path, ["ts1", "ts2"], ["ts1", "ts2"]) as (fleet, stand_ins, _):
        job_id = stand_ins["ts1"].confirm(
            owner="admin", title="Stand-in", total=12, schema=LABELLED
        )
        wait_until(lambda: stored_base(fleet, job_id)["status"] == "succeeded", timeout=60)
        recorded = [
            orjson.loads(orjson.loads(w["reqBody"])["value"])
            for w in capture.writes("stage3")
            if w["path"] == "/hset" and orjson.loads(w["reqBody"])["hkey"].endswith(":peers")
        ]
        for peer in ("ts1", "ts2"):  # the worker's writes (not the confirm's), field order
            theirs = [list(v) for v in recorded if v["peerId"] == peer and "startedAt" in v]
            ours = [list(v) for v in stand_ins[peer].state_writes(job_id) if "startedAt" in v]
            assert ours == theirs, peer
            assert "lastUpdateAt" not in ours[0] and "resultCid" in ours[-1]
        final = capture.jobs("stage3")["job_1796076906069_464975"]
        assert list(stored_base(fleet, job_id)) == list(final)
        assert gateway_calls(fleet) == 12


def test_a_job_confirmed_the_original_way_is_finished_by_both_kinds_of_peer(
    tmp_path: Path,
) -> None:
    """Boolean datasetMode, the original's confirm and peer-state sequence: the replica of
    ours works its range (labelled records), the stand-in its own; both dashboards agree,
    and so do both metrics, with the jobs in the store."""
    with mixed(tmp_path, ["ts", "py"], ["ts"]) as (fleet, stand_ins, services):
        job_id = stand_ins["ts"].confirm(
            owner="admin", title="Mixed", total=20, schema=LABELLED, dataset_mode=True
        )
        wait_until(lambda: stored_base(fleet, job_id)["status"] == "succeeded", timeout=60)

        base = stored_base(fleet, job_id)
        assert (base["totalOk"], base["totalFailed"], base["totalGenerated"]) == (20, 0, 20)
        assert original_view_done(fleet, job_id)
        view = lifecycle.load_job(services, job_id)
        assert view is not None and view.job.status == "succeeded"
        assert not view.peers["py"].takeovers and not view.peers["ts"].completed_by
        entries = exported_entries(services, job_id)
        assert [e["i"] for e in entries] == list(range(20)) and all(e["ok"] for e in entries)
        labels = {e["data"]["label"] for e in entries if e["i"] >= 10}  # py's range
        assert labels == {"good", "fair", "poor"}  # balanced classes: the labelled mode
        assert gateway_calls(fleet) == 20

        with admin(fleet, "py") as client:
            page = client.get(f"/api/tasks/{job_id}").json()
            assert page["originalPeers"] == ["ts"]
            assert {p["peerId"]: p["kind"] for p in page["peers"]} == {
                "ts": "original",
                "py": "datagems",
            }
            assert "keep generating after a cancel" in page["notes"][0]
            stored = [orjson.loads(v) for v in fleet.cstore.hgetall_raw("datagen:jobs").values()]
            truth = {  # what the jobs in the store say
                "totalJobs": len(stored),
                "totalRecordsRequested": sum(j["totalRecords"] for j in stored),
                "totalRecordsGenerated": sum(j["totalOk"] for j in stored),
                "activeJobs": sum(j["status"] in ("queued", "running") for j in stored),
                "failedJobs": sum(j["status"] == "failed" for j in stored),
                "lastJobAt": max(j[k] for j in stored for k in ("createdAt", "jobStartedAt")),
            }
            assert truth["totalJobs"] == 1 and truth["totalRecordsGenerated"] == 20
            assert (
                client.get("/api/metrics").json()["metrics"] == truth == lifecycle.metrics(services)
            )
        # the original's key, which it updated by read-modify-write, says the same
        wait_until(lambda: fleet.cstore.get("datagen:metrics") == truth, timeout=30)


def test_a_slow_peer_of_the_original_app_is_never_taken_over(tmp_path: Path) -> None:
    """Its first K records take longer than the replicas' lease, and a second job waits for
    it longer than its own lease while it works the first: it is alive by what it writes
    in any job. The gateway sees exactly one call per record."""
    env = {"DATAGEN_ORIGINAL_PEER_LEASE_SECONDS": "8"}
    with mixed(tmp_path, ["ts", "py"], ["ts"], env=env, record_seconds=0.5) as (
        fleet,
        stand_ins,
        services,
    ):
        ts = stand_ins["ts"]
        first = ts.confirm(owner="admin", title="First", total=40, schema=LABELLED)
        second = ts.confirm(owner="admin", title="Second", total=8, schema=LABELLED)
        for job_id in (first, second):
            wait_until(
                lambda job_id=job_id: stored_base(fleet, job_id)["status"] == "succeeded",
                timeout=90,
            )
        for job_id in (first, second):
            view = lifecycle.load_job(services, job_id)
            assert view is not None and not view.peers["py"].takeovers
            assert not view.peers["ts"].completed_by
        started = next(s for s in ts.state_writes(second) if "startedAt" in s)["startedAt"]
        assert started > stored_state(fleet, first, "ts")["finishedAt"]  # one job at a time
        assert ts.calls == 24 and gateway_calls(fleet) == 48


def test_a_dead_peer_of_the_original_app_is_taken_over_and_its_own_state_shows_it_done(
    tmp_path: Path,
) -> None:
    env = {"DATAGEN_ORIGINAL_PEER_LEASE_SECONDS": "3"}
    with mixed(tmp_path, ["ts", "py"], ["ts"], env=env, record_seconds=0.1) as (
        fleet,
        stand_ins,
        services,
    ):
        ts = stand_ins["ts"]
        job_id = ts.confirm(owner="admin", title="Dies", total=30, schema=LABELLED)
        wait_until(lambda: stored_state(fleet, job_id, "ts").get("lastUpdateAt"), timeout=30)
        ts.kill()
        wait_until(lambda: stored_base(fleet, job_id)["status"] == "succeeded", timeout=60)

        state = stored_state(fleet, job_id, "ts")  # the original app's view of its range
        assert state["completedBy"] == "py" and state["resultCid"]
        assert state["generatedOk"] + state["generatedFailed"] >= state["assigned"] == 15
        assert original_view_done(fleet, job_id)
        entries = exported_entries(services, job_id)
        assert [e["i"] for e in entries] == list(range(30))
        base = stored_base(fleet, job_id)
        assert base["totalGenerated"] == 30

        # it comes back: its range is done in its own state, so it calls nothing again
        calls, polls = ts.calls, ts.polls
        ts.start()
        wait_until(lambda: ts.polls >= polls + 5, timeout=30)
        assert ts.calls == calls and stored_state(fleet, job_id, "ts") == state
        assert [e["i"] for e in exported_entries(services, job_id)] == list(range(30))


def test_a_peer_of_the_original_app_back_during_its_takeover_loses_no_record(
    tmp_path: Path,
) -> None:
    env = {"DATAGEN_ORIGINAL_PEER_LEASE_SECONDS": "3"}
    with mixed(tmp_path, ["ts", "py"], ["ts"], env=env, record_seconds=0.2) as (
        fleet,
        stand_ins,
        services,
    ):
        ts = stand_ins["ts"]
        job_id = ts.confirm(owner="admin", title="Comes back", total=40, schema=LABELLED)
        wait_until(lambda: stored_state(fleet, job_id, "ts").get("lastUpdateAt"), timeout=30)
        ts.kill()
        wait_until(
            lambda: "ts" in (lifecycle.load_job(services, job_id).peers["py"].takeovers),
            timeout=30,
            what="py taking over ts",
        )
        ts.start()  # resumes its range from its local file while py works it too
        wait_until(lambda: stored_base(fleet, job_id)["status"] == "succeeded", timeout=90)
        wait_until(lambda: original_view_done(fleet, job_id), timeout=60)
        entries = exported_entries(services, job_id)
        assert [e["i"] for e in entries] == list(range(40))
        assert all(e["ok"] for e in entries)


def test_retry_and_extend_in_a_mixed_fleet_are_done_by_the_replicas_at_once(
    tmp_path: Path,
) -> None:
    """The original app retries nothing and knows nothing of added records: the replica of
    ours retries the original peer's failures and makes every added record, without
    waiting for any lease; the original's own state shows the retried records."""
    env = {"DATAGEN_ORIGINAL_PEER_LEASE_SECONDS": "600", "RETRY_INFERENCE_ON_FAILURE": "false"}
    with mixed(tmp_path, ["ts", "py"], ["ts"], env=env) as (fleet, stand_ins, services):
        ts = stand_ins["ts"]
        fleet.llm_config(failRate=0.5)
        job_id = ts.confirm(owner="admin", title="Commands", total=20, schema=LABELLED)
        wait_until(lambda: stored_base(fleet, job_id)["status"] == "succeeded", timeout=60)
        before = stored_state(fleet, job_id, "ts")
        assert before["generatedFailed"] > 0  # 10 calls at 50 %
        fleet.llm_config(failRate=0)
        calls = ts.calls

        with admin(fleet, "py") as client:
            answer = client.post(f"/api/tasks/{job_id}/retry-failed")
            assert answer.status_code == 202, answer.text

            def retried() -> bool:
                view = lifecycle.load_job(services, job_id)
                return (
                    view is not None
                    and view.job.status == "succeeded"
                    and not view.job.total_failed
                )

            wait_until(retried, timeout=30, what="every failed record retried")
            after = stored_state(fleet, job_id, "ts")
            assert after["completedBy"] == "py" and after["generatedFailed"] == 0
            assert after["generatedOk"] == 10 and after["resultCid"] != before["resultCid"]

            answer = client.post(f"/api/tasks/{job_id}/extend", json={"additionalRecords": 6})
            assert answer.status_code == 202, answer.text

            def extended() -> bool:
                view = lifecycle.load_job(services, job_id)
                return (
                    view is not None and view.job.status == "succeeded" and view.job.total_ok == 26
                )

            wait_until(extended, timeout=30, what="the added records made")
        entries = exported_entries(services, job_id)
        assert [e["i"] for e in entries] == list(range(26)) and all(e["ok"] for e in entries)
        assert ts.calls == calls  # the original peer was asked nothing
        wait_until(lambda: stored_base(fleet, job_id)["totalOk"] == 26, timeout=30)


def test_a_cancel_stops_the_replicas_and_the_page_says_the_original_peer_goes_on(
    tmp_path: Path,
) -> None:
    env = {"DATAGEN_MAX_IN_FLIGHT_PER_JOB": "1"}  # the replica as slow as the original
    with mixed(
        tmp_path,
        ["ts", "py"],
        ["ts"],
        env=env,
        record_seconds=0.2,
        mock_args=("--latency-ms", "200"),
    ) as (fleet, stand_ins, services):
        ts = stand_ins["ts"]
        job_id = ts.confirm(owner="admin", title="Cancelled", total=40, schema=LABELLED)
        wait_until(lambda: stored_state(fleet, job_id, "py").get("generatedOk", 0) >= 3, timeout=30)
        with admin(fleet, "py") as client:
            assert client.post(f"/api/tasks/{job_id}/cancel").status_code == 202
            wait_until(lambda: stored_state(fleet, job_id, "py").get("cancelledAt"), timeout=30)
            page = client.get(f"/api/tasks/{job_id}").json()
            assert page["job"]["status"] == "cancelled"
            assert any("keeps generating its share" in note for note in page["notes"])
        # the original peer does not know of cancels: it makes its whole range
        wait_until(lambda: stored_state(fleet, job_id, "ts").get("resultCid"), timeout=60)
        state = stored_state(fleet, job_id, "ts")
        assert state["generatedOk"] + state["generatedFailed"] == 20
        assert stored_state(fleet, job_id, "py")["generatedOk"] < 20
        view = lifecycle.load_job(services, job_id)
        assert view is not None and view.job.status == "cancelled"
        done = exported_entries(services, job_id, partial=True)
        assert {e["i"] for e in done} >= set(range(20))  # every record it made is kept


def test_the_stored_base_shows_a_running_jobs_progress_as_the_original_reads_it(
    tmp_path: Path,
) -> None:
    """The original's dashboard reads only the stored base: a replica of ours refreshes its
    status and totals while it works, not only at the end."""
    env = {"DATAGEN_MAX_IN_FLIGHT_PER_JOB": "2"}
    with mixed(tmp_path, ["py"], [], env=env, mock_args=("--latency-ms", "100")) as (
        fleet,
        _,
        services,
    ):
        job_id = confirm_job(services, 120)

        def midway() -> dict[str, Any] | None:
            base = stored_base(fleet, job_id)
            return base if base["status"] == "running" and 0 < base["totalOk"] < 120 else None

        base = wait_until(midway, timeout=60, what="the stored base showing progress")
        assert base["totalGenerated"] == base["totalOk"] + base["totalFailed"]
        assert base["jobStartedAt"] and base["updatedAt"] >= base["jobStartedAt"]
        summary = orjson.loads(fleet.cstore.hget_raw("datagen:user:alice:jobs", job_id))
        assert summary["status"] in ("running", "succeeded")
        wait_until(lambda: stored_base(fleet, job_id)["status"] == "succeeded", timeout=90)
