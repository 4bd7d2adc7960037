"""The engine in-process over the embedded store, with the mock gateway on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from datagems import jobs
from datagems.actors.engine import Engine
from datagems.actors.job import JobActor
from datagems.actors.poller import Poller
from datagems.actors.supervisor import Supervisor
from datagems.actors.writer import CStoreWriter
from datagems.inference.mock_server import start_mock
from datagems.services import Services
from datagems.settings import Settings
from tests.actors.jobkit import confirm_job, exported_entries
from tests.servers import wait_until


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
    jobs.request_cancel(services, job_id, "alice")


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
        lambda: (v := jobs.load_job(services, job_id)) and v.job.status == "succeeded" and v,
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
            lambda: jobs.load_job(services, job_id).job.status == "succeeded",
            timeout=60,
            what="the resumed job to succeed",
        )
    finally:
        engine.stop(grace=2)
    assert [e["i"] for e in exported_entries(services, job_id)] == list(range(300))
