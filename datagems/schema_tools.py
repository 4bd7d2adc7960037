"""JSON Schema tools: clean up a drafted schema, check it, validate records against it.

- ``sanitize_schema`` repairs the usual mistakes of a model that drafts a schema (wrong
  ``$schema``, missing root ``type``, property values that are not schemas, ``required``
  naming absent properties). It never adds a property that was not there.
- ``check_schema`` validates against the 2020-12 meta-schema with field-level errors, and
  refuses what we will not run: a root that is not an object, oversized or too deep
  schemas, non-local or dangling ``$ref`` / ``$dynamicRef``, recursive schemas (a
  reference cycle), and regular expressions that may backtrack catastrophically.
- ``compile_validator`` builds a ``RecordValidator`` once per job.

Regular expressions: Python's ``re`` has no timeout, so we bound the cost *at check time*.
A ``pattern`` / ``patternProperties`` key is refused when it does not compile, is longer
than ``MAX_PATTERN_LENGTH``, or has a repeat nested inside an unbounded repeat (``(a+)+``,
``(\\w*\\s?)*``, ``(a{1,9})*``...) or an alternation whose branches may overlap inside one
(``(a|aa)*``, ``(a|a)*``), the shapes behind catastrophic backtracking. A record
string longer than ``MAX_PATTERN_SUBJECT`` is not matched against a pattern at all (it is an
error). References are never fetched: the validator's registry refuses every remote URI.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from datagems.errors import SchemaInvalid

try:  # the regex parser of the standard library (private, stable since 3.11)
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older layouts
    import sre_parse as _sre_parse  # type: ignore[no-redef]

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


def _fix_subschema(value: object) -> dict[str, Any] | bool | None:
    """A property value turned into a schema, or ``None`` when it cannot be one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _type_schema(value) or {"type": "string"}
    if isinstance(value, list):
        if value and all(isinstance(v, str) and v.strip().lower() in JSON_TYPES for v in value):
            return {"type": [v.strip().lower() for v in value]}
        if value and all(isinstance(v, str | int | float | bool) for v in value):
            return {"enum": list(dict.fromkeys(value))}
        return None
    if isinstance(value, dict):
        return _fix_node(value)
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
                    for name, sub in ((n, _fix_subschema(v)) for n, v in value.items())
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


def sanitize_schema(raw: object) -> dict[str, Any]:
    """Fix the usual mistakes of a drafted schema; ``SchemaInvalid`` when it is not an object.

    - ``raw`` may be a dict or JSON text; a wrapper ``{"schema": {...}}`` is unwrapped, and
      so is a root ``{"type": "array", "items": {<object schema>}}`` (one record is asked for);
    - a bare map of names to types (``{"name": "string"}``) becomes ``properties``;
    - ``$schema`` is set to the 2020-12 URL; a missing root ``type`` becomes ``"object"``;
    - property values that are not schemas are converted (a type name -> ``{"type": ..}``,
      a list of type names -> a type list, a list of other scalars -> an ``enum``) or dropped;
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
    fixed = _fix_node(node)
    fixed["$schema"] = META_SCHEMA_URL
    if "type" not in fixed:
        fixed["type"] = "object"
    ordered = {"$schema": META_SCHEMA_URL}
    ordered.update((k, v) for k, v in fixed.items() if k != "$schema")
    return ordered


# --------------------------------------------------------------------------- check


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
        errors.append({"path": _pointer(list(error.absolute_path)), "message": _short(error)})
        if len(errors) >= 50:
            break
    if schema.get("type") != "object":
        errors.append({"path": "/type", "message": 'the root must be "type": "object"'})
    for path, sub in _walk(schema):
        for key in ("$ref", "$dynamicRef"):
            ref = sub.get(key)
            if not isinstance(ref, str):
                continue
            if not ref.startswith("#"):
                errors.append(
                    {
                        "path": _pointer([*path, key]),
                        "message": f"only local references (#/...) are allowed, not {ref[:100]!r}",
                    }
                )
            elif not _resolve_local(schema, ref):
                errors.append(
                    {"path": _pointer([*path, key]), "message": f"{ref[:100]!r} points at nothing"}
                )
        pattern = sub.get("pattern")
        if isinstance(pattern, str) and (problem := pattern_problem(pattern)):
            errors.append({"path": _pointer([*path, "pattern"]), "message": problem})
        pattern_map = sub.get("patternProperties")
        if isinstance(pattern_map, dict):
            for key in pattern_map:
                if problem := pattern_problem(key):
                    errors.append(
                        {"path": _pointer([*path, "patternProperties", key]), "message": problem}
                    )
    if not errors and (where := _ref_cycle(schema)):
        errors.append({"path": where, "message": "recursive reference ($ref cycle)"})
    if errors:
        first = errors[0]
        raise SchemaInvalid(f"invalid schema at {first['path']}: {first['message']}", errors)


def _short(error: ValidationError) -> str:
    message = error.message
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"


# --------------------------------------------------------------------------- validate


def _no_remote(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)


_REGISTRY: Registry = Registry(retrieve=_no_remote)  # type: ignore[call-arg]


class RecordValidator:
    """Validates records against one checked schema (formats asserted where a checker exists)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator = Draft202012Validator(
            schema, registry=_REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        self._has_patterns = any(
            "pattern" in sub or "patternProperties" in sub for _, sub in _walk(schema)
        )

    def errors(self, record: object) -> list[str]:
        """Short messages with paths (``/age: -3 is less than the minimum of 0``); [] when valid."""
        if self._has_patterns and _longest_string(record) > MAX_PATTERN_SUBJECT:
            return [f"/: a string is longer than {MAX_PATTERN_SUBJECT} characters"]
        found: list[str] = []
        try:
            for error in self._validator.iter_errors(record):
                found.append(f"{_pointer(list(error.absolute_path))}: {_short(error)}")
                if len(found) >= MAX_RECORD_ERRORS:
                    break
        except Exception as exc:  # an unresolvable reference, say
            name = type(exc).__name__
            if "Referencing" in name or "Unresolvable" in name:
                name = "unresolvable reference"
            return [f"/: schema could not be applied: {name}"]
        found.sort()
        return found

    def is_valid(self, record: object) -> bool:
        return not self.errors(record)


def _longest_string(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((max(len(k), _longest_string(v)) for k, v in value.items()), default=0)
    if isinstance(value, list):
        return max((_longest_string(v) for v in value), default=0)
    return 0


def compile_validator(schema: dict[str, Any]) -> RecordValidator:
    """Check ``schema`` (``SchemaInvalid`` when unusable) and compile its validator."""
    check_schema(schema)
    return RecordValidator(schema)
