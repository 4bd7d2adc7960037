"""Scenario ``real-model-vars``: does a per-record variable spread a small model's records?

The bike-shop job of issue 17 on the real small model (``real_model``'s server, proxy and
profile): 30 customers of a bike shop, once as the user wrote it and once with a ``city``
category variable of 20 cities (equal weights), drawn per record and written into its
prompt. Reported for each: valid records, the most common city and its share, distinct
cities and names; for the variable run, how many records kept the city they were given.
The job as written runs first only with ``DATAGEMS_BENCH_BASELINE=1`` (a loaded machine
makes each job long; the ``real-model`` scenario measures the same model without).
Opt-in, like ``real-model``: it needs ``make llm-server`` once.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from datagems.bench import llm_server
from datagems.bench.procs import Deadline, Stack
from datagems.bench.real_model import PROFILE_ID, UsageProxy, model_replica
from datagems.bench.scenarios.base import OWNER, Context, Scenario
from datagems.bench.scenarios.probes import wait_finished
from datagems.job import export, lifecycle
from datagems.models import InferenceProfile, UserSettings

KEY = "llm-vars"
NAME = "real-model-vars"
BOUND_SECONDS = 3000.0
RECORDS = 30
QUICK_RECORDS = 4
CITIES = [
    "Lisbon", "Osaka", "Nairobi", "Toronto", "Melbourne", "Munich", "Bogotá", "Pune",
    "Lyon", "Austin", "Kraków", "Seoul", "Cape Town", "Oslo", "Lima", "Hanoi",
    "Glasgow", "Porto Alegre", "Izmir", "Auckland",
]  # fmt: skip
CITY = {"name": "city", "kind": "category", "values": CITIES}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "full_name": {"type": "string", "minLength": 3, "description": "first and last name"},
        "city": {"type": "string", "minLength": 2, "description": "home city"},
        "bike": {"enum": ["road", "mountain", "city", "e-bike", "cargo"]},
        "price": {"type": "integer", "minimum": 100, "maximum": 6000},
    },
    "required": ["full_name", "city", "bike", "price"],
    "additionalProperties": False,
}
WITH: tuple[str, dict[str, Any]] = ("with the city variable", {"variables": [CITY]})
WITHOUT: tuple[str, dict[str, Any]] = ("without", {})
DRAFT = {
    "title": "Bike shop customers",
    "description": "A customer of a bike shop: full name, home city, the bike bought, its price",
    "instructions": "Realistic, varied customers.",
    "schema": SCHEMA,
}


def run(ctx: Context, deadline: Deadline) -> Scenario:
    sc = Scenario(KEY, "Real model with a per-record city variable (issue 17)")
    venv = Path(llm_server.DEFAULT_VENV)
    if not llm_server.available(venv):
        sc.status = "skipped: no real model server (run `make llm-server` once)"
        return sc
    n = QUICK_RECORDS if ctx.sizes.quick else RECORDS
    baseline = os.environ.get("DATAGEMS_BENCH_BASELINE", "") == "1"
    sc.settings = {"N": n, "model": llm_server.MODEL_ALIAS, "cities": len(CITIES)}
    if not baseline:
        sc.notes.append(
            "the job without the variable is the real-model scenario's "
            "(DATAGEMS_BENCH_BASELINE=1 runs it here too, first)"
        )
    with (
        Stack(ctx.work / "llm-vars", ctx.logs, deadline) as stack,
        model_replica(ctx, stack, venv, deadline) as (services, proxy),
    ):
        _profile(services, proxy)
        for label, extra in (WITHOUT, WITH) if baseline else (WITH,):
            _job(sc, services, n, deadline, label, extra)
    return sc


def _profile(services: Any, proxy: UsageProxy) -> None:
    services.user_settings.put(
        OWNER,
        UserSettings(
            profiles=[
                InferenceProfile(
                    id=PROFILE_ID,
                    name="SmolLM2 (bench)",
                    base_url=f"{proxy.url}/v1",
                    model=llm_server.MODEL_ALIAS,
                )
            ],
            active_profile_id=PROFILE_ID,
        ),
    )


def _job(
    sc: Scenario, services: Any, n: int, deadline: Deadline, label: str, extra: dict[str, Any]
) -> None:
    job_id = str(uuid.uuid4())
    draft = {
        **DRAFT,
        **extra,
        "totalRecords": n,
        "inference": {"useExternalApi": True, "profileId": PROFILE_ID},
    }
    lifecycle.create_job(services, owner=OWNER, job_id=job_id, draft=draft)
    wait_finished(services, job_id, deadline, interval=0.5)
    ok = [e for e in export.merged_entries(services, job_id) if e.get("ok")]
    cities = Counter(str(e["data"].get("city", "")).strip().lower() for e in ok)
    names = {str(e["data"].get("full_name", "")).strip().lower() for e in ok}
    top, top_count = cities.most_common(1)[0] if cities else ("", 0)
    share = top_count / len(ok) if ok else None
    sc.add(f"{label}: valid records", len(ok), f"of {n}")
    sc.add(
        f"{label}: top city share",
        share * 100 if share is not None else None,
        f"% ({top!r})",
        "<= 20 %" if extra else "",
        (share is not None and share <= 0.2) if extra else None,
    )
    sc.add(f"{label}: distinct cities", len(cities), f"of {len(ok)}")
    sc.add(f"{label}: distinct full names", len(names), f"of {len(ok)}")
    if extra:
        kept = sum(
            1
            for e in ok
            if str(e["data"].get("city", "")).strip().lower()
            == str((e.get("vars") or {}).get("city", "")).strip().lower()
        )
        given = Counter(str((e.get("vars") or {}).get("city", "")) for e in ok)
        sc.add(f"{label}: records that kept the city they were given", kept, f"of {len(ok)}")
        sc.notes.append(f"{label}: cities given {dict(given.most_common())}")
    sc.notes.append(f"{label}: most common cities {cities.most_common(5)}")
