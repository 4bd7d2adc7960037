"""``datagems jobs``: list your jobs on a replica, newest first, as a table or JSON.

One page at a time (``GET /api/tasks``): the newest ``--limit`` jobs, then a line on
stderr telling how to get the next page (``--cursor``); ``--every`` follows every page.
Filters: ``--status``, ``--search`` (title text), and for administrators ``--all`` or
``--owner``.

Exit codes: 0 listed; 3 usage or authentication error; 4 server unreachable or failing.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

import orjson

from datagems.client.api import EXIT_INTERRUPTED, EXIT_OK, ClientError
from datagems.client.follow import terminal_columns
from datagems.client.session import (
    add_connection_arguments,
    describe_exit_codes,
    signed_in_client,
    usage_exit_code,
)

PROG = "datagems jobs"
PAGE_SIZE = 50
MAX_PAGES = 100_000  # a bound on --every (a server that never ends its pages)
SHORT_ID = 8  # the commands take a job by the start of its id (``job_ref``)
MIN_TITLE, MAX_TITLE = 10, 60
COLUMNS = ("id", "title", "status", "ok/failed/total", "created")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the jobs as a JSON array")
    parser.add_argument(
        "--all", action="store_true", help="administrators: every user's jobs, not only yours"
    )
    parser.add_argument("--owner", help="administrators: this user's jobs")
    parser.add_argument(
        "--status",
        help="only jobs in these states, comma-separated (queued, running, succeeded, "
        "failed, cancelled)",
    )
    parser.add_argument("--search", metavar="TEXT", help="only jobs whose title contains TEXT")
    parser.add_argument(
        "--limit", type=int, default=PAGE_SIZE, help=f"jobs per page (default {PAGE_SIZE})"
    )
    parser.add_argument("--cursor", help="start at this page (printed after the previous one)")
    parser.add_argument("--every", action="store_true", help="follow every page to the oldest job")
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


def _cell_title(title: str, width: int) -> str:
    title = " ".join(title.split())
    return title if len(title) <= width else title[: width - 1] + "…"


def _created(value: Any) -> str:
    """``2026-11-22 02:34`` (UTC) from the contract's ISO timestamp."""
    if not isinstance(value, str) or len(value) < 16:
        return "-"
    return value[:10] + " " + value[11:16]


def render_table(rows: list[dict[str, Any]], columns: int = 80) -> str:
    """Aligned columns within ``columns`` (80 by default): the start of the id (enough for
    ``datagems status`` and the others; ``--json`` has it whole), the title cut to the
    room left, status, ok/failed/total, created (UTC)."""
    header = (*COLUMNS[:-1], "created (UTC)")
    fixed = [
        (
            row["id"][:SHORT_ID],
            row["status"],
            f"{row['totalOk']}/{row['totalFailed']}/{row['totalRecords']}",
            _created(row["createdAt"]),
        )
        for row in rows
    ]
    others = [
        max(len(c) for c in col) for col in zip(header[:1] + header[2:], *fixed, strict=False)
    ]
    room = columns - 1 - sum(others) - 2 * len(header[1:])
    title_width = max(MIN_TITLE, min(MAX_TITLE, room))
    cells = [
        (short, _cell_title(row["title"], title_width), status, counts, created)
        for row, (short, status, counts, created) in zip(rows, fixed, strict=True)
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *cells, strict=False)]
    lines = [
        "  ".join(str(value).ljust(width) for value, width in zip(line, widths, strict=True))
        for line in (header, *cells)
    ]
    return "\n".join(line.rstrip() for line in lines)


def page_params(args: argparse.Namespace, cursor: str | None) -> dict[str, str]:
    params = {"limit": str(args.limit)}
    for name, value in (("status", args.status), ("q", args.search), ("owner", args.owner)):
        if value:
            params[name] = value
    if args.all and not args.owner:
        params["all"] = "true"
    if cursor:
        params["cursor"] = cursor
    return params


def main(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    cursor: str | None = args.cursor
    try:
        with signed_in_client(args) as client:
            for _ in range(MAX_PAGES):
                jobs, cursor = client.list_page(page_params(args, cursor))
                rows += [job_row(job) for job in jobs]
                if not args.every or cursor is None:
                    break
    except ClientError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    if args.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif rows:
        sys.stdout.write(render_table(rows, terminal_columns(sys.stdout)) + "\n")
    else:
        sys.stderr.write("no jobs yet\n" if not args.cursor else "no more jobs\n")
    if cursor is not None and not args.every:
        sys.stderr.write(f"more: {next_command(args, cursor)}  (or --every for all of them)\n")
    return EXIT_OK


def next_command(args: argparse.Namespace, cursor: str) -> str:
    """The command that lists the next page (same filters and page size)."""
    words = [PROG]
    for flag, value in (("--status", args.status), ("--search", args.search)):
        if value:
            words += [flag, value]
    if args.owner:
        words += ["--owner", args.owner]
    elif args.all:
        words.append("--all")
    if args.limit != PAGE_SIZE:
        words += ["--limit", str(args.limit)]
    if args.json:
        words.append("--json")
    return shlex.join([*words, "--cursor", cursor])
