"""Seed files: checked line by line at upload; rows chosen per record, reproducibly."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datagems.quality import seeds


def test_a_csv_file_gives_one_row_per_line_under_its_header() -> None:
    rows = seeds.parse_seed_file(b"name,city\nAda,London\n\nAlan,Wilmslow\n", "people.csv")
    assert rows == [{"name": "Ada", "city": "London"}, {"name": "Alan", "city": "Wilmslow"}]


def test_a_jsonl_file_gives_one_row_per_object() -> None:
    rows = seeds.parse_seed_file(b'{"a": 1}\n{"a": 2, "b": "x"}\n', "rows.jsonl")
    assert rows == [{"a": 1}, {"a": 2, "b": "x"}]


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"a,b\n1,2\n3\n", "x.csv", "line 3: 1 values for 2 columns"),
        (b'{"a": 1}\n{"a": 2\n', "x.jsonl", "line 2: not valid JSON"),
        (b'{"a": 1}\n[1, 2]\n', "x.jsonl", "line 2: each line must be a non-empty JSON object"),
        (b'{"a": 1}\n\n{"a": {"b": 1}}\n', "x.jsonl", "line 3: field 'a' must be a string"),
        (b"a,a\n1,2\n", "x.csv", "line 1: every column needs a name, each used once"),
        (b"a,b\n1,2\n\xff\xfe,3\n", "x.csv", "line 3: the file is not UTF-8 text"),
        (b"", "x.csv", "line 1: a CSV file starts with a header line"),
        (b"a\n", "x.csv", "the file has no rows"),
    ],
)
def test_a_malformed_seed_file_is_refused_naming_the_line(
    data: bytes, name: str, message: str
) -> None:
    with pytest.raises(seeds.SeedFileError) as caught:
        seeds.parse_seed_file(data, name)
    assert message in caught.value.message
    assert caught.value.status == 400


def test_without_replacement_uses_every_row_once_per_pass() -> None:
    first_pass = [seeds.row_for("without_replacement", 42, i, 500) for i in range(500)]
    second_pass = [seeds.row_for("without_replacement", 42, i, 500) for i in range(500, 1000)]
    assert sorted(first_pass) == list(range(500)) == sorted(second_pass)
    assert first_pass != list(range(500)) and first_pass != second_pass  # shuffled, per pass
    assert first_pass == [seeds.row_for("without_replacement", 42, i, 500) for i in range(500)]


def test_in_order_and_sampled_rows() -> None:
    assert [seeds.row_for("in_order", 1, i, 3) for i in range(5)] == [0, 1, 2, 0, 1]
    sampled = Counter(seeds.row_for("sampled", 1, i, 3) for i in range(300))
    assert set(sampled) == {0, 1, 2}
    assert seeds.row_for("sampled", 1, 17, 3) == seeds.row_for("sampled", 1, 17, 3)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**53),
    rows=st.integers(1, 400),
    passes=st.integers(1, 3),
    order=st.randoms(use_true_random=False),
)
def test_without_replacement_each_row_is_used_once_per_pass_whoever_makes_which_record(
    seed: int, rows: int, passes: int, order
) -> None:
    """Records made in any order, some twice (a takeover, a resume), by any peer: merged
    by index, every pass of ``rows`` records uses every row exactly once."""
    total = rows * passes
    made = list(range(total)) + order.sample(range(total), k=min(total, 25))  # redone ones
    order.shuffle(made)
    by_index = {i: seeds.row_for("without_replacement", seed, i, rows) for i in made}
    for start in range(0, total, rows):
        used = [by_index[i] for i in range(start, start + rows)]
        assert sorted(used) == list(range(rows))
