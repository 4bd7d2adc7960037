"""Schema errors in plain words, naming the field (author helper, issue 16).

The meta-schema's own messages are jargon ("'integr' is not valid under any of the given
schemas"); a user editing a schema wants "field age: type 'integr' is not a JSON type
(string, integer, number, boolean, object, array)". ``plain`` turns one meta-schema error
into such a sentence; ``contradictions`` finds what the meta-schema accepts but no record
could satisfy (an empty enum, a minimum above the maximum, a required name that is not a
field).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from jsonschema.exceptions import ValidationError

JSON_TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")
TYPE_LIST = "string, integer, number, boolean, object, array"
BOUNDS = (
    ("minimum", "maximum"),
    ("exclusiveMinimum", "exclusiveMaximum"),
    ("minLength", "maxLength"),
    ("minItems", "maxItems"),
    ("minProperties", "maxProperties"),
)
ARTICLES = {
    "number": "a number",
    "integer": "a whole number",
    "string": "text",
    "array": "a list",
    "object": "an object",
    "boolean": "true or false",
}


def where(path: Sequence[Any]) -> str:
    """Who a schema path is about: ``field address.city``, ``field tags[]`` (its items),
    ``definition Money``, or ``the schema`` (its root)."""
    names: list[str] = []
    definition: str | None = None
    parts = list(path)
    i = 0
    while i < len(parts):
        part = parts[i]
        if part in ("properties", "patternProperties") and i + 1 < len(parts):
            names.append(str(parts[i + 1]))
            i += 2
            continue
        if part in ("$defs", "definitions") and i + 1 < len(parts) and not names:
            definition = str(parts[i + 1])
            i += 2
            continue
        if part in ("items", "prefixItems", "additionalItems") and names:
            names[-1] += "[]"
        i += 1
    if names:
        return "field " + ".".join(names)
    if definition is not None:
        return f"definition {definition}"
    return "the schema"


NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SUBSCHEMA = ("items", "additionalProperties", "not", "contains", "propertyNames")
LISTED = ("anyOf", "oneOf", "allOf", "prefixItems")


def _split(path: Sequence[Any]) -> tuple[list[Any], str | None]:
    """An error's path as (the schema node it is in, the keyword it is about): the node
    ``properties/age`` and ``type`` for ``properties/age/type/0``; a field's name is never
    a keyword."""
    parts = list(path)
    end = 0  # parts[:end] is the node
    while end < len(parts):
        part = parts[end]
        if part in NAMED and end + 1 < len(parts):
            end += 2
        elif part in SUBSCHEMA and end + 1 < len(parts):
            end += 1
        elif part in LISTED and end + 2 < len(parts) and isinstance(parts[end + 1], int):
            end += 2
        else:
            break
    keyword = parts[end] if end < len(parts) and isinstance(parts[end], str) else None
    return parts[:end], keyword


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    text = orjson.dumps(value).decode() if _dumpable(value) else repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _dumpable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def plain(error: ValidationError) -> str:
    """One meta-schema error as ``<who>: <what is wrong>``."""
    node, keyword = _split(error.absolute_path)
    return f"{where(node)}: {_what(error, keyword)}"


def _what(error: ValidationError, keyword: str | None) -> str:
    value = error.instance
    if keyword == "type" or (keyword is None and error.validator == "anyOf"):
        if isinstance(value, str):
            return f"type {value!r} is not a JSON type ({TYPE_LIST})"
        if isinstance(value, list):
            odd = [v for v in value if v not in JSON_TYPES]
            if odd:
                return f"type {_shown(odd[0])} is not a JSON type ({TYPE_LIST})"
            return (
                "type lists a type twice"
                if len(set(map(str, value))) < len(value)
                else ("type must name JSON types")
            )
        return f"type must be one of {TYPE_LIST}, not {_shown(value)}"
    if error.validator == "type" and keyword is None:
        return f"must be a JSON object describing the field, not {_shown(value)}"
    if error.validator == "type":
        expected = error.validator_value
        names = expected if isinstance(expected, list) else [expected]
        said = " or ".join(ARTICLES.get(str(n), str(n)) for n in names)
        return f"{keyword or 'this'} must be {said}, not {_shown(value)}"
    if error.validator == "minimum" and keyword:
        return f"{keyword} must be at least {error.validator_value}, not {_shown(value)}"
    if error.validator == "uniqueItems" and keyword:
        return f"{keyword} lists a value twice"
    if error.validator == "format" and error.validator_value == "regex":
        return f"pattern {_shown(value)} is not a valid regular expression"
    if error.validator == "minItems" and keyword:
        return f"{keyword} must list at least {error.validator_value} value(s)"
    return error.message


def contradictions(schema: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """(path, sentence) for each part no record could satisfy."""
    yield from _walk(schema, [])


def _walk(node: Any, path: list[Any]) -> Iterator[tuple[list[Any], str]]:
    if not isinstance(node, dict):
        return
    who = where(path)
    enum = node.get("enum")
    if isinstance(enum, list) and not enum:
        yield [*path, "enum"], f"{who}: enum lists no value (list at least one, or remove it)"
    for low, high in BOUNDS:
        a, b = node.get(low), node.get(high)
        if _number(a) and _number(b) and a > b:
            yield [*path, low], f"{who}: {low} {a} is above {high} {b}"
    properties = node.get("properties")
    required = node.get("required")
    if isinstance(required, list) and isinstance(properties, dict):
        closed = node.get("additionalProperties") is False
        for name in required:
            if isinstance(name, str) and name not in properties and closed:
                yield [*path, "required"], f"{who}: required lists {name!r}, which is not a field"
    if isinstance(properties, dict):
        for name, sub in properties.items():
            yield from _walk(sub, [*path, "properties", name])
    items = node.get("items")
    if isinstance(items, dict):
        yield from _walk(items, [*path, "items"])
    defs = node.get("$defs")
    if isinstance(defs, dict):
        for name, sub in defs.items():
            yield from _walk(sub, [*path, "$defs", name])


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
