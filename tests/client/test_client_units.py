"""The client's pure parts: progress lines, rates and ETAs, exit codes, SSE parsing, the
token answer, error lines, the schema view and the jobs table; and the follower's
fallback from events to polling (over an in-memory transport)."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import orjson
import pytest

from datagems.client.api import (
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ApiClient,
    ClientError,
    Event,
    error_from_response,
    exit_code_for_status,
    parse_sse,
    token_from_answer,
)
from datagems.client.follow import ProgressDisplay, follow_job
from datagems.client.generate import default_title, export_format
from datagems.client.jobs import job_row, render_table
from datagems.client.progress import (
    RateMeter,
    Snapshot,
    bar,
    format_duration,
    outcome_exit_code,
    progress_line,
)
from datagems.client.schema_view import render_schema


def payload(status: str, ok: int, failed: int, total: int = 12, in_flight: int = 0) -> dict:
    return {
        "job": {"id": "j1", "status": status, "totalRecords": total},
        "peers": [
            {"peerId": "a", "generatedOk": ok, "generatedFailed": 0, "inFlight": []},
            {
                "peerId": "b",
                "generatedOk": 0,
                "generatedFailed": failed,
                "inFlight": [{"i": n} for n in range(in_flight)],
            },
        ],
    }


# ----------------------------------------------------------------- snapshots and lines


def test_a_snapshot_sums_the_peers_counts_and_in_flight_records() -> None:
    snap = Snapshot.of(payload("running", 5, 2, in_flight=3))
    assert (snap.ok, snap.failed, snap.in_flight, snap.done, snap.total) == (5, 2, 3, 7, 12)
    assert not snap.finished


def test_a_snapshot_of_a_listed_job_uses_its_totals() -> None:
    snap = Snapshot.of({"status": "succeeded", "totalRecords": 4, "totalOk": 3, "totalFailed": 1})
    assert (snap.ok, snap.failed, snap.finished) == (3, 1, True)


def test_a_finished_job_has_nothing_in_flight() -> None:
    assert Snapshot.of(payload("cancelled", 1, 0, in_flight=4)).in_flight == 0


def test_the_plain_line_names_every_count_the_rate_and_the_eta() -> None:
    snap = Snapshot("running", 12, 5, 2, 3)
    line = progress_line(snap, 2.5, 2.0, tty=False)
    assert line == "7/12 running: ok 5 · failed 2 · in flight 3 · 2.5 rec/s · ETA 2s"


def test_unknown_rate_and_eta_show_as_question_marks() -> None:
    line = progress_line(Snapshot("queued", 12, 0, 0, 0), None, None, tty=False)
    assert line.endswith("? rec/s · ETA ?")


def test_the_terminal_line_has_a_bar_and_a_percentage_and_fits_the_width() -> None:
    line = progress_line(Snapshot("running", 10, 5, 0, 2), 12.3, 0.4, tty=True, columns=100)
    assert line.startswith("[") and " 50% 5/10 running  ok 5  failed 0" in line
    assert "in flight 2  12 rec/s  ETA 0s" in line and len(line) < 100
    done = progress_line(Snapshot("succeeded", 999, 999, 0, 0), 9.9, 0, tty=True, columns=80)
    assert done.startswith("[#####") and len(done) < 80  # a bar even on 80 columns
    narrow = progress_line(Snapshot("running", 10, 5, 0, 2), 1.0, 5, tty=True, columns=40)
    assert len(narrow) < 40 and "[" not in narrow


def test_a_bar_fills_in_proportion_and_never_overflows() -> None:
    assert bar(5, 10, 10) == "[#####.....]"
    assert bar(15, 10, 4) == "[####]"
    assert bar(0, 0, 3) == "[###]"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (0.4, "0s"), (59.4, "59s"), (125, "2m05s"), (3720, "1h02m"), (-1, "?")],
)
def test_durations_read_as_seconds_minutes_and_hours(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_rate_is_measured_over_the_window_and_gives_an_eta() -> None:
    meter = RateMeter(window_seconds=10)
    meter.add(0, now=100.0)
    assert meter.rate() is None
    meter.add(4, now=102.0)
    assert meter.rate() == pytest.approx(2.0)
    assert meter.eta(8) == pytest.approx(4.0)
    for t in range(103, 130):  # a long stall drops the old samples: the rate falls to 0
        meter.add(4, now=float(t))
    assert meter.rate() == 0.0 and meter.eta(8) is None
    assert meter.eta(0) == 0.0


def test_counts_that_go_back_restart_the_meter() -> None:
    meter = RateMeter()
    meter.add(10, now=1.0)
    meter.add(3, now=2.0)
    assert list(meter.samples) == [(2.0, 3)]


# ----------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("snap", "code"),
    [
        (Snapshot("succeeded", 12, 12, 0, 0), EXIT_OK),
        (Snapshot("succeeded", 12, 11, 1, 0), EXIT_SOME_FAILED),
        (Snapshot("succeeded", 12, 11, 0, 0), EXIT_SOME_FAILED),  # one missing
        (Snapshot("failed", 12, 0, 12, 0), EXIT_JOB_FAILED),
        (Snapshot("cancelled", 12, 12, 0, 0), EXIT_JOB_FAILED),
        (Snapshot("running", 12, 3, 0, 0), EXIT_JOB_FAILED),
    ],
)
def test_a_finished_job_maps_to_its_exit_code(snap: Snapshot, code: int) -> None:
    assert outcome_exit_code(snap) == code


@pytest.mark.parametrize(
    ("status", "code"),
    [
        *((status, EXIT_USAGE) for status in (400, 401, 404, 429)),
        *((status, EXIT_UNREACHABLE) for status in (500, 502, 503)),
    ],
)
def test_http_errors_are_usage_errors_or_server_failures(status: int, code: int) -> None:
    assert exit_code_for_status(status) == code


def test_an_error_answer_becomes_the_servers_error_text() -> None:
    error = error_from_response(httpx.Response(400, json={"error": "title must not be empty"}))
    assert (str(error), error.exit_code, error.status) == ("title must not be empty", 3, 400)
    refused = error_from_response(httpx.Response(401, json={"error": "authentication required"}))
    assert "not signed in" in str(refused) and "authentication required" in str(refused)
    limited = error_from_response(
        httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "7"})
    )
    assert str(limited) == "rate limited: slow down (retry after 7 s)"
    broken = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert str(broken) == "the server failed (502): HTTP 502 Bad Gateway"


# ----------------------------------------------------------------- wire details


def test_server_sent_events_are_parsed_with_comments_and_multiline_data() -> None:
    lines = ["retry: 3000", "", ": keep-alive", "", "event: job", 'data: {"a":', "data: 1}", ""]
    lines += ["event: end", 'data: {"status":"succeeded"}']
    assert list(parse_sse(iter(lines))) == [
        Event("job", '{"a":\n1}'),
        Event("end", '{"status":"succeeded"}'),
    ]


def test_the_token_is_read_from_the_token_answer() -> None:
    answer = {"token": "abc.def.ghi", "tokenType": "Bearer", "username": "a", "role": "user"}
    assert token_from_answer(answer) == "abc.def.ghi"
    assert token_from_answer({"token": "x", "tokenType": "cookie"}) is None
    assert token_from_answer({"tokenType": "Bearer"}) is None
    assert token_from_answer(["abc"]) is None


def test_the_export_format_follows_the_file_suffix() -> None:
    assert [export_format(Path(p)) for p in ("a.csv", "b.JSON", "c.jsonl")] == [
        "csv",
        "json",
        "jsonl",
    ]
    with pytest.raises(ClientError) as caught:
        export_format(Path("d.xlsx"))
    assert caught.value.exit_code == EXIT_USAGE


def test_a_long_description_makes_a_short_title() -> None:
    assert default_title("  a   b ") == "a b"
    assert len(default_title("x" * 500)) == 80


# ----------------------------------------------------------------- views


def test_the_schema_view_lists_fields_types_and_required_marks() -> None:
    schema = {
        "title": "Product",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Its name " * 20, "maxLength": 80},
            "price": {"type": "number", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}},
            "maker": {"type": "object", "properties": {"country": {"enum": ["DE", "FR"]}}},
        },
        "required": ["name", "price"],
    }
    text = render_schema(schema)
    lines = text.splitlines()
    assert lines[0] == "record schema: Product (* = required)"
    assert lines[1].startswith("  * name") and "[len<=80]" in lines[1] and lines[1].endswith("…")
    assert "price  number  [>=0]" in lines[2]
    assert "tags   array of string" in lines[3] and not lines[3].startswith("  *")
    assert lines[5].strip() == "country  one of 'DE', 'FR'"


def test_a_huge_schema_is_cut_to_a_screenful() -> None:
    schema = {"properties": {f"field{n}": {"type": "string"} for n in range(100)}}
    lines = render_schema(schema, max_lines=10).splitlines()
    assert len(lines) == 11 and lines[-1] == "  … 91 more fields"


def test_the_jobs_table_aligns_its_columns() -> None:
    rows = [
        job_row(
            {
                "id": "j-1",
                "title": "Products",
                "status": "succeeded",
                "totalOk": 11,
                "totalFailed": 1,
                "totalRecords": 12,
                "createdAt": "2026-11-22T02:34:00.314Z",
            }
        ),
        job_row({"id": "j-22", "title": "T" * 60, "status": "running", "totalRecords": 3}),
    ]
    lines = render_table(rows).splitlines()
    assert lines[0].startswith("id    title") and lines[0].index("title") == len("j-22") + 2
    assert lines[1].split() == ["j-1", "Products", "succeeded", "11/1/12", "2026-11-22", "02:34"]
    assert "T" * 10 + "…" in lines[2] and lines[2].rstrip().endswith("-")
    assert lines[1].index("succeeded") == lines[2].index("running")
    assert max(len(line) for line in lines) < 80  # the title is cut to the room left


def test_the_jobs_table_fits_80_columns_with_real_ids_and_long_titles() -> None:
    rows = [
        job_row(
            {
                "id": "3f2c9a10-5b7e-4c1d-9a8b-0123456789ab",
                "title": "Incident reports for a hospital pharmacy, with free text " * 3,
                "status": "cancelled",
                "totalOk": 99_999,
                "totalFailed": 12_345,
                "totalRecords": 100_000,
                "createdAt": "2026-11-22T02:34:00.314Z",
            }
        )
    ]
    lines = render_table(rows).splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[1].startswith("3f2c9a10  Incident reports")
    wide = render_table(rows, columns=200).splitlines()
    assert "…" in wide[1] and len(wide[1]) > 80  # a wider terminal shows more of the title


def test_plain_progress_lines_are_printed_on_change_and_the_last_one_always() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=False)
    display.update(Snapshot("running", 4, 1, 0, 1), now=0.0)
    display.update(Snapshot("running", 4, 2, 0, 1), now=0.5)  # too soon: not shown
    display.update(Snapshot("succeeded", 4, 4, 0, 0), now=1.0)  # a new status: shown
    display.finish()
    shown = stream.getvalue().splitlines()
    assert [line.split(":")[0] for line in shown] == ["1/4 running", "4/4 succeeded"]


def test_terminal_progress_redraws_one_line_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=True)
    display.update(Snapshot("running", 4, 1, 0, 1), now=0.0)
    display.note("a note")
    display.update(Snapshot("succeeded", 4, 4, 0, 0), now=1.0)
    display.finish()
    text = stream.getvalue()
    assert text.startswith("\r[") and "\x1b[K\na note\n\r[" in text and text.endswith("\n")


# ----------------------------------------------------------------- following a job


def test_following_falls_back_to_polling_when_the_events_route_fails() -> None:
    views = iter([payload("running", 2, 0), payload("running", 6, 1), payload("succeeded", 11, 1)])
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        assert request.headers["Authorization"] == "Bearer tok"
        if request.url.path.endswith("/events"):
            return httpx.Response(500, json={"error": "internal error"})
        return httpx.Response(200, json=next(views))

    seen: list[int] = []
    notes: list[str] = []
    client = ApiClient("127.0.0.1:1", "tok", transport=httpx.MockTransport(handler))
    final = follow_job(
        client,
        "j1",
        lambda view: seen.append(Snapshot.of(view).done),
        note=notes.append,
        poll_seconds=0,
    )
    assert Snapshot.of(final).status == "succeeded" and seen == [2, 7, 12]
    assert calls.count("/api/tasks/j1/events") == 1 and calls.count("/api/tasks/j1") == 3
    assert notes and "polling" in notes[0]


def test_following_reads_the_event_stream_then_the_final_view() -> None:
    events = b"retry: 3000\n\n"
    for view in (payload("running", 3, 0), payload("succeeded", 12, 0)):
        events += b"event: job\ndata: " + orjson.dumps(view) + b"\n\n"
    events += b'event: end\ndata: {"status":"succeeded"}\n\n'

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(
                200, content=events, headers={"Content-Type": "text/event-stream"}
            )
        return httpx.Response(200, json=payload("succeeded", 12, 0))

    seen: list[str] = []
    client = ApiClient("http://127.0.0.1:1", "tok", transport=httpx.MockTransport(handler))
    final = follow_job(client, "j1", lambda view: seen.append(Snapshot.of(view).status))
    assert seen == ["running", "succeeded", "succeeded"]
    assert Snapshot.of(final).ok == 12


def test_a_refused_token_while_following_is_an_auth_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "authentication required"})

    client = ApiClient("http://127.0.0.1:1", "tok", transport=httpx.MockTransport(handler))
    with pytest.raises(ClientError) as caught:
        follow_job(client, "j1", lambda view: None, poll_seconds=0)
    assert caught.value.exit_code == EXIT_USAGE and caught.value.status == 401


def test_a_server_that_stays_unreachable_ends_the_follow_with_exit_4() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = ApiClient("http://127.0.0.1:1", "tok", transport=httpx.MockTransport(handler))
    with pytest.raises(ClientError) as caught:
        follow_job(client, "j1", lambda view: None, poll_seconds=0.01, unreachable_after=0.05)
    assert caught.value.exit_code == EXIT_UNREACHABLE and "unreachable" in str(caught.value)


def test_login_asks_for_an_api_token_and_uses_it_as_bearer_from_then_on() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        if request.url.path == "/api/auth/token":
            body = orjson.loads(request.content)
            if body["password"] != "right":
                return httpx.Response(401, json={"error": "invalid username or password"})
            return httpx.Response(
                200,
                json={
                    "token": "tok123",
                    "tokenType": "Bearer",
                    "expiresAt": "2026-11-29T00:00:00.000Z",
                    "username": "ana",
                    "role": "user",
                },
            )
        if request.url.path != "/api/auth/me":
            return httpx.Response(404, json={"error": "not found"})
        return httpx.Response(200, json={"username": "ana", "role": "user"})

    client = ApiClient("http://127.0.0.1:1", transport=httpx.MockTransport(handler))
    with pytest.raises(ClientError) as caught:
        client.login("ana", "wrong")
    assert str(caught.value) == "sign-in failed: invalid username or password"
    assert caught.value.exit_code == EXIT_USAGE and "wrong" not in str(caught.value)
    assert client.login("ana", "right") == "tok123"
    client.me()
    assert seen == [None, None, "Bearer tok123"]
