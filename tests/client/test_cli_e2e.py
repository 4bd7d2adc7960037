"""``datagems generate`` and ``datagems jobs`` as subprocesses against a real replica
(devnode + mock-llm + replica "a" on 127.0.0.1), non-interactive, with their exit codes."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
import select
import signal
import subprocess
import termios
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from datagems.bench.procs import clean_env, datagems_command, wait_until
from datagems.job import lifecycle
from tests.fleet import ADMIN_PASSWORD, Fleet

pytestmark = pytest.mark.fleet
DESCRIPTION = "A product of an online shop, with a name, a price and tags."
RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = Path(tmp_path_factory.mktemp("cli-fleet"))
    with Fleet(root, peers=["a"], replica_env={"DATAGEN_INFERENCE_MAX_ATTEMPTS": "1"}) as running:
        running.start_replicas()
        yield running


@pytest.fixture(scope="module")
def url(fleet: Fleet) -> str:
    return fleet.replicas["a"].url


@pytest.fixture(scope="module")
def token(url: str) -> str:
    answer = httpx.post(
        f"{url}/api/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["tokenType"] == "Bearer" and "set-cookie" not in answer.headers
    return answer.json()["token"]


@pytest.fixture
def mock(fleet: Fleet) -> Fleet:
    """The gateway back to a clean, fault-free, fast state before each test."""
    fleet.llm_config(schemaViolationRate=0.0, failRate=0.0, latencyMs=0, maxConcurrency=0, seed=1)
    return fleet


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def cli(*args: str, timeout: float = RUN_TIMEOUT, **env: str) -> Run:
    done = subprocess.run(
        datagems_command(*args),
        env=clean_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def generate(url: str, token: str, out: Path, *extra: str, count: int = 12) -> Run:
    return cli(
        "generate",
        DESCRIPTION,
        "--count",
        str(count),
        "--yes",
        "--out",
        str(out),
        "--url",
        url,
        "--token",
        token,
        *extra,
    )


def csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def job_id_of(run: Run) -> str:
    for line in run.stderr.splitlines():
        if line.startswith("job ") and line.endswith(" started"):
            return line.split()[1]
    raise AssertionError(f"no job id in: {run.stderr}")


def no_traceback(run: Run) -> None:
    assert "Traceback" not in run.stderr + run.stdout


@pytest.fixture(scope="module")
def finished(url: str, token: str, fleet: Fleet, tmp_path_factory: pytest.TempPathFactory):
    fleet.llm_config(schemaViolationRate=0.0, failRate=0.0, latencyMs=0, seed=1)
    out = Path(tmp_path_factory.mktemp("out")) / "data.csv"
    run = generate(url, token, out)
    return run, out


def test_generate_writes_a_csv_with_one_row_per_record_and_exits_0(finished, token: str) -> None:
    run, out = finished
    assert run.code == 0, run.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(csv_rows(out)) == 12 and len(lines) >= 13
    job_id = job_id_of(run)
    assert run.stdout.startswith(f"job {job_id} succeeded: 12/12 ok, 0 failed")
    assert str(out) in run.stdout
    assert "record schema" in run.stderr  # the drafted schema was shown
    assert "12/12 succeeded: ok 12 · failed 0" in run.stderr  # plain progress lines
    assert token not in run.stdout + run.stderr
    no_traceback(run)


def test_a_job_with_some_failed_records_exits_1_and_exports_the_ok_ones(
    mock: Fleet, url: str, token: str, tmp_path: Path
) -> None:
    mock.llm_config(schemaViolationRate=0.5, seed=1)  # 7 of the 12 calls violate the schema
    out = tmp_path / "some.json"
    run = generate(url, token, out)
    assert run.code == 1, run.stderr
    records = orjson.loads(out.read_bytes())
    ok = [r for r in records if r is not None]
    assert len(records) == 12 and 0 < len(ok) < 12
    assert f"{len(ok)}/12 ok, {12 - len(ok)} failed" in run.stdout
    no_traceback(run)


def test_a_job_where_every_record_fails_exits_2(
    mock: Fleet, url: str, token: str, tmp_path: Path
) -> None:
    mock.llm_config(schemaViolationRate=1.0)
    out = tmp_path / "none.jsonl"
    run = generate(url, token, out, count=5)
    assert run.code == 2, run.stderr
    assert "failed: 0/5 ok, 5 failed" in run.stdout
    assert out.read_text() == "null\n" * 5  # a row per record in every format, null if failed
    no_traceback(run)


def test_a_bad_token_exits_3_with_one_clear_line(url: str, tmp_path: Path) -> None:
    run = generate(url, "not-a-session-token", tmp_path / "x.csv")
    assert run.code == 3
    assert run.stderr.strip().splitlines() == [
        "datagems generate: not signed in: the server refused the credentials "
        "(authentication required); check --token / DATAGEMS_TOKEN, or sign in again"
    ]
    assert not (tmp_path / "x.csv").exists()
    no_traceback(run)


def test_the_token_can_come_from_the_environment(url: str, token: str) -> None:
    run = cli("jobs", "--url", url, DATAGEMS_TOKEN=token)
    assert run.code == 0, run.stderr


def test_an_unreachable_server_exits_4(tmp_path: Path) -> None:
    run = generate("http://127.0.0.1:9", "whatever", tmp_path / "x.csv")
    assert run.code == 4
    assert "unreachable" in run.stderr
    no_traceback(run)


def test_jobs_json_lists_the_finished_job(finished, url: str, token: str) -> None:
    run = cli("jobs", "--json", "--url", url, "--token", token)
    assert run.code == 0, run.stderr
    listed = {job["id"]: job for job in orjson.loads(run.stdout)}
    job = listed[job_id_of(finished[0])]
    assert (job["status"], job["totalOk"], job["totalFailed"], job["totalRecords"]) == (
        "succeeded",
        12,
        0,
        12,
    )
    assert job["title"] and job["createdAt"]


def test_jobs_prints_a_table_by_default(finished, url: str, token: str) -> None:
    run = cli("jobs", "--url", url, "--token", token)
    assert run.code == 0, run.stderr
    header, *rows = run.stdout.splitlines()
    assert header.split() == ["id", "title", "status", "ok/failed/total", "created", "(UTC)"]
    row = next(r for r in rows if r.startswith(job_id_of(finished[0])[:8] + " "))
    assert "succeeded" in row and "12/0/12" in row


def test_a_schema_file_replaces_the_drafted_one(
    mock: Fleet, url: str, token: str, tmp_path: Path
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    path = tmp_path / "schema.json"
    path.write_bytes(orjson.dumps(schema))
    out = tmp_path / "cities.csv"
    run = generate(url, token, out, "--schema", str(path), count=4)
    assert run.code == 0, run.stderr
    rows = csv_rows(out)
    assert len(rows) == 4 and set(rows[0]) == {"city", "population"}


def test_a_schema_the_server_refuses_exits_3_with_its_reason(
    url: str, token: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps({"type": "no-such-type"}))
    run = generate(url, token, tmp_path / "x.csv", "--schema", str(path), count=2)
    assert run.code == 3
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("datagems generate: ")
    no_traceback(run)


def test_ctrl_c_without_a_terminal_leaves_the_job_running_and_exits_130(
    mock: Fleet, url: str, token: str, tmp_path: Path
) -> None:
    mock.llm_config(latencyMs=150, maxConcurrency=2)
    proc = subprocess.Popen(
        datagems_command(
            *("generate", DESCRIPTION, "--count", "60", "--yes", "--url", url),
            *("--token", token, "--out", str(tmp_path / "slow.csv")),
        ),
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        started = wait_until(
            lambda: next((ln for ln in list(lines) if " running: ok " in ln), None),
            timeout=30,
            what="the progress of a running job",
        )
        assert started
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    reader.join(5)
    stderr = "".join(lines)
    assert code == 130, stderr
    job_id = next(ln.split()[1] for ln in lines if ln.startswith("job ") and "started" in ln)
    assert f"job {job_id} keeps running on the server" in stderr
    assert "Traceback" not in stderr
    view = httpx.get(
        f"{url}/api/tasks/{job_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert view["job"]["status"] != "cancelled" and view["cancel"] is None
    httpx.post(
        f"{url}/api/tasks/{job_id}/cancel", headers={"Authorization": f"Bearer {token}"}
    ).raise_for_status()  # do not leave it hogging the replica for the next tests


def test_ctrl_c_on_a_terminal_asks_and_cancels_the_job_when_told_so(
    mock: Fleet, url: str, token: str, tmp_path: Path
) -> None:
    mock.llm_config(latencyMs=150, maxConcurrency=2)
    main, child = os.openpty()
    proc = subprocess.Popen(
        datagems_command(
            *("generate", DESCRIPTION, "--count", "60", "--yes", "--url", url),
            *("--token", token, "--out", str(tmp_path / "slow.csv")),
        ),
        env=clean_env(COLUMNS="100"),
        stdin=child,
        stderr=child,
        stdout=subprocess.PIPE,
    )
    os.close(child)
    screen = bytearray()

    def shown(text: bytes) -> bool:
        while select.select([main], [], [], 0.05)[0]:
            try:
                screen.extend(os.read(main, 65536))
            except OSError:
                break
        return text in screen

    try:
        wait_until(lambda: shown(b"% ") and shown(b" running  ok "), what="a progress bar")
        assert re.search(rb"\r\[#*\.*\] +\d+% \d+/60 running  ok \d+", screen)
        proc.send_signal(signal.SIGINT)
        wait_until(lambda: shown(b"cancel the job on the server? [y/N] "), what="the question")
        os.write(main, b"y\n")
        code = proc.wait(timeout=20)
        shown(b"")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(main)
    text = screen.decode(errors="replace")
    assert code == 130, text
    job_id = re.search(r"job (\S+) started", text).group(1)
    assert f"job {job_id}: cancellation requested" in text
    assert "Traceback" not in text
    view = httpx.get(
        f"{url}/api/tasks/{job_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert view["cancel"] is not None and view["job"]["status"] == "cancelled"


def _controlling_tty() -> None:
    """In the child (after setsid): make its stdin, a pty, the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_without_a_token_a_terminal_prompt_signs_in_and_never_echoes_the_password(
    url: str,
) -> None:
    main, child = os.openpty()
    proc = subprocess.Popen(
        datagems_command("jobs", "--url", url, "--json"),
        env=clean_env(),
        stdin=child,
        stderr=child,
        stdout=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_controlling_tty,
    )
    os.close(child)
    screen = bytearray()

    def shown(text: bytes) -> bool:
        while select.select([main], [], [], 0.05)[0]:
            try:
                screen.extend(os.read(main, 65536))
            except OSError:
                break
        return text in screen

    try:
        wait_until(lambda: shown(b"username on "), what="the username prompt")
        os.write(main, b"admin\n")
        wait_until(lambda: shown(b"password: "), what="the password prompt")
        os.write(main, ADMIN_PASSWORD.encode() + b"\n")
        stdout, _ = proc.communicate(timeout=20)
        shown(b"")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(main)
    assert proc.returncode == 0, screen.decode(errors="replace")
    assert isinstance(orjson.loads(stdout), list)
    assert ADMIN_PASSWORD.encode() not in screen + stdout
    assert b"admin" in screen  # the username is echoed as typed; the password is not


def test_jobs_pages_through_every_job_and_filters_them(
    finished, url: str, token: str, fleet: Fleet
) -> None:
    import uuid

    from tests.actors.jobkit import fleet_services

    services = fleet_services(fleet)
    made = set()
    for n in range(5):
        job_id = str(uuid.uuid4())
        draft = {"title": f"Paged {n}", "totalRecords": 1, "schema": {"type": "object"}}
        lifecycle.create_job(services, owner="admin", job_id=job_id, draft=draft)
        made.add(job_id)
    first = cli(
        "jobs", "--json", "--limit", "2", "--search", "paged", "--url", url, "--token", token
    )
    assert first.code == 0, first.stderr
    assert len(orjson.loads(first.stdout)) == 2
    hint = next(line for line in first.stderr.splitlines() if line.startswith("more: "))
    assert "--search paged" in hint and "--limit 2" in hint and "--cursor " in hint
    cursor = hint.split("--cursor ")[1].split()[0]
    second = cli(
        "jobs", "--json", "--limit", "2", "--search", "paged", "--cursor", cursor,
        "--url", url, "--token", token,
    )  # fmt: skip
    assert second.code == 0, second.stderr
    seen = [job["id"] for job in orjson.loads(first.stdout) + orjson.loads(second.stdout)]
    assert len(set(seen)) == 4 and set(seen) <= made
    every = cli(
        "jobs", "--json", "--limit", "2", "--search", "PAGED", "--every", "--url", url,
        "--token", token,
    )  # fmt: skip
    assert every.code == 0, every.stderr
    assert {job["id"] for job in orjson.loads(every.stdout)} == made
    assert "more:" not in every.stderr
    bad = cli("jobs", "--limit", "0", "--url", url, "--token", token)
    assert bad.code == 3 and "limit" in bad.stderr
    no_traceback(bad)
