"""Jobs against the mock gateway in the behaviours of real model servers (issue 14).

The engine runs in-process over the embedded store; the mock gateway runs on a loop thread
and is switched into the modes seen on a real server (``datagems.mock.modes``).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datagems.actors.engine import Engine
from datagems.bench.procs import wait_until
from datagems.inference import OpenAIProvider, prompts
from datagems.inference.capabilities import OPENAI_FORMS, CapabilitiesRepo, Capability, endpoint_key
from datagems.inference.generation import max_tokens_for
from datagems.job.records import records_page
from datagems.job.state import JobView
from datagems.mock.server import MOCK_KEY, MockLLM, start_mock
from datagems.models import InferenceProfile, UserSettings
from datagems.services import Services
from datagems.settings import Settings
from datagems.web.presenters import job_usage
from tests.actors.jobkit import (
    PERSON_SCHEMA,
    ask,
    confirm_job,
    exported_entries,
    wait_for_status,
)

PROFILE = "local-llm"


class Gateway:
    """The mock gateway on a loop thread; ``mode(...)`` switches it like ``POST /config``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, self.url = self._run(start_mock(latency_ms=5, seed=3))
        self.mock: MockLLM = self.runner.app[MOCK_KEY]

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def mode(self, **changes: Any) -> None:
        self.loop.call_soon_threadsafe(self.mock.apply, changes)
        wait_until(
            lambda: all(self.mock.config.public()[k] == v for k, v in changes.items()),
            what="the mock's new mode",
        )

    def requests(self) -> list[dict[str, Any]]:
        return list(self.mock.recent)

    def stop(self) -> None:
        self._run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gateway = Gateway()
    yield gateway
    gateway.stop()


def open_services(tmp_path: Path, gateway: Gateway, **env: str) -> Services:
    settings = Settings.from_env(
        {
            "DATAGEN_DATA_DIR": str(tmp_path),
            "DATAGEN_JOB_POLL_SECONDS": "0.1",
            "DATAGEN_PROGRESS_FLUSH_SECONDS": "0.1",
            "DATAGEN_ALLOW_PRIVATE_URLS": "true",
            "DATAGEN_MAX_IN_FLIGHT_PER_JOB": "8",
            **env,
        }
    )
    return Services.open(settings, gateway.url)


@pytest.fixture
def services(tmp_path: Path, gateway: Gateway) -> Iterator[Services]:
    services = open_services(tmp_path, gateway)
    yield services
    services.close()


@pytest.fixture
def engine(services: Services) -> Iterator[Engine]:
    engine = Engine(services).start()
    yield engine
    engine.stop(grace=2)


def use_profile(services: Services, gateway: Gateway) -> None:
    profile = InferenceProfile(id=PROFILE, base_url=f"{gateway.url}/v1", model="mock-llm")
    services.user_settings.put("alice", UserSettings(profiles=[profile]))


def start_job(
    services: Services,
    total: int,
    *,
    profile: bool = False,
    params: dict[str, Any] | None = None,
) -> str:
    inference: dict[str, Any] = {}
    if profile:
        inference = {"useExternalApi": True, "profileId": PROFILE}
    if params is not None:
        inference["parameters"] = params
    return confirm_job(services, total, inference=inference)


def finished(services: Services, job_id: str, timeout: float = 90) -> JobView:
    return wait_for_status(services, job_id, {"succeeded", "failed"}, timeout=timeout)


def record_calls(gateway: Gateway) -> list[dict[str, Any]]:
    """The record calls the mock saw (every record call carries a seed)."""
    return [r for r in gateway.requests() if r["seed"] is not None]


# --------------------------------------------------------------------------- forms


@pytest.mark.parametrize("form", OPENAI_FORMS)
def test_a_job_completes_with_structured_output_in_every_form(
    engine: Engine, services: Services, gateway: Gateway, form: str
) -> None:
    use_profile(services, gateway)
    endpoint = f"{gateway.url}/v1/chat/completions"
    CapabilitiesRepo(services.cstore).put(endpoint_key(endpoint, "mock-llm"), Capability(form=form))
    view = finished(services, start_job(services, 12, profile=True))
    assert (view.job.status, view.job.total_ok) == ("succeeded", 12)
    sent = {r["form"] for r in gateway.requests()}
    expected = {
        "json_schema_strict": "json_schema strict",
        "json_schema": "json_schema",
        "json_object_schema": "json_object schema",
        "json_object": "json_object",
        "none": None,
    }[form]
    assert sent == {expected}


def test_a_refused_json_schema_costs_one_call_per_server_and_no_congestion_back_off(
    engine: Engine, services: Services, gateway: Gateway
) -> None:
    use_profile(services, gateway)
    gateway.mode(refuseJsonSchema=True)
    view = finished(services, start_job(services, 30, profile=True))
    assert (view.job.status, view.job.total_ok) == ("succeeded", 30)
    assert gateway.mock.modes["refused"] == 1  # one call for the server, not one per record
    state = next(iter(view.peers.values()))
    assert state.retries == 0 and state.failure_reasons == {}
    assert engine.slots.level == engine.slots.capacity  # a refusal is not congestion
    endpoint = f"{gateway.url}/v1/chat/completions"
    learned = CapabilitiesRepo(services.cstore).get(endpoint_key(endpoint, "mock-llm"))
    assert learned is not None and learned.form == "json_object_schema"

    again = finished(services, start_job(services, 10, profile=True))
    assert again.job.total_ok == 10
    assert gateway.mock.modes["refused"] == 1  # remembered: not asked again


# --------------------------------------------------------------------------- bounds


def test_max_tokens_and_the_jobs_parameters_reach_every_record_call(
    engine: Engine, services: Services, gateway: Gateway
) -> None:
    params = {"temperature": 0.3, "top_p": 0.9, "max_tokens": 300}
    finished(services, start_job(services, 10, params=params))
    calls = record_calls(gateway)
    assert len(calls) == 10
    assert all(c["maxTokens"] == 300 and c["temperature"] == 0.3 for c in calls)
    assert all("top_p" in c["params"] for c in calls)

    gateway.mock.recent.clear()
    finished(services, start_job(services, 5))
    bound = max_tokens_for(PERSON_SCHEMA, services.settings.record_max_tokens)
    assert {c["maxTokens"] for c in record_calls(gateway)} == {bound}


def test_cut_and_echoed_answers_are_named_resampled_and_usage_is_the_servers(
    engine: Engine, services: Services, gateway: Gateway
) -> None:
    gateway.mode(runawayRate=0.25, echoSchemaRate=0.25)
    job_id = start_job(services, 30)
    view = finished(services, job_id)
    entries = exported_entries(services, job_id)
    reasons = {t.get("reason") for e in entries for t in e.get("tries", [])}
    assert {"length", "echoed_schema"} <= reasons
    retried = [e for e in entries if e.get("tries")]
    assert all(t["do"] in ("resample", "first") for e in retried for t in e["tries"])
    assert set(view.peers["local"].failure_reasons) <= {"length", "echoed_schema"}
    state = view.peers["local"]
    assert (state.tokens_in, state.tokens_out) == (gateway.mock.tokens_in, gateway.mock.tokens_out)


def test_control_characters_inside_strings_are_repaired_not_failed(
    engine: Engine, services: Services, gateway: Gateway
) -> None:
    gateway.mode(controlCharsRate=1)
    job_id = start_job(services, 10)
    view = finished(services, job_id)
    assert view.job.total_ok == 10
    assert gateway.mock.modes["controlChars"] > 0
    assert any(
        "\n" in str(value)
        for e in exported_entries(services, job_id)
        for value in e["data"].values()
    )


# --------------------------------------------------------------------------- pacing


def test_a_one_request_at_a_time_gateway_gets_about_one_call_in_flight(
    tmp_path: Path, gateway: Gateway
) -> None:
    gateway.mode(maxConcurrency=1, latencyMs=30)
    services = open_services(tmp_path, gateway, DATAGEN_MAX_IN_FLIGHT_PER_JOB="16")
    engine = Engine(services).start()
    try:
        view = finished(services, start_job(services, 80), timeout=120)
    finally:
        engine.stop(grace=2)
        services.close()
    assert view.job.total_ok == 80
    waiting = [r["open"] for r in record_calls(gateway)]
    assert statistics.median(waiting) <= 2  # about one call at a time, not sixteen
    pace = view.peers["local"].pace
    assert pace is not None and pace["level"] <= 2 and pace["cap"] == 16
    # it queues; or going down to one call lost answers per second (the replica's own
    # delay between calls leaves a one-slot server idle), so two it is; or it is raising
    assert any(why in pace["reason"] for why in ("queues", "raising", "replica's"))


def test_calls_given_up_on_timeout_are_counted_as_abandoned_in_the_jobs_usage(
    tmp_path: Path, gateway: Gateway
) -> None:
    gateway.mode(latencyMs=1500)  # every call outlives the replica's patience
    services = open_services(
        tmp_path,
        gateway,
        DATAGEN_INFERENCE_TIMEOUT_SECONDS="0.2",
        DATAGEN_INFERENCE_MAX_ATTEMPTS="2",
    )
    engine = Engine(services).start()
    try:
        view = finished(services, start_job(services, 3))
    finally:
        engine.stop(grace=2)
        services.close()
    assert view.job.total_failed == 3
    usage = job_usage(view.peers)
    assert usage["failureReasons"] == {"timeout": 3}
    assert usage["abandonedCalls"] == 6  # two calls per record, each computed unseen


# --------------------------------------------------------------------------- retries


def test_a_fresh_sample_recovers_what_a_copy_the_answer_repair_does_not(
    engine: Engine, services: Services, gateway: Gateway
) -> None:
    gateway.mode(seededAnswers=True, schemaViolationRate=0.5, copyOnRepair=True)
    job_id = start_job(services, 30)
    view = finished(services, job_id)
    entries = exported_entries(services, job_id)
    first_ok = sum(1 for e in entries if e["ok"] and e.get("attempts", 1) == 1)
    assert view.job.total_ok > first_ok  # retries recovered records
    assert gateway.mock.modes["copied"] == 0  # no rejected answer was ever sent back
    assert not any(r["assistantTurn"] for r in gateway.requests())
    actions = {t["do"] for e in entries for t in e.get("tries", [])}
    assert "feedback" in actions
    page = records_page(services, job_id, offset=0, limit=30)
    assert any(r.get("tries") for r in page["records"])  # what each attempt did, shown

    # the old repair (the rejected answer echoed) gets the same answer back from this server
    rejected = next(t for e in entries for t in e.get("tries", []) if t["do"] == "first")
    messages = prompts.record_messages(details=_details(services, job_id), index=0, total=30)
    with OpenAIProvider(f"{gateway.url}/v1", api_key=None, model="m") as provider:
        answer = provider.complete(messages, schema=PERSON_SCHEMA, seed=rejected["seed"]).text
        repair = prompts.repair_messages(messages, answer, "age: -3 is less than 18")
        assert provider.complete(repair, schema=PERSON_SCHEMA, seed=rejected["seed"]).text == answer


def _details(services: Services, job_id: str) -> Any:
    job = services.jobs.get(job_id)
    assert job is not None
    return services.details.get(job.job_details_cid or "")


def test_a_retry_round_uses_fresh_seeds_and_recovers_failed_records(
    tmp_path: Path, gateway: Gateway
) -> None:
    gateway.mode(seededAnswers=True, schemaViolationRate=0.5)
    services = open_services(tmp_path, gateway, RETRY_INFERENCE_ON_FAILURE="false")
    engine = Engine(services).start()
    try:
        job_id = start_job(services, 24)
        view = finished(services, job_id)
        failed = view.job.total_failed
        assert failed > 0
        first_seeds = {r["seed"] for r in record_calls(gateway)}
        gateway.mock.recent.clear()

        ask(services, "retry", job_id)
        wait_until(  # the round's slice is uploaded (the job's counts are another issue's)
            lambda: services.peers.get(job_id, "local").retry_round == 1,
            timeout=60,
            what="the retry round",
        )
        entries = exported_entries(services, job_id, partial=True)
    finally:
        engine.stop(grace=2)
        services.close()
    round_seeds = {r["seed"] for r in record_calls(gateway)}
    assert len(round_seeds) == failed and not round_seeds & first_seeds
    assert sum(1 for e in entries if not e["ok"]) < failed  # fresh samples recovered some
