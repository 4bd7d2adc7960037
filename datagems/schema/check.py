"""Check a schema before anything runs it, with field-level errors.

``check_schema`` validates against the 2020-12 meta-schema and refuses what we will not
run: a root that is not an object, oversized or too deep schemas, non-local or dangling
``$ref`` / ``$dynamicRef``, recursive schemas (a reference cycle), and regular expressions
that may backtrack catastrophically.

Regular expressions (``pattern``, ``patternProperties``) are the first layer of the bounds
on matching (the second is ``validate``'s): a pattern is refused when it does not compile
under both Python's ``re`` and the ``regex`` engine we run, is longer than
``MAX_PATTERN_LENGTH``, or has a repeat nested inside an unbounded repeat (``(a+)+``,
``(\\w*\\s?)*``, ``(a{1,9})*``...) or an alternation whose branches may overlap inside one
(``(a|aa)*``, ``(a|a)*``): the shapes behind exponential backtracking. This cannot catch
every costly pattern: polynomial backtracking (``^\\d*\\d*\\d*[a-z]$``, ``.*a.*a.*b``) has
no nesting and still takes hours or longer on 10,000 characters under ``re``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import orjson
import regex
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from datagems.errors import SchemaInvalid
from datagems.schema import explain
from datagems.schema.sanitize import (
    DATA_KEYWORDS,
    MAX_MESSAGE_CHARS,
    SCHEMA_LISTS,
    SCHEMA_MAPS,
    SCHEMA_SINGLE,
)

try:  # the regex parser of the standard library (private, stable since 3.11)
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older layouts
    import sre_parse as _sre_parse  # type: ignore[no-redef]


MAX_SCHEMA_BYTES = 64 * 1024

MAX_SCHEMA_DEPTH = 32

MAX_PATTERN_LENGTH = 512


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


_COMPILE_ERRORS = (regex.error, RecursionError, OverflowError, ValueError)


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> regex.Pattern[str]:
    """``pattern`` compiled by ``regex`` once (per process, shared by every job)."""
    return regex.compile(pattern)
