"""Resampling near-duplicates through the command owner over the embedded store
(``datagems.job.commands`` + ``datagems.quality.resample``), the tests playing the peers:
whatever the interleaving of requests and owner turns, a record is listed by at most one
resample round, every round within its budget, and a resample round retries no failed
record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datagems.errors import Conflict
from datagems.job import commands
from datagems.job import lifecycle as jobs
from datagems.job.results import ResultFile
from datagems.models import Range, now_iso
from datagems.quality import resample
from datagems.services import Services
from datagems.settings import Settings
from tests.actors.jobkit import PERSON_SCHEMA

TOTAL = 30


def open_services(root: Path) -> Services:
    settings = Settings.from_env(
        {
            "R1EN_CHAINSTORE_PEERS": orjson.dumps(["a", "b"]).decode(),
            "R1EN_HOST_ADDR": "a",
            "DATAGEN_DATA_DIR": str(root),
            "DATAGEN_RESAMPLE_MAX_RECORDS": "4",
            "DATAGEN_MAX_RUNNING_JOBS_PER_USER": "50",
        }
    )
    return Services.open(settings, "http://127.0.0.1:9")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = open_services(tmp_path)
    yield services
    services.close()


def finished_job(services: Services, failed: int = 0) -> str:
    job_id = f"job-{len(services.jobs.all())}"
    jobs.create_job(
        services,
        owner="alice",
        job_id=job_id,
        draft={"title": "People", "totalRecords": TOTAL, "schema": PERSON_SCHEMA},
    )
    catch_up(services, job_id, failed)
    return job_id


def catch_up(services: Services, job_id: str, failed: int = 0) -> None:
    """Every peer uploads its range, caught up with the job's commands."""
    log = services.commands.get(job_id)
    for peer, state in services.peers.all(job_id).items():
        bad = min(failed, state.assigned)
        failed -= bad
        state.generated_ok, state.generated_failed = state.assigned - bad, bad
        state.result_cid, state.finished_at = f"cid-{peer}-{log.retry_round}", now_iso()
        state.retry_round = log.retry_round
        services.peers.put(job_id, state)
    jobs.finalize(services, job_id)


def request(services: Services, job_id: str, indices: list[int], budget: int = 0):
    command = commands.new_command(
        "resample", job_id, "alice", via="b", indices=indices, max_records=budget
    )
    commands.submit(services, command)
    return command


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    asks=st.lists(
        st.tuples(
            st.lists(st.integers(0, TOTAL + 3), max_size=12),
            st.integers(0, 6),
            st.booleans(),  # the owner takes its turn after this request
        ),
        min_size=1,
        max_size=6,
    )
)
def test_no_interleaving_resamples_a_record_twice_or_past_its_budget(
    tmp_path_factory: pytest.TempPathFactory, asks: list[tuple[list[int], int, bool]]
) -> None:
    services = open_services(tmp_path_factory.mktemp("resample"))
    try:
        job_id = finished_job(services)
        sent = []
        for indices, budget, turn in asks:
            sent.append(request(services, job_id, indices, budget))
            if turn:
                commands.apply_owned(services)
                catch_up(services, job_id)
        commands.apply_owned(services)
        log = services.commands.get(job_id)
        listed = [i for r in log.resamples for i in r.indices]
        assert len(listed) == len(set(listed))  # never a record twice
        assert all(0 <= i < TOTAL for i in listed)
        for command in sent:
            decision = log.decisions[command.id]
            if decision.applied:
                assert decision.indices and set(decision.indices) <= set(command.indices)
                budget = min(4, command.max_records or 4)
                assert len(decision.indices) <= budget
            else:
                assert decision.status in (409, 503)
        assert {r.round for r in log.resamples} <= set(range(1, log.retry_round + 1))
    finally:
        services.close()


def test_a_resample_round_retries_no_failed_record_and_a_retry_round_does(
    services: Services, tmp_path: Path
) -> None:
    job_id = finished_job(services, failed=2)
    request(services, job_id, [5, 7])
    commands.apply_owned(services)
    log = services.commands.get(job_id)
    assert log.retry_round == 1 and resample.retry_round_of(log) == 0
    results = ResultFile(tmp_path / "slice.jsonl")
    results.append({"i": 0, "ok": False, "error": "x", "reason": "schema_violation"})
    results.append({"i": 5, "ok": True, "data": {}})
    results.append({"i": 7, "ok": True, "data": {}})
    results.append({"i": 7, "ok": True, "data": {}, "round": 1, "resampled": 1})
    done = results.resume([Range(start=0, end=15)])
    assert done.to_retry(resample.retry_round_of(log)) == []
    assert resample.due(log, [Range(start=0, end=15)], done.resampled) == {5: 1}
    assert resample.due(log, [Range(start=15, end=30)], done.resampled) == {}
    log.retry_round += 1  # a later retry round retries the failed one
    assert done.to_retry(resample.retry_round_of(log)) == [0]


def test_a_running_job_and_an_exhausted_one_are_refused(services: Services) -> None:
    job_id = finished_job(services)

    def run(indices: list[int]):
        command = commands.new_command("resample", job_id, "alice", via="a", indices=indices)
        return commands.run(services, command)

    assert run([2, 1]).indices == [1, 2]
    with pytest.raises(Conflict, match="once it has finished"):  # its peers catch up first
        run([3])
    catch_up(services, job_id)
    with pytest.raises(Conflict, match="each record is resampled once"):
        run([2])
    assert run([2, 3]).indices == [3]
    assert [r.indices for r in services.commands.get(job_id).resamples] == [[1, 2], [3]]
