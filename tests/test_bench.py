"""``datagems bench --quick``: a smoke run of every scenario at a tiny size.

It asserts that the benchmark ran, printed its table and wrote its JSON and Markdown
files; never a speed (speeds are published in BENCHMARKS.md, not asserted in tests).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from datagems.bench.procs import clean_env
from tests.servers import ROOT

SCENARIO_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "history", "fleet-size"]


@pytest.mark.timeout(420)
def test_quick_bench_runs_every_scenario_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "results"
    markdown = tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "datagems",
            "bench",
            "--quick",
            "--out",
            str(out),
            "--markdown",
            str(markdown),
        ],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=360,  # a bound for the smoke run of every scenario on a loaded machine
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "figure" in done.stdout and "target" in done.stdout
    for key in SCENARIO_KEYS:
        assert f"[bench] scenario {key}" in done.stdout
    reports = sorted(out.glob("bench-2*.json"))
    assert len(reports) == 1
    report = orjson.loads(reports[0].read_bytes())
    assert report["quick"] is True
    assert [r["key"] for r in report["results"]] == SCENARIO_KEYS
    assert {"cpu", "cores", "ramGb", "python"} <= set(report["machine"])
    for result in report["results"]:
        assert not result["status"].startswith("error"), result  # timeout/skipped may be
        assert result["status"] != "ok" or result["metrics"], result
    schemas = next(r for r in report["results"] if r["key"] == "8")
    if schemas["status"] == "ok":  # the schema set: a share and a CPU split per schema
        names = {metric["name"] for metric in schemas["metrics"]}
        for size in ("small", "medium", "large"):
            assert f"{size}: share of the limit" in names
            for stage in ("prompt", "call", "parse", "validate", "bookkeeping"):
                assert f"{size}: CPU per record, {stage}" in names
    table = (out / "BENCHMARKS.md").read_text()
    assert "<!-- bench:start -->" in table and "<!-- bench:end -->" in table
    assert not markdown.exists()  # a quick run never rewrites the published figures
