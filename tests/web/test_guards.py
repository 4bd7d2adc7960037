"""Guards that need their own app settings: SSRF without the loopback allowance, Secure
cookies, failed drafts retried; and escaping of what the server renders itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from datagems.mock.server import MOCK_KEY
from tests.web.harness import USER_PASSWORD, LiveApp, draft


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    app = LiveApp(
        Path(tmp_path_factory.mktemp("strict")), allow_private_urls=False, cookie_secure=True
    ).start()
    yield app
    app.stop()


def test_the_cookie_is_secure_when_configured(strict: LiveApp) -> None:
    answer = httpx.post(
        f"{strict.url}/api/auth/login", json={"username": "alice", "password": USER_PASSWORD}
    )
    assert "Secure" in answer.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v1",
        "http://localhost/v1",
        "http://169.254.169.254/latest",
        "http://[::ffff:10.0.0.1]/v1",
        "http://2130706433/v1",
        "http://0x7f.1/v1",
        "http://10.1.2.3./v1",
        "http://user:pw@example.com/v1",
        "ftp://example.com/v1",
    ],
)
def test_user_urls_to_private_places_are_refused(strict: LiveApp, url: str) -> None:
    login = httpx.post(
        f"{strict.url}/api/auth/login", json={"username": "alice", "password": USER_PASSWORD}
    )
    token = login.headers["Set-Cookie"].split("datagen_session=", 1)[1].split(";", 1)[0]
    client = httpx.Client(
        base_url=strict.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    saved = client.post("/api/user/settings", json={"baseUrl": url, "apiKey": "k" * 16})
    assert saved.status_code == 400, saved.text
    listed = client.post("/api/user/models", json={"baseUrl": url, "apiKey": "k" * 16})
    assert listed.status_code == 400
    drafted = client.post(
        "/api/tasks/schema",
        json={
            "title": "t",
            "totalRecords": 1,
            "description": "d",
            "instructions": "i",
            "useExternalApi": True,
            "profileId": "x",
            "inferenceBaseUrl": url,
        },
    )
    assert drafted.status_code == 400
    assert "k" * 16 not in saved.text + listed.text + drafted.text


def test_a_draft_that_keeps_failing_is_tried_three_times_then_502(live: LiveApp) -> None:
    assert live.mock_runner is not None
    mock = live.mock_runner.app[MOCK_KEY]
    client = live.login("alice")
    before = mock.requests
    mock.apply({"invalidRate": 1.0})
    try:
        answer = client.post(
            "/api/tasks/schema",
            json={"title": "t", "totalRecords": 1, "description": "d", "instructions": "i"},
        )
    finally:
        mock.apply({"invalidRate": 0.0})
    assert answer.status_code == 502
    assert "did not draft a valid schema" in answer.json()["error"]
    assert mock.requests - before == 3
    assert draft(client)["failedAttempts"] == 0


def test_what_the_server_renders_is_escaped(live: LiveApp) -> None:
    hostile = '/"></script><script>alert(1)</script>'
    page = httpx.get(f"{live.url}/login", params={"next": hostile})
    assert "<script>alert(1)" not in page.text
    assert "Content-Security-Policy" in page.headers
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    client = live.login("alice")
    missing = client.get("/jobs/<img src=x onerror=alert(1)>")
    assert missing.status_code == 404
    assert "<img" not in missing.text
    assert "job not found" in missing.text


def test_a_page_without_a_session_redirects_to_login_with_its_path(live: LiveApp) -> None:
    answer = httpx.get(f"{live.url}/stats", follow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/login?next=/stats"
    evil = httpx.get(f"{live.url}/login", params={"next": "//evil.example"}, follow_redirects=False)
    assert "evil.example" not in evil.text
