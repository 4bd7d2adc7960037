"""Getting the JSON value out of a model's answer, tolerantly but without inventing anything.

Accepted: the bare JSON; JSON inside a Markdown code fence; one JSON object with prose
before or after it; a leading ``<think>...</think>`` block of a reasoning model; a UTF-8
BOM; raw control characters (a newline, a tab) inside a string, which grammar-constrained
servers emit and which have one reading (they are escaped). Honest about the rest:

- a whole top-level object is preferred: the first ``{`` that is not inside another value
  is the answer, and when it does not decode (cut off, malformed), nothing inside it is
  taken instead (an inner ``properties`` map or a ``["full_name"]`` list is a fragment,
  not the answer): the reason says the answer is not complete JSON;
- a list is taken when it is the whole answer, or a list of objects;
- the reason says "not JSON" when there is no JSON object at all.
No repair of truncated or malformed JSON, no added or renamed fields.
"""

from __future__ import annotations

import json
import re

import orjson

from datagems.errors import InferenceError

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\r?\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_DECODER = json.JSONDecoder()
MAX_CANDIDATES = 32
MAX_TEXT = 1_000_000
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _loads(text: str) -> tuple[bool, object]:
    try:
        return True, orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None


def escape_controls(text: str) -> str | None:
    """``text`` with raw control characters inside JSON strings escaped; ``None`` when it
    has none there (nothing to repair). Outside strings they are whitespace and stay."""
    out: list[str] = []
    in_string = escaped = changed = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            elif char < " ":
                out.append(_CONTROL.get(char) or f"\\u{ord(char):04x}")
                changed = True
                continue
        elif char == '"':
            in_string = True
        out.append(char)
    return "".join(out) if changed else None


def _whole(text: str) -> tuple[bool, object]:
    """``text`` as JSON, as it is or with its control characters escaped."""
    ok, value = _loads(text)
    if ok:
        return ok, value
    repaired = escape_controls(text)
    return _loads(repaired) if repaired is not None else (False, None)


def _decode_at(text: str, start: int) -> tuple[bool, object, int]:
    try:
        value, end = _DECODER.raw_decode(text, start)
        return True, value, end
    except (ValueError, RecursionError):
        pass
    repaired = escape_controls(text[start:])
    if repaired is not None:
        try:
            value, end = _DECODER.raw_decode(repaired)
            return True, value, start + end
        except (ValueError, RecursionError):
            pass
    return False, None, start


class _Broken(Exception):
    """The answer's top-level object does not decode."""


def _span_end(text: str, start: int) -> int:
    """The index after the ``}`` that closes the ``{`` at ``start`` (strings respected);
    -1 when it is never closed (an answer cut off)."""
    depth = 0
    in_string = escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index + 1
    return -1


def _top_object(text: str) -> tuple[bool, object]:
    """The first top-level ``{...}`` (or list of objects) that decodes, prose around it
    ignored. A bracketed span that does not decode is skipped whole (``{name}`` in prose,
    ``["full_name"]``); one never closed raises ``_Broken`` (the answer was cut): what is
    inside it is never taken."""
    position = 0
    for _ in range(MAX_CANDIDATES):
        starts = [p for p in (text.find("{", position), text.find("[", position)) if p >= 0]
        if not starts:
            return False, None
        start = min(starts)
        ok, value, end = _decode_at(text, start)
        if ok and (
            isinstance(value, dict)
            or (isinstance(value, list) and value and all(isinstance(v, dict) for v in value))
        ):
            return True, value
        end = _span_end(text, start)
        if end < 0:
            raise _Broken
        position = end
    return False, None


def extract_json(text: str) -> object:
    """The JSON value in ``text``; ``InferenceError("invalid_json")`` when there is none."""
    if not isinstance(text, str) or not text.strip():
        raise InferenceError("invalid_json", "the answer is empty", retryable=True)
    if len(text) > MAX_TEXT:
        raise InferenceError("invalid_json", "the answer is too long", retryable=True)
    text = text.lstrip("\ufeff")
    ok, value = _whole(text)
    if ok:
        return value
    stripped = _THINK.sub("", text, count=1).strip()
    ok, value = _whole(stripped)
    if ok:
        return value
    preview = " ".join(stripped.split())[:80]
    try:
        for match in _FENCE.finditer(stripped):
            block = match.group(2).strip()
            ok, value = _whole(block)
            if not ok:
                ok, value = _top_object(block)
            if ok:
                return value
        ok, value = _top_object(stripped)
    except _Broken:
        raise InferenceError(
            "invalid_json",
            f"the answer is not complete JSON (cut off or malformed): {preview!r}",
            retryable=True,
        ) from None
    if ok:
        return value
    raise InferenceError("invalid_json", f"the answer is not JSON: {preview!r}", retryable=True)
