"""Schema errors in plain words, naming the field, each said once (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest

from datagems.errors import SchemaInvalid
from datagems.schema.check import check_schema


def refusal(schema: dict[str, Any]) -> SchemaInvalid:
    with pytest.raises(SchemaInvalid) as caught:
        check_schema({"type": "object", **schema})
    return caught.value


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        (
            {"properties": {"age": {"type": "integr"}}},
            "field age: type 'integr' is not a JSON type "
            "(string, integer, number, boolean, object, array)",
        ),
        (
            {"properties": {"age": {"type": "integer", "minimum": "x"}}},
            "field age: minimum must be a number, not 'x'",
        ),
        (
            {"properties": {"age": {"type": "integer", "minimum": 9, "maximum": 1}}},
            "field age: minimum 9 is above maximum 1",
        ),
        (
            {"properties": {"kind": {"type": "string", "enum": []}}},
            "field kind: enum lists no value (list at least one, or remove it)",
        ),
        (
            {
                "properties": {
                    "lines": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"sku": {"type": ["strin"]}}},
                    }
                }
            },
            "field lines[].sku: type 'strin' is not a JSON type "
            "(string, integer, number, boolean, object, array)",
        ),
        (
            {"properties": {"a": {"type": "string"}}, "required": ["b"]}
            | {"additionalProperties": False},
            "the schema: required lists 'b', which is not a field",
        ),
        ({"properties": {"a": 5}}, "field a: must be a JSON object describing the field, not 5"),
    ],
)
def test_a_schema_mistake_is_said_in_plain_words_naming_the_field(
    schema: dict[str, Any], said: str
) -> None:
    error = refusal(schema)
    assert error.message == said
    assert [e["message"] for e in error.errors] == [said]  # once


def test_a_bad_pattern_is_said_once_with_why() -> None:
    error = refusal({"properties": {"code": {"type": "string", "pattern": "("}}})
    assert len(error.errors) == 1
    assert error.message.startswith("field code: pattern does not compile")
