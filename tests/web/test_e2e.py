"""End to end over HTTP against real processes: devnode + mock-llm + one replica."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from datagems.bench.procs import wait_until
from datagems.web.routes import ROUTES
from tests.fleet import ADMIN_PASSWORD, Fleet

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with Fleet(Path(tmp_path_factory.mktemp("fleet")), peers=["a"]) as running:
        running.start_replicas()
        yield running


@pytest.fixture(scope="module")
def url(fleet: Fleet) -> str:
    return fleet.replicas["a"].url


def signed_in(url: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=url, headers={"Origin": url}, timeout=30)
    answer = client.post("/api/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return client


@pytest.fixture(scope="module")
def users(url: str) -> dict[str, httpx.Client]:
    admin = signed_in(url, "admin", ADMIN_PASSWORD)
    return {"admin": admin}


def new_user(fleet: Fleet, name: str) -> None:
    """Accounts are written through the store layer, as the admin tooling does."""
    from datagems.accounts.users import Accounts
    from tests.fleet import AUTH_PEPPER

    Accounts(fleet.cstore, "datagen:auth", AUTH_PEPPER).create(name, f"{name}-Passw0rd!")


def schema_body(records: int = 12) -> dict[str, object]:
    return {
        "title": "Products =cmd",
        "totalRecords": records,
        "description": "A product of an online shop, with a name, a price and tags.",
        "instructions": "Prices in euros. Names may start with = or + on purpose.",
    }


def test_the_whole_flow_login_schema_confirm_progress_export(fleet: Fleet, url: str) -> None:
    new_user(fleet, "erin")
    client = signed_in(url, "erin", "erin-Passw0rd!")
    drafted = client.post("/api/tasks/schema", json=schema_body()).json()
    assert drafted["schema"]["type"] == "object" and drafted["draftToken"]
    # the user reorders the fields before confirming: not alphabetical, on purpose
    schema = drafted["schema"]
    fields = sorted(schema["properties"], reverse=True)
    schema["properties"] = {name: schema["properties"][name] for name in fields}
    job_id = client.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "schema": schema}
    ).json()["jobId"]

    def finished() -> dict | None:
        view = client.get(f"/api/tasks/{job_id}").json()
        return view if view["job"]["status"] == "succeeded" else None

    view = wait_until(finished, timeout=90, interval=0.2, what="the job to succeed")
    assert view["job"]["totalOk"] + view["job"]["totalFailed"] == 12
    assert view["peers"][0]["resultCid"]

    as_json = client.get(f"/api/tasks/{job_id}/export?format=json").json()
    assert len(as_json) == 12 and any(r is not None for r in as_json)
    ok_records = [r for r in as_json if r is not None]
    jsonl = client.get(f"/api/tasks/{job_id}/export?format=jsonl").text.splitlines()
    assert [orjson.loads(line) for line in jsonl] == as_json  # the same rows in every format
    body = client.get(f"/api/tasks/{job_id}/export?format=csv").text
    table = list(csv.reader(io.StringIO(body)))
    header = table[0]
    assert header == fields, "CSV columns follow the schema's field order"
    assert all(list(record) == [f for f in fields if f in record] for record in ok_records)
    details = client.get(f"/api/tasks/{job_id}").json()["details"]
    assert list(details["schema"]["properties"]) == fields
    assert len(table) == 1 + len(as_json)
    assert sum(any(row) for row in table[1:]) == len(ok_records)
    for row in table[1:]:
        assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
    records = client.get(f"/api/tasks/{job_id}/records?limit=500").json()
    assert {r["state"] for r in records["records"]} <= {"ok", "failed"}
    assert len(records["records"]) == 12


def test_user_b_gets_404_for_user_as_job_and_its_export(fleet: Fleet, url: str) -> None:
    new_user(fleet, "frank")
    new_user(fleet, "grace")
    frank = signed_in(url, "frank", "frank-Passw0rd!")
    grace = signed_in(url, "grace", "grace-Passw0rd!")
    drafted = frank.post("/api/tasks/schema", json=schema_body(3)).json()
    job_id = frank.post("/api/tasks/confirm", json={"draftToken": drafted["draftToken"]}).json()[
        "jobId"
    ]
    for path in (f"/api/tasks/{job_id}", f"/api/tasks/{job_id}/export?format=json"):
        assert grace.get(path).status_code == 404
    assert frank.get(f"/api/tasks/{job_id}").status_code == 200


def test_drafts_tampered_replayed_or_of_another_user_get_400_and_never_act_as_sessions(
    fleet: Fleet, url: str
) -> None:
    new_user(fleet, "heidi")
    new_user(fleet, "ivan")
    heidi = signed_in(url, "heidi", "heidi-Passw0rd!")
    ivan = signed_in(url, "ivan", "ivan-Passw0rd!")
    token = heidi.post("/api/tasks/schema", json=schema_body(2)).json()["draftToken"]
    head, payload, signature = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["totalRecords"] = 100000
    forged_payload = base64.urlsafe_b64encode(orjson.dumps(claims)).decode().rstrip("=")
    forged = f"{head}.{forged_payload}.{signature}"
    assert heidi.post("/api/tasks/confirm", json={"draftToken": forged}).status_code == 400
    assert ivan.post("/api/tasks/confirm", json={"draftToken": token}).status_code == 400
    assert heidi.post("/api/tasks/confirm", json={"draftToken": token}).status_code == 200
    assert heidi.post("/api/tasks/confirm", json={"draftToken": token}).status_code == 400
    as_session = httpx.get(f"{url}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert as_session.status_code == 401


def test_a_cross_origin_post_with_a_cookie_session_is_refused(url: str, users: dict) -> None:
    cookie = users["admin"].cookies.get("datagen_session")
    answer = httpx.post(
        f"{url}/api/tasks/schema",
        cookies={"datagen_session": cookie},
        headers={"Origin": "http://attacker.example"},
        json=schema_body(1),
    )
    assert answer.status_code == 403


def test_every_route_except_health_answers_401_without_a_session(url: str) -> None:
    with httpx.Client(base_url=url, headers={"Origin": url}, timeout=10) as client:
        for route in ROUTES:
            if route.public or route.kind == "html":
                continue
            path = route.path.replace("{id}", "00000000-0000-0000-0000-000000000000")
            path = path.replace("{index}", "0")
            assert client.request(route.method, path).status_code == 401, route.path


def test_a_cancelled_job_stops_and_exports_what_was_made(fleet: Fleet, url: str) -> None:
    new_user(fleet, "judy")
    judy = signed_in(url, "judy", "judy-Passw0rd!")
    fleet.llm_config(latencyMs=200)
    try:
        drafted = judy.post("/api/tasks/schema", json=schema_body(400)).json()
        job_id = judy.post("/api/tasks/confirm", json={"draftToken": drafted["draftToken"]}).json()[
            "jobId"
        ]
        wait_until(
            lambda: judy.get(f"/api/tasks/{job_id}").json()["job"]["status"] == "running",
            what="the job to run",
        )
        assert judy.post(f"/api/tasks/{job_id}/cancel").status_code == 202
        view = wait_until(
            lambda: (
                (v := judy.get(f"/api/tasks/{job_id}").json())["job"]["status"] == "cancelled" and v
            ),
            what="the job to be cancelled",
        )
    finally:
        fleet.llm_config(latencyMs=0)
    assert view["job"]["totalGenerated"] < 400
    exported = wait_until(
        lambda: (
            (r := judy.get(f"/api/tasks/{job_id}/export?format=json&partial=true")).status_code
            == 200
            and r
        ),
        what="the export of what was made",
    ).json()
    assert len(exported) == 400
    final = judy.get(f"/api/tasks/{job_id}").json()["job"]
    made = sum(1 for record in exported if record is not None)
    assert made <= final["totalOk"] and final["totalGenerated"] < 400  # it stopped early
