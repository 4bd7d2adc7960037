"""The schema sent for constrained decoding, and the bounds of a record call."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator

from datagems.inference.constrain import FORMAT_PATTERNS, constrained_schema, plain_pattern
from datagems.inference.generation import HARD_MAX_TOKENS, max_tokens_for, sampling_for

SIMPLE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "description": "a person",
    "properties": {
        "full_name": {"type": "string", "minLength": 3, "description": "first and last"},
        "age": {"type": "integer", "minimum": 18, "maximum": 90},
        "email": {"type": "string", "format": "email", "maxLength": 60},
        "city": {"type": "string", "not": {"const": "x"}},
        "code": {"type": "string", "pattern": "^[A-Z]{2}\\.\\d{3}$"},
        "kind": {"oneOf": [{"const": "a"}, {"const": "b"}]},
    },
    "required": ["full_name", "age", "email", "city"],
    "additionalProperties": False,
}


def test_formats_become_patterns_without_escapes_and_unenforceable_keywords_go():
    derived = constrained_schema(SIMPLE)
    props = derived["properties"]
    assert "$schema" not in derived and "description" not in derived
    assert props["email"] == {"type": "string", "pattern": FORMAT_PATTERNS["email"]}
    assert props["code"]["pattern"] == "^[A-Z]{2}[.][0-9]{3}$"
    assert "not" not in props["city"]
    assert props["kind"] == {"anyOf": [{"const": "a"}, {"const": "b"}]}
    assert props["age"] == {"type": "integer", "minimum": 18, "maximum": 90}
    assert derived["required"] == SIMPLE["required"]
    assert "\\" not in str(derived)  # nothing a grammar converter chokes on
    assert SIMPLE["properties"]["email"]["format"] == "email"  # the user's schema is untouched


@pytest.mark.parametrize("fmt", sorted(FORMAT_PATTERNS))
def test_what_a_format_pattern_matches_passes_the_users_format(fmt):
    samples = {
        "email": "ana.lima@mail.example.com",
        "idn-email": "ana@x.org",
        "date": "2019-07-21",
        "date-time": "2019-07-21T10:20:30Z",
        "time": "10:20:30Z",
        "uuid": "123e4567-e89b-42d3-a456-426614174000",
        "uri": "https://example.com/a/b",
        "uri-reference": "https://example.com",
        "iri": "https://example.com",
        "ipv4": "192.168.10.1",
        "hostname": "api.example.com",
    }
    value = samples[fmt]
    assert re.fullmatch(FORMAT_PATTERNS[fmt].strip("^$"), value)
    checker = Draft202012Validator.FORMAT_CHECKER
    assert checker.conforms(value, fmt)


@pytest.mark.parametrize(
    ("pattern", "plain"),
    [
        ("\\d{3}-\\d{4}", "^[0-9]{3}-[0-9]{4}$"),
        ("^[\\w.]+$", "^[a-zA-Z0-9_.]+$"),
        ("^a\\(b\\)$", "^a[(]b[)]$"),
        ("(?=x)y", None),
        ("(a)\\1", None),
        ("\\bword", None),
    ],
)
def test_user_patterns_are_kept_in_plain_form_or_dropped(pattern, plain):
    assert plain_pattern(pattern) == plain


def test_max_tokens_follows_the_schema_size_with_a_cap_and_a_job_override():
    small = max_tokens_for(SIMPLE, 1024)
    assert 64 <= small < 400
    large = {
        "type": "object",
        "properties": {f"f{i}": {"type": "string", "maxLength": 500} for i in range(20)},
    }
    assert max_tokens_for(large, 1024) == 1024
    assert max_tokens_for(large, 8192) > 3000
    sampling = sampling_for(SIMPLE, {"maxTokens": 99, "temperature": 0.1, "topP": 0.5}, 1024)
    assert (sampling.max_tokens, sampling.max_tokens_from) == (99, "job")
    assert sampling.temperature == 0.1 and sampling.params == {"top_p": 0.5}
    assert sampling_for(SIMPLE, {"max_tokens": 10**6}, 1024).max_tokens == HARD_MAX_TOKENS
    assert sampling_for(SIMPLE, None, 1024).max_tokens == small
