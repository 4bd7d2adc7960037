import csv
import io

import orjson

from datagems.job import export
from datagems.job.export import _csv, _json, _jsonl, csv_cell


def entries(*items):
    return iter(
        [
            {"i": i, "ok": data is not None, **({"data": data} if data is not None else {})}
            for i, data in items
        ]
    )


def test_json_export_is_an_array_by_index_with_null_for_failed_and_missing() -> None:
    body = b"".join(_json(entries((0, {"a": 1}), (1, None), (3, {"a": 3})), total=5))
    assert orjson.loads(body) == [{"a": 1}, None, None, {"a": 3}, None]


def test_jsonl_export_has_one_line_per_ok_record() -> None:
    body = b"".join(_jsonl(entries((0, {"a": 1}), (1, None), (2, {"b": [1, 2]}))))
    assert [orjson.loads(line) for line in body.splitlines()] == [{"a": 1}, {"b": [1, 2]}]


def test_csv_export_has_the_union_header_json_cells_and_rfc4180_quoting() -> None:
    rows = [(0, {"name": 'Ann "A", B', "tags": ["x", "y"]}), (1, {"name": "Bo\nb", "age": 3})]
    header = export._csv_header(entries(*rows))
    body = b"".join(_csv(entries(*rows), header)).decode()

    assert header == ["name", "tags", "age"]
    assert body.startswith('name,tags,age\r\n"Ann ""A"", B","[""x"",""y""]",\r\n')
    assert list(csv.reader(io.StringIO(body)))[2] == ["Bo\nb", "", "3"]


def test_csv_columns_follow_the_schemas_field_order_then_other_keys_as_seen() -> None:
    rows = [(0, {"age": 3, "name": "Ann", "extra": 1}), (1, {"name": "Bob", "nick": "b"})]
    header = export._csv_header(entries(*rows), ("name", "age", "email"))
    assert header == ["name", "age", "extra", "nick"]  # no record has an email: no column


def test_csv_cells_that_start_a_formula_are_neutralised_but_numbers_are_not() -> None:
    for text in ("=SUM(A1)", "+1", "-cmd", "@x", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell(-5) == "-5"
    assert csv_cell(True) == "true"
    assert csv_cell(None) == ""
    assert csv_cell({"k": "=x"}) == '{"k":"=x"}'


def test_a_csv_with_no_ok_record_still_has_the_schemas_header() -> None:
    failed = entries((0, None), (1, None))
    header = export._csv_header(failed, ("name", "age"))
    assert header == ["name", "age"]
    assert b"".join(_csv(entries((0, None), (1, None)), header)) == b"name,age\r\n"
    # no schema fields known either: an empty file, not one blank line
    assert b"".join(_csv(entries((0, None)), export._csv_header(entries((0, None))))) == b""
