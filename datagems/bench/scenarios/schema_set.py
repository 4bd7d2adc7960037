"""The schema set of the benchmark (issue 19): small, medium and large record schemas.

- small: the 6-field flat schema of scenario 1;
- medium: the JSON Schema of a small pydantic model: 11 fields, a nested object through
  ``$defs`` / ``$ref``, two enums, numeric bounds, an array with length bounds;
- large: 32 fields, objects nested two levels deep (through ``$ref`` too), arrays of
  objects, 9 ``pattern`` and 8 ``format`` keywords.

The scenario runs each schema on one replica next to the limit measured in the same run
(``loadgen``: the same bodies and answers, no validation), and splits the CPU per record
by stage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import orjson

from datagems.actors.base import Slots
from datagems.bench.loadgen import measure_limit
from datagems.bench.procs import Deadline, Stack
from datagems.bench.scenarios.base import DRAFT, OWNER, Context, Scenario
from datagems.bench.scenarios.base import SCHEMA as SMALL
from datagems.bench.scenarios.probes import (
    GatewayWatcher,
    cpu_seconds,
    job_seconds,
    limit_of,
    open_services,
    replica_knobs,
    share,
    start_profile,
    stop_profile,
    wait_finished,
)
from datagems.inference.providers import GatewayProvider
from datagems.job import lifecycle
from datagems.job.state import JobView
from datagems.models import JobDetails
from datagems.schema.validate import compile_validator
from datagems.services import Services
from datagems.settings import Settings

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _text(low: int, high: int, title: str) -> dict[str, Any]:
    return {"title": title, "type": "string", "minLength": low, "maxLength": high}


MEDIUM: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "Order",
    "type": "object",
    "$defs": {
        "Address": {
            "title": "Address",
            "type": "object",
            "properties": {
                "street": _text(1, 80, "Street"),
                "city": _text(1, 60, "City"),
                "postcode": _text(3, 10, "Postcode"),
                "country": _text(2, 2, "Country"),
            },
            "required": ["street", "city", "postcode", "country"],
            "additionalProperties": False,
        }
    },
    "properties": {
        "order_id": {"title": "Order Id", "type": "string", "format": "uuid"},
        "customer_name": _text(1, 80, "Customer Name"),
        "email": {"title": "Email", "type": "string", "format": "email"},
        "status": {
            "title": "Status",
            "type": "string",
            "enum": ["pending", "paid", "shipped", "delivered", "cancelled"],
        },
        "channel": {"title": "Channel", "type": "string", "enum": ["web", "store", "phone"]},
        "quantity": {"title": "Quantity", "type": "integer", "minimum": 1, "maximum": 100},
        "unit_price": {
            "title": "Unit Price",
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 10000,
        },
        "discount": {"title": "Discount", "type": "number", "minimum": 0, "maximum": 0.5},
        "placed_on": {"title": "Placed On", "type": "string", "format": "date"},
        "shipping_address": {"$ref": "#/$defs/Address"},
        "items": {
            "title": "Items",
            "type": "array",
            "items": _text(1, 40, "Item"),
            "minItems": 1,
            "maxItems": 5,
        },
    },
    "required": [
        "order_id",
        "customer_name",
        "email",
        "status",
        "channel",
        "quantity",
        "unit_price",
        "discount",
        "placed_on",
        "shipping_address",
        "items",
    ],
    "additionalProperties": False,
}

EMPLOYEE_ID = "^EMP-[0-9]{6}$"
PHONE = "^\\+[1-9][0-9]{7,12}$"

LARGE: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "Employee",
    "type": "object",
    "$defs": {
        "Address": {
            "type": "object",
            "properties": {
                "street": _text(1, 80, "Street"),
                "city": _text(1, 60, "City"),
                "postcode": {"type": "string", "pattern": "^[A-Z0-9][A-Z0-9 -]{2,9}$"},
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
            },
            "required": ["street", "city", "postcode", "country"],
            "additionalProperties": False,
        },
        "Contact": {
            "type": "object",
            "properties": {
                "name": _text(1, 80, "Name"),
                "relation": {"enum": ["partner", "parent", "sibling", "friend", "other"]},
                "phone": {"type": "string", "pattern": PHONE},
            },
            "required": ["name", "relation", "phone"],
            "additionalProperties": False,
        },
    },
    "properties": {
        "employee_id": {"type": "string", "pattern": EMPLOYEE_ID},
        "first_name": _text(1, 40, "First Name"),
        "last_name": _text(1, 40, "Last Name"),
        "email": {"type": "string", "format": "email"},
        "phone": {"type": "string", "pattern": PHONE},
        "birth_date": {"type": "string", "format": "date"},
        "hired_at": {"type": "string", "format": "date-time"},
        "department": {
            "enum": ["engineering", "sales", "marketing", "finance", "legal", "support", "hr"]
        },
        "job_title": _text(2, 60, "Job Title"),
        "level": {"type": "integer", "minimum": 1, "maximum": 10},
        "salary": {"type": "number", "minimum": 20000, "maximum": 400000},
        "currency": {"enum": ["EUR", "USD", "GBP", "JPY", "INR"]},
        "bonus_rate": {"type": "number", "minimum": 0, "maximum": 0.3},
        "remote": {"type": "boolean"},
        "manager_id": {"type": ["string", "null"], "pattern": EMPLOYEE_ID},
        "office": {
            "type": "object",
            "properties": {
                "name": _text(1, 60, "Office Name"),
                "floor": {"type": "integer", "minimum": 0, "maximum": 80},
                "address": {"$ref": "#/$defs/Address"},
            },
            "required": ["name", "floor", "address"],
            "additionalProperties": False,
        },
        "home_address": {"$ref": "#/$defs/Address"},
        "emergency_contact": {"$ref": "#/$defs/Contact"},
        "skills": {
            "type": "array",
            "items": _text(1, 30, "Skill"),
            "minItems": 1,
            "maxItems": 8,
            "uniqueItems": True,
        },
        "languages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "pattern": "^[a-z]{2}$"},
                    "level": {"enum": ["basic", "fluent", "native"]},
                },
                "required": ["code", "level"],
                "additionalProperties": False,
            },
            "minItems": 1,
            "maxItems": 4,
        },
        "certifications": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": _text(2, 60, "Certification"),
                    "issued_on": {"type": "string", "format": "date"},
                },
                "required": ["name", "issued_on"],
                "additionalProperties": False,
            },
            "maxItems": 5,
        },
        "website": {"type": "string", "format": "uri"},
        "username": {"type": "string", "pattern": "^[a-z][a-z0-9_]{2,15}$"},
        "status": {"enum": ["active", "on_leave", "notice", "alumni"]},
        "performance_score": {"type": "number", "minimum": 0, "maximum": 5},
        "projects_count": {"type": "integer", "minimum": 0, "maximum": 200},
        "last_review_on": {"type": "string", "format": "date"},
        "badge_id": {"type": "string", "format": "uuid"},
        "workstation_ip": {"type": "string", "format": "ipv4"},
        "notes": {"type": "string", "maxLength": 280},
        "tax_id": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{8,10}$"},
        "shirt_size": {"enum": ["XS", "S", "M", "L", "XL", "XXL"]},
    },
    "required": [
        "employee_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "birth_date",
        "hired_at",
        "department",
        "job_title",
        "level",
        "salary",
        "currency",
        "bonus_rate",
        "remote",
        "office",
        "home_address",
        "emergency_contact",
        "skills",
        "languages",
        "website",
        "username",
        "status",
        "performance_score",
        "projects_count",
        "badge_id",
        "tax_id",
    ],
    "additionalProperties": False,
}

SCHEMAS: dict[str, dict[str, Any]] = {"small": SMALL, "medium": MEDIUM, "large": LARGE}


# -- the scenario -------------------------------------------------------------------------
STAGES = ("prompt", "call", "parse", "validate", "bookkeeping")
TARGETS = {"medium": 0.85, "large": 0.75}  # share of the limit (issue 19)
IN_FLIGHT = 64


@dataclass(frozen=True)
class SetSizes:
    records: int
    latency_ms: float
    rounds: int  # replica runs per schema, each between two limit runs

    @classmethod
    def of(cls, quick: bool) -> SetSizes:
        if quick:
            return cls(records=40, latency_ms=20, rounds=1)
        return cls(records=3000, latency_ms=50, rounds=2)


class _Stub:
    """Stands for the job and writer actors in the stage probe (nothing is told to them)."""

    def tell(self, message: object) -> None:
        pass


@dataclass
class StageClock:
    """CPU seconds of the calling thread spent inside wrapped functions, by stage."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.thread_time() - started
                self.calls[stage] += 1

        return timed


@dataclass
class Probe:
    """The replica's record path run alone in this process: CPU per record by stage."""

    per_record_ms: dict[str, float]
    total_ms: float
    rate: float
    ok: int
    unseen: list[str]
    records: list[Any]


def details_for(schema: dict[str, Any]) -> JobDetails:
    return JobDetails(
        id=str(uuid.uuid4()),
        owner=OWNER,
        title=DRAFT["title"],
        description=DRAFT["description"],
        instructions=DRAFT["instructions"],
        json_schema=schema,
    )


def _setting_default(name: str) -> Any:
    """A replica's default for setting ``name`` (the bench runs replicas with defaults)."""
    return next(item.default for item in dataclasses.fields(Settings) if item.name == name)


def probe_stages(gateway: str, schema: dict[str, Any], n: int, timeout: float) -> Probe:
    """``generate`` (``datagems/inference/pipeline.py``: prompt, call, parse, validate) for ``n``
    records with ``IN_FLIGHT`` at once on one asyncio loop, as a replica's call loop runs
    them (its ``RecordJob`` built as a job actor builds it), with no actor, writer or store
    around it. Each stage's functions are wrapped with
    a thread-CPU clock; the call is the loop's CPU that no other stage took (the transport,
    the body's serialization, the loop itself)."""
    from datagems.actors.pace import LatencyPacer
    from datagems.actors.record import RecordJob
    from datagems.inference import prompts
    from datagems.inference.pipeline import generate, record_calls
    from datagems.inference.providers import Completion

    clock = StageClock()
    details = details_for(schema)
    provider = GatewayProvider(gateway, max_connections=IN_FLIGHT)
    calls = record_calls(
        details,
        provider,
        job_id=details.id,
        total=n,
        attempts=3,
        max_tokens=_setting_default("record_max_tokens"),
    )
    validator = calls.validator
    kept: list[Any] = []
    check = validator.errors

    def validate(record: Any) -> list[str]:
        if len(kept) < 500:
            kept.append(record)
        return check(record)

    validator.errors = clock.wrap("validate", validate)  # type: ignore[method-assign]
    provider.body = clock.wrap("prompt", provider.body)  # type: ignore[method-assign]
    provider._payload = clock.wrap("parse", provider._payload)  # type: ignore[method-assign]
    provider._answer = clock.wrap("parse", provider._answer)  # type: ignore[method-assign]
    stub: Any = _Stub()
    work = RecordJob(
        calls=calls,
        owner="a",
        pacer=Slots(IN_FLIGHT),
        job=stub,
        writer=stub,
        pace=LatencyPacer(IN_FLIGHT),
    )
    ok = 0

    async def drive() -> tuple[float, float]:
        nonlocal ok
        pending = list(range(n - 1, -1, -1))

        async def worker() -> None:
            nonlocal ok
            while pending:
                outcome = await generate(work.calls, pending.pop(), work)
                ok += outcome.ok

        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
            return time.thread_time() - cpu, time.perf_counter() - wall
        finally:
            await provider.aclose()

    with (
        mock.patch.object(
            prompts, "record_messages", clock.wrap("prompt", prompts.record_messages)
        ),
        mock.patch.object(Completion, "value", clock.wrap("parse", Completion.value)),
    ):
        cpu, wall = asyncio.run(asyncio.wait_for(drive(), timeout))
    per = {stage: clock.seconds[stage] / n * 1000 for stage in ("prompt", "parse", "validate")}
    per["call"] = cpu / n * 1000 - sum(per.values())
    unseen = [s for s in ("prompt", "parse", "validate") if not clock.calls[s]]
    return Probe(per, cpu / n * 1000, n / wall if wall else 0.0, ok, unseen, kept)


def bounded_validate_ms(schema: dict[str, Any], records: list[Any]) -> float | None:
    """CPU per record of the bounded jsonschema class alone (every record's path before)."""
    if not records:
        return None
    validator = compile_validator(schema)
    started = time.process_time()
    for record in records:
        validator.bounded_errors(record)
    return (time.process_time() - started) / len(records) * 1000


@dataclass
class JobRun:
    rate: float | None
    cpu_ms: float
    view: JobView
    phases: str


def _run_job(
    ctx: Context,
    services: Services,
    replica_pid: int,
    gateway: str,
    name: str,
    schema: dict[str, Any],
    n: int,
    deadline: Deadline,
) -> JobRun:
    cpu_before = cpu_seconds(replica_pid)
    profiler = start_profile(ctx, replica_pid, name) if name else None
    try:
        with GatewayWatcher([gateway], n) as calls:
            job_id = str(uuid.uuid4())
            draft = {**DRAFT, "schema": schema, "totalRecords": n}
            lifecycle.create_job(services, owner=OWNER, job_id=job_id, draft=draft)
            view = wait_finished(services, job_id, deadline)
    finally:
        stop_profile(profiler)
    cpu_ms = (cpu_seconds(replica_pid) - cpu_before) / n * 1000
    seconds = job_seconds(view)
    rate = view.job.total_ok / seconds if seconds else None
    return JobRun(rate, cpu_ms, view, calls.phases(view))


def _one_schema(
    ctx: Context,
    sc: Scenario,
    services: Services,
    replica_pid: int,
    gateway: str,
    size: str,
    schema: dict[str, Any],
    sizes: SetSizes,
    deadline: Deadline,
) -> None:
    """Limit, replica, limit, replica, limit...: each replica run is compared with the mean
    of the limits measured just before and just after it, so a machine whose load drifts
    (other work on a shared machine) skews a share less."""
    n = sizes.records
    details = details_for(schema)
    limits = [limit_of(measure_limit(gateway, details, n, IN_FLIGHT, deadline.left()), n)]
    runs: list[JobRun] = []
    for round_ in range(sizes.rounds):
        name = f"s8-{size}-replica" if round_ == 0 else ""
        runs.append(_run_job(ctx, services, replica_pid, gateway, name, schema, n, deadline))
        limits.append(limit_of(measure_limit(gateway, details, n, IN_FLIGHT, deadline.left()), n))
    shares = [
        share(run.rate, (before + after) / 2 if before and after else None)
        for run, before, after in zip(runs, limits, limits[1:], strict=False)
    ]
    known = [value for value in shares if value is not None]
    ratio = statistics.fmean(known) if len(known) == len(shares) else None
    rates = [run.rate for run in runs if run.rate is not None]
    probe = probe_stages(gateway, schema, n, deadline.left())
    target = TARGETS.get(size)
    measured = [value for value in limits if value]
    sc.add(f"{size}: limit (aiohttp, C in flight)", _mean(measured), "rec/s")
    sc.add(f"{size}: replica", _mean(rates), "rec/s")
    sc.add(
        f"{size}: share of the limit",
        ratio,
        "",
        f">= {target:.2f}" if target else "",
        (ratio is not None and ratio >= target) if target else None,
    )
    replica_cpu_ms = statistics.fmean(run.cpu_ms for run in runs)
    sc.add(f"{size}: replica CPU per record (all threads)", replica_cpu_ms, "ms")
    stages = dict(probe.per_record_ms)
    stages["bookkeeping"] = replica_cpu_ms - probe.total_ms
    for stage in STAGES:
        sc.add(f"{size}: CPU per record, {stage}", stages[stage], "ms")
    before = bounded_validate_ms(schema, probe.records)
    fields = len(schema.get("properties", {}))
    outcomes = ", ".join(
        f"{run.view.job.total_ok} ok / {run.view.job.total_failed} failed" for run in runs
    )
    sc.notes.append(
        f"{size} ({fields} fields, {len(orjson.dumps(schema))} bytes of schema): limits "
        + ", ".join(f"{value:.0f}" if value else "n/a" for value in limits)
        + " rec/s; replica runs "
        + ", ".join(f"{run.rate:.0f}" if run.rate else "n/a" for run in runs)
        + " rec/s, shares "
        + ", ".join(f"{value:.2f}" if value is not None else "n/a" for value in shares)
        + f" ({outcomes}); first run: {runs[0].phases}; record path alone "
        f"{probe.rate:.0f} rec/s ({probe.ok}/{n} ok); validating with jsonschema alone would "
        "cost "
        + (f"{before:.3f} ms per record" if before is not None else "n/a")
        + (f"; stages not seen: {', '.join(probe.unseen)}" if probe.unseen else "")
    )


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def schema_set(ctx: Context, deadline: Deadline) -> Scenario:
    sizes = SetSizes.of(ctx.sizes.quick)
    sc = Scenario("8", "Schema set: one replica vs the limit on small, medium, large schemas")
    sc.settings = {
        "N": sizes.records,
        "latencyMs": sizes.latency_ms,
        "C": IN_FLIGHT,
        "replicas": 1,
        "schemas": ", ".join(
            f"{name} {len(schema.get('properties', {}))} fields" for name, schema in SCHEMAS.items()
        ),
        "stages": "prompt, call, parse, validate: the record path alone in the bench process "
        "(thread CPU); bookkeeping: the replica's CPU per record minus that path's",
    }
    with Stack(ctx.work / "s8", ctx.logs, deadline) as stack:
        stack.peers = ["a"]
        stack.devnode()
        gateway = stack.mock_llm(latency_ms=sizes.latency_ms)
        proc, _ = stack.replica("a", gateway, replica_knobs())
        services = open_services(stack)
        try:
            for size, schema in SCHEMAS.items():
                deadline.check(f"schema {size}")
                _one_schema(ctx, sc, services, proc.pid, gateway, size, schema, sizes, deadline)
        finally:
            services.close()
    return sc


# fifteen runs of N records (three schemas: limit, replica, limit, replica, limit) and a probe
# each: five minutes on a quiet machine is close, a shared one needs more
schema_set.bound_for = lambda quick: 60 if quick else 900  # type: ignore[attr-defined]
