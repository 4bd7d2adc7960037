"""Pages of a job list: newest first, a cursor, a page size, filters; never every job.

A listing has a *source*: one user's jobs, read from their own job hash
(``datagen:user:{owner}:jobs``, the summaries both apps write), or everyone's (admins),
read from ``datagen:jobs``. Either is read as a stream (``CStore.hscan_raw``) keeping only
what a page needs: the newest ``HEAD_ROWS`` rows that pass the filters (the *head*, which a
read cache keeps and patches with the closes of ``datagen:closed-jobs``), or the rows of a
page further down (``page_below``). Jobs that can still need work come from the
open-jobs index instead (``datagems.job.index``) and are merged in by whoever builds the
page, so a running job shows live and a new one at once.

Order: ``createdAt`` then job id, both descending (a job with no ``createdAt`` last). A
cursor is the key of the last row of the previous page, opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from datagems.errors import BadRequest
from datagems.models import TERMINAL_STATUSES, ClosedJob, OpenJob
from datagems.services import Services
from datagems.store import keys
from datagems.store.base import decode_value

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
HEAD_ROWS = 500  # rows a head keeps: ten default pages
MAX_TEXT = 200  # the longest title filter
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
SORTS = ("newest", "oldest", "title")  # newest: the heads' order; the others: ``sorted_page``

Key = tuple[str, str]  # (createdAt or "", job id)


@dataclass(frozen=True)
class Row:
    """One job as a listing sorts and filters it, before its base is read."""

    key: Key
    owner: str
    title: str
    status: str

    @property
    def id(self) -> str:
        return self.key[1]


@dataclass(frozen=True)
class Query:
    """One page asked for: whose jobs (``None``: everyone's), which statuses (empty: all),
    which title text (lower-cased; empty: any), how many, below which key."""

    owner: str | None = None
    statuses: frozenset[str] = frozenset()
    text: str = ""
    limit: int = PAGE_SIZE
    cursor: Key | None = None
    sort: str = "newest"

    @property
    def filters(self) -> tuple[str | None, frozenset[str], str]:
        """What a head depends on (not the page size nor the cursor)."""
        return (self.owner, self.statuses, self.text)

    def admits(self, row: Row) -> bool:
        if self.owner is not None and row.owner != self.owner:
            return False
        if self.statuses and row.status not in self.statuses:
            return False
        return not self.text or self.text in row.title.lower()

    def below(self, key: Key) -> bool:
        return self.cursor is None or key < self.cursor


def encode_cursor(key: Key) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(text: str) -> Key:
    """A cursor from ``encode_cursor``; ``BadRequest`` for anything else."""
    try:
        value = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadRequest("cursor is not one this server gave") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(part, str) and len(part) <= 300 for part in value)
    ):
        raise BadRequest("cursor is not one this server gave")
    return (value[0], value[1])


def parse_query(
    params: Any, *, username: str, is_admin: bool, default_limit: int = PAGE_SIZE
) -> Query:
    """``GET /api/tasks``'s query: ``limit``, ``cursor``, ``status`` (comma list), ``q``
    (title text), and for admins ``all=true`` (everyone's) or ``owner``. ``BadRequest``."""
    raw_limit = params.get("limit")
    limit = default_limit
    if raw_limit not in (None, ""):
        try:
            limit = int(raw_limit)
        except ValueError:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}") from None
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    statuses = frozenset(s.strip() for s in (params.get("status") or "").split(",") if s.strip())
    unknown = statuses - set(STATUSES)
    if unknown:
        raise BadRequest(f"status must be among {', '.join(STATUSES)}")
    text = (params.get("q") or "").strip().lower()
    if len(text) > MAX_TEXT:
        raise BadRequest(f"q is at most {MAX_TEXT} characters")
    owner: str | None = username
    if is_admin:
        if params.get("owner"):
            owner = str(params["owner"]).strip()
        elif str(params.get("all", "")).lower() in ("1", "true"):
            owner = None
    cursor = decode_cursor(params["cursor"]) if params.get("cursor") else None
    sort = (params.get("sort") or "newest").strip().lower()
    if sort not in SORTS:
        raise BadRequest(f"sort must be one of {', '.join(SORTS)}")
    return Query(owner=owner, statuses=statuses, text=text, limit=limit, cursor=cursor, sort=sort)


# --------------------------------------------------------------------------- sources


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def row_of(job_id: str, value: Any, owner: str | None = None) -> Row:
    """A stored job base or summary (parsed JSON) as a row. A summary carries no owner: the
    hash it came from tells. A value that is not a JSON object still makes a row (its base
    is listed as unreadable), placed last."""
    if not isinstance(value, dict):
        return Row(key=("", job_id), owner=owner or "", title="", status="unreadable")
    status = _text(value.get("status")) or "queued"
    return Row(
        key=(_text(value.get("createdAt")), job_id),
        owner=owner if owner is not None else _text(value.get("owner")),
        title=_text(value.get("title")),
        status=status,
    )


def source_rows(services: Services, owner: str | None) -> Iterator[Row]:
    """Every row of a source, streamed: ``owner``'s job hash, or every job for ``None``."""
    hkey = keys.JOBS if owner is None else keys.user_jobs(owner)
    for job_id, stored in services.cstore.hscan_raw(hkey):
        yield row_of(job_id, decode_value(stored), owner)


def open_row(job_id: str, entry: OpenJob) -> Row:
    return Row(
        key=(entry.created_at or "", job_id), owner=entry.owner, title=entry.title, status=""
    )


def closed_row(job_id: str, entry: ClosedJob) -> Row:
    return Row(
        key=(entry.created_at or "", job_id),
        owner=entry.owner,
        title=entry.title,
        status=entry.status,
    )


@dataclass
class Head:
    """The newest ``HEAD_ROWS`` rows of a source that pass a query's filters, newest
    first. ``complete``: the source holds no other such row (as of the read)."""

    filters: tuple[str | None, frozenset[str], str]
    rows: list[Row]
    complete: bool
    built_mark: Any = None  # what foreign writers had done when it was read (``web.cache``)
    applied: dict[str, str | None] = field(default_factory=dict)  # closes patched in

    def add(self, row: Row) -> None:
        """A row closed since the build (or changed): placed by its key, the head kept to
        its size. A row older than the head's last, when the head is not complete, belongs
        to a page further down and is not kept."""
        self.rows = [r for r in self.rows if r.id != row.id]
        if not self.complete and self.rows and row.key < self.rows[-1].key:
            return
        index = next((n for n, r in enumerate(self.rows) if r.key < row.key), len(self.rows))
        self.rows.insert(index, row)
        if len(self.rows) > HEAD_ROWS:
            del self.rows[HEAD_ROWS:]
            self.complete = False


def newest(rows: Iterable[Row], query: Query, count: int) -> tuple[list[Row], bool]:
    """The ``count`` newest rows that pass ``query`` (filters and cursor), and whether
    there were more; memory bounded by ``count`` whatever the number of rows."""
    kept = heapq.nlargest(
        count + 1, (r for r in rows if query.admits(r) and query.below(r.key)), key=_key
    )
    return kept[:count], len(kept) > count


def _key(row: Row) -> Key:
    return row.key


def build_head(services: Services, query: Query, mark: Any) -> Head:
    """A head for ``query``'s filters (one streamed read of its source)."""
    unbounded = Query(owner=query.owner, statuses=query.statuses, text=query.text)
    rows, more = newest(source_rows(services, query.owner), unbounded, HEAD_ROWS)
    return Head(filters=query.filters, rows=rows, complete=not more, built_mark=mark)


def page_below(services: Services, query: Query, count: int) -> tuple[list[Row], bool]:
    """The ``count`` newest rows below ``query``'s cursor (one streamed read of the source):
    a page further down than any head reaches."""
    return newest(source_rows(services, query.owner), query, count)


def is_final(status: str) -> bool:
    return status in TERMINAL_STATUSES


# --------------------------------------------------------------------------- other orders


def sort_key(row: Row, sort: str) -> Key:
    """A row's place in ``sort`` (ascending): oldest first by ``createdAt`` then id, or by
    title (any case) then id."""
    return (row.title.lower(), row.id) if sort == "title" else row.key


def sorted_page(
    services: Services, query: Query, live: list[Row], live_ids: set[str], count: int
) -> tuple[list[Row], bool]:
    """The first ``count`` rows in ``query.sort`` order after its cursor: the source's rows
    (one streamed read, those of ``live_ids`` left out) and the ``live`` ones (the open
    jobs, as the cache has them); memory bounded by ``count``. Whether there were more."""
    source = (r for r in source_rows(services, query.owner) if r.id not in live_ids)

    def wanted(rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            key = sort_key(row, query.sort)
            if query.admits(row) and (query.cursor is None or key > query.cursor):
                yield row

    kept = heapq.nsmallest(
        count + 1,
        wanted(itertools.chain(source, live)),
        key=lambda r: sort_key(r, query.sort),
    )
    return kept[:count], len(kept) > count
