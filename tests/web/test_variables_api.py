"""Variables and seed files over the API: the draft proposes variables, the confirm keeps
the valid ones (400 naming a bad one), a seed file is checked line by line at upload."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from tests.web.harness import LiveApp, draft

BIKES = {
    "title": "Bike shop customers",
    "description": "A customer of a bike shop: name, city, age and the bike they bought.",
    "instructions": "Realistic customers.",
}
CITY = {"name": "city", "kind": "category", "values": ["Lyon", "Pune"], "weights": [3, 1]}


def test_the_draft_proposes_variables_beside_the_schema(live: LiveApp) -> None:
    client = live.login("alice")
    answer = draft(client, **BIKES)
    proposed = {v["name"]: v for v in answer["variables"]}
    assert proposed, answer
    assert "x-variables" not in answer["schema"]  # taken out of the schema
    assert all(
        v["kind"] in ("category", "number", "date", "person", "subset") for v in proposed.values()
    )


def test_a_confirm_keeps_the_variables_and_their_seed_in_the_job_details(live: LiveApp) -> None:
    client = live.login("alice")
    drafted = draft(client, **BIKES)
    answer = client.post(
        "/api/tasks/confirm",
        json={"draftToken": drafted["draftToken"], "variables": [CITY], "seed": 1234},
    )
    assert answer.status_code == 200, answer.text
    view = client.get(f"/api/tasks/{answer.json()['jobId']}").json()
    assert view["details"]["variables"] == [CITY]
    assert view["details"]["seed"] == 1234


def test_a_confirm_with_an_invalid_variable_is_refused_naming_it(live: LiveApp) -> None:
    client = live.login("alice")
    drafted = draft(client, **BIKES)
    bad = {"name": "age", "kind": "number", "min": 90, "max": 18}
    answer = client.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "variables": [CITY, bad]}
    )
    assert answer.status_code == 400
    assert "variable 'age': min (90) is above max (18)" in answer.json()["error"]
    # the draft was not used: fixed, it confirms
    fixed = client.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "variables": [CITY]}
    )
    assert fixed.status_code == 200, fixed.text


def test_a_seed_file_is_stored_and_a_confirm_refers_to_it(live: LiveApp) -> None:
    client = live.login("alice")
    body = b"".join(orjson.dumps({"n": n, "word": f"w{n}"}) + b"\n" for n in range(500))
    uploaded = client.post("/api/seeds?filename=rows.jsonl", content=body)
    assert uploaded.status_code == 200, uploaded.text
    seed = uploaded.json()
    assert seed["rows"] == 500 and seed["columns"] == ["n", "word"]
    drafted = draft(client, **BIKES)
    answer = client.post(
        "/api/tasks/confirm",
        json={
            "draftToken": drafted["draftToken"],
            "seedData": {
                "cid": seed["cid"],
                "token": seed["token"],
                "mode": "without_replacement",
            },
        },
    )
    assert answer.status_code == 200, answer.text
    details = client.get(f"/api/tasks/{answer.json()['jobId']}").json()["details"]
    assert details["seedData"] == {
        "cid": seed["cid"],
        "mode": "without_replacement",
        "rows": 500,
        "columns": ["n", "word"],
    }


def test_a_malformed_seed_file_is_refused_with_the_line_number(live: LiveApp) -> None:
    client = live.login("alice")
    answer = client.post("/api/seeds?filename=people.csv", content=b"name,age\nAda,36\nAlan\n")
    assert answer.status_code == 400
    assert answer.json()["error"] == "line 3: 1 values for 2 columns"
    answer = client.post("/api/seeds?filename=rows.jsonl", content=b'{"a": 1}\n{"a": \n')
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("line 2: not valid JSON")


def test_a_seed_file_over_the_bound_is_refused(live: LiveApp) -> None:
    client = live.login("alice")
    limit = live.services.settings.seed_max_bytes
    answer = client.post("/api/seeds?filename=big.csv", content=b"a\n" + b"x\n" * limit)
    assert answer.status_code == 413
    assert str(limit) in answer.json()["error"]


def test_a_confirm_naming_a_file_the_user_did_not_upload_is_refused(live: LiveApp) -> None:
    bob = live.login("bob")
    uploaded = bob.post("/api/seeds?filename=a.csv", content=b"a\n1\n").json()
    alice = live.login("alice")
    drafted = draft(alice, **BIKES)
    for seed_data in (
        {"cid": uploaded["cid"], "token": uploaded["token"]},  # bob's token: not alice's
        {"cid": uploaded["cid"], "token": "0" * 40},
        {"cid": "QmNothingHere", "token": "0" * 40},
        {"cid": "\u00e3", "token": "\u00e3\u00e9"},  # non-ASCII (fuzz): 400, not 500
    ):
        answer = alice.post(
            "/api/tasks/confirm",
            json={"draftToken": drafted["draftToken"], "seedData": seed_data},
        )
        assert answer.status_code == 400
        assert "not a seed file you uploaded" in answer.json()["error"]


def test_seed_upload_needs_a_session(live: LiveApp) -> None:
    answer = live.client().post("/api/seeds?filename=a.csv", content=b"a\n1\n")
    assert answer.status_code == 401


def test_a_preview_shows_the_values_the_jobs_first_records_will_get(live: LiveApp) -> None:
    from datagems.quality import variables as v

    client = live.login("alice")
    drafted = draft(client, **BIKES)
    previewed = client.post(
        "/api/tasks/preview", json={"draftToken": drafted["draftToken"], "variables": [CITY]}
    )
    assert previewed.status_code == 200, previewed.text
    samples = previewed.json()["records"]
    confirmed = client.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "variables": [CITY]}
    )
    job_id = confirmed.json()["jobId"]
    (city,) = v.parse_variables([CITY])
    seed = v.job_seed(job_id)
    assert [s["vars"] for s in samples] == [{"city": v.draw(city, seed, i)} for i in range(3)]
    # a drafted city field (the mock drafts one for most bike-shop drafts) follows its value
    assert all(s["data"]["city"] == s["vars"]["city"] for s in samples if "city" in s["data"])


def test_an_export_with_vars_gives_each_record_its_values_nested_or_as_columns(
    live: LiveApp,
) -> None:
    from datagems.models import now_iso

    client = live.login("alice")
    drafted = draft(client, **BIKES, totalRecords=3)
    confirmed = client.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "variables": [CITY]}
    )
    assert confirmed.status_code == 200, confirmed.text
    job_id = confirmed.json()["jobId"]
    services = live.services
    assert services is not None
    lines = [  # as the replicas write them: the values each record was given under vars
        {"i": 0, "ok": True, "data": {"name": "Ada"}, "vars": {"city": "Lyon"}},
        {"i": 1, "ok": True, "data": {"name": "Bo"}, "vars": {"city": "Pune"}},
        {"i": 2, "ok": False, "error": "bad", "reason": "invalid_json", "vars": {"city": "Lyon"}},
    ]
    state = services.peers.get(job_id, services.settings.host_addr)
    state.generated_ok, state.generated_failed = 2, 1
    state.started_at = state.finished_at = now_iso()
    body = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    state.result_cid = services.r1fs.add_file(body, f"{job_id}_a.jsonl")
    services.peers.put(job_id, state)

    def export(**query: str) -> Any:
        answer = client.get(f"/api/tasks/{job_id}/export", params=query)
        assert answer.status_code == 200, answer.text
        return answer

    nested = export(format="json", vars="true").json()
    assert nested == [
        {"name": "Ada", "_vars": {"city": "Lyon"}},
        {"name": "Bo", "_vars": {"city": "Pune"}},
        None,  # a failed record stays an empty row
    ]
    table = list(csv.reader(io.StringIO(export(format="csv", vars="true").text)))
    assert table[0] == ["name", "_vars.city"]
    assert table[1:3] == [["Ada", "Lyon"], ["Bo", "Pune"]]
    assert export(format="json").json()[0] == {"name": "Ada"}  # without vars: the records only


def test_a_clone_offers_the_jobs_variables_and_confirms_with_what_is_sent(live: LiveApp) -> None:
    client = live.login("alice")
    drafted = draft(client, **BIKES)
    confirmed = client.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "variables": [CITY]}
    )
    job_id = confirmed.json()["jobId"]
    clone = client.post(f"/api/tasks/{job_id}/clone")
    assert clone.status_code == 200, clone.text
    assert clone.json()["variables"] == [CITY]  # the editor shows them
    # the draft token does not carry them: a user who removed them gets none
    bare = client.post("/api/tasks/confirm", json={"draftToken": clone.json()["draftToken"]})
    assert bare.status_code == 200, bare.text
    details = client.get(f"/api/tasks/{bare.json()['jobId']}").json()["details"]
    assert details.get("variables") is None
