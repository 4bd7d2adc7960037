"""Scenario ``real-model``: the product against a real model server (issue 14).

SmolLM2-135M-Instruct served by llama-cpp-python's OpenAI-compatible server (built by
``make llm-server`` into ``.venv-llm``; the scenario reports ``skipped`` without it),
used as a user's inference profile. Between the replica and the server sits a counting
proxy of ours (``UsageProxy``): it sees every call — the ones the replica abandons too —
and sums the server's own usage, latency, forms and calls in flight.

Steps: one replica on a devnode; a profile pointing at the proxy; a single call's
generation time measured alone (the same record prompt, one call at a time); then a job
of N records of the simple schema (full name, age 18-90, e-mail, city), no schema edits;
then one "retry failed records" round when some failed. Reported: validity on the first
call, after the record's retries, after the retry round; failure reasons; distinct
records, names and cities; tokens (ours vs the server's); calls per record; median call
time vs the single call; the calls in flight at the server; the structured-output form
learned and what it cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import ClientSession, ClientTimeout, web

from datagems.bench import llm_server
from datagems.bench.procs import Deadline, Proc, Stack, free_port, wait_until
from datagems.bench.scenarios.base import OWNER, Context, Scenario
from datagems.bench.scenarios.probes import open_services, wait_finished
from datagems.inference import prompts
from datagems.inference.constrain import constrained_schema
from datagems.inference.generation import record_call, record_question, sampling_for
from datagems.inference.providers import OpenAIProvider
from datagems.job import commands, export, lifecycle
from datagems.job.state import JobView
from datagems.models import TERMINAL_STATUSES, InferenceProfile, JobDetails, UserSettings

KEY = "llm"
NAME = "real-model"
BOUND_SECONDS = 2400.0
RECORDS = 30
QUICK_RECORDS = 4
CALIBRATION_CALLS = 5
PROFILE_ID = "bench-llm"
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "full_name": {"type": "string", "minLength": 3, "description": "first and last name"},
        "age": {"type": "integer", "minimum": 18, "maximum": 90},
        "email": {"type": "string", "format": "email"},
        "city": {"type": "string", "minLength": 2},
    },
    "required": ["full_name", "age", "email", "city"],
    "additionalProperties": False,
}
DRAFT = {
    "title": "People",
    "description": "An adult person: full name, age, e-mail address and home city",
    "instructions": "Realistic, varied people from many countries.",
    "schema": SCHEMA,
}


@dataclass
class Call:
    form: str
    status: int
    ms: float
    in_flight: int  # calls at the server when this one arrived (itself included)
    arrived: float = 0.0  # perf_counter at the proxy
    done: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None


@dataclass
class UsageProxy:
    """A pass-through proxy on 127.0.0.1 counting what the server really did."""

    upstream: str
    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _session: ClientSession | None = None
    _thread: threading.Thread | None = None

    def start(self) -> UsageProxy:
        ready = threading.Event()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start(port))
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="usage-proxy")
        self._thread.start()
        ready.wait(10)
        return self

    async def _start(self, port: int) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=900))
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def reset(self) -> None:
        self.calls = []

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        completion = request.method == "POST" and request.path.endswith("/chat/completions")
        self.in_flight += completion
        arrived_with = self.in_flight
        started = time.perf_counter()
        try:
            async with self._session.request(
                request.method,
                self.upstream + request.path_qs,
                data=body or None,
                headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
            ) as answer:
                payload = await answer.read()
                status = answer.status
        finally:
            self.in_flight -= completion
        if completion:
            call = self._count(
                body, status, payload, (time.perf_counter() - started) * 1000, arrived_with
            )
            call.arrived, call.done = started, time.perf_counter()
        return web.Response(body=payload, status=status, content_type="application/json")

    def _count(self, body: bytes, status: int, payload: bytes, ms: float, arrived: int) -> Call:
        try:
            sent = orjson.loads(body)
        except orjson.JSONDecodeError:
            sent = {}
        fmt = sent.get("response_format") if isinstance(sent, dict) else None
        form = "none"
        if isinstance(fmt, dict):
            form = str(fmt.get("type"))
            inner = fmt.get("json_schema")
            if isinstance(inner, dict) and inner.get("strict"):
                form += " strict"
            if fmt.get("type") == "json_object" and "schema" in fmt:
                form += " + schema"
        call = Call(
            form=form,
            status=status,
            ms=ms,
            in_flight=arrived,
            max_tokens=sent.get("max_tokens"),
            temperature=sent.get("temperature"),
            seed=sent.get("seed"),
        )
        with contextlib.suppress(
            orjson.JSONDecodeError, AttributeError, IndexError, KeyError, TypeError
        ):
            answer = orjson.loads(payload)
            usage = answer.get("usage") or {}
            call.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            call.completion_tokens = int(usage.get("completion_tokens") or 0)
            call.finish = answer["choices"][0].get("finish_reason")
        self.calls.append(call)
        return call


def generation_ms(calls: list[Call]) -> list[float]:
    """Each answered call's own generation time at a server that runs one call at a time
    (first come, first served): from when the server became free for it (its arrival, or
    the previous answer) to its answer. Its latency minus this is time queued."""
    out = []
    free_at = float("-inf")
    for call in sorted(calls, key=lambda c: c.done):
        start = max(call.arrived, free_at)
        if call.status == 200:
            out.append((call.done - start) * 1000)
        free_at = call.done
    return out


def _calibrate(proxy: UsageProxy, model: str, details: JobDetails, calls: int) -> list[Call]:
    """A single record call's time with nothing else in flight (the generation time), each
    call the body a replica sends for that record (its own builders), in the form this
    server takes (``json_object`` with the schema)."""
    sampling = sampling_for(SCHEMA, None, 1024)
    constrained = constrained_schema(SCHEMA)
    with (
        OpenAIProvider(f"{proxy.url}/v1", api_key=None, model=model) as provider,
        httpx.Client(timeout=300) as client,
    ):
        for index in range(calls):
            question = record_question(
                details, job_id=details.id, index=index, total=calls, constrained=constrained
            )
            call = record_call(sampling, question.schema, seed=prompts.call_seed(question.seed, 1))
            body = provider.bodies(question.messages, **call)(form="json_object_schema")
            client.post(f"{proxy.url}/v1/chat/completions", json=body).raise_for_status()
    return list(proxy.calls)


def _entries(services: Any, job_id: str) -> list[dict[str, Any]]:
    return list(export.merged_entries(services, job_id))


def run(ctx: Context, deadline: Deadline) -> Scenario:
    sc = Scenario(KEY, "Real model: SmolLM2-135M on llama-cpp-python, as a user's profile")
    venv = Path(llm_server.DEFAULT_VENV)
    if not llm_server.available(venv):
        sc.status = "skipped: no real model server (run `make llm-server` once)"
        return sc
    n = QUICK_RECORDS if ctx.sizes.quick else RECORDS
    sc.settings = {"N": n, "model": llm_server.MODEL_ALIAS, "server": "llama-cpp-python 0.3.36"}
    with (
        Stack(ctx.work / "llm", ctx.logs, deadline) as stack,
        model_replica(ctx, stack, venv, deadline) as (services, proxy),
    ):
        _measure(sc, services, proxy, n, deadline)
    return sc


@contextlib.contextmanager
def model_replica(
    ctx: Context, stack: Stack, venv: Path, deadline: Deadline
) -> Iterator[tuple[Any, UsageProxy]]:
    """The real model server, the usage proxy in front of it, a devnode and replica ``a``
    calling the proxy: (the replica's services, the proxy). Stopped in reverse order."""
    port = free_port()
    server = Proc(
        "llama-server",
        llm_server.command(venv, port=port),
        logs=ctx.logs,
        ready_url=f"http://127.0.0.1:{port}/v1/models",
    )
    stack.procs.append(server)
    server.start(deadline, timeout=180)
    proxy = UsageProxy(f"http://127.0.0.1:{port}").start()
    try:
        stack.peers = ["a"]
        stack.devnode()
        stack.replica("a", proxy.url, {"DATAGEN_ALLOW_PRIVATE_URLS": "true"})
        services = open_services(stack)
        try:
            yield services, proxy
        finally:
            services.close()
    finally:
        proxy.stop()


def _measure(sc: Scenario, services: Any, proxy: UsageProxy, n: int, deadline: Deadline) -> None:
    model = llm_server.MODEL_ALIAS
    services.user_settings.put(
        OWNER,
        UserSettings(
            profiles=[
                InferenceProfile(
                    id=PROFILE_ID, name="SmolLM2 (bench)", base_url=f"{proxy.url}/v1", model=model
                )
            ],
            active_profile_id=PROFILE_ID,
        ),
    )
    details = JobDetails(id=str(uuid.uuid4()), owner=OWNER, **{**DRAFT, "json_schema": SCHEMA})
    single = _calibrate(proxy, model, details, CALIBRATION_CALLS)
    single_ms = statistics.median(c.ms for c in single)
    sc.notes.append(
        "single calls alone: "
        + ", ".join(f"{c.ms / 1000:.1f} s ({c.completion_tokens} tokens)" for c in single)
    )
    proxy.reset()

    job_id = str(uuid.uuid4())
    draft = {
        **DRAFT,
        "totalRecords": n,
        "inference": {"useExternalApi": True, "profileId": PROFILE_ID},
    }
    lifecycle.create_job(services, owner=OWNER, job_id=job_id, draft=draft)
    started = time.perf_counter()
    view = wait_finished(services, job_id, deadline, interval=0.5)
    seconds = time.perf_counter() - started
    job_calls = list(proxy.calls)
    entries = _entries(services, job_id)
    usage = _usage(view)
    usage["firstOk"] = sum(1 for e in entries if e.get("ok") and e.get("attempts", 1) == 1)

    retried = recovered = 0
    round_calls: list[Call] = []
    if view.job.total_failed:
        retried = view.job.total_failed
        proxy.reset()
        commands.run(
            services,
            commands.new_command("retry", job_id, OWNER, via=services.settings.host_addr),
        )

        def round_done() -> Any:
            again = lifecycle.load_job(services, job_id)
            return (
                again
                if again
                and again.job.status in TERMINAL_STATUSES
                and again.commands
                and all(p.retry_round >= again.commands.retry_round for p in again.peers.values())
                else None
            )

        view = wait_until(round_done, deadline=deadline, interval=0.5, what="the retry round")
        round_calls = list(proxy.calls)
        recovered = view.job.total_ok - sum(1 for e in entries if e.get("ok"))
        entries = _entries(services, job_id)
    _report(sc, n, entries, usage, job_calls, round_calls, single_ms, seconds, retried, recovered)


def _usage(view: JobView) -> dict[str, Any]:
    peers = view.peers.values()
    return {
        "tokensIn": sum(p.tokens_in for p in peers),
        "tokensOut": sum(p.tokens_out for p in peers),
        "abandoned": sum(p.abandoned_calls for p in peers),
        "failureReasons": dict(sum((Counter(p.failure_reasons) for p in peers), Counter())),
        "pace": [p.pace for p in peers if p.pace],
        "ok": view.job.total_ok,
        "failed": view.job.total_failed,
    }


def _report(
    sc: Scenario,
    n: int,
    entries: list[dict[str, Any]],
    usage: dict[str, Any],
    calls: list[Call],
    round_calls: list[Call],
    single_ms: float,
    seconds: float,
    retried: int,
    recovered: int,
) -> None:
    ok = [e for e in entries if e.get("ok")]
    first_ok = usage["firstOk"]
    answered = [c for c in calls if c.status == 200]
    refused = [c for c in calls if c.status != 200]
    median_ms = statistics.median(c.ms for c in answered) if answered else None
    generated = generation_ms(calls)
    generation = statistics.median(generated) if generated else None
    ratio = median_ms / generation if median_ms and generation else None
    per_call = [
        c.ms / g
        for c, g in zip(sorted(answered, key=lambda c: c.done), generated, strict=False)
        if g > 0
    ]
    valid_share = usage["ok"] / n
    after_round = len(ok) / n
    server_in = sum(c.prompt_tokens for c in calls)
    server_out = sum(c.completion_tokens for c in calls)
    records = {orjson.dumps(e["data"], option=orjson.OPT_SORT_KEYS) for e in ok}
    names = {str(e["data"].get("full_name", "")).strip().lower() for e in ok}
    cities = Counter(str(e["data"].get("city", "")).strip().lower() for e in ok)
    forms = Counter(c.form for c in calls)
    sc.add("valid on the first call", first_ok / n * 100, "%")
    sc.add(
        "valid after the record's retries",
        valid_share * 100,
        "%",
        ">= 90 %",
        valid_share >= 0.9,
    )
    sc.add("valid after one retry-failed round", after_round * 100, "%")
    sc.add("records recovered by the retry round", recovered, f"of {retried}")
    sc.add("calls per record (job)", len(calls) / n)
    sc.add("single call alone, median of 5 (before the job)", single_ms, "ms")
    sc.add("median generation time of the job's calls (server busy)", generation, "ms")
    sc.add("median call time in the job", median_ms, "ms")
    sc.add(
        "median call / median generation",
        ratio,
        "x",
        "<= 2x",
        ratio is not None and ratio <= 2,
    )
    sc.add(
        "median of each call's time / its generation",
        statistics.median(per_call) if per_call else None,
        "x",
    )
    sc.add("calls in flight at the server, median", statistics.median(c.in_flight for c in calls))
    sc.add("calls in flight at the server, max", max((c.in_flight for c in calls), default=0))
    sc.add("tokens out: ours / server's", usage["tokensOut"], f"/ {server_out}")
    tokens_equal = usage["tokensIn"] == server_in and usage["tokensOut"] == server_out
    sc.add(
        "usage equals the server's counts",
        1.0 if tokens_equal else 0.0,
        "",
        "equal",
        tokens_equal,
    )
    sc.add("distinct records", len(records), f"of {len(ok)}")
    sc.add("distinct full names", len(names), f"of {len(ok)}")
    sc.add("distinct cities", len(cities), f"of {len(ok)}")
    sc.add("job seconds (confirm to finished)", seconds, "s")
    sc.notes.append(
        f"failure reasons {usage['failureReasons'] or '{}'}; abandoned calls "
        f"{usage['abandoned']}; forms sent {dict(forms)}; refused calls {len(refused)}; "
        f"tokens in ours {usage['tokensIn']} / server {server_in}; finish reasons "
        f"{dict(Counter(c.finish for c in answered))}; max_tokens sent "
        f"{sorted({c.max_tokens for c in calls if c.max_tokens})}; most common cities "
        f"{cities.most_common(3)}; pace {usage['pace']}; retry round calls {len(round_calls)}"
    )
