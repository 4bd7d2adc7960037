"""Records: one record, one inference call (plus bounded retries), then its outcome.

A record runs as a coroutine on the replica's ``CallLoop`` (one asyncio loop on one
thread, one keep-alive connection pool per job), not as a thread of its own: measured on
this machine, a thread per record with a blocking client spent most of a core on thread
switches and client locks and reached a third of the gateway's limit, while the loop
reaches most of it (``BENCHMARKS.md``). It keeps the actor's contract: it is started by
its job actor, never waits on another actor, sends its outcome up by ``tell``, and ends.

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
rejected, its tokens and latency); a refusal of the structured-output form is handled
by the provider (``datagems.inference.capabilities``) and is not an attempt.
The outcome goes up to the job actor; a retry's state goes to the writer (the job actor
tells the writer when records start). A cancelled record (its job cancelled or stopping)
sends nothing: its job has already forgotten it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

from datagems.actors.base import Slots
from datagems.actors.messages import RecordOutcome, RecordStateChanged
from datagems.actors.pace import LatencyPacer
from datagems.errors import InferenceError

if TYPE_CHECKING:
    from datagems.actors.job import JobActor
    from datagems.actors.writer import CStoreWriter
    from datagems.inference import Provider
    from datagems.inference.generation import Sampling
    from datagems.models import JobDetails
    from datagems.quality.conditioning import Conditioning
    from datagems.schema.validate import RecordValidator

logger = logging.getLogger(__name__)
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 8.0
CONGESTION_REASONS = frozenset({"rate_limited", "timeout"})
CLOSE_SECONDS = 2.0  # at stop, how long connections may take to close


class CallLoop:
    """The replica's one asyncio loop, on one daemon thread, where every record runs.

    Job actors ``submit`` records and may ``cancel`` the futures they get back; they never
    wait on them (the outcome comes back by ``tell``). ``stop`` cancels what is left.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name="calls")

    def start(self) -> CallLoop:
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            # what is left: clients closing (let them finish), records of stopped jobs
            tasks = asyncio.all_tasks(self._loop)
            if tasks:
                self._loop.run_until_complete(asyncio.wait(tasks, timeout=CLOSE_SECONDS))
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def ping(self) -> str:
        async def pong() -> str:
            return "pong"

        return self.submit(pong()).result(timeout=5)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)


@dataclass(frozen=True)
class RecordJob:
    """What every record of one job needs (shared, read-only)."""

    job_id: str
    owner: str  # whose range: this peer, or the dead peer it took over from
    details: JobDetails
    validator: RecordValidator
    fields: tuple[str, ...]  # the schema's field order: records are kept in it
    total: int
    attempts: int
    provider: Provider  # one async client (one connection pool) for the job's records
    pacer: Slots  # told of every call's outcome: it adapts the in-flight level
    job: pykka.ActorRef[JobActor]
    writer: pykka.ActorRef[CStoreWriter]
    sampling: Sampling | None = None  # max_tokens, temperature, the job's other params
    pace: LatencyPacer | None = None  # the job's in-flight level, following latency
    round: int = 0  # the job's retry round: fresh seeds in each
    constrained: dict[str, Any] | None = None  # the schema sent for constrained decoding
    conditioning: Conditioning | None = None  # the job's variables and seed rows (quality)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 0.25 s, 0.5 s, 1 s, ... capped at 8 s."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)


async def run_record(work: RecordJob, index: int) -> None:
    """Generate record ``index`` and tell its job the outcome."""
    try:
        outcome = await generate(work, index)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug of ours: the record fails, the job goes on
        logger.exception("job %s: record %d failed unexpectedly", work.job_id, index)
        outcome = RecordOutcome(
            i=index, ok=False, reason="internal", error=f"internal: {type(exc).__name__}"
        )
    with contextlib.suppress(pykka.ActorDeadError):
        work.job.tell(outcome)


def _retrying(work: RecordJob, index: int, attempt: int, reason: str) -> None:
    with contextlib.suppress(pykka.ActorDeadError):
        work.writer.tell(
            RecordStateChanged(
                job_id=work.job_id,
                owner=work.owner,
                i=index,
                attempt=attempt,
                state="retrying",
                reason=reason,
            )
        )


def _looks_like_schema(data: Any, schema: dict[str, Any]) -> bool:
    """Did the model answer with the schema (or a piece of it) instead of a record?"""
    if not isinstance(data, dict):
        return False
    own = schema.get("properties") if isinstance(schema, dict) else None
    own_names = set(own) if isinstance(own, dict) else set()
    if isinstance(data.get("properties"), dict) and "properties" not in own_names:
        return True
    return "$schema" in data and "$schema" not in own_names


async def generate(work: RecordJob, index: int) -> RecordOutcome:
    """The calls of one record, by the per-record rules above."""
    from datagems.inference import extract_json, prompts
    from datagems.schema.check import in_field_order

    base = prompts.record_messages(
        details=work.details,
        index=index,
        total=work.total,
        round_=work.round,
        conditioning=work.conditioning,
    )
    messages = base
    record_seed = prompts.record_seed(work.job_id, index, work.round)
    sampling = work.sampling
    max_tokens = sampling.max_tokens if sampling else None
    schema = work.constrained if work.constrained is not None else work.details.json_schema
    tokens_in = tokens_out = abandoned = 0
    latency = 0.0
    reason, error = "transport", "not attempted"
    tries: list[dict[str, Any]] = []
    action = "first"
    attempt = 0
    while attempt < work.attempts:
        attempt += 1
        if attempt > 1:
            _retrying(work, index, attempt, reason)
        seed = prompts.call_seed(record_seed, attempt)
        attempt_log: dict[str, Any] = {"n": attempt, "do": action, "seed": seed}
        tries.append(attempt_log)
        started_with = work.pace.call_started() if work.pace else 1
        try:
            completion = await work.provider.acomplete(
                messages,
                schema=schema,
                seed=seed,
                temperature=sampling.temperature if sampling else None,
                max_tokens=max_tokens,
                params=sampling.params if sampling else None,
            )
        except InferenceError as exc:
            reason, error = exc.reason, exc.message
            attempt_log["reason"] = reason
            if exc.reason == "timeout":
                abandoned += 1
            if exc.reason in CONGESTION_REASONS or exc.reason.startswith("http_5"):
                work.pacer.congested()
            if not exc.retryable:
                break
            action = "again"
            if attempt < work.attempts:
                await asyncio.sleep(backoff_seconds(attempt))
            continue
        finally:
            if work.pace is not None:
                work.pace.call_ended()
        work.pacer.succeeded()
        if work.pace is not None:
            work.pace.observe(completion.latency_ms, completion.tokens_out, started_with)
        tokens_in += completion.tokens_in or 0
        tokens_out += completion.tokens_out or 0
        latency += completion.latency_ms
        attempt_log["tokensOut"] = completion.tokens_out
        attempt_log["ms"] = round(completion.latency_ms, 1)
        if completion.finish_reason and completion.finish_reason != "stop":
            attempt_log["finish"] = completion.finish_reason
        cut = completion.finish_reason == "length"
        try:
            data = extract_json(completion.text)
        except InferenceError as exc:
            if cut:
                reason, error = "length", _cut_message(max_tokens)
                max_tokens = _longer(max_tokens)
            else:
                reason, error = "invalid_json", exc.message
            attempt_log["reason"] = reason
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
            attempt_log["reason"] = reason
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
