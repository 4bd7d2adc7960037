"""Job accounting holds under any interleaving (a Hypothesis stateful test).

Three replicas run in this process, each with its own ``Services`` over one embedded store
(the SQLite CStore and R1FS folder they share), its own engine and its own local files,
against the mock gateway. Hypothesis drives random sequences of confirms (some of jobs
whose inference profile does not exist), retry-failed and add-records commands (alone, or
several at once through different replicas), cancels, the gateway's failure rate,
restarts, and a replica stopped past its lease (its ranges are taken over) and back.

After every step: ``ok + failed <= assigned`` for every range; every command answered 202
is in the job's command log exactly once and every refused one is not; the retry round
and the added ranges are exactly the applied commands, contiguous from the first total.
After a settle step (and at the end): every job finished, with ``ok + failed ==
assigned`` for every range and every index once in the export (unless cancelled); a job
whose work could not start is ``failed`` with the reason.

The budget is fixed (``EXAMPLES`` sequences of up to ``STEPS`` steps, derandomized);
``DATAGEMS_SOAK=1`` runs more, with fresh randomness.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from datagems.actors.engine import Engine
from datagems.bench.procs import wait_until
from datagems.job import commands, export, lifecycle
from datagems.job.state import coverage, settled
from datagems.mock.server import MOCK_KEY, MockLLM, start_mock
from datagems.models import CommandDecision, JobCommand, parse_iso
from datagems.services import Services
from datagems.settings import Settings
from tests.actors.jobkit import PERSON_SCHEMA

SOAK = os.environ.get("DATAGEMS_SOAK") == "1"
EXAMPLES = 60 if SOAK else 8
STEPS = 14 if SOAK else 10
PEERS = ["a", "b", "c"]
MAX_JOBS = 3
SETTLE_SECONDS = 20.0


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, MockLLM]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner, url = asyncio.run_coroutine_threadsafe(start_mock(jitter_ms=5), loop).result(10)
    yield url, runner.app[MOCK_KEY]
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


@dataclass
class Expected:
    """What the test asked of a job and what it was answered."""

    initial: int
    broken: bool  # its inference profile does not exist: its work cannot start
    answers: dict[str, int] = field(default_factory=dict)  # command id -> HTTP status
    cancelled: bool = False


def replica_settings(root: Path, peer: str) -> Settings:
    return Settings.from_env(
        {
            "R1EN_CHAINSTORE_PEERS": orjson.dumps(PEERS).decode(),
            "R1EN_HOST_ADDR": peer,
            "DATAGEN_DATA_DIR": str(root / "store"),
            "DATAGEN_JOB_POLL_SECONDS": "0.05",
            "DATAGEN_PROGRESS_FLUSH_SECONDS": "0.05",
            "DATAGEN_PEER_LEASE_SECONDS": "1",
            "DATAGEN_COMMAND_POLL_SECONDS": "0.05",
            "DATAGEN_COMMAND_WAIT_SECONDS": "3",
            "DATAGEN_INFERENCE_MAX_ATTEMPTS": "1",
            "DATAGEN_SHUTDOWN_GRACE_SECONDS": "0.5",
            "DATAGEN_MAX_CONCURRENT_JOBS_PER_INSTANCE": "8",
        }
    ).replace(local_cache_dir=root / f"cache-{peer}")


def ask(services: Services, command: JobCommand) -> CommandDecision | None:
    """What a handler does: submit, decide when this replica owns the job, wait."""
    commands.submit(services, command)
    job = services.jobs.get(command.job_id)
    assert job is not None
    commands.apply_if_owner(services, job)
    until = commands.give_up_at(services, command)
    decision = commands.decision_of(services, command)
    while decision is None and time.monotonic() < until:
        time.sleep(commands.WAIT_POLL_SECONDS)
        decision = commands.decision_of(services, command)
    return decision


class Accounting(RuleBasedStateMachine):
    gateway_url = ""
    mock: MockLLM | None = None

    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="accounting-"))
        self.services = {
            p: Services.open(replica_settings(self.root, p), self.gateway_url) for p in PEERS
        }
        # a reader that is none of the peers (it never owns a job)
        self.reader = Services.open(
            replica_settings(self.root, PEERS[0]).replace(host_addr="reader"), self.gateway_url
        )
        self.engines: dict[str, Engine | None] = {p: None for p in PEERS}
        self.expected: dict[str, Expected] = {}
        self.steps: list[str] = []  # what was done, for a failure's message
        assert self.mock is not None
        self.mock.apply({"schemaViolationRate": 0.0, "failRate": 0.0})

    @initialize(
        target=jobs,
        rate=st.sampled_from([0.5, 1.0, 0.0]),
        total=st.integers(2, 8),
        broken=st.sampled_from([False, False, False, True]),
    )
    def start_with_a_job(self, rate: float, total: int, broken: bool) -> str:
        self.steps.append(f"gateway fails {rate}")
        assert self.mock is not None
        self.mock.apply({"schemaViolationRate": rate})
        for peer in PEERS:
            self.engines[peer] = Engine(self.services[peer]).start()
        return self.confirm(total, broken, 0)

    def teardown(self) -> None:
        try:
            self._settle()  # whatever the last step was, every job must finish
        finally:
            for engine in self.engines.values():
                if engine is not None:
                    engine.stop(grace=0)
            for services in [*self.services.values(), self.reader]:
                services.close()
            shutil.rmtree(self.root, ignore_errors=True)

    def running(self) -> list[str]:
        return [p for p, engine in self.engines.items() if engine is not None]

    # ----------------------------------------------------------------------- rules

    @precondition(lambda self: len(self.expected) < MAX_JOBS)
    @rule(
        target=jobs,
        total=st.integers(1, 8),
        broken=st.sampled_from([False, False, False, True]),
        via=st.integers(0, 2),
    )
    def confirm(self, total: int, broken: bool, via: int) -> str:
        running = self.running()
        services = self.services[running[via % len(running)]]
        job_id = str(uuid.uuid4())
        draft = {"title": "People", "totalRecords": total, "schema": PERSON_SCHEMA}
        if broken:  # its profile was deleted between the draft and the confirm
            draft["inference"] = {"useExternalApi": True, "profileId": "deleted"}
        lifecycle.create_job(services, owner="alice", job_id=job_id, draft=draft)
        self.steps.append(f"confirm {job_id} {total} records{' (broken)' * broken}")
        self.expected[job_id] = Expected(initial=total, broken=broken)
        return job_id

    def _command(self, job_id: str, kind: str, via: str, additional: int) -> None:
        command = commands.new_command(kind, job_id, "alice", via=via, additional=additional)
        decision = ask(self.services[via], command)
        status = decision.status if decision else 503
        self.steps.append(f"{kind} {additional if kind == 'extend' else ''} via {via}: {status}")
        self.expected[job_id].answers[command.id] = status
        assert status in (202, 400, 409, 503), decision

    @rule(
        job_id=jobs,
        kind=st.sampled_from(["retry", "extend"]),
        via=st.integers(0, 2),
        additional=st.integers(1, 4),
        finished_first=st.booleans(),
    )
    def command(
        self, job_id: str, kind: str, via: int, additional: int, finished_first: bool
    ) -> None:
        if finished_first:  # (a retry is refused before the job has finished)
            self.finish(job_id)
        running = self.running()
        self._command(job_id, kind, running[via % len(running)], additional)

    @rule(
        job_id=jobs,
        asks=st.lists(
            st.tuples(st.sampled_from(["retry", "extend"]), st.integers(0, 2), st.integers(1, 4)),
            min_size=2,
            max_size=3,
        ),
    )
    def concurrent_commands(self, job_id: str, asks: list[tuple[str, int, int]]) -> None:
        self.finish(job_id)
        running = self.running()
        start = threading.Barrier(len(asks))
        failures: list[BaseException] = []

        def one(kind: str, via: int, additional: int) -> None:
            start.wait()
            try:
                self._command(job_id, kind, running[via % len(running)], additional)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=one, args=a) for a in asks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not failures, failures

    @rule(job_id=jobs, via=st.integers(0, 2))
    def cancel(self, job_id: str, via: int) -> None:
        running = self.running()
        services = self.services[running[via % len(running)]]
        view = lifecycle.load_job(services, job_id)
        assert view is not None
        lifecycle.request_cancel(services, job_id, "alice")
        self.steps.append(f"cancel {job_id} ({view.job.status})")
        if view.job.status not in ("succeeded", "failed", "cancelled"):
            self.expected[job_id].cancelled = True

    @rule(rate=st.sampled_from([0.0, 0.5, 1.0]))
    def gateway_fails(self, rate: float) -> None:
        assert self.mock is not None
        self.mock.apply({"schemaViolationRate": rate})
        self.steps.append(f"gateway fails {rate}")

    @rule(peer=st.sampled_from(PEERS), grace=st.sampled_from([0.0, 0.3]))
    def restart(self, peer: str, grace: float) -> None:
        engine = self.engines[peer]
        if engine is not None:
            engine.stop(grace=grace)
        self.engines[peer] = Engine(self.services[peer]).start()
        self.steps.append(f"restart {peer} (grace {grace})")

    @precondition(lambda self: len(self.running()) == len(PEERS))
    @rule(peer=st.sampled_from(PEERS[1:]))
    def stop_past_the_lease(self, peer: str) -> None:
        """A replica goes away (not the first: its commands would wait a lease); a live
        peer takes its ranges over once the lease has passed."""
        engine = self.engines[peer]
        assert engine is not None
        engine.stop(grace=0)
        self.engines[peer] = None
        self.steps.append(f"stop {peer} past its lease")
        lease = timedelta(seconds=self.services[peer].settings.peer_lease_seconds)

        def past_the_lease() -> bool:
            beat = self.reader.replicas.all().get(peer)
            seen = parse_iso(beat.last_seen_at) if beat else None
            return seen is None or datetime.now(UTC) - seen > lease

        wait_until(past_the_lease, timeout=10, interval=0.05, what=f"{peer} past its lease")

    @rule(job_id=jobs)
    def finish(self, job_id: str) -> None:
        """Let one job finish (a retry is refused before that)."""
        self.steps.append(f"finish {job_id}")
        self._wait_quiet([job_id])

    @rule()
    def settle(self) -> None:
        self._settle()

    # ----------------------------------------------------------------------- checks

    def _quiet(self, job_id: str) -> bool:
        """Cancelled (a peer that is down uploads what it did when it is back), or
        finished with every range uploaded as far as the job's commands go."""
        view = lifecycle.load_job(self.reader, job_id)
        assert view is not None
        if view.job.status == "cancelled":
            return True
        if view.job.status not in ("succeeded", "failed"):
            return False
        return settled(view.job, view.peers, view.commands)

    def _wait_quiet(self, job_ids: list[str]) -> None:
        try:
            wait_until(
                lambda: all(self._quiet(job_id) for job_id in job_ids),
                timeout=SETTLE_SECONDS,
                interval=0.05,
                what="the jobs to finish",
            )
        except AssertionError:
            stuck = [self._story(j) for j in job_ids if not self._quiet(j)]
            raise AssertionError("\n".join(["stuck:", *stuck, "after:", *self.steps])) from None

    def _settle(self) -> None:
        self.steps.append("settle")
        for peer in PEERS:
            if self.engines[peer] is None:
                self.engines[peer] = Engine(self.services[peer]).start()

        self._wait_quiet(list(self.expected))
        for job_id, expected in self.expected.items():
            view = lifecycle.load_job(self.reader, job_id)
            assert view is not None
            covered = coverage(view.job, view.peers, view.commands)
            if view.job.status == "cancelled":
                assert expected.cancelled, f"job {job_id} cancelled without a cancel"
                continue
            for c in covered.values():
                assert c.ok + c.failed == c.assigned, (job_id, c)
            indices = [e["i"] for e in export.merged_entries(self.reader, job_id)]
            assert indices == list(range(view.job.total_records)), self._story(job_id)
            if expected.broken:
                assert view.job.status == "failed" and view.job.total_ok == 0
                assert view.job.error == "inference profile not found"

    def _story(self, job_id: str) -> str:
        """What the store says of a job, for a failure's message."""
        view = lifecycle.load_job(self.reader, job_id)
        assert view is not None
        lines = [f"job {job_id}: {view.job.status}, {view.job.total_records} records"]
        log = view.commands
        if log is not None:
            lines.append(f"  commands: round {log.retry_round}, extensions {log.extensions}")
        for peer, state in view.peers.items():
            accounts = [(peer, state), *state.takeovers.items()]
            for owner, account in accounts:
                got = []
                if account.result_cid:
                    body = self.reader.r1fs.get_file(account.result_cid)
                    got = [orjson.loads(line)["i"] for line in body.splitlines() if line]
                lines.append(
                    f"  {peer} for {owner}: ranges {account.ranges} ok {account.generated_ok}"
                    f" failed {account.generated_failed} v{account.extensions_done}"
                    f"/{account.retry_round} slice {got}"
                )
        return "\n".join(lines)

    @invariant()
    def counts_never_pass_assigned(self) -> None:
        for job_id in self.expected:
            view = lifecycle.load_job(self.reader, job_id)
            assert view is not None
            for c in coverage(view.job, view.peers, view.commands).values():
                assert c.ok + c.failed <= c.assigned, (job_id, c)
            for state in view.peers.values():
                assert state.generated_ok + state.generated_failed <= state.assigned

    @invariant()
    def every_answer_is_what_the_log_says(self) -> None:
        for job_id, expected in self.expected.items():
            log = self.reader.commands.get(job_id)
            for command_id, status in expected.answers.items():
                decision = log.decisions.get(command_id)
                if status == 202:
                    assert decision is not None and decision.applied, (command_id, decision)
                else:
                    assert decision is None or not decision.applied, (command_id, decision)
            applied = [d for d in log.decisions.values() if d.applied]
            assert log.retry_round == sum(d.kind == "retry" for d in applied)
            ends = []
            start = expected.initial
            for added in log.extensions:
                assert added.start == start and added.end > added.start, log.extensions
                start = added.end
                ends.append(added.end)
            assert sorted(d.total_records for d in applied if d.kind == "extend") == ends
            view = lifecycle.load_job(self.reader, job_id)
            assert view is not None and view.job.total_records == start


@pytest.mark.timeout(900 if SOAK else 180)
def test_job_accounting_holds_under_random_commands_failures_and_restarts(
    gateway: tuple[str, MockLLM],
) -> None:
    Accounting.gateway_url, Accounting.mock = gateway
    run_state_machine_as_test(
        Accounting,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=not SOAK,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
