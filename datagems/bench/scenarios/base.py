"""The results of a benchmark scenario and what every scenario is given: sizes, a work
folder, the fixed record schema of the runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OWNER = "admin"

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 18, "maximum": 90},
        "email": {"type": "string", "format": "email"},
        "plan": {"enum": ["free", "pro", "team"]},
        "city": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["name", "age", "email", "plan", "city"],
    "additionalProperties": False,
}

DRAFT = {
    "title": "Customers",
    "description": "Customers of a software company",
    "instructions": "Realistic, varied people.",
    "schema": SCHEMA,
}

MB = 2**20


@dataclass
class Metric:
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    met: bool | None = None  # None: informative, no target

    def wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
        }


@dataclass
class Scenario:
    key: str
    title: str
    status: str = "ok"  # ok | timeout | error: ... | skipped: ...
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(
        self,
        name: str,
        value: float | None,
        unit: str = "",
        target: str = "",
        met: bool | None = None,
    ) -> None:
        self.metrics.append(Metric(name, value, unit, target, met))

    def wire(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "seconds": round(self.seconds, 1),
            "settings": self.settings,
            "metrics": [m.wire() for m in self.metrics],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Sizes:
    quick: bool
    s1_records: int
    s1_latency_ms: float
    s2_records: int
    s2_latency_ms: float
    s3_records_per_replica: int
    s3_latency_ms: float
    s3_gateway_cap: int
    s4_records: int
    s4_cstore_delay_ms: int
    s5_records: int
    s6_records: tuple[int, int]
    s7_jobs: int
    s7_requests: int
    s7_running_records: int
    bound_seconds: float
    s5_bound_seconds: float

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            quick=False,
            s1_records=5000,
            s1_latency_ms=50,
            s2_records=640,
            s2_latency_ms=1000,
            s3_records_per_replica=640,
            s3_latency_ms=500,
            s3_gateway_cap=32,
            s4_records=3000,
            s4_cstore_delay_ms=100,
            s5_records=100_000,
            s6_records=(10_000, 100_000),
            s7_jobs=100,
            s7_requests=400,
            s7_running_records=50_000,
            bound_seconds=300,
            s5_bound_seconds=1200,
        )

    @classmethod
    def tiny(cls) -> Sizes:
        return cls(
            quick=True,
            s1_records=50,
            s1_latency_ms=20,
            s2_records=64,
            s2_latency_ms=200,
            s3_records_per_replica=20,
            s3_latency_ms=100,
            s3_gateway_cap=8,
            s4_records=40,
            s4_cstore_delay_ms=20,
            s5_records=100,
            s6_records=(20, 100),
            s7_jobs=5,
            s7_requests=20,
            s7_running_records=400,
            bound_seconds=60,
            s5_bound_seconds=60,
        )


IN_FLIGHT = 64


@dataclass
class Context:
    sizes: Sizes
    work: Path  # scratch folder for process data
    logs: Path
    profile: bool = False
    out: Path | None = None
