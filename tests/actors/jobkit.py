"""Helpers for engine tests: confirm a job through the store layer, wait, read the export."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from datagems.bench.procs import wait_until
from datagems.job import commands, export, lifecycle
from datagems.models import CommandDecision
from datagems.services import Services
from datagems.settings import Settings
from tests.fleet import Fleet

PERSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 18, "maximum": 90},
        "email": {"type": "string", "format": "email"},
        "plan": {"enum": ["free", "pro", "team"]},
    },
    "required": ["name", "age", "email", "plan"],
    "additionalProperties": False,
}


def fleet_services(fleet: Fleet) -> Services:
    """Services over the fleet's devnode, as a client of the fleet (not one of its peers:
    the job commands it asks are decided by the replicas) would have them."""
    settings = Settings.from_env(
        {
            "R1EN_CHAINSTORE_PEERS": orjson.dumps(fleet.peers).decode(),
            "R1EN_HOST_ADDR": fleet.peers[0],
            "DATAGEN_DATA_DIR": str(fleet.root / "client"),
        }
    ).replace(host_addr="client")
    return Services(settings, fleet.cstore, fleet.r1fs, fleet.llm_url)


def confirm_job(
    services: Services,
    total: int,
    schema: dict[str, Any] | None = None,
    *,
    inference: dict[str, Any] | None = None,
) -> str:
    """A job of alice's, confirmed through the store layer as the web's confirm does
    (``inference``: the draft's, e.g. a profile or sampling parameters)."""
    draft: dict[str, Any] = {
        "title": "People",
        "totalRecords": total,
        "description": "Customers of a software company",
        "instructions": "Realistic, varied people.",
        "schema": schema or PERSON_SCHEMA,
    }
    if inference is not None:
        draft["inference"] = inference
    job_id = str(uuid.uuid4())
    lifecycle.create_job(services, owner="alice", job_id=job_id, draft=draft)
    return job_id


def wait_for_status(services: Services, job_id: str, statuses: set[str], timeout: float = 90):
    def done() -> Any:
        view = lifecycle.load_job(services, job_id)
        return view if view and view.job.status in statuses else None

    return wait_until(done, timeout=timeout, interval=0.2, what=f"job {job_id} in {statuses}")


def exported_entries(services: Services, job_id: str, partial: bool = False) -> list[dict]:
    return list(export.merged_entries(services, job_id, partial=partial))


def all_slice_lines(services: Services, job_id: str) -> list[dict]:
    """Every line of every uploaded slice (duplicates included)."""
    lines = []
    for state in services.peers.all(job_id).values():
        if state.result_cid:
            body = services.r1fs.get_file(state.result_cid)
            lines += [orjson.loads(line) for line in body.splitlines() if line.strip()]
    return lines


def ask(
    services: Services, kind: str, job_id: str, additional: int = 0, user: str = "alice"
) -> CommandDecision:
    """Retry a job's failed records or add records to it, as the web layer does: the
    command goes to the inbox and the job's command owner decides (refusals raise)."""
    command = commands.new_command(
        kind, job_id, user, via=services.settings.host_addr, additional=additional
    )
    return commands.run(services, command)
