"""Administrators make accounts and reset passwords without mail; profiles keep a host
that does not resolve (with a warning) and carry the record calls' temperature and max
tokens (issue 16)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.fleet import ADMIN_PASSWORD
from tests.web.harness import LiveApp, draft

UNRESOLVABLE = "https://no-such-host.invalid/v1"


def test_an_admin_creates_a_user_without_smtp_and_the_user_signs_in(live: LiveApp) -> None:
    admin = live.login("admin", ADMIN_PASSWORD)
    anonymous = live.client()
    assert (
        anonymous.post(
            "/api/auth/register", json={"name": "Carol", "email": "carol@example.com"}
        ).status_code
        == 503
    )  # no SMTP here: sign-up is off
    made = admin.post("/api/admin/accounts", json={"name": "Carol", "email": "Carol@Example.com"})
    assert made.status_code == 201, made.text
    assert made.headers["Cache-Control"] == "no-store"
    answer = made.json()
    assert answer["email"] == "carol@example.com" and answer["username"].startswith("carol_")
    carol = live.login(answer["username"], answer["password"])
    me = carol.get("/api/auth/me").json()
    assert (me["username"], me["role"]) == (answer["username"], "user")
    listed = admin.get("/api/admin/accounts").json()["accounts"]
    assert [a["username"] for a in listed if a["email"] == "carol@example.com"] == [
        answer["username"]
    ]


def test_one_account_per_address_holds_for_accounts_an_admin_makes(live: LiveApp) -> None:
    admin = live.login("admin", ADMIN_PASSWORD)
    first = admin.post("/api/admin/accounts", json={"name": "Dan", "email": "dan@example.com"})
    assert first.status_code == 201, first.text
    again = admin.post("/api/admin/accounts", json={"name": "Dan 2", "email": "DAN@example.com"})
    assert again.status_code == 409
    assert "already exists" in again.json()["error"]


def test_concurrent_creations_of_one_address_leave_one_account(live: LiveApp) -> None:
    admin = live.login("admin", ADMIN_PASSWORD)
    body = {"name": "Eve", "email": "eve.same@example.com"}
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: admin.post("/api/admin/accounts", json=body), range(6)))
    assert {a.status_code for a in answers} <= {201, 409}
    made = {a.json()["username"] for a in answers if a.status_code == 201}
    assert len(made) == 1  # every success names the one account of this address
    listed = admin.get("/api/admin/accounts").json()["accounts"]
    assert [a["username"] for a in listed if a["email"] == body["email"]] == sorted(made)


def test_only_admins_create_accounts_or_reset_passwords(live: LiveApp) -> None:
    alice = live.login("alice")
    body = {"name": "Mallory", "email": "mallory@example.com"}
    assert alice.post("/api/admin/accounts", json=body).status_code == 403
    reset = alice.post("/api/admin/accounts/password", json={"username": "bob"})
    assert reset.status_code == 403
    assert live.client().post("/api/admin/accounts", json=body).status_code == 401


def test_an_admin_resets_a_password_and_the_old_sessions_and_password_stop_working(
    live: LiveApp,
) -> None:
    admin = live.login("admin", ADMIN_PASSWORD)
    made = admin.post("/api/admin/accounts", json={"name": "Fay", "email": "fay@example.com"})
    user = made.json()
    old_session = live.login(user["username"], user["password"])
    reset = admin.post("/api/admin/accounts/password", json={"username": user["username"]})
    assert reset.status_code == 200, reset.text
    assert reset.headers["Cache-Control"] == "no-store"
    fresh = reset.json()["password"]
    assert fresh != user["password"]
    assert old_session.get("/api/auth/me").status_code == 401
    stale = live.client().post(
        "/api/auth/login", json={"username": user["username"], "password": user["password"]}
    )
    assert stale.status_code == 401
    assert live.login(user["username"], fresh).get("/api/auth/me").status_code == 200
    missing = admin.post("/api/admin/accounts/password", json={"username": "nobody-here"})
    assert missing.status_code == 404
    own = admin.post("/api/admin/accounts/password", json={"username": "admin"})
    assert own.status_code == 400


def test_a_profile_whose_host_does_not_resolve_is_saved_with_a_warning(live: LiveApp) -> None:
    bob = live.login("bob")
    saved = bob.post(
        "/api/user/settings", json={"name": "Later", "baseUrl": UNRESOLVABLE, "apiKey": "k" * 20}
    )
    assert saved.status_code == 200, saved.text
    answer = saved.json()
    assert len(answer["warnings"]) == 1 and "no-such-host.invalid" in answer["warnings"][0]
    profile = next(p for p in answer["profiles"] if p["name"] == "Later")
    assert profile["baseUrl"] == UNRESOLVABLE
    # the guard still runs at call time: nothing is sent to a name that does not resolve
    models = bob.post("/api/user/models", json={"profileId": profile["id"]})
    assert models.status_code == 400 and "cannot resolve" in models.json()["error"]
    # a refused address is still refused outright, not saved with a warning
    metadata = bob.post("/api/user/settings", json={"baseUrl": "http://169.254.169.254/"})
    assert metadata.status_code == 400
    bob.request("DELETE", "/api/user/settings", json={"id": profile["id"]})


def _record_calls(live: LiveApp) -> list[dict]:
    return httpx.get(f"{live.services.gateway_url}/requests").json()


def test_a_profiles_temperature_and_max_tokens_are_defaults_a_job_overrides(
    live: LiveApp,
) -> None:
    alice = live.login("alice")
    saved = alice.post(
        "/api/user/settings",
        json={
            "name": "Tuned",
            "baseUrl": f"{live.services.gateway_url}/v1",
            "apiKey": "k" * 20,
            "temperature": 0.3,
            "maxTokens": 333,
        },
    )
    assert saved.status_code == 200, saved.text
    profile = next(p for p in saved.json()["profiles"] if p["name"] == "Tuned")
    assert (profile["temperature"], profile["maxTokens"]) == (0.3, 333)
    bad = alice.post("/api/user/settings", json={"id": profile["id"], "temperature": 7})
    assert bad.status_code == 400

    def previewed(**inference: object) -> list[dict]:
        drafted = draft(alice, useExternalApi=True, profileId=profile["id"], **inference)
        shown = alice.post("/api/tasks/preview", json={"draftToken": drafted["draftToken"]})
        assert shown.status_code == 200, shown.text
        return [c for c in _record_calls(live) if c.get("form") != "draft"][-3:]

    calls = previewed()
    assert {(c["temperature"], c["maxTokens"]) for c in calls} == {(0.3, 333)}
    calls = previewed(inferenceParams={"temperature": 0.9, "maxTokens": 500})
    assert {(c["temperature"], c["maxTokens"]) for c in calls} == {(0.9, 500)}

    cleared = alice.post(
        "/api/user/settings", json={"id": profile["id"], "temperature": None}
    ).json()
    kept = next(p for p in cleared["profiles"] if p["id"] == profile["id"])
    assert "temperature" not in kept and kept["maxTokens"] == 333
