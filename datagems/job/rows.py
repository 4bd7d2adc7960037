"""The export's row set: one rule for every format (JSON, JSONL, CSV, Parquet).

A job's rows are its indices in order. **By default every index is a row** (``failed``
include): an ok record is its data; a failed one, or one with no result line (a
cancelled or partial job), is an empty row: ``null`` in JSON and JSONL, empty cells in
CSV, nulls in Parquet. That is the original app's rule for both of its formats (its JSON
has a ``null`` per failed index, its CSV an empty line: the capture's job D), so the
original's route ``?format=json|csv`` answers as it did, and row *n* of every file is
record *n*. ``failed=exclude`` keeps the ok records only, in every format.

Options (``ExportOptions``): the columns ``_index`` (the 0-based global index; the records
view shows it as record ``_index + 1``), ``_status`` (``ok``, ``failed``, ``missing``) and
``_error``, first in every row; with any of them a failed row is an object of those
columns (never ``null``). ``flatten``: nested objects become columns ``a.b`` (CSV and
Parquet; JSON and JSONL keep their nesting), else one column of JSON text. ``vars``: each
ok record gains its variables' values and seed row (``datagems.quality.columns``: nested
``_vars`` in JSON and JSONL, a column ``_vars.<name>`` per variable in CSV and Parquet).

Memory stays flat in N: the slices are merged as streams (``datagems.job.export``); CSV and
Parquet read them twice (the header, then the rows); Parquet is written in row groups of
``PARQUET_ROWS`` and streamed as they close.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from datagems.errors import BadRequest, DatagemsError
from datagems.job import export
from datagems.models import JobBase
from datagems.quality.columns import with_var_columns
from datagems.services import Services

logger = logging.getLogger(__name__)

FORMATS = ("json", "jsonl", "csv", "parquet")
META = ("index", "status", "error")  # the optional columns, as asked for in ``meta=``
CONTENT_TYPES = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
FLUSH_BYTES = 65536
PARQUET_ROWS = 4096
ERROR_CHARS = 500


@dataclass(frozen=True)
class ExportOptions:
    """What the user chose; the defaults give the original app's files."""

    fmt: str = "json"
    meta: tuple[str, ...] = ()  # of ``META``, in that order
    include_failed: bool = True
    flatten: bool = False
    partial: bool = False
    vars: bool = False  # the per-record variables' columns (datagems.quality)

    @property
    def columns(self) -> list[str]:
        return ["_" + name for name in META if name in self.meta]


def parse_options(query: Any) -> ExportOptions:
    """The options of an export request's query (``format``, ``meta``, ``failed``,
    ``flatten``, ``partial``, ``vars``); ``BadRequest`` naming the one that is wrong."""
    fmt = str(query.get("format", "json")).lower()
    if fmt not in FORMATS:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}")
    asked = [p.strip().lower().lstrip("_") for p in str(query.get("meta", "")).split(",")]
    asked = [p for p in asked if p]
    unknown = [p for p in asked if p not in META]
    if unknown:
        raise BadRequest(f"meta must be a comma list of {', '.join(META)}")
    failed = str(query.get("failed", "include")).lower()
    if failed not in ("include", "exclude"):
        raise BadRequest("failed must be include or exclude")
    return ExportOptions(
        fmt=fmt,
        meta=tuple(name for name in META if name in asked),
        include_failed=failed == "include",
        flatten=_flag(query.get("flatten")),
        partial=_flag(query.get("partial")),
        vars=_flag(query.get("vars")),
    )


def _flag(value: Any) -> bool:
    return str(value or "").lower() in ("1", "true", "yes", "on")


def file_name(job: JobBase, fmt: str) -> str:
    """``<title>-<id short>.<fmt>``: the title made safe (letters, digits, ``-_.``; at most
    60), then the id's last 6 characters, so two jobs of one title differ."""
    title = re.sub(r"[^A-Za-z0-9._-]+", "-", job.title or "").strip("-._")[:60].strip("-._")
    short = re.sub(r"[^A-Za-z0-9]", "", job.id)[-6:] or "job"
    return f"{title or 'dataset'}-{short}.{fmt}"


# ------------------------------------------------------------------------- flattening


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """A record's nested objects as ``a.b`` keys (arrays and empty objects stay values)."""
    if not isinstance(data, dict):
        return {prefix or "value": data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def field_columns(schema: Any, *, nested: bool, prefix: str = "") -> list[str]:
    """The schema's fields in its order; with ``nested``, an object's fields as ``a.b``."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return []
    columns: list[str] = []
    for key, sub in props.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        inner = field_columns(sub, nested=True, prefix=name) if nested else []
        columns.extend(inner or [name])
    return columns


def _cells(data: Any, flat: bool) -> dict[str, Any]:
    if flat:
        return flatten(data)
    return data if isinstance(data, dict) else {"value": data}


# ------------------------------------------------------------------------- the rows


@dataclass(slots=True)
class Row:
    index: int
    status: str  # ok | failed | missing
    data: Any = None
    error: str | None = None


def rows(entries: Iterator[dict[str, Any]], total: int, include_failed: bool) -> Iterator[Row]:
    """The rows of merged slice entries (one per index, by index): every index below
    ``total`` (and any past it) when failed rows are included, else the ok ones."""
    next_index = 0
    for entry in entries:
        index = entry["i"]
        if index < next_index:
            continue
        if include_failed:
            for missing in range(next_index, index):
                yield Row(missing, "missing", error="no result")
        next_index = index + 1
        if entry.get("ok"):
            yield Row(index, "ok", entry.get("data"))
        elif include_failed:
            error = str(entry.get("error") or entry.get("reason") or "failed")[:ERROR_CHARS]
            yield Row(index, "failed", error=error)
    if include_failed:
        for missing in range(next_index, total):
            yield Row(missing, "missing", error="no result")


def _meta(row: Row, options: ExportOptions) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if "index" in options.meta:
        meta["_index"] = row.index
    if "status" in options.meta:
        meta["_status"] = row.status
    if "error" in options.meta:
        meta["_error"] = row.error
    return meta


def _object(row: Row, options: ExportOptions) -> Any:
    """A row as JSON: the data (``null`` when failed), or the meta columns then the data."""
    if not options.meta:
        return row.data if row.status == "ok" else None
    data = row.data if isinstance(row.data, dict) or row.status != "ok" else {"value": row.data}
    meta = _meta(row, options)  # first, and it wins over a field of the same name (as in CSV)
    return {**meta, **{key: value for key, value in (data or {}).items() if key not in meta}}


# ------------------------------------------------------------------------- the formats


class RowSource:
    """The rows of one job, as many times as a format needs to read them."""

    def __init__(self, services: Services, job: JobBase, options: ExportOptions) -> None:
        self.services, self.job, self.options = services, job, options

    def __call__(self) -> Iterator[Row]:
        entries = export.merged_entries(self.services, self.job.id, partial=self.options.partial)
        if self.options.vars:
            entries = with_var_columns(entries, flat=self.options.fmt in ("csv", "parquet"))
        return rows(entries, self.job.total_records, self.options.include_failed)

    def schema(self) -> dict[str, Any] | None:
        if not self.job.job_details_cid:
            return None
        try:
            return self.services.details.get(self.job.job_details_cid).json_schema
        except (DatagemsError, ValueError) as exc:  # ValueError: pydantic, a malformed file
            logger.warning("job %s: details unreadable, columns as seen: %s", self.job.id, exc)
            return None


def export_chunks(services: Services, job: JobBase, options: ExportOptions) -> Iterator[bytes]:
    """The file of ``options.fmt``, in chunks. The first read (is the job there, is it
    finished) happens here, so its errors come before any byte."""
    source = RowSource(services, job, options)
    first = source()  # raises NotFound / Conflict now, not mid-file
    if options.fmt == "json":
        return _json(first, options)
    if options.fmt == "jsonl":
        return _jsonl(first, options)
    header = _header(first, source.schema(), options)
    if options.fmt == "csv":
        return _csv(source(), header, options)
    from datagems.job.parquet import parquet_chunks  # pyarrow: imported when asked for

    return parquet_chunks(source(), header, options)


def _json(found: Iterator[Row], options: ExportOptions) -> Iterator[bytes]:
    buffer = bytearray(b"[")
    for count, row in enumerate(found):
        if count:
            buffer.extend(b",")
        buffer.extend(orjson.dumps(_object(row, options)))
        if len(buffer) > FLUSH_BYTES:
            yield bytes(buffer)
            buffer.clear()
    buffer.extend(b"]")
    yield bytes(buffer)


def _jsonl(found: Iterator[Row], options: ExportOptions) -> Iterator[bytes]:
    buffer = bytearray()
    for row in found:
        buffer.extend(orjson.dumps(_object(row, options)))
        buffer.extend(b"\n")
        if len(buffer) > FLUSH_BYTES:
            yield bytes(buffer)
            buffer.clear()
    yield bytes(buffer)


@dataclass
class Header:
    """The columns of a CSV or Parquet file and, for Parquet, the kinds of values seen."""

    columns: list[str]
    kinds: dict[str, set[str]]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "text"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "text"  # an array or object: JSON text


def _header(found: Iterator[Row], schema: dict[str, Any] | None, options: ExportOptions) -> Header:
    """The meta columns, then the data columns the rows have: the schema's fields first in
    its order, then the others as first seen; with no ok row, the schema's fields."""
    seen: dict[str, set[str]] = {}
    for row in found:
        if row.status != "ok":
            continue
        for key, value in _cells(row.data, options.flatten).items():
            seen.setdefault(str(key), set()).add(_kind(value))
    fields = field_columns(schema, nested=options.flatten) if schema else []
    if seen:
        first = [name for name in fields if name in seen]
        known = set(first)
        data_columns = first + [name for name in seen if name not in known]
    else:
        data_columns = fields
    kinds = {name: seen.get(name, set()) for name in data_columns}
    meta = options.columns
    kinds.update({"_index": {"int"}, "_status": {"str"}, "_error": {"str"}})
    return Header(meta + [c for c in data_columns if c not in meta], kinds)


def row_cells(row: Row, header: Header, options: ExportOptions) -> list[Any]:
    """A row's values in the header's order (``None`` where it has none)."""
    values = {**_meta(row, options)}
    if row.status == "ok":
        for key, value in _cells(row.data, options.flatten).items():
            values.setdefault(key, value)
    return [values.get(name) for name in header.columns]


def _csv(found: Iterator[Row], header: Header, options: ExportOptions) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header.columns:  # no column at all (no record, no schema): an empty file
        writer.writerow([export.csv_cell(name) for name in header.columns])
    cell: Callable[[Any], str] = export.csv_cell
    for count, row in enumerate(found, 1):
        writer.writerow([cell(value) for value in row_cells(row, header, options)])
        if count % export.CHUNK_RECORDS == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()
