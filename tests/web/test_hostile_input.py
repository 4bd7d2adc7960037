"""Hostile input, table by table, against the real app (embedded store, mock gateway).

Every answer here is JSON ``{"error": ...}`` with a 4xx status (or the deliberate 502 of
an unreachable SMTP server) and holds no secret. Unknown body fields: every body model
has ``extra="ignore"`` (``bodies.Body``), so they are ignored, never refused; the tests
check both the rule and its effect (a ``role`` field does not make anyone an admin).

Regression tests of the bugs the fuzz and these tables found: recursive ``$ref`` schemas
and overlapping alternations under a repeat passed the schema check (now 400), a deep
schema was "not JSON-serializable" (now "nested too deeply"), a 10 kB path or header got
aiohttp's text/plain 400 (now the app's JSON 404 / 401).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from datagems.bench.procs import free_port
from datagems.schema.check import MAX_SCHEMA_BYTES
from datagems.web.routes import ROUTES
from tests.fleet import ADMIN_PASSWORD, TEST_SECRETS
from tests.web.harness import USER_PASSWORD, LiveApp, confirm, draft, finish_job, session_token
from tests.web.test_fuzz import loopback_only

pytestmark = pytest.mark.timeout(30)

MAX_BODY = 256 * 1024
SMTP_PASSWORD = "smtp-pass-hostile-4c2e9a"
SECRETS = (*TEST_SECRETS, SMTP_PASSWORD)
BODY_ROUTES = [(r.method, r.path) for r in ROUTES if r.body is not None]
ID_ROUTES = [
    ("GET", "/api/tasks/{id}"),
    ("GET", "/api/tasks/{id}/records"),
    ("GET", "/api/tasks/{id}/export"),
    ("GET", "/api/tasks/{id}/events"),
    ("POST", "/api/tasks/{id}/cancel"),
    ("POST", "/api/tasks/{id}/retry-failed"),
    ("POST", "/api/tasks/{id}/extend"),
]
HOSTILE_IDS = {
    "dot-dot-slash": "..%2F..%2Fetc%2Fpasswd",
    "slash": "%2F",
    "dot-dot": "%2e%2e",
    "backslashes": "..%5C..%5Cwindows",
    "nul": "%00",
    "bad-utf8": "%ff%fe",
    "unicode": "%C3%BC%F0%9F%98%8A",
    "crlf": "a%0D%0AX-Injected:%20yes",
    "space": "%20",
    "huge": "x" * 10_000,
}
HOSTILE_USERNAMES = {
    "dot-dot-slash": "../alice",
    "backslashes": "..\\alice",
    "traversal": "alice/../admin",
    "encoded-slash": "%2Falice",
    "unicode": "ü😊",
    "empty": "",
    "blank": "   ",
    "nul": "alice\x00",
    "huge": "x" * 10_000,
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with loopback_only():
        app = LiveApp(
            Path(tmp_path_factory.mktemp("hostile")),
            max_body_bytes=MAX_BODY,
            smtp_host="127.0.0.1",
            smtp_port=free_port(),  # nothing listens: registration reads its body, then 502
            smtp_from="noreply@example.com",
            smtp_password=SecretStr(SMTP_PASSWORD),
            # many failed logins on purpose: the sign-in limits have their own tests
            login_max_failures_per_account=100_000,
            login_max_failures_per_address=100_000,
        ).start()
        assert app.app is not None
        yield app
        app.stop()


@pytest.fixture(scope="module")
def token(hostile: LiveApp) -> str:
    return session_token(hostile.login("admin", ADMIN_PASSWORD))


@pytest.fixture(scope="module")
def admin(hostile: LiveApp, token: str) -> Iterator[httpx.Client]:
    client = httpx.Client(
        base_url=hostile.url, headers={"Authorization": f"Bearer {token}"}, timeout=20
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def job_id(hostile: LiveApp, admin: httpx.Client) -> str:
    found = confirm(admin)
    finish_job(hostile, found, [{"n": 1}, None, {"n": 3}, {"n": 4}, None, {"n": 6}])
    return found


@pytest.fixture(scope="module")
def draft_token(admin: httpx.Client) -> str:
    return draft(admin)["draftToken"]


def assert_error(answer: httpx.Response, *statuses: int, secrets: tuple[str, ...] = ()) -> None:
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("application/json"), answer.text[:200]
    payload = answer.json()
    assert isinstance(payload, dict) and isinstance(payload.get("error"), str), payload
    assert payload["error"]
    assert_no_secret(answer, secrets)


def assert_no_secret(answer: httpx.Response, extra: tuple[str, ...] = ()) -> None:
    headers = "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
    for secret in (*SECRETS, *extra):
        assert secret.encode() not in answer.content, secret[:6]
        assert secret not in headers, secret[:6]


def _path(template: str, job: str) -> str:
    return template.replace("{id}", job)


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_a_body_over_the_limit_is_413(
    admin: httpx.Client, job_id: str, token: str, method: str, path: str
) -> None:
    body = b'{"title": "' + b"x" * MAX_BODY + b'"}'
    answer = admin.request(method, _path(path, job_id), content=body)
    assert_error(answer, 413, secrets=(token,))
    assert answer.json()["error"] == "request body too large"


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_a_chunked_body_over_the_limit_is_413(
    admin: httpx.Client, job_id: str, method: str, path: str
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 8192 + 2):
            yield b"x" * 8192

    assert_error(admin.request(method, _path(path, job_id), content=chunks()), 413)


MALFORMED = {
    "truncated": b"{",
    "bare word": b"nul",
    "bad utf-8": b"\xff\xfe{}",
    "nul byte": b"\x00",
    "NaN": b"NaN",
    "number overflow": b'{"totalRecords": 1e400}',
    "too deep": b"[" * 2000 + b"]" * 2000,
    "bad utf-8 in a string": b'{"title": "\xff"}',
}
NOT_AN_OBJECT = {"array": b"[]", "string": b'"text"', "null": b"null", "number": b"42"}


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_is_400(
    admin: httpx.Client, job_id: str, method: str, path: str, raw: bytes
) -> None:
    answer = admin.request(method, _path(path, job_id), content=raw)
    assert_error(answer, 400)
    assert answer.json()["error"] == "malformed JSON body"


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("raw", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
def test_json_that_is_not_an_object_is_400(
    admin: httpx.Client, job_id: str, method: str, path: str, raw: bytes
) -> None:
    answer = admin.request(method, _path(path, job_id), content=raw)
    assert_error(answer, 400)
    assert answer.json()["error"] == "the body must be a JSON object"


DRAFT = {"title": "t", "totalRecords": 2, "description": "d", "instructions": "i"}
WRONG_TYPES = [
    ("/api/auth/login", {"username": 5, "password": "x"}),
    ("/api/auth/login", {"username": "alice", "password": ["x"]}),
    ("/api/auth/login", {}),
    ("/api/auth/token", {"username": {"$ne": ""}, "password": "x"}),
    ("/api/auth/register", {"name": {}, "email": "a@example.com"}),
    ("/api/auth/register", {"name": "n", "email": 7}),
    ("/api/auth/register", {"name": "n", "email": "not-an-address"}),
    ("/api/auth/register/resend", {"email": []}),
    ("/api/tasks/schema", {**DRAFT, "title": 5}),
    ("/api/tasks/schema", {**DRAFT, "totalRecords": "many"}),
    ("/api/tasks/schema", {**DRAFT, "totalRecords": 10**30}),
    ("/api/tasks/schema", {**DRAFT, "totalRecords": -1}),
    ("/api/tasks/schema", {**DRAFT, "totalRecords": 10**6}),
    # issue 13 item 14: a number as text and a boolean were taken as a count
    ("/api/tasks/schema", {**DRAFT, "totalRecords": "12"}),
    ("/api/tasks/schema", {**DRAFT, "totalRecords": True}),
    ("/api/tasks/schema", {**DRAFT, "totalRecords": 12.0}),
    # ... and instructions made only of invisible characters were taken as instructions
    ("/api/tasks/schema", {**DRAFT, "instructions": "\u200b\u200c\u200d\u2060\ufeff"}),
    ("/api/tasks/schema", {**DRAFT, "description": "\u200b \u200e\u3164"}),
    ("/api/tasks/schema", {**DRAFT, "title": "\u2063\u034f"}),
    # control characters in a single-line text (it may reach a header or a log line)
    ("/api/tasks/schema", {**DRAFT, "title": "a\r\nforged: line"}),
    ("/api/tasks/schema", {**DRAFT, "instructions": "nul\x00inside"}),
    ("/api/user/settings", {"baseUrl": "http://127.0.0.1:9/v1", "name": "x\ny"}),
    ("/api/user/settings", {"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "k\r\nX-Evil: 1"}),
    ("/api/auth/register/resend", {"email": "a@example.org\r\nBcc: b@example.org"}),
    ("/api/tasks/schema", {**DRAFT, "inferenceParams": "hot"}),
    ("/api/tasks/schema", {**DRAFT, "useExternalApi": {"yes": 1}}),
    ("/api/tasks/schema", {**DRAFT, "inferenceBaseUrl": "http://[::1"}),
    ("/api/tasks/preview", {"draftToken": 5}),
    ("/api/tasks/preview", {"draftToken": "not-a-token"}),
    ("/api/tasks/preview", {"draftToken": "x", "schema": ["a"]}),
    ("/api/tasks/confirm", {"draftToken": "x", "schema": "text"}),
    ("/api/tasks/{id}/extend", {"additionalRecords": "5"}),
    ("/api/tasks/{id}/extend", {"additionalRecords": 2.5}),
    ("/api/tasks/{id}/extend", {"additionalRecords": True}),
    ("/api/user/settings", {"setActive": "maybe"}),
    ("/api/user/settings", {"baseUrl": 5}),
    ("/api/user/models", {"baseUrl": "http://127.0.0.1:1/v1", "apiKey": 5}),
]


@pytest.mark.parametrize(
    ("path", "body"), WRONG_TYPES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(WRONG_TYPES)]
)
def test_wrong_types_and_bounds_are_400(
    admin: httpx.Client, job_id: str, path: str, body: dict[str, Any]
) -> None:
    assert_error(admin.post(_path(path, job_id), json=body), 400)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/api/user/settings", {"id": 5}),
        ("DELETE", "/api/admin/accounts", {"username": 5}),
        ("DELETE", "/api/admin/accounts", {}),
    ],
)
def test_wrong_types_in_delete_bodies_are_400(
    admin: httpx.Client, method: str, path: str, body: dict[str, Any]
) -> None:
    assert_error(admin.request(method, path, json=body), 400)


def test_unknown_fields_are_ignored_by_every_body() -> None:
    for route in ROUTES:
        if route.body is not None:
            assert route.body.model_config.get("extra") == "ignore", route.body.__name__


def test_unknown_fields_are_ignored_not_obeyed(hostile: LiveApp, admin: httpx.Client) -> None:
    login = httpx.post(
        f"{hostile.url}/api/auth/token",
        json={"username": "alice", "password": USER_PASSWORD, "role": "admin", "isAdmin": True},
    )
    assert login.status_code == 200, login.text
    assert login.json()["role"] == "user"
    drafted = admin.post("/api/tasks/schema", json={**DRAFT, "owner": "bob", "jobId": "../x"})
    assert drafted.status_code == 200, drafted.text
    saved = admin.post(
        "/api/user/settings",
        json={"baseUrl": "http://127.0.0.1:9/v1", "owner": "bob", "apiKeyMasked": "nope"},
    )
    assert saved.status_code == 200, saved.text
    assert all("owner" not in p for p in saved.json()["profiles"])


# --------------------------------------------------------------------------- ids and names


@pytest.mark.parametrize(("method", "template"), ID_ROUTES)
@pytest.mark.parametrize("job", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
def test_hostile_job_ids_are_404(
    hostile: LiveApp, admin: httpx.Client, method: str, template: str, job: str
) -> None:
    body = {"additionalRecords": 1} if template.endswith("extend") else None
    answer = admin.request(method, hostile.url + _path(template, job), json=body)
    assert_error(answer, 400, 404)
    assert "X-Injected" not in answer.headers


@pytest.mark.parametrize(
    "template", ["/api/tasks/{id}", "/api/tasks/{id}/records", "/api/tasks/{id}/cancel"]
)
def test_an_empty_job_id_is_404(admin: httpx.Client, template: str) -> None:
    method = "POST" if template.endswith("cancel") else "GET"
    assert_error(admin.request(method, _path(template, "")), 404)


@pytest.mark.parametrize("job", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
def test_hostile_job_ids_in_the_page_are_404(
    hostile: LiveApp, admin: httpx.Client, job: str
) -> None:
    answer = admin.get(f"{hostile.url}/jobs/{job}")
    assert answer.status_code == 404  # pages answer with an HTML error page
    assert_no_secret(answer)


@pytest.mark.parametrize("name", HOSTILE_USERNAMES.values(), ids=HOSTILE_USERNAMES.keys())
def test_hostile_usernames(hostile: LiveApp, admin: httpx.Client, name: str) -> None:
    for route in ("/api/auth/login", "/api/auth/token"):
        answer = httpx.post(f"{hostile.url}{route}", json={"username": name, "password": "x"})
        assert_error(answer, 400, 401)
    deleted = admin.request("DELETE", "/api/admin/accounts", json={"username": name})
    assert_error(deleted, 400, 404)
    listed = {a["username"] for a in admin.get("/api/admin/accounts").json()["accounts"]}
    assert {"admin", "alice", "bob"} <= listed


@pytest.mark.parametrize("name", ["admin", " Admin ", "ADMIN"])
def test_the_admin_cannot_delete_itself(admin: httpx.Client, name: str) -> None:
    assert_error(admin.request("DELETE", "/api/admin/accounts", json={"username": name}), 400)


# --------------------------------------------------------------------------- schemas


def _nested(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {"type": "object"}
    node = root
    for _ in range(levels):
        node["properties"] = {"a": {"type": "object"}}
        node = node["properties"]["a"]
    return root


def _string(pattern: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}


HOSTILE_SCHEMAS: dict[str, Any] = {
    "huge": {
        "type": "object",
        "properties": {
            f"p{i}": {"type": "string", "description": "x" * 100}
            for i in range(MAX_SCHEMA_BYTES // 100 + 10)
        },
    },
    "ref cycle": {
        "type": "object",
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
        "properties": {"x": {"$ref": "#/$defs/a"}},
    },
    "self reference": {"type": "object", "properties": {"x": {"$ref": "#/properties/x"}}},
    "root reference": {"type": "object", "properties": {"x": {"$ref": "#"}}},
    "anchor loop": {
        "type": "object",
        "$defs": {"f": {"$anchor": "foo", "$ref": "#foo"}},
        "properties": {"x": {"$ref": "#foo"}},
    },
    "dangling dynamicRef": {"type": "object", "$dynamicRef": "#meta"},
    "remote ref": {"type": "object", "properties": {"x": {"$ref": "http://169.254.169.254/"}}},
    "nested 200 levels": _nested(200),
    "nested 40 levels": _nested(40),
    "(a+)+$": _string("(a+)+$"),
    "(a|a)*$": _string("(a|a)*$"),
    "(a|aa)*b": _string("(a|aa)*b"),
    "(.*a){20}": _string("(.*a){20}"),
    "(\\w*\\s?)*": _string("(\\w*\\s?)*"),
    "bad regex": _string("\\"),
    "pattern key": {"type": "object", "patternProperties": {"(x+x+)+y": {"type": "string"}}},
    "root not an object": {"type": "array", "items": {"type": "string"}},
    "not a schema": {"type": "object", "properties": {"a": {"type": "strin"}}},
}


@pytest.mark.parametrize("route", ["/api/tasks/preview", "/api/tasks/confirm"])
@pytest.mark.parametrize("schema", HOSTILE_SCHEMAS.values(), ids=HOSTILE_SCHEMAS.keys())
@pytest.mark.timeout(10)
def test_hostile_schemas_are_400_quickly(
    admin: httpx.Client, draft_token: str, route: str, schema: Any
) -> None:
    answer = admin.post(route, json={"draftToken": draft_token, "schema": schema})
    assert_error(answer, 400)
    payload = answer.json()
    # in plain words, naming the field or the schema (issue 16)
    assert payload["error"].startswith(("field ", "definition ", "the schema")), payload["error"]
    assert payload["errors"], payload


def test_a_deep_schema_is_refused_as_too_deep(admin: httpx.Client, draft_token: str) -> None:
    answer = admin.post(
        "/api/tasks/preview", json={"draftToken": draft_token, "schema": _nested(200)}
    )
    assert "nested too deeply" in answer.json()["error"]


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "$defs": {"addr": {"type": "object", "properties": {"city": {"type": "string"}}}},
            "properties": {
                "home": {"$ref": "#/$defs/addr"},
                "work": {"$ref": "#/$defs/addr"},
                "past": {"type": "array", "items": {"$ref": "#/$defs/addr"}},
            },
        },
        _string("^(low|normal|high)$"),
        _string("^[A-Z]{2}\\d{6}$"),
        _string("^(Mr|Ms|Dr)\\. [A-Z][a-z]+$"),
    ],
    ids=["shared definitions", "alternatives", "fixed shape", "titles"],
)
def test_ordinary_schemas_still_pass(admin: httpx.Client, draft_token: str, schema: Any) -> None:
    answer = admin.post("/api/tasks/preview", json={"draftToken": draft_token, "schema": schema})
    assert answer.status_code == 200, answer.text


# --------------------------------------------------------------------------- query params


@pytest.mark.parametrize(
    "query",
    [
        "offset=-1",
        "limit=1000000000",
        "limit=0",
        "offset=1e3",
        "limit=abc",
        "offset=%00",
        "offset=99999999999999999999999",
    ],
)
def test_records_page_out_of_range_is_400(admin: httpx.Client, job_id: str, query: str) -> None:
    assert_error(admin.get(f"/api/tasks/{job_id}/records?{query}"), 400)


@pytest.mark.parametrize("query", ["format=exe", "format=", "format=%00", "format=" + "j" * 5000])
def test_export_unknown_format_is_400(admin: httpx.Client, job_id: str, query: str) -> None:
    assert_error(admin.get(f"/api/tasks/{job_id}/export?{query}"), 400)


@pytest.mark.parametrize("query", ["partial=maybe", "offset=-1", "limit=1000000000"])
def test_export_ignores_what_it_does_not_know(admin: httpx.Client, job_id: str, query: str) -> None:
    answer = admin.get(f"/api/tasks/{job_id}/export?{query}")
    assert answer.status_code == 200
    assert answer.json() == [{"n": 1}, None, {"n": 3}, {"n": 4}, None, {"n": 6}]


def test_delete_settings_with_a_huge_id_is_400(admin: httpx.Client) -> None:
    assert_error(admin.delete("/api/user/settings?id=" + "x" * 5000), 400)


# --------------------------------------------------------------------------- credentials


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + "x" * 10_000,
        "Bearer " + "x" * 30_000,
        "Bearer",
        "Basic YWRtaW46YWRtaW4=",
        "Bearer ..",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
    ],
    ids=["10kB", "30kB", "empty", "basic", "dots", "three parts", "alg none"],
)
def test_bad_authorization_headers_are_401(hostile: LiveApp, authorization: str) -> None:
    answer = httpx.get(f"{hostile.url}/api/auth/me", headers={"Authorization": authorization})
    assert_error(answer, 401)


def test_a_tampered_token_is_401(hostile: LiveApp, token: str) -> None:
    for bad in (token + "x", token[:-2], token.upper(), token[::-1]):
        answer = httpx.get(f"{hostile.url}/api/auth/me", headers={"Authorization": f"Bearer {bad}"})
        assert_error(answer, 401, secrets=(token,))


@pytest.mark.parametrize(
    "cookie",
    [
        b"datagen_session=garbage",
        b"datagen_session=",
        b"datagen_session=" + b"a" * 10_000,
        b'datagen_session="quoted"',
        b"datagen_session=%%%",
        b"datagen_session=\xc3\xa9\xff",
        b"datagen_session",
        b"x" * 10_000,
    ],
    ids=["garbage", "empty", "10kB", "quoted", "percent", "bytes", "no value", "no name"],
)
def test_bad_cookies_are_401(hostile: LiveApp, cookie: bytes) -> None:
    answer = httpx.get(f"{hostile.url}/api/auth/me", headers={"Cookie": cookie})
    assert_error(answer, 401)
