"""Variables and seed data on real replicas with the mock gateway: the requested weights
are what the records get, each seed row is used once, and a record's values are the same
whichever replica makes it (a kill -9, a takeover, a resume)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from datagems.bench.procs import wait_until
from datagems.job import export, lifecycle, rows
from datagems.job.rows import ExportOptions
from datagems.quality import seeds
from datagems.quality import variables as v
from datagems.services import Services
from tests.actors.jobkit import (
    all_slice_lines,
    fleet_services,
    wait_for_status,
)
from tests.fleet import ADMIN_PASSWORD, Fleet

pytestmark = pytest.mark.fleet
SHOP_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "city": {"type": "string", "minLength": 1},
        "bike": {"enum": ["road", "gravel", "city", "cargo"]},
    },
    "required": ["name", "city", "bike"],
    "additionalProperties": False,
}
CITY = {"name": "city", "kind": "category", "values": ["Lyon", "Pune", "Osaka"]}
WEIGHTED = {**CITY, "weights": [50, 30, 20]}
MIXED = [
    CITY,
    {"name": "customer", "kind": "person", "attributes": ["name", "age"], "locale": "fr_FR"},
    {"name": "spend", "kind": "number", "min": 100, "max": 4000, "distribution": "normal"},
]


def confirm(services: Services, total: int, **draft: Any) -> str:
    job_id = str(uuid.uuid4())
    lifecycle.create_job(
        services,
        owner="alice",
        job_id=job_id,
        draft={
            "title": "Bike shop customers",
            "totalRecords": total,
            "description": "A customer of a bike shop",
            "instructions": "Realistic customers.",
            "schema": SHOP_SCHEMA,
            **draft,
        },
    )
    return job_id


def beating(services: Services, peers: list[str]) -> None:
    wait_until(
        lambda: set(peers) <= set(services.replicas.all()), timeout=30, what=f"{peers} beating"
    )


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, Services]]:
    with Fleet(Path(tmp_path_factory.mktemp("vars")), ["a", "b"]) as fleet:
        fleet.start_replicas()
        services = fleet_services(fleet)
        beating(services, ["a", "b"])
        yield fleet, services


@pytest.mark.timeout(420)
def test_weights_50_30_20_over_3000_records_are_met_within_3_points(
    pair: tuple[Fleet, Services],
) -> None:
    _, services = pair
    job_id = confirm(services, 3000, variables=[WEIGHTED])
    wait_for_status(services, job_id, {"succeeded"}, timeout=300)

    view = lifecycle.load_job(services, job_id)
    assert view is not None
    exported = [
        orjson.loads(line)
        for chunk in rows.export_chunks(services, view.job, ExportOptions("jsonl", vars=True))
        for line in chunk.splitlines()
        if line.strip()
    ]
    assert len(exported) == 3000
    given = Counter(record["_vars"]["city"] for record in exported)
    made = Counter(record["city"] for record in exported)  # the mock follows its values
    for city, weight in zip(WEIGHTED["values"], WEIGHTED["weights"], strict=True):
        assert abs(given[city] / 3000 - weight / 100) <= 0.03, given
    assert made == given


def test_a_500_row_seed_file_without_replacement_uses_each_row_exactly_once(
    pair: tuple[Fleet, Services],
) -> None:
    fleet, services = pair
    rows = [{"n": n, "city": f"Town {n}"} for n in range(500)]
    cid = fleet.r1fs.add_file(seeds.rows_jsonl(rows), "seed.jsonl")
    seed_data = {"cid": cid, "mode": "without_replacement", "rows": 500, "columns": ["n", "city"]}
    job_id = confirm(services, 500, seedData=seed_data)
    view = wait_for_status(services, job_id, {"succeeded"}, timeout=120)

    entries = list(export.merged_entries(services, job_id))
    assert [e["i"] for e in entries] == list(range(500))
    used = [e["seedRow"] for e in entries]
    assert sorted(used) == list(range(500))  # every row once, over both peers' ranges
    assert used != list(range(500))  # in the job seed's order, not the file's
    assert {p for p, s in view.peers.items() if s.generated_ok} == {"a", "b"}
    # each record was asked with its own row
    asked = httpx_requests(fleet)
    assert any(f'"city":"Town {n}"' in text for text in asked for n in range(500))


def httpx_requests(fleet: Fleet) -> list[str]:
    recent = httpx.get(f"{fleet.llm_url}/requests", timeout=5).json()
    return [str(item.get("lastMessage", "")) for item in recent]


@pytest.mark.timeout(420)
def test_draws_are_the_same_across_a_kill_a_takeover_and_a_resume(tmp_path: Path) -> None:
    env = {"DATAGEN_PEER_LEASE_SECONDS": "3"}
    peers = ["a", "b", "c", "ts"]  # ts: a peer of the original app (never beats)
    with Fleet(tmp_path, peers, mock_args=("--latency-ms", "100"), replica_env=env) as fleet:
        fleet.start_replicas(["a", "b", "c"])
        services = fleet_services(fleet)
        beating(services, ["a", "b", "c"])
        job_id = confirm(services, 300, variables=MIXED, seed=99)
        job = services.jobs.get(job_id)
        assert job is not None and job.peers == ["a", "b", "c"]  # kept from the original's
        details = services.details.get(job.job_details_cid or "")
        assert details.original_peers_left_out == ["ts"]
        url = fleet.replicas["a"].url
        with httpx.Client(base_url=url, headers={"Origin": url}, timeout=60) as client:
            login = {"username": "admin", "password": ADMIN_PASSWORD}
            client.post("/api/auth/login", json=login).raise_for_status()
            notes = client.get(f"/api/tasks/{job_id}").json()["notes"]  # the job page's
        assert any("ts (the original app) took no share" in note for note in notes), notes

        def b_done() -> int:
            state = services.peers.get(job_id, "b")
            return state.done if state else 0

        wait_until(lambda: b_done() >= 10, timeout=60, what="b at 10")
        fleet.replicas["b"].kill()  # kill -9 mid-range
        wait_until(
            lambda: any("b" in s.takeovers for s in services.peers.all(job_id).values()),
            timeout=60,
            what="b's range taken over",
        )
        fleet.replicas["b"].start()  # back: resumes its own range from its local file
        wait_for_status(services, job_id, {"succeeded"}, timeout=120)

        declared = v.parse_variables(MIXED)
        lines = all_slice_lines(services, job_id)  # every copy of a record, every slice
        assert {line["i"] for line in lines} == set(range(300))
        for line in lines:
            assert line["vars"] == v.draws(declared, 99, line["i"]), line["i"]
        exported = list(export.merged_entries(services, job_id))
        assert all(e["vars"] == v.draws(declared, 99, e["i"]) for e in exported)
