"""The records view: one page of a job's records, filtered and searched, and one record's
detail (its prompt and every attempt).

The records are the uploaded slices, merged by index by the export's rule
(``datagems.job.export.merged_entries``), plus what the peer states show live (records just
finished, records in flight). Pages are cut on the server: a job's slices are read once
per set of result CIDs into a ``Summary`` (index, state flags and, while the job is small
enough, the line itself), kept by ``RecordIndex`` for the next pages, filters and
searches; a page then parses only its own lines. A job whose lines pass
``KEPT_LINE_BYTES`` keeps only the flags (9 bytes a record) and a page reads the slices
again up to its last record; the lines of the jobs kept stay under it together.
"""

from __future__ import annotations

import bisect
import heapq
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from datagems.errors import BadRequest, NotFound
from datagems.inference import prompts
from datagems.job import export
from datagems.job.rows import field_columns, flatten
from datagems.job.state import JobView, result_cids
from datagems.models import JobDetails
from datagems.services import Services

SHOWS = ("all", "ok", "failed", "retried", "in_flight")
OK, RETRIED = 1, 2
KEPT_LINE_BYTES = 64 * 1024 * 1024  # of the lines kept for the next pages, all jobs together
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

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHOWS, 0))

    def add(self, entry: dict[str, Any]) -> None:
        flag = (OK if entry.get("ok") else 0) | (RETRIED if _retried(entry) else 0)
        self.indices.append(entry["i"])  # merged_entries yields them by index
        self.flags.append(flag)
        self.counts["all"] += 1
        self.counts["ok" if flag & OK else "failed"] += 1
        self.counts["retried"] += bool(flag & RETRIED)
        if self.lines is not None:
            line = orjson.dumps(entry)
            self.size += len(line)
            if self.size > KEPT_LINE_BYTES:
                self.lines = None
            else:
                self.lines.append(line)

    def position(self, index: int) -> int:
        """Where record ``index`` is in the summary, -1 when no slice has it."""
        at = bisect.bisect_left(self.indices, index)
        return at if at < len(self.indices) and self.indices[at] == index else -1


def _item(summary: Summary, live: dict[int, _Item], index: int, at: int) -> _Item:
    if at < 0:
        return live[index]
    flag = summary.flags[at]
    return _Item(index, "ok" if flag & OK else "failed", bool(flag & RETRIED), at)


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
            # the lines of every job kept stay under KEPT_LINE_BYTES: the oldest go first
            while len(self._kept) > 1 and self._size() > KEPT_LINE_BYTES:
                self._kept.popitem(last=False)
        return summary

    def _size(self) -> int:
        return sum(kept.size for _, kept in self._kept.values() if kept.lines is not None)


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


def _live(summary: Summary, view: JobView) -> dict[int, _Item]:
    """What the peer states show beyond the slices: records just finished (not uploaded
    yet) and records in flight (over their slice line: a retry round calls them again)."""
    live: dict[int, _Item] = {}
    for peer, state in view.peers.items():
        for record in state.recent:
            if summary.position(record.i) >= 0 or record.i in live:
                continue
            body = {
                "i": record.i,
                "ok": record.ok,
                "data": record.data,
                "reason": record.reason,
                "error": record.message,
                "attempts": record.attempts,
                "peer": peer,
            }
            name = "ok" if record.ok else "failed"
            live[record.i] = _Item(record.i, name, record.attempts > 1, live=body)
        for flying in state.in_flight:
            body = {
                "i": flying.i,
                "attempts": flying.attempt,
                "reason": flying.reason,
                "startedAt": flying.started_at,
                "peer": peer,
            }
            retried = flying.attempt > 1 or flying.state == "retrying"
            live[flying.i] = _Item(flying.i, flying.state, retried, live=body)
    return live


def _shown(item: _Item, show: str) -> bool:
    if show == "all":
        return True
    if show == "retried":
        return item.retried
    if show == "in_flight":
        return item.state not in ("ok", "failed")
    return item.state == show


def _flag_test(show: str) -> Any:
    """Which summary flags ``show`` keeps (the slices hold no record in flight)."""
    if show == "ok":
        return lambda flag: flag & OK
    if show == "failed":
        return lambda flag: not flag & OK
    if show == "retried":
        return lambda flag: flag & RETRIED
    if show == "in_flight":
        return lambda flag: False
    return None


def _chosen(summary: Summary, live: dict[int, _Item], show: str) -> list[tuple[int, int]]:
    """(index, summary position or -1) of every record ``show`` keeps, by index."""
    test = _flag_test(show)
    indices, flags = summary.indices, summary.flags
    if test is None:
        kept = list(zip(indices, range(len(indices)), strict=True))
    else:
        kept = [(indices[at], at) for at, flag in enumerate(flags) if test(flag)]
    if not live:
        return kept
    kept = [(i, at) for i, at in kept if i not in live]  # a live state wins over its line
    extra = sorted((i, -1) for i, item in live.items() if _shown(item, show))
    return list(heapq.merge(kept, extra))


def _counts(summary: Summary, live: dict[int, _Item]) -> dict[str, int]:
    counts = dict(summary.counts)
    for index, item in live.items():
        at = summary.position(index)
        if at >= 0:  # the live state replaces the line's
            flag = summary.flags[at]
            counts["all"] -= 1
            counts["ok" if flag & OK else "failed"] -= 1
            counts["retried"] -= bool(flag & RETRIED)
        for name in SHOWS:
            counts[name] += _shown(item, name)
    return counts


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
    services: Services,
    view: JobView,
    summary: Summary,
    live: dict[int, _Item],
    chosen: list[tuple[int, int]],
    q: str,
) -> list[tuple[int, int]]:
    """The records of ``chosen`` whose line (data, error, reason) holds ``q``, any case."""
    needle = q.lower().encode()
    if summary.lines is not None:
        lines = summary.lines
        return [
            (i, at)
            for i, at in chosen
            if (needle in lines[at].lower() if at >= 0 else _live_holds(live[i], needle))
        ]
    wanted = {at for _, at in chosen if at >= 0}
    holding = set()
    for at, entry in enumerate(export.merged_entries(services, view.job.id, partial=True)):
        if at in wanted and needle in orjson.dumps(entry).lower():
            holding.add(at)
    return [
        (i, at) for i, at in chosen if (at in holding if at >= 0 else _live_holds(live[i], needle))
    ]


def _live_holds(item: _Item, needle: bytes) -> bool:
    return needle in orjson.dumps(item.live).lower()


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
    live = _live(summary, view)
    counts = _counts(summary, live)
    if show == "all" and not q and not live:  # the common page: no list of every record
        matched = len(summary.indices)
        chosen = [(summary.indices[at], at) for at in range(offset, min(matched, offset + limit))]
    else:
        shown = _chosen(summary, live, show)
        if q:
            shown = _matches(services, view, summary, live, shown, q)
        matched, chosen = len(shown), shown[offset : offset + limit]
    entries = _entries_at(services, view, summary, [at for _, at in chosen if at >= 0])
    peer_of = _peer_of(view)
    rows = [_row(_item(summary, live, i, at), entries.get(at), peer_of) for i, at in chosen]
    columns = field_columns(details.json_schema, nested=True) if details else []
    seen = dict.fromkeys(columns)
    for row in rows:
        for key in row.get("cells", {}):
            seen.setdefault(key, None)
    return {
        "total": view.job.total_records,
        "matched": matched,
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
    live = _live(summary, view)
    at = summary.position(index)
    item = live.get(index) or (_item(summary, live, index, at) if at >= 0 else None)
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
