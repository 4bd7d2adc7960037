"""Health, metrics (JSON and Prometheus text) and the OpenAPI document."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from datagems import jobs
from datagems.models import parse_iso
from datagems.web.keys import SERVICES, STATE


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return web.json_response({"ok": True, "peerId": services.settings.host_addr})


async def _metrics(request: web.Request) -> dict[str, Any]:
    found = await asyncio.to_thread(jobs.metrics, request.app[SERVICES])
    return found.get("metrics", found) if isinstance(found, dict) else {}


async def metrics_json(request: web.Request) -> web.Response:
    return web.json_response({"metrics": await _metrics(request)})


PROMETHEUS_GAUGES = (
    ("totalJobs", "datagems_jobs_total", "Jobs ever confirmed (fleet-wide)."),
    ("totalRecordsRequested", "datagems_records_requested_total", "Records asked for."),
    ("totalRecordsGenerated", "datagems_records_generated_total", "Records generated (ok)."),
    ("activeJobs", "datagems_jobs_active", "Jobs queued or running."),
    ("failedJobs", "datagems_jobs_failed", "Jobs that failed."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def metrics_prometheus(request: web.Request) -> web.Response:
    """Prometheus text format 0.0.4: fleet-wide gauges from CStore, and this replica's
    preview and draft counters (counted apart from jobs)."""
    found = await _metrics(request)
    state = request.app[STATE]
    peer = _label(request.app[SERVICES].settings.host_addr)
    lines: list[str] = []
    for key, name, help_text in PROMETHEUS_GAUGES:
        value = found.get(key)
        if isinstance(value, int | float):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    last = parse_iso(found.get("lastJobAt"))
    if last is not None:
        lines += [
            "# HELP datagems_last_job_timestamp_seconds When the last job was created.",
            "# TYPE datagems_last_job_timestamp_seconds gauge",
            f"datagems_last_job_timestamp_seconds {last.timestamp():.3f}",
        ]
    counters = (
        ("datagems_preview_calls_total", "Previews served by this replica.", state.preview_calls),
        (
            "datagems_preview_records_total",
            "Preview records made by this replica (not part of any job).",
            None,
        ),
        ("datagems_schema_drafts_total", "Schema drafts served by this replica.", state.drafts),
        (
            "datagems_schema_draft_failed_attempts_total",
            "Failed schema draft attempts on this replica.",
            state.drafts_failed_attempts,
        ),
    )
    for name, help_text, value in counters:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        if value is None:
            lines.append(f'{name}{{peer="{peer}",outcome="ok"}} {state.preview_records_ok}')
            lines.append(f'{name}{{peer="{peer}",outcome="failed"}} {state.preview_records_failed}')
        else:
            lines.append(f'{name}{{peer="{peer}"}} {value}')
    return web.Response(
        body=("\n".join(lines) + "\n").encode(),
        headers={
            "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
    )
