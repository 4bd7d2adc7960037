"""Parquet exports stream a row group at a time: peak memory is the same for 50 000 and
500 000 rows. Not a test, a measurement:
``.venv/bin/python -m tests.measure_parquet_memory 500000``."""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator

from datagems.job.parquet import parquet_chunks
from datagems.job.rows import ExportOptions, Header, Row

TEXT = "It jams when printing double-sided pages, every time."


def main(n: int) -> None:
    def found() -> Iterator[Row]:
        for i in range(n):
            yield Row(i, "ok", {"subject": f"Ticket {i}", "description": TEXT, "n": i})

    kinds = {"subject": {"str"}, "description": {"str"}, "n": {"int"}}
    header = Header(["subject", "description", "n"], kinds)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = sum(len(c) for c in parquet_chunks(found(), header, ExportOptions(fmt="parquet")))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    grew = (after - before) / 1024
    print(f"{n} rows: {size / 1e6:.1f} MB, peak RSS {after / 1024:.0f} MB (+{grew:.0f} MB writing)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
