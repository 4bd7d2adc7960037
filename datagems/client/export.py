"""``datagems export JOB [--out FILE]``: download a job's dataset (format from the file's
suffix: ``.csv``, ``.json`` or ``.jsonl``; default ``<job id>.csv``). What is done of a
running or cancelled job is exported as it stands.

Exit codes: 0 written; 3 usage or authentication error (or no such job); 4 server
unreachable or failing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datagems.client.api import EXIT_OK, EXIT_USAGE, ApiClient, ClientError
from datagems.client.generate import FORMATS, export_format, human_size
from datagems.client.job_ref import add_job_arguments, run_job_command

PROG = "datagems export"
CODES = (
    "exit codes:\n  0    written\n  3    usage or authentication error, or no such job\n"
    "  4    the server is unreachable or failing"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        "-o",
        type=Path,
        default=None,
        help=f"where to write it: {', '.join(FORMATS)} (default <job id>.csv)",
    )
    add_job_arguments(parser, CODES)


def main(args: argparse.Namespace) -> int:
    def work(client: ApiClient, job_id: str) -> int:
        out = args.out if args.out is not None else Path(f"{job_id}.csv")
        size = client.download_export(job_id, export_format(out), out)
        print(f"job {job_id} -> {out} ({human_size(size)})", flush=True)
        return EXIT_OK

    if args.out is not None:  # before signing in: a wrong name costs no request
        try:
            export_format(args.out)
            if not args.out.parent.exists():
                raise ClientError(f"--out: folder {args.out.parent} does not exist", EXIT_USAGE)
        except ClientError as exc:
            sys.stderr.write(f"{PROG}: {exc}\n")
            return exc.exit_code
    return run_job_command(PROG, args, work)
