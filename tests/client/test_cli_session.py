"""Sign in once with ``datagems login``, then ``generate``, ``status``, ``export``, ``retry``
and ``cancel`` with no prompt (stdin is closed); the progress shows a replica going away
and the run resumes when it is back (a real replica process, stopped and started)."""

from __future__ import annotations

import csv
import io
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from datagems.bench.procs import clean_env, datagems_command, wait_until
from datagems.client.credentials import credentials_path
from tests.fleet import ADMIN_PASSWORD, Fleet

pytestmark = pytest.mark.fleet
DESCRIPTION = "A product of an online shop, with a name, a price and tags."
RUN_TIMEOUT = 90


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = Path(tmp_path_factory.mktemp("cli-session"))
    env = {"DATAGEN_INFERENCE_MAX_ATTEMPTS": "1", "DATAGEN_MAX_RECORDS_PER_JOB": "500"}
    with Fleet(root, peers=["a"], replica_env=env) as running:
        running.start_replicas()
        yield running


@pytest.fixture(scope="module")
def url(fleet: Fleet) -> str:
    return fleet.replicas["a"].url


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("xdg"))


@pytest.fixture
def mock(fleet: Fleet) -> Fleet:
    fleet.llm_config(schemaViolationRate=0.0, failRate=0.0, latencyMs=0, maxConcurrency=0, seed=1)
    return fleet


def env_of(home: Path, **more: str) -> dict[str, str]:
    return clean_env(XDG_CONFIG_HOME=str(home), DATAGEMS_TOKEN="", **more)


def cli(home: Path, *args: str, stdin: str | None = None, **env: str):
    return subprocess.run(
        datagems_command(*args),
        env=env_of(home, **env),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


@pytest.fixture(scope="module")
def logged_in(url: str, home: Path) -> str:
    run = cli(
        home, "login", "--url", url, "--username", "admin", "--password-stdin",
        stdin=ADMIN_PASSWORD + "\n",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"signed in to {url} as admin" in run.stdout
    token = orjson.loads(credentials_path_in(home).read_bytes())["servers"][url]["token"]
    assert token not in run.stdout + run.stderr and ADMIN_PASSWORD not in run.stdout
    return token


def credentials_path_in(home: Path) -> Path:
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(home)
    try:
        return credentials_path()
    finally:
        if old is None:
            del os.environ["XDG_CONFIG_HOME"]
        else:
            os.environ["XDG_CONFIG_HOME"] = old


def job_id_of(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("job ") and line.endswith(" started"):
            return line.split()[1]
    raise AssertionError(f"no job id in: {stderr}")


def test_login_stores_the_token_for_this_user_only(logged_in: str, home: Path) -> None:
    path = credentials_path_in(home)
    assert path.parent == home / "datagems"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_wrong_password_is_refused_and_nothing_is_stored(url: str, tmp_path: Path) -> None:
    run = cli(
        tmp_path, "login", "--url", url, "--username", "admin", "--password-stdin",
        stdin="not-the-password\n",
    )  # fmt: skip
    assert run.returncode == 3 and "sign-in failed" in run.stderr
    assert not (tmp_path / "datagems" / "credentials.json").exists()


def test_after_login_generate_status_export_retry_and_cancel_need_no_prompt(
    logged_in: str, mock: Fleet, url: str, home: Path, tmp_path: Path
) -> None:
    mock.llm_config(schemaViolationRate=0.5, seed=3)  # some records fail, to retry them
    out = tmp_path / "products.csv"
    made = cli(
        home, "generate", DESCRIPTION, "--count", "10", "--yes", "--out", str(out), "--url", url,
    )  # fmt: skip
    assert made.returncode == 1, made.stderr  # some failed
    job_id = job_id_of(made.stderr)
    assert "failures: schema_violation" in made.stdout
    assert f"view: {url}/jobs/{job_id}" in made.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~current_umask()  # not 0600

    shown = cli(home, "status", job_id[:8], "--url", url)
    assert shown.returncode == 0, shown.stderr
    assert f"job        {job_id}" in shown.stdout and "status     succeeded" in shown.stdout
    assert "failures   schema_violation" in shown.stdout
    assert max(len(line) for line in shown.stdout.splitlines()[:4]) <= 80

    again = tmp_path / "again.jsonl"
    exported = cli(home, "export", job_id, "--out", str(again), "--url", url)
    assert exported.returncode == 0, exported.stderr
    exported = [line for line in again.read_text().splitlines() if line]
    exported_ok = [line for line in exported if line != "null"]  # a failed record: null
    assert len(exported) == 10 and 0 < len(exported_ok) < 10

    mock.llm_config(schemaViolationRate=0.0)
    retried = cli(home, "retry", job_id, "--wait", "--url", url)
    assert retried.returncode == 0, retried.stderr
    assert "retry round 1 requested" in retried.stderr
    assert f"job {job_id} succeeded: 10/10 ok, 0 failed" in retried.stdout

    mock.llm_config(latencyMs=300, maxConcurrency=1)
    slow = subprocess.Popen(
        datagems_command(
            "generate", DESCRIPTION, "--count", "200", "--yes", "--url", url,
            "--out", str(tmp_path / "slow.csv"),
        ),
        env=env_of(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(slow.stderr), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(" started" in ln for ln in list(lines)), what="a started job")
        slow_id = job_id_of("".join(lines))
        cancelled = cli(home, "cancel", slow_id, "--url", url)
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"job {slow_id}: cancellation requested" in cancelled.stdout
        assert slow.wait(timeout=60) == 2  # the generate run ends: the job was cancelled
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait(5)
    reader.join(5)
    assert "Traceback" not in "".join(lines) + made.stderr + retried.stderr


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_count_over_the_servers_limit_is_refused_before_drafting(
    logged_in: str, mock: Fleet, url: str, home: Path
) -> None:
    before = mock.llm_stats()
    run = cli(home, "generate", DESCRIPTION, "--count", "501", "--yes", "--url", url)
    assert run.returncode == 3
    assert "--count must be at most 500" in run.stderr and "drafting" not in run.stderr
    assert mock.llm_stats().get("requests") == before.get("requests")  # nothing drafted


def test_jobs_fit_80_columns(logged_in: str, url: str, home: Path) -> None:
    run = cli(home, "jobs", "--url", url, COLUMNS="80")
    assert run.returncode == 0, run.stderr
    assert max(len(line) for line in run.stdout.splitlines()) <= 80


def test_a_replica_stopped_mid_run_shows_unreachable_and_the_run_resumes(
    logged_in: str, mock: Fleet, fleet: Fleet, url: str, home: Path, tmp_path: Path
) -> None:
    mock.llm_config(latencyMs=100, maxConcurrency=2)
    out = tmp_path / "resumed.csv"
    proc = subprocess.Popen(
        datagems_command(
            "generate", DESCRIPTION, "--count", "40", "--yes", "--url", url, "--out", str(out)
        ),
        env=env_of(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(" running: ok " in ln for ln in list(lines)), what="a running job")
        fleet.replicas["a"].stop()
        wait_until(
            lambda: any("server unreachable, retrying" in ln for ln in list(lines)),
            timeout=30,
            what="the unreachable state",
        )
        assert proc.poll() is None  # still waiting, not given up
        fleet.replicas["a"].start()
        proc.wait(timeout=120)
        stdout = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if not fleet.replicas["a"].process.alive:
            fleet.replicas["a"].start()  # for the tests after this one
    reader.join(5)
    stderr = "".join(lines)
    assert proc.returncode == 0, stderr
    assert "server reachable again after" in stderr
    assert "succeeded: 40/40 ok, 0 failed" in stdout
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 40
    job_id = job_id_of(stderr)
    token = orjson.loads(credentials_path_in(home).read_bytes())["servers"][url]["token"]
    view = httpx.get(f"{url}/api/tasks/{job_id}", headers={"Authorization": f"Bearer {token}"})
    assert view.json()["job"]["status"] == "succeeded"
