"""datagems.schema: sanitizing drafts, checking schemas with field errors, validating records."""

from __future__ import annotations

import http.server
import threading

import pytest
from jsonschema import Draft202012Validator

from datagems.errors import SchemaInvalid
from datagems.schema.bounded import MAX_PATTERN_SUBJECT, PATTERN_BUDGET, PATTERN_TIMEOUT
from datagems.schema.check import check_schema, field_order, in_field_order, pattern_problem
from datagems.schema.sanitize import META_SCHEMA_URL, draft_problem, sanitize_schema
from datagems.schema.validate import compile_validator


def errors_of(schema: dict) -> list[dict[str, str]]:
    with pytest.raises(SchemaInvalid) as caught:
        check_schema(schema)
    assert caught.value.errors
    assert caught.value.status == 400
    return caught.value.errors


def paths_of(schema: dict) -> set[str]:
    return {error["path"] for error in errors_of(schema)}


# --------------------------------------------------------------------------- sanitize


def test_sanitize_sets_the_2020_12_schema_url_and_a_root_object_type():
    fixed = sanitize_schema(
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "properties": {"a": {"type": "string"}},
        }
    )
    assert fixed["$schema"] == META_SCHEMA_URL
    assert fixed["type"] == "object"
    check_schema(fixed)


def test_sanitize_converts_property_values_that_are_not_schemas_and_names_what_it_did():
    warnings: list[str] = []
    fixed = sanitize_schema(
        {
            "type": "object",
            "properties": {
                "name": "string",
                "age": "int",
                "price": "float",
                "born": "date",
                "mail": {"type": "email"},
                "note": ["string", "null"],
                "color": ["red", "green"],
                "gone": None,
                "also_gone": 42,
                "nested": {"properties": {"x": "boolean", "y": None}, "required": ["x", "y"]},
            },
            "required": ["name", "gone", "missing", "name", 7],
        },
        warnings,
    )
    props = fixed["properties"]
    assert props["name"] == {"type": "string"}
    assert props["age"] == {"type": "integer"}
    assert props["price"] == {"type": "number"}
    assert props["born"] == {"type": "string", "format": "date"}
    assert props["mail"] == {"type": "string", "format": "email"}
    assert props["note"] == {"type": ["string", "null"]}
    assert props["color"] == {"enum": ["red", "green"]}
    assert "gone" not in props  # null is no schema: dropped, and said so
    assert props["also_gone"] == {"type": "integer"}  # a value: typed from it, and said so
    assert warnings == [
        "gone: null is not a schema: dropped",
        "also_gone: 42 is a value, not a schema: typed as integer",
        "y: null is not a schema: dropped",
    ]
    assert props["nested"] == {
        "properties": {"x": {"type": "boolean"}},
        "required": ["x"],
        "type": "object",
    }
    assert fixed["required"] == ["name"]
    check_schema(fixed)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"full_name": "John Smith", "age": 34}, "it is an example record"),
        ({"name": "string", "age": "integer"}, "bare map of field names to types"),
        ({"type": "object", "required": ["email"]}, "it has no properties"),
        ({"type": "object", "properties": {"a": "Ana", "b": 3}}, "example values"),
        (["full_name"], "not a JSON object"),
    ],
)
def test_a_draft_that_is_not_the_schema_of_a_record_is_named(answer, problem):
    found = draft_problem(answer)
    assert found is not None and problem in found


def test_a_draft_that_is_a_schema_passes():
    assert draft_problem({"type": "object", "properties": {"a": {"type": "string"}}}) is None
    assert draft_problem({"schema": {"properties": {"a": "string", "b": "integer"}}}) is None


def test_sanitize_turns_draft_03_required_flags_into_a_required_list():
    fixed = sanitize_schema(
        {
            "type": "object",
            "properties": {
                "a": {"type": "string", "required": True},
                "b": {"type": "string", "required": False},
                "c": {"type": "string"},
            },
            "required": ["c"],
        }
    )
    assert fixed["required"] == ["c", "a"]
    assert fixed["properties"]["b"] == {"type": "string"}
    check_schema(fixed)


def test_sanitize_never_adds_a_property():
    raw = {"type": "object", "properties": {"a": "string"}, "required": ["a", "b"]}
    assert set(sanitize_schema(raw)["properties"]) == {"a"}


def test_sanitize_unwraps_the_usual_wrappers():
    inner = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert sanitize_schema({"schema": inner})["properties"] == inner["properties"]
    as_array = {"type": "array", "items": inner}
    assert sanitize_schema(as_array)["type"] == "object"
    bare = {"name": "string", "age": "integer"}
    assert sanitize_schema(bare)["properties"] == {
        "name": {"type": "string"},
        "age": {"type": "integer"},
    }
    assert sanitize_schema('{"properties": {"a": "string"}}')["type"] == "object"


@pytest.mark.parametrize("raw", [None, [], "not json", 42, '["a"]', True])
def test_sanitize_refuses_what_is_not_an_object(raw):
    with pytest.raises(SchemaInvalid):
        sanitize_schema(raw)


def test_sanitize_does_not_change_its_input():
    raw = {"properties": {"a": "string"}, "required": ["a", "b"]}
    sanitize_schema(raw)
    assert raw == {"properties": {"a": "string"}, "required": ["a", "b"]}


# --------------------------------------------------------------------------- check


def test_check_reports_field_level_errors_with_json_pointer_paths():
    paths = paths_of(
        {
            "type": "object",
            "properties": {
                "age": {"type": "integr"},
                "name": {"type": "string", "minLength": -1},
                "tags": {"type": "array", "items": {"maxItems": "3"}},
            },
            "required": "age",
        }
    )
    assert {
        "/properties/age/type",
        "/properties/name/minLength",
        "/properties/tags/items/maxItems",
        "/required",
    } <= paths


def test_check_refuses_a_root_that_is_not_an_object_type():
    assert "/type" in paths_of({"type": "array", "items": {"type": "string"}})
    assert "/type" in paths_of({"properties": {}})


def test_check_refuses_remote_and_dangling_references():
    errors = errors_of(
        {
            "type": "object",
            "properties": {
                "a": {"$ref": "https://example.com/schema.json"},
                "b": {"$ref": "other.json#/x"},
                "c": {"$ref": "#/$defs/missing"},
                "d": {"$ref": "#/$defs/ok"},
            },
            "$defs": {"ok": {"type": "string"}},
        }
    )
    by_path = {e["path"]: e["message"] for e in errors}
    assert "only local" in by_path["/properties/a/$ref"]
    assert "only local" in by_path["/properties/b/$ref"]
    assert "points at nothing" in by_path["/properties/c/$ref"]
    assert "/properties/d/$ref" not in by_path


def test_check_refuses_oversized_and_too_deep_schemas():
    big = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "x" * 200} for i in range(400)},
    }
    assert "too large" in errors_of(big)[0]["message"]
    deep: dict = {"type": "object"}
    node = deep
    for _ in range(40):
        node["properties"] = {"x": {"type": "object"}}
        node = node["properties"]["x"]
    assert "too deep" in errors_of(deep)[0]["message"]


@pytest.mark.parametrize(
    "pattern", ["(a+)+$", "(a*)*b", "(\\w+\\s?)*$", "^(a|aa)+(b+)*$", "(x{1,20})+", "([a-z]+)*@"]
)
def test_check_refuses_catastrophic_patterns(pattern):
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}
    assert "/properties/s/pattern" in paths_of(schema)


@pytest.mark.parametrize(
    "pattern", ["^[a-z]{3,8}$", "^\\d{3}-\\d{2}$", "^(foo|bar)_[0-9]+$", "(ab){2,3}", "^\\S+@\\S+$"]
)
def test_check_accepts_ordinary_patterns(pattern):
    assert pattern_problem(pattern) is None


def test_check_refuses_patterns_that_do_not_compile_and_bad_pattern_property_keys():
    schema = {
        "type": "object",
        "properties": {"s": {"type": "string", "pattern": "([a-z"}},
        "patternProperties": {"^(x+)+$": {"type": "string"}},
    }
    paths = paths_of(schema)
    assert "/properties/s/pattern" in paths
    assert "/patternProperties/^(x+)+$" in paths


def test_a_property_named_pattern_is_not_mistaken_for_a_regex():
    schema = {
        "type": "object",
        "properties": {"pattern": {"type": "string"}, "x": {"const": {"pattern": "(a+)+"}}},
    }
    assert pattern_problem("(a+)+") is not None  # as a pattern it would be refused
    validator = compile_validator(schema)  # as a property name and a value it is data
    assert validator.errors({"pattern": "(a+)+", "x": {"pattern": "(a+)+"}}) == []
    assert validator.errors({"pattern": 1}) == ["/pattern: 1 is not of type 'string'"]


# --------------------------------------------------------------------------- validate


RECORD_SCHEMA = {
    "$schema": META_SCHEMA_URL,
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0},
        "email": {"type": "string", "format": "email"},
        "code": {"type": "string", "pattern": "^[A-Z]{2}\\d+$"},
        "address": {"$ref": "#/$defs/address"},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        }
    },
}


def test_a_valid_record_has_no_errors():
    validator = compile_validator(RECORD_SCHEMA)
    record = {"name": "Ana", "age": 30, "email": "ana@example.com", "code": "AB12"}
    assert validator.errors({**record, "address": {"city": "Porto"}}) == []


def test_record_errors_are_short_messages_with_paths():
    validator = compile_validator(RECORD_SCHEMA)
    errors = validator.errors(
        {"name": "", "age": -1, "email": "nope", "code": "x", "address": {}, "extra": 1}
    )
    joined = "\n".join(errors)
    for path in ("/name:", "/age:", "/email:", "/code:", "/address:", "/:"):
        assert path in joined
    assert all(len(e) < 260 for e in errors)
    assert validator.errors([1, 2]) == ["/: [1, 2] is not of type 'object'"]
    assert validator.errors({"age": 1})[0].startswith("/: 'name' is a required property")


@pytest.mark.parametrize(
    "keyword",
    [
        {"additionalProperties": False},
        {"unevaluatedProperties": False},
        {"unevaluatedProperties": {"type": "integer"}},
    ],
)
@pytest.mark.parametrize("extras", [{"x": "1"}, {"y": "1", "x": "2"}])
def test_extra_properties_are_named_as_jsonschema_names_them(keyword, extras):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, **keyword}
    record = {"a": "ok", **extras}
    stock = [f"/: {e.message}" for e in Draft202012Validator(schema).iter_errors(record)]
    assert stock and compile_validator(schema).errors(record) == stock


def test_a_huge_value_keeps_error_messages_short():
    validator = compile_validator(RECORD_SCHEMA)
    errors = validator.errors({"name": ["x" * 5000] * 10, "age": 1})
    assert errors and all(len(e) < 260 for e in errors)


def test_compile_validator_checks_the_schema_first():
    with pytest.raises(SchemaInvalid):
        compile_validator({"type": "object", "properties": {"a": {"$ref": "http://evil/x"}}})


def test_validation_never_fetches_a_remote_reference():
    validator = compile_validator({"type": "object", "properties": {"a": {"type": "string"}}})
    # a schema that slipped past check_schema still cannot fetch: the registry refuses
    from datagems.schema.validate import RecordValidator

    asked: list[str] = []

    class Counting(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"type": "integer"}')

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/x"
        sneaky = RecordValidator({"type": "object", "properties": {"a": {"$ref": url}}})
        errors = sneaky.errors({"a": 1})
    finally:
        server.shutdown()
        server.server_close()
    assert errors == ["/: schema could not be applied: unresolvable reference"]
    assert asked == []  # the schema server was there to answer, and was never asked
    assert validator.errors({"a": "ok"}) == []


@pytest.mark.timeout(20)
def test_a_long_string_is_refused_by_a_pattern_without_running_it_long():
    validator = compile_validator(
        {"type": "object", "properties": {"s": {"type": "string", "pattern": "^[a-z]+\\d?$"}}}
    )
    assert validator.errors({"s": "a" * 50_000 + "!"})  # too long for a pattern check
    assert validator.errors({"s": "a" * 5_000 + "!"})


# Polynomial backtracking: no nested repeat, so the check-time refusal lets these through.
# Under Python's `re` each takes O(n^4) steps: about a second on 200 digits, months on
# 10,000. `regex` answers the first ones at once (it looks for the required literal first)
# and gives up on the others after PATTERN_TIMEOUT. The 20 s guards stand in for "hangs".
POLYNOMIAL = "^(\\d*)(\\d*)(\\d*)(\\d*)\\D$"
POLYNOMIAL_NAME = "^(\\w*)(\\w*)(\\w*)(\\w*)\\W$"
DIGITS = "1" * MAX_PATTERN_SUBJECT


def string_schema(pattern: str) -> dict:
    return {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}


@pytest.mark.parametrize(
    "pattern", ["^(\\d*)(\\d*)(\\d*)(\\d*)x$", "^\\d*\\d*\\d*\\d*x$", "(\\w*)(\\w*)(\\w*)y"]
)
@pytest.mark.timeout(20)
def test_the_polynomial_patterns_that_stalled_re_now_fail_a_long_string_promptly(pattern):
    assert pattern_problem(pattern) is None  # accepted at check time, as before
    errors = compile_validator(string_schema(pattern)).errors({"s": DIGITS})
    assert len(errors) == 1 and errors[0].startswith("/s: '1111")  # "... does not match ..."
    assert "too costly" not in errors[0]


@pytest.mark.parametrize(
    ("pattern", "subject"),
    [(POLYNOMIAL, DIGITS), ("^\\d*\\d*\\d*\\d*[a-z]$", DIGITS), (".*a.*a.*b", "a" * 10_000)],
)
@pytest.mark.timeout(20)
def test_a_pattern_too_costly_to_run_fails_the_record_with_a_message_instead_of_hanging(
    pattern, subject
):
    assert pattern_problem(pattern) is None
    errors = compile_validator(string_schema(pattern)).errors({"s": subject})
    assert errors == [f"/s: pattern {pattern!r} too costly to check (over {PATTERN_TIMEOUT:g} s)"]


@pytest.mark.timeout(20)
def test_a_costly_pattern_property_is_bounded_through_additional_properties():
    validator = compile_validator(
        {
            "type": "object",
            "patternProperties": {POLYNOMIAL_NAME: {"type": "string"}},
            "additionalProperties": False,
        }
    )
    errors = validator.errors({"a" * 5_000: "x"})
    assert errors and all("too costly to check" in e for e in errors)
    assert all(e.startswith("/aaaa") and "property name" in e for e in errors)
    assert all(len(e) < 500 for e in errors)  # the 5,000-character name is clipped


@pytest.mark.timeout(20)
def test_a_costly_pattern_property_is_bounded_through_unevaluated_properties():
    # jsonschema looks the name up in patternProperties again to find what was evaluated
    validator = compile_validator(
        {
            "type": "object",
            "patternProperties": {POLYNOMIAL_NAME: {"type": "string"}},
            "unevaluatedProperties": False,
        }
    )
    errors = validator.errors({"a" * 5_000: "x"})
    assert errors and all("property name: pattern" in e and "too costly" in e for e in errors)
    nested = compile_validator(
        {
            "type": "object",
            "allOf": [{"patternProperties": {POLYNOMIAL_NAME: {"type": "string"}}}],
            "unevaluatedProperties": False,
        }
    )
    assert any("too costly to check" in e for e in nested.errors({"a" * 5_000: "x"}))


@pytest.mark.timeout(20)
def test_a_costly_pattern_is_bounded_through_property_names_and_dependent_schemas():
    names = compile_validator({"type": "object", "propertyNames": {"pattern": POLYNOMIAL_NAME}})
    assert "too costly to check" in names.errors({"a" * 5_000: 1})[0]
    dependent = compile_validator(
        {"type": "object", "dependentSchemas": {"k": string_schema(POLYNOMIAL)}}
    )
    assert dependent.errors({"k": 1, "s": DIGITS})[0].startswith("/s: pattern")
    assert dependent.errors({"s": DIGITS}) == []  # not applied without "k"


@pytest.mark.parametrize("dialect", [META_SCHEMA_URL, "http://json-schema.org/draft-07/schema#"])
@pytest.mark.timeout(20)
def test_a_nested_dollar_schema_does_not_switch_back_to_unbounded_matching(dialect):
    # jsonschema would pick its stock class (matching with `re`) for such a subschema
    schema = string_schema(POLYNOMIAL)
    schema["properties"]["s"]["$schema"] = dialect
    assert "too costly to check" in compile_validator(schema).errors({"s": DIGITS})[0]


@pytest.mark.timeout(20)
def test_a_costly_match_hidden_under_not_still_fails_the_record():
    # the timed-out `pattern` is an error, so `not` alone would pass the record
    validator = compile_validator(
        {"type": "object", "properties": {"s": {"not": {"pattern": POLYNOMIAL}}}}
    )
    assert validator.errors({"s": DIGITS}) == [
        f"/: pattern {POLYNOMIAL!r} too costly to check (over {PATTERN_TIMEOUT:g} s)"
    ]
    assert validator.errors({"s": "12a"}) == [
        "/s: '12a' should not be valid under {'pattern': " + repr(POLYNOMIAL) + "}"
    ]


@pytest.mark.timeout(20)
def test_many_costly_matches_in_one_record_share_one_budget():
    validator = compile_validator(
        {
            "type": "object",
            "properties": {"s": {"type": "array", "items": {"not": {"pattern": POLYNOMIAL}}}},
        }
    )
    # 100 strings x PATTERN_TIMEOUT would be 5 s; past PATTERN_BUDGET the rest give up at once
    errors = validator.errors({"s": [DIGITS[: 9_000 + i] for i in range(100)]})
    assert errors == [f"/: pattern {POLYNOMIAL!r} too costly to check (over {PATTERN_TIMEOUT:g} s)"]
    assert PATTERN_BUDGET < 100 * PATTERN_TIMEOUT


def test_a_string_over_the_subject_cap_is_refused_only_where_a_pattern_runs_on_it():
    validator = compile_validator(
        {
            "type": "object",
            "properties": {"note": {"type": "string"}, "code": {"type": "string", "pattern": "^b"}},
        }
    )
    assert validator.errors({"note": "z" * 20_000, "code": "bb"}) == []
    assert validator.errors({"code": "b" * (MAX_PATTERN_SUBJECT + 1)}) == [
        f"/code: pattern '^b' not checked: string longer than {MAX_PATTERN_SUBJECT} characters"
    ]


@pytest.mark.parametrize(
    ("schema", "good", "bad", "message"),
    [
        (
            string_schema("^[A-Z]{2}\\d+$"),
            {"s": "AB12"},
            {"s": "ab12"},
            "/s: 'ab12' does not match '^[A-Z]{2}\\\\d+$'",
        ),
        (
            string_schema("\\bfoo\\b"),
            {"s": "a foo b"},
            {"s": "afoob"},
            "/s: 'afoob' does not match '\\\\bfoo\\\\b'",
        ),
        (
            {
                "type": "object",
                "patternProperties": {"^x-": {"type": "string"}, "^y-": {"type": "integer"}},
                "additionalProperties": False,
            },
            {"x-a": "s", "y-b": 1},
            {"x-a": 1, "z": 1},
            "/: 'z' does not match any of the regexes: '^x-', '^y-'",
        ),
        (
            {
                "type": "object",
                "patternProperties": {"^x-": {"type": "string"}},
                "additionalProperties": {"type": "integer"},
            },
            {"x-a": "s", "n": 1},
            {"n": "one"},
            "/n: 'one' is not of type 'integer'",
        ),
        (
            {
                "type": "object",
                "allOf": [{"patternProperties": {"^x-": {"type": "string"}}}],
                "unevaluatedProperties": False,
            },
            {"x-a": "s"},
            {"x-a": "s", "z": 1},
            "/: Unevaluated properties are not allowed ('z' was unexpected)",
        ),
        (
            {"type": "object", "propertyNames": {"pattern": "^[a-z_]+$"}},
            {"snake_case": 1},
            {"camelCase": 1},
            "/: 'camelCase' does not match '^[a-z_]+$'",
        ),
    ],
)
def test_ordinary_patterns_accept_and_refuse_as_before(schema, good, bad, message):
    validator = compile_validator(schema)
    assert validator.errors(good) == []
    assert message in validator.errors(bad)


def test_a_record_is_put_in_the_schemas_field_order_with_other_keys_after() -> None:
    schema = {"type": "object", "properties": {"name": {}, "age": {}, "email": {}}}
    order = field_order(schema)
    assert order == ("name", "age", "email")
    record = in_field_order({"email": "e", "extra": 1, "name": "n"}, order)
    assert list(record) == ["name", "email", "extra"]
    assert in_field_order(["not", "an", "object"], order) == ["not", "an", "object"]
    assert field_order({"type": "object"}) == ()
