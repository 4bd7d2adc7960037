"""The mock's fake data: records satisfy varied schemas, violations do not, drafts check."""

from __future__ import annotations

import random

import orjson
import pytest
from jsonschema import Draft202012Validator

from datagems.mock.drafts import draft_schema
from datagems.mock.records import RecordFactory
from datagems.schema.check import check_schema
from datagems.schema.sanitize import sanitize_schema

S = "https://json-schema.org/draft/2020-12/schema"

SCHEMAS: dict[str, dict] = {
    "person": {
        "$schema": S,
        "type": "object",
        "properties": {
            "full_name": {"type": "string", "minLength": 3, "maxLength": 60},
            "email": {"type": "string", "format": "email"},
            "age": {"type": "integer", "minimum": 0, "maximum": 130},
            "birthday": {"type": "string", "format": "date"},
            "country": {"type": "string", "enum": ["PT", "PL", "JP", "KE"]},
            "kind": {"const": "person"},
            "active": {"type": "boolean"},
            "address": {
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "city": {"type": "string"},
                    "zip": {"type": "string", "minLength": 5, "maxLength": 5},
                },
                "required": ["street", "city", "zip"],
                "additionalProperties": False,
            },
            "tags": {
                "type": "array",
                "items": {"type": "string", "enum": ["a", "b", "c", "d"]},
                "minItems": 1,
                "maxItems": 3,
                "uniqueItems": True,
            },
        },
        "required": ["full_name", "email", "age", "address", "kind"],
        "additionalProperties": False,
    },
    "product": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "sku": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
            "price": {"type": "number", "exclusiveMinimum": 0, "maximum": 50},
            "discount": {"type": "number", "minimum": 0, "maximum": 10, "multipleOf": 0.5},
            "stock": {"type": "integer", "minimum": 0, "maximum": 1000, "multipleOf": 5},
            "weight": {"type": "number", "exclusiveMinimum": 1.5, "exclusiveMaximum": 1.75},
            "listed_at": {"type": "string", "format": "date-time"},
            "homepage": {"type": "string", "format": "uri"},
            "description": {"type": "string", "minLength": 40},
        },
        "required": ["id", "sku", "price", "stock", "weight", "listed_at", "description"],
    },
    "choices": {
        "type": "object",
        "properties": {
            "code": {"oneOf": [{"type": "string", "maxLength": 4}, {"type": "integer"}]},
            "contact": {
                "anyOf": [
                    {
                        "type": "object",
                        "properties": {"email": {"type": "string", "format": "email"}},
                        "required": ["email"],
                    },
                    {
                        "type": "object",
                        "properties": {"phone": {"type": "string"}},
                        "required": ["phone"],
                    },
                ]
            },
            "note": {"type": ["string", "null"], "maxLength": 30},
            "score": {"type": ["integer", "number"], "minimum": -5, "maximum": 5},
        },
        "required": ["code", "contact", "note", "score"],
    },
    "tree": {
        "type": "object",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "children": {
                        "type": "array",
                        "items": {"$ref": "#/$defs/node"},
                        "maxItems": 2,
                    },
                },
                "required": ["name"],
                "additionalProperties": False,
            },
            "money": {"type": "number", "minimum": 0, "maximum": 100},
        },
        "properties": {
            "root": {"$ref": "#/$defs/node"},
            "budget": {"$ref": "#/$defs/money"},
        },
        "required": ["root", "budget"],
    },
    "combined": {
        "type": "object",
        "allOf": [
            {
                "properties": {"a": {"type": "integer", "minimum": 10, "maximum": 20}},
                "required": ["a"],
            },
            {"properties": {"b": {"type": "string", "format": "email"}}, "required": ["b"]},
        ],
        "properties": {"c": {"type": "boolean"}},
        "minProperties": 4,
        "dependentRequired": {"c": ["d"]},
        "required": ["c"],
    },
    "tuples": {
        "type": "object",
        "properties": {
            "point": {
                "type": "array",
                "prefixItems": [{"type": "number"}, {"type": "number"}, {"type": "string"}],
                "items": False,
                "minItems": 3,
            },
            "readings": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 9},
                "contains": {"const": 7},
                "minItems": 2,
                "maxItems": 6,
            },
            "matrix": {
                "type": "array",
                "items": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "minItems": 2,
                    "maxItems": 2,
                },
                "minItems": 2,
                "maxItems": 3,
            },
        },
        "required": ["point", "readings", "matrix"],
    },
    "patterns": {
        "type": "object",
        "properties": {
            "slug": {"type": "string", "pattern": "^[a-z]{3,8}$"},
            "ext": {"type": "string", "pattern": "^\\d{3}-\\d{2}$"},
            "key": {"type": "string", "pattern": "^(foo|bar)_[0-9]+$"},
            "loose": {"type": "string", "pattern": "x[0-9a-f]{4}"},
            "short": {"type": "string", "maxLength": 3},
            "exact": {"type": "string", "minLength": 8, "maxLength": 8},
            "ip": {"type": "string", "format": "ipv4"},
            "time": {"type": "string", "format": "time"},
        },
        "required": ["slug", "ext", "key", "loose", "short", "exact", "ip"],
    },
    "labeled": {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 10, "maxLength": 200},
            "label": {"type": "string", "enum": ["spam", "ham"]},
            "orders": {
                "type": "array",
                "minItems": 1,
                "maxItems": 4,
                "items": {
                    "type": "object",
                    "properties": {
                        "order_id": {"type": "string", "format": "uuid"},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 9},
                        "lines": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"price": {"type": "number", "minimum": 0.01}},
                                "required": ["price"],
                            },
                        },
                    },
                    "required": ["order_id", "quantity"],
                },
            },
        },
        "required": ["text", "label", "orders"],
        "additionalProperties": False,
    },
}


def reference_validator(schema: dict) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_two_hundred_generated_records_validate_and_vary(name):
    schema = SCHEMAS[name]
    factory = RecordFactory(schema)
    validator = reference_validator(schema)
    records = [factory.make(random.Random(seed)) for seed in range(200)]
    for record in records:
        errors = [e.message for e in validator.iter_errors(record)]
        assert errors == [], (orjson.dumps(record).decode(), errors)
    distinct = {orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records}
    assert len(distinct) > 150


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_violations_break_the_schema(name):
    schema = SCHEMAS[name]
    factory = RecordFactory(schema)
    validator = reference_validator(schema)
    rng = random.Random(3)
    for _ in range(50):
        assert not validator.is_valid(factory.violate(rng))


def test_values_are_plausible_by_property_name():
    schema = {
        "type": "object",
        "properties": {
            "email": {"type": "string"},
            "city": {"type": "string"},
            "age": {"type": "integer"},
            "price": {"type": "number"},
            "full_name": {"type": "string"},
        },
        "required": ["email", "city", "age", "price", "full_name"],
    }
    factory = RecordFactory(schema)
    for seed in range(50):
        record = factory.make(random.Random(seed))
        assert "@" in record["email"]
        assert record["city"][0].isupper()
        assert 18 <= record["age"] <= 90
        assert 1 <= record["price"] <= 1500
        assert len(record["full_name"].split()) == 2


PROMPTS = [
    "Dataset title: Shop\nOne record describes: a product in an online store",
    "Dataset title: CRM\nOne record describes: a customer with their orders",
    "Dataset title: Helpdesk\nOne record describes: a support ticket",
    "Dataset title: Sentiment\nOne record describes: a movie review. Dataset mode: "
    'classification. The schema MUST have a required string property "label"',
    "Dataset title: ???\nOne record describes: something vague",
    "Recipes with ingredients and calories, from many cuisines",
    "Dataset title: Bike listings\nOne record describes: a used bike for sale",
]


def test_a_drafted_schema_follows_the_subject_of_the_description() -> None:
    drafted = draft_schema(
        "Dataset title: Bike listings\nOne record describes: a used bike for sale",
        random.Random(1),
    )
    assert list(drafted["properties"])[:3] == ["brand", "model", "year"]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_drafted_schemas_pass_sanitize_and_check_and_drive_valid_records(prompt):
    for seed in range(10):
        drafted = draft_schema(prompt, random.Random(seed))
        schema = sanitize_schema(drafted)
        check_schema(schema)
        assert schema == drafted  # nothing to fix
        names = [n for n in schema["properties"] if n != "label"]
        assert 3 <= len(names) <= 6
        assert set(schema["required"]) == set(schema["properties"])
        if "classification" in prompt:
            assert schema["properties"]["label"]["enum"]
        validator = reference_validator(schema)
        factory = RecordFactory(schema)
        for record_seed in range(20):
            assert validator.is_valid(factory.make(random.Random(record_seed)))
