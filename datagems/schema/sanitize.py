"""Clean up a drafted schema: the usual mistakes of a model that drafts one.

``sanitize_schema`` repairs a wrong ``$schema``, a missing root ``type``, property values
that are not schemas and ``required`` naming absent properties; it never adds a property
that was not there. ``draft_problem`` says why a draft is not a schema at all (an example
record, a bare list of types). Also home to the JSON Schema vocabulary the other modules of
``datagems.schema`` walk by (which keywords hold subschemas, which hold data).
"""

from __future__ import annotations

import copy
from contextvars import ContextVar
from typing import Any

import orjson

from datagems.errors import SchemaInvalid

META_SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"

MAX_RECORD_ERRORS = 10

MAX_MESSAGE_CHARS = 200

JSON_TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")

TYPE_SYNONYMS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "text": {"type": "string"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "decimal": {"type": "number"},
    "bool": {"type": "boolean"},
    "dict": {"type": "object"},
    "list": {"type": "array"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "date-time": {"type": "string", "format": "date-time"},
    "email": {"type": "string", "format": "email"},
    "uri": {"type": "string", "format": "uri"},
    "url": {"type": "string", "format": "uri"},
    "uuid": {"type": "string", "format": "uuid"},
}

# Keywords whose values are data, not subschemas: never walked for keywords.
DATA_KEYWORDS = frozenset({"const", "enum", "examples", "default"})

# Keywords whose values map names to subschemas.
SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)

SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})

SCHEMA_SINGLE = frozenset(
    {
        "items",
        "additionalProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
        "contains",
        "propertyNames",
        "not",
        "if",
        "then",
        "else",
        "additionalItems",
    }
)

ROOT_KEYWORDS = frozenset(
    {"$schema", "$id", "type", "properties", "required", "title", "description", "$defs"}
    | SCHEMA_MAPS
    | SCHEMA_LISTS
    | SCHEMA_SINGLE
)


def _type_schema(word: str) -> dict[str, Any] | None:
    lowered = word.strip().lower()
    if lowered in JSON_TYPES:
        return {"type": lowered}
    if lowered in TYPE_SYNONYMS:
        return dict(TYPE_SYNONYMS[lowered])
    return None


_WARNINGS: ContextVar[list[str] | None] = ContextVar("sanitize_warnings", default=None)


def _warn(message: str) -> None:
    found = _WARNINGS.get()
    if found is not None and len(found) < MAX_RECORD_ERRORS:
        found.append(message[:MAX_MESSAGE_CHARS])


def _fix_subschema(value: object, name: str = "") -> dict[str, Any] | bool | None:
    """A property value turned into a schema, or ``None`` when it cannot be one (with a
    named warning: a field is never dropped silently)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _type_schema(value) or {"type": "string"}
    if isinstance(value, int | float):
        kind = "integer" if isinstance(value, int) else "number"
        _warn(f"{name or 'a field'}: {value!r} is a value, not a schema: typed as {kind}")
        return {"type": kind}
    if isinstance(value, list):
        if value and all(isinstance(v, str) and v.strip().lower() in JSON_TYPES for v in value):
            return {"type": [v.strip().lower() for v in value]}
        if value and all(isinstance(v, str | int | float | bool) for v in value):
            return {"enum": list(dict.fromkeys(value))}
        _warn(f"{name or 'a field'}: a list that is not a schema: dropped")
        return None
    if isinstance(value, dict):
        return _fix_node(value)
    _warn(f"{name or 'a field'}: {orjson.dumps(value).decode()[:40]} is not a schema: dropped")
    return None


def _fix_node(node: dict[str, Any]) -> dict[str, Any]:
    fixed: dict[str, Any] = {}
    properties = node.get("properties")
    if isinstance(properties, dict):  # draft-03 style "required": true on a property
        flagged = [
            name
            for name, sub in properties.items()
            if isinstance(sub, dict) and isinstance(sub.get("required"), bool) and sub["required"]
        ]
        if any(
            isinstance(sub, dict) and isinstance(sub.get("required"), bool)
            for sub in properties.values()
        ):
            node = dict(node)
            node["properties"] = {
                name: (
                    {k: v for k, v in sub.items() if k != "required"}
                    if isinstance(sub, dict) and isinstance(sub.get("required"), bool)
                    else sub
                )
                for name, sub in properties.items()
            }
            existing = node.get("required") if isinstance(node.get("required"), list) else []
            node["required"] = [*existing, *flagged]
    for key, value in node.items():
        if key == "type":
            fixed[key] = _fix_type(value)
            if fixed[key] is None:
                del fixed[key]
            elif isinstance(fixed[key], dict):  # "type": "email" -> type + format
                fixed.update(fixed.pop(key))
        elif key in DATA_KEYWORDS:
            fixed[key] = value
        elif key in ("properties", "patternProperties", "$defs", "definitions"):
            if isinstance(value, dict):
                fixed[key] = {
                    name: sub
                    for name, sub in ((n, _fix_subschema(v, n)) for n, v in value.items())
                    if sub is not None
                }
        elif key in SCHEMA_LISTS:
            if isinstance(value, list):
                subs = [s for s in (_fix_subschema(v) for v in value) if s is not None]
                if subs:
                    fixed[key] = subs
        elif key in SCHEMA_SINGLE:
            sub = _fix_subschema(value)
            if sub is not None:
                fixed[key] = sub
        else:
            fixed[key] = value
    if "properties" in fixed and "type" not in fixed:
        fixed["type"] = "object"
    if "required" in fixed:
        fixed["required"] = _fix_required(fixed["required"], fixed.get("properties"))
        if not fixed["required"]:
            del fixed["required"]
    return fixed


def _fix_type(value: object) -> object:
    if isinstance(value, str):
        return _type_schema(value) if value.strip().lower() not in JSON_TYPES else value.lower()
    if isinstance(value, list):
        words = [v.strip().lower() for v in value if isinstance(v, str)]
        words = [w for w in dict.fromkeys(words) if w in JSON_TYPES]
        return words or None
    return None


def _fix_required(value: object, properties: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    names = [v for v in dict.fromkeys(value) if isinstance(v, str)]
    if isinstance(properties, dict):
        names = [n for n in names if n in properties]
    return names


def sanitize_schema(raw: object, warnings: list[str] | None = None) -> dict[str, Any]:
    """Fix the usual mistakes of a drafted schema; ``SchemaInvalid`` when it is not an object.

    - ``raw`` may be a dict or JSON text; a wrapper ``{"schema": {...}}`` is unwrapped, and
      so is a root ``{"type": "array", "items": {<object schema>}}`` (one record is asked for);
    - a bare map of names to types (``{"name": "string"}``) becomes ``properties``;
    - ``$schema`` is set to the 2020-12 URL; a missing root ``type`` becomes ``"object"``;
    - property values that are not schemas are converted (a type name -> ``{"type": ..}``,
      a list of type names -> a type list, a list of other scalars -> an ``enum``, a number
      -> its type) or dropped; each number typed and each value dropped is named in
      ``warnings`` (when given);
    - ``required`` entries naming absent properties are pruned.
    """
    if isinstance(raw, str | bytes):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise SchemaInvalid("the schema is not valid JSON") from None
    if not isinstance(raw, dict):
        raise SchemaInvalid("the schema must be a JSON object")
    node: dict[str, Any] = copy.deepcopy(raw)
    # {"schema": {...}} or {"json_schema": {"schema": {...}}} wrappers
    for wrapper in ("schema", "json_schema", "jsonSchema"):
        inner = node.get(wrapper)
        if len(node) <= 2 and isinstance(inner, dict):
            node = inner.get("schema") if isinstance(inner.get("schema"), dict) else inner
            break
    if (
        node.get("type") == "array"
        and isinstance(node.get("items"), dict)
        and (node["items"].get("type") == "object" or "properties" in node["items"])
    ):
        node = {k: v for k, v in node.items() if k in ("$schema", "title", "description")} | (
            node["items"]
        )
    bare_map = not any(key in ROOT_KEYWORDS or key.startswith("$") for key in node)
    if "properties" not in node and "type" not in node and node and bare_map:
        node = {"type": "object", "properties": node}
    token = _WARNINGS.set(warnings)
    try:
        fixed = _fix_node(node)
    finally:
        _WARNINGS.reset(token)
    fixed["$schema"] = META_SCHEMA_URL
    if "type" not in fixed:
        fixed["type"] = "object"
    ordered = {"$schema": META_SCHEMA_URL}
    ordered.update((k, v) for k, v in fixed.items() if k != "$schema")
    return ordered


def _unwrapped(raw: dict[str, Any]) -> dict[str, Any]:
    node = raw
    for wrapper in ("schema", "json_schema", "jsonSchema"):
        inner = node.get(wrapper)
        if len(node) <= 2 and isinstance(inner, dict):
            node = inner.get("schema") if isinstance(inner.get("schema"), dict) else inner
            break
    items = node.get("items")
    if node.get("type") == "array" and isinstance(items, dict):
        node = items
    return node


def _is_type_word(value: object) -> bool:
    return isinstance(value, str) and _type_schema(value) is not None


def draft_problem(raw: object) -> str | None:
    """Why a drafted answer is not the JSON Schema of a record, or ``None`` when it is one.

    Refused: anything but an object; an object without ``properties`` (a fragment such as
    ``{"type": "object", "required": [...]}``); a bare map of names to type words; an
    example record (values, not field definitions), at the root or as ``properties``.
    """
    if not isinstance(raw, dict):
        return "the answer is not a JSON object"
    node = _unwrapped(raw)
    properties = node.get("properties")
    if isinstance(properties, dict) and properties:
        literal = [
            name
            for name, value in properties.items()
            if not isinstance(value, dict | bool)
            and not _is_type_word(value)
            and not isinstance(value, list)
        ]
        if len(literal) * 2 > len(properties):
            shown = ", ".join(
                f"{n}: {orjson.dumps(properties[n]).decode()[:20]}" for n in literal[:3]
            )
            return f"its properties hold example values ({shown}), not field schemas"
        return None
    if any(key in ROOT_KEYWORDS or key.startswith("$") for key in node):
        return "it is not the schema of a record: it has no properties"
    if node and all(_is_type_word(value) for value in node.values()):
        return "it is a bare map of field names to types, not a JSON Schema"
    shown = ", ".join(f"{k}: {orjson.dumps(v).decode()[:20]}" for k, v in list(node.items())[:3])
    return f"it is an example record ({shown}), not a JSON Schema"
