"""``datagems <command>``: one binary for the replica and its development companions.

Each command lives in its own module, which provides ``add_arguments(parser)`` and
``main(args) -> int``. A ``DatagemsError`` (a bad setting, say) ends the process with one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from datagems.errors import DatagemsError

COMMANDS = {
    "replica": ("datagems.replica", "run one replica (web app + workers) for one peer id"),
    "devnode": ("datagems.devnode", "serve the CStore and R1FS APIs of an edge node on loopback"),
    "mock-llm": ("datagems.mock.server", "serve a mock LLM gateway on loopback"),
    "bench": (
        "datagems.bench",
        "measure throughput, writes, memory, export and API latency against the machine's limit",
    ),
    "generate": (
        "datagems.client.generate",
        "draft, confirm and run a dataset job from the terminal, then download it",
    ),
    "jobs": ("datagems.client.jobs", "list your jobs on a replica"),
    "login": ("datagems.client.login", "sign in once; the other commands use the stored token"),
    "logout": ("datagems.client.logout", "end the stored session and forget it"),
    "status": ("datagems.client.status", "show a job: state, counts, failure reasons, its page"),
    "export": ("datagems.client.export", "download a job's dataset (csv, json or jsonl)"),
    "retry": ("datagems.client.retry", "call a finished job's failed records again, once"),
    "cancel": ("datagems.client.cancel", "stop a running job on every peer"),
}
# commands whose module needs an optional extra (``pip install 'datagems[<extra>]'``)
EXTRAS = {"bench": "bench"}


def _missing_extra(name: str, exc: ModuleNotFoundError) -> str:
    return (
        f"datagems {name} needs the {exc.name!r} package, which a plain install leaves out: "
        f"install it with  pip install -e '.[{EXTRAS[name]}]'  (or run  make {name})"
    )


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the selected command's module is imported (all of them for help),
    so one command never breaks because another one's module does not import."""
    parser = argparse.ArgumentParser(
        prog="datagems",
        description="DataGems: synthetic datasets, one validated LLM call per record.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if selected in (None, name):
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if name not in EXTRAS or selected is not None:
                    raise
                sub.description = f"{help_text}. {_missing_extra(name, exc)}"
                continue
            module.add_arguments(sub)
            sub.set_defaults(module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = argv[0] if argv and argv[0] in COMMANDS else None
    try:
        parser = build_parser(selected)
    except ModuleNotFoundError as exc:
        if selected not in EXTRAS:
            raise
        print(_missing_extra(selected, exc), file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args.module.main(args) or 0)
    except DatagemsError as exc:
        print(f"datagems {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
