"""Job commands and per-user caps over the embedded store, with no engine: the tests play
the peers (``datagems.job.commands``, ``datagems.job.caps``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from datagems.errors import Conflict, RateLimited, ServiceUnavailable
from datagems.job import caps, commands, index, lifecycle
from datagems.models import JobBase, PeerState, ReplicaBeat, now_iso
from datagems.services import Services
from datagems.settings import Settings
from tests.actors.jobkit import PERSON_SCHEMA

LEASE = timedelta(seconds=60)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings.from_env(
        {
            "R1EN_CHAINSTORE_PEERS": orjson.dumps(["a", "b"]).decode(),
            "R1EN_HOST_ADDR": "a",
            "DATAGEN_DATA_DIR": str(tmp_path),
            "DATAGEN_MAX_RUNNING_JOBS_PER_USER": "2",
            "DATAGEN_TASK_MAX_PER_WINDOW": "3",
        }
    )
    services = Services.open(settings, "http://127.0.0.1:9")
    yield services
    services.close()


def confirm(services: Services, total: int = 4, owner: str = "alice") -> str:
    job = lifecycle.create_job(
        services,
        owner=owner,
        job_id=f"job-{len(services.jobs.all())}",
        draft={"title": "People", "totalRecords": total, "schema": PERSON_SCHEMA},
    )
    return job.id


def finish(services: Services, job_id: str, failed: int = 0) -> None:
    """Every peer uploads its range: its last ``failed`` records failed."""
    for peer, state in services.peers.all(job_id).items():
        bad = min(failed, state.assigned)
        failed -= bad
        state.generated_ok, state.generated_failed = state.assigned - bad, bad
        state.result_cid, state.finished_at = f"cid-{peer}", now_iso()
        services.peers.put(job_id, state)


def ask(services: Services, kind: str, job_id: str, additional: int = 0):
    command = commands.new_command(kind, job_id, "alice", via="b", additional=additional)
    return commands.run(services, command)


def beat(peer: str, seconds_ago: float) -> ReplicaBeat:
    seen = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return ReplicaBeat(peer_id=peer, last_seen_at=seen.isoformat().replace("+00:00", "Z"))


# --------------------------------------------------------------------------- the owner


def test_the_command_owner_is_the_first_peer_alive_and_the_same_for_every_replica() -> None:
    job = JobBase(id="j", owner="alice", peers=["a", "b", "c"])
    now = datetime.now(UTC)
    alive = {"a": beat("a", 1), "b": beat("b", 1), "c": beat("c", 1)}
    assert {commands.owner_of(job, alive, me, now, LEASE) for me in "abc"} == {"a"}
    a_silent = {**alive, "a": beat("a", 120)}
    assert {commands.owner_of(job, a_silent, me, now, LEASE) for me in "abc"} == {"b"}
    # nobody has beaten (a replica without an engine): a peer of the job decides itself
    assert commands.owner_of(job, {}, "b", now, LEASE) == "b"
    assert commands.owner_of(job, {}, "x", now, LEASE) is None


def test_concurrent_additions_get_consecutive_ranges_in_request_order(
    services: Services,
) -> None:
    job_id = confirm(services, 4)
    finish(services, job_id)
    asked = [
        commands.new_command("extend", job_id, "alice", via=via, additional=n)
        for via, n in (("b", 3), ("a", 2), ("b", 1))
    ]
    for n, command in enumerate(asked):
        command.requested_at = f"2030-01-01T00:00:00.00{n}Z"  # (ties go by id)
    for command in reversed(asked):  # all waiting when the owner takes its turn
        commands.submit(services, command)
    assert commands.apply_owned(services) == 3
    decided = [commands.decision_of(services, c) for c in asked]
    assert [d.total_records for d in decided] == [7, 9, 10]
    log = services.commands.get(job_id)
    assert [(r.start, r.end) for r in log.extensions] == [(4, 7), (7, 9), (9, 10)]
    assert services.inbox.all() == {}
    view = lifecycle.load_job(services, job_id)
    assert view.job.total_records == 10 and view.job.status == "running"


def test_a_command_seen_again_is_not_applied_again(services: Services) -> None:
    job_id = confirm(services, 4)
    finish(services, job_id)
    command = commands.new_command("extend", job_id, "alice", via="b", additional=2)
    commands.submit(services, command)
    commands.apply_owned(services)
    commands.submit(services, command)  # the owner died before removing it, say
    assert commands.apply_owned(services) == 0
    assert len(services.commands.get(job_id).extensions) == 1
    assert services.inbox.all() == {}


def test_a_retry_behind_an_addition_is_refused_and_both_answers_say_so(
    services: Services,
) -> None:
    job_id = confirm(services, 4)
    finish(services, job_id, failed=2)
    extend = commands.new_command("extend", job_id, "alice", via="a", additional=2)
    retry = commands.new_command("retry", job_id, "alice", via="b")
    extend.requested_at, retry.requested_at = "2030-01-01T00:00:00.000Z", "2030-01-01T00:00:00.001Z"
    commands.submit(services, extend)
    commands.submit(services, retry)
    commands.apply_owned(services)
    assert commands.decision_of(services, extend).applied
    refused = commands.decision_of(services, retry)
    assert (refused.applied, refused.status) == (False, 409)
    with pytest.raises(Conflict, match="the job is running"):
        commands.raise_for(refused)
    assert services.commands.get(job_id).retry_round == 0


def test_a_retry_of_a_finished_job_applies_once_and_the_second_is_refused(
    services: Services,
) -> None:
    job_id = confirm(services, 4)
    finish(services, job_id, failed=2)
    assert ask(services, "retry", job_id).records == 2
    with pytest.raises(Conflict, match="the job is running"):
        ask(services, "retry", job_id)
    assert services.commands.get(job_id).retry_round == 1


def test_a_command_older_than_the_wait_is_refused_not_applied(services: Services) -> None:
    job_id = confirm(services, 4)
    finish(services, job_id)
    late = commands.new_command("extend", job_id, "alice", via="b", additional=1)
    late.requested_at = "2020-01-01T00:00:00.000Z"
    commands.submit(services, late)
    commands.apply_owned(services)
    decision = commands.decision_of(services, late)
    assert (decision.applied, decision.status) == (False, 503)
    with pytest.raises(ServiceUnavailable):
        commands.raise_for(decision)
    assert services.commands.get(job_id).extensions == []


def test_a_cancelled_job_takes_no_addition(services: Services) -> None:
    job_id = confirm(services, 4)
    lifecycle.request_cancel(services, job_id, "alice")
    with pytest.raises(Conflict, match="a cancelled job cannot be extended"):
        ask(services, "extend", job_id, 2)


def test_a_cancel_stops_the_round_it_was_asked_in_not_a_later_one(services: Services) -> None:
    job_id = confirm(services, 4)
    lifecycle.request_cancel(services, job_id, "alice")  # cancelled while running...
    finish(services, job_id, failed=1)  # ...but every peer had finished
    job = services.jobs.get(job_id)
    job.status = "succeeded"
    services.jobs.put(job)  # and the base said so first
    assert ask(services, "retry", job_id).retry_round == 1
    assert lifecycle.load_job(services, job_id).job.status == "running"


# --------------------------------------------------------------------------- the caps


def pending_base(services: Services, job_id: str, owner: str = "alice") -> None:
    """A base written by a confirm still counting (its open-jobs entry and its base, no
    peer states yet)."""
    job = JobBase(id=job_id, owner=owner, peers=["a", "b"], total_records=2, created_at=now_iso())
    index.open_job(services, job)
    services.jobs.put(job)


def test_the_caps_count_the_jobs_and_tell_a_refusal_from_a_contention(
    services: Services,
) -> None:
    first = confirm(services)
    caps.check_running(services, "alice", new_records=4)  # one running, room for one
    pending_base(services, "counting")
    with pytest.raises(caps.Contended):  # over only because of a confirm still counting
        caps.check_running(services, "alice", new_records=4)
    confirm(services)
    with pytest.raises(RateLimited, match="you have 2 jobs running") as refused:
        caps.check_running(services, "alice", new_records=4)
    assert not isinstance(refused.value, caps.Contended)
    finish(services, first)
    caps.check_running(services, "bob", new_records=4)  # another user is not counted


def test_the_creation_window_counts_each_job_once_whoever_confirmed_it(
    services: Services,
) -> None:
    made = [confirm(services), confirm(services)]
    for job_id in made:
        finish(services, job_id)
    caps.check_window(services, "alice")
    job = lifecycle.create_job(  # the same draft again: the same job, not a new one
        services,
        owner="alice",
        job_id=made[0],
        draft={"title": "People", "totalRecords": 4, "schema": PERSON_SCHEMA},
    )
    assert job.id == made[0]
    caps.check_window(services, "alice")
    confirm(services)
    with pytest.raises(RateLimited, match="at most 3 per 3600 s per user"):
        caps.check_window(services, "alice")


def test_the_creation_window_reads_the_recent_jobs_not_history(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = [confirm(services), confirm(services)]
    for job_id in made:
        finish(services, job_id)
        lifecycle.finalize(services, job_id)  # final base written: out of the open-jobs index
    assert set(index.closed_entries(services)) == set(made)

    def no_history(*_args: object) -> None:
        raise AssertionError("a confirm read every job ever made")

    monkeypatch.setattr(services.jobs, "all", no_history)
    monkeypatch.setattr(services.jobs, "scan_raw", no_history)
    lifecycle.create_job(  # the third of three: the two closed jobs still count
        services,
        owner="alice",
        job_id="third",
        draft={"title": "People", "totalRecords": 4, "schema": PERSON_SCHEMA},
        admit=lambda job: caps.check_window(services, "alice", job_id=job.id),
    )
    with pytest.raises(RateLimited, match="at most 3 per 3600 s per user"):
        caps.check_window(services, "alice")


def test_a_refused_admission_leaves_no_job_behind(services: Services) -> None:
    confirm(services)
    confirm(services)

    def admit(job: JobBase) -> None:
        caps.check_running(services, "alice", new_records=job.total_records, job_id=job.id)

    with pytest.raises(RateLimited):
        lifecycle.create_job(
            services,
            owner="alice",
            job_id="third",
            draft={"title": "People", "totalRecords": 2, "schema": PERSON_SCHEMA},
            admit=admit,
        )
    assert services.jobs.get("third") is None
    assert services.peers.all("third") == {}


def test_a_confirm_that_died_before_its_peer_states_finishes_on_the_next_confirm(
    services: Services,
) -> None:
    pending_base(services, "halfway")
    states = {"a": PeerState(peer_id="a", generated_ok=1)}  # one peer already at work
    services.peers.put("halfway", states["a"])
    lifecycle.create_job(services, owner="alice", job_id="halfway", draft={})
    after = services.peers.all("halfway")
    assert set(after) == {"a", "b"} and after["a"].generated_ok == 1
