"""The preview runs the record pipeline a job's records run (``datagems.inference.pipeline``):
its calls are bounded, seeded and shaped as a job's, and its answers are judged alike."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from datagems.inference import prompts
from datagems.inference.generation import sampling_for
from tests.web.harness import LiveApp, draft


@pytest.fixture
def gateway(live: LiveApp) -> Iterator[str]:
    assert live.services is not None
    url = live.services.gateway_url
    yield url
    httpx.post(f"{url}/config", json={"schemaViolationRate": 0}, timeout=5).raise_for_status()


def test_a_preview_calls_the_model_as_a_job_calls_it_for_the_same_records(
    live: LiveApp, gateway: str
) -> None:
    client = live.login("alice")
    drafted = draft(client)
    answer = client.post("/api/tasks/preview", json={"draftToken": drafted["draftToken"]})
    assert answer.status_code == 200, answer.text
    asked = httpx.get(f"{gateway}/requests", timeout=5).json()[-3:]
    assert live.services is not None
    bound = sampling_for(drafted["schema"], None, live.services.settings.record_max_tokens)
    # the job's bound and sampling (not a preview's own), and the job's seeds per record
    assert {a["maxTokens"] for a in asked} == {bound.max_tokens}
    assert {a["temperature"] for a in asked} == {bound.temperature}
    seeds = {prompts.call_seed(prompts.record_seed("preview", i), 1) for i in range(3)}
    assert {a["seed"] for a in asked} == seeds


def test_a_preview_record_that_breaks_the_schema_fails_as_a_job_record_does(
    live: LiveApp, gateway: str
) -> None:
    client = live.login("alice")
    drafted = draft(client)
    httpx.post(f"{gateway}/config", json={"schemaViolationRate": 1}, timeout=5).raise_for_status()
    answer = client.post("/api/tasks/preview", json={"draftToken": drafted["draftToken"]})
    assert answer.status_code == 200, answer.text
    records = answer.json()["records"]
    assert [r["i"] for r in records] == [0, 1, 2]
    assert all(not r["ok"] and r["reason"] == "schema_violation" for r in records)
    assert all(r["error"].startswith("schema_violation: ") and "data" not in r for r in records)
