"""``datagems retry JOB [--wait] [--out FILE]``: call again, once, every record of a finished
job that failed. ``--wait`` follows the job until the retry round ends and prints the
closing summary (and writes ``--out`` if given).

Exit codes: 0 requested (with ``--wait``: every record ok); 1 with ``--wait``, some records
still failed; 2 the retry round ended failed or cancelled; 3 usage or authentication error,
nothing to retry (409) or no such job; 4 server unreachable or failing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datagems.client.api import EXIT_OK, ApiClient
from datagems.client.generate import export_format, follow_shown, human_size, print_closing
from datagems.client.job_ref import add_job_arguments, run_job_command
from datagems.client.progress import Snapshot, outcome_exit_code, summary_line

PROG = "datagems retry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", "-w", action="store_true", help="follow the job until the retry round ends"
    )
    parser.add_argument(
        "--out", "-o", type=Path, default=None, help="with --wait: write the dataset here too"
    )
    add_job_arguments(parser)


def round_ended(round_: Any) -> Callable[[dict[str, Any]], bool]:
    """Has the job finished the retry round ``round_``? Not before its control shows the
    round and every peer has caught up with it: a view from just before the round would
    still read "finished"."""
    wanted = round_ if isinstance(round_, int) else 0

    def ended(payload: dict[str, Any]) -> bool:
        control = payload.get("control") if isinstance(payload.get("control"), dict) else {}
        peers = [p for p in payload.get("peers") or [] if isinstance(p, dict)]
        return (
            Snapshot.of(payload).finished
            and (control.get("retryRound") or 0) >= wanted
            # a peer of the original app writes no retryRound and never retries: not waited for
            and all((peer.get("retryRound", wanted) or 0) >= wanted for peer in peers)
        )

    return ended


def main(args: argparse.Namespace) -> int:
    def work(client: ApiClient, job_id: str) -> int:
        if args.out is not None:
            export_format(args.out)
        answer = client.retry_failed(job_id)
        round_ = answer.get("retryRound") if isinstance(answer, dict) else None
        sys.stderr.write(f"job {job_id}: retry round {round_} requested\n")
        if not args.wait:
            print(f"view: {client.job_url(job_id)}", flush=True)
            return EXIT_OK
        started = time.monotonic()
        final = follow_shown(client, job_id, done=round_ended(round_))
        snap = Snapshot.of(final)
        line = summary_line(snap, job_id, time.monotonic() - started)
        if args.out is not None:
            size = client.download_export(job_id, export_format(args.out), args.out)
            line += f" -> {args.out} ({human_size(size)})"
        print(line, flush=True)
        print_closing(client, job_id, final)
        return outcome_exit_code(snap)

    return run_job_command(PROG, args, work)
