"""The limit: a plain aiohttp client keeping C record requests in flight against a gateway.

Each request is the body a replica sends for one record (the same prompt, schema and
seed, built by the same code), and each answer is parsed the way a replica parses it
(the node envelope, then the JSON record in ``TEXT_RESPONSE``). Nothing else: no actors,
no validation, no result file, no CStore. Its records/s is the machine's limit for a
gateway at that latency and that concurrency, measured in the same run as the replica.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from datagems.inference import extract_json, prompts
from datagems.inference.constrain import constrained_schema
from datagems.inference.generation import record_call, record_question, sampling_for
from datagems.inference.providers import GatewayProvider
from datagems.models import JobDetails
from datagems.settings import Settings

# a replica's default cap of max_tokens (DATAGEN_RECORD_MAX_TOKENS)
DEFAULT_RECORD_MAX_TOKENS: int = next(
    f.default for f in dataclasses.fields(Settings) if f.name == "record_max_tokens"
)

PATH = "/create_chat_completion"


@dataclass(frozen=True)
class LoadResult:
    requests: int
    ok: int
    errors: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def record_bodies(
    details: JobDetails, total: int, *, max_tokens_cap: int = DEFAULT_RECORD_MAX_TOKENS
) -> list[bytes]:
    """The request bodies of the first calls of records ``0..total-1`` of ``details``, built
    by the replica's own code (``record_question``, ``record_call``, the provider's
    ``bodies``): the same question, constrained schema, seed, sampling and max_tokens."""
    sampling = sampling_for(details.json_schema, details.inference.parameters, max_tokens_cap)
    constrained = constrained_schema(details.json_schema)
    provider = GatewayProvider("http://127.0.0.1:1")
    try:
        bodies = []
        for index in range(total):
            question = record_question(
                details, job_id=details.id, index=index, total=total, constrained=constrained
            )
            seed = prompts.call_seed(question.seed, 1)
            call = record_call(sampling, question.schema, seed=seed)
            bodies.append(orjson.dumps(provider.bodies(question.messages, **call)()))
        return bodies
    finally:
        provider.close()


def _parse(payload: bytes) -> Any:
    result = orjson.loads(payload)["result"]
    text = result["TEXT_RESPONSE"]
    if isinstance(text, list):
        text = text[0]
    return extract_json(text)


async def _drive(url: str, bodies: list[bytes], in_flight: int) -> LoadResult:
    ok = errors = 0
    queue = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=in_flight, limit_per_host=in_flight)
    timeout = aiohttp.ClientTimeout(total=120)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal ok, errors
            while queue:
                body = queue.pop()
                try:
                    async with session.post(url + PATH, data=body, headers=headers) as response:
                        payload = await response.read()
                    if response.status == 200:
                        _parse(payload)
                        ok += 1
                    else:
                        errors += 1
                except (TimeoutError, aiohttp.ClientError, ValueError, KeyError):
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        seconds = time.perf_counter() - started
    return LoadResult(requests=len(bodies), ok=ok, errors=errors, seconds=seconds)


def measure_limit(
    url: str, details: JobDetails, total: int, in_flight: int, timeout: float
) -> LoadResult:
    """``total`` record requests with ``in_flight`` outstanding; bounded by ``timeout``."""
    bodies = record_bodies(details, total)

    async def bounded() -> LoadResult:
        return await asyncio.wait_for(_drive(url, bodies, in_flight), timeout)

    return asyncio.run(bounded())
