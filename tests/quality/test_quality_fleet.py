"""The quality report and near-duplicate resampling on a fleet of two replicas
(devnode + mock-llm planting near-duplicates + replicas a and b), over HTTP.

- the report of a finished job merges both replicas' slices and equals the figures this
  test recomputes itself from the job's export;
- near-duplicates planted by the mock (``nearDuplicateRate``) are found; resampling them
  (two requests at once, one per replica) calls each chosen record exactly once, within
  the budget, and never a record twice.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from datagems.accounts.users import Accounts
from datagems.bench.procs import wait_until
from tests.fleet import AUTH_PEPPER, Fleet

pytestmark = pytest.mark.fleet
RECORDS = 60
BUDGET = 3
_RECORD_NUMBER = re.compile(r"This is record (\d+) of")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    env = {
        "DATAGEN_INFERENCE_MAX_ATTEMPTS": "1",  # one call per record: calls are countable
        "DATAGEN_RESAMPLE_MAX_RECORDS": "10",
        "DATAGEN_MAX_RUNNING_JOBS_PER_USER": "10",
    }
    mock = ("--seed", "11", "--mode", "nearDuplicateRate=0.25")
    root = Path(tmp_path_factory.mktemp("quality"))
    with Fleet(root, ["a", "b"], mock_args=mock, replica_env=env) as running:
        running.start_replicas()
        yield running


def user(fleet: Fleet, name: str, replica: str = "a") -> httpx.Client:
    password = f"{name}-Passw0rd!"
    Accounts(fleet.cstore, "datagen:auth", AUTH_PEPPER).create(name, password)
    url = fleet.replicas[replica].url
    client = httpx.Client(base_url=url, headers={"Origin": url}, timeout=30)
    answer = client.post("/api/auth/login", json={"username": name, "password": password})
    assert answer.status_code == 200, answer.text
    return client


def on(client: httpx.Client, fleet: Fleet, replica: str) -> httpx.Client:
    url = fleet.replicas[replica].url
    return httpx.Client(base_url=url, headers={"Origin": url}, cookies=client.cookies, timeout=30)


def finished_job(client: httpx.Client, records: int, retry_round: int = 0) -> tuple[str, dict]:
    drafted = client.post(
        "/api/tasks/schema",
        json={
            "title": "Bike shop customers",
            "totalRecords": records,
            "description": "Customers of a bike shop: name, age, city, signup date, a review.",
            "instructions": "Realistic, varied customers.",
        },
    )
    assert drafted.status_code == 200, drafted.text
    confirmed = client.post("/api/tasks/confirm", json={"draftToken": drafted.json()["draftToken"]})
    assert confirmed.status_code == 200, confirmed.text
    job_id = confirmed.json()["jobId"]
    return job_id, settled(client, job_id)


def settled(client: httpx.Client, job_id: str, retry_round: int = 0) -> dict:
    def done() -> dict | None:
        view = client.get(f"/api/tasks/{job_id}").json()
        finished = view["job"]["status"] in ("succeeded", "failed")
        return view if finished and view["control"]["retryRound"] >= retry_round else None

    return wait_until(done, timeout=120, interval=0.2, what=f"job {job_id} to finish")


def report_of(client: httpx.Client, job_id: str) -> dict:
    answer = client.get(f"/api/tasks/{job_id}/report")
    assert answer.status_code == 200, answer.text
    return answer.json()


# --------------------------------------------------------------------------- recomputed


def bins_of(values: list[float]) -> list[tuple[float, float, int]]:
    """The histogram rule of the report's documentation, written again here."""
    if not values:
        return []
    low, high = min(values), max(values)
    if low == high:
        return [(low, high, len(values))]
    if all(float(v).is_integer() for v in values) and high - low + 1 <= 20:
        return [(k, k + 1, values.count(k)) for k in range(int(low), int(high) + 1)]
    width = (high - low) / 10
    counts = [0] * 10
    for value in values:
        counts[min(int((value - low) / width), 9)] += 1
    return [(low + width * k, low + width * (k + 1), counts[k]) for k in range(10)]


def recompute(records: list[Any], schema: dict) -> dict[str, dict]:
    """Per field of the ok records: present, missing, empty, distinct, top values,
    histograms and lengths, from the exported JSON array."""
    ok = [r for r in records if r is not None]
    props = schema.get("properties", {})
    names = list(props) + sorted({k for r in ok for k in r} - set(props))
    figures: dict[str, dict] = {}
    for name in names:
        spec = props.get(name, {})
        values = [r[name] for r in ok if r.get(name) is not None]
        empty = sum(
            1
            for v in values
            if (isinstance(v, str) and not v.strip()) or (isinstance(v, (list, dict)) and not v)
        )
        distinct = {orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in values}
        out: dict[str, Any] = {
            "present": len(values),
            "missing": len(ok) - len(values),
            "empty": empty,
            "distinct": len(distinct),
        }
        kind = spec.get("type")
        if kind in ("integer", "number"):
            out["histogram"] = bins_of([float(v) for v in values])
        elif kind == "string" and spec.get("format") in ("date", "date-time"):
            days = [float(dt.date.fromisoformat(v[:10]).toordinal()) for v in values]
            out["histogram"] = bins_of(days)
        if values and all(isinstance(v, str) for v in values):
            out["lengths"] = bins_of([float(len(v)) for v in values])
        if kind == "string" or "enum" in spec or kind == "boolean":
            counts = Counter(values)
            ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:10]
            out["top"] = [(value, count) for value, count in ranked]
        figures[name] = out
    return figures


def test_report_merges_both_replicas_and_equals_the_figures_of_the_export(fleet: Fleet) -> None:
    ann = user(fleet, "ann")
    job_id, view = finished_job(ann, RECORDS)
    assert {p["peerId"] for p in view["peers"] if p.get("resultCid")} == {"a", "b"}
    report = report_of(
        on(ann, fleet, "b"), job_id
    )  # built on the replica that did not run it alone
    exported = ann.get(f"/api/tasks/{job_id}/export?format=json").json()
    schema = view["details"]["schema"]

    ok = [r for r in exported if r is not None]
    assert report["basis"]["slices"] == 2 and not report["partial"]
    assert report["records"] == {
        "total": RECORDS,
        "ok": len(ok),
        "failed": view["job"]["totalFailed"],
        "missing": RECORDS - len(ok) - view["job"]["totalFailed"],
    }
    expected = recompute(exported, schema)
    assert [f["name"] for f in report["fields"]] == list(expected)
    for field in report["fields"]:
        want = expected[field["name"]]
        assert field["present"] == want["present"], field["name"]
        assert field["missing"] == want["missing"], field["name"]
        assert field["empty"] == want["empty"], field["name"]
        assert field["distinct"] == want["distinct"], field["name"]
        if "histogram" in want:
            got = [(b["lo"], b["hi"], b["count"]) for b in field["histogram"]]
            assert got == want["histogram"], field["name"]
        if "lengths" in want:
            got = [(b["lo"], b["hi"], b["count"]) for b in field["length"]["histogram"]]
            assert got == want["lengths"], field["name"]
        if "top" in want:
            got = [(t["value"], t["count"]) for t in field["top"]]
            assert got == want["top"], field["name"]
            assert all(t["share"] == round(t["count"] / want["present"], 4) for t in field["top"])
    assert report["usage"]["tokensIn"] == sum(p["tokensIn"] for p in view["peers"])
    assert report["usage"]["tokensOut"] == sum(p["tokensOut"] for p in view["peers"])

    download = ann.get(f"/api/tasks/{job_id}/report?download=true")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    assert download.json()["fields"] == report_of(ann, job_id)["fields"]
    stranger = user(fleet, "stranger")
    assert stranger.get(f"/api/tasks/{job_id}/report").status_code == 404


def called_records(fleet: Fleet) -> Counter[int]:
    """Record indices (0-based) of the record calls the mock answered since its reset."""
    requests = httpx.get(f"{fleet.llm_url}/requests", timeout=10).json()
    found = (_RECORD_NUMBER.search(r["lastMessage"]) for r in requests)
    return Counter(int(m.group(1)) - 1 for m in found if m)


def test_planted_near_duplicates_are_found_and_resampled_once_within_the_budget(
    fleet: Fleet,
) -> None:
    bob = user(fleet, "bob")
    httpx.post(f"{fleet.llm_url}/stats/reset", timeout=10)
    job_id, _ = finished_job(bob, RECORDS)
    planted = {tuple(sorted(pair)) for pair in fleet.llm_stats()["plantedPairs"]}
    assert planted, "the mock planted no near-duplicate"
    report = report_of(bob, job_id)
    near = report["nearDuplicates"]
    found = {(p["a"], p["b"]) for p in near["pairs"]}
    assert planted <= found
    assert set(near["later"]) >= {b for _, b in planted}
    assert near["duplicates"] == len(near["later"]) and near["rate"] > 0
    before = bob.get(f"/api/tasks/{job_id}/export?format=json").json()

    fleet.llm_config(nearDuplicateRate=0.0)
    httpx.post(f"{fleet.llm_url}/stats/reset", timeout=10)
    answers: dict[str, httpx.Response] = {}

    def ask(replica: str) -> None:
        answers[replica] = on(bob, fleet, replica).post(
            f"/api/tasks/{job_id}/resample-near-duplicates", json={"maxRecords": BUDGET}
        )

    threads = [threading.Thread(target=ask, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    applied = [a.json() for a in answers.values() if a.status_code == 202]
    refused = [a for a in answers.values() if a.status_code != 202]
    assert applied, [a.text for a in answers.values()]
    assert all(a.status_code == 409 for a in refused), [a.text for a in refused]
    chosen = [i for answer in applied for i in answer["indices"]]
    assert len(chosen) == len(set(chosen))  # never one record twice
    assert all(0 < answer["records"] <= BUDGET for answer in applied)
    expected_first = sorted(near["later"])[:BUDGET]
    assert sorted(applied, key=lambda a: a["retryRound"])[0]["indices"] == expected_first

    settled(bob, job_id, retry_round=max(a["retryRound"] for a in applied))
    assert called_records(fleet) == Counter({i: 1 for i in chosen})  # each once, no other
    after = bob.get(f"/api/tasks/{job_id}/export?format=json").json()
    assert len(after) == RECORDS
    changed = {i for i in range(RECORDS) if after[i] != before[i]}
    assert changed == set(chosen)
    again = report_of(bob, job_id)
    assert again["resamples"]["records"] == len(chosen)
    assert again["nearDuplicates"]["duplicates"] < near["duplicates"]
