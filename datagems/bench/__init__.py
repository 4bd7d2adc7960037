"""``datagems bench``: throughput, writes, memory, export and API latency, measured.

Starts what it needs on 127.0.0.1 (devnode, mock-llm, replicas as real processes), runs
the scenarios of issue 5 each within a time bound, prints a table and writes it with the
machine and the settings to ``BENCHMARKS.md`` (its generated section; a full run of every
scenario only) and to JSON and Markdown files under ``--out``. ``--quick`` runs every
scenario at a tiny size: a smoke run that asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

from datagems.bench import real_model, real_model_vars
from datagems.bench.procs import Deadline, Timeout
from datagems.bench.report import machine, markdown, text_table, write_section
from datagems.bench.scenarios import SCENARIOS
from datagems.bench.scenarios.base import Context, Scenario, Sizes

# Scenarios run only when named with --only (they need more than this package: a model).
OPT_IN = {
    real_model.KEY: (real_model.NAME, real_model.run),
    real_model_vars.KEY: (real_model_vars.NAME, real_model_vars.run),
}
BOUNDS = {
    real_model.NAME: real_model.BOUND_SECONDS,
    real_model_vars.NAME: real_model_vars.BOUND_SECONDS,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = [f"{key}|{name}" for key, (name, _) in {**SCENARIOS, **OPT_IN}.items()]
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="SCENARIO",
        help=f"run only these scenarios ({', '.join(names)})",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results"), help="results folder (JSON, table)"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=Path("BENCHMARKS.md"),
        help="file whose generated section a full run of every scenario rewrites",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy record the replica of scenarios 1 and 8 (collapsed stacks under --out)",
    )


def select(only: list[str] | None) -> list[str]:
    if not only:
        return list(SCENARIOS)
    known = {**SCENARIOS, **OPT_IN}
    by_name = {name: key for key, (name, _) in known.items()}
    chosen = []
    for item in only:
        key = by_name.get(item, item)
        if key not in known:
            raise SystemExit(f"datagems bench: unknown scenario {item!r}")
        chosen.append(key)
    return chosen


def foreign_cpu() -> float:
    """CPU seconds used by processes that are not this run's (system busy time minus ours).

    Our children (servers, probes, py-spy) are all waited for within their scenario, so
    ``RUSAGE_CHILDREN`` holds them once it ends.
    """
    busy = psutil.cpu_times()
    total = (
        busy.user
        + busy.system
        + sum(getattr(busy, name, 0.0) for name in ("nice", "irq", "softirq"))
    )
    ours = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        ours += usage.ru_utime + usage.ru_stime
    return total - ours


def run_one(key: str, ctx: Context) -> Scenario:
    name, function = {**SCENARIOS, **OPT_IN}[key]
    bound = ctx.sizes.s5_bound_seconds if name == "memory" else ctx.sizes.bound_seconds
    bound = BOUNDS.get(name, bound)
    bound = getattr(function, "bound_for", lambda quick: bound)(ctx.sizes.quick)
    deadline = Deadline(bound)
    started = time.monotonic()
    foreign_before = foreign_cpu()
    print(f"[bench] scenario {key} ({name}), bound {bound:.0f} s ...", flush=True)
    try:
        result = function(ctx, deadline)
    except (Timeout, TimeoutError) as exc:
        result = Scenario(key, name, status="timeout")
        result.notes.append(str(exc) or f"over the {bound:.0f} s bound")
    except Exception as exc:  # one broken scenario must not hide the others
        result = Scenario(key, name, status=f"error: {type(exc).__name__}: {exc}"[:200])
        result.notes.append(traceback.format_exc(limit=4).replace("\n", " | ")[-800:])
    result.seconds = time.monotonic() - started
    cores = (foreign_cpu() - foreign_before) / max(result.seconds, 1e-6)
    result.settings["otherProcessesCores"] = round(cores, 2)
    if cores > 0.2:
        result.notes.append(
            f"other processes on this machine used {cores:.2f} cores on average meanwhile: "
            "the figures are pessimistic"
        )
    print(f"[bench] scenario {key}: {result.status} in {result.seconds:.1f} s", flush=True)
    return result


def revision() -> dict[str, Any]:
    """The commit measured, and whether the tree had uncommitted changes to the code."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], capture_output=True, text=True, timeout=10)
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--", "datagems").splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": "unknown", "dirty": []}
    return {"commit": head or "unknown", "dirty": [line[3:] for line in dirty]}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every Stack, which stops its processes


def main(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    keys = select(args.only)
    code = revision()
    sizes = Sizes.tiny() if args.quick else Sizes.full()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="datagems-bench-"))
    ctx = Context(sizes=sizes, work=work, logs=out / "logs", profile=args.profile, out=out)
    started = time.monotonic()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        results = [run_one(key, ctx) for key in keys]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta = {
        "when": when,
        "quick": sizes.quick,
        "seconds": time.monotonic() - started,
        "machine": machine(),
        "revision": code,
        "scenarios": keys,
    }
    table = text_table(results)
    print()
    print(table, flush=True)
    section = markdown(results, meta)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {**meta, "results": [r.wire() for r in results]}
    json_path = out / f"bench-{stamp}.json"
    json_path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    (out / "bench-latest.json").write_bytes(json_path.read_bytes())
    (out / "BENCHMARKS.md").write_text(section + "\n")
    if not sizes.quick and len(keys) == len(SCENARIOS):
        write_section(args.markdown, section)
        print(f"\n[bench] wrote {args.markdown} (generated section) and {json_path}")
    else:
        print(f"\n[bench] wrote {out / 'BENCHMARKS.md'} and {json_path}")
    return 0
