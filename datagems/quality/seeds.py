"""Seed data: an uploaded CSV or JSONL file whose rows condition the records of a job.

The file is checked whole at upload (``parse_seed_file``: every row an object of scalars,
a clear error naming the line otherwise), stored in R1FS as JSONL of its rows, and
referenced from the job details by CID (``SeedData``). Record ``i`` is conditioned on one
row, chosen by ``row_for`` (a pure function of the job seed and the index, like the
variables, so every replica and every takeover picks the same row):

- ``in_order``: row ``i mod n``;
- ``sampled``: a row drawn at random (with replacement);
- ``without_replacement``: a permutation of the rows drawn from the job seed, one per pass
  of ``n`` records, so each row is used exactly once per pass.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from datagems.errors import BadRequest

if TYPE_CHECKING:
    from datagems.store.base import R1FS

SeedMode = Literal["in_order", "sampled", "without_replacement"]
SEED_MODES = ("in_order", "sampled", "without_replacement")
MAX_COLUMNS = 100
MAX_CELL_CHARS = 2000


class SeedData(BaseModel):
    """``seedData`` of a job's details: where the rows are and how records use them."""

    model_config = ConfigDict(extra="allow")

    cid: str
    mode: SeedMode = "in_order"
    rows: int = Field(ge=1)
    columns: list[str] = Field(default_factory=list)
    filename: str | None = None


class SeedFileError(BadRequest):
    """A seed file that cannot be used; the message names the line."""


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def parse_seed_file(data: bytes, filename: str = "") -> list[dict[str, Any]]:
    """The rows of a CSV (header line first) or JSONL file (one object per line), by the
    file name's ending or, without one, by its first character."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SeedFileError(f"line {line}: the file is not UTF-8 text") from exc
    name = filename.lower()
    jsonl = name.endswith((".jsonl", ".ndjson", ".json")) or (
        not name.endswith(".csv") and text.lstrip()[:1] == "{"
    )
    rows = _jsonl_rows(text) if jsonl else _csv_rows(text)
    if not rows:
        raise SeedFileError("the file has no rows")
    return rows


def _jsonl_rows(text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise SeedFileError(f"line {number}: not valid JSON ({exc})") from exc
        if not isinstance(row, dict) or not row:
            raise SeedFileError(f"line {number}: each line must be a non-empty JSON object")
        if len(row) > MAX_COLUMNS:
            raise SeedFileError(f"line {number}: more than {MAX_COLUMNS} fields")
        bad = next((key for key, value in row.items() if not _scalar(value)), None)
        if bad is not None:
            raise SeedFileError(
                f"line {number}: field {bad!r} must be a string, number, boolean or null"
            )
        rows.append(row)
    return rows


def _csv_rows(text: str) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise SeedFileError("line 1: a CSV file starts with a header line of column names")
        header = [cell.strip() for cell in header]
        if len(header) > MAX_COLUMNS:
            raise SeedFileError(f"line 1: more than {MAX_COLUMNS} columns")
        if "" in header or len(set(header)) != len(header):
            raise SeedFileError("line 1: every column needs a name, each used once")
        rows: list[dict[str, Any]] = []
        for cells in reader:
            number = reader.line_num
            if not cells or not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise SeedFileError(f"line {number}: {len(cells)} values for {len(header)} columns")
            rows.append(dict(zip(header, cells, strict=True)))
        return rows
    except csv.Error as exc:
        raise SeedFileError(f"line {reader.line_num}: not valid CSV ({exc})") from exc


def rows_jsonl(rows: list[dict[str, Any]]) -> bytes:
    """The rows as stored in R1FS: one JSON object per line."""
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


# --------------------------------------------------------------------------- use


def _rng(seed: int, *parts: Any) -> random.Random:
    text = ":".join(str(p) for p in (seed, *parts))
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


_PERMUTATIONS: OrderedDict[tuple[int, int, int], list[int]] = OrderedDict()
_PERMUTATIONS_LOCK = threading.Lock()


def _permutation(seed: int, rows: int, round_: int) -> list[int]:
    key = (seed, rows, round_)
    with _PERMUTATIONS_LOCK:
        cached = _PERMUTATIONS.get(key)
        if cached is not None:
            return cached
    order = list(range(rows))
    _rng(seed, "seed-rows", round_).shuffle(order)
    with _PERMUTATIONS_LOCK:
        _PERMUTATIONS[key] = order
        while len(_PERMUTATIONS) > 16:
            _PERMUTATIONS.popitem(last=False)
    return order


def row_for(mode: str, seed: int, index: int, rows: int) -> int:
    """The seed row of record ``index`` (a pure function of the job seed and the index)."""
    if rows < 1:
        raise ValueError("no seed rows")
    if mode == "sampled":
        return _rng(seed, "seed-row", index).randrange(rows)
    if mode == "without_replacement":
        round_, position = divmod(index, rows)
        return _permutation(seed, rows, round_)[position]
    return index % rows


def prompt_lines(row: dict[str, Any]) -> list[str]:
    """The record's seed row, for its prompt (long cells cut)."""
    shown = {
        key: value[:MAX_CELL_CHARS] if isinstance(value, str) else value
        for key, value in row.items()
    }
    return [
        "Base this record on this seed row (keep its facts, fill the schema from it): "
        + orjson.dumps(shown).decode()
    ]


_LOADED: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
_LOADED_LOCK = threading.Lock()


def load_rows(r1fs: R1FS, cid: str, *, secret: str | None = None) -> list[dict[str, Any]]:
    """A job's seed rows from R1FS (kept by CID: a CID's content never changes)."""
    with _LOADED_LOCK:
        if cid in _LOADED:
            return _LOADED[cid]
    data = r1fs.get_file(cid, secret=secret)
    rows = [orjson.loads(line) for line in data.splitlines() if line.strip()]
    with _LOADED_LOCK:
        _LOADED[cid] = rows
        while len(_LOADED) > 8:
            _LOADED.popitem(last=False)
    return rows
