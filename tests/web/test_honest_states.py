"""What the job page says of a job's state is true (issue 16): completed with failures is
not "Succeeded", the page stays live until a cancel has ended on every peer, ranges and
totals follow an extension, and a queued job says what it waits for. The in-process app,
the tests playing the peers."""

from __future__ import annotations

import httpx
import orjson

from datagems.bench.procs import wait_until
from datagems.models import InFlightRecord, ReplicaBeat, now_iso
from tests.web.harness import LiveApp, confirm, finish_job

GOOD = {"subject": "Printer", "body": "It jams.", "priority": "low"}


def state(client: httpx.Client, job_id: str) -> dict:
    answer = client.get(f"/api/tasks/{job_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["state"]


def test_a_finished_job_with_failed_records_is_completed_with_its_failures_not_succeeded(
    live: LiveApp,
) -> None:
    alice = live.login("alice")
    mixed = confirm(alice, totalRecords=4)
    finish_job(live, mixed, [GOOD, None, GOOD, None])
    shown = state(alice, mixed)
    assert (shown["label"], shown["tone"], shown["settled"]) == (
        "Completed — 2 failed",
        "warn",
        True,
    )
    clean = confirm(alice, totalRecords=2)
    finish_job(live, clean, [GOOD, GOOD])
    assert (state(alice, clean)["label"], state(alice, clean)["tone"]) == ("Completed", "ok")


def _working(live: LiveApp, job_id: str) -> None:
    services = live.services
    assert services is not None
    peer = services.peers.get(job_id, services.settings.host_addr)
    assert peer is not None
    peer.started_at = peer.last_update_at = now_iso()
    peer.generated_ok = 1
    peer.in_flight = [InFlightRecord(i=1, attempt=1, state="calling", started_at=now_iso())]
    services.peers.put(job_id, peer)


def _stopped(live: LiveApp, job_id: str) -> None:
    services = live.services
    assert services is not None
    peer = services.peers.get(job_id, services.settings.host_addr)
    assert peer is not None
    peer.generated_ok = 2
    peer.in_flight = []
    peer.cancelled_at = now_iso()
    peer.result_cid = services.r1fs.add_file(
        b'{"i":0,"ok":true,"data":{}}\n{"i":1,"ok":true,"data":{}}\n',
        f"{job_id}_{peer.peer_id}.jsonl",
        secret=services.r1fs_secret,
    )
    services.peers.put(job_id, peer)


def events(lines: object) -> object:
    """(event, data) of a server-sent event stream, as they come."""
    name = None
    for line in lines:  # type: ignore[attr-defined]
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: ") and name:
            yield name, orjson.loads(line[len("data: ") :])
            name = None


def test_after_cancel_the_live_stream_goes_on_until_every_peer_has_stopped(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=6)
    _working(live, job_id)
    assert alice.post(f"/api/tasks/{job_id}/cancel").status_code == 202
    shown = state(alice, job_id)
    assert shown["label"] == "Cancelling…" and not shown["settled"]
    assert shown["stillWorking"] == [live.services.settings.host_addr]
    seen: list[tuple[str, dict]] = []
    with alice.stream("GET", f"/api/tasks/{job_id}/events", timeout=60) as stream:
        for name, data in events(stream.iter_lines()):
            seen.append((name, data))
            if name == "job" and len(seen) == 1:
                assert data["job"]["status"] == "cancelled"
                assert data["state"]["label"] == "Cancelling…"
                _stopped(live, job_id)  # the peer uploads what it made and stops
            if name == "end":
                break
    assert seen[-1][0] == "end"
    last = next(data for name, data in reversed(seen) if name == "job")
    assert last["state"]["label"] == "Cancelled" and last["state"]["settled"]
    assert last["job"]["totalOk"] == 2  # the page's last picture has the final counts
    assert state(alice, job_id)["label"] == "Cancelled"


def test_after_add_records_every_peers_ranges_and_the_total_follow(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice, totalRecords=4)
    finish_job(live, job_id, [GOOD] * 4)
    answer = alice.post(f"/api/tasks/{job_id}/extend", json={"additionalRecords": 3})
    assert answer.status_code == 202, answer.text
    view = alice.get(f"/api/tasks/{job_id}").json()
    peer = live.services.settings.host_addr
    assert view["job"]["totalRecords"] == 7
    assert view["state"]["ranges"][peer] == {"ranges": [[0, 4], [4, 7]], "assigned": 7}
    assert view["state"]["label"] == "Running"


def test_a_queued_job_says_which_peer_it_waits_for_and_why(live: LiveApp) -> None:
    alice = live.login("alice")
    services = live.services
    peer = services.settings.host_addr
    job_id = confirm(alice, totalRecords=2)
    shown = state(alice, job_id)
    assert shown["label"] == "Queued"
    assert peer in shown["why"] and "never been seen" in shown["why"]

    services.replicas.beat(ReplicaBeat(peer_id=peer, last_seen_at=now_iso()))
    other = confirm(alice, totalRecords=2)
    wait_until(  # the read cache sees the heartbeat within its TTL
        lambda: f"{peer} takes it at its next poll" in state(alice, other)["why"],
        timeout=30,
        what="the queued job to name the peer's next poll",
    )
    _working(live, job_id)  # the peer works on the first job: at most one at a time
    third = confirm(alice, totalRecords=2)
    wait_until(
        lambda: "working on 1 other job (at most 1 at once)" in state(alice, third)["why"],
        timeout=30,
        what="the queued job to say its peer is busy with another job",
    )
