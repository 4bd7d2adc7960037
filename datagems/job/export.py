"""Export: merge the peers' result slices by index and stream JSON, JSONL or CSV.

Slices are read from R1FS as streams and merged with ``heapq.merge`` (each slice is sorted
by index when it is uploaded), so memory stays flat in N. One result per index is kept, by
the original app's rule, so both apps export the same file for the same job: **of the
lines of one index, the last ok line wins; a failed line counts only where the index has
no ok line (then the last one, for its reason); no line: missing**. "Last" is the order of
the lines in a slice (the original's slices can hold two lines for one index: it once ran
two worker loops on one slice), and, across slices, the order of ``jobs.result_cids``:
takers' slices first, each peer's own slice last, as the original reads only those. A
record produced twice (a takeover, a crash) is thus harmless.

- JSON: an array by global index, ``null`` for failed or missing records (as the original);
- JSONL: one line per ok record's data;
- CSV: the union of the records' keys as header, the schema's fields first in schema
  order, then the others (first seen first); with no ok record, the schema's fields;
  nested values as JSON
  text, RFC 4180 quoting, and text cells starting with ``= + - @``, tab or CR prefixed with
  ``'`` against spreadsheet formula injection.
"""

from __future__ import annotations

import csv
import heapq
import io
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import orjson

from datagems.errors import BadRequest, Conflict, DatagemsError, NotFound
from datagems.job.lifecycle import load_job
from datagems.job.state import JobView, result_cids
from datagems.models import TERMINAL_STATUSES
from datagems.schema.check import field_order
from datagems.services import Services

logger = logging.getLogger(__name__)

FORMATS = ("json", "jsonl", "csv")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK_RECORDS = 256


def _slice_entries(chunks: Iterator[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    tail = b""
    for chunk in chunks:
        tail += chunk
        *lines, tail = tail.split(b"\n")
        for line in lines:
            if line.strip():
                entry = orjson.loads(line)
                yield entry["i"], entry
    if tail.strip():
        entry = orjson.loads(tail)
        yield entry["i"], entry


def merged_entries(services: Services, job_id: str, *, partial: bool = False) -> Iterator[dict]:
    """Every record of the job's uploaded slices, by index, one per index."""
    view = load_job(services, job_id)
    if view is None:
        raise NotFound("job not found")
    if view.job.status not in TERMINAL_STATUSES and not partial:
        raise Conflict("the job is still running; ask for partial=true to get what is done")
    cids = result_cids(view.peers)
    with ExitStack() as stack:
        streams = [
            _slice_entries(
                stack.enter_context(services.r1fs.open_file(cid, secret=services.r1fs_secret))
            )
            for cid in cids
        ]
        previous: dict[str, Any] | None = None
        for _, entry in heapq.merge(*streams, key=lambda pair: pair[0]):
            if previous is not None and previous["i"] == entry["i"]:
                if entry.get("ok") or not previous.get("ok"):  # the last ok line wins
                    previous = entry
                continue
            if previous is not None:
                yield previous
            previous = entry
        if previous is not None:
            yield previous


def export_chunks(
    services: Services, job_id: str, fmt: str, *, partial: bool = False
) -> Iterator[bytes]:
    if fmt not in FORMATS:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}")
    view = load_job(services, job_id)
    if view is None:
        raise NotFound("job not found")
    total = view.job.total_records
    if fmt == "json":
        return _json(merged_entries(services, job_id, partial=partial), total)
    if fmt == "jsonl":
        return _jsonl(merged_entries(services, job_id, partial=partial))
    header = _csv_header(merged_entries(services, job_id, partial=partial), _fields(services, view))
    return _csv(merged_entries(services, job_id, partial=partial), header)


def _json(entries: Iterator[dict], total: int) -> Iterator[bytes]:
    buffer = bytearray(b"[")
    next_index = 0

    def item(value: bytes) -> None:
        nonlocal next_index
        if next_index:
            buffer.extend(b",")
        buffer.extend(value)
        next_index += 1

    for entry in entries:
        while next_index < entry["i"]:
            item(b"null")
        if entry["i"] < next_index:
            continue
        item(orjson.dumps(entry["data"]) if entry.get("ok") else b"null")
        if len(buffer) > 65536:
            yield bytes(buffer)
            buffer.clear()
    while next_index < total:
        item(b"null")
    buffer.extend(b"]")
    yield bytes(buffer)


def _jsonl(entries: Iterator[dict]) -> Iterator[bytes]:
    buffer = bytearray()
    for entry in entries:
        if entry.get("ok"):
            buffer.extend(orjson.dumps(entry["data"]))
            buffer.extend(b"\n")
        if len(buffer) > 65536:
            yield bytes(buffer)
            buffer.clear()
    yield bytes(buffer)


def _fields(services: Services, view: JobView) -> tuple[str, ...]:
    """The schema's field order; none when the details cannot be read (keys as seen)."""
    if not view.job.job_details_cid:
        return ()
    try:
        details = services.details.get(view.job.job_details_cid)
    except (DatagemsError, ValueError) as exc:  # ValueError: pydantic, a malformed file
        logger.warning("job %s: details unreadable, CSV columns as seen: %s", view.job.id, exc)
        return ()
    return field_order(details.json_schema)


def _csv_header(entries: Iterator[dict], fields: tuple[str, ...] = ()) -> list[str]:
    """The keys the records have: the schema's fields first, in schema order, then the
    others as first seen. A schema field no record has gets no column."""
    seen: dict[str, None] = {}
    for entry in entries:
        data = entry.get("data") if entry.get("ok") else None
        if isinstance(data, dict):
            for key in data:
                seen.setdefault(str(key), None)
        elif data is not None:
            seen.setdefault("value", None)
    if not seen:  # no ok record: the header still names the schema's fields
        return list(fields)
    first = [name for name in fields if name in seen]
    known = set(first)
    return first + [name for name in seen if name not in known]


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_START) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return orjson.dumps(value).decode()
    text = orjson.dumps(value).decode()
    return "'" + text if text.startswith(FORMULA_START) else text


def _csv(entries: Iterator[dict], header: list[str]) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:  # no header at all (no record, no schema fields): an empty file
        writer.writerow([csv_cell(name) for name in header])
    for count, entry in enumerate(entries, 1):
        if not entry.get("ok"):
            continue
        data = entry["data"] if isinstance(entry.get("data"), dict) else {"value": entry["data"]}
        writer.writerow([csv_cell(data.get(name)) for name in header])
        if count % CHUNK_RECORDS == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()
