"""Per-record variables: checked when declared, drawn as a pure function of (job seed,
record index, variable), written into the record's prompt."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datagems.inference import prompts
from datagems.models import JobDetails
from datagems.quality import variables as v
from datagems.quality.conditioning import Conditioning

ALL_KINDS = [
    {"name": "city", "kind": "category", "values": ["A", "B", "C"], "weights": [50, 30, 20]},
    {"name": "age", "kind": "number", "min": 18, "max": 90, "integer": True},
    {"name": "score", "kind": "number", "min": 0, "max": 1, "distribution": "normal"},
    {"name": "joined", "kind": "date", "start": "2024-01-01", "end": "2024-12-31"},
    {"name": "who", "kind": "person", "attributes": ["name", "city", "age"], "locale": "de_DE"},
    {"name": "tags", "kind": "subset", "values": ["x", "y", "z"], "min_size": 1, "max_size": 2},
]


def test_every_kind_draws_values_of_its_kind_within_its_bounds() -> None:
    declared = v.parse_variables(ALL_KINDS)
    for index in range(200):
        got = v.draws(declared, 7, index)
        assert got["city"] in ("A", "B", "C")
        assert isinstance(got["age"], int) and 18 <= got["age"] <= 90
        assert 0 <= got["score"] <= 1
        assert "2024-01-01" <= got["joined"] <= "2024-12-31"
        assert set(got["who"]) == {"name", "city", "age"} and got["who"]["name"]
        assert 1 <= len(got["tags"]) <= 2 and set(got["tags"]) <= {"x", "y", "z"}


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**53), index=st.integers(0, 10**7))
def test_a_draw_depends_only_on_the_job_seed_the_index_and_the_variable(
    seed: int, index: int
) -> None:
    declared = v.parse_variables(ALL_KINDS)
    first = v.draws(declared, seed, index)
    v.draws(declared, seed, index + 1)  # other draws in between change nothing
    assert v.draws(list(reversed(declared)), seed, index) == first
    assert v.draws(declared, seed, index) == first


def test_weights_of_a_category_are_followed_over_many_records() -> None:
    (city,) = v.parse_variables(ALL_KINDS[:1])
    counts = Counter(v.draw(city, 11, i) for i in range(3000))
    assert abs(counts["A"] / 3000 - 0.5) < 0.03
    assert abs(counts["B"] / 3000 - 0.3) < 0.03
    assert abs(counts["C"] / 3000 - 0.2) < 0.03


@pytest.mark.parametrize(
    ("declared", "named"),
    [
        ({"name": "city", "kind": "category", "values": []}, "variable 'city': values"),
        (
            {"name": "c", "kind": "category", "values": ["a"], "weights": [1, 2]},
            "variable 'c': 2 weights for 1 values",
        ),
        ({"name": "n", "kind": "number", "min": 5, "max": 1}, "variable 'n': min (5) is above"),
        (
            {"name": "d", "kind": "date", "start": "2024-05-01", "end": "2024-01-01"},
            "variable 'd': start (2024-05-01) is after end",
        ),
        (
            {"name": "p", "kind": "person", "attributes": ["shoe_size"]},
            "variable 'p': unknown person attribute 'shoe_size'",
        ),
        ({"name": "p", "kind": "person", "locale": "xx_YY"}, "unknown locale 'xx_YY'"),
        (
            {"name": "s", "kind": "subset", "values": ["a"], "min_size": 2},
            "variable 's': sizes 2-1",
        ),
        ({"name": "bad name!", "kind": "category", "values": ["a"]}, "name"),
        ({"name": "x", "kind": "colour"}, "variable 'x': kind must be one of"),
    ],
)
def test_an_invalid_variable_is_refused_naming_it(declared: dict, named: str) -> None:
    with pytest.raises(v.VariableError) as caught:
        v.parse_variables([declared])
    assert named in str(caught.value)


def test_a_variable_declared_twice_is_refused() -> None:
    with pytest.raises(v.VariableError, match="'city' is declared twice"):
        v.parse_variables([ALL_KINDS[0], ALL_KINDS[0]])


def test_an_invalid_proposal_is_dropped_with_a_warning_naming_it() -> None:
    warnings: list[str] = []
    kept = v.proposed_variables(
        [ALL_KINDS[0], {"name": "n", "kind": "number", "min": 9, "max": 1}, "nonsense"],
        warnings,
    )
    assert [k["name"] for k in kept] == ["city"]
    assert len(warnings) == 2
    assert "proposed variable 'n': min (9) is above max (1) (dropped)" in warnings
    assert any("must be an object" in w for w in warnings)


def test_the_record_prompt_carries_one_line_per_variable_and_the_same_in_a_retry_round() -> None:
    details = JobDetails(
        id="job-1", owner="alice", json_schema={"type": "object"}, variables=ALL_KINDS[:2]
    )
    conditioning = Conditioning.of(details)
    assert conditioning is not None
    values = conditioning.values(4)
    first = prompts.record_messages(details=details, index=4, total=10, conditioning=conditioning)
    again = prompts.record_messages(
        details=details, index=4, total=10, round_=2, conditioning=conditioning
    )
    text = first[-1]["content"]
    assert f"- city: {values['city']}" in text and f"- age: {values['age']}" in text
    assert f"- city: {values['city']}" in again[-1]["content"]  # a retry round: same values
    assert conditioning.entry(4) == {"vars": values}


def test_a_job_without_variables_has_no_conditioning() -> None:
    details = JobDetails(id="job-2", owner="alice", json_schema={"type": "object"})
    assert Conditioning.of(details) is None
    assert (
        "Use these values"
        not in prompts.record_messages(details=details, index=0, total=1)[-1]["content"]
    )
