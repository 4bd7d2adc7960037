"""The gateway and OpenAI providers against a real mock-llm process (and shaped fakes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import orjson
import pytest

from datagems.bench.procs import free_port
from datagems.errors import InferenceError, UpstreamError
from datagems.inference import (
    CREATE_CHAT_COMPLETION_PATH,
    Completion,
    GatewayProvider,
    OpenAIProvider,
    extract_json,
    list_models,
)
from datagems.schema.validate import compile_validator
from tests.inference.conftest import MockLLMProcess

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "email": {"type": "string", "format": "email"},
    },
    "required": ["name", "age", "email"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "One person. This is record 3 of 10."}]
TOKEN = "gw-token-s3cr3t-value"
API_KEY = "sk-test-k3y-value-123"


def gateway(mock: MockLLMProcess, **kwargs: object) -> GatewayProvider:
    return GatewayProvider(mock.url, **kwargs)  # type: ignore[arg-type]


def openai(mock: MockLLMProcess, **kwargs: object) -> OpenAIProvider:
    kwargs.setdefault("api_key", API_KEY)
    kwargs.setdefault("model", "mock-llm")
    return OpenAIProvider(f"{mock.url}/v1", **kwargs)  # type: ignore[arg-type]


def fake(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def envelope(result: object, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json={"result": result, "ee_node_alias": "x"})


def reason_of(provider: GatewayProvider | OpenAIProvider) -> InferenceError:
    with pytest.raises(InferenceError) as caught:
        provider.complete(MESSAGES, schema=SCHEMA)
    return caught.value


# --------------------------------------------------------------------------- happy paths


def test_gateway_provider_returns_a_valid_record_with_token_counts(mock_llm: MockLLMProcess):
    with gateway(mock_llm) as provider:
        completion = provider.complete(MESSAGES, schema=SCHEMA, temperature=0.7, seed=11)
    assert isinstance(completion, Completion)
    assert compile_validator(SCHEMA).errors(extract_json(completion.text)) == []
    assert completion.tokens_in and completion.tokens_in > 0
    assert completion.tokens_out and completion.tokens_out > 0
    assert completion.model == "mock-llm"
    assert completion.latency_ms >= 0
    assert mock_llm.stats()["byPath"] == {CREATE_CHAT_COMPLETION_PATH: 1}


def test_openai_provider_returns_a_valid_record_tokens_and_model(mock_llm: MockLLMProcess):
    with openai(mock_llm, model="mock-llm-large") as provider:
        completion = provider.complete(MESSAGES, schema=SCHEMA, max_tokens=256)
    assert compile_validator(SCHEMA).errors(extract_json(completion.text)) == []
    assert completion.tokens_in and completion.tokens_out
    assert completion.model == "mock-llm-large"
    assert mock_llm.stats()["byPath"] == {"/v1/chat/completions": 1}


def test_records_vary_from_one_call_to_the_next(mock_llm: MockLLMProcess):
    with gateway(mock_llm) as provider:
        texts = {provider.complete(MESSAGES, schema=SCHEMA, seed=5).text for _ in range(20)}
    assert len(texts) >= 15


def test_a_call_without_a_schema_drafts_a_schema(mock_llm: MockLLMProcess):
    with gateway(mock_llm) as provider:
        completion = provider.complete(
            [{"role": "user", "content": "Dataset title: Shop\nOne record describes: a product"}]
        )
    drafted = extract_json(completion.text)
    assert isinstance(drafted, dict) and drafted["type"] == "object"


def test_one_provider_reuses_its_connection_across_calls(mock_llm: MockLLMProcess):
    with gateway(mock_llm) as provider:
        for _ in range(5):
            provider.complete(MESSAGES, schema=SCHEMA)
        pool = provider._client._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1


# --------------------------------------------------------------------------- request bodies


def test_gateway_body_carries_schema_seed_and_the_token_only_when_set():
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content))
        assert request.url.path == "/create_chat_completion"
        assert "authorization" not in request.headers
        text = '{"a": 1}'
        return httpx.Response(200, json={"result": {"TEXT_RESPONSE": text}})

    with GatewayProvider("http://gw.test", token=TOKEN, transport=fake(handler)) as provider:
        provider.complete(MESSAGES, schema=SCHEMA, temperature=0.5, max_tokens=300, seed=42)
    with GatewayProvider("http://gw.test", transport=fake(handler)) as provider:
        provider.complete(MESSAGES)
    with_token, without = seen
    assert with_token == {
        "messages": MESSAGES,
        "temperature": 0.5,
        "max_tokens": 300,
        "response_format": {"type": "json_object", "schema": SCHEMA},
        "metadata": {"seed": 42},
        "authorization": TOKEN,
    }
    assert without["response_format"] == {"type": "json_object"}
    assert "authorization" not in without and "temperature" not in without


def test_openai_body_uses_a_strict_json_schema_format_and_a_bearer_key():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"choices": [{"message": {"content": "{}"}}], "model": "m"})

    transport = fake(handler)
    with OpenAIProvider(
        "https://api.test/v1", api_key=API_KEY, model="m", transport=transport
    ) as provider:
        provider.complete(MESSAGES, schema=SCHEMA, temperature=0.2, max_tokens=64, seed=9)
    request = seen[0]
    assert str(request.url) == "https://api.test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert orjson.loads(request.content) == {
        "model": "m",
        "messages": MESSAGES,
        "temperature": 0.2,
        "max_tokens": 64,
        "seed": 9,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "record", "strict": True, "schema": SCHEMA},
        },
    }


# --------------------------------------------------------------------------- faults


def test_gateway_failures_are_retryable_http_500_or_final_provider_errors(
    mock_llm: MockLLMProcess,
):
    mock_llm.config(failRate=1)
    seen: set[str] = set()
    with gateway(mock_llm) as provider:
        for _ in range(24):
            error = reason_of(provider)
            assert (error.reason, error.retryable) in {
                ("http_500", True),
                ("provider_error", False),
            }
            seen.add(error.reason)
    assert seen == {"http_500", "provider_error"}
    faults = mock_llm.stats()["faults"]
    assert faults["http500"] + faults["resultError"] == 24


def test_openai_failures_are_retryable_http_500(mock_llm: MockLLMProcess):
    mock_llm.config(failRate=1)
    with openai(mock_llm) as provider:
        error = reason_of(provider)
    assert (error.reason, error.retryable) == ("http_500", True)


@pytest.mark.parametrize("flavor", ["gateway", "openai"])
def test_rate_limiting_is_a_retryable_rate_limited_error(mock_llm: MockLLMProcess, flavor):
    mock_llm.config(rateLimitRate=1)
    with gateway(mock_llm) if flavor == "gateway" else openai(mock_llm) as provider:
        error = reason_of(provider)
    assert (error.reason, error.retryable) == ("rate_limited", True)
    assert mock_llm.stats()["faults"]["rateLimited"] == 1


def test_an_answer_that_is_not_json_fails_extraction_as_invalid_json(mock_llm: MockLLMProcess):
    mock_llm.config(invalidRate=1)
    with gateway(mock_llm) as provider:
        completion = provider.complete(MESSAGES, schema=SCHEMA)
    with pytest.raises(InferenceError) as caught:
        extract_json(completion.text)
    assert caught.value.reason == "invalid_json"


@pytest.mark.parametrize("flavor", ["gateway", "openai"])
def test_a_schema_violating_answer_fails_validation(mock_llm: MockLLMProcess, flavor):
    mock_llm.config(schemaViolationRate=1)
    validator = compile_validator(SCHEMA)
    with gateway(mock_llm) if flavor == "gateway" else openai(mock_llm) as provider:
        for _ in range(10):
            record = extract_json(provider.complete(MESSAGES, schema=SCHEMA).text)
            assert validator.errors(record) != []


@pytest.mark.parametrize("flavor", ["gateway", "openai"])
def test_a_closed_port_is_a_retryable_transport_error(flavor):
    url = f"http://127.0.0.1:{free_port()}"
    provider = (
        GatewayProvider(url)
        if flavor == "gateway"
        else OpenAIProvider(url, api_key=API_KEY, model="m")
    )
    with provider:
        error = reason_of(provider)
    assert (error.reason, error.retryable) == ("transport", True)


def test_a_slow_gateway_is_a_retryable_timeout(mock_llm: MockLLMProcess):
    mock_llm.config(latencyMs=2000)
    with gateway(mock_llm, timeout=0.1) as provider:
        error = reason_of(provider)
    assert (error.reason, error.retryable) == ("timeout", True)


@pytest.mark.parametrize(
    ("status", "reason", "retryable"),
    [
        (400, "http_400", False),
        (401, "http_401", False),
        (404, "http_404", False),
        (422, "http_422", False),
        (429, "rate_limited", True),
        (502, "http_502", True),
        (504, "http_504", True),
    ],
)
@pytest.mark.parametrize("flavor", ["gateway", "openai"])
def test_http_statuses_map_to_named_reasons(flavor, status, reason, retryable):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"detail": "nope"})

    provider = (
        GatewayProvider("http://gw.test", transport=fake(handler))
        if flavor == "gateway"
        else OpenAIProvider("http://gw.test", api_key="k", model="m", transport=fake(handler))
    )
    with provider:
        error = reason_of(provider)
    assert (error.reason, error.retryable) == (reason, retryable)
    assert str(status) in error.message


@pytest.mark.parametrize(
    ("result", "reason", "retryable"),
    [
        ({"error": "bad token", "status": "unauthorized"}, "provider_error", False),
        ({"error": "model crashed", "status": "failed"}, "provider_error", False),
        ({"error": "model crashed"}, "provider_error", False),
        ({"error": "slow down", "status": "rate_limited"}, "rate_limited", True),
        ({"status": "rate_limited"}, "rate_limited", True),
        ({"error": "took too long", "status": "timeout"}, "timeout", True),
        ({"REQUEST_ID": "r1"}, "provider_error", True),
    ],
)
def test_gateway_result_errors_map_to_named_reasons(result, reason, retryable):
    with GatewayProvider("http://gw.test", transport=fake(envelope(result))) as provider:
        error = reason_of(provider)
    assert (error.reason, error.retryable) == (reason, retryable)


def test_a_body_that_is_not_an_envelope_is_a_retryable_provider_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>proxy</html>")

    with GatewayProvider("http://gw.test", transport=fake(handler)) as provider:
        error = reason_of(provider)
    assert (error.reason, error.retryable) == ("provider_error", True)


# --------------------------------------------------------------------------- answer shapes

FULL = {
    "model": "full-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": '{"from": "full"}'}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5},
}


@pytest.mark.parametrize(
    ("result", "text", "tokens"),
    [
        ({"TEXT_RESPONSE": '{"from": "text"}', "FULL_OUTPUT": FULL}, '{"from": "full"}', (12, 5)),
        (
            {"TEXT_RESPONSE": ['{"from": "text"}'], "FULL_OUTPUT": [FULL]},
            '{"from": "full"}',
            (12, 5),
        ),
        ({"TEXT_RESPONSE": ['{"from": "text"}']}, '{"from": "text"}', (None, None)),
        ({"TEXT_RESPONSE": '{"from": "text"}'}, '{"from": "text"}', (None, None)),
        ({"TEXT_RESPONSE": "x", "FULL_OUTPUT": [{"choices": []}]}, "x", (None, None)),
    ],
    ids=["scalars", "one-element-lists", "text-list-only", "text-only", "empty-choices"],
)
def test_gateway_reads_text_from_full_output_or_text_response(result, text, tokens):
    with GatewayProvider("http://gw.test", transport=fake(envelope(result))) as provider:
        completion = provider.complete(MESSAGES)
    assert completion.text == text
    assert (completion.tokens_in, completion.tokens_out) == tokens


# --------------------------------------------------------------------------- logging


def test_request_logs_show_the_call_but_never_the_token_or_key(
    mock_llm: MockLLMProcess, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="datagems.inference")
    with gateway(mock_llm, token=TOKEN, log_requests=True) as provider:
        provider.complete(MESSAGES, schema=SCHEMA)
    with openai(mock_llm, log_requests=True) as provider:
        provider.complete(MESSAGES, schema=SCHEMA)
    mock_llm.config(failRate=1)
    with gateway(mock_llm, token=TOKEN, log_requests=True) as provider:
        reason_of(provider)
    text = caplog.text
    assert "/create_chat_completion -> 200" in text
    assert "/v1/chat/completions -> 200" in text
    assert '"authorization":"***"' in text
    assert TOKEN not in text and API_KEY not in text


def test_requests_are_not_logged_unless_asked(
    mock_llm: MockLLMProcess, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="datagems.inference")
    with gateway(mock_llm, token=TOKEN) as provider:
        provider.complete(MESSAGES, schema=SCHEMA)
    assert not [r for r in caplog.records if r.name == "datagems.inference"]


# --------------------------------------------------------------------------- models


def test_list_models_reads_the_provider_model_list(mock_llm: MockLLMProcess):
    assert list_models(f"{mock_llm.url}/v1", API_KEY) == ["mock-llm", "mock-llm-large"]


def test_list_models_failures_are_upstream_errors_without_the_key():
    def refuse(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        return httpx.Response(401, json={"error": {"message": "invalid api key"}})

    for call in (
        lambda: list_models("http://api.test/v1", API_KEY, transport=fake(refuse)),
        lambda: list_models(f"http://127.0.0.1:{free_port()}/v1", API_KEY, timeout=2),
        lambda: list_models(
            "http://api.test/v1",
            API_KEY,
            transport=fake(lambda r: httpx.Response(200, content=b"not json")),
        ),
    ):
        with pytest.raises(UpstreamError) as caught:
            call()
        assert API_KEY not in str(caught.value)


# --------------------------------------------------------------------------- the async path


async def _acomplete_many(provider: GatewayProvider | OpenAIProvider, count: int) -> list:
    try:
        return await asyncio.gather(
            *(provider.acomplete(MESSAGES, schema=SCHEMA, seed=i) for i in range(count)),
            return_exceptions=True,
        )
    finally:
        await provider.aclose()


def run(coro: Coroutine[Any, Any, list]) -> list:
    return asyncio.run(coro)


@pytest.mark.parametrize("flavor", ["gateway", "openai"])
def test_the_async_path_returns_valid_records_over_one_pool(mock_llm: MockLLMProcess, flavor):
    provider = gateway(mock_llm) if flavor == "gateway" else openai(mock_llm)
    answers = run(_acomplete_many(provider, 24))
    validator = compile_validator(SCHEMA)
    assert all(isinstance(a, Completion) for a in answers), answers
    assert all(validator.errors(extract_json(a.text)) == [] for a in answers)
    assert all(a.tokens_in and a.tokens_out for a in answers)


@pytest.mark.parametrize("flavor", ["gateway", "openai"])
def test_a_closed_port_is_a_transport_error_on_the_async_path_too(flavor):
    url = f"http://127.0.0.1:{free_port()}"
    provider = (
        GatewayProvider(url) if flavor == "gateway" else OpenAIProvider(url, api_key="k", model="m")
    )
    [error] = run(_acomplete_many(provider, 1))
    assert isinstance(error, InferenceError)
    assert (error.reason, error.retryable) == ("transport", True)


def test_a_slow_gateway_is_a_timeout_on_the_async_path(mock_llm: MockLLMProcess):
    mock_llm.config(latencyMs=2000)
    [error] = run(_acomplete_many(gateway(mock_llm, timeout=0.2), 1))
    assert isinstance(error, InferenceError)
    assert (error.reason, error.retryable) == ("timeout", True)


def test_the_async_path_maps_statuses_and_envelope_errors_like_the_sync_one():
    async def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        if body["metadata"]["seed"] == 0:
            return httpx.Response(503, json={"detail": "busy"})
        return httpx.Response(200, json={"result": {"status": "rate_limited", "error": "slow"}})

    provider = GatewayProvider("http://gw.test", async_transport=httpx.MockTransport(handler))
    unavailable, limited = run(_acomplete_many(provider, 2))
    assert (unavailable.reason, unavailable.retryable) == ("http_503", True)
    assert (limited.reason, limited.retryable) == ("rate_limited", True)
