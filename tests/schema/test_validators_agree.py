"""The compiled validator (jsonschema-rs) and the bounded jsonschema class give the same verdicts.

``RecordValidator`` checks a record with the compiled validator first and trusts it only
when it accepts; these tests run both alone on every schema the suite uses (module-level
schemas of every test module, the benchmark's schema set, the mock's drafted schemas), on
records made for each (valid ones, violations, mutations), and on generated schemas and
values, and find the same valid/invalid verdict every time. (``tests/conftest.py`` does
the same for every record any test validates in process.) They also show which schemas
keep the bounded path, and that the pattern-cost bound holds on the compiled one.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests
from datagems.bench.scenarios.schema_set import SCHEMAS as BENCH_SCHEMAS
from datagems.errors import SchemaInvalid
from datagems.mock.drafts import draft_schema
from datagems.mock.records import RecordFactory
from datagems.schema.bounded import MAX_PATTERN_SUBJECT, PATTERN_TIMEOUT
from datagems.schema.check import check_schema
from datagems.schema.sanitize import META_SCHEMA_URL
from datagems.schema.validate import RecordValidator, compile_validator, compiled_path_refusal

DRAFT_PROMPTS = (
    "customers of a software company with name, email, plan",
    "product reviews with a rating and sentiment label for classification",
    "used vehicles for sale with make, model, year and price",
    "orders of an online shop",
    "employees with department and salary",
    "patients of a clinic",
    "books in a library",
    "",
)


def _schema_like(value: object) -> bool:
    return isinstance(value, dict) and (
        isinstance(value.get("properties"), dict) or value.get("type") == "object"
    )


def _usable(schema: dict[str, Any]) -> bool:
    try:
        check_schema(schema)
    except SchemaInvalid:
        return False
    return True


def suite_schemas() -> dict[str, dict[str, Any]]:
    """Every usable record schema the suite keeps at module level, and the generated ones."""
    found: dict[str, dict[str, Any]] = {}

    def collect(name: str, value: object) -> None:
        if _schema_like(value) and _usable(value):  # type: ignore[arg-type]
            found.setdefault(name, value)  # type: ignore[assignment]
        elif isinstance(value, dict):
            for key, inner in value.items():
                if _schema_like(inner) and _usable(inner):
                    found.setdefault(f"{name}[{key!r}]", inner)

    for info in pkgutil.walk_packages(tests.__path__, "tests."):
        if info.name == __name__:
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.isupper():
                collect(f"{info.name}.{name}", value)
    for name, schema in BENCH_SCHEMAS.items():
        found[f"bench {name}"] = schema
    for seed, prompt in enumerate(DRAFT_PROMPTS):
        found[f"mock draft {prompt[:20]!r}"] = draft_schema(prompt, random.Random(seed))
    return found


SUITE = suite_schemas()

LONG = "Z" * (MAX_PATTERN_SUBJECT + 5)
ODD_VALUES: tuple[Any, ...] = (None, True, 0, -1, 1.5, 10**20, "", "x", LONG, [], {}, ["a"])


def mutations(record: Any, rng: random.Random) -> list[Any]:
    """``record`` with one field dropped, replaced, emptied or made too long, or one added."""
    if not isinstance(record, dict):
        return [record]
    out: list[Any] = [{**record, "unexpected_field": 1}]
    for name, value in record.items():
        out.append({k: v for k, v in record.items() if k != name})
        out.append({**record, name: rng.choice(ODD_VALUES)})
        if isinstance(value, dict):
            for inner in mutations(value, rng)[:4]:
                out.append({**record, name: inner})
        if isinstance(value, list) and value:
            out.append({**record, name: [*value, *value]})
            out.append({**record, name: [rng.choice(ODD_VALUES)]})
    return out


def records_for(schema: dict[str, Any], seed: int) -> list[Any]:
    factory = RecordFactory(schema)
    rng = random.Random(seed)
    made = [factory.make(rng) for _ in range(25)]
    broken = [factory.violate(rng) for _ in range(10)]
    mutated = [m for record in made[:6] for m in mutations(copy.deepcopy(record), rng)]
    return [*made, *broken, *mutated, *ODD_VALUES]


def assert_same_verdicts(validator: RecordValidator, record: Any) -> None:
    bounded = validator.bounded_errors(record)
    compiled = validator.compiled_verdict(record)
    if compiled is not None:
        assert compiled == (not bounded), (record, bounded)
    assert validator.errors(record) == bounded  # the same messages users read


def test_the_suite_has_schemas_of_every_size_and_most_take_the_compiled_path():
    assert len(SUITE) >= 20
    compiled = [name for name, schema in SUITE.items() if compile_validator(schema).compiled]
    assert len(compiled) >= len(SUITE) * 2 // 3, sorted(set(SUITE) - set(compiled))
    assert all(f"bench {size}" in compiled for size in ("small", "medium", "large"))


@pytest.mark.parametrize("name", sorted(SUITE))
def test_both_validators_give_the_same_verdict_on_every_record_made_for_a_suite_schema(name):
    schema = SUITE[name]
    validator = compile_validator(schema)
    records = records_for(schema, seed=len(name))
    for record in records:
        assert_same_verdicts(validator, record)
    verdicts = {not validator.bounded_errors(record) for record in records}
    assert verdicts == {True, False}  # both sides of the verdict were exercised


# --------------------------------------------------------------------------- generated

NAMES = ("a", "b", "c", "id", "x-y")
PATTERNS = ("^[a-z]+$", "^[A-Z]{2}\\d+$", "\\d", "^EMP-[0-9]{3}$", "^\\S+@\\S+$", "x$", "^.{2,4}$")
FORMATS = ("email", "date", "date-time", "uuid", "ipv4", "ipv6", "uri", "regex", "hostname")
SAMPLES = (
    "abc",
    "AB12",
    "EMP-123",
    "a@b",
    "no at",
    "2024-01-15",
    "2024-02-30",
    "2024-01-15T10:00:00Z",
    "12345678-1234-5678-1234-567812345678",
    "10.0.0.1",
    "::1",
    "999.1.1.1",
    "https://example.com/x",
    "[a-",
    "x\n",
    "\u0663\u0664",
    "é",
    "😀😀",
    "",
)
numbers = st.one_of(
    st.integers(-5, 5),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([0.1, 0.3, 0.7, 19.99, 2.5, 1e-9, 1e300, -0.0]),
)
scalars = st.one_of(
    st.none(), st.booleans(), numbers, st.sampled_from(SAMPLES), st.text(max_size=6)
)
exact = st.one_of(st.integers(-(2**53) + 1, 2**53 - 1), st.floats(-1e15, 1e15, allow_nan=False))
schema_scalars = st.one_of(
    st.none(), st.booleans(), exact, st.sampled_from(SAMPLES), st.text(max_size=6)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(NAMES), inner, max_size=4)
    ),
    max_leaves=12,
)
bound = st.one_of(st.integers(-100, 100), st.floats(-1e3, 1e3, allow_nan=False))


def keywords_for_scalars() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(
                st.sampled_from(["string", "integer", "number", "boolean", "null", "array"]),
                st.lists(st.sampled_from(["string", "integer", "null"]), min_size=1, max_size=2),
            ),
            "minLength": st.integers(0, 4),
            "maxLength": st.integers(0, 6),
            "pattern": st.sampled_from(PATTERNS),
            "format": st.sampled_from(FORMATS),
            "minimum": bound,
            "maximum": bound,
            "exclusiveMinimum": bound,
            "exclusiveMaximum": bound,
            "multipleOf": st.sampled_from([2, 3, 0.5, 0.1, 0.01, 1.5]),
            "enum": st.lists(schema_scalars, min_size=1, max_size=4),
            "const": schema_scalars,
        },
    )


def combine(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = st.sampled_from(NAMES)
    return st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("object")},
            optional={
                "properties": st.dictionaries(names, inner, max_size=4),
                "required": st.lists(names, max_size=3, unique=True),
                "additionalProperties": st.one_of(st.booleans(), inner),
                "minProperties": st.integers(0, 3),
                "maxProperties": st.integers(0, 4),
                "propertyNames": st.one_of(
                    st.fixed_dictionaries({"pattern": st.sampled_from(PATTERNS)}),
                    st.fixed_dictionaries({"maxLength": st.integers(1, 2)}),
                ),
                "dependentRequired": st.dictionaries(names, st.lists(names, max_size=2)),
                "dependentSchemas": st.dictionaries(names, inner, max_size=2),
            },
        ),
        st.fixed_dictionaries(
            {"type": st.just("array")},
            optional={
                "items": st.one_of(st.booleans(), inner),
                "prefixItems": st.lists(inner, min_size=1, max_size=3),
                "minItems": st.integers(0, 3),
                "maxItems": st.integers(0, 4),
                "uniqueItems": st.booleans(),
                "contains": inner,
                "minContains": st.integers(0, 2),
            },
        ),
        st.fixed_dictionaries({"allOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"$ref": st.sampled_from(["#/$defs/d0", "#/$defs/d1"])}),
    )


subschemas = st.recursive(st.one_of(st.booleans(), keywords_for_scalars()), combine, max_leaves=8)
schemas = st.builds(
    lambda props, required, additional, defs: {
        "$schema": META_SCHEMA_URL,
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": additional,
        "$defs": {"d0": defs[0], "d1": defs[1]},
    },
    st.dictionaries(st.sampled_from(NAMES), subschemas, min_size=1, max_size=4),
    st.lists(st.sampled_from(NAMES), max_size=3, unique=True),
    st.one_of(st.booleans(), subschemas),
    st.tuples(
        st.one_of(keywords_for_scalars(), st.booleans()),
        st.one_of(keywords_for_scalars(), st.booleans()),
    ),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(schema=schemas, record=values, seed=st.integers(0, 2**16))
def test_both_validators_give_the_same_verdict_on_generated_schemas_and_values(
    schema, record, seed
):
    if not _usable(schema):
        return
    validator = RecordValidator(schema)
    assert validator.compiled, compiled_path_refusal(schema)  # only shared keywords here
    candidates = [record, {"a": record}]
    try:
        made = RecordFactory(schema).make(random.Random(seed))
    except (RecursionError, ValueError, TypeError, KeyError, IndexError):
        made = None
    candidates.append(made)
    for candidate in candidates:
        assert_same_verdicts(validator, candidate)


# --------------------------------------------------------------------------- routing

ANY = {"type": "string"}


@pytest.mark.parametrize(
    ("part", "why"),
    [
        ({"not": ANY}, "a negation at /properties/v/not"),
        ({"oneOf": [ANY, {"type": "integer"}]}, "oneOf at /properties/v/oneOf"),
        ({"if": ANY, "then": {"minLength": 2}}, "if / then / else at /properties/v/if"),
        ({"contains": ANY, "maxContains": 2}, "maxContains at /properties/v/maxContains"),
        ({"patternProperties": {"^x": ANY}}, "patternProperties at /properties/v/pattern"),
        ({"unevaluatedProperties": False}, "unevaluatedProperties at /properties/v/uneval"),
        ({"dependencies": {"a": ["b"]}}, "(dependencies) at /properties/v/dependencies"),
        ({"$anchor": "here"}, "$anchor at /properties/v/$anchor"),
        ({"$schema": META_SCHEMA_URL}, "a nested $schema at /properties/v"),
        ({"maximum": 2**53}, "a number beyond 2**53"),
        ({"enum": [2**60, 1]}, "a number beyond 2**53"),
    ],
)
def test_a_schema_with_a_keyword_the_libraries_may_read_differently_keeps_the_bounded_path(
    part, why
):
    schema = {"type": "object", "properties": {"v": part}}
    assert why in (compiled_path_refusal(schema) or "")
    validator = compile_validator(schema)
    assert not validator.compiled
    assert validator.errors({"v": "a"}) == validator.bounded_errors({"v": "a"})


def test_a_refused_keyword_reached_only_through_a_reference_keeps_the_bounded_path():
    schema = {
        "type": "object",
        "properties": {"v": {"$ref": "#/x-library/negated"}},
        "x-library": {"negated": {"not": {"type": "string"}}},
    }
    assert compiled_path_refusal(schema) == "a negation at /properties/v/$ref/not"
    assert compile_validator(schema).errors({"v": "s"})  # the reference is applied


def test_a_record_the_compiled_validator_refuses_gets_jsonschemas_messages():
    validator = compile_validator(BENCH_SCHEMAS["medium"])
    assert validator.compiled
    record = RecordFactory(BENCH_SCHEMAS["medium"]).make(random.Random(1))
    record["quantity"] = 0
    record["shipping_address"]["country"] = "PRT"
    assert validator.errors(record) == [
        "/quantity: 0 is less than the minimum of 1",
        "/shipping_address/country: 'PRT' is too long",
    ]


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_a_value_the_compiled_validator_cannot_take_is_judged_by_the_bounded_path(number):
    # not JSON, but extract_json's tolerant scan (the json module) reads NaN and Infinity
    validator = compile_validator({"type": "object", "properties": {"n": {"type": "number"}}})
    assert validator.compiled
    assert validator.compiled_verdict({"n": number}) is False
    assert validator.errors({"n": number}) == validator.bounded_errors({"n": number}) == []


# --------------------------------------------------------------------------- pattern bound

POLYNOMIAL = "^(\\d*)(\\d*)(\\d*)(\\d*)\\D$"


def string_schema(pattern: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}


@pytest.mark.timeout(20)
def test_a_costly_pattern_on_the_compiled_path_fails_the_record_within_the_bound():
    validator = compile_validator(string_schema(POLYNOMIAL))
    assert validator.compiled
    assert validator.compiled_verdict({"s": "1" * MAX_PATTERN_SUBJECT}) is False
    assert validator.errors({"s": "1" * MAX_PATTERN_SUBJECT}) == [
        f"/s: pattern {POLYNOMIAL!r} too costly to check (over {PATTERN_TIMEOUT:g} s)"
    ]


@pytest.mark.timeout(20)
def test_a_costly_pattern_given_up_under_any_of_still_fails_the_record_on_the_compiled_path():
    schema = {
        "type": "object",
        "properties": {"s": {"anyOf": [{"pattern": POLYNOMIAL}, {"maxLength": 20_000}]}},
    }
    validator = compile_validator(schema)
    assert validator.compiled
    assert validator.compiled_verdict({"s": "1" * MAX_PATTERN_SUBJECT}) is False
    assert validator.errors({"s": "1" * MAX_PATTERN_SUBJECT}) == [
        f"/: pattern {POLYNOMIAL!r} too costly to check (over {PATTERN_TIMEOUT:g} s)"
    ]
    assert validator.errors({"s": "12a"}) == []


def test_a_string_over_the_subject_cap_is_refused_on_the_compiled_path_too():
    validator = compile_validator(string_schema("^b"))
    assert validator.compiled
    assert validator.errors({"s": "b" * (MAX_PATTERN_SUBJECT + 1)}) == [
        f"/s: pattern '^b' not checked: string longer than {MAX_PATTERN_SUBJECT} characters"
    ]
    assert validator.errors({"s": "b" * MAX_PATTERN_SUBJECT}) == []
