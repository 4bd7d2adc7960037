"""The terminal client's pure parts added for issue 16: the stored sign-in (where, with which
permissions), the unreachable state of the progress display, following through a server
outage, the closing summary and when a retry round has ended."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import httpx
import pytest

from datagems.client import credentials
from datagems.client.api import ApiClient
from datagems.client.follow import ProgressDisplay, follow_job
from datagems.client.progress import Snapshot, closing_lines, failure_reasons
from datagems.client.retry import round_ended


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def test_a_stored_token_is_readable_by_its_user_only(xdg: Path) -> None:
    path = credentials.remember("http://127.0.0.1:3000", "tok-1", "ana", "2026-12-08T00:00:00Z")
    assert path == xdg / "datagems" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credentials.stored("http://127.0.0.1:3000")["token"] == "tok-1"
    assert credentials.stored("http://127.0.0.1:4000") is None


def test_each_server_keeps_its_own_token_and_logout_forgets_one(xdg: Path) -> None:
    credentials.remember("http://a:1", "tok-a", "ana", None)
    credentials.remember("http://b:1", "tok-b", "bo", None)
    credentials.remember("http://a:1", "tok-a2", "ana", None)
    assert credentials.stored("http://a:1")["token"] == "tok-a2"
    assert credentials.forget("http://a:1") is True and credentials.forget("http://a:1") is False
    assert credentials.stored("http://a:1") is None
    assert credentials.stored("http://b:1")["token"] == "tok-b"
    path = credentials.credentials_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temp left


def test_a_relative_xdg_config_home_is_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert credentials.config_dir() == tmp_path / ".config" / "datagems"


def test_an_unreadable_credentials_file_reads_as_not_signed_in(xdg: Path) -> None:
    path = credentials.credentials_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert credentials.stored("http://a:1") is None


def test_the_unreachable_state_is_shown_at_once_and_the_return_is_told() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=False)
    display.update(Snapshot("running", 10, 2, 0, 1), now=0.0)
    display.unreachable(1.0, now=1.0)
    display.unreachable(3.0, now=3.0)  # not repeated within 10 s
    display.unreachable(12.0, now=12.0)  # repeated after
    display.unreachable(None, now=14.0)
    lines = stream.getvalue().splitlines()
    assert lines[1:] == [
        "server unreachable, retrying (1s)",
        "server unreachable, retrying (12s)",
        "server reachable again after 14s; resuming",  # away since the last answer, at 0
    ]


def test_on_a_terminal_the_unreachable_state_replaces_the_progress_line() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=True)
    display.update(Snapshot("running", 10, 2, 0, 1), now=0.0)
    display.unreachable(2.0, now=2.0)
    assert stream.getvalue().endswith("\rserver unreachable, retrying (2s)\x1b[K")


def _payload(status: str, ok: int, failed: int = 0, **extra: object) -> dict:
    peers = [
        {"peerId": "a", "generatedOk": ok, "generatedFailed": failed, **extra},
    ]
    return {"job": {"status": status, "totalRecords": 10}, "peers": peers}


def test_following_waits_through_an_outage_and_says_so() -> None:
    answers = iter(["down", "down", _payload("running", 5), _payload("succeeded", 10)])
    away: list[float | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            raise httpx.ConnectError("refused")
        answer = next(answers)
        if answer == "down":
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=answer)

    client = ApiClient("http://127.0.0.1:1", "tok", transport=httpx.MockTransport(handler))
    final = follow_job(client, "j1", lambda view: None, on_unreachable=away.append, poll_seconds=0)
    assert Snapshot.of(final).status == "succeeded"
    assert len(away) == 3 and all(isinstance(s, float) for s in away[:2]) and away[2] is None


def test_the_closing_lines_give_the_failure_reasons_most_first_and_the_page() -> None:
    view = {
        "job": {"status": "succeeded", "totalRecords": 10},
        "peers": [
            {"failureReasons": {"timeout": 1, "schema_violation": 2}},
            {"failureReasons": {"schema_violation": 1}},
        ],
    }
    assert failure_reasons(view) == {"schema_violation": 3, "timeout": 1}
    assert closing_lines(view, "http://x/jobs/j1") == [
        "failures: schema_violation 3, timeout 1",
        "view: http://x/jobs/j1",
    ]
    assert closing_lines(_payload("succeeded", 10), "http://x/jobs/j1") == [
        "view: http://x/jobs/j1"
    ]


def test_a_retry_round_ends_only_once_every_peer_caught_up_with_it() -> None:
    ended = round_ended(1)
    before = _payload("succeeded", 8, 2, retryRound=0) | {"control": {"retryRound": 0}}
    asked = _payload("succeeded", 8, 2, retryRound=0) | {"control": {"retryRound": 1}}
    running = _payload("running", 8, 0, retryRound=0) | {"control": {"retryRound": 1}}
    done = _payload("succeeded", 10, 0, retryRound=1) | {"control": {"retryRound": 1}}
    original_peer = _payload("succeeded", 8, 2) | {"control": {"retryRound": 1}}
    assert [ended(v) for v in (before, asked, running, done, original_peer)] == [
        False,
        False,
        False,
        True,
        True,
    ]
