"""Schema-driven fake data for the mock gateway: records that satisfy a JSON Schema.

``RecordFactory(schema)`` compiles the schema once into generator closures; ``make(rng)``
then costs a few microseconds per record. Supported: ``type`` (single or list), ``enum``,
``const``, numeric bounds (inclusive and exclusive) and ``multipleOf``, ``minLength`` /
``maxLength``, ``pattern`` (generated from the regex parse tree, checked with ``re.search``),
formats (email, date, date-time, time, uri, uuid, hostname, ipv4, ipv6, duration),
``required`` / optional properties, ``minProperties`` / ``maxProperties``,
``dependentRequired``, nested objects, arrays (``items``, ``prefixItems``, ``minItems`` /
``maxItems``, ``uniqueItems``, ``contains``), ``allOf`` (merged), ``anyOf`` / ``oneOf`` (one
branch picked), local ``$ref`` (lazily, so recursive schemas work, bounded by depth).
Values are plausible by property name (name, email, city, age, price, description...;
see ``vocabulary``).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from typing import Any

import orjson

from datagems.mock.vocabulary import (
    _NUMBER_RANGES,
    FORMATS,
    WORDS,
    _by_name,
    _name_key,
    _word_string,
)

try:
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse as _sre_parse  # type: ignore[no-redef]

Gen = Callable[[random.Random, int], Any]
MAX_DEPTH = 5  # past this depth: only required properties, minimal arrays
HARD_DEPTH = 24  # a required self-reference stops here (the record is then invalid)


# --------------------------------------------------------------------------- regex


def _regex_gen(items: Any) -> Callable[[random.Random, list[str]], None]:
    """A generator of strings matching a parsed regex (best effort; checked by the caller)."""
    parts: list[Callable[[random.Random, list[str]], None]] = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            char = chr(arg)
            parts.append(lambda rng, out, c=char: out.append(c))
        elif name == "NOT_LITERAL":
            char = "b" if chr(arg) == "a" else "a"
            parts.append(lambda rng, out, c=char: out.append(c))
        elif name == "ANY":
            parts.append(lambda rng, out: out.append(rng.choice("abcxyz0123")))
        elif name == "IN":
            choices = _in_choices(arg)
            parts.append(lambda rng, out, cs=choices: out.append(rng.choice(cs)))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            high = low + 3 if high == _sre_parse.MAXREPEAT else min(high, low + 3)
            inner = _regex_gen(sub)

            def repeat(
                rng: random.Random, out: list[str], lo: int = low, hi: int = high, g: Any = inner
            ) -> None:
                for _ in range(rng.randint(lo, hi)):
                    g(rng, out)

            parts.append(repeat)
        elif name == "SUBPATTERN":
            parts.append(_regex_gen(arg[-1]))
        elif name == "BRANCH":
            branches = [_regex_gen(b) for b in arg[1]]
            parts.append(lambda rng, out, bs=branches: rng.choice(bs)(rng, out))
        elif name == "CATEGORY":
            choices = _category(str(arg))
            parts.append(lambda rng, out, cs=choices: out.append(rng.choice(cs)))
        # AT (anchors), ASSERT, GROUPREF...: nothing emitted

    def run(rng: random.Random, out: list[str]) -> None:
        for part in parts:
            part(rng, out)

    return run


def _category(name: str) -> str:
    if "NOT_DIGIT" in name:
        return "abcxyz"
    if "DIGIT" in name:
        return "0123456789"
    if "NOT_WORD" in name:
        return "-. "
    if "NOT_SPACE" in name:
        return "abc-"
    if "SPACE" in name:
        return " "
    return "abcdefghijklmnopqrstuvwxyz0123456789"


def _in_choices(items: Any) -> str:
    chars: list[str] = []
    negate = False
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars.append(chr(arg))
        elif name == "RANGE":
            low, high = arg
            chars.extend(chr(c) for c in range(low, min(high, low + 40) + 1))
        elif name == "CATEGORY":
            chars.extend(_category(str(arg)))
    if negate:
        pool = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
        return "".join(c for c in pool if c not in set(chars)) or "~"
    return "".join(chars) or "a"


# --------------------------------------------------------------------------- factory


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(value, dict):
            merged["properties"] = {**merged.get("properties", {}), **value}
        elif key == "required" and isinstance(value, list):
            merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
        else:
            merged[key] = value
    return merged


class RecordFactory:
    """Compiled generators for one schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._refs: dict[str, Gen] = {}
        self._gen = self._compile(schema, "")

    def make(self, rng: random.Random) -> Any:
        return self._gen(rng, 0)

    def violate(self, rng: random.Random) -> Any:
        """A record that breaks the schema: a required field missing, or a wrong type."""
        record = self.make(rng)
        root = self._resolve_root(self.schema)
        if not isinstance(record, dict):
            return {"unexpected": record}
        required = [name for name in root.get("required", []) if name in record]
        typed = []
        for name, sub in (root.get("properties") or {}).items():
            if isinstance(sub, dict) and isinstance(sub.get("type"), str) and name in record:
                typed.append((name, sub["type"]))
        if required and (not typed or rng.random() < 0.5):
            del record[rng.choice(required)]
            return record
        if typed:
            name, kind = rng.choice(typed)
            record[name] = 12345 if kind == "string" else "not-a-" + kind
            return record
        return [record]

    def _resolve_root(self, node: dict[str, Any]) -> dict[str, Any]:
        for _ in range(8):
            ref = node.get("$ref") if isinstance(node, dict) else None
            if not isinstance(ref, str):
                break
            target = self._lookup(ref)
            node = (
                _merge(target, {k: v for k, v in node.items() if k != "$ref"})
                if isinstance(target, dict)
                else {}
            )
        for key in ("allOf",):
            for sub in node.get(key, []) or []:
                if isinstance(sub, dict):
                    node = _merge(node, self._resolve_root(sub))
        return node

    def _lookup(self, ref: str) -> Any:
        if ref in ("#", ""):
            return self.schema
        node: Any = self.schema
        if not ref.startswith("#/"):
            anchor = ref[1:]
            return self._find_anchor(self.schema, anchor) or {}
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict):
                node = node.get(part, {})
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return {}
        return node

    def _find_anchor(self, node: Any, anchor: str) -> Any:
        if isinstance(node, dict):
            if node.get("$anchor") == anchor:
                return node
            for key, value in node.items():
                if key in ("enum", "const", "examples", "default"):
                    continue
                found = self._find_anchor(value, anchor)
                if found is not None:
                    return found
        elif isinstance(node, list):
            for value in node:
                found = self._find_anchor(value, anchor)
                if found is not None:
                    return found
        return None

    # -- compilation

    def _compile(self, node: Any, name: str) -> Gen:
        if node is False:
            return lambda rng, depth: None
        if node is True or not isinstance(node, dict) or not node:
            fn = (_by_name(name) if name else None) or _word_string
            return lambda rng, depth: fn(rng)
        if "$ref" in node and isinstance(node["$ref"], str):
            return self._compile_ref(node, name)
        if isinstance(node.get("allOf"), list):
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for sub in node["allOf"]:
                if isinstance(sub, dict):
                    merged = _merge(merged, self._resolve_root(sub))
            return self._compile(merged, name)
        for key in ("oneOf", "anyOf"):
            if isinstance(node.get(key), list) and node[key]:
                base = {k: v for k, v in node.items() if k not in ("oneOf", "anyOf")}
                branches = [
                    self._compile(_merge(base, sub) if isinstance(sub, dict) else sub, name)
                    for sub in node[key]
                ]
                return lambda rng, depth, bs=branches: rng.choice(bs)(rng, depth)
        if "const" in node:
            value = node["const"]
            return lambda rng, depth: value
        if isinstance(node.get("enum"), list) and node["enum"]:
            values = node["enum"]
            return lambda rng, depth: rng.choice(values)
        kind = node.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if isinstance(k, str)] or ["string"]
            non_null = [k for k in kinds if k != "null"] or kinds
            gens = [self._compile({**node, "type": k}, name) for k in non_null]
            null_gen = self._compile({"type": "null"}, name) if "null" in kinds else None

            def pick(rng: random.Random, depth: int) -> Any:
                if null_gen is not None and rng.random() < 0.1:
                    return None
                return rng.choice(gens)(rng, depth)

            return pick
        if not isinstance(kind, str):
            kind = _infer_type(node)
        if kind == "object":
            return self._compile_object(node)
        if kind == "array":
            return self._compile_array(node, name)
        if kind == "string":
            return _compile_string(node, name)
        if kind == "integer":
            return _compile_number(node, name, integer=True)
        if kind == "number":
            return _compile_number(node, name, integer=False)
        if kind == "boolean":
            return lambda rng, depth: rng.random() < 0.5
        return lambda rng, depth: None

    def _compile_ref(self, node: dict[str, Any], name: str) -> Gen:
        ref = node["$ref"]
        siblings = {k: v for k, v in node.items() if k not in ("$ref", "$defs", "definitions")}
        key = (
            ref
            if not siblings
            else ref + orjson.dumps(siblings, option=orjson.OPT_SORT_KEYS).decode()
        )
        cache = self._refs

        def by_ref(rng: random.Random, depth: int) -> Any:
            gen = cache.get(key)
            if gen is None:
                target = self._lookup(ref)
                if isinstance(target, dict) and siblings:
                    target = _merge(target, siblings)
                gen = cache[key] = self._compile(target, name)
            return gen(rng, depth + 1)

        return by_ref

    def _compile_object(self, node: dict[str, Any]) -> Gen:
        properties = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        required = [n for n in node.get("required", []) if isinstance(n, str)]
        gens = {prop: self._compile(sub, prop) for prop, sub in properties.items()}
        for prop in required:
            if prop not in gens:  # required but not described: a plausible string
                gens[prop] = self._compile(True, prop)
        required_set = set(required)
        optional = [p for p in gens if p not in required_set]
        min_props = int(node.get("minProperties", 0) or 0)
        max_props = node.get("maxProperties")
        dependent = (
            node.get("dependentRequired") if isinstance(node.get("dependentRequired"), dict) else {}
        )
        for needs in dependent.values():
            for needed in needs if isinstance(needs, list) else ():
                if isinstance(needed, str) and needed not in gens:
                    gens[needed] = self._compile(True, needed)
        extra_allowed = node.get("additionalProperties", True) is not False
        extra_gen = (
            self._compile(node["additionalProperties"], "")
            if isinstance(node.get("additionalProperties"), dict)
            else lambda rng, depth: _word_string(rng)
        )
        order = list(gens)

        def make(rng: random.Random, depth: int) -> Any:
            if depth > HARD_DEPTH:
                return {}
            chosen = set(required)
            if depth <= MAX_DEPTH:
                for prop in optional:
                    if rng.random() < 0.75:
                        chosen.add(prop)
            if len(chosen) < min_props:
                missing = [p for p in optional if p not in chosen]
                rng.shuffle(missing)
                chosen.update(missing[: min_props - len(chosen)])
            if dependent:
                for prop in list(chosen):
                    for needed in dependent.get(prop, ()) or ():
                        if needed in gens:
                            chosen.add(needed)
            if isinstance(max_props, int) and len(chosen) > max_props:
                droppable = [p for p in optional if p in chosen]
                while len(chosen) > max_props and droppable:
                    chosen.discard(droppable.pop())
            record = {prop: gens[prop](rng, depth + 1) for prop in order if prop in chosen}
            counter = 0
            while extra_allowed and len(record) < min_props and counter < min_props + 5:
                record[f"extra_{counter}"] = extra_gen(rng, depth + 1)
                counter += 1
            return record

        return make

    def _compile_array(self, node: dict[str, Any], name: str) -> Gen:
        singular = name[:-1] if name.endswith("s") and len(name) > 3 else name
        prefix = [self._compile(s, singular) for s in node.get("prefixItems", []) or []]
        items = node.get("items", True)
        item_gen = None if items is False else self._compile(items, singular)
        min_items = int(node.get("minItems", 0) or 0)
        max_items = node.get("maxItems")
        upper = min_items + 3 if not isinstance(max_items, int) else min(max_items, min_items + 3)
        low = max(min_items, 1) if (not isinstance(max_items, int) or max_items >= 1) else 0
        if len(prefix) and item_gen is None:
            upper = min(upper, len(prefix))
        low = min(low, upper)
        unique = bool(node.get("uniqueItems"))
        contains = node.get("contains")
        contains_gen = self._compile(contains, singular) if isinstance(contains, dict) else None

        def make(rng: random.Random, depth: int) -> list[Any]:
            count = min_items if depth > MAX_DEPTH else rng.randint(low, max(low, upper))
            out: list[Any] = []
            seen: set[bytes] = set()
            attempts = 0
            while len(out) < count and attempts < count * 8 + 8:
                attempts += 1
                position = len(out)
                if position < len(prefix):
                    value = prefix[position](rng, depth + 1)
                elif item_gen is not None:
                    value = item_gen(rng, depth + 1)
                else:
                    break
                if unique:
                    key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
                    if key in seen:
                        continue
                    seen.add(key)
                out.append(value)
            if contains_gen is not None:
                value = contains_gen(rng, depth + 1)
                if isinstance(max_items, int) and len(out) >= max_items and out:
                    out[-1] = value
                else:
                    out.append(value)
            return out

        return make


def _infer_type(node: dict[str, Any]) -> str:
    if any(k in node for k in ("properties", "required", "additionalProperties", "minProperties")):
        return "object"
    if any(k in node for k in ("items", "prefixItems", "minItems", "maxItems", "contains")):
        return "array"
    if any(
        k in node
        for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
    ):
        return "number"
    return "string"


def _compile_string(node: dict[str, Any], name: str) -> Gen:
    min_len = int(node.get("minLength", 0) or 0)
    max_len = node.get("maxLength")
    max_len = int(max_len) if isinstance(max_len, int | float) else None
    fmt = node.get("format")
    pattern = node.get("pattern")
    base: Callable[[random.Random], str]
    if isinstance(pattern, str):
        try:
            compiled = re.compile(pattern)
            run = _regex_gen(list(_sre_parse.parse(pattern)))
        except (re.error, RecursionError):
            compiled, run = None, None

        def from_pattern(rng: random.Random) -> str:
            text = ""
            for _ in range(8):
                out: list[str] = []
                run(rng, out)  # type: ignore[misc]
                text = "".join(out)
                if (
                    (compiled is None or compiled.search(text))
                    and min_len <= len(text)
                    and (max_len is None or len(text) <= max_len)
                ):
                    return text
            return text

        base = from_pattern if run is not None else _word_string
    elif isinstance(fmt, str) and fmt in FORMATS:
        base = FORMATS[fmt]
    else:
        base = _by_name(name) or _word_string
    if not min_len and max_len is None:
        return lambda rng, depth: base(rng)

    def fit(rng: random.Random, depth: int) -> str:
        text = base(rng)
        if len(text) < min_len:
            filler = " ".join(rng.choice(WORDS) for _ in range(min_len // 4 + 2))
            text = (text + " " + filler)[:min_len] if text else filler[:min_len]
            while len(text) < min_len:
                text += "x"
        if max_len is not None and len(text) > max_len:
            text = text[:max_len].rstrip() or text[:max_len]
            if len(text) < min_len:
                text = text + "x" * (min_len - len(text))
        return text

    return fit


def _bounds(node: dict[str, Any], name: str) -> tuple[float | None, float | None, bool, bool]:
    low = node.get("minimum")
    high = node.get("maximum")
    ex_low = node.get("exclusiveMinimum")
    ex_high = node.get("exclusiveMaximum")
    low_open = high_open = False
    if (
        isinstance(ex_low, int | float)
        and not isinstance(ex_low, bool)
        and (low is None or ex_low >= low)
    ):
        low, low_open = ex_low, True
    if (
        isinstance(ex_high, int | float)
        and not isinstance(ex_high, bool)
        and (high is None or ex_high <= high)
    ):
        high, high_open = ex_high, True
    return low, high, low_open, high_open


def _default_range(name: str) -> tuple[float, float]:
    words = set(re.split(r"[^a-z]+", _name_key(name)))
    for tokens, low, high in _NUMBER_RANGES:
        if any(t in words for t in tokens):
            return low, high
    return 0, 1000


def _compile_number(node: dict[str, Any], name: str, *, integer: bool) -> Gen:
    low, high, low_open, high_open = _bounds(node, name)
    default_low, default_high = _default_range(name)
    if low is None and high is None:
        low, high = default_low, default_high
    elif (
        low is not None
        and high is not None
        and (default_low, default_high) != (0, 1000)
        and "multipleOf" not in node
    ):
        # plausible by name when that fits inside the bounds (an age in [0, 150] -> 18..90)
        if max(low, default_low) < min(high, default_high):
            if default_low > low:
                low, low_open = default_low, False
            if default_high < high:
                high, high_open = default_high, False
    elif low is None:
        low = min(default_low, high - 100) if default_low < high else high - 100
    elif high is None:
        high = max(default_high, low + 100) if default_high > low else low + 100
    multiple = node.get("multipleOf")
    if isinstance(multiple, bool) or not isinstance(multiple, int | float) or multiple <= 0:
        multiple = None
    if integer:
        lo = math.floor(low) + 1 if low_open and float(low).is_integer() else math.ceil(low)
        hi = math.ceil(high) - 1 if high_open and float(high).is_integer() else math.floor(high)
        if hi < lo:
            hi = lo
        if multiple:
            step = multiple
            k_lo, k_hi = math.ceil(lo / step), math.floor(hi / step)
            if k_hi < k_lo:
                k_hi = k_lo
            if float(step).is_integer():
                step = int(step)
                return lambda rng, depth: rng.randint(k_lo, k_hi) * step
            return lambda rng, depth: int(rng.randint(k_lo, k_hi) * step)
        return lambda rng, depth: rng.randint(lo, hi)
    if multiple:
        k_lo = math.ceil(low / multiple) + (1 if low_open and (low / multiple).is_integer() else 0)
        k_hi = math.floor(high / multiple) - (
            1 if high_open and (high / multiple).is_integer() else 0
        )
        if k_hi < k_lo:
            k_hi = k_lo

        def multiple_of(rng: random.Random, depth: int) -> float | int:
            value: float = multiple
            for _ in range(10):
                value = rng.randint(k_lo, k_hi) * multiple
                quotient = value / multiple
                if int(quotient) == quotient:
                    break
            return int(value) if float(value).is_integer() else value

        return multiple_of

    def between(rng: random.Random, depth: int) -> float:
        value = round(rng.uniform(low, high), 2)
        if (
            value < low
            or (low_open and value <= low)
            or value > high
            or (high_open and value >= high)
        ):
            value = (low + high) / 2
        return value

    return between


# --------------------------------------------------------------------------- drafts
