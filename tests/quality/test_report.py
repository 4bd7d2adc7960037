"""The quality report's builder over hand-made records (``datagems.quality.report``):
the histogram rule, field figures, and each variable's requested distribution against
the observed one (the variables as the vars contract declares them, values under
``vars`` in the result lines)."""

from __future__ import annotations

import random

import pytest

from datagems.models import PeerState
from datagems.quality.report import ReportBuilder, histogram, usage_of

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "review": {"type": "string"},
        "age": {"type": "integer"},
        "plan": {"type": "string", "enum": ["free", "pro"]},
        "joined": {"type": "string", "format": "date"},
    },
}


def build(entries: list[dict], variables: list[dict] | None = None) -> dict:
    builder = ReportBuilder(schema=SCHEMA, variables=variables, threshold=0.8)
    for entry in entries:
        builder.add(entry)
    return builder.finish(len(entries))


def test_histogram_follows_the_documented_rule() -> None:
    assert histogram([]) == []
    assert histogram([3, 3]) == [{"lo": 3, "hi": 3, "count": 2}]
    assert [b["count"] for b in histogram([1, 2, 2, 5])] == [1, 2, 0, 0, 1]
    wide = histogram([0.0, 50.0, 100.0, 99.9])
    assert len(wide) == 10 and [b["count"] for b in wide] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 2]


def test_field_figures_count_missing_empty_distinct_and_top_values() -> None:
    entries = [
        {
            "i": 0,
            "ok": True,
            "data": {"name": "Ann", "age": 30, "plan": "pro", "joined": "2024-01-02"},
        },
        {"i": 1, "ok": True, "data": {"name": "", "age": 31, "plan": "pro"}},
        {"i": 2, "ok": True, "data": {"name": "Ann", "age": None, "plan": "free", "extra": [1]}},
        {"i": 3, "ok": False, "reason": "schema_violation", "error": "x"},
    ]
    report = build(entries)
    fields = {f["name"]: f for f in report["fields"]}
    assert report["records"] == {"total": 4, "ok": 3, "failed": 1, "missing": 0}
    assert fields["name"]["present"] == 3 and fields["name"]["empty"] == 1
    assert fields["name"]["distinct"] == 2
    assert fields["name"]["top"][0] == {"value": "Ann", "count": 2, "share": round(2 / 3, 4)}
    assert fields["age"]["missing"] == 1 and fields["age"]["missingRate"] == round(1 / 3, 4)
    assert [b["count"] for b in fields["age"]["histogram"]] == [1, 1]
    assert fields["plan"]["kind"] == "category"
    assert fields["joined"]["histogram"][0]["from"] == "2024-01-02"
    assert fields["review"]["present"] == 0 and fields["review"]["missingRate"] == 1.0
    assert fields["extra"]["inSchema"] is False
    assert report["failures"] == {"failed": 1, "reasons": {"schema_violation": 1}}


def test_a_weighted_category_compares_requested_and_observed_shares() -> None:
    rng = random.Random(7)
    variable = {
        "name": "city",
        "kind": "category",
        "values": ["Oslo", "Rome", "Lima"],
        "weights": [50, 30, 20],
    }
    drawn = rng.choices(["Oslo", "Rome", "Lima"], weights=[50, 30, 20], k=3000)
    entries = [
        {"i": i, "ok": True, "data": {"name": f"n{i}"}, "vars": {"city": city}}
        for i, city in enumerate(drawn)
    ]
    section = build(entries, [variable])["variables"][0]
    rows = {row["value"]: row for row in section["values"]}
    assert [rows[c]["requested"] for c in ("Oslo", "Rome", "Lima")] == [0.5, 0.3, 0.2]
    for city in ("Oslo", "Rome", "Lima"):
        assert rows[city]["count"] == drawn.count(city)
        assert rows[city]["observed"] == round(drawn.count(city) / 3000, 4)
    assert section["maxDeviation"] < 0.03 and section["records"] == 3000


def test_numbers_dates_and_subsets_are_binned_against_what_was_requested() -> None:
    variables = [
        {
            "name": "age",
            "kind": "number",
            "min": 0,
            "max": 100,
            "distribution": "normal",
            "mean": 50,
            "stddev": 10,
        },
        {"name": "size", "kind": "number", "min": 1, "max": 4, "integer": True},
        {"name": "day", "kind": "date", "start": "2024-01-01", "end": "2024-01-10"},
        {
            "name": "tags",
            "kind": "subset",
            "values": ["a", "b", "c", "d"],
            "min_size": 1,
            "max_size": 3,
        },
    ]
    entries = [
        {
            "i": i,
            "ok": True,
            "data": {"name": "x"},
            "vars": {
                "age": 50 + (i % 3),
                "size": 1 + i % 4,
                "day": f"2024-01-0{1 + i % 9}",
                "tags": ["a", "b"][: 1 + i % 2],
            },
        }
        for i in range(40)
    ]
    age, size, day, tags = build(entries, variables)["variables"]
    assert len(age["bins"]) == 10 and sum(b["count"] for b in age["bins"]) == 40
    assert age["bins"][5]["requested"] == pytest.approx(0.3413, abs=0.002)  # 50-60 of N(50,10)
    assert age["bins"][5]["observed"] == 1.0
    assert [b["requested"] for b in size["bins"]] == [0.25] * 4
    assert [b["count"] for b in size["bins"]] == [10, 10, 10, 10]
    assert [b["requested"] for b in day["bins"]] == [0.1] * 10
    assert day["bins"][9]["count"] == 0 and day["outside"] == 0
    assert {r["value"]: r["requested"] for r in tags["values"]} == {
        "a": 0.5,
        "b": 0.5,
        "c": 0.5,
        "d": 0.5,
    }
    assert {r["value"]: r["observed"] for r in tags["values"]}["a"] == 1.0
    assert [s["size"] for s in tags["sizes"]] == [1, 2, 3]


def test_near_duplicates_pair_an_earlier_and_a_later_record() -> None:
    text = "A sturdy commuter bike that survived three winters without a single repair."
    entries = [
        {"i": 0, "ok": True, "data": {"name": "Ann Lee", "review": text, "age": 30}},
        {
            "i": 1,
            "ok": True,
            "data": {"name": "Bo Chen", "review": "Too heavy for hills.", "age": 41},
        },
        {"i": 2, "ok": True, "data": {"name": "Ann Lee", "review": text[:-1] + "!", "age": 31}},
    ]
    near = build(entries)["nearDuplicates"]
    assert near["pairCount"] == 1 and near["later"] == [2]
    assert near["pairs"][0]["a"] == 0 and near["pairs"][0]["b"] == 2
    assert near["rate"] == round(1 / 3, 4)


def test_cost_is_given_only_when_the_profile_has_prices() -> None:
    peers = {
        "a": PeerState(peer_id="a", tokens_in=1_000_000, tokens_out=500_000),
        "b": PeerState(peer_id="b", tokens_in=1_000_000, tokens_out=500_000),
    }
    assert usage_of(peers, (None, None))["cost"] is None
    usage = usage_of(peers, (0.5, 2.0))
    assert usage["tokensIn"] == 2_000_000 and usage["tokensOut"] == 1_000_000
    assert usage["cost"]["total"] == 3.0


def test_a_variable_declaration_the_report_cannot_read_is_named_not_fatal() -> None:
    broken = {"name": "size", "kind": "number", "max": 4}  # no min
    entries = [{"i": 0, "ok": True, "data": {"name": "x"}, "vars": {"size": 2}}]
    (section,) = build(entries, [broken])["variables"]
    assert section["name"] == "size" and "could not be read" in section["error"]
