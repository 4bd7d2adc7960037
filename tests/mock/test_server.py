"""The mock gateway in process (start_mock): envelopes, faults, config, stats, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from datagems.mock.server import MOCK_KEY, start_mock
from datagems.schema.check import check_schema
from datagems.schema.sanitize import sanitize_schema
from datagems.schema.validate import compile_validator

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}
MESSAGES = [{"role": "user", "content": "one person"}]


def run(test: Callable[[aiohttp.ClientSession, str], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        runner, url = await start_mock(**options)
        try:
            async with aiohttp.ClientSession() as session:
                await test(session, url)
        finally:
            await runner.cleanup()

    asyncio.run(main())


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, data=orjson.dumps(body)) as response:
        return response.status, orjson.loads(await response.read())


def test_start_mock_serves_the_ratio1_envelope_on_an_ephemeral_port():
    async def check(session: aiohttp.ClientSession, url: str) -> None:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        body = {
            "messages": MESSAGES,
            "response_format": {"type": "json_object", "schema": SCHEMA},
            "metadata": {"seed": 4},
        }
        status, answer = await post(session, f"{url}/create_chat_completion", body)
        assert status == 200
        result = answer["result"]
        assert set(result) == {"REQUEST_ID", "MODEL_NAME", "TEXT_RESPONSE", "FULL_OUTPUT"}
        assert answer["ee_node_alias"] and answer["server_node_addr"].startswith("0xai_")
        full = result["FULL_OUTPUT"]
        assert full["object"] == "chat.completion"
        assert full["choices"][0]["message"]["content"] == result["TEXT_RESPONSE"]
        assert full["usage"]["total_tokens"] == (
            full["usage"]["prompt_tokens"] + full["usage"]["completion_tokens"]
        )
        assert compile_validator(SCHEMA).errors(orjson.loads(result["TEXT_RESPONSE"])) == []

    run(check, seed=1)


def test_the_openai_route_reads_a_json_schema_response_format():
    async def check(session: aiohttp.ClientSession, url: str) -> None:
        body = {
            "model": "mock-llm",
            "messages": MESSAGES,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "record", "schema": SCHEMA},
            },
        }
        status, answer = await post(session, f"{url}/v1/chat/completions", body)
        assert status == 200
        record = orjson.loads(answer["choices"][0]["message"]["content"])
        assert compile_validator(SCHEMA).errors(record) == []
        async with session.get(f"{url}/v1/models") as response:
            assert [m["id"] for m in (await response.json())["data"]] == [
                "mock-llm",
                "mock-llm-large",
            ]

    run(check)


def test_a_draft_request_answers_a_schema_that_passes_sanitize_and_check():
    async def check(session: aiohttp.ClientSession, url: str) -> None:
        messages = [
            {"role": "system", "content": "You design JSON Schemas."},
            {"role": "user", "content": "Dataset title: Orders\nOne record describes: an order"},
        ]
        body = {"messages": messages, "response_format": {"type": "json_object"}}
        _, answer = await post(session, f"{url}/create_chat_completion", body)
        drafted = orjson.loads(answer["result"]["TEXT_RESPONSE"])
        schema = sanitize_schema(drafted)
        check_schema(schema)  # raises SchemaInvalid when unusable
        assert schema["type"] == "object" and schema["properties"]
        assert set(schema["required"]) <= set(schema["properties"])
        assert set(schema["properties"]) == set(drafted["properties"])  # nothing dropped

    run(check)


def test_a_draft_with_the_meta_schema_as_answer_format_gets_a_record_schema():
    """The original DataGems drafts with the 2020-12 meta-schema in ``response_format``: the
    answer is a record schema, not a random instance of the meta-schema."""
    from jsonschema import Draft202012Validator

    async def check(session: aiohttp.ClientSession, url: str) -> None:
        meta = Draft202012Validator.META_SCHEMA
        user = {"role": "user", "content": "A used bicycle listed for sale: brand, year, price"}
        for fmt in (
            {"type": "json_object", "schema": meta},
            {"type": "json_schema", "json_schema": {"schema": meta}},
            {
                "type": "json_object",
                "schema": {"$ref": "https://json-schema.org/draft/2020-12/schema"},
            },
        ):
            body = {"messages": [user], "response_format": fmt}
            _, answer = await post(session, f"{url}/create_chat_completion", body)
            schema = orjson.loads(answer["result"]["TEXT_RESPONSE"])
            check_schema(sanitize_schema(schema))
            assert schema["type"] == "object" and len(schema["properties"]) >= 3
            assert set(schema["required"]) <= set(schema["properties"])

    run(check, seed=3)


def test_a_draft_by_its_system_prompt_gets_a_record_schema_with_a_label_in_dataset_mode():
    async def check(session: aiohttp.ClientSession, url: str) -> None:
        system = (
            "You design JSON Schemas for labelled classification datasets: every record "
            "has a label."
        )
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": "Reviews of headphones"},
        ]
        body = {"messages": messages, "response_format": {"type": "json_object", "schema": {}}}
        _, answer = await post(session, f"{url}/create_chat_completion", body)
        schema = orjson.loads(answer["result"]["TEXT_RESPONSE"])
        check_schema(sanitize_schema(schema))
        assert schema["properties"]["label"]["enum"]

    run(check, seed=5)


def test_a_record_request_still_gets_a_record_of_its_schema():
    async def check(session: aiohttp.ClientSession, url: str) -> None:
        from datagems.inference.prompts import RECORD_SYSTEM

        messages = [{"role": "system", "content": RECORD_SYSTEM}, *MESSAGES]
        body = {"messages": messages, "response_format": {"type": "json_object", "schema": SCHEMA}}
        _, answer = await post(session, f"{url}/create_chat_completion", body)
        record = orjson.loads(answer["result"]["TEXT_RESPONSE"])
        assert compile_validator(SCHEMA).errors(record) == []

    run(check, seed=6)


def test_a_malformed_request_is_a_422_like_the_node():
    async def check(session: aiohttp.ClientSession, url: str) -> None:
        status, answer = await post(session, f"{url}/create_chat_completion", {"messages": []})
        assert status == 422 and answer["detail"]
        bad = {"messages": [{"role": "user", "content": ""}]}
        status, _ = await post(session, f"{url}/create_chat_completion", bad)
        assert status == 422

    run(check)


def test_config_changes_faults_at_run_time_and_stats_count_them():
    async def check(session: aiohttp.ClientSession, url: str) -> None:
        body = {"messages": MESSAGES, "response_format": {"type": "json_object", "schema": SCHEMA}}
        status, config = await post(session, f"{url}/config", {"rateLimitRate": 1})
        assert status == 200 and config["rateLimitRate"] == 1
        _, answer = await post(session, f"{url}/create_chat_completion", body)
        assert answer["result"]["status"] == "rate_limited" and answer["result"]["error"]
        status, _ = await post(session, f"{url}/v1/chat/completions", body)
        assert status == 429
        await post(session, f"{url}/config", {"rateLimitRate": 0, "invalidRate": 1})
        _, answer = await post(session, f"{url}/create_chat_completion", body)
        assert "{" not in answer["result"]["TEXT_RESPONSE"]
        async with session.get(f"{url}/stats") as response:
            stats = await response.json()
        assert stats["requests"] == 3
        assert stats["byPath"] == {"/create_chat_completion": 2, "/v1/chat/completions": 1}
        assert stats["faults"]["rateLimited"] == 2 and stats["faults"]["invalidJson"] == 1
        status, stats = await post(session, f"{url}/stats/reset", {})
        assert stats["requests"] == 0 and stats["faults"]["rateLimited"] == 0
        status, answer = await post(session, f"{url}/config", {"failRatio": 1})
        assert status == 400 and "failRatio" in answer["detail"]
        status, answer = await post(session, f"{url}/config", {"failRate": 2})
        assert status == 400

    run(check)


def test_max_concurrency_queues_the_excess_requests():
    async def check(session: aiohttp.ClientSession, url: str) -> None:
        body = {"messages": MESSAGES, "response_format": {"type": "json_object", "schema": SCHEMA}}
        answers = await asyncio.gather(
            *(post(session, f"{url}/create_chat_completion", body) for _ in range(8))
        )
        assert [status for status, _ in answers] == [200] * 8
        async with session.get(f"{url}/stats") as response:
            stats = await response.json()
        assert stats["maxInFlight"] == 2 and stats["inFlight"] == 0

    run(check, latency_ms=50, max_concurrency=2)


def test_the_same_schema_compiles_once():
    async def check(session: aiohttp.ClientSession, url: str) -> None:
        body = {"messages": MESSAGES, "response_format": {"type": "json_object", "schema": SCHEMA}}
        for _ in range(5):
            await post(session, f"{url}/create_chat_completion", body)
        async with session.get(f"{url}/stats") as response:
            assert (await response.json())["factories"] == 1

    run(check)


def test_the_mock_follows_the_label_a_labeled_prompt_asks_for():
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string"}, "label": {"enum": ["spam", "ham"]}},
        "required": ["text", "label"],
    }

    async def check(session: aiohttp.ClientSession, url: str) -> None:
        for wanted in ("spam", "ham", "spam"):
            prompt = f'record\nUse the label "{wanted}" for this record.\nAnswer.'
            body = {
                "messages": [{"role": "user", "content": prompt}],
                "response_format": {"type": "json_object", "schema": schema},
            }
            _, answer = await post(session, f"{url}/create_chat_completion", body)
            assert orjson.loads(answer["result"]["TEXT_RESPONSE"])["label"] == wanted

    run(check)


def test_the_runner_exposes_the_mock_state():
    async def main() -> None:
        runner, _url = await start_mock(fail_rate=0.25)
        try:
            assert runner.app[MOCK_KEY].config.fail_rate == 0.25
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_a_paused_mock_answers_nothing_until_it_is_resumed():
    async def check(session: aiohttp.ClientSession, url: str) -> None:
        body = {"messages": MESSAGES, "response_format": {"type": "json_object", "schema": SCHEMA}}
        call = asyncio.ensure_future(post(session, f"{url}/create_chat_completion", body))

        async def reached_the_server() -> None:
            while True:
                async with session.get(f"{url}/stats") as response:
                    if (await response.json())["inFlight"] >= 1:
                        return
                await asyncio.sleep(0.01)

        await asyncio.wait_for(reached_the_server(), timeout=10)
        assert not call.done()  # held: a paused server does not answer
        status, _ = await post(session, f"{url}/config", {"paused": False})
        assert status == 200
        status, answer = await asyncio.wait_for(call, timeout=10)
        assert status == 200 and "result" in answer

    run(check, paused=True)
