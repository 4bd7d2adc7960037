"""``datagems cancel JOB``: ask every peer to stop the job (no question asked: the command
is the decision). A finished job is left as it is.

Exit codes: 0 requested (or already finished); 3 usage or authentication error (or no
such job); 4 server unreachable or failing.
"""

from __future__ import annotations

import argparse

from datagems.client.api import EXIT_OK, ApiClient
from datagems.client.job_ref import add_job_arguments, run_job_command

PROG = "datagems cancel"
CODES = (
    "exit codes:\n  0    cancellation requested, or the job had already finished\n"
    "  3    usage or authentication error, or no such job\n"
    "  4    the server is unreachable or failing"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser, CODES)


def main(args: argparse.Namespace) -> int:
    def work(client: ApiClient, job_id: str) -> int:
        answer = client.cancel(job_id)
        status = answer.get("status") if isinstance(answer, dict) else None
        if status and status != "cancelling":
            print(f"job {job_id} had already finished ({status}); nothing to cancel")
        else:
            print(f"job {job_id}: cancellation requested")
        print(f"view: {client.job_url(job_id)}", flush=True)
        return EXIT_OK

    return run_job_command(PROG, args, work)
