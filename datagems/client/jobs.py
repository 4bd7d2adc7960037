"""``datagems jobs``: list your jobs on a replica, newest first, as a table or JSON.

Exit codes: 0 listed; 3 usage or authentication error; 4 server unreachable or failing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from datagems.client.api import EXIT_INTERRUPTED, EXIT_OK, ClientError
from datagems.client.session import (
    add_connection_arguments,
    describe_exit_codes,
    signed_in_client,
    usage_exit_code,
)

PROG = "datagems jobs"
TITLE_WIDTH = 40
COLUMNS = ("id", "title", "status", "ok/failed/total", "created")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the jobs as a JSON array")
    parser.add_argument(
        "--all", action="store_true", help="administrators: every user's jobs, not only yours"
    )
    add_connection_arguments(parser)
    usage_exit_code(parser)
    describe_exit_codes(
        parser,
        "exit codes:\n  0    listed\n  3    usage or authentication error\n"
        "  4    the server is unreachable or failing",
    )


def job_row(job: dict[str, Any]) -> dict[str, Any]:
    """The listed fields of one job (camelCase, as the API names them)."""
    return {
        "id": str(job.get("id") or ""),
        "title": str(job.get("title") or ""),
        "status": str(job.get("status") or ""),
        "totalOk": int(job.get("totalOk") or 0),
        "totalFailed": int(job.get("totalFailed") or 0),
        "totalRecords": int(job.get("totalRecords") or 0),
        "createdAt": job.get("createdAt"),
        "owner": job.get("owner"),
    }


def _cell_title(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= TITLE_WIDTH else title[: TITLE_WIDTH - 1] + "…"


def _created(value: Any) -> str:
    """``2026-11-22 02:34`` (UTC) from the contract's ISO timestamp."""
    if not isinstance(value, str) or len(value) < 16:
        return "-"
    return value[:10] + " " + value[11:16]


def render_table(rows: list[dict[str, Any]]) -> str:
    """Aligned columns: id, title, status, ok/failed/total, created (UTC)."""
    cells = [
        (
            row["id"],
            _cell_title(row["title"]),
            row["status"],
            f"{row['totalOk']}/{row['totalFailed']}/{row['totalRecords']}",
            _created(row["createdAt"]),
        )
        for row in rows
    ]
    header = (*COLUMNS[:-1], "created (UTC)")
    widths = [max(len(str(c)) for c in column) for column in zip(header, *cells, strict=False)]
    lines = [
        "  ".join(str(value).ljust(width) for value, width in zip(line, widths, strict=True))
        for line in (header, *cells)
    ]
    return "\n".join(line.rstrip() for line in lines)


def main(args: argparse.Namespace) -> int:
    try:
        with signed_in_client(args) as client:
            jobs = client.list_jobs(everyone=args.all)
    except ClientError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    rows = [job_row(job) for job in jobs]
    if args.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif rows:
        sys.stdout.write(render_table(rows) + "\n")
    else:
        sys.stderr.write("no jobs yet\n")
    return EXIT_OK
