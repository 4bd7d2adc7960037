"""JSON Schema tools: clean up a drafted schema, check it, validate records against it.

- ``sanitize_schema`` repairs the usual mistakes of a model that drafts a schema (wrong
  ``$schema``, missing root ``type``, property values that are not schemas, ``required``
  naming absent properties). It never adds a property that was not there.
- ``check_schema`` validates against the 2020-12 meta-schema with field-level errors, and
  refuses what we will not run: a root that is not an object, oversized or too deep
  schemas, non-local or dangling ``$ref`` / ``$dynamicRef``, recursive schemas (a
  reference cycle), and regular expressions that may backtrack catastrophically.
- ``compile_validator`` builds a ``RecordValidator`` once per job.

Regular expressions (``pattern``, ``patternProperties``) are run on record data that a model
wrote, so their cost is bounded in layers:

1. *At check time* (early, field-level errors for the user): a pattern is refused when it
   does not compile under both Python's ``re`` and the ``regex`` engine we run, is longer
   than ``MAX_PATTERN_LENGTH``, or has a repeat nested inside an unbounded repeat
   (``(a+)+``, ``(\\w*\\s?)*``, ``(a{1,9})*``...) or an alternation whose branches may
   overlap inside one (``(a|aa)*``, ``(a|a)*``): the shapes behind exponential backtracking.
   This cannot catch every costly pattern: polynomial backtracking (``^\\d*\\d*\\d*[a-z]$``,
   ``.*a.*a.*b``) has no nesting and still takes hours or longer on 10,000 characters under ``re``.
2. *At validation time* every match on record data -- the ``pattern`` keyword (also reached
   through ``propertyNames`` and ``dependentSchemas``), ``patternProperties``, and the
   pattern look-ups of ``additionalProperties`` and ``unevaluatedProperties`` -- runs under
   ``regex`` (compiled once, cached) with a ``PATTERN_TIMEOUT`` per match and a
   ``PATTERN_BUDGET`` per record, and never on a string longer than
   ``MAX_PATTERN_SUBJECT``. A match that cannot be finished within those bounds fails the
   record with a message saying so (``pattern '...' too costly to check``); it is never an
   exception and never a stall. A give-up hidden under ``not`` / ``anyOf`` / ``if`` still
   fails the record. ``regex`` also releases the GIL while it matches, so other threads of
   the replica keep running meanwhile.

The validator class extends jsonschema's 2020-12 one with those keywords and keeps that
class for every subschema: a nested ``$schema`` (which jsonschema would honour by
switching to its stock class) cannot bring back unbounded matching. References are never
fetched: the validator's registry refuses every remote URI.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import attrs
import jsonschema_rs
import orjson
import regex
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from datagems.errors import SchemaInvalid
from datagems.schema import explain

try:  # the regex parser of the standard library (private, stable since 3.11)
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older layouts
    import sre_parse as _sre_parse  # type: ignore[no-redef]

logger = logging.getLogger(__name__)

META_SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"
MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32
MAX_PATTERN_LENGTH = 512
MAX_PATTERN_SUBJECT = 10_000
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


# --------------------------------------------------------------------------- sanitize


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


# --------------------------------------------------------------------------- check


def field_order(schema: dict[str, Any]) -> tuple[str, ...]:
    """The record's top-level fields in the order the schema lists them."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return tuple(str(name) for name in properties) if isinstance(properties, dict) else ()


def in_field_order(record: Any, order: tuple[str, ...]) -> Any:
    """``record`` with its schema fields first, in schema order, then any others as given."""
    if not order or not isinstance(record, dict):
        return record
    ordered = {name: record[name] for name in order if name in record}
    if len(ordered) < len(record):
        ordered.update((name, value) for name, value in record.items() if name not in ordered)
    return ordered


def _pointer(path: Iterator[object] | list[object]) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "/"


def _depth(value: object, limit: int) -> int:
    """Nesting depth of containers, stopping early past ``limit``."""
    best = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            best = max(best, depth)
            if best > limit:
                return best
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return best


def _walk(node: object, path: tuple[object, ...] = ()) -> Iterator[tuple[tuple[object, ...], dict]]:
    """Every subschema (dict) with its path, skipping data keywords."""
    if not isinstance(node, dict):
        return
    yield path, node
    for key, value in node.items():
        if key in DATA_KEYWORDS:
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield from _walk(sub, (*path, key, name))
        elif key in SCHEMA_LISTS and isinstance(value, list):
            for position, sub in enumerate(value):
                yield from _walk(sub, (*path, key, position))
        elif key in SCHEMA_SINGLE:
            yield from _walk(value, (*path, key))


def _unbounded(max_count: int) -> bool:
    return max_count > 10 or max_count == _sre_parse.MAXREPEAT


def _has_repeat(items: Any) -> bool:
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            if arg[1] > 1:
                return True
            if _has_repeat(arg[2]):
                return True
        elif name == "SUBPATTERN":
            if _has_repeat(arg[-1]):
                return True
        elif name == "BRANCH":
            if any(_has_repeat(branch) for branch in arg[1]):
                return True
        elif name in ("ASSERT", "ASSERT_NOT") and _has_repeat(arg[1]):
            return True
    return False


def _overlapping_branch(items: Any) -> bool:
    """An alternation whose branches may match the same text: ``(a|aa)``, ``(a|a)`` (parsed
    as ``a(|)``). Under an unbounded repeat it backtracks exponentially. (Single-character
    branches such as ``(\\w|\\d)`` are parsed into one class and never reach here.)"""
    for op, arg in items:
        name = str(op)
        if name == "BRANCH":
            firsts = []
            for branch in arg[1]:
                if not branch or str(branch[0][0]) != "LITERAL":
                    return True  # empty, or starts with a class / group / repeat
                firsts.append(branch[0][1])
            if len(set(firsts)) < len(firsts):
                return True
            if any(_overlapping_branch(branch) for branch in arg[1]):
                return True
        elif name == "SUBPATTERN":
            if _overlapping_branch(arg[-1]):
                return True
        elif name in ("ASSERT", "ASSERT_NOT") and _overlapping_branch(arg[1]):
            return True
    return False


def _nested_repeat(items: Any) -> bool:
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            if _unbounded(arg[1]) and (_has_repeat(arg[2]) or _overlapping_branch(arg[2])):
                return True
            if _nested_repeat(arg[2]):
                return True
        elif name == "SUBPATTERN":
            if _nested_repeat(arg[-1]):
                return True
        elif name == "BRANCH":
            if any(_nested_repeat(branch) for branch in arg[1]):
                return True
        elif name in ("ASSERT", "ASSERT_NOT") and _nested_repeat(arg[1]):
            return True
    return False


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused, or ``None`` when it is safe to run."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"pattern longer than {MAX_PATTERN_LENGTH} characters"
    try:
        re.compile(pattern)
        parsed = _sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"pattern does not compile: {exc}"
    try:  # the engine records are matched with (a few patterns compile under one only)
        _compiled(pattern)
    except _COMPILE_ERRORS as exc:
        return f"pattern does not compile: {exc}"
    if _nested_repeat(list(parsed)):
        return "pattern has a nested repeat (catastrophic backtracking)"
    return None


def _target(root: dict[str, Any], ref: str) -> object:
    """What a local reference points at (``None`` when nothing)."""
    if ref == "#":
        return root
    if ref.startswith("#/"):
        node: object = root
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node
    anchor = ref[1:]
    return next(
        (
            sub
            for _, sub in _walk(root)
            if anchor and anchor in (sub.get("$anchor"), sub.get("$dynamicAnchor"))
        ),
        None,
    )


def _resolve_local(root: dict[str, Any], ref: str) -> bool:
    return isinstance(_target(root, ref), dict | bool)


def _subschemas(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The direct subschemas (dicts) of ``node``, as ``_walk`` visits them."""
    for key, value in node.items():
        if key in SCHEMA_MAPS and isinstance(value, dict):
            yield from (sub for sub in value.values() if isinstance(sub, dict))
        elif key in SCHEMA_LISTS and isinstance(value, list):
            yield from (sub for sub in value if isinstance(sub, dict))
        elif key in SCHEMA_SINGLE and isinstance(value, dict):
            yield value


def _ref_cycle(root: dict[str, Any]) -> str | None:
    """The pointer of a ``$ref`` that leads back into itself, or ``None``.

    Subschemas form a tree; a reference adds an edge to its target. A cycle in that graph
    is a recursive schema: the validator would recurse without end on a pure reference
    loop (``a -> b -> a``), and a generator would be asked for unbounded nesting. One
    iterative depth-first pass over the nodes: linear in the size of the schema.
    """
    paths = {id(sub): path for path, sub in _walk(root)}
    state: dict[int, int] = {}  # 1: on the current path, 2: done

    def successors(node: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str | None]]:
        for sub in _subschemas(node):
            yield sub, None
        for key in ("$ref", "$dynamicRef"):
            ref = node.get(key)
            if isinstance(ref, str) and ref.startswith("#"):
                target = _target(root, ref)
                if isinstance(target, dict):
                    yield target, key

    stack = [(root, successors(root))]
    state[id(root)] = 1
    while stack:
        node, pending = stack[-1]
        for child, via in pending:
            seen = state.get(id(child))
            if seen == 1 and via is not None:
                return _pointer([*paths.get(id(node), ()), via])
            if seen is None:
                state[id(child)] = 1
                stack.append((child, successors(child)))
                break
        else:
            state[id(node)] = 2
            stack.pop()
    return None


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ``SchemaInvalid`` (with ``errors=[{path, message}]``) unless the schema is usable."""
    if not isinstance(schema, dict):
        raise SchemaInvalid(
            "the schema must be a JSON object", [{"path": "/", "message": "not an object"}]
        )
    if _depth(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:  # first: orjson stops at 254
        raise SchemaInvalid(
            f"the schema is nested too deeply (at most {MAX_SCHEMA_DEPTH} levels)",
            [{"path": "/", "message": "too deep"}],
        )
    try:
        size = len(orjson.dumps(schema))
    except (TypeError, orjson.JSONEncodeError):
        raise SchemaInvalid(
            "the schema is not JSON-serializable", [{"path": "/", "message": "not JSON"}]
        ) from None
    if size > MAX_SCHEMA_BYTES:
        raise SchemaInvalid(
            f"the schema is too large ({size} bytes, at most {MAX_SCHEMA_BYTES})",
            [{"path": "/", "message": "too large"}],
        )
    errors: list[dict[str, str]] = []
    meta = Draft202012Validator(
        Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    for error in sorted(meta.iter_errors(schema), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "format" and error.validator_value == "regex":
            continue  # said below, with why the pattern does not compile
        message = _clip(explain.plain(error))  # in plain words, naming the field
        entry = {"path": _pointer(list(error.absolute_path)), "message": message}
        if entry not in errors:  # one mistake, said once
            errors.append(entry)
        if len(errors) >= 50:
            break
    if not errors:
        for at, message in explain.contradictions(schema):
            errors.append({"path": _pointer(at), "message": message})
    if schema.get("type") != "object":
        errors.append({"path": "/type", "message": 'the schema: the root must be "type": "object"'})
    for path, sub in _walk(schema):
        for key in ("$ref", "$dynamicRef"):
            ref = sub.get(key)
            if not isinstance(ref, str):
                continue
            if not ref.startswith("#"):
                errors.append(
                    {
                        "path": _pointer([*path, key]),
                        "message": f"{explain.where(path)}: only local references (#/...) "
                        f"are allowed, not {ref[:100]!r}",
                    }
                )
            elif not _resolve_local(schema, ref):
                errors.append(
                    {
                        "path": _pointer([*path, key]),
                        "message": f"{explain.where(path)}: {ref[:100]!r} points at nothing",
                    }
                )
        pattern = sub.get("pattern")
        if isinstance(pattern, str) and (problem := pattern_problem(pattern)):
            who = explain.where(path)
            errors.append({"path": _pointer([*path, "pattern"]), "message": f"{who}: {problem}"})
        pattern_map = sub.get("patternProperties")
        if isinstance(pattern_map, dict):
            for key in pattern_map:
                if problem := pattern_problem(key):
                    errors.append(
                        {
                            "path": _pointer([*path, "patternProperties", key]),
                            "message": f"{explain.where(path)}: {problem}",
                        }
                    )
    if not errors and (where := _ref_cycle(schema)):
        errors.append({"path": where, "message": "the schema: recursive reference ($ref cycle)"})
    if errors:
        raise SchemaInvalid(errors[0]["message"], errors)


def _short(error: ValidationError) -> str:
    return _clip(error.message)


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"


# --------------------------------------------------------------------------- validate


def _no_remote(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)


_REGISTRY: Registry = Registry(retrieve=_no_remote)  # type: ignore[call-arg]


PATTERN_TIMEOUT = 0.05
"""Seconds one regular-expression match on record data may take.

Python's ``re`` cannot be interrupted and holds the GIL while it matches: one polynomially
backtracking pattern (``^\\d*\\d*\\d*\\d*[a-z]$`` on 10,000 digits: O(n^4) steps) would stall
the whole replica for hours. ``regex`` gives up after this long (``timeout=``) and the
record fails validation. 50 ms is about a hundred times what ordinary patterns take on the
longest string we match (0.6 ms at most for 10,000 characters: ``^[a-z]+\\d?$``,
``(foo|bar)_[0-9]+``), and small enough that a batch of such records does not starve the
replica."""

PATTERN_BUDGET = 0.5
"""Seconds all the pattern matches of one record may take together.

Without it a record with many patterned strings (an array of 1,000 items under a costly
``pattern``) would add ``PATTERN_TIMEOUT`` up into a stall; once spent, every further
match of that record gives up at once and the record fails validation."""

_COMPILE_ERRORS = (regex.error, RecursionError, OverflowError, ValueError)


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> regex.Pattern[str]:
    """``pattern`` compiled by ``regex`` once (per process, shared by every job)."""
    return regex.compile(pattern)


class _Unchecked(Exception):
    """A pattern could not be run on a string within the bounds; the message says why."""


@dataclass
class _RecordBudget:
    """The pattern-matching state of the record being validated (see ``RecordValidator``)."""

    left: float = PATTERN_BUDGET
    gave_up: list[str] = field(default_factory=list)
    # (pattern, string) -> found, or the reason it was not checked: one answer per record
    # even when several keywords ask (patternProperties, then additionalProperties...).
    seen: dict[tuple[str, str], bool | str] = field(default_factory=dict)


_RECORD: ContextVar[_RecordBudget | None] = ContextVar("datagems_record_budget", default=None)


def _shown(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 60 else pattern[:59] + "…")


def _search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text``, at a bounded cost.

    ``_Unchecked`` (and a note on the record being validated) when ``text`` is longer than
    ``MAX_PATTERN_SUBJECT``, the pattern does not compile, the match runs past
    ``PATTERN_TIMEOUT``, or the record's ``PATTERN_BUDGET`` is spent.
    """
    record = _RECORD.get()
    if record is None:
        return _bounded_search(pattern, text, None)
    known = record.seen.get((pattern, text))
    if isinstance(known, str):
        raise _Unchecked(known)
    if known is not None:
        return known
    try:
        found = _bounded_search(pattern, text, record)
    except _Unchecked as exc:
        record.gave_up.append(str(exc))
        record.seen[(pattern, text)] = str(exc)
        raise
    record.seen[(pattern, text)] = found
    return found


def _budget_spent(pattern: str) -> str:
    return (
        f"pattern {_shown(pattern)} not checked: the record's patterns took over "
        f"{PATTERN_BUDGET:g} s"
    )


def _bounded_search(pattern: str, text: str, record: _RecordBudget | None) -> bool:
    if len(text) > MAX_PATTERN_SUBJECT:
        raise _Unchecked(
            f"pattern {_shown(pattern)} not checked: "
            f"string longer than {MAX_PATTERN_SUBJECT} characters"
        )
    try:
        compiled = _compiled(pattern)
    except _COMPILE_ERRORS:
        raise _Unchecked(f"pattern {_shown(pattern)} does not compile") from None
    timeout = PATTERN_TIMEOUT if record is None else min(PATTERN_TIMEOUT, record.left)
    if timeout <= 0:
        raise _Unchecked(_budget_spent(pattern))
    started = time.perf_counter()
    try:
        # concurrent: the GIL is released while matching (safe: a str cannot change).
        return compiled.search(text, timeout=timeout, concurrent=True) is not None
    except TimeoutError:
        if timeout < PATTERN_TIMEOUT:
            raise _Unchecked(_budget_spent(pattern)) from None
        raise _Unchecked(
            f"pattern {_shown(pattern)} too costly to check (over {PATTERN_TIMEOUT:g} s)"
        ) from None
    finally:
        if record is not None:
            record.left -= time.perf_counter() - started


# Every keyword below replaces a jsonschema (4.26) one that calls ``re.search`` on record
# data; apart from the matching they keep its behaviour and messages.


def _pattern(validator: Any, pattern: str, instance: object, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "string"):
        return
    try:
        if not _search(pattern, instance):  # type: ignore[arg-type]
            yield ValidationError(f"{instance!r} does not match {pattern!r}")
    except _Unchecked as exc:
        yield ValidationError(str(exc))


def _pattern_properties(
    validator: Any, pattern_properties: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for name, value in instance.items():
            try:
                matched = _search(pattern, name)
            except _Unchecked as exc:
                yield ValidationError(f"property name: {exc}", path=(name,))
                continue
            if matched:
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _listed(extras: list[Any]) -> tuple[str, str]:
    """The names and the verb of jsonschema's messages for extra properties."""
    return ", ".join(repr(extra) for extra in extras), "was" if len(extras) == 1 else "were"


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = set()
    for name in instance:
        if name in properties:
            continue
        try:  # each pattern on its own (jsonschema joins them with "|")
            if any(_search(pattern, name) for pattern in patterns):
                continue
        except _Unchecked as exc:  # neither matched nor extra: an error of its own
            yield ValidationError(f"property name: {exc}", path=(name,))
            continue
        extras.add(name)
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            listed = ", ".join(repr(each) for each in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")
        else:
            error = "Additional properties are not allowed (%s %s unexpected)"
            yield ValidationError(error % _listed(sorted(extras, key=str)))


def _evaluated_keys(validator: Any, instance: Any, schema: Any) -> list[str]:
    """jsonschema's ``find_evaluated_property_keys_by_schema`` with bounded matching."""
    if validator.is_type(schema, "boolean"):
        return []
    evaluated: list[str] = []
    for keyword in ("$ref", "$dynamicRef"):
        ref = schema.get(keyword)
        if ref is not None:
            resolved = validator._resolver.lookup(ref)
            evaluated += _evaluated_keys(
                validator.evolve(schema=resolved.contents, _resolver=resolved.resolver),
                instance,
                resolved.contents,
            )
    properties = schema.get("properties")
    if validator.is_type(properties, "object"):
        evaluated += properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if (subschema := schema.get(keyword)) is None:
            continue
        evaluated += (
            key
            for key, value in instance.items()
            if next(validator.descend(value, subschema), None) is None
        )
    if "patternProperties" in schema:
        for name in instance:
            for pattern in schema["patternProperties"]:
                try:
                    matched = _search(pattern, name)
                except _Unchecked:  # the record fails on this already: no second error
                    matched = True
                if matched:
                    evaluated.append(name)
    if "dependentSchemas" in schema:
        for name, subschema in schema["dependentSchemas"].items():
            if name in instance:
                evaluated += _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if next(validator.descend(instance, subschema), None) is None:
                evaluated += _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            evaluated += _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                evaluated += _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            evaluated += _evaluated_keys(validator, instance, schema["else"])
    return evaluated


def _unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    bad = []
    for name in instance:
        if name not in evaluated:
            errors = validator.descend(instance[name], unevaluated, path=name, schema_path=name)
            if next(errors, None) is not None:
                bad.append(name)
    if bad:
        if unevaluated is False:
            error = "Unevaluated properties are not allowed (%s %s unexpected)"
            yield ValidationError(error % _listed(sorted(bad, key=str)))
        else:
            error = (
                "Unevaluated properties are not valid under "
                "the given schema (%s %s unevaluated and invalid)"
            )
            yield ValidationError(error % _listed(bad))


_BoundedValidator = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "unevaluatedProperties": _unevaluated_properties,
    },
)
_EVOLVE_FIELDS = tuple((f.name, f.alias) for f in attrs.fields(_BoundedValidator) if f.init)


def _evolve_keeping_bounds(self: Any, **changes: Any) -> Any:
    """jsonschema's ``evolve`` with the class kept.

    jsonschema picks the class of each subschema from its ``$schema``, so a nested
    ``"$schema": ".../draft-07/schema#"`` (or the 2020-12 URL) would switch to a stock class
    and run its patterns with ``re``, unbounded. The whole schema was checked as 2020-12;
    it is applied as 2020-12, with bounded matching, throughout.
    """
    changes.setdefault("schema", self.schema)
    for name, alias in _EVOLVE_FIELDS:
        if alias not in changes:
            changes[alias] = getattr(self, name)
    return type(self)(**changes)


_BoundedValidator.evolve = _evolve_keeping_bounds


# --------------------------------------------------------------------------- compiled

# The hot path validates with jsonschema-rs (compiled, about ten times faster than the
# class above on realistic records). Its verdict is trusted only where it cannot be laxer
# than ours; everything else, and every message a user reads, stays jsonschema's:
#
# - ``pattern``, ``format`` and ``multipleOf`` run *our* keyword functions (jsonschema's,
#   with bounded matching) as custom keywords of the compiled validator: the same regex
#   engine, timeout, per-record budget and subject cap as the bounded path (one budget for
#   both), the same format checkers, the same float arithmetic;
# - a schema takes the compiled path only when every keyword it uses means the same in both
#   libraries (``compiled_path_refusal``); the others are validated by the bounded class
#   alone, as before: ``not`` / ``oneOf`` / ``if`` / ``maxContains`` (a stricter subschema
#   could make them pass, see below), ``patternProperties`` (jsonschema-rs would match the
#   names with its own engine), ``unevaluated*``, ``$id`` / anchors / dynamic references,
#   references other than local JSON pointers, keywords of older drafts that jsonschema-rs
#   still applies (``dependencies``, ``additionalItems``), a nested ``$schema``, and numbers
#   beyond 2**53 (where the two libraries compare integers and floats differently);
# - a record the compiled validator accepts is valid; one it refuses (or cannot take: a lone
#   surrogate, NaN) goes to the bounded path, which decides and words the errors. Without
#   the keywords above a schema is monotone -- a stricter check of a subschema can only make
#   the whole stricter -- so the compiled verdict can only err towards "invalid", which the
#   bounded path then corrects. ``tests/test_validators_agree.py`` runs both on every
#   schema and record of the suite and on generated ones.

COMPILED_REFUSED_KEYWORDS = {
    "not": "a negation",
    "oneOf": "oneOf",
    "if": "if / then / else",
    "maxContains": "maxContains",
    "patternProperties": "patternProperties",
    "unevaluatedProperties": "unevaluatedProperties",
    "unevaluatedItems": "unevaluatedItems",
    "$id": "$id",
    "$anchor": "$anchor",
    "$dynamicRef": "a dynamic reference",
    "$dynamicAnchor": "a dynamic anchor",
    "$recursiveRef": "a recursive reference",
    "$recursiveAnchor": "a recursive anchor",
    "$vocabulary": "$vocabulary",
    "dependencies": "an older draft's keyword (dependencies)",
    "additionalItems": "an older draft's keyword (additionalItems)",
}
EXACT_FLOAT_LIMIT = 2**53  # integers up to here are exact as floats in both libraries
_PYTHON_KEYWORDS = ("pattern", "format", "multipleOf")


def _numbers(value: object) -> Iterator[int | float]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int | float):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def compiled_path_refusal(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` is validated by the bounded class alone, or ``None`` (compiled path).

    Walks every subschema, and every subschema a ``$ref`` reaches (a reference may point
    anywhere in the document).
    """
    root_dialect = schema.get("$schema", META_SCHEMA_URL)
    if root_dialect != META_SCHEMA_URL:
        return f"$schema {str(root_dialect)[:80]!r}"
    if any(abs(n) >= EXACT_FLOAT_LIMIT for n in _numbers(schema)):
        return "a number beyond 2**53"
    seen: set[int] = set()
    pending: list[tuple[tuple[object, ...], object]] = [((), schema)]
    while pending:
        start, node = pending.pop()
        for path, sub in _walk(node, start):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            for keyword, why in COMPILED_REFUSED_KEYWORDS.items():
                if keyword in sub:
                    return f"{why} at {_pointer([*path, keyword])}"
            if path and "$schema" in sub:
                return f"a nested $schema at {_pointer(path)}"
            ref = sub.get("$ref")
            if ref is None:
                continue
            if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
                return f"a reference other than a JSON pointer at {_pointer([*path, '$ref'])}"
            if "%" in ref:
                return f"an escaped reference at {_pointer([*path, '$ref'])}"
            target = _target(schema, ref)
            if isinstance(target, dict):
                pending.append(((*path, "$ref"), target))
    return None


_KEYWORD_CONTEXT = _BoundedValidator({}, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _python_keyword(name: str) -> type:
    """A jsonschema-rs custom keyword that runs ``name`` as the bounded class does."""
    function = _BoundedValidator.VALIDATORS[name]

    class Keyword:
        __slots__ = ("parent", "value")

        def __init__(self, parent: dict[str, Any], value: Any, path: list[Any]) -> None:
            self.parent = parent
            self.value = value

        def validate(self, instance: Any) -> None:
            if (
                next(function(_KEYWORD_CONTEXT, self.value, instance, self.parent), None)
                is not None
            ):
                raise ValueError(name)

    Keyword.__name__ = Keyword.__qualname__ = f"Python_{name}"
    return Keyword


class _PatternKeyword:
    """``pattern`` as ``_pattern`` decides it (bounded ``_search``), without its message:
    the hot path's most frequent keyword, so it skips the generic wrapper."""

    __slots__ = ("pattern",)

    def __init__(self, parent: dict[str, Any], value: Any, path: list[Any]) -> None:
        self.pattern = value

    def validate(self, instance: Any) -> None:
        if isinstance(instance, str):  # jsonschema's "string" type
            try:
                found = _search(self.pattern, instance)
            except _Unchecked:
                found = False
            if not found:
                raise ValueError("pattern")


class _FormatKeyword:
    """``format`` as jsonschema's keyword decides it (``FormatChecker.check``)."""

    __slots__ = ("format",)

    def __init__(self, parent: dict[str, Any], value: Any, path: list[Any]) -> None:
        self.format = value

    def validate(self, instance: Any) -> None:
        if not _FORMATS.conforms(instance, self.format):
            raise ValueError("format")


_FORMATS = Draft202012Validator.FORMAT_CHECKER
_COMPILED_KEYWORDS = {name: _python_keyword(name) for name in _PYTHON_KEYWORDS}
_COMPILED_KEYWORDS.update(pattern=_PatternKeyword, format=_FormatKeyword)


def _no_remote_document(uri: str) -> Any:
    raise NoSuchResource(ref=uri)


def compiled_validator(schema: dict[str, Any]) -> Any | None:
    """The jsonschema-rs validator of ``schema``, or ``None`` when it takes the bounded path."""
    if compiled_path_refusal(schema) is not None:
        return None
    try:
        return jsonschema_rs.Draft202012Validator(
            schema,
            keywords=_COMPILED_KEYWORDS,
            retriever=_no_remote_document,
            validate_formats=False,
        )
    except Exception:  # it refuses what jsonschema accepts: the bounded path validates
        logger.debug("schema left to the bounded validator: jsonschema-rs refused it")
        return None


class RecordValidator:
    """Validates records against one checked schema (formats asserted where a checker exists).

    Every pattern match on record data is bounded (``PATTERN_TIMEOUT`` per match,
    ``PATTERN_BUDGET`` per record, ``MAX_PATTERN_SUBJECT`` characters): a record whose
    patterns cannot be checked within those bounds is invalid, with a message saying so.
    Records are checked by the compiled validator first where the schema allows it (see
    above); the bounded class decides every record it refuses and words the errors.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator = _BoundedValidator(
            schema, registry=_REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        self._compiled = compiled_validator(schema)

    @property
    def compiled(self) -> bool:
        """Whether records are checked by the compiled validator first."""
        return self._compiled is not None

    def errors(self, record: object) -> list[str]:
        """Short messages with paths (``/age: -3 is less than the minimum of 0``); [] when valid."""
        budget = _RecordBudget()
        token = _RECORD.set(budget)
        try:
            if self._compiled is not None and self._compiled_accepts(record, budget):
                return []
            return self._bounded_errors(record, budget)
        finally:
            _RECORD.reset(token)

    def compiled_verdict(self, record: object) -> bool | None:
        """The compiled validator's verdict alone (``None``: the schema takes the bounded path)."""
        if self._compiled is None:
            return None
        budget = _RecordBudget()
        token = _RECORD.set(budget)
        try:
            return self._compiled_accepts(record, budget)
        finally:
            _RECORD.reset(token)

    def bounded_errors(self, record: object) -> list[str]:
        """``errors`` from the bounded jsonschema class alone (what every record got before)."""
        budget = _RecordBudget()
        token = _RECORD.set(budget)
        try:
            return self._bounded_errors(record, budget)
        finally:
            _RECORD.reset(token)

    def _compiled_accepts(self, record: object, budget: _RecordBudget) -> bool:
        try:
            valid = self._compiled.is_valid(record)  # type: ignore[union-attr]
        except Exception:  # a value it cannot convert (a lone surrogate...): not accepted
            return False
        return valid and not budget.gave_up  # a give-up fails the record (see below)

    def _bounded_errors(self, record: object, budget: _RecordBudget) -> list[str]:
        found: list[str] = []
        try:
            for error in self._validator.iter_errors(record):
                where = _clip(_pointer(list(error.absolute_path)))  # a key may be 10 kB
                found.append(f"{where}: {_short(error)}")
                if len(found) >= MAX_RECORD_ERRORS:
                    break
        except Exception as exc:  # an unresolvable reference, say
            name = type(exc).__name__
            if "Referencing" in name or "Unresolvable" in name:
                name = "unresolvable reference"
            return [f"/: schema could not be applied: {name}"]
        if budget.gave_up and not any(
            reason in line for line in found for reason in budget.gave_up
        ):  # a give-up swallowed by not / anyOf / if...: the record still fails on it
            found.append(f"/: {_clip(budget.gave_up[0])}")
        return sorted(set(found))

    def is_valid(self, record: object) -> bool:
        return not self.errors(record)


def compile_validator(schema: dict[str, Any]) -> RecordValidator:
    """Check ``schema`` (``SchemaInvalid`` when unusable) and compile its validator."""
    check_schema(schema)
    return RecordValidator(schema)
