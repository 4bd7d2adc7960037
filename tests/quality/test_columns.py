"""The export option ``vars``: each ok record gains its variables' values as columns."""

from __future__ import annotations

from datagems.quality.columns import with_var_columns

ENTRIES = [
    {"i": 0, "ok": True, "data": {"name": "Ada"}, "vars": {"city": "Lyon", "p": {"age": 3}}},
    {"i": 1, "ok": False, "error": "x", "vars": {"city": "Pune", "p": {"age": 4}}},
    {"i": 2, "ok": True, "data": {"name": "Alan"}, "seedRow": 7},
]


def test_json_exports_nest_the_values_under_vars() -> None:
    got = list(with_var_columns(iter(ENTRIES), flat=False))
    assert got[0]["data"] == {"name": "Ada", "_vars": {"city": "Lyon", "p": {"age": 3}}}
    assert got[1] == ENTRIES[1]  # a failed record has no data to extend
    assert got[2]["data"] == {"name": "Alan", "_seedRow": 7}


def test_csv_exports_get_one_column_per_variable() -> None:
    got = list(with_var_columns(iter(ENTRIES), flat=True))
    assert got[0]["data"] == {"name": "Ada", "_vars.city": "Lyon", "_vars.p": {"age": 3}}
    assert ENTRIES[0]["data"] == {"name": "Ada"}  # the merged entries are not changed
