"""RecordActor: one record, one inference call (plus bounded retries), then stop.

Per-record rules:
- transport error, timeout, 5xx or ``rate_limited``: retry after an exponential backoff
  with jitter;
- invalid JSON or a schema violation: retry with the error fed back in the conversation;
- anything else (a 4xx, a provider error): the record fails at once;
- at most ``attempts`` calls; then the record fails with the last reason and a short
  message. A record is never filled with made-up values.
The outcome goes up to the job actor by ``tell``; in-flight states go to the writer.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

from datagems.actors.base import Actor, Slots
from datagems.actors.messages import RecordOutcome, RecordStateChanged
from datagems.errors import InferenceError

if TYPE_CHECKING:
    from datagems.inference import Provider
    from datagems.models import JobDetails
    from datagems.schema_tools import RecordValidator

logger = logging.getLogger(__name__)
BACKOFF_BASE_SECONDS = 0.25
CONGESTION_REASONS = frozenset({"rate_limited", "timeout"})
BACKOFF_CAP_SECONDS = 8.0


class ProviderPool:
    """Providers (each one keep-alive HTTP client) lent to record actors one at a time."""

    def __init__(self, factory: Callable[[], Provider]) -> None:
        self._factory = factory
        self._idle: queue.SimpleQueue[Provider] = queue.SimpleQueue()
        self._all: list[Provider] = []
        self._lock = threading.Lock()

    def take(self) -> Provider:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            provider = self._factory()
            with self._lock:
                self._all.append(provider)
            return provider

    def give(self, provider: Provider) -> None:
        self._idle.put(provider)

    def close(self) -> None:
        with self._lock:
            providers, self._all = self._all, []
        for provider in providers:
            provider.close()


@dataclass(frozen=True)
class RecordJob:
    """What every record of one job needs (shared, read-only)."""

    job_id: str
    owner: str  # whose range: this peer, or the dead peer it took over from
    details: JobDetails
    validator: RecordValidator
    total: int
    attempts: int
    providers: ProviderPool
    abandon: threading.Event
    pacer: Slots  # told of every call's outcome: it adapts the in-flight level
    job: pykka.ActorRef[Any]
    writer: pykka.ActorRef[Any]


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 0.25 s, 0.5 s, 1 s, ... capped at 8 s."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)


class RecordActor(Actor):
    def __init__(self, work: RecordJob, index: int) -> None:
        super().__init__()
        self.work = work
        self.index = index

    def start_up(self) -> None:
        self.actor_ref.tell("run")

    def on_receive(self, message: Any) -> None:
        if message == "run":
            outcome = self.generate()
            try:
                self.work.job.tell(outcome)
            except pykka.ActorDeadError:
                logger.debug("record %d finished after its job stopped", self.index)
            self.stop()

    def _state(self, attempt: int, state: str, reason: str | None = None) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.work.writer.tell(
                RecordStateChanged(
                    job_id=self.work.job_id,
                    owner=self.work.owner,
                    i=self.index,
                    attempt=attempt,
                    state=state,
                    reason=reason,
                )
            )

    def generate(self) -> RecordOutcome:
        from datagems.inference import extract_json, prompts

        work = self.work
        messages = prompts.record_messages(details=work.details, index=self.index, total=work.total)
        tokens_in = tokens_out = 0
        latency = 0.0
        reason, error = "transport", "not attempted"
        for attempt in range(1, work.attempts + 1):
            if work.abandon.is_set():
                return RecordOutcome(i=self.index, ok=False, abandoned=True, attempts=attempt)
            self._state(
                attempt, "calling" if attempt == 1 else "retrying", None if attempt == 1 else reason
            )
            provider = work.providers.take()
            try:
                completion = provider.complete(
                    messages,
                    schema=work.details.json_schema,
                    seed=prompts.record_seed(work.job_id, self.index) + attempt,
                )
            except InferenceError as exc:
                work.providers.give(provider)
                reason, error = exc.reason, exc.message
                if exc.reason in CONGESTION_REASONS or exc.reason.startswith("http_5"):
                    work.pacer.congested()
                if not exc.retryable:
                    break
                if work.abandon.wait(backoff_seconds(attempt)):
                    return RecordOutcome(i=self.index, ok=False, abandoned=True, attempts=attempt)
                continue
            work.providers.give(provider)
            work.pacer.succeeded()
            tokens_in += completion.tokens_in or 0
            tokens_out += completion.tokens_out or 0
            latency += completion.latency_ms
            self._state(attempt, "validating")
            try:
                data = extract_json(completion.text)
            except InferenceError as exc:
                reason, error = "invalid_json", exc.message
                messages = prompts.repair_messages(messages, completion.text, error)
                continue
            problems = work.validator.errors(data)
            if problems:
                reason = "schema_violation"
                error = "; ".join(problems[:3])[:300]
                messages = prompts.repair_messages(messages, completion.text, error)
                continue
            return RecordOutcome(
                i=self.index,
                ok=True,
                data=data,
                attempts=attempt,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                latency_ms=latency,
            )
        else:
            attempt = work.attempts
        return RecordOutcome(
            i=self.index,
            ok=False,
            error=f"{reason}: {error}"[:500],
            reason=reason,
            attempts=attempt,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=latency,
        )
