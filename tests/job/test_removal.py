"""Deleting a job through its command owner (``datagems.job.removal``), over the embedded
store with no engine: the tests play the peers. The invariant, over every order of
deletes, retries and additions and every split of them into the owner's turns: a job is
either whole (its log tells what was applied) or gone with every key and file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datagems.errors import Conflict, StoreRejected
from datagems.job import commands, lifecycle, removal
from datagems.models import JobCommand, now_iso
from datagems.services import Services
from datagems.settings import Settings
from datagems.store import keys
from tests.actors.jobkit import PERSON_SCHEMA


def open_services(root: Path) -> Services:
    values = {
        "R1EN_CHAINSTORE_PEERS": orjson.dumps(["a", "b"]).decode(),
        "R1EN_HOST_ADDR": "a",
        "DATAGEN_DATA_DIR": str(root),
        "DATAGEN_MAX_RUNNING_JOBS_PER_USER": "100",
        "DATAGEN_TASK_MAX_PER_WINDOW": "100",
    }
    return Services.open(Settings.from_env(values), "http://127.0.0.1:9")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    opened = open_services(tmp_path)
    yield opened
    opened.close()


def finished_job(services: Services, job_id: str, failed: int = 1) -> str:
    lifecycle.create_job(
        services,
        owner="alice",
        job_id=job_id,
        draft={"title": "People", "totalRecords": 4, "schema": PERSON_SCHEMA},
    )
    for peer, state in services.peers.all(job_id).items():
        bad = min(failed, state.assigned)
        failed -= bad
        state.generated_ok, state.generated_failed = state.assigned - bad, bad
        line = orjson.dumps({"i": state.range.start, "ok": True, "data": {"peer": peer}})
        state.result_cid = services.r1fs.add_file(line + b"\n", f"{job_id}_{peer}.jsonl")
        state.finished_at = now_iso()
        services.peers.put(job_id, state)
    lifecycle.finalize(services, job_id)
    return job_id


def traces(services: Services, job_id: str) -> dict[str, object]:
    cstore = services.cstore
    found = {
        "base": cstore.hget_raw(keys.JOBS, job_id),
        "peers": cstore.hgetall_raw(keys.job_peers(job_id)),
        "summary": cstore.hget_raw(keys.user_jobs("alice"), job_id),
        "open": cstore.hget_raw(keys.OPEN_JOBS, job_id),
        "closed": cstore.hget_raw(keys.CLOSED_JOBS, job_id),
        "log": cstore.hget_raw(keys.JOB_COMMANDS, job_id),
        "inbox": [c for c in services.inbox.all().values() if c.job_id == job_id],
    }
    return {name: value for name, value in found.items() if value}


def readable(services: Services, cid: str) -> bool:
    try:
        services.r1fs.get_file(cid)
    except StoreRejected:
        return False
    return True


def test_a_delete_removes_every_key_and_file_and_a_second_one_finds_nothing(
    services: Services,
) -> None:
    job_id = finished_job(services, "job-1")
    view = lifecycle.load_job(services, job_id)
    cids = removal.file_cids(view.job, view.peers)
    assert len(cids) == 3 and all(readable(services, cid) for cid in cids)
    assert removal.remove(services, job_id) == 3
    assert traces(services, job_id) == {}
    assert not any(readable(services, cid) for cid in cids)
    assert removal.remove(services, job_id) == 0  # idempotent


def test_a_running_job_is_refused_with_what_to_do(services: Services) -> None:
    lifecycle.create_job(
        services,
        owner="alice",
        job_id="job-run",
        draft={"title": "People", "totalRecords": 4, "schema": PERSON_SCHEMA},
    )
    refused = removal.refusal(services, lifecycle.load_job(services, "job-run"))
    assert isinstance(refused, Conflict) and "cancel it first" in refused.message
    command = commands.new_command("delete", "job-run", "alice", via="b")
    with pytest.raises(Conflict):
        commands.run(services, command)
    assert services.jobs.get("job-run") is not None


def test_a_retry_decided_before_a_delete_makes_it_refused(services: Services) -> None:
    job_id = finished_job(services, "job-2")
    retry = commands.new_command("retry", job_id, "alice", via="b")
    delete = commands.new_command("delete", job_id, "alice", via="b")
    delete = delete.model_copy(update={"requested_at": _later(retry.requested_at)})
    commands.submit(services, delete)
    commands.submit(services, retry)
    commands.apply_if_owner(services, services.jobs.get(job_id))
    decided = services.commands.get(job_id).decisions
    assert decided[retry.id].applied
    assert decided[delete.id].status == 409
    assert services.jobs.get(job_id).status == "running"


def _later(stamp: str, ms: int = 1) -> str:
    from datagems.models import parse_iso

    moved = parse_iso(stamp) + timedelta(milliseconds=ms)
    return moved.isoformat(timespec="milliseconds").replace("+00:00", "Z")


KINDS = st.sampled_from(["delete", "delete", "retry", "extend"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kinds=st.lists(KINDS, min_size=1, max_size=6), turns=st.lists(st.integers(1, 3), max_size=6))
def test_any_interleaving_leaves_the_job_whole_or_gone_without_a_trace(
    tmp_path_factory: pytest.TempPathFactory, kinds: list[str], turns: list[int]
) -> None:
    services = open_services(tmp_path_factory.mktemp("removal"))
    try:
        job_id = finished_job(services, "job-p")
        cids = removal.file_cids(services.jobs.get(job_id), services.peers.all(job_id))
        first = now_iso()
        submitted: list[JobCommand] = []
        for n, kind in enumerate(kinds):
            command = commands.new_command(kind, job_id, "alice", via="b", additional=2)
            command = command.model_copy(update={"requested_at": _later(first, n)})
            submitted.append(command)
        # the commands reach the inbox in bunches; the owner takes a turn after each
        waiting = list(submitted)
        for size in [*turns, len(waiting)]:
            bunch, waiting = waiting[:size], waiting[size:]
            for command in bunch:
                commands.submit(services, command)
            job = services.jobs.get(job_id)
            if job is not None:
                commands.apply_if_owner(services, job)
            else:
                commands.apply_owned(services)  # a gone job's commands leave the inbox
        if services.jobs.get(job_id) is None:  # gone: every key and file with it
            left = traces(services, job_id)
            left.pop("inbox", None)  # dropped once their wait is over (``_drop_stale``)
            assert left == {}
            assert not any(readable(services, cid) for cid in cids)
            # a delete went through before any retry or addition that would reopen it
            assert "delete" in kinds
        else:  # whole: every delete refused, as the job was running again by then
            decisions = services.commands.get(job_id).decisions
            for command in submitted:
                if command.kind == "delete" and command.id in decisions:
                    assert decisions[command.id].status == 409
            assert services.peers.all(job_id)
            assert all(readable(services, cid) for cid in cids)
    finally:
        services.close()
