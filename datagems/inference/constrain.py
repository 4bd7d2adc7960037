"""The schema sent for constrained decoding: what the servers' grammar converters enforce.

A server with grammar-constrained output turns the schema of ``response_format`` into a
grammar. The converters of the known engines (llama.cpp and its Python port, vLLM's
outlines / xgrammar) support a common core and break on the rest: llama-cpp-python's
converter emitted an invalid grammar for a ``pattern`` with ``\\.`` and crashed the server
(every call in flight died with it), and ignores ``format`` entirely. So the schema sent is
derived from the user's:

- ``format`` (email, date, date-time, time, uuid, uri, ipv4, hostname) becomes an anchored
  ``pattern`` written with character classes only (``[.]``, never ``\\.``), which the
  grammar enforces, and whose matches satisfy the format;
- a user ``pattern`` is kept when it translates to that same plain form (``\\d``, ``\\w``,
  ``\\s``, ``\\.`` outside classes become classes; anchors added), and dropped otherwise;
- ``oneOf`` becomes ``anyOf``; descriptions, titles, examples, defaults and keywords no
  converter enforces (``not``, ``if``/``then``/``else``, ``patternProperties``,
  ``uniqueItems``, ``multipleOf``, ...) are left out.

Validation always uses the user's full schema: what the grammar cannot enforce is still
checked, and the record is retried when it fails.
"""

from __future__ import annotations

import copy
import re
from typing import Any

FORMAT_PATTERNS = {
    "email": "^[a-z][a-z0-9._-]{0,30}@[a-z0-9-]{1,20}([.][a-z0-9-]{1,20}){0,2}[.][a-z]{2,6}$",
    "date": "^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$",
    "date-time": (
        "^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
        "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"
    ),
    "time": "^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$",
    "uuid": "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
    "uri": "^https://[a-z0-9-]{1,30}([.][a-z0-9-]{1,30}){1,3}(/[a-z0-9-]{1,30}){0,4}$",
    "ipv4": (
        "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])[.]){3}"
        "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"
    ),
    "hostname": "^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?([.][a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?){0,3}$",
}
FORMAT_PATTERNS["uri-reference"] = FORMAT_PATTERNS["uri"]
FORMAT_PATTERNS["iri"] = FORMAT_PATTERNS["uri"]
FORMAT_PATTERNS["idn-email"] = FORMAT_PATTERNS["email"]

DROPPED = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "title",
        "description",
        "examples",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "not",
        "if",
        "then",
        "else",
        "dependentSchemas",
        "dependentRequired",
        "patternProperties",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
        "multipleOf",
        "minProperties",
        "maxProperties",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
        "format",
    }
)
SUBSCHEMA_MAPS = frozenset({"properties", "$defs", "definitions"})
SUBSCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
SUBSCHEMA_ONE = frozenset({"items", "additionalProperties", "additionalItems"})
_OUTSIDE_CLASS = {"\\d": "[0-9]", "\\w": "[a-zA-Z0-9_]", "\\s": "[ ]", "\\.": "[.]"}
_INSIDE_CLASS = {"\\d": "0-9", "\\w": "a-zA-Z0-9_", "\\s": " ", "\\.": "."}
_UNSUPPORTED = re.compile(r"\(\?|\\[1-9]|\\[bBAZzpPkKuUxX]")


def plain_pattern(pattern: str) -> str | None:
    """``pattern`` in the form every converter parses (classes for escapes, anchored), or
    ``None`` when it needs a construct they do not all have."""
    if not isinstance(pattern, str) or not pattern or _UNSUPPORTED.search(pattern):
        return None
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            pair = pattern[index : index + 2]
            table = _INSIDE_CLASS if in_class else _OUTSIDE_CLASS
            if pair in table:
                out.append(table[pair])
            elif pattern[index + 1] in "-[]()*+?{}|^$/":
                literal = pattern[index + 1]
                out.append(literal if in_class and literal not in "[]^-" else f"[{literal}]")
                if in_class and literal in "[]^-":
                    return None
            else:
                return None
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        index += 1
    text = "".join(out)
    if "\\" in text:
        return None
    if not text.startswith("^"):
        text = "^" + text
    if not text.endswith("$") or text.endswith("\\$"):
        text = text + "$"
    try:
        re.compile(text)
    except re.error:
        return None
    return text


def _node(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_node(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROPPED:
            continue
        if key in ("enum", "const"):
            out[key] = value
        elif key in SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _node(sub) for name, sub in value.items()}
        elif key in SUBSCHEMA_LISTS and isinstance(value, list):
            out["anyOf" if key == "oneOf" else key] = [_node(sub) for sub in value]
        elif key in SUBSCHEMA_ONE:
            out[key] = _node(value)
        elif key == "pattern":
            plain = plain_pattern(value)
            if plain is not None:
                out[key] = plain
        else:
            out[key] = copy.deepcopy(value)
    fmt = schema.get("format")
    if isinstance(fmt, str) and "pattern" not in out and fmt in FORMAT_PATTERNS:
        kinds = schema.get("type")
        if kinds in (None, "string") or (isinstance(kinds, list) and "string" in kinds):
            out["pattern"] = FORMAT_PATTERNS[fmt]
            out.pop("minLength", None)
            out.pop("maxLength", None)
    return out


def constrained_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema to send in ``response_format`` for ``schema`` (see the module doc)."""
    derived = _node(schema)
    return derived if isinstance(derived, dict) else {"type": "object"}
