"""Parquet exports stream a row group at a time: peak memory is the same for 50 000 and
500 000 rows. Not a test, a measurement:
``.venv/bin/python -m tests.measure_parquet_memory 500000``."""

import resource
import sys

from datagems.job.parquet import parquet_chunks
from datagems.job.rows import ExportOptions, Header, Row

n = int(sys.argv[1])


def found():
    for i in range(n):
        yield Row(
            i,
            "ok",
            {
                "subject": f"Ticket {i}",
                "description": "It jams when printing double-sided pages, every time.",
                "priority": "low",
                "n": i,
            },
        )


h = Header(
    ["subject", "description", "priority", "n"],
    {"subject": {"str"}, "description": {"str"}, "priority": {"str"}, "n": {"int"}},
)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
size = sum(len(c) for c in parquet_chunks(found(), h, ExportOptions(fmt="parquet")))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
grew = (after - before) / 1024
print(f"{n} rows: {size / 1e6:.1f} MB, peak RSS {after / 1024:.0f} MB (+{grew:.0f} MB writing)")
