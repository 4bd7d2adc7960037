"""The bounded validator: jsonschema's 2020-12 class with every regex match on record data
bounded (the second layer of the bounds on matching; ``check`` is the first).

Every match on record data -- the ``pattern`` keyword (also reached through
``propertyNames`` and ``dependentSchemas``), ``patternProperties``, and the pattern look-ups
of ``additionalProperties`` and ``unevaluatedProperties`` -- runs under ``regex`` (compiled
once, cached) with a ``PATTERN_TIMEOUT`` per match and a ``PATTERN_BUDGET`` per record, and
never on a string longer than ``MAX_PATTERN_SUBJECT``. A match that cannot be finished
within those bounds fails the record with a message saying so (``pattern '...' too costly
to check``); it is never an exception and never a stall. A give-up hidden under ``not`` /
``anyOf`` / ``if`` still fails the record. ``regex`` also releases the GIL while it
matches, so other threads of the replica keep running meanwhile.

The class keeps itself for every subschema: a nested ``$schema`` (which jsonschema would
honour by switching to its stock class) cannot bring back unbounded matching. References
are never fetched: the validator's registry refuses every remote URI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import attrs
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from datagems.schema.check import _COMPILE_ERRORS, _compiled

MAX_PATTERN_SUBJECT = 10_000


def _no_remote(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)


_REGISTRY: Registry = Registry(retrieve=_no_remote)  # type: ignore[call-arg]

PATTERN_TIMEOUT = 0.05

PATTERN_BUDGET = 0.5


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
