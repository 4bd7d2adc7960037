"""Getting the JSON value out of a model's answer, tolerantly but without inventing anything.

Accepted: the bare JSON; JSON inside a Markdown code fence; JSON with prose before or after
it; a leading ``<think>...</think>`` block of a reasoning model; a UTF-8 BOM. Not done: no
repair of truncated or malformed JSON, no added or renamed fields.
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


def _loads(text: str) -> tuple[bool, object]:
    try:
        return True, orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None


def _scan(text: str) -> tuple[bool, object]:
    """The first ``{...}`` or ``[...]`` that decodes, ignoring text around it."""
    tried = 0
    position = 0
    while tried < MAX_CANDIDATES:
        starts = [p for p in (text.find("{", position), text.find("[", position)) if p >= 0]
        if not starts:
            break
        start = min(starts)
        tried += 1
        try:
            value, _end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            position = start + 1
            continue
        if isinstance(value, dict | list):
            return True, value
        position = start + 1
    return False, None


def extract_json(text: str) -> object:
    """The JSON value in ``text``; ``InferenceError("invalid_json")`` when there is none."""
    if not isinstance(text, str) or not text.strip():
        raise InferenceError("invalid_json", "the answer is empty", retryable=True)
    if len(text) > MAX_TEXT:
        raise InferenceError("invalid_json", "the answer is too long", retryable=True)
    text = text.lstrip("\ufeff")
    ok, value = _loads(text)
    if ok:
        return value
    stripped = _THINK.sub("", text, count=1).strip()
    ok, value = _loads(stripped)
    if ok:
        return value
    for match in _FENCE.finditer(stripped):
        block = match.group(2).strip()
        ok, value = _loads(block)
        if ok:
            return value
        ok, value = _scan(block)
        if ok:
            return value
    ok, value = _scan(stripped)
    if ok:
        return value
    preview = " ".join(stripped.split())[:80]
    raise InferenceError("invalid_json", f"the answer is not JSON: {preview!r}", retryable=True)
