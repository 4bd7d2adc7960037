"""Validate records against a checked schema: ``compile_validator`` builds a
``RecordValidator`` once per job.

The hot path validates with jsonschema-rs (compiled, about ten times faster); every record
it refuses, and every message a user reads, goes through the bounded validator
(``bounded``), whose regex matches on record data are bounded in time. The comment above
``COMPILED_REFUSED_KEYWORDS`` says when the compiled verdict is trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from referencing.exceptions import NoSuchResource

from datagems.schema.bounded import (
    _RECORD,
    _REGISTRY,
    _BoundedValidator,
    _RecordBudget,
    _search,
    _Unchecked,
)
from datagems.schema.check import _clip, _pointer, _short, _target, _walk, check_schema
from datagems.schema.sanitize import MAX_RECORD_ERRORS, META_SCHEMA_URL

logger = logging.getLogger(__name__)


"""Seconds one regular-expression match on record data may take.

Python's ``re`` cannot be interrupted and holds the GIL while it matches: one polynomially
backtracking pattern (``^\\d*\\d*\\d*\\d*[a-z]$`` on 10,000 digits: O(n^4) steps) would stall
the whole replica for hours. ``regex`` gives up after this long (``timeout=``) and the
record fails validation. 50 ms is about a hundred times what ordinary patterns take on the
longest string we match (0.6 ms at most for 10,000 characters: ``^[a-z]+\\d?$``,
``(foo|bar)_[0-9]+``), and small enough that a batch of such records does not starve the
replica."""

"""Seconds all the pattern matches of one record may take together.

Without it a record with many patterned strings (an array of 1,000 items under a costly
``pattern``) would add ``PATTERN_TIMEOUT`` up into a stall; once spent, every further
match of that record gives up at once and the record fails validation."""


# Every keyword below replaces a jsonschema (4.26) one that calls ``re.search`` on record
# data; apart from the matching they keep its behaviour and messages.


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
#   bounded path then corrects. ``tests/schema/test_validators_agree.py`` runs both on every
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
