"""The records view: one page of a job's records, filtered and searched, and one record's
detail (its prompt and every attempt).

The records are the uploaded slices, merged by index by the export's rule
(``datagems.export.merged_entries``), plus what the peer states show live (records just
finished, records in flight). Pages are cut on the server: a job's slices are read once
per set of result CIDs into a ``Summary`` (index, state flags and, while the job is small
enough, the line itself), kept by ``RecordIndex`` for the next pages, filters and
searches; a page then parses only its own lines. A job whose lines pass
``KEPT_LINE_BYTES`` keeps only the flags (5 bytes a record) and a page reads the slices
again up to its last record.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from datagems import export
from datagems.errors import BadRequest, NotFound
from datagems.inference import prompts
from datagems.job.rows import field_columns, flatten
from datagems.jobs import JobView, result_cids
from datagems.models import JobDetails
from datagems.services import Services

SHOWS = ("all", "ok", "failed", "retried", "in_flight")
OK, RETRIED = 1, 2
KEPT_LINE_BYTES = 64 * 1024 * 1024  # of one job's lines kept for its next pages
JOBS_KEPT = 4
QUERY_CHARS = 200


def _retried(entry: dict[str, Any]) -> bool:
    return (
        int(entry.get("attempts") or 1) > 1
        or bool(entry.get("history"))
        or int(entry.get("round") or 0) > 0
    )


@dataclass
class Summary:
    """The merged slices of one job at one set of result CIDs."""

    indices: array = field(default_factory=lambda: array("q"))
    flags: bytearray = field(default_factory=bytearray)
    lines: list[bytes] | None = field(default_factory=list)  # None: too big to keep
    size: int = 0

    def add(self, entry: dict[str, Any]) -> None:
        self.indices.append(entry["i"])
        self.flags.append((OK if entry.get("ok") else 0) | (RETRIED if _retried(entry) else 0))
        if self.lines is not None:
            line = orjson.dumps(entry)
            self.size += len(line)
            if self.size > KEPT_LINE_BYTES:
                self.lines = None
            else:
                self.lines.append(line)


class RecordIndex:
    """The summaries of the last ``JOBS_KEPT`` jobs viewed, by (job, result CIDs)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, tuple[tuple[str, ...], Summary]] = OrderedDict()
        self._lock = threading.Lock()

    def summary(self, services: Services, view: JobView) -> Summary:
        cids = tuple(result_cids(view.peers))
        with self._lock:
            kept = self._kept.get(view.job.id)
            if kept is not None and kept[0] == cids:
                self._kept.move_to_end(view.job.id)
                return kept[1]
        summary = Summary()
        if cids:
            for entry in export.merged_entries(services, view.job.id, partial=True):
                summary.add(entry)
        with self._lock:
            self._kept[view.job.id] = (cids, summary)
            self._kept.move_to_end(view.job.id)
            while len(self._kept) > JOBS_KEPT:
                self._kept.popitem(last=False)
        return summary


@dataclass
class _Item:
    i: int
    state: str  # ok | failed | calling | retrying
    retried: bool
    at: int = -1  # the summary's position of its line, -1: a live record
    live: dict[str, Any] | None = None


def _peer_of(view: JobView) -> Any:
    ranges = [
        (r.start, r.end, peer)
        for peer, state in view.peers.items()
        for r in (state.ranges or [state.range])
    ]
    return lambda index: next((p for start, end, p in ranges if start <= index < end), None)


def _items(summary: Summary, view: JobView) -> list[_Item]:
    """Every known record by index: the slices', then the live ones (in flight wins)."""
    known: dict[int, _Item] = {}
    for at, (index, flag) in enumerate(zip(summary.indices, summary.flags, strict=True)):
        known[index] = _Item(index, "ok" if flag & OK else "failed", bool(flag & RETRIED), at)
    for peer, state in view.peers.items():
        for record in state.recent:
            if record.i not in known:
                live = {
                    "i": record.i,
                    "ok": record.ok,
                    "data": record.data,
                    "reason": record.reason,
                    "error": record.message,
                    "attempts": record.attempts,
                    "peer": peer,
                }
                state_name = "ok" if record.ok else "failed"
                known[record.i] = _Item(record.i, state_name, record.attempts > 1, live=live)
        for flying in state.in_flight:
            live = {
                "i": flying.i,
                "attempts": flying.attempt,
                "reason": flying.reason,
                "startedAt": flying.started_at,
                "peer": peer,
            }
            retried = flying.attempt > 1 or flying.state == "retrying"
            known[flying.i] = _Item(flying.i, flying.state, retried, live=live)
    return [known[i] for i in sorted(known)]


def _shown(item: _Item, show: str) -> bool:
    if show == "all":
        return True
    if show == "retried":
        return item.retried
    if show == "in_flight":
        return item.state not in ("ok", "failed")
    return item.state == show


def _entries_at(
    services: Services, view: JobView, summary: Summary, wanted: list[int]
) -> dict[int, dict[str, Any]]:
    """The slice entries at summary positions ``wanted``."""
    if not wanted:
        return {}
    if summary.lines is not None:
        return {at: orjson.loads(summary.lines[at]) for at in wanted}
    found: dict[int, dict[str, Any]] = {}
    positions = set(wanted)
    last = max(wanted)
    for at, entry in enumerate(export.merged_entries(services, view.job.id, partial=True)):
        if at in positions:
            found[at] = entry
        if at >= last:
            break
    return found


def _matches(
    services: Services, view: JobView, summary: Summary, items: list[_Item], q: str
) -> list[_Item]:
    """The items whose record (data, error, reason) holds ``q``, case-insensitive."""
    needle = q.lower()
    if summary.lines is not None:
        lines = summary.lines
        texts = {
            it.at: lines[it.at].decode("utf-8", "replace").lower() for it in items if it.at >= 0
        }
    else:
        wanted = {it.at for it in items if it.at >= 0}
        texts = {}
        for at, entry in enumerate(export.merged_entries(services, view.job.id, partial=True)):
            if at in wanted:
                texts[at] = orjson.dumps(entry).decode("utf-8", "replace").lower()
    kept = []
    for item in items:
        text = texts.get(item.at, "") if item.at >= 0 else orjson.dumps(item.live).decode().lower()
        if needle in text:
            kept.append(item)
    return kept


def _row(item: _Item, entry: dict[str, Any] | None, peer_of: Any) -> dict[str, Any]:
    source = entry if entry is not None else (item.live or {})
    data = source.get("data")
    row: dict[str, Any] = {
        "i": item.i,
        "n": item.i + 1,
        "state": item.state,
        "attempts": int(source.get("attempts") or 1),
        "retried": item.retried,
        "reason": source.get("reason"),
        "error": source.get("error"),
        "peer": source.get("peer") or peer_of(item.i),
        "startedAt": source.get("startedAt"),
    }
    if item.state == "ok" and data is not None:
        row["cells"] = flatten(data)
    return {key: value for key, value in row.items() if value is not None}


def page(
    services: Services,
    records: RecordIndex,
    view: JobView,
    details: JobDetails | None,
    *,
    offset: int,
    limit: int,
    show: str = "all",
    q: str = "",
) -> dict[str, Any]:
    """One page of ``show`` records holding ``q``, with the counts of every filter and the
    grid's columns (the schema's fields, nested ones as ``a.b``, then others seen)."""
    if show not in SHOWS:
        raise BadRequest(f"show must be one of {', '.join(SHOWS)}")
    q = q.strip()[:QUERY_CHARS]
    summary = records.summary(services, view)
    items = _items(summary, view)
    counts = {name: sum(1 for it in items if _shown(it, name)) for name in SHOWS}
    shown = [it for it in items if _shown(it, show)]
    if q:
        shown = _matches(services, view, summary, shown, q)
    chosen = shown[offset : offset + limit]
    entries = _entries_at(services, view, summary, [it.at for it in chosen if it.at >= 0])
    peer_of = _peer_of(view)
    rows = [_row(it, entries.get(it.at), peer_of) for it in chosen]
    columns = field_columns(details.json_schema, nested=True) if details else []
    seen = dict.fromkeys(columns)
    for row in rows:
        for key in row.get("cells", {}):
            seen.setdefault(key, None)
    return {
        "total": view.job.total_records,
        "matched": len(shown),
        "offset": offset,
        "limit": limit,
        "show": show,
        "q": q,
        "counts": counts,
        "columns": list(seen),
        "rows": rows,
    }


def detail(
    services: Services,
    records: RecordIndex,
    view: JobView,
    details: JobDetails | None,
    index: int,
) -> dict[str, Any]:
    """Record ``index``: its state, data or error, every attempt kept (action, seed, reason,
    error, raw answer when rejected, latency, tokens), earlier rounds, and its prompt as
    rebuilt from the job's details."""
    summary = records.summary(services, view)
    item = next((it for it in _items(summary, view) if it.i == index), None)
    if item is None:
        if 0 <= index < view.job.total_records:
            return {"i": index, "n": index + 1, "state": "waiting", "attempts": 0, "tries": []}
        raise NotFound("no such record")
    entry = _entries_at(services, view, summary, [item.at]).get(item.at) if item.at >= 0 else None
    source = entry if entry is not None else (item.live or {})
    body = _row(item, entry, _peer_of(view))
    body.pop("cells", None)
    body["data"] = source.get("data") if item.state == "ok" else None
    body["round"] = int(source.get("round") or 0)
    body["tries"] = list(source.get("tries") or [])
    body["history"] = list(source.get("history") or [])
    body["fromSlice"] = entry is not None
    if details is not None:
        messages = prompts.record_messages(
            details=details, index=index, total=view.job.total_records, round_=body["round"]
        )
        body["prompt"] = messages
    return body
