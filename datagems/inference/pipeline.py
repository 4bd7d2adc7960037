"""One record: prompt, call, extract, validate, with bounded retries (``generate``).

The one record pipeline: the job's records (``datagems.actors.record``, on the replica's
call loop) and the preview of a draft (``datagems.web.api_drafts``) both run it, so a
change to the prompts, the extraction or the validation reaches both. What the engine
watches of each call (its pacing, the writer's view of a retry) comes in through a
``CallWatcher``; the preview watches nothing.

Per-record rules (retries by failure kind):
- transport error, timeout, 5xx or ``rate_limited``: the same question again after an
  exponential backoff with jitter (``again``); a timed-out call is counted as abandoned
  (the server may still be computing it, and its tokens are not reported to us);
- not JSON, cut at ``max_tokens`` (``length``: the next sample may run twice as long) or
  the schema echoed back (``echoed_schema``): a fresh sample, new seed, no echo of the
  rejected answer (``resample``);
- a schema violation: a fresh sample whose question gains one short line naming the
  errors, never the answer (``feedback``);
- anything else (a 4xx, a provider error): the record fails at once;
- at most ``attempts`` calls; then the record fails with the last reason and a short
  message. A record is never filled with made-up values.
Every attempt is recorded (``RecordOutcome.tries``: what was done, its seed, why it was
rejected with its error and its raw answer (cut at ``RAW_KEPT_BYTES``), its tokens and
latency); a refusal of the structured-output form is handled
by the provider (``datagems.inference.capabilities``) and is not an attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from datagems.errors import InferenceError

if TYPE_CHECKING:
    from datagems.inference import Provider
    from datagems.inference.generation import Sampling
    from datagems.inference.providers import Completion
    from datagems.models import JobDetails
    from datagems.quality.conditioning import Conditioning
    from datagems.schema.validate import RecordValidator

logger = logging.getLogger(__name__)
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 8.0
CONGESTION_REASONS = frozenset({"rate_limited", "timeout"})


class RecordOutcome(BaseModel):
    """A record is finished: ok, or failed with a named reason."""

    model_config = ConfigDict(frozen=True)

    i: int
    ok: bool
    data: Any = None
    error: str | None = None
    reason: str | None = None
    attempts: int = 1
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    abandoned: int = 0  # calls given up on timeout (the server may have computed them)
    tries: tuple[dict[str, Any], ...] = ()  # per attempt: what was done, and why it failed


@dataclass(frozen=True)
class RecordCalls:
    """What every record of one job needs (shared, read-only): ``record_calls`` builds it."""

    job_id: str
    details: JobDetails
    validator: RecordValidator
    fields: tuple[str, ...]  # the schema's field order: records are kept in it
    total: int
    attempts: int
    provider: Provider  # one async client (one connection pool) for the job's records
    sampling: Sampling | None = None  # max_tokens, temperature, the job's other params
    round: int = 0  # the job's retry round: fresh seeds in each
    constrained: dict[str, Any] | None = None  # the schema sent for constrained decoding
    conditioning: Conditioning | None = None  # the job's variables and seed rows (quality)


def record_calls(
    details: JobDetails,
    provider: Provider,
    *,
    job_id: str,
    total: int,
    attempts: int,
    max_tokens: int,
    round_: int = 0,
    conditioning: Conditioning | None = None,
) -> RecordCalls:
    """What the records of ``details`` need: its schema checked and compiled once, its
    field order, the sampling of its calls (``max_tokens`` caps the schema's estimate),
    the schema sent for constrained decoding and the job's variables and seed rows
    (``conditioning``, ``datagems.quality``). ``SchemaInvalid`` when unusable."""
    from datagems.inference.constrain import constrained_schema
    from datagems.inference.generation import sampling_for
    from datagems.schema.check import field_order
    from datagems.schema.validate import compile_validator

    schema = details.json_schema
    return RecordCalls(
        job_id=job_id,
        details=details,
        validator=compile_validator(schema),
        fields=field_order(schema),
        total=total,
        attempts=attempts,
        provider=provider,
        sampling=sampling_for(schema, details.inference.parameters, max_tokens),
        round=round_,
        constrained=constrained_schema(schema),
        conditioning=conditioning,
    )


class CallWatcher(Protocol):
    """What the caller of ``generate`` is told of each call (the engine paces its calls
    and shows a retry's state; the preview watches nothing: ``UNWATCHED``)."""

    def call_started(self) -> int:
        """A call starts; returns the calls in flight with it (for the pacer)."""
        ...

    def call_ended(self) -> None: ...

    def answered(self, completion: Completion, started_with: int) -> None: ...

    def congested(self) -> None: ...

    def retrying(self, index: int, attempt: int, reason: str) -> None: ...


class _Unwatched:
    def call_started(self) -> int:
        return 1

    def call_ended(self) -> None:
        pass

    def answered(self, completion: Completion, started_with: int) -> None:
        pass

    def congested(self) -> None:
        pass

    def retrying(self, index: int, attempt: int, reason: str) -> None:
        pass


UNWATCHED: CallWatcher = _Unwatched()


RAW_KEPT_BYTES = 4096  # of a rejected answer, what its attempt keeps (the rest is cut)
ERROR_KEPT_CHARS = 300  # of an attempt's error message


def _kept_raw(text: str) -> dict[str, Any]:
    """A rejected answer as an attempt keeps it: at most ``RAW_KEPT_BYTES`` of UTF-8, and
    when cut, ``rawCut`` with the answer's full size (the records view says it is cut)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= RAW_KEPT_BYTES:
        return {"raw": text}
    kept = data[:RAW_KEPT_BYTES].decode("utf-8", "ignore")
    return {"raw": kept, "rawCut": True, "rawBytes": len(data)}


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 0.25 s, 0.5 s, 1 s, ... capped at 8 s."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)


def _looks_like_schema(data: Any, schema: dict[str, Any]) -> bool:
    """Did the model answer with the schema (or a piece of it) instead of a record?"""
    if not isinstance(data, dict):
        return False
    own = schema.get("properties") if isinstance(schema, dict) else None
    own_names = set(own) if isinstance(own, dict) else set()
    if isinstance(data.get("properties"), dict) and "properties" not in own_names:
        return True
    return "$schema" in data and "$schema" not in own_names


async def generate(work: RecordCalls, index: int, watch: CallWatcher = UNWATCHED) -> RecordOutcome:
    """The calls of one record, by the per-record rules above."""
    from datagems.inference import prompts
    from datagems.inference.generation import record_call, record_question
    from datagems.schema.check import in_field_order

    question = record_question(
        work.details,
        job_id=work.job_id,
        index=index,
        total=work.total,
        round_=work.round,
        constrained=work.constrained,
        conditioning=work.conditioning,
    )
    messages = base = question.messages
    record_seed, schema = question.seed, question.schema
    sampling = work.sampling
    max_tokens = sampling.max_tokens if sampling else None
    tokens_in = tokens_out = abandoned = 0
    latency = 0.0
    reason, error = "transport", "not attempted"
    tries: list[dict[str, Any]] = []
    action = "first"
    attempt = 0
    while attempt < work.attempts:
        attempt += 1
        if attempt > 1:
            watch.retrying(index, attempt, reason)
        seed = prompts.call_seed(record_seed, attempt)
        attempt_log: dict[str, Any] = {"n": attempt, "do": action, "seed": seed}
        tries.append(attempt_log)
        started_with = watch.call_started()
        try:
            completion = await work.provider.acomplete(
                messages, **record_call(sampling, schema, seed=seed, max_tokens=max_tokens)
            )
        except InferenceError as exc:
            reason, error = exc.reason, exc.message
            attempt_log["reason"] = reason
            attempt_log["error"] = error[:ERROR_KEPT_CHARS]
            if exc.reason == "timeout":
                abandoned += 1
            if exc.reason in CONGESTION_REASONS or exc.reason.startswith("http_5"):
                watch.congested()
            if not exc.retryable:
                break
            action = "again"
            if attempt < work.attempts:
                await asyncio.sleep(backoff_seconds(attempt))
            continue
        finally:
            watch.call_ended()
        watch.answered(completion, started_with)
        tokens_in += completion.tokens_in or 0
        tokens_out += completion.tokens_out or 0
        latency += completion.latency_ms
        attempt_log["tokensIn"] = completion.tokens_in
        attempt_log["tokensOut"] = completion.tokens_out
        attempt_log["ms"] = round(completion.latency_ms, 1)
        if completion.finish_reason and completion.finish_reason != "stop":
            attempt_log["finish"] = completion.finish_reason
        cut = completion.finish_reason == "length"
        try:
            data = completion.value()
        except InferenceError as exc:
            if cut:
                reason, error = "length", _cut_message(max_tokens)
                max_tokens = _longer(max_tokens)
            else:
                reason, error = "invalid_json", exc.message
            attempt_log.update(reason=reason, error=error[:ERROR_KEPT_CHARS])
            attempt_log.update(_kept_raw(completion.text))
            messages, action = base, "resample"
            continue
        problems = work.validator.errors(data)
        if problems:
            if _looks_like_schema(data, work.details.json_schema):
                reason, error = "echoed_schema", "the answer is the schema, not a record"
                messages, action = base, "resample"
            elif cut:
                reason, error = "length", _cut_message(max_tokens)
                max_tokens = _longer(max_tokens)
                messages, action = base, "resample"
            else:
                reason = "schema_violation"
                error = "; ".join(problems[:3])[:300]
                messages, action = prompts.feedback_messages(base, error), "feedback"
            attempt_log.update(reason=reason, error=error[:ERROR_KEPT_CHARS])
            attempt_log.update(_kept_raw(completion.text))
            continue
        attempt_log["reason"] = "ok"
        return RecordOutcome(
            i=index,
            ok=True,
            data=in_field_order(data, work.fields),
            attempts=attempt,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=latency,
            abandoned=abandoned,
            tries=tuple(tries),
        )
    return RecordOutcome(
        i=index,
        ok=False,
        error=f"{reason}: {error}"[:500],
        reason=reason,
        attempts=attempt,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        latency_ms=latency,
        abandoned=abandoned,
        tries=tuple(tries),
    )


def _cut_message(max_tokens: int | None) -> str:
    bound = f" of {max_tokens} tokens" if max_tokens else ""
    return f"the answer was cut at the max_tokens bound{bound} (finish_reason: length)"


def _longer(max_tokens: int | None) -> int | None:
    """After a cut answer, the next sample may run twice as long (still bounded)."""
    from datagems.inference.generation import HARD_MAX_TOKENS

    return min(HARD_MAX_TOKENS, max_tokens * 2) if max_tokens else None
