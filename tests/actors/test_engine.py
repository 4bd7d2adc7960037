"""The engine in-process over the embedded store, with the mock gateway on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from datagems.actors.engine import Engine
from datagems.actors.job import JobActor
from datagems.actors.messages import RecordDone
from datagems.actors.poller import Poller
from datagems.actors.supervisor import Supervisor
from datagems.actors.writer import CStoreWriter
from datagems.bench.procs import wait_until
from datagems.job import lifecycle
from datagems.mock.server import start_mock
from datagems.models import PeerState
from datagems.services import Services
from datagems.settings import Settings
from datagems.store.repos import PeersRepo
from tests.actors.jobkit import confirm_job, exported_entries


@pytest.fixture
def gateway() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner, url = asyncio.run_coroutine_threadsafe(start_mock(latency_ms=20), loop).result(10)
    yield url
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


@pytest.fixture
def services(tmp_path: Path, gateway: str) -> Iterator[Services]:
    settings = Settings.from_env(
        {
            "DATAGEN_DATA_DIR": str(tmp_path),
            "DATAGEN_JOB_POLL_SECONDS": "0.1",
            "DATAGEN_PROGRESS_FLUSH_SECONDS": "0.1",
        }
    )
    services = Services.open(settings, gateway)
    yield services
    services.close()


@pytest.fixture
def engine(services: Services) -> Iterator[Engine]:
    engine = Engine(services).start()
    yield engine
    engine.stop(grace=2)


def test_every_actor_answers_ping(engine: Engine, services: Services) -> None:
    job_id = confirm_job(services, 400)
    wait_until(lambda: pykka.ActorRegistry.get_by_class(JobActor), what="a job actor")

    for actor_class in (Supervisor, Poller, CStoreWriter, JobActor):
        for ref in pykka.ActorRegistry.get_by_class(actor_class):
            assert ref.proxy().ping().get(timeout=5) == "pong"
    lifecycle.request_cancel(services, job_id, "alice")


def test_a_job_actor_that_fails_is_restarted_after_a_backoff(
    engine: Engine, services: Services
) -> None:
    job_id = confirm_job(services, 20)
    job = services.jobs.get(job_id)
    good_cid, job.job_details_cid = job.job_details_cid, "QmMissing"
    services.jobs.put(job)  # the job actor cannot load the details: it fails at start
    assert engine.supervisor is not None
    supervisor = engine.supervisor.proxy()
    wait_until(lambda: job_id in supervisor.failures.get(), what="a recorded failure")

    job.job_details_cid = good_cid
    services.jobs.put(job)

    view = wait_until(
        lambda: (v := lifecycle.load_job(services, job_id)) and v.job.status == "succeeded" and v,
        timeout=30,
        what="the job to succeed after the restart",
    )
    assert [e["i"] for e in exported_entries(services, job_id)] == list(range(20))
    assert view.job.total_ok == 20


def test_stopping_the_engine_flushes_progress_and_a_new_engine_resumes(
    services: Services,
) -> None:
    engine = Engine(services).start()
    job_id = confirm_job(services, 300)
    wait_until(lambda: services.peers.get(job_id, "local").done >= 30, what="30 done")
    engine.stop(grace=2)
    stopped = services.peers.get(job_id, "local")
    assert stopped.in_flight == []  # nothing is shown as in flight after a stop

    engine = Engine(services).start()
    try:
        wait_until(
            lambda: lifecycle.load_job(services, job_id).job.status == "succeeded",
            timeout=60,
            what="the resumed job to succeed",
        )
    finally:
        engine.stop(grace=2)
    assert [e["i"] for e in exported_entries(services, job_id)] == list(range(300))


def test_a_writer_that_dies_mid_job_is_restarted_and_no_progress_is_lost_or_counted_twice(
    tmp_path: Path, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = 500
    settings = Settings.from_env(
        {
            "DATAGEN_DATA_DIR": str(tmp_path),
            "DATAGEN_JOB_POLL_SECONDS": "0.1",
            "DATAGEN_PROGRESS_FLUSH_SECONDS": "0.1",
            "DATAGEN_MAX_IN_FLIGHT_PER_JOB": "2",  # ~100 records/s: the job outlasts the restart
        }
    )
    services = Services.open(settings, gateway)
    written: list[PeerState] = []  # every peer state the writers store, in order
    put = PeersRepo.put

    def put_and_keep(self: PeersRepo, job_id: str, state: PeerState) -> None:
        put(self, job_id, state)
        written.append(state.model_copy(deep=True))

    counted, died_at = 0, 0
    count_done = CStoreWriter._record_done

    def count_then_die_once(self: CStoreWriter, message: RecordDone) -> None:
        nonlocal counted, died_at
        count_done(self, message)  # counted in memory, not written yet...
        counted += 1
        if counted == 20:  # ...and the writer dies holding it, outcomes queued behind
            died_at = len(written)
            raise RuntimeError("a bug in the writer")

    monkeypatch.setattr(PeersRepo, "put", put_and_keep)
    monkeypatch.setattr(CStoreWriter, "_record_done", count_then_die_once)
    engine = Engine(services).start()
    try:
        assert engine.supervisor is not None
        supervisor = engine.supervisor.proxy()
        first_writer = supervisor.writer_ref().get(timeout=5)
        job_id = confirm_job(services, total)
        restarted = wait_until(
            lambda: (
                (ref := supervisor.writer_ref().get(timeout=5)) not in (None, first_writer) and ref
            ),
            timeout=30,
            what="a new writer",
        )
        wait_until(  # the new writer shows the job's progress while it runs
            lambda: any(
                20 <= s.generated_ok < total and not s.result_cid for s in written[died_at:]
            ),
            timeout=30,
            what="progress written by the new writer mid-job",
        )
        view = wait_until(
            lambda: (
                (v := lifecycle.load_job(services, job_id)) and v.job.status == "succeeded" and v
            ),
            timeout=60,
            what="the job to succeed after the writer's restart",
        )
        assert not first_writer.is_alive() and restarted.is_alive()
        assert len(supervisor.failures.get()["writer"]) == 1
        state = services.peers.get(job_id, "local")
        assert (state.assigned, state.generated_ok, state.generated_failed) == (total, total, 0)
        assert state.result_cid and state.in_flight == []
        ok_written = [s.generated_ok for s in written if s.peer_id == "local"]
        assert ok_written == sorted(ok_written) and ok_written[-1] == total  # never back/over
        assert (view.job.total_ok, view.job.total_failed) == (total, 0)
        assert [e["i"] for e in exported_entries(services, job_id)] == list(range(total))
    finally:
        engine.stop(grace=2)
        services.close()
