"""Providers against the mock gateway in the modes of real servers (issue 14): a refused
``json_schema``, bounded and cut answers, echoes and copies, control characters, seeds,
and answers too large to read (issue 13)."""

from __future__ import annotations

import asyncio
import tracemalloc

import httpx
import orjson
import pytest

from datagems.errors import InferenceError
from datagems.inference import GatewayProvider, OpenAIProvider, extract_json
from datagems.inference.capabilities import Capability, Negotiation
from tests.inference.conftest import MockLLMProcess

SCHEMA = {
    "type": "object",
    "properties": {
        "full_name": {"type": "string", "minLength": 3},
        "age": {"type": "integer", "minimum": 18, "maximum": 90},
        "city": {"type": "string"},
    },
    "required": ["full_name", "age", "city"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "One person. This is record 3 of 10."}]


def openai(mock: MockLLMProcess, **kwargs: object) -> OpenAIProvider:
    return OpenAIProvider(f"{mock.url}/v1", api_key="sk-x", model="mock-llm", **kwargs)  # type: ignore[arg-type]


async def _many(provider: OpenAIProvider, count: int) -> list:
    try:
        return await asyncio.gather(
            *(provider.acomplete(MESSAGES, schema=SCHEMA, seed=i) for i in range(count))
        )
    finally:
        await provider.aclose()


def test_a_refused_json_schema_costs_one_call_per_server_then_the_next_form_is_used(
    mock_llm: MockLLMProcess,
):
    mock_llm.config(refuseJsonSchema=True, latencyMs=20)
    learned: list[Capability] = []
    negotiation = Negotiation(
        OpenAIProvider.forms, endpoint="mock", model="mock-llm", on_learned=learned.append
    )
    provider = openai(mock_llm, negotiation=negotiation)

    answers = asyncio.run(_many(provider, 12))

    assert all(extract_json(a.text)["full_name"] for a in answers)
    assert mock_llm.stats()["modes"]["refused"] == 1  # strict refused; its family skipped
    forms = [r["form"] for r in mock_llm.requests()]
    assert forms.count("json_schema strict") == 1 and "json_schema" not in forms
    assert forms.count("json_object schema") == 12
    assert [c.form for c in learned] == ["json_object_schema"]
    assert "Input should be" in learned[0].refused[0]


def test_a_remembered_form_is_used_from_the_first_call(mock_llm: MockLLMProcess):
    mock_llm.config(refuseJsonSchema=True)
    known = Capability(form="json_object_schema", refused=["json_schema_strict: HTTP 500"])
    negotiation = Negotiation(OpenAIProvider.forms, endpoint="mock", model=None, known=known)
    with openai(mock_llm, negotiation=negotiation) as provider:
        provider.complete(MESSAGES, schema=SCHEMA)
        provider.complete(MESSAGES, schema=SCHEMA)
    assert mock_llm.stats()["modes"]["refused"] == 0


def test_the_sync_path_probes_too_and_a_call_without_schema_is_not_refused(
    mock_llm: MockLLMProcess,
):
    mock_llm.config(refuseJsonSchema=True)
    with openai(mock_llm) as provider:
        provider.complete(MESSAGES)  # json_object: accepted
        provider.complete(MESSAGES, schema=SCHEMA)
        provider.complete(MESSAGES, schema=SCHEMA)
        assert provider.negotiation.form == "json_object_schema"
    assert mock_llm.stats()["modes"]["refused"] == 1


def test_an_error_that_is_not_about_the_form_is_raised_and_nothing_is_learned(
    mock_llm: MockLLMProcess,
):
    mock_llm.config(failRate=1)
    with openai(mock_llm) as provider, pytest.raises(InferenceError) as caught:
        provider.complete(MESSAGES, schema=SCHEMA)
    assert caught.value.reason == "http_500"
    assert not provider.negotiation.confirmed and provider.negotiation.form == "json_schema_strict"


def test_max_tokens_and_sampling_parameters_reach_the_server(mock_llm: MockLLMProcess):
    with openai(mock_llm) as provider:
        provider.complete(
            MESSAGES,
            schema=SCHEMA,
            temperature=0.3,
            max_tokens=77,
            params={"top_p": 0.9, "repeat_penalty": 1.1},
        )
    with GatewayProvider(mock_llm.url) as provider:
        provider.complete(MESSAGES, schema=SCHEMA, max_tokens=77, params={"top_p": 0.9})
    for seen in mock_llm.requests():
        assert seen["maxTokens"] == 77
        assert "top_p" in seen["params"]


def test_a_runaway_answer_is_cut_at_max_tokens_and_says_length(mock_llm: MockLLMProcess):
    mock_llm.config(runawayRate=1)
    with openai(mock_llm) as provider:
        completion = provider.complete(MESSAGES, schema=SCHEMA, max_tokens=50)
    assert completion.finish_reason == "length"
    assert completion.tokens_out == 50
    with pytest.raises(InferenceError):
        extract_json(completion.text)


def test_echo_copy_control_character_and_seeded_modes_behave_as_seen_on_real_servers(
    mock_llm: MockLLMProcess,
):
    with openai(mock_llm) as provider:
        mock_llm.config(echoSchemaRate=1)
        assert extract_json(provider.complete(MESSAGES, schema=SCHEMA).text) == SCHEMA
        mock_llm.config(echoSchemaRate=0, copyOnRepair=True)
        rejected = '{"full_name": "A"}'
        repair = [*MESSAGES, {"role": "assistant", "content": rejected}, MESSAGES[0]]
        assert provider.complete(repair, schema=SCHEMA).text == rejected
        mock_llm.config(copyOnRepair=False, controlCharsRate=1)
        text = provider.complete(MESSAGES, schema=SCHEMA).text
        assert "\n" in text
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)
        assert extract_json(text)["full_name"]  # repaired: the newline was inside a string
        mock_llm.config(controlCharsRate=0, seededAnswers=True)
        first = provider.complete(MESSAGES, schema=SCHEMA, seed=11).text
        assert provider.complete(MESSAGES, schema=SCHEMA, seed=11).text == first
        others = {provider.complete(MESSAGES, schema=SCHEMA, seed=s).text for s in range(12, 20)}
        assert len(others - {first}) >= 6


@pytest.mark.parametrize("flavor", ["gateway", "openai"])
def test_an_answer_over_the_size_cap_fails_provider_error_without_being_held(
    mock_llm: MockLLMProcess, flavor: str
):
    mock_llm.config(hugeAnswerMb=60)
    cap = 1024 * 1024
    provider = (
        GatewayProvider(mock_llm.url, max_answer_bytes=cap)
        if flavor == "gateway"
        else openai(mock_llm, max_answer_bytes=cap)
    )

    async def call() -> InferenceError:
        try:
            with pytest.raises(InferenceError) as caught:
                await provider.acomplete(MESSAGES, schema=SCHEMA)
            return caught.value
        finally:
            await provider.aclose()

    tracemalloc.start()
    try:
        with pytest.raises(InferenceError) as sync_caught:
            provider.complete(MESSAGES, schema=SCHEMA)
        error = asyncio.run(call())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (error.reason, error.retryable) == ("provider_error", False)
    assert "larger than 1024 KiB" in error.message
    assert sync_caught.value.reason == "provider_error"
    assert peak < 8 * cap  # a 60 MB answer was never held


def test_a_declared_length_over_the_cap_is_refused_before_reading():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-length": str(50 * 2**20)}, content=b"{}")

    with (
        OpenAIProvider(
            "http://api.test/v1",
            api_key=None,
            model="m",
            transport=httpx.MockTransport(handler),
            max_answer_bytes=2**20,
        ) as provider,
        pytest.raises(InferenceError) as caught,
    ):
        provider.complete(MESSAGES)
    assert caught.value.reason == "provider_error"


def test_a_strict_refusal_about_the_schema_tries_plain_json_schema_next():
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        seen.append(body["response_format"])
        if body["response_format"]["json_schema"].get("strict"):
            message = "Invalid schema for response_format 'record': 'minLength' is not permitted."
            return httpx.Response(400, json={"error": {"message": message}})
        return httpx.Response(200, json={"choices": [{"message": {"content": "{}"}}]})

    with OpenAIProvider(
        "http://api.test/v1", api_key=None, model="m", transport=httpx.MockTransport(handler)
    ) as provider:
        provider.complete(MESSAGES, schema=SCHEMA)
    assert [f["json_schema"].get("strict", False) for f in seen] == [True, False]
    assert provider.negotiation.form == "json_schema"


def test_an_error_that_does_not_name_the_format_is_not_taken_for_a_refusal():
    calls: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(orjson.loads(request.content))
        return httpx.Response(400, json={"error": {"message": "The model `m` does not exist"}})

    with (
        OpenAIProvider(
            "http://api.test/v1", api_key=None, model="m", transport=httpx.MockTransport(handler)
        ) as provider,
        pytest.raises(InferenceError) as caught,
    ):
        provider.complete(MESSAGES, schema=SCHEMA)
    assert caught.value.reason == "http_400" and len(calls) == 1


def test_near_duplicate_mode_repeats_an_earlier_record_with_its_text_unchanged(
    mock_llm: MockLLMProcess,
):
    """A small model repeats itself (issue 17): 10 of 23 records in one city."""
    httpx.post(f"{mock_llm.url}/stats/reset", timeout=10)
    mock_llm.config(nearDuplicateRate=0.5, seed=4)
    provider = openai(mock_llm)

    async def calls() -> list:
        try:
            return [
                await provider.acomplete(
                    [{"role": "user", "content": f"One person. This is record {i} of 30."}],
                    schema=SCHEMA,
                    seed=i,
                )
                for i in range(1, 31)
            ]
        finally:
            await provider.aclose()

    records = [extract_json(a.text) for a in asyncio.run(calls())]
    stats = mock_llm.stats()
    planted = stats["plantedPairs"]
    assert planted and stats["modes"]["nearDuplicates"] == len(planted)
    for source, copy in planted:  # 0-based record indices, from "record N of"
        first, second = records[source], records[copy]
        assert first != second  # not an exact copy: the exact-duplicate counter misses it
        assert (first["full_name"], first["city"]) == (second["full_name"], second["city"])
        assert abs(first["age"] - second["age"]) == 1
    mock_llm.config(nearDuplicateRate=0.0)
