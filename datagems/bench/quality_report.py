"""The quality report's build cost: ``python -m datagems.bench.quality_report N``.

Builds the report (fields, one variable, near-duplicates) over N mock records in process
(no store, no network) and prints the time per record and, with ``--memory``, the peak
memory traced while building (tracemalloc slows the build several times: time and
memory are measured in separate runs)."""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc

from datagems.mock.drafts import draft_schema
from datagems.mock.records import RecordFactory
from datagems.quality.report import ReportBuilder

DESCRIPTION = "Customers of a bike shop: name, age, city, signup date, a review."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("records", type=int)
    parser.add_argument("--memory", action="store_true", help="trace the peak memory")
    args = parser.parse_args()
    schema = draft_schema(DESCRIPTION, random.Random(1))
    schema["properties"]["review"] = {"type": "string"}
    factory = RecordFactory(schema)
    rng = random.Random(2)
    records = [factory.make(rng) for _ in range(args.records)]
    variable = {"name": "city", "kind": "category", "values": ["a", "b", "c"]}
    if args.memory:
        tracemalloc.start()
    start = time.perf_counter()
    builder = ReportBuilder(schema=schema, variables=[variable], threshold=0.8)
    for index, data in enumerate(records):
        builder.add({"i": index, "ok": True, "data": data, "vars": {"city": "abc"[index % 3]}})
    report = builder.finish(args.records)
    took = time.perf_counter() - start
    near = report["nearDuplicates"]
    line = (
        f"{args.records} records: {took:.2f} s ({1e6 * took / args.records:.0f} us/record); "
        f"near-duplicate pairs {near['pairCount']}, rate {near['rate']}"
    )
    if args.memory:
        _, peak = tracemalloc.get_traced_memory()
        line += f"; peak traced {peak / 1e6:.1f} MB ({peak / args.records:.0f} B/record)"
    print(line)


if __name__ == "__main__":
    main()
