"""``datagems generate "<description>" --count N``: draft, confirm and run a dataset job from
the terminal, then download it.

Drafts a schema on the replica (or takes ``--schema file.json``, which the server still
validates at confirmation), shows it, asks before starting (``--yes`` for scripts), follows
the job with a live progress line on stderr, writes the export (format from ``--out``'s
suffix: ``.csv``, ``.json`` or ``.jsonl``) and prints one summary line on stdout.

Exit codes: 0 every record ok; 1 some records failed; 2 the job failed or was cancelled (or
was not started); 3 usage or authentication error; 4 server unreachable or failing;
130 interrupted (Ctrl-C), the job cancelled or left running as you chose.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from datagems.client.api import (
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_USAGE,
    ApiClient,
    ClientError,
)
from datagems.client.follow import ProgressDisplay, follow_job
from datagems.client.progress import Snapshot, closing_lines, outcome_exit_code, summary_line
from datagems.client.schema_view import render_schema
from datagems.client.session import (
    add_connection_arguments,
    ask,
    describe_exit_codes,
    interactive,
    signed_in_client,
    usage_exit_code,
)

FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DEFAULT_INSTRUCTIONS = "No further instructions."
TITLE_LENGTH = 80
PROG = "datagems generate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("description", help="what one record is, in plain language")
    parser.add_argument(
        "--count", "-n", type=int, required=True, help="how many records to generate"
    )
    parser.add_argument("--title", default=None, help="the job's title (default: the description)")
    parser.add_argument(
        "--instructions", default=None, help="extra rules for every record (tone, ranges, ...)"
    )
    parser.add_argument(
        "--schema",
        type=Path,
        default=None,
        help="a JSON Schema file to use instead of the drafted one (checked by the server)",
    )
    parser.add_argument(
        "--out",
        "-o",
        type=Path,
        default=None,
        help="where to write the dataset: .csv, .json or .jsonl (default <job id>.csv)",
    )
    parser.add_argument("--yes", "-y", action="store_true", help="start without asking")
    add_connection_arguments(parser)
    usage_exit_code(parser)
    describe_exit_codes(parser)


def export_format(path: Path) -> str:
    """The export format named by a file's suffix; ``ClientError`` (3) for another one."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ClientError(
            f"--out must end in .csv, .json or .jsonl (got {path.name!r})", EXIT_USAGE
        )
    return fmt


def default_title(description: str) -> str:
    text = " ".join(description.split())
    return text if len(text) <= TITLE_LENGTH else text[: TITLE_LENGTH - 1].rstrip() + "…"


def read_schema_file(path: Path) -> dict[str, Any]:
    try:
        schema = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ClientError(f"cannot read --schema {path}: {exc.strerror}", EXIT_USAGE) from None
    except orjson.JSONDecodeError as exc:
        raise ClientError(f"--schema {path} is not JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(schema, dict):
        raise ClientError(f"--schema {path} must hold a JSON object", EXIT_USAGE)
    return schema


def _check_usage(args: argparse.Namespace) -> None:
    if args.count < 1:
        raise ClientError("--count must be at least 1", EXIT_USAGE)
    if not args.description.strip():
        raise ClientError("the description must not be empty", EXIT_USAGE)
    if args.out is not None:
        export_format(args.out)
        if not args.out.parent.exists():
            raise ClientError(f"--out: folder {args.out.parent} does not exist", EXIT_USAGE)
    if not args.yes and not interactive():
        raise ClientError(
            "stdin is not a terminal, so nobody can confirm: pass --yes to start without asking",
            EXIT_USAGE,
        )


def _err(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def main(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except ClientError as exc:
        _err(f"{PROG}: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _err(f"\n{PROG}: interrupted")
        return EXIT_INTERRUPTED


def run(args: argparse.Namespace) -> int:
    _check_usage(args)
    user_schema = read_schema_file(args.schema) if args.schema is not None else None
    with signed_in_client(args) as client:
        check_count(args.count, client.account)
        title = (args.title or default_title(args.description)).strip()
        _err(f"drafting a schema on {client.base_url} ...")
        draft = client.draft_schema(
            {
                "title": title,
                "totalRecords": args.count,
                "description": args.description,
                "instructions": (args.instructions or "").strip() or DEFAULT_INSTRUCTIONS,
            }
        )
        schema = user_schema if user_schema is not None else draft.get("schema") or {}
        source = f"from {args.schema}" if user_schema is not None else "drafted"
        _err(f"{render_schema(schema)}\n({source}; {args.count} records, title {title!r})")
        if not args.yes and not _confirmed(f"generate {args.count} records? [y/N] "):
            _err(f"{PROG}: not started")
            return EXIT_JOB_FAILED
        job_id = client.confirm(draft["draftToken"], user_schema)
        _err(f"job {job_id} started")
        out = args.out if args.out is not None else Path(f"{job_id}.csv")
        return _run_job(client, job_id, out)


def _confirmed(prompt: str) -> bool:
    try:
        return ask(prompt).lower() in ("y", "yes")
    except EOFError:
        return False


def check_count(count: int, account: dict[str, Any]) -> None:
    """``--count`` against the server's limit, before anything is drafted."""
    limits = account.get("limits") if isinstance(account, dict) else None
    most = limits.get("maxRecordsPerJob") if isinstance(limits, dict) else None
    if isinstance(most, int) and count > most:
        raise ClientError(f"--count must be at most {most} on this server", EXIT_USAGE)


def follow_shown(
    client: ApiClient,
    job_id: str,
    done: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Follow the job with the progress display until it ends (or ``done``); its last view.

    ``KeyboardInterrupt`` and ``ClientError`` end the progress line and propagate."""
    display = ProgressDisplay()

    def update(payload: dict[str, Any]) -> None:
        display.update(Snapshot.of(payload))

    try:
        final = follow_job(
            client,
            job_id,
            update,
            note=display.note,
            on_unreachable=display.unreachable,
            done=done,
        )
    except BaseException:
        display.end_line()
        raise
    display.finish()
    return final


def print_closing(client: ApiClient, job_id: str, final: dict[str, Any]) -> None:
    for line in closing_lines(final, client.job_url(job_id)):
        print(line, flush=True)


def _run_job(client: ApiClient, job_id: str, out: Path) -> int:
    started = time.monotonic()
    try:
        final = follow_shown(client, job_id)
    except KeyboardInterrupt:
        return _interrupted(client, job_id)
    except ClientError:
        _err(f"job {job_id} is still on the server: `datagems status {job_id}` shows it")
        raise
    elapsed = time.monotonic() - started
    snap = Snapshot.of(final)
    size = client.download_export(job_id, export_format(out), out)
    print(f"{summary_line(snap, job_id, elapsed)} -> {out} ({human_size(size)})", flush=True)
    print_closing(client, job_id, final)
    return outcome_exit_code(snap)


def human_size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024 / 1024:.1f} MiB"


def _interrupted(client: ApiClient, job_id: str) -> int:
    """Ctrl-C while the job runs: ask whether to cancel it (only on a terminal)."""
    if not interactive():
        _err(f"{PROG}: interrupted; job {job_id} keeps running on the server")
        return EXIT_INTERRUPTED
    try:
        cancel = _confirmed("cancel the job on the server? [y/N] ")
    except KeyboardInterrupt:
        cancel = False
        _err("")
    if not cancel:
        _err(f"job {job_id} keeps running on the server (`datagems jobs` lists it)")
        return EXIT_INTERRUPTED
    try:
        client.cancel(job_id)
    except ClientError as exc:
        _err(f"{PROG}: could not cancel job {job_id}: {exc}")
        return EXIT_INTERRUPTED
    _err(f"job {job_id}: cancellation requested")
    return EXIT_INTERRUPTED
