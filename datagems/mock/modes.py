"""Behaviours of real model servers, as modes of the mock gateway (issue 14).

Each was seen on a real server (llama-cpp-python 0.3.36 serving SmolLM2-135M-Instruct, or
an attack on a fleet) and each has a test. They are off by default and set like the other
faults (``POST /config`` with camelCase names, or ``start_mock(...)`` keywords):

- ``refuseJsonSchema``: ``response_format.type == "json_schema"`` is refused with HTTP 500
  and the server's own validation message (``Input should be 'text' or 'json_object'``);
- ``echoSchemaRate``: the answer is the schema it was sent, not a record;
- ``exampleDraft``: a draft call (no schema) is answered with an example record;
- ``runawayRate``: the model loses its way: it generates to ``max_tokens`` (or, without
  one, to the end of a 4096-token context, ``tokenLatencyMs`` per token) and stops with
  ``finish_reason: length``;
- ``copyOnRepair``: a conversation that holds an earlier assistant answer gets that answer
  back, byte for byte;
- ``controlCharsRate``: a string of the record carries a raw newline (grammar output);
- ``seededAnswers``: the answer depends only on the request's seed and schema (the same
  seed gets the same answer, as on a real server), faults included;
- ``hugeAnswerMb``: the answer is a JSON envelope of that many MB, streamed;
- ``nearDuplicateRate``: the answer is an earlier answer to the same schema, its text
  the same, one number moved by one within its bounds (or, with no such number, one
  character of its longest free-text string changed) (a small model repeating itself:
  10 of 23 records in one city, names echoing the title); ``GET /stats`` lists the
  planted pairs of record indices (``plantedPairs``);
- ``paused``: the server stops answering; calls wait, unanswered, until it is unpaused
  (a stalled server; tests use it to keep jobs running while they look);
- one request at a time is ``maxConcurrency: 1`` (``maxOpen`` in the stats tells how many
  calls were queued at once).
"""

from __future__ import annotations

import copy
import random
import re
from collections import deque
from typing import Any

import orjson
from aiohttp import web

CONTEXT_TOKENS = 4096
LLAMA_CPP_REFUSAL = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', "
    "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
)
EXAMPLE_RECORD = {
    "full_name": "John Smith",
    "age": 34,
    "email": "john.smith@example.com",
    "city": "New York",
    "member": True,
}
_STRING_VALUE = re.compile(r'(":\s*"[^"\\]{2,}?)( )([^"\\]*")')


def refuses(body: dict[str, Any], config: Any, openai: bool) -> web.Response | None:
    """``refuseJsonSchema``: the 500 llama-cpp-python answers a ``json_schema`` format."""
    fmt = body.get("response_format")
    if not config.refuse_json_schema or not isinstance(fmt, dict):
        return None
    if fmt.get("type") != "json_schema":
        return None
    error = {"message": LLAMA_CPP_REFUSAL, "type": "internal_server_error"}
    payload = {"error": error} if openai else {"detail": {"error": LLAMA_CPP_REFUSAL}}
    return web.Response(body=orjson.dumps(payload), status=500, content_type="application/json")


def assistant_answer(body: dict[str, Any]) -> str | None:
    """The last assistant turn of the conversation, when there is one."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "assistant":
            content = message.get("content")
            return content if isinstance(content, str) else None
    return None


_PROMPT_SCHEMA = "JSON Schema of one record:\n"


def schema_in_prompt(body: dict[str, Any]) -> dict[str, Any] | None:
    """A record request sent without a schema in ``response_format`` (a server that takes
    ``json_object`` only, or none): the schema in its prompt, as a model would read it."""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str) or _PROMPT_SCHEMA not in content:
            continue
        line = content.split(_PROMPT_SCHEMA, 1)[1].split("\n", 1)[0]
        try:
            found = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        return found if isinstance(found, dict) else None
    return None


def example_record_text() -> str:
    return orjson.dumps(EXAMPLE_RECORD).decode()


def with_raw_newline(text: str) -> str:
    """The record's text with a raw newline inside its first string value of two words."""
    return _STRING_VALUE.sub(lambda m: m.group(1) + "\n" + m.group(3), text, count=1)


def runaway_text(text: str, tokens: int) -> str:
    """What a lost model writes: the record's start, then filler up to ``tokens``."""
    filler = " and" * max(0, tokens - len(text) // 4)
    return text[: max(1, len(text) // 2)] + filler


def seeded_rng(base_seed: int, request_seed: int, schema_key: bytes) -> random.Random:
    """The rng of ``seededAnswers``: the seed and schema decide the answer, nothing else."""
    return random.Random(f"{base_seed}:{request_seed}:{schema_key.hex()}")


async def huge_answer(request: web.Request, megabytes: float, openai: bool) -> web.StreamResponse:
    """A valid envelope whose text is ``megabytes`` MB, streamed in 64 KiB chunks (the mock
    never holds it whole)."""
    size = int(megabytes * 1024 * 1024)
    chunk = b"x" * 65536
    head = b'{"choices":[{"index":0,"message":{"role":"assistant","content":"'
    tail = b'"},"finish_reason":"stop"}]}'
    if not openai:
        head = b'{"result":{"REQUEST_ID":"huge","FULL_OUTPUT":' + head
        tail = tail + b"}}"
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()  # no Content-Length: only a capped read stops it
    await response.prepare(request)
    await response.write(head)
    sent = 0
    while sent < size:
        part = chunk[: min(len(chunk), size - sent)]
        try:
            await response.write(part)
        except (ConnectionResetError, RuntimeError):
            return response  # the client stopped reading: as it should
        sent += len(part)
    await response.write(tail)
    await response.write_eof()
    return response


PLANT_SOURCES_KEPT = 64  # earlier answers per schema a near-duplicate may copy
PLANTED_KEPT = 1000
_TEXT_SKIP = ("enum", "const", "format", "pattern")


class NearDuplicatePlanter:
    """``nearDuplicateRate``: answers that nearly copy an earlier one (same schema)."""

    def __init__(self) -> None:
        self.sources: dict[bytes, deque[tuple[int | None, dict[str, Any]]]] = {}
        self.planted: list[list[int]] = []

    def remember(self, key: bytes, index: int | None, record: Any) -> None:
        if isinstance(record, dict):
            kept = self.sources.setdefault(key, deque(maxlen=PLANT_SOURCES_KEPT))
            kept.append((index, copy.deepcopy(record)))

    def plant(
        self, key: bytes, index: int | None, schema: dict[str, Any], rng: random.Random
    ) -> dict[str, Any] | None:
        """A near copy of an earlier answer of another record; None when there is none."""
        choices = [(i, r) for i, r in self.sources.get(key, ()) if i != index or i is None]
        if not choices:
            return None
        source_index, source = rng.choice(choices)
        record = copy.deepcopy(source)
        if not _nudge_a_number(record, schema):
            _nudge_longest_text(record, schema)
        if source_index is not None and index is not None and len(self.planted) < PLANTED_KEPT:
            self.planted.append([source_index, index])
        return record


def _nudge_a_number(record: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Move one integer of the record by one, within its schema's bounds."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    props = props if isinstance(props, dict) else {}
    for name, value in record.items():
        spec = props.get(name)
        if not isinstance(spec, dict) or isinstance(value, bool) or not isinstance(value, int):
            continue
        if any(k in spec for k in ("enum", "const", "multipleOf")):
            continue
        for moved in (value + 1, value - 1):
            low, high = spec.get("minimum"), spec.get("maximum")
            if (low is None or moved >= low) and (high is None or moved <= high):
                record[name] = moved
                return True
    return False


def _nudge_longest_text(record: dict[str, Any], schema: dict[str, Any]) -> None:
    """Change the last character of the record's longest free-text string (a field the
    schema gives no enum, format or pattern), so it stays valid and is not an exact copy."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    props = props if isinstance(props, dict) else {}
    best: str | None = None
    for name, value in record.items():
        spec = props.get(name)
        if not isinstance(value, str) or len(value) < 8:
            continue
        if isinstance(spec, dict) and any(k in spec for k in _TEXT_SKIP):
            continue
        if isinstance(spec, dict) and isinstance(spec.get("maxLength"), int):
            continue
        if best is None or len(value) > len(record[best]):
            best = name
    if best is not None:
        text = record[best]
        last = text[-1]
        record[best] = text[:-1] + ("!" if last != "!" else "?")
