"""The web app over HTTP on loopback (in-process app, embedded store, mock gateway)."""

from __future__ import annotations

import csv
import io
import time

import httpx
import orjson
import pytest

from datagems.accounts.tokens import issue_draft, issue_session
from datagems.bench.procs import wait_until
from datagems.web.keys import READ_CACHE
from datagems.web.routes import ROUTES
from tests.fleet import ADMIN_PASSWORD, SESSION_SECRET
from tests.web.harness import (
    USER_PASSWORD,
    LiveApp,
    confirm,
    draft,
    finish_job,
    session_token,
)

JOB = "00000000-0000-5000-8000-000000000000"


def concrete(path: str) -> str:
    return path.replace("{id}", JOB).replace("{index}", "0")


# --------------------------------------------------------------------------- sessions


def test_every_route_but_the_public_ones_answers_401_or_redirects_without_a_session(
    live: LiveApp,
) -> None:
    with live.client(follow_redirects=False) as client:
        for route in ROUTES:
            answer = client.request(route.method, concrete(route.path), json={})
            if route.public:
                assert answer.status_code not in (401, 302), route.path
            elif route.kind == "html":
                assert answer.status_code == 302, route.path
                assert answer.headers["Location"].startswith("/login")
            else:
                assert answer.status_code == 401, (route.method, route.path, answer.text)
                assert answer.json() == {"error": "authentication required"}


def test_health_needs_no_session(live: LiveApp) -> None:
    assert httpx.get(f"{live.url}/api/health").json()["ok"] is True


def test_login_sets_an_httponly_lax_cookie_and_me_returns_the_user(live: LiveApp) -> None:
    with live.client() as client:
        answer = client.post(
            "/api/auth/login", json={"username": "alice", "password": USER_PASSWORD}
        )
        assert answer.json() == {"username": "alice", "role": "user"}
        cookie = answer.headers["Set-Cookie"]
        assert "datagen_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Path=/" in cookie and "Max-Age=604800" in cookie
        me = client.get("/api/auth/me").json()
        assert (me["username"], me["role"]) == ("alice", "user")  # the original's shape
        assert me["limits"] == {"maxRecordsPerJob": live.services.settings.max_records_per_job}
        client.post("/api/auth/logout")
        assert client.get("/api/auth/me").status_code == 401


def test_every_login_failure_gets_the_same_answer(live: LiveApp) -> None:
    with live.client() as client:
        wrong = client.post("/api/auth/login", json={"username": "alice", "password": "nope"})
        unknown = client.post("/api/auth/login", json={"username": "ghost", "password": "nope"})
        bad_name = client.post("/api/auth/login", json={"username": "x!", "password": "nope"})
    assert wrong.status_code == unknown.status_code == bad_name.status_code == 401
    assert wrong.json() == unknown.json() == bad_name.json()


def test_a_bearer_session_works_without_an_origin(live: LiveApp) -> None:
    token = session_token(live.login("alice"))
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{live.url}/api/auth/me", headers=headers).json()["username"] == "alice"
    answer = httpx.post(
        f"{live.url}/api/user/settings", headers=headers, json={"baseUrl": "http://127.0.0.1:9"}
    )
    assert answer.status_code == 200
    profile_id = answer.json()["profiles"][-1]["id"]
    httpx.request(
        "DELETE", f"{live.url}/api/user/settings", headers=headers, json={"id": profile_id}
    ).raise_for_status()


def test_a_cross_origin_post_with_a_cookie_session_is_refused(live: LiveApp) -> None:
    client = live.login("alice")
    cookies = {"datagen_session": session_token(client)}
    for headers in (
        {"Origin": "https://evil.example"},
        {"Referer": "https://evil.example/page"},
        {"Origin": "null"},
        {},
    ):
        answer = httpx.post(
            f"{live.url}/api/tasks/confirm", cookies=cookies, headers=headers, json={}
        )
        assert answer.status_code == 403, headers
        assert "cross-origin" in answer.json()["error"]
    same = httpx.post(
        f"{live.url}/api/tasks/confirm",
        cookies=cookies,
        headers={"Referer": f"{live.url}/new"},
        json={},
    )
    assert same.status_code == 400


def test_a_draft_token_is_never_a_session(live: LiveApp) -> None:
    drafted = draft(live.login("alice"))
    token = drafted["draftToken"]
    assert (
        httpx.get(
            f"{live.url}/api/auth/me", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 401
    )
    assert (
        httpx.get(f"{live.url}/api/auth/me", cookies={"datagen_session": token}).status_code == 401
    )


def test_a_session_of_a_deleted_account_no_longer_works(live: LiveApp) -> None:
    live.accounts.create("carol", USER_PASSWORD)
    carol = live.login("carol")
    admin = live.login("admin", ADMIN_PASSWORD)
    assert admin.request("DELETE", "/api/admin/accounts", json={"username": "carol"}).json() == {
        "ok": True
    }
    assert carol.get("/api/auth/me").status_code == 401


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", "", "title must not be empty"),
        ("title", "   \n\t ", "title must not be empty"),
        ("title", "x" * 201, "title must be at most 200 characters"),
        ("description", " ", "description must not be empty"),
        ("description", "d" * 2001, "description must be at most 2000 characters"),
        ("instructions", "", "instructions must not be empty"),
        ("instructions", "i" * 8001, "instructions must be at most 8000 characters"),
        ("totalRecords", 0, "totalRecords"),
        ("totalRecords", 201, "totalRecords must be at most 200"),
        ("totalRecords", "many", "totalRecords"),
    ],
)
def test_schema_requests_out_of_bounds_get_400(
    live: LiveApp, field: str, value: object, message: str
) -> None:
    body = {"title": "t", "totalRecords": 3, "description": "d", "instructions": "i"}
    body[field] = value
    answer = live.login("alice").post("/api/tasks/schema", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(message)


def test_the_bounds_accept_their_limits(live: LiveApp) -> None:
    drafted = draft(
        live.login("alice"),
        title="t" * 200,
        description="d" * 2000,
        instructions="i" * 8000,
        totalRecords=200,
    )
    assert drafted["schema"]["type"] == "object"


def test_a_malformed_body_gets_400_and_a_huge_one_413(live: LiveApp) -> None:
    client = live.login("alice")
    answer = client.post(
        "/api/tasks/schema", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "malformed JSON body"}
    assert client.post("/api/tasks/schema", json=[1, 2]).status_code == 400
    huge = client.post("/api/tasks/schema", json={"title": "x" * 2_000_000})
    assert huge.status_code == 413
    assert huge.json() == {"error": "request body too large"}


def test_unknown_api_paths_get_a_json_404(live: LiveApp) -> None:
    answer = live.login("alice").get("/api/nothing-here")
    assert answer.status_code == 404
    assert answer.json() == {"error": "Not Found"}


# --------------------------------------------------------------------------- drafts


def test_a_draft_answers_the_contract_shape_and_counts_refreshes(live: LiveApp) -> None:
    client = live.login("alice")
    first = draft(client)
    assert set(first) - {"variables"} == {  # the proposed variables: ours, when there are any
        "schema",
        "schemaGeneratedAt",
        "schemaDurationMs",
        "schemaRefreshes",
        "draftToken",
        "failedAttempts",
    }
    assert first["schemaRefreshes"] == 0 and first["failedAttempts"] == 0
    assert first["schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    second = draft(client, previousDraftToken=first["draftToken"])
    third = draft(client, previousDraftToken=second["draftToken"])
    assert (second["schemaRefreshes"], third["schemaRefreshes"]) == (1, 2)


def test_a_job_confirmed_here_is_stored_as_the_original_app_stores_one(live: LiveApp) -> None:
    """What the original reads: a boolean ``datasetMode``, whole-millisecond durations, the
    details' ``inference.baseUrl`` and ``path``, a summary with ``updatedAt``."""
    from datagems.store import keys

    services = live.services
    assert services is not None
    client = live.login("alice")
    for sent, stored in ((True, True), ("classification", True), (None, False)):
        job_id = confirm(client, datasetMode=sent)
        base = orjson.loads(services.cstore.hget_raw(keys.JOBS, job_id))
        assert base["datasetMode"] is stored
        assert isinstance(base["schemaDurationMs"], int)
        details = services.r1fs.get_json(base["jobDetailsCid"], secret=services.r1fs_secret)
        assert details["datasetMode"] is stored and isinstance(details["schemaDurationMs"], int)
        assert details["inference"] == {
            "useExternalApi": False,
            "baseUrl": services.gateway_url,
            "path": "/create_chat_completion",
        }
        summary = orjson.loads(services.cstore.hget_raw(keys.user_jobs("alice"), job_id))
        assert summary["updatedAt"] == base["updatedAt"] == base["createdAt"]
        assert summary["status"] == "queued"


def test_tampered_expired_replayed_and_cross_user_drafts_get_400(live: LiveApp) -> None:
    alice, bob = live.login("alice"), live.login("bob")
    drafted = draft(alice)
    token = drafted["draftToken"]
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-3]}{'AAA' if signature[-3:] != 'AAA' else 'BBB'}"
    expired = issue_draft(
        SESSION_SECRET,
        "alice",
        {"schema": drafted["schema"], "totalRecords": 3},
        now=time.time() - 3 * 3600,
    )
    session_as_draft = session_token(alice)
    for bad in (tampered, expired, session_as_draft, "not-a-token"):
        answer = alice.post("/api/tasks/confirm", json={"draftToken": bad})
        assert answer.status_code == 400, bad
        assert answer.json() == {"error": "Invalid or expired draft"}
    assert bob.post("/api/tasks/confirm", json={"draftToken": token}).status_code == 400
    assert alice.post("/api/tasks/confirm", json={"draftToken": token}).status_code == 200
    replay = alice.post("/api/tasks/confirm", json={"draftToken": token})
    assert replay.status_code == 400
    assert replay.json() == {"error": "Invalid or expired draft"}


def test_an_edited_schema_is_checked_with_field_level_errors(live: LiveApp) -> None:
    client = live.login("alice")
    drafted = draft(client)
    broken = dict(drafted["schema"])
    broken["properties"] = {"age": {"type": "integr"}, "name": {"minLength": -1}}
    for path in ("/api/tasks/preview", "/api/tasks/confirm"):
        answer = client.post(path, json={"draftToken": drafted["draftToken"], "schema": broken})
        assert answer.status_code == 400, path
        errors = answer.json()["errors"]
        assert any("/properties/age" in e["path"] for e in errors), errors
        assert all(set(e) >= {"path", "message"} for e in errors)
    edited = dict(drafted["schema"])
    edited["properties"] = {**edited["properties"], "extra_note": {"type": "string"}}
    job_id = client.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "schema": edited}
    ).json()["jobId"]
    details = client.get(f"/api/tasks/{job_id}").json()["details"]
    assert "extra_note" in details["schema"]["properties"]


def test_a_preview_makes_three_valid_records_that_are_not_a_job(live: LiveApp) -> None:
    client = live.login("alice")
    before = client.get("/api/metrics").json()["metrics"]["totalJobs"]
    drafted = draft(client)
    answer = client.post("/api/tasks/preview", json={"draftToken": drafted["draftToken"]})
    assert answer.status_code == 200
    records = answer.json()["records"]
    assert [r["i"] for r in records] == [0, 1, 2]
    assert all(r["ok"] and isinstance(r["data"], dict) for r in records)
    assert client.get("/api/metrics").json()["metrics"]["totalJobs"] == before
    assert (
        'datagems_preview_records_total{peer="local",outcome="ok"}' in client.get("/metrics").text
    )


# --------------------------------------------------------------------------- jobs


def test_another_users_job_records_export_and_events_are_404_but_admins_see_them(
    live: LiveApp,
) -> None:
    alice, bob = live.login("alice"), live.login("bob")
    admin = live.login("admin", ADMIN_PASSWORD)
    job_id = confirm(alice)
    finish_job(live, job_id, [{"n": i} for i in range(6)])
    for suffix in ("", "/records", "/export?format=csv", "/events"):
        answer = bob.get(f"/api/tasks/{job_id}{suffix}")
        assert answer.status_code == 404, suffix
        assert answer.json() == {"error": "job not found"}
    assert bob.post(f"/api/tasks/{job_id}/cancel").status_code == 404
    assert bob.get(f"/jobs/{job_id}").status_code == 404
    assert job_id not in {j["id"] for j in bob.get("/api/tasks").json()["jobs"]}
    assert admin.get(f"/api/tasks/{job_id}").json()["job"]["owner"] == "alice"
    assert job_id in {j["id"] for j in admin.get("/api/tasks?all=true").json()["jobs"]}
    assert admin.get(f"/api/tasks/{job_id}/export?format=json").status_code == 200


def test_a_job_stored_in_a_shape_we_cannot_read_is_listed_as_unreadable_and_blocks_nothing(
    live: LiveApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Logged once with its key, listed to its owner as unreadable, the reason shown to
    admins only; the jobs around it are listed as usual."""
    from datagems.store import keys

    services = live.services
    assert services is not None
    alice, admin = live.login("alice"), live.login("admin", ADMIN_PASSWORD)
    good = confirm(alice)
    bad = {"id": "job_odd", "owner": "alice", "title": "From the future", "peers": "ts1"}
    services.cstore.hset(keys.JOBS, "job_odd", bad)
    # with its owner's summary, as every writer writes it: a user's pages read that hash
    services.cstore.hset(keys.user_jobs("alice"), "job_odd", {"id": "job_odd"})
    services.cstore.hset_raw(keys.JOBS, "job_text", "not json at all")
    services.cstore.set(keys.METRICS, {"totalJobs": 3})  # as the original does after a job
    live.app[READ_CACHE].jobs_changed()  # as if read after the cache's TTL

    def listed(client: httpx.Client, query: str = "") -> dict[str, dict]:
        return {j["id"]: j for j in client.get(f"/api/tasks{query}").json()["jobs"]}

    mine = listed(alice)
    assert good in mine and mine[good]["status"] == "queued"
    assert (
        mine["job_odd"]["status"] == "unreadable" and mine["job_odd"]["title"] == "From the future"
    )
    assert "reason" not in mine["job_odd"] and "job_text" not in mine
    everyone = listed(admin, "?all=true")
    assert everyone["job_odd"]["reason"].startswith("peers")
    assert everyone["job_text"]["reason"] == "not a JSON object"
    for _ in range(3):
        live.app[READ_CACHE].jobs_changed()
        listed(admin, "?all=true")
    assert caplog.text.count("unreadable job job_odd") == 1
    assert alice.get("/api/tasks/job_odd").status_code == 404


def test_a_job_view_has_the_contract_shape(live: LiveApp) -> None:
    client = live.login("alice")
    job_id = confirm(client, title="Shape")
    view = client.get(f"/api/tasks/{job_id}").json()
    assert {"job", "peers", "details"} <= set(view)
    assert view["job"]["status"] == "queued" and view["job"]["totalRecords"] == 6
    assert view["peers"][0]["range"] == {"start": 0, "end": 6}
    assert view["details"]["description"].startswith("A customer support ticket")
    listed = client.get("/api/tasks").json()["jobs"]
    assert listed[0]["id"] == job_id


def test_exports_merge_json_jsonl_and_csv_with_formula_cells_neutralised(live: LiveApp) -> None:
    client = live.login("alice")
    job_id = confirm(client)
    rows = [
        {"name": "Ann", "note": '=HYPERLINK("x")'},
        None,
        {"name": 'Bo "B", c', "tags": ["a", "b"]},
        {"name": "+1", "age": 3},
        {"name": "@me"},
        {"name": "-x"},
    ]
    finish_job(live, job_id, rows)
    as_json = client.get(f"/api/tasks/{job_id}/export?format=json")
    assert as_json.headers["Content-Type"].startswith("application/json")
    assert (
        f'filename="Support-tickets-{job_id[-6:]}.json"' in as_json.headers["Content-Disposition"]
    )
    assert as_json.json() == [rows[0], None, rows[2], rows[3], rows[4], rows[5]]
    jsonl = client.get(f"/api/tasks/{job_id}/export?format=jsonl").text.splitlines()
    assert [orjson.loads(line) for line in jsonl] == rows  # the same rows: null where failed
    body = client.get(f"/api/tasks/{job_id}/export?format=csv")
    assert body.headers["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(body.text)))
    assert table[0] == ["name", "note", "tags", "age"]
    assert table[1] == ["Ann", '\'=HYPERLINK("x")', "", ""]
    assert table[2] == ["", "", "", ""]  # the failed record's row
    assert table[3] == ['Bo "B", c', "", '["a","b"]', ""]
    assert [row[0] for row in table[4:]] == ["'+1", "'@me", "'-x"]
    assert "\r\n" in body.text
    assert client.get(f"/api/tasks/{job_id}/export?format=xml").status_code == 400


def test_a_running_job_exports_only_partially_and_on_request(live: LiveApp) -> None:
    client = live.login("alice")
    job_id = confirm(client)
    finish_job(live, job_id, [{"n": 0}, {"n": 1}], upload=False)
    refused = client.get(f"/api/tasks/{job_id}/export?format=json")
    assert refused.status_code == 409
    partial = client.get(f"/api/tasks/{job_id}/export?format=json&partial=true")
    assert partial.status_code == 200
    assert partial.json() == [None] * 6  # nothing uploaded yet


def test_records_show_in_flight_and_finished_states_with_attempts(live: LiveApp) -> None:
    client = live.login("alice")
    job_id = confirm(client)
    finish_job(live, job_id, [{"n": 0}, None], upload=False)
    page = client.get(f"/api/tasks/{job_id}/records?offset=0&limit=10").json()
    assert page["total"] == 6
    flying = page["inFlight"][0]
    assert (flying["i"], flying["state"], flying["attempt"], flying["reason"]) == (
        2,
        "retrying",
        2,
        "invalid_json",
    )
    for bad in ("offset=-1", "limit=0", "limit=501", "offset=x"):
        assert client.get(f"/api/tasks/{job_id}/records?{bad}").status_code == 400


def test_cancel_answers_202_and_the_job_becomes_cancelled(live: LiveApp) -> None:
    client = live.login("alice")
    job_id = confirm(client)
    answer = client.post(f"/api/tasks/{job_id}/cancel")
    assert answer.status_code == 202
    assert client.get(f"/api/tasks/{job_id}").json()["job"]["status"] == "cancelled"


def test_events_push_the_job_view_and_end_when_the_job_is_finished(live: LiveApp) -> None:
    client = live.login("alice")
    job_id = confirm(client)
    seen: list[str] = []
    with client.stream("GET", f"/api/tasks/{job_id}/events") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                seen.append(line[7:])
                if seen == ["job"]:
                    finish_job(live, job_id, [{"n": i} for i in range(6)])
            if line.startswith("data: ") and seen[-1] == "job":
                last = orjson.loads(line[6:])
            if seen and seen[-1] == "end":
                break
    assert seen[0] == "job" and seen[-1] == "end"
    assert last["job"]["status"] == "succeeded" and last["job"]["totalOk"] == 6


# --------------------------------------------------------------------------- settings, admin


def test_profiles_mask_keys_on_every_read_and_are_limited(live: LiveApp) -> None:
    client = live.login("bob")
    secret_key = "sk-test-abcdefghijklmnop1234"
    saved = client.post(
        "/api/user/settings",
        json={"name": "Mock", "baseUrl": f"{live.services.gateway_url}/v1", "apiKey": secret_key},
    )
    assert saved.status_code == 200, saved.text
    assert secret_key not in saved.text and "1234" in saved.text
    profile = saved.json()["profiles"][0]
    assert profile["apiKeyMasked"] == "••••1234" and "apiKey" not in profile
    assert secret_key not in client.get("/api/user/settings").text
    models = client.post("/api/user/models", json={"profileId": profile["id"]})
    assert models.status_code == 200 and models.json()["models"]
    activated = client.post("/api/user/settings", json={"id": profile["id"], "setActive": True})
    assert activated.json()["activeProfileId"] == profile["id"]
    for n in range(9):
        client.post("/api/user/settings", json={"baseUrl": f"http://127.0.0.1:9/{n}"})
    over = client.post("/api/user/settings", json={"baseUrl": "http://127.0.0.1:9/x"})
    assert over.status_code == 409
    deleted = client.request("DELETE", "/api/user/settings", json={"id": profile["id"]})
    assert deleted.json()["activeProfileId"] is None


def test_a_job_can_run_on_a_users_openai_profile(live: LiveApp) -> None:
    client = live.login("admin", ADMIN_PASSWORD)
    saved = client.post(
        "/api/user/settings",
        json={
            "name": "OpenAI mock",
            "baseUrl": f"{live.services.gateway_url}/v1",
            "apiKey": "k" * 20,
        },
    ).json()
    profile_id = saved["profiles"][0]["id"]
    drafted = draft(client, useExternalApi=True, profileId=profile_id)
    preview = client.post("/api/tasks/preview", json={"draftToken": drafted["draftToken"]})
    assert preview.status_code == 200 and preview.json()["records"][0]["ok"]


def test_admin_routes_are_for_admins_only(live: LiveApp) -> None:
    alice = live.login("alice")
    assert alice.get("/api/admin/accounts").status_code == 403
    assert (
        alice.request("DELETE", "/api/admin/accounts", json={"username": "bob"}).status_code == 403
    )
    assert alice.get("/admin").status_code == 403
    admin = live.login("admin", ADMIN_PASSWORD)
    names = {a["username"] for a in admin.get("/api/admin/accounts").json()["accounts"]}
    assert {"admin", "alice", "bob"} <= names
    own = admin.request("DELETE", "/api/admin/accounts", json={"username": "admin"})
    assert own.status_code == 400


def test_metrics_are_served_as_json_and_prometheus_text(live: LiveApp) -> None:
    client = live.login("alice")
    metrics = client.get("/api/metrics").json()["metrics"]
    assert set(metrics) >= {
        "totalJobs",
        "totalRecordsRequested",
        "totalRecordsGenerated",
        "activeJobs",
        "failedJobs",
        "lastJobAt",
    }
    text = client.get("/metrics")
    assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE datagems_jobs_total gauge" in text.text


# --------------------------------------------------------------------------- openapi


def test_the_openapi_document_describes_every_registered_route(live: LiveApp) -> None:
    document = live.login("alice").get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert live.app is not None
    for route in live.app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical
        if path == "/static":
            path = "/static/{filename}"
        assert route.method.lower() in document["paths"].get(path, {}), (route.method, path)
    schema_body = document["paths"]["/api/tasks/schema"]["post"]["requestBody"]
    ref = schema_body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = document["components"]["schemas"][ref]["properties"]
    assert properties["title"]["maxLength"] == 200 and "totalRecords" in properties


def test_a_new_password_signs_out_the_sessions_issued_under_the_old_one(live: LiveApp) -> None:
    assert live.accounts.get("grace") is None
    live.accounts.create("grace", USER_PASSWORD)
    browser = live.login("grace")
    api = httpx.post(
        f"{live.url}/api/auth/token", json={"username": "grace", "password": USER_PASSWORD}
    ).json()["token"]
    bearer = {"Authorization": f"Bearer {api}"}
    assert browser.get("/api/auth/me").status_code == 200
    assert httpx.get(f"{live.url}/api/auth/me", headers=bearer).status_code == 200
    # an operator (or another replica's "resend") gives the account a new password
    live.accounts.set_password("grace", "a-brand-new-password-42")
    wait_until(
        lambda: browser.get("/api/auth/me").status_code == 401,
        what="the old cookie session to be refused",
    )
    assert httpx.get(f"{live.url}/api/auth/me", headers=bearer).status_code == 401
    fresh = live.login("grace", "a-brand-new-password-42")
    assert fresh.get("/api/auth/me").json()["username"] == "grace"


def test_a_forged_admin_session_for_an_unknown_user_is_refused(live: LiveApp) -> None:
    token = issue_session("a-wrong-secret-of-enough-length-0123456789", "admin", "admin")
    assert (
        httpx.get(
            f"{live.url}/api/auth/me", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 401
    )
    ghost = issue_session(SESSION_SECRET, "ghost", "admin")
    assert (
        httpx.get(
            f"{live.url}/api/admin/accounts", headers={"Authorization": f"Bearer {ghost}"}
        ).status_code
        == 401
    )


class KeyCollector:
    """A host a thief controls: a real HTTP server on loopback noting every Authorization."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("Authorization"))
                body = b'{"data": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_saved_key_is_never_sent_to_a_new_base_url_without_being_entered_again(
    live: LiveApp,
) -> None:
    """Issue 13 item 10: changing only ``baseUrl`` kept the stored key, and the next model
    listing sent it to the new host."""
    client = live.login("alice")
    secret_key = "sk-test-alices-own-key-0987"
    saved = client.post(
        "/api/user/settings",
        json={"name": "Mine", "baseUrl": f"{live.services.gateway_url}/v1", "apiKey": secret_key},
    )
    assert saved.status_code == 200, saved.text
    profile_id = saved.json()["profiles"][-1]["id"]
    thief = KeyCollector()
    try:
        for masked in (None, "••••0987"):  # the form sends the mask back, or nothing
            body = {"id": profile_id, "baseUrl": thief.url}
            if masked:
                body["apiKey"] = masked
            moved = client.post("/api/user/settings", json=body)
            assert moved.status_code == 400, moved.text
            assert "API key again" in moved.json()["error"]
        kept = client.get("/api/user/settings").json()["profiles"]
        assert next(p for p in kept if p["id"] == profile_id)["baseUrl"].startswith(
            live.services.gateway_url
        )
        listed = client.post("/api/user/models", json={"profileId": profile_id})
        assert listed.status_code == 200
        assert thief.seen == []
        # the same address again (the form always sends it) keeps the key
        same = client.post(
            "/api/user/settings",
            json={"id": profile_id, "baseUrl": f"{live.services.gateway_url}/v1/", "name": "Re"},
        )
        assert same.status_code == 200 and same.json()["profiles"][-1]["hasApiKey"]
        # a new address with a key entered again is the owner's choice
        renewed = client.post(
            "/api/user/settings",
            json={"id": profile_id, "baseUrl": thief.url, "apiKey": "sk-for-the-new-host-1111"},
        )
        assert renewed.status_code == 200, renewed.text
        client.post("/api/user/models", json={"profileId": profile_id})
        assert thief.seen == ["Bearer sk-for-the-new-host-1111"]
    finally:
        thief.close()
        client.request("DELETE", "/api/user/settings", json={"id": profile_id})
