"""``datagems mock-llm``: a mock LLM gateway on loopback, with fault injection.

Routes:

- ``POST /create_chat_completion``: the Ratio1 inference API (``ratio1-api.md``): the answer
  is the node envelope ``{"result": {REQUEST_ID, MODEL_NAME, TEXT_RESPONSE, FULL_OUTPUT},
  <node metadata>}``, failures are 500 or 200 with ``result.error`` / ``result.status``;
- ``POST /v1/chat/completions`` (also ``/chat/completions``): OpenAI-compatible;
  ``GET /v1/models`` (also ``/models``);
- ``GET /stats``, ``POST /stats/reset``: counters; ``POST /config``: change the fault rates
  and latency at run time (camelCase names: ``latencyMs``, ``jitterMs``, ``failRate``,
  ``invalidRate``, ``schemaViolationRate``, ``rateLimitRate``, ``maxConcurrency``).

With a schema in ``response_format`` (``json_object`` + ``schema``, or
``json_schema.json_schema.schema``) the answer is a record satisfying it (see ``records``),
varying per request (seed from ``metadata.seed`` / ``seed`` / the prompt, plus a counter).
Without one it answers a drafted 2020-12 record schema, and so it does for a schema-draft
request: one whose ``response_format`` schema is a JSON Schema meta-schema (the original
DataGems sends the 2020-12 meta-schema there), or whose system prompt asks to design,
draft or generate a JSON Schema. Record factories are cached by the schema's
JSON text, so the hot path is parse -> generate -> serialize.

Behaviours of real servers (``refuseJsonSchema``, ``echoSchemaRate``, ``exampleDraft``,
``runawayRate`` + ``tokenLatencyMs``, ``copyOnRepair``, ``controlCharsRate``,
``seededAnswers``, ``hugeAnswerMb``, ``paused``, ``nearDuplicateRate``) are modes
described in ``modes``; ``GET /requests`` lists what the last requests asked (seed,
form, ``max_tokens``, parameters).

Faults (each an independent probability per request, checked in this order):
``rate_limit_rate`` (gateway: 200 ``result.status: rate_limited``; OpenAI: 429),
``fail_rate`` (gateway: half HTTP 500, half 200 ``result.error``; OpenAI: 500),
``invalid_rate`` (text that is not JSON), ``schema_violation_rate`` (JSON missing a
required field or with a wrong type).

In process: ``runner, base_url = await start_mock(port=0, fail_rate=0.1)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import re
import signal
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson
from aiohttp import web

from datagems.mock import modes
from datagems.mock.drafts import draft_schema
from datagems.mock.records import RecordFactory
from datagems.quality.proposals import PROPOSALS_KEY, follow_values, mock_proposals

logger = logging.getLogger(__name__)

MODEL_NAME = "mock-llm"
NODE_META = {
    "server_node_addr": "0xai_mock_node",
    "evm_network": "devnet",
    "ee_node_alias": "mock-llm",
    "ee_node_address": "0xai_mock_node",
    "ee_node_eth_address": "0x0000000000000000000000000000000000000000",
    "ee_node_network": "devnet",
    "ee_node_ver": "mock",
}
MAX_FACTORIES = 512
_SEED_IN_TEXT = re.compile(r"seed:?\s*(\d+)", re.IGNORECASE)
_LABEL_IN_TEXT = re.compile(r"Use the label (\S+) for this record")
_INDEX_IN_TEXT = re.compile(r"record (\d+) of", re.IGNORECASE)
JSON = "application/json"


@dataclass
class MockConfig:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fail_rate: float = 0.0
    invalid_rate: float = 0.0
    schema_violation_rate: float = 0.0
    rate_limit_rate: float = 0.0
    max_concurrency: int = 0  # 0 = unlimited; excess requests queue
    seed: int | None = None
    token: str | None = None  # when set, requests must carry it (body / bearer)
    # behaviours of real servers (datagems.mock.modes)
    refuse_json_schema: bool = False
    echo_schema_rate: float = 0.0
    example_draft: bool = False
    runaway_rate: float = 0.0
    token_latency_ms: float = 0.0
    copy_on_repair: bool = False
    control_chars_rate: float = 0.0
    seeded_answers: bool = False
    huge_answer_mb: float = 0.0
    near_duplicate_rate: float = 0.0
    paused: bool = False  # a server that stops answering: calls wait until it resumes

    def check(self) -> None:
        for name in (
            "fail_rate",
            "invalid_rate",
            "schema_violation_rate",
            "rate_limit_rate",
            "echo_schema_rate",
            "runaway_rate",
            "control_chars_rate",
            "near_duplicate_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{_camel(name)} must be between 0 and 1")
        if self.latency_ms < 0 or self.jitter_ms < 0 or self.max_concurrency < 0:
            raise ValueError("latencyMs, jitterMs and maxConcurrency must be >= 0")
        if self.token_latency_ms < 0 or self.huge_answer_mb < 0:
            raise ValueError("tokenLatencyMs and hugeAnswerMb must be >= 0")

    def public(self) -> dict[str, Any]:
        return {_camel(k): v for k, v in asdict(self).items() if k != "token"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


CONFIG_NAMES = {_camel(f.name): f.name for f in fields(MockConfig) if f.name != "token"}
BOOL_SETTINGS = frozenset(
    {"refuse_json_schema", "example_draft", "copy_on_repair", "seeded_answers", "paused"}
)
REQUESTS_KEPT = 2000


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type=JSON)


class MockLLM:
    """The mock's state: configuration, counters, cached record factories."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.config = config or MockConfig()
        self.config.check()
        base = (
            self.config.seed
            if self.config.seed is not None
            else random.SystemRandom().getrandbits(31)
        )
        self.base_seed = base
        self.rng = random.Random(base)
        self.counter = 0
        self.factories: dict[bytes, RecordFactory] = {}
        self.planter = modes.NearDuplicatePlanter()
        self._semaphore = self._make_semaphore()
        self._resumed = asyncio.Event()  # set while not paused
        if not self.config.paused:
            self._resumed.set()
        self.reset_stats()

    def _make_semaphore(self) -> asyncio.Semaphore | None:
        n = self.config.max_concurrency
        return asyncio.Semaphore(n) if n > 0 else None

    def reset_stats(self) -> None:
        self.requests = 0
        self.by_path: dict[str, int] = {}
        self.faults = {
            "http500": 0,
            "resultError": 0,
            "invalidJson": 0,
            "schemaViolation": 0,
            "rateLimited": 0,
            "unauthorized": 0,
        }
        self.in_flight = 0
        self.max_in_flight = 0
        self.open = 0  # requests received and not answered yet (queued ones included)
        self.max_open = 0
        self.modes = {
            "refused": 0,
            "echoed": 0,
            "exampleDrafts": 0,
            "runaway": 0,
            "copied": 0,
            "controlChars": 0,
            "huge": 0,
            "nearDuplicates": 0,
        }
        self.recent: deque[dict[str, Any]] = deque(maxlen=REQUESTS_KEPT)
        self.tokens_in = 0  # the usage this server reported, summed
        self.tokens_out = 0
        self.last_answer_at: float | None = None  # wall clock (time.time) of the last answer
        self.started = time.monotonic()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "byPath": dict(self.by_path),
            "faults": dict(self.faults),
            "inFlight": self.in_flight,
            "maxInFlight": self.max_in_flight,
            "open": self.open,
            "maxOpen": self.max_open,
            "modes": dict(self.modes),
            "tokensIn": self.tokens_in,
            "tokensOut": self.tokens_out,
            "lastAnswerAt": self.last_answer_at,
            "factories": len(self.factories),
            "plantedPairs": list(self.planter.planted),
            "config": self.config.public(),
        }

    def apply(self, changes: dict[str, Any]) -> None:
        unknown = [k for k in changes if k not in CONFIG_NAMES]
        if unknown:
            raise ValueError(
                f"unknown settings: {', '.join(unknown)}; known: {', '.join(CONFIG_NAMES)}"
            )
        current = asdict(self.config)
        for key, value in changes.items():
            name = CONFIG_NAMES[key]
            if name == "seed":
                current[name] = None if value is None else int(value)
            elif name == "max_concurrency":
                current[name] = int(value)
            elif name in BOOL_SETTINGS:
                current[name] = bool(value)
            else:
                current[name] = float(value)
        new = MockConfig(**current)
        new.check()
        concurrency_changed = new.max_concurrency != self.config.max_concurrency
        self.config = new
        if "seed" in changes and new.seed is not None:
            self.rng = random.Random(new.seed)
            self.base_seed = new.seed
            self.counter = 0
        if concurrency_changed:
            self._semaphore = self._make_semaphore()
        if new.paused:
            self._resumed.clear()
        else:
            self._resumed.set()

    # -- the app

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app[MOCK_KEY] = self
        app.router.add_post("/create_chat_completion", self.gateway)
        app.router.add_post("/v1/chat/completions", self.openai)
        app.router.add_post("/chat/completions", self.openai)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/models", self.models)
        app.router.add_get("/stats", self.get_stats)
        app.router.add_post("/stats/reset", self.post_reset)
        app.router.add_post("/config", self.post_config)
        app.router.add_get("/requests", self.get_requests)
        return app

    async def get_stats(self, request: web.Request) -> web.Response:
        return _json(self.stats())

    async def get_requests(self, request: web.Request) -> web.Response:
        return _json(list(self.recent))

    async def post_reset(self, request: web.Request) -> web.Response:
        self.reset_stats()
        self.planter = modes.NearDuplicatePlanter()  # its pairs count from here
        return _json(self.stats())

    async def post_config(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object")
            self.apply(changes)
        except (ValueError, TypeError) as exc:
            return _json({"detail": str(exc)}, 400)
        return _json(self.config.public())

    async def models(self, request: web.Request) -> web.Response:
        self._count(request.path)
        if (
            self.config.token
            and request.headers.get("Authorization") != f"Bearer {self.config.token}"
        ):
            return _json(
                {"error": {"message": "invalid api key", "type": "invalid_request_error"}}, 401
            )
        data = [
            {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "datagems"}
            for name in (MODEL_NAME, f"{MODEL_NAME}-large")
        ]
        return _json({"object": "list", "data": data})

    def _count(self, path: str) -> None:
        self.requests += 1
        self.by_path[path] = self.by_path.get(path, 0) + 1

    async def gateway(self, request: web.Request) -> web.Response:
        return await self._handle(request, openai=False)

    async def openai(self, request: web.Request) -> web.Response:
        return await self._handle(request, openai=True)

    async def _handle(self, request: web.Request, *, openai: bool) -> web.Response:
        self._count(request.path)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _json(
                {"detail": [{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"}]},
                422,
            )
        problem = _check_body(body)
        if problem:
            return _json(
                {"detail": [{"type": "value_error", "loc": ["body", "messages"], "msg": problem}]},
                422,
            )
        self._note(body)
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            semaphore = self._semaphore
            if semaphore is None:
                return await self._serve(request, body, openai)
            async with semaphore:
                return await self._serve(request, body, openai)
        finally:
            self.open -= 1

    def _note(self, body: dict[str, Any]) -> None:
        """What this request asked, for ``GET /requests`` (tests read seeds and bounds)."""
        fmt = body.get("response_format")
        form = fmt.get("type") if isinstance(fmt, dict) else None
        if isinstance(fmt, dict) and isinstance(fmt.get("json_schema"), dict):
            form = "json_schema strict" if fmt["json_schema"].get("strict") else "json_schema"
        elif isinstance(fmt, dict) and "schema" in fmt:
            form = "json_object schema"
        metadata = body.get("metadata")
        self.recent.append(
            {
                "seed": body.get(
                    "seed", metadata.get("seed") if isinstance(metadata, dict) else None
                ),
                "form": form,
                "maxTokens": body.get("max_tokens"),
                "temperature": body.get("temperature"),
                "params": sorted(
                    k
                    for k in body
                    if k
                    not in (
                        "messages",
                        "model",
                        "seed",
                        "metadata",
                        "response_format",
                        "max_tokens",
                        "temperature",
                        "authorization",
                    )
                ),
                "assistantTurn": modes.assistant_answer(body) is not None,
                "open": self.open + 1,
                "lastMessage": str(body["messages"][-1].get("content", ""))[-300:],
            }
        )

    async def _serve(
        self, request: web.Request, body: dict[str, Any], openai: bool
    ) -> web.Response:
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        try:
            config = self.config
            refused = modes.refuses(body, config, openai)
            if refused is not None:
                self.modes["refused"] += 1
                return refused
            await self._resumed.wait()
            config = self.config
            delay = config.latency_ms + (
                config.jitter_ms * self.rng.random() if config.jitter_ms else 0.0
            )
            runaway = 0
            if config.runaway_rate and self.rng.random() < config.runaway_rate:
                limit = body.get("max_tokens")
                runaway = limit if isinstance(limit, int) else modes.CONTEXT_TOKENS
                delay += runaway * config.token_latency_ms
                self.modes["runaway"] += 1
            if delay > 0:
                await asyncio.sleep(delay / 1000)
            if config.huge_answer_mb:
                self.modes["huge"] += 1
                return await modes.huge_answer(request, config.huge_answer_mb, openai)
            return self._answer(request, body, openai, runaway)
        finally:
            self.in_flight -= 1
            self.last_answer_at = time.time()

    def _answer(
        self, request: web.Request, body: dict[str, Any], openai: bool, runaway: int = 0
    ) -> web.Response:
        config = self.config
        roll = self.rng.random
        self.counter += 1
        counter = self.counter
        request_id = f"mock-{self.base_seed}-{counter}"
        if config.token:
            given = (
                request.headers.get("Authorization", "")
                if openai
                else f"Bearer {body.get('authorization') or ''}"
            )
            if given != f"Bearer {config.token}":
                self.faults["unauthorized"] += 1
                if openai:
                    return _json(
                        {"error": {"message": "invalid api key", "type": "invalid_request_error"}},
                        401,
                    )
                return _json(
                    {
                        "result": {
                            "REQUEST_ID": request_id,
                            "error": "unauthorized",
                            "status": "unauthorized",
                        },
                        **NODE_META,
                    }
                )
        if config.rate_limit_rate and roll() < config.rate_limit_rate:
            self.faults["rateLimited"] += 1
            if openai:
                return _json(
                    {
                        "error": {
                            "message": "rate limit exceeded",
                            "type": "rate_limit_error",
                            "code": "rate_limit_exceeded",
                        }
                    },
                    429,
                )
            return _json(
                {
                    "result": {
                        "REQUEST_ID": request_id,
                        "error": "rate limit exceeded",
                        "status": "rate_limited",
                    },
                    **NODE_META,
                }
            )
        if config.fail_rate and roll() < config.fail_rate:
            if openai or roll() < 0.5:
                self.faults["http500"] += 1
                if openai:
                    return _json(
                        {"error": {"message": "mock failure", "type": "server_error"}}, 500
                    )
                return _json({"detail": {"error": "mock failure", "status_code": 500}}, 500)
            self.faults["resultError"] += 1
            return _json(
                {
                    "result": {
                        "REQUEST_ID": request_id,
                        "error": "mock model failure",
                        "status": "failed",
                    },
                    **NODE_META,
                }
            )

        rng = random.Random(
            (self.base_seed * 1_000_003 + _request_seed(body)) * 1_000_033 + counter
        )
        schema = _schema_of(body)
        if schema is not None and _asks_for_a_schema(body, schema):
            schema = None  # a schema draft: answer a record schema, not an instance of this
        elif schema is None:
            schema = modes.schema_in_prompt(body)  # a record asked with the schema in text
        if config.seeded_answers:  # the seed and schema decide, as on a real server
            rng = modes.seeded_rng(
                self.base_seed, _request_seed(body), orjson.dumps(schema) if schema else b""
            )
            roll = rng.random
        copied = modes.assistant_answer(body) if config.copy_on_repair else None
        if copied is not None:
            self.modes["copied"] += 1
            text = copied
        elif config.echo_schema_rate and schema is not None and roll() < config.echo_schema_rate:
            self.modes["echoed"] += 1
            text = orjson.dumps(schema).decode()
        elif config.example_draft and schema is None:
            self.modes["exampleDrafts"] += 1
            text = modes.example_record_text()
        elif config.invalid_rate and roll() < config.invalid_rate:
            self.faults["invalidJson"] += 1
            text = f"Sure! Here is record number {counter}: a lovely item, nothing more to say."
        elif schema is not None:
            factory = self._factory(schema)
            if config.schema_violation_rate and roll() < config.schema_violation_rate:
                self.faults["schemaViolation"] += 1
                record = factory.violate(rng)
            else:
                record = (
                    self._near_duplicate(body, schema, rng) if config.near_duplicate_rate else None
                )
                record = record if record is not None else factory.make(rng)
                if isinstance(record, dict) and "label" in record:
                    _follow_label(record, body, schema)
                follow_values(record, body["messages"][-1].get("content", ""), schema)
            text = orjson.dumps(record).decode()
        else:
            # what the user asked for; the system prompt's own words ("user", "record")
            # would otherwise pick the theme
            asked = [m.get("content", "") for m in body["messages"] if m.get("role") == "user"]
            system = "\n".join(
                m.get("content", "") for m in body["messages"] if m.get("role") == "system"
            )
            prompt = "\n".join(asked) or system
            if _LABEL_PROMPT.search(system) and not _LABEL_PROMPT.search(prompt):
                prompt += "\nDataset mode: classification (a label per record)."
            drafted = draft_schema(prompt, rng)
            if PROPOSALS_KEY in system:  # the draft asks for per-record variables too
                drafted[PROPOSALS_KEY] = mock_proposals(drafted)
            text = orjson.dumps(drafted).decode()

        if config.control_chars_rate and copied is None and roll() < config.control_chars_rate:
            changed = modes.with_raw_newline(text)
            self.modes["controlChars"] += changed != text
            text = changed
        finish = "stop"
        if runaway:
            text, finish = modes.runaway_text(text, runaway), "length"
        prompt_tokens = sum(len(m.get("content", "")) for m in body["messages"]) // 4 + 1
        completion_tokens = runaway or len(text) // 4 + 1
        self.tokens_in += prompt_tokens
        self.tokens_out += completion_tokens
        model = body.get("model") if openai and isinstance(body.get("model"), str) else MODEL_NAME
        full = {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if openai:
            return _json(full)
        return _json(
            {
                "result": {
                    "REQUEST_ID": request_id,
                    "MODEL_NAME": model,
                    "TEXT_RESPONSE": text,
                    "FULL_OUTPUT": full,
                },
                **NODE_META,
            }
        )

    def _near_duplicate(
        self, body: dict[str, Any], schema: dict[str, Any], rng: random.Random
    ) -> dict[str, Any] | None:
        """``nearDuplicateRate``: a near copy of an earlier answer, or None (then the
        fresh record made instead is remembered as a source)."""
        key = orjson.dumps(schema)
        match = _INDEX_IN_TEXT.search(str(body["messages"][-1].get("content", "")))
        index = int(match.group(1)) - 1 if match else None
        if rng.random() < self.config.near_duplicate_rate:
            record = self.planter.plant(key, index, schema, rng)
            if record is not None:
                self.modes["nearDuplicates"] += 1
                return record
        record = self._factory(schema).make(rng)
        self.planter.remember(key, index, record)
        return record

    def _factory(self, schema: dict[str, Any]) -> RecordFactory:
        key = orjson.dumps(schema)
        factory = self.factories.get(key)
        if factory is None:
            if len(self.factories) >= MAX_FACTORIES:
                self.factories.clear()
            factory = self.factories[key] = RecordFactory(schema)
        return factory


MOCK_KEY = web.AppKey("mock_llm", MockLLM)


def _check_body(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for message in messages:
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("content"), str)
            or not message["content"]
        ):
            return "every message needs a non-empty string content"
    return None


def _follow_label(record: dict[str, Any], body: dict[str, Any], schema: dict[str, Any]) -> None:
    """Dataset mode: use the label the prompt asks for, when the schema allows it."""
    match = _LABEL_IN_TEXT.search(body["messages"][-1].get("content", ""))
    if not match:
        return
    try:
        wanted = orjson.loads(match.group(1))
    except orjson.JSONDecodeError:
        return
    label = (schema.get("properties") or {}).get("label")
    if isinstance(label, dict) and wanted in (label.get("enum") or ()):
        record["label"] = wanted


def _schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    schema = fmt.get("schema")
    if isinstance(schema, dict):
        return schema
    wrapped = fmt.get("json_schema")
    if isinstance(wrapped, dict) and isinstance(wrapped.get("schema"), dict):
        return wrapped["schema"]
    return None


_META_IDS = re.compile(r"^https?://json-schema\.org/(draft[-/][^/]+/)?schema#?$")
_DRAFT_PROMPT = re.compile(
    r"\b(design|draft|generate|create|produce|write|return|output)\w*\s+"
    r"(?:(?:a|an|the|one|only)\s+)?(?:valid\s+)?(?:json\s*schema|schema)",
    re.IGNORECASE,
)
_LABEL_PROMPT = re.compile(r"\b(label|labels|labelled|labeled|classification)\b", re.IGNORECASE)


def _asks_for_a_schema(body: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Is this a schema-draft request? Its answer format is a JSON Schema meta-schema (by
    ``$id``, ``$ref``, ``$dynamicAnchor: meta`` or ``$vocabulary``), or its system prompt
    asks for a schema (``design ... JSON Schema``)."""
    for name in ("$id", "$ref"):
        value = schema.get(name)
        if isinstance(value, str) and _META_IDS.match(value.strip()):
            return True
    if schema.get("$dynamicAnchor") == "meta" or isinstance(schema.get("$vocabulary"), dict):
        return True
    system = " ".join(m.get("content", "") for m in body["messages"] if m.get("role") == "system")
    return bool(_DRAFT_PROMPT.search(system))


def _request_seed(body: dict[str, Any]) -> int:
    metadata = body.get("metadata")
    for value in (metadata.get("seed") if isinstance(metadata, dict) else None, body.get("seed")):
        if isinstance(value, int) and not isinstance(value, bool):
            return value & 0x7FFFFFFF
    last = body["messages"][-1].get("content", "")
    match = _SEED_IN_TEXT.search(last) or _INDEX_IN_TEXT.search(last)
    return int(match.group(1)) & 0x7FFFFFFF if match else 0


async def start_mock(
    host: str = "127.0.0.1", port: int = 0, **options: Any
) -> tuple[web.AppRunner, str]:
    """Start the mock in the running event loop; returns the runner and its base URL.

    ``options`` are ``MockConfig`` fields (``latency_ms``, ``fail_rate``, ...). Stop it with
    ``await runner.cleanup()``. The ``MockLLM`` is ``runner.app[MOCK_KEY]``.
    """
    mock = MockLLM(MockConfig(**options))
    runner = web.AppRunner(mock.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound}"


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per call")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="random extra latency, 0..N")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="HTTP 500 / result.error")
    parser.add_argument("--invalid-rate", type=float, default=0.0, help="answers that are not JSON")
    parser.add_argument(
        "--schema-violation-rate", type=float, default=0.0, help="JSON that breaks the schema"
    )
    parser.add_argument(
        "--rate-limit-rate", type=float, default=0.0, help="rate_limited (gateway) / 429 (OpenAI)"
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=0, help="calls served at once (0 = unlimited)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible answers")
    parser.add_argument("--token", default=None, help="require this token (body / bearer)")
    parser.add_argument(
        "--mode",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a behaviour of real servers (see datagems.mock.modes), e.g. refuseJsonSchema=true",
    )


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = {
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "fail_rate": args.fail_rate,
        "invalid_rate": args.invalid_rate,
        "schema_violation_rate": args.schema_violation_rate,
        "rate_limit_rate": args.rate_limit_rate,
        "max_concurrency": args.max_concurrency,
        "seed": args.seed,
        "token": args.token,
    }
    try:
        for item in args.mode:
            name, _, value = item.partition("=")
            if name not in CONFIG_NAMES:
                raise ValueError(f"unknown mode {name!r}; known: {', '.join(CONFIG_NAMES)}")
            try:
                options[CONFIG_NAMES[name]] = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise ValueError(f"{name}: {value!r} is not a JSON value") from None
        MockConfig(**options).check()
    except ValueError as exc:
        print(f"datagems mock-llm: {exc}", flush=True)
        return 2
    asyncio.run(_serve(args.host, args.port, options))
    return 0


async def _serve(host: str, port: int, options: dict[str, Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runner, url = await start_mock(host, port, **options)
    print(f"mock-llm at {url}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
