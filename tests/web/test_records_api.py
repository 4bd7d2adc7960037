"""The records view's API: pages cut on the server with filters, search and counts, and
one record's detail with its prompt and every attempt."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from datagems.job import browse
from datagems.models import InFlightRecord, now_iso
from tests.web.harness import LiveApp, confirm


def play(live: LiveApp, job_id: str, entries: list[dict[str, Any]], **state: Any) -> None:
    """Upload ``entries`` as the one peer's slice and mark its range done."""
    services = live.services
    assert services is not None
    peer = services.peers.get(job_id, services.settings.host_addr)
    assert peer is not None
    body = b"".join(orjson.dumps(entry) + b"\n" for entry in entries)
    peer.result_cid = services.r1fs.add_file(
        body, f"{job_id}_{peer.peer_id}.jsonl", secret=services.r1fs_secret
    )
    peer.generated_ok = sum(1 for e in entries if e["ok"])
    peer.generated_failed = sum(1 for e in entries if not e["ok"])
    peer.started_at = peer.started_at or now_iso()
    peer.finished_at = now_iso()
    for name, value in state.items():
        setattr(peer, name, value)
    services.peers.put(job_id, peer)


RAW = '{"subject": "Printer on fire", "priority": "urgent"'
TRIES = [
    {
        "n": 1,
        "do": "first",
        "seed": 11,
        "reason": "invalid_json",
        "error": "not JSON",
        "raw": RAW,
        "ms": 812.5,
        "tokensIn": 120,
        "tokensOut": 40,
    },
    {
        "n": 2,
        "do": "resample",
        "seed": 12,
        "reason": "schema_violation",
        "error": "'urgent' is not one of ['low', 'normal', 'high']",
        "raw": "x" * 4096,
        "rawCut": True,
        "rawBytes": 9000,
        "ms": 640.0,
        "tokensIn": 120,
        "tokensOut": 51,
    },
]


def entries() -> list[dict[str, Any]]:
    made = [
        {"i": i, "ok": True, "data": {"subject": f"Ticket {i}", "meta": {"lang": "en"}}}
        for i in range(6)
    ]
    made[2] = {
        "i": 2,
        "ok": False,
        "reason": "schema_violation",
        "attempts": 2,
        "error": "schema_violation: 'urgent' is not one of",
        "tries": TRIES,
    }
    made[4]["attempts"] = 2
    made[4]["tries"] = [
        {"n": 1, "do": "first", "reason": "timeout", "error": "timed out"},
        {"n": 2, "do": "again", "reason": "ok", "ms": 300.0},
    ]
    return made


def test_a_page_numbers_records_from_one_and_flattens_nested_fields(live: LiveApp) -> None:
    client = live.login("alice")
    job_id = confirm(client)
    play(live, job_id, entries())
    page = client.get(f"/api/tasks/{job_id}/rows", params={"limit": 3}).json()
    assert [row["n"] for row in page["rows"]] == [1, 2, 3]
    assert page["rows"][0]["cells"] == {"subject": "Ticket 0", "meta.lang": "en"}
    assert "meta.lang" in page["columns"]
    assert page["counts"] == {"all": 6, "ok": 5, "failed": 1, "retried": 2, "in_flight": 0}
    assert page["matched"] == 6
    second = client.get(f"/api/tasks/{job_id}/rows", params={"offset": 3, "limit": 3}).json()
    assert [row["i"] for row in second["rows"]] == [3, 4, 5]


def test_filters_keep_failed_or_retried_records_and_search_finds_text(live: LiveApp) -> None:
    client = live.login("alice")
    job_id = confirm(client)
    play(live, job_id, entries())
    failed = client.get(f"/api/tasks/{job_id}/rows", params={"show": "failed"}).json()
    assert [(row["i"], row["state"], row["reason"]) for row in failed["rows"]] == [
        (2, "failed", "schema_violation")
    ]
    retried = client.get(f"/api/tasks/{job_id}/rows", params={"show": "retried"}).json()
    assert [row["i"] for row in retried["rows"]] == [2, 4]
    found = client.get(f"/api/tasks/{job_id}/rows", params={"q": "TICKET 5"}).json()
    assert [row["i"] for row in found["rows"]] == [5] and found["matched"] == 1
    none = client.get(f"/api/tasks/{job_id}/rows", params={"q": "no such text"}).json()
    assert none["rows"] == [] and none["matched"] == 0
    assert client.get(f"/api/tasks/{job_id}/rows", params={"show": "odd"}).status_code == 400


def test_a_failed_records_detail_has_its_prompt_and_every_attempt(live: LiveApp) -> None:
    client = live.login("alice")
    job_id = confirm(client)
    play(live, job_id, entries())
    record = client.get(f"/api/tasks/{job_id}/records/2").json()
    assert record["n"] == 3 and record["state"] == "failed" and record["attempts"] == 2
    assert record["error"].startswith("schema_violation")
    first, second = record["tries"]
    assert first["raw"] == RAW and first["ms"] == 812.5 and first["tokensOut"] == 40
    assert second["rawCut"] is True and second["rawBytes"] == 9000
    assert "record 3 of 6" in record["prompt"][-1]["content"]
    ok = client.get(f"/api/tasks/{job_id}/records/0").json()
    assert ok["data"] == {"subject": "Ticket 0", "meta": {"lang": "en"}}
    assert client.get(f"/api/tasks/{job_id}/records/99").status_code == 404
    assert client.get(f"/api/tasks/{job_id}/records/x1").status_code in (400, 404)


def test_records_in_flight_show_before_their_slice_is_uploaded(live: LiveApp) -> None:
    client = live.login("alice")
    job_id = confirm(client)
    services = live.services
    assert services is not None
    peer = services.peers.get(job_id, services.settings.host_addr)
    assert peer is not None
    peer.started_at = now_iso()
    peer.in_flight = [InFlightRecord(i=3, attempt=2, state="retrying", reason="timeout")]
    services.peers.put(job_id, peer)
    page = client.get(f"/api/tasks/{job_id}/rows", params={"show": "in_flight"}).json()
    assert [(row["i"], row["state"], row["attempts"]) for row in page["rows"]] == [
        (3, "retrying", 2)
    ]


def test_another_users_records_are_404(live: LiveApp) -> None:
    alice = live.login("alice")
    job_id = confirm(alice)
    bob = live.login("bob")
    assert bob.get(f"/api/tasks/{job_id}/rows").status_code == 404
    assert bob.get(f"/api/tasks/{job_id}/records/0").status_code == 404


def test_a_job_too_big_to_keep_its_lines_pages_and_searches_the_same(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = live.login("alice")
    kept, big = confirm(client), confirm(client)
    play(live, kept, entries())
    play(live, big, entries())

    def pages(job_id: str) -> list[Any]:
        queries = [{}, {"show": "failed"}, {"show": "retried"}, {"q": "ticket 5"}, {"offset": 4}]
        found = []
        for params in queries:
            page = client.get(f"/api/tasks/{job_id}/rows", params=params).json()
            found.append((page["matched"], page["counts"], page["rows"]))
        found.append(client.get(f"/api/tasks/{job_id}/records/2").json()["tries"])
        return found

    expected = pages(kept)
    monkeypatch.setattr(browse, "KEPT_LINE_BYTES", 10)  # flags only: pages read the slices
    assert pages(big) == expected
