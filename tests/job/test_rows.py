"""The export's row set: every format has the same rows, whatever the options."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from datagems.job import rows as job_rows
from datagems.job.export import csv_cell
from datagems.job.parquet import parquet_chunks
from datagems.job.rows import META, ExportOptions, Row, file_name, flatten
from datagems.models import JobBase

SCHEMA = {
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "address": {"type": "object", "properties": {"city": {}, "zip": {}}},
    }
}
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=8))
records = st.fixed_dictionaries(
    {"name": st.text(max_size=10)},
    optional={
        "age": st.integers(0, 120),
        "address": st.fixed_dictionaries({"city": st.text(max_size=6)}, optional={"zip": scalars}),
        "tags": st.lists(st.text(max_size=4), max_size=3),
    },
)


@st.composite
def slices(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int]:
    total = draw(st.integers(0, 12))
    entries = []
    for index in range(total):
        kind = draw(st.sampled_from(["ok", "failed", "none"]))
        if kind == "ok":
            entries.append({"i": index, "ok": True, "data": draw(records)})
        elif kind == "failed":
            entries.append({"i": index, "ok": False, "error": draw(st.text(max_size=12))})
    return entries, total


options_ = st.builds(
    ExportOptions,
    meta=st.sampled_from([(), ("status",), ("index", "status", "error"), ("index",)]),
    include_failed=st.booleans(),
    flatten=st.booleans(),
)


def rendered(entries: list[dict[str, Any]], total: int, options: ExportOptions) -> dict[str, Any]:
    def found() -> Any:
        return job_rows.rows(iter(entries), total, options.include_failed)

    header = job_rows._header(found(), SCHEMA, options)
    return {
        "json": b"".join(job_rows._json(found(), options)),
        "jsonl": b"".join(job_rows._jsonl(found(), options)),
        "csv": b"".join(job_rows._csv(found(), header, options)).decode(),
        "parquet": b"".join(parquet_chunks(found(), header, options)),
        "header": header,
    }


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


@settings(max_examples=60, deadline=None)
@given(slices(), options_)
def test_json_jsonl_csv_and_parquet_have_the_same_rows(
    drawn: tuple[list[dict[str, Any]], int], options: ExportOptions
) -> None:
    entries, total = drawn
    files = rendered(entries, total, options)
    as_json = orjson.loads(files["json"])
    as_jsonl = [orjson.loads(line) for line in files["jsonl"].splitlines()]
    table = list(csv.reader(io.StringIO(files["csv"])))
    parquet = pq.read_table(io.BytesIO(files["parquet"])).to_pylist()
    header = files["header"].columns
    expected = total if options.include_failed else sum(1 for e in entries if e["ok"])
    assert as_json == as_jsonl
    assert len(as_json) == expected == len(parquet)
    assert len(table) == (expected + 1 if header else expected)
    for at, item in enumerate(as_json):
        cells = table[at + 1] if header else []
        if item is None:  # a failed row without meta columns: empty everywhere
            assert all(cell == "" for cell in cells)
            assert all(value is None for value in parquet[at].values())
            continue
        flat = flatten(item) if options.flatten else item
        for column, cell in zip(header, cells, strict=True):
            value = flat.get(column)
            assert cell == csv_cell(value), column  # read back as written, quoting and all
            in_parquet = parquet[at][column]
            assert _text(in_parquet) == _text(value) or in_parquet == value, column
    if "index" in options.meta:
        indices = [item["_index"] for item in as_json]
        assert indices == sorted(indices)
        if options.include_failed:
            assert indices == list(range(total))


def test_by_default_every_index_is_a_row_and_a_failed_one_is_null_as_the_original() -> None:
    entries = [{"i": 0, "ok": True, "data": {"a": 1}}, {"i": 1, "ok": False, "error": "x"}]
    files = rendered(entries, 3, ExportOptions())
    assert orjson.loads(files["json"]) == [{"a": 1}, None, None]
    assert files["jsonl"] == b'{"a":1}\nnull\nnull\n'


def test_with_meta_columns_a_failed_row_names_its_status_and_error() -> None:
    entries = [{"i": 0, "ok": False, "error": "schema_violation: 'x' is required"}]
    options = ExportOptions(meta=META)
    files = rendered(entries, 2, options)
    assert orjson.loads(files["json"]) == [
        {"_index": 0, "_status": "failed", "_error": "schema_violation: 'x' is required"},
        {"_index": 1, "_status": "missing", "_error": "no result"},
    ]


def test_flattening_makes_nested_fields_columns_in_the_schemas_order() -> None:
    entries = [{"i": 0, "ok": True, "data": {"address": {"zip": "1", "city": "Oslo"}, "name": "A"}}]
    flat = rendered(entries, 1, ExportOptions(flatten=True))
    assert flat["csv"].splitlines()[0] == "name,address.city,address.zip"
    nested = rendered(entries, 1, ExportOptions())
    assert nested["csv"].splitlines() == ["name,address", 'A,"{""zip"":""1"",""city"":""Oslo""}"']


def test_the_file_name_is_the_title_made_safe_with_the_ids_short_suffix() -> None:
    job = JobBase.model_validate(
        {"id": "job_1796076757346_3f3fe3", "owner": "a", "title": "../Ünï cöde: tickets?!"}
    )
    assert file_name(job, "csv") == "n-c-de-tickets-3f3fe3.csv"
    assert file_name(job.model_copy(update={"title": "///"}), "json") == "dataset-3f3fe3.json"


def test_a_row_is_one_per_index_even_when_the_slices_hold_gaps() -> None:
    found = list(job_rows.rows(iter([{"i": 2, "ok": True, "data": 1}]), 4, True))
    assert [(r.index, r.status) for r in found] == [
        (0, "missing"),
        (1, "missing"),
        (2, "ok"),
        (3, "missing"),
    ]
    assert found[2] == Row(2, "ok", 1)


def test_parquet_is_streamed_a_row_group_at_a_time() -> None:
    """Memory holds one row group, whatever the size of the job: the first bytes go out
    before the rows after the first group are read."""
    read = 0

    def found() -> Any:
        nonlocal read
        for index in range(3 * job_rows.PARQUET_ROWS):
            read += 1
            yield Row(index, "ok", {"n": index, "text": "x" * 20})

    options = ExportOptions(fmt="parquet")
    header = job_rows.Header(["n", "text"], {"n": {"int"}, "text": {"str"}})
    chunks = parquet_chunks(found(), header, options)
    first = next(chunk for chunk in chunks if chunk)
    assert first.startswith(b"PAR1")
    assert read <= job_rows.PARQUET_ROWS + 1
    rest = b"".join(chunks)
    table = pq.read_table(io.BytesIO(first + rest))
    assert table.num_rows == 3 * job_rows.PARQUET_ROWS and read == 3 * job_rows.PARQUET_ROWS
