"""What the per-job commands share (``status``, ``export``, ``retry``, ``cancel``): the job
argument, a full id or the unique start of one (as ``datagems jobs`` shows them), and one
way to run a command with its errors as one line and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from datagems.client.api import EXIT_INTERRUPTED, EXIT_USAGE, ApiClient, ClientError
from datagems.client.session import (
    add_connection_arguments,
    describe_exit_codes,
    signed_in_client,
    usage_exit_code,
)

FULL_ID_LENGTH = 36
MIN_PREFIX = 4
PAGE = "100"
MAX_PAGES = 50


def add_job_arguments(parser: argparse.ArgumentParser, codes: str | None = None) -> None:
    parser.add_argument("job", help="the job's id, or the start of it as `datagems jobs` shows")
    add_connection_arguments(parser)
    usage_exit_code(parser)
    if codes is None:
        describe_exit_codes(parser)
    else:
        describe_exit_codes(parser, codes)


def resolve_job(client: ApiClient, ref: str) -> str:
    """The full id of the job ``ref`` names: itself when it is a full id, else the one job
    (of the caller's, or every user's for an administrator) whose id starts with it."""
    ref = ref.strip().lower()
    if len(ref) >= FULL_ID_LENGTH:
        return ref
    if len(ref) < MIN_PREFIX:
        raise ClientError(f"give at least {MIN_PREFIX} characters of the job id", EXIT_USAGE)
    params = {"limit": PAGE}
    if client.account.get("role") == "admin":
        params["all"] = "true"
    found: set[str] = set()
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        jobs, cursor = client.list_page({**params, **({"cursor": cursor} if cursor else {})})
        found |= {str(job.get("id")) for job in jobs if str(job.get("id", "")).startswith(ref)}
        if cursor is None:
            break
    if not found:
        raise ClientError(f"no job whose id starts with {ref!r}", EXIT_USAGE, 404)
    if len(found) > 1:
        raise ClientError(
            f"{ref!r} names {len(found)} jobs ({', '.join(sorted(found)[:3])}...): "
            "give more of the id",
            EXIT_USAGE,
        )
    return found.pop()


def run_job_command(
    prog: str, args: argparse.Namespace, work: Callable[[ApiClient, str], int]
) -> int:
    """Sign in (no prompt when a token is stored), resolve the job, run ``work``."""
    try:
        with signed_in_client(args) as client:
            return work(client, resolve_job(client, args.job))
    except ClientError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{prog}: interrupted\n")
        return EXIT_INTERRUPTED
