"""What bounds one record call: ``max_tokens`` from the schema, and the job's sampling.

``max_tokens`` is estimated from the size of a record the schema allows (field names,
string bounds, enums, formats, array sizes), with a margin, and capped
(``DATAGEN_RECORD_MAX_TOKENS``); a job may set its own (``inferenceParams.max_tokens``),
still bounded by ``HARD_MAX_TOKENS``. Without a bound, a small model that loses its way
generates to the end of its context (minutes on a one-slot server, blocking every other
call). The job's other ``inferenceParams`` (temperature, top_p, penalties, stop...) are
applied to every record call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datagems.models import JobDetails
    from datagems.quality.conditioning import Conditioning

DEFAULT_RECORD_TEMPERATURE = 0.8
MIN_MAX_TOKENS = 64
HARD_MAX_TOKENS = 8192
MARGIN = 1.5
_CHARS_PER_TOKEN = 3.0
_FORMAT_CHARS = {
    "email": 32,
    "date": 10,
    "date-time": 25,
    "time": 10,
    "uri": 60,
    "url": 60,
    "uuid": 36,
    "ipv4": 15,
    "ipv6": 39,
    "hostname": 30,
}
_FREE_STRING_CHARS = 80
_DEFAULT_ITEMS = 4
_PARAM_NAMES = {
    "top_p": "top_p",
    "topP": "top_p",
    "top_k": "top_k",
    "topK": "top_k",
    "min_p": "min_p",
    "minP": "min_p",
    "frequency_penalty": "frequency_penalty",
    "frequencyPenalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "presencePenalty": "presence_penalty",
    "repeat_penalty": "repeat_penalty",
    "repeatPenalty": "repeat_penalty",
    "stop": "stop",
}


@dataclass(frozen=True)
class Sampling:
    """The bounds and sampling parameters of a job's record calls."""

    max_tokens: int
    temperature: float | None = DEFAULT_RECORD_TEMPERATURE
    params: dict[str, Any] = field(default_factory=dict)
    max_tokens_from: str = "schema"  # schema | job


def _tokens(chars: float) -> float:
    return chars / _CHARS_PER_TOKEN + 1


def _value_tokens(schema: Any, depth: int = 0) -> float:
    """Tokens of the largest likely value of ``schema`` (JSON punctuation included)."""
    if not isinstance(schema, dict) or depth > 12:
        return 8
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return max(_tokens(len(str(v)) + 2) for v in schema["enum"])
    if "const" in schema:
        return _tokens(len(str(schema["const"])) + 2)
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return max(_value_tokens(option, depth + 1) for option in options)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    properties = schema.get("properties")
    if kind == "object" or isinstance(properties, dict):
        total = 2.0
        for name, sub in (properties or {}).items():
            total += _tokens(len(str(name)) + 4) + _value_tokens(sub, depth + 1)
        return total
    if kind == "array":
        items = schema.get("items")
        count = schema.get("maxItems")
        if not isinstance(count, int) or count < 0:
            count = max(_DEFAULT_ITEMS, int(schema.get("minItems") or 0))
        return 2 + min(count, 64) * (_value_tokens(items, depth + 1) + 1)
    if kind in ("integer", "number"):
        return 6
    if kind == "boolean":
        return 2
    if kind == "null":
        return 2
    chars = schema.get("maxLength")
    if not isinstance(chars, int) or chars <= 0:
        chars = _FORMAT_CHARS.get(str(schema.get("format")), _FREE_STRING_CHARS)
    return _tokens(min(chars, 20_000) + 2)


def max_tokens_for(schema: dict[str, Any], cap: int) -> int:
    """``max_tokens`` for one record of ``schema``: its estimate with a margin, capped."""
    estimate = int(_value_tokens(schema) * MARGIN) + 16
    return max(MIN_MAX_TOKENS, min(cap, estimate))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def sampling_for(schema: dict[str, Any], parameters: dict[str, Any] | None, cap: int) -> Sampling:
    """The record calls' bounds: the job's ``inferenceParams`` over the schema's estimate."""
    parameters = parameters or {}
    override = parameters.get("max_tokens", parameters.get("maxTokens"))
    if isinstance(override, int) and not isinstance(override, bool) and override > 0:
        max_tokens, source = min(override, HARD_MAX_TOKENS), "job"
    else:
        max_tokens, source = max_tokens_for(schema, cap), "schema"
    temperature = _number(parameters.get("temperature"))
    params = {
        _PARAM_NAMES[name]: value
        for name, value in parameters.items()
        if name in _PARAM_NAMES and value is not None
    }
    return Sampling(
        max_tokens=max_tokens,
        temperature=DEFAULT_RECORD_TEMPERATURE if temperature is None else temperature,
        params=params,
        max_tokens_from=source,
    )


@dataclass(frozen=True)
class RecordQuestion:
    """What every call of one record starts from: the question, the record's seed (each
    attempt's is derived from it) and the schema sent (the constrained form)."""

    messages: list[dict[str, str]]
    seed: int
    schema: dict[str, Any]


def record_question(
    details: JobDetails,
    *,
    job_id: str,
    index: int,
    total: int,
    round_: int = 0,
    constrained: dict[str, Any] | None = None,
    conditioning: Conditioning | None = None,
) -> RecordQuestion:
    """Record ``index``'s question, as the replica's records and the load generator ask it
    (with the record's seed row and variable values when ``conditioning`` is given)."""
    from datagems.inference import prompts

    return RecordQuestion(
        messages=prompts.record_messages(
            details=details,
            index=index,
            total=total,
            round_=round_,
            conditioning=conditioning,
        ),
        seed=prompts.record_seed(job_id, index, round_),
        schema=constrained if constrained is not None else details.json_schema,
    )


def record_call(
    sampling: Sampling | None,
    schema: dict[str, Any],
    *,
    seed: int,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The keyword arguments of one record call (``Provider.acomplete`` / ``bodies``) besides
    its messages: the schema sent (the constrained form), the seed, the job's sampling and
    ``max_tokens`` (the sampling's unless a retry set a longer one). The replica's records
    and the benchmark's load generator both send what this says."""
    if max_tokens is None and sampling is not None:
        max_tokens = sampling.max_tokens
    return {
        "schema": schema,
        "seed": seed,
        "temperature": sampling.temperature if sampling else None,
        "max_tokens": max_tokens,
        "params": sampling.params if sampling else None,
    }
