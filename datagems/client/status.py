"""``datagems status JOB``: where a job stands: its state, counts, why records failed, and
its page in the dashboard (``--json``: the job's view as the API gives it).

Exit codes: 0 shown; 3 usage or authentication error (or no such job); 4 server
unreachable or failing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from datagems.client.api import EXIT_OK, ApiClient
from datagems.client.job_ref import add_job_arguments, run_job_command
from datagems.client.progress import Snapshot, failure_reasons

PROG = "datagems status"
CODES = (
    "exit codes:\n  0    shown\n  3    usage or authentication error, or no such job\n"
    "  4    the server is unreachable or failing"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the job's view as JSON")
    add_job_arguments(parser, CODES)


def render_status(view: dict[str, Any], url: str) -> str:
    """A few labelled lines, each well under 80 columns but the title and the URL."""
    job = view.get("job") if isinstance(view.get("job"), dict) else {}
    snap = Snapshot.of(view)
    rows = [
        ("job", str(job.get("id") or "")),
        ("title", " ".join(str(job.get("title") or "").split())),
        ("status", snap.status),
        ("records", f"{snap.done}/{snap.total} done: {snap.ok} ok, {snap.failed} failed"),
    ]
    if snap.in_flight:
        rows.append(("in flight", str(snap.in_flight)))
    reasons = failure_reasons(view)
    if reasons:
        rows.append(("failures", ", ".join(f"{r} {n}" for r, n in reasons.items())))
    if view.get("cancel"):
        rows.append(("cancel", "requested"))
    rows.append(("created", str(job.get("createdAt") or "-")))
    rows.append(("view", url))
    return "\n".join(f"{name:<10} {value}" for name, value in rows)


def main(args: argparse.Namespace) -> int:
    def work(client: ApiClient, job_id: str) -> int:
        view = client.get_job(job_id)
        if args.json:
            sys.stdout.write(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            sys.stdout.write(render_status(view, client.job_url(job_id)) + "\n")
        return EXIT_OK

    return run_job_command(PROG, args, work)
