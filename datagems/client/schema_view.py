"""A JSON Schema shown on a terminal: one line per field, nested fields indented,
long descriptions cut, at most ``max_lines`` lines."""

from __future__ import annotations

from typing import Any

MAX_LINES = 40
MAX_DEPTH = 4
TEXT_WIDTH = 60


def _cut(text: str, width: int = TEXT_WIDTH) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def type_of(schema: Any) -> str:
    """``string``, ``integer|null``, ``array of object``, ``enum(3)``..."""
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema and isinstance(schema["enum"], list):
        values = ", ".join(_cut(repr(v), 16) for v in schema["enum"][:4])
        more = ", …" if len(schema["enum"]) > 4 else ""
        return f"one of {values}{more}"
    if "const" in schema:
        return f"= {_cut(repr(schema['const']), 20)}"
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = "|".join(str(k) for k in kind)
    if kind is None:
        for combinator in ("anyOf", "oneOf", "allOf"):
            options = schema.get(combinator)
            if isinstance(options, list) and options:
                return f"{combinator}({' | '.join(type_of(o) for o in options[:3])})"
        kind = "object" if "properties" in schema else "any"
    if "array" in str(kind) and isinstance(schema.get("items"), dict):
        return f"{kind} of {type_of(schema['items'])}"
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _bounds(schema: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("minimum", ">="),
        ("maximum", "<="),
        ("minLength", "len>="),
        ("maxLength", "len<="),
        ("minItems", "items>="),
        ("maxItems", "items<="),
    ):
        if key in schema:
            parts.append(f"{label}{schema[key]}")
    if "pattern" in schema:
        parts.append(f"pattern {_cut(schema['pattern'], 24)}")
    return " ".join(parts)


def _lines(schema: dict[str, Any], depth: int, out: list[str]) -> None:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    required = set(schema.get("required") or [])
    names = list(properties)
    width = min(24, max((len(n) for n in names), default=0))
    pad = "  " * depth
    for name in names:
        field = properties[name] if isinstance(properties[name], dict) else {}
        mark = "*" if name in required else " "
        text = f"{pad}{mark} {name:<{width}}  {type_of(field)}"
        extra = _bounds(field)
        if extra:
            text += f"  [{extra}]"
        if field.get("description"):
            text += f"  — {_cut(field['description'])}"
        out.append(text)
        if depth + 1 < MAX_DEPTH:
            nested = field
            if isinstance(field.get("items"), dict):
                nested = field["items"]
            _lines(nested, depth + 1, out)


def render_schema(schema: dict[str, Any], max_lines: int = MAX_LINES) -> str:
    """The schema as an indented field list (``*`` marks required fields)."""
    head = "record schema"
    if schema.get("title"):
        head += f": {_cut(schema['title'])}"
    lines: list[str] = []
    _lines(schema, 1, lines)
    if not lines:
        lines.append(f"  {type_of(schema)}")
    if len(lines) > max_lines:
        hidden = len(lines) - max_lines + 1
        lines = [*lines[: max_lines - 1], f"  … {hidden} more fields"]
    return "\n".join([head + " (* = required)", *lines])
