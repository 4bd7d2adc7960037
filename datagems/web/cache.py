"""The web layer's read cache: what the job routes, the live events and the session check
read from the store, kept for a fraction of a second and shared by every request.

Why: while a job runs, the replica's engine keeps its threads busy, and each store
round-trip and each ``asyncio.to_thread`` hop of a handler waits for the GIL behind them.
Reading the store once per ``READ_TTL_SECONDS`` for every request, instead of several
times per request, keeps ``GET /api/tasks`` and ``GET /api/tasks/{id}`` fast; a request
answered from here makes no store call and no thread hop at all. Nothing here grows with
history: the jobs are read through the open-jobs index and a bounded head per listing.

What is kept:

- the open jobs (``datagems.job.index``): the index, each open job's stored base and
  view (peer states, cancel request, commands, derived totals), built again only when one
  of those texts changed; the recent closes (``datagen:closed-jobs``) and the original's
  mark. Fresh for ``READ_TTL_SECONDS``.
- per listing (owner and filters), a head (``datagems.job.listing.Head``): the newest
  ``listing.HEAD_ROWS`` rows of its source, patched with every close seen since it was
  read, read again in the background after ``HEAD_REFRESH_SECONDS`` or when the original
  wrote jobs, and before answering after ``HEAD_MAX_AGE_SECONDS`` (closes are kept longer
  than that, so no close is missed). At most ``HEADS_KEPT`` heads.
- the listed bases of finished jobs (``WIRES_KEPT``), each read again at most every
  ``LIST_WIRE_TTL_SECONDS`` (in the background: the page answers at once), and pages far
  down a listing (``DEEP_KEPT``), for ``DEEP_TTL_SECONDS``.
- the view of a job that looked up once is finished (stored status terminal, derived
  status terminal, settled: every range has its slice uploaded) is kept as it is while
  the job's stored base stays the same text (read again every ``READ_TTL_SECONDS``),
  however old: nothing but a retry or an extension changes such a job, and both rewrite
  that text. Any other view is fresh for ``READ_TTL_SECONDS``.
- accounts (existence and role, what the session check needs), decoded session tokens
  and whether a token was signed out: fresh for ``READ_TTL_SECONDS``. Sign-in never reads
  from here: a password is checked against the store every time.
- job details (R1FS, content-addressed: a CID's details never change), by CID.
- the JSON bodies built from those.

Consistency: every write this replica's web layer makes (confirm, cancel, retry, extend,
deleting an account, a new password) invalidates what it touches (``jobs_changed``,
``users_changed``), so a user sees their own writes at once. Writes by anyone else (another
replica, this replica's engine, the original DataGems on the same CStore) are seen at most
``READ_TTL_SECONDS`` later: a value counts as fresh for that long after its read *began*;
a finished job's listed totals or title rewritten by another writer, within
``LIST_WIRE_TTL_SECONDS``. A job created on another replica can thus answer 404 here for
that long. Once a value is half that old a request starts its refresh in the background
and is answered at once, so a steady stream of requests rarely waits for the store; only
one refresh of a value runs at a time, and every request that needs it waits for that one.
A job never leaves a listing while it moves from open to finished: it is listed from the
open jobs until its close is seen, and from the head after (a close is recorded before the
job leaves the index, and this cache reads the index before the closes).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

import orjson

from datagems.accounts.tokens import Session, SessionRevocations, read_session
from datagems.accounts.users import Account, Accounts
from datagems.errors import DatagemsError, Unauthorized
from datagems.job import index, lifecycle, listing
from datagems.job.listing import Head, Query, Row
from datagems.job.state import JobView, reads_cancel, settled, view_of
from datagems.models import TERMINAL_STATUSES, ClosedJob, JobBase, JobDetails, ReplicaBeat
from datagems.services import Services
from datagems.store.base import decode_value
from datagems.store.repos import unreadable_reason

logger = logging.getLogger(__name__)
T = TypeVar("T")

READ_TTL_SECONDS = 0.5
"""How stale a read of someone else's write may be when a route answers.

Safe because no answer needs to be newer: CStore replicates between nodes in the
background anyway, the engine reports progress about once a second
(``DATAGEN_PROGRESS_FLUSH_SECONDS``) and the dashboard refreshes every 0.75 s, while this
replica's own writes are never hidden (they invalidate). So a job cancelled or finished
elsewhere, a deleted account or a changed role shows at most half a second late, and a
running job's progress a little later than it was written. Well under a second, so a
person never notices, and long enough that one store read serves hundreds of requests.
"""
REFRESH_AHEAD = 0.5  # refresh in the background once a value is this fraction of the TTL old
VIEWS_KEPT = 1024  # job views (finished ones stay until evicted)
TEXTS_KEPT = 1024  # stored bases of jobs viewed that are not open
HEADS_KEPT = 16  # listing heads (owner and filters)
WIRES_KEPT = 2000  # listed bases of finished jobs
DEEP_KEPT = 32  # pages further down than a head
LIST_WIRE_TTL_SECONDS = 5.0  # a listed finished job's base is read again at most this often
DEEP_TTL_SECONDS = 30.0
METRICS_TTL_SECONDS = 10.0  # the fleet's metrics read every job: at most this often
HEAD_REFRESH_SECONDS = index.CLOSED_KEPT_SECONDS / 4
HEAD_MAX_AGE_SECONDS = index.CLOSED_KEPT_SECONDS / 2
DETAILS_KEPT = 256
ACCOUNTS_KEPT = 4096
SESSIONS_KEPT = 4096
REVOCATIONS_KEPT = 4096
_NOTHING: Any = object()


@dataclass(eq=False)
class CachedView:
    """One job's view with the stored texts it was built from (``None``: absent)."""

    view: JobView
    base_raw: Any
    peers_raw: dict[str, Any]
    cancel_raw: Any
    commands_raw: Any
    final: bool  # finished and settled: valid while ``base_raw`` is the stored text
    details: JobDetails | None = None  # None: the job has none, or they were not readable
    body: bytes | None = None  # the JSON of GET /api/tasks/{id}, set on the event loop


@dataclass(eq=False)
class JobsSnapshot:
    """The open jobs as read once (``datagems.job.index``), with what a listing needs of them."""

    raw: dict[str, Any]  # open job id -> its stored base text
    bases: dict[str, JobBase | None]  # the same, parsed (None: it does not parse)
    entries: dict[str, CachedView]  # open job id -> its view
    index_raw: dict[str, Any]  # the index as read
    closed_raw: dict[str, Any]  # the closes as read
    closed: dict[str, ClosedJob]
    mark: Any  # what foreign writers did (``foreign_mark``): heads are read again when it moves
    shown: dict[str, tuple[JobBase, dict[str, Any]]]  # job id -> listed job and its wire
    rows: tuple[tuple[Row, dict[str, Any]], ...]  # the open jobs as listed, newest first
    unreadable: dict[str, dict[str, Any]] = field(default_factory=dict)  # job id -> its row


@dataclass
class ListedWire:
    """A finished job's listed base: the stored text, its wire, when it was read."""

    stored: Any
    wire: dict[str, Any] | None  # None: gone, or not readable
    at: float


# --------------------------------------------------------------------------- reading (threads)


class DetailsKept:
    """Job details by CID (R1FS is content-addressed: they never change), the most
    recently used kept. Thread-safe: read in the store threads."""

    def __init__(self, services: Services, most: int = DETAILS_KEPT) -> None:
        self.services = services
        self.most = most
        self._kept: OrderedDict[str, JobDetails] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cid: str) -> JobDetails:
        """The details of ``cid``, read from R1FS the first time; ``DatagemsError``."""
        with self._lock:
            found = self._kept.get(cid)
            if found is not None:
                self._kept.move_to_end(cid)
                return found
        found = self.services.details.get(cid)
        with self._lock:
            self._kept[cid] = found
            while len(self._kept) > self.most:
                self._kept.popitem(last=False)
        return found

    def of(self, job: JobBase, previous: CachedView | None) -> JobDetails | None:
        """The job's details, or ``None`` (logged) when it has none or they are unreadable."""
        cid = job.job_details_cid
        if not cid:
            return None
        if previous is not None and previous.view.job.job_details_cid == cid and previous.details:
            return previous.details
        try:
            return self.get(cid)
        except DatagemsError as exc:
            logger.warning("details of job %s not readable: %s", job.id, exc)
            return None


def build_view(
    services: Services,
    details: DetailsKept,
    base: JobBase,
    base_raw: Any,
    peers_raw: dict[str, Any],
    cancel_raw: Any,
    commands_raw: Any,
    previous: CachedView | None,
) -> CachedView:
    """A job's view from stored texts: ``previous`` itself when no text changed, else
    derived again (``state.view_of``: a read writes nothing), parsing only the texts that
    changed."""
    if (
        previous is not None
        and previous.base_raw == base_raw
        and previous.peers_raw == peers_raw
        and previous.cancel_raw == cancel_raw
        and previous.commands_raw == commands_raw
    ):
        return previous
    old_raw = previous.peers_raw if previous is not None else {}
    old = previous.view.peers if previous is not None else {}
    peers = {}
    for peer_id, stored in peers_raw.items():
        state = old.get(peer_id) if old_raw.get(peer_id, _NOTHING) == stored else None
        if state is None:
            state = services.peers.parse_raw(base.id, peer_id, stored)
        if state is not None:
            peers[peer_id] = state
    cancel = None
    if cancel_raw is not None:
        if previous is not None and previous.cancel_raw == cancel_raw:
            cancel = previous.view.cancel
        else:
            cancel = services.cancels.parse_raw(base.id, cancel_raw)
    if (
        previous is not None
        and previous.commands_raw == commands_raw
        and previous.view.commands is not None
    ):
        commands = previous.view.commands
    else:
        commands = services.commands.parse_raw(base.id, commands_raw)
    view = view_of(base, peers, cancel, commands)
    final = (
        base.status in TERMINAL_STATUSES
        and view.job.status in TERMINAL_STATUSES
        and settled(view.job, peers, commands)
    )
    found = details.of(view.job, previous)
    return CachedView(view, base_raw, dict(peers_raw), cancel_raw, commands_raw, final, found)


def load_view(
    services: Services,
    details: DetailsKept,
    base: JobBase,
    base_raw: Any,
    previous: CachedView | None,
) -> CachedView:
    """One job's view: its peer states, cancel request and commands read from the store,
    its details from R1FS unless kept."""
    peers_raw = services.peers.all_raw(base.id)
    cancel_raw = services.cancels.get_raw(base.id) if reads_cancel(base) else None
    commands_raw = services.commands.get_raw(base.id)
    return build_view(
        services, details, base, base_raw, peers_raw, cancel_raw, commands_raw, previous
    )


def load_snapshot(
    services: Services, details: DetailsKept, previous: JobsSnapshot | None
) -> JobsSnapshot:
    """The open-jobs index, then the recent closes (a close is recorded before its job
    leaves the index, so a job is in one or the other), the original's mark, and the view
    of every open job, reusing from ``previous`` whatever was built from the same texts."""
    index_raw = services.index.open_raw()
    closed_raw = services.index.closed_raw()
    mark = foreign_mark(services)
    raw: dict[str, Any] = {}
    bases: dict[str, JobBase | None] = {}
    entries: dict[str, CachedView] = {}
    unreadable: dict[str, dict[str, Any]] = {}
    for job_id in index_raw:
        stored = services.jobs.get_raw(job_id)
        if stored is None:
            continue  # a confirm in progress (or one that died): nothing to show yet
        raw[job_id] = stored
        if previous is not None and previous.raw.get(job_id, _NOTHING) == stored:
            base = previous.bases.get(job_id)  # None: it did not parse then either
        else:
            base = services.jobs.parse_raw(job_id, stored)
        bases[job_id] = base
        if base is None:
            kept = previous.unreadable.get(job_id) if previous is not None else None
            same = previous is not None and previous.raw.get(job_id, _NOTHING) == stored
            unreadable[job_id] = kept if same and kept else unreadable_row(job_id, stored)
        else:
            entries[job_id] = load_view(
                services,
                details,
                base,
                stored,
                previous.entries.get(job_id) if previous is not None else None,
            )
    closed: dict[str, ClosedJob] = {}
    for job_id, stored in closed_raw.items():
        if previous is not None and previous.closed_raw.get(job_id, _NOTHING) == stored:
            found = previous.closed.get(job_id)
        else:
            found = services.index.parse_closed(job_id, stored)
        if found is not None:
            closed[job_id] = found
    shown: dict[str, tuple[JobBase, dict[str, Any]]] = {}
    rows = []
    for job_id, entry in entries.items():
        job = entry.view.job
        before = previous.shown.get(job_id) if previous is not None else None
        wire = before[1] if before is not None and before[0] is job else job.wire()
        shown[job_id] = (job, wire)
        key = (job.created_at or "", job_id)
        rows.append((Row(key=key, owner=job.owner, title=job.title, status=job.status), wire))
    for job_id, row in unreadable.items():
        rows.append((unreadable_key(job_id, row), row))
    rows.sort(key=lambda item: item[0].key, reverse=True)
    return JobsSnapshot(
        raw,
        bases,
        entries,
        index_raw,
        closed_raw,
        closed,
        mark,
        shown,
        tuple(rows),
        unreadable=unreadable,
    )


def unreadable_row(job_id: str, stored: Any) -> dict[str, Any]:
    """The listing's row of a job whose stored base does not read: what can be told of it
    (owner, title, creation), status ``unreadable`` and why (``reason``, for admins)."""
    value = decode_value(stored)
    found = value if isinstance(value, dict) else {}
    row: dict[str, Any] = {"id": job_id, "status": "unreadable", "unreadable": True}
    for name in ("owner", "title", "createdAt", "totalRecords"):
        if isinstance(found.get(name), str | int) and not isinstance(found.get(name), bool):
            row[name] = found[name]
    row["reason"] = unreadable_reason(JobBase, stored) or "unreadable"
    return row


def unreadable_key(job_id: str, row: dict[str, Any]) -> Row:
    created = row.get("createdAt")
    return Row(
        key=(created if isinstance(created, str) else "", job_id),
        owner=str(row.get("owner") or ""),
        title=str(row.get("title") or ""),
        status="unreadable",
    )


def foreign_mark(services: Services) -> tuple[str | None, str | None]:
    """What tells that jobs may have come into ``datagen:jobs`` past the open-jobs index:
    the original's mark when no replica of ours has accounted for it yet (a rebuild, or a
    write of ours claimed), and when the index was last rebuilt. Our own writes to
    ``datagen:metrics`` are claimed, so they do not move it."""
    mark = index.original_mark(services)
    meta = services.index.meta()
    accounted = meta.original_mark if meta is not None else None
    return (mark if mark != accounted else None, meta.built_at if meta is not None else None)


def read_wires(
    services: Services, job_ids: list[str], kept: dict[str, ListedWire]
) -> dict[str, ListedWire]:
    """The stored bases of listed jobs (one read each), with their wires; a text already
    ``kept`` is not parsed again."""
    found = {}
    for job_id in job_ids:
        at = time.monotonic()
        stored = services.jobs.get_raw(job_id)
        before = kept.get(job_id)
        if before is not None and before.stored == stored:
            found[job_id] = ListedWire(stored, before.wire, at)
            continue
        if stored is None:
            found[job_id] = ListedWire(stored, None, at)
            continue
        job = services.jobs.parse_raw(job_id, stored)
        wire = job.wire() if job is not None else unreadable_row(job_id, stored)
        found[job_id] = ListedWire(stored, wire, at)
    return found


# --------------------------------------------------------------------------- the cache


class _Epoch:
    """Bumped by every local write of one kind: a value read before is never used again."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class _Cell(Generic[T]):
    """One cached value: when its read began, in which epoch, from which key (the stored
    text it was built from), whether it is final, and the refresh in flight."""

    __slots__ = (
        "at",
        "epoch",
        "epochs",
        "final",
        "flight",
        "flight_epoch",
        "flight_key",
        "key",
        "value",
    )

    def __init__(self, epochs: _Epoch) -> None:
        self.epochs = epochs
        self.value: Any = _NOTHING
        self.key: Any = None
        self.at = -math.inf
        self.epoch = -1
        self.final = False
        self.flight: asyncio.Task[T] | None = None
        self.flight_epoch = -1
        self.flight_key: Any = None

    def usable(self, now: float, ttl: float, key: Any) -> bool:
        if self.value is _NOTHING or self.key != key:
            return False
        return self.final or (self.epoch == self.epochs.value and now - self.at < ttl)


class WebCache:
    """The per-app read cache (``keys.READ_CACHE``); used only from the app's event loop.

    Store reads run in a worker thread, one refresh per value at a time."""

    def __init__(
        self, services: Services, accounts: Accounts, *, ttl: float = READ_TTL_SECONDS
    ) -> None:
        self.services = services
        self.accounts = accounts
        self.ttl = ttl
        self.details = DetailsKept(services)
        self._jobs_epoch = _Epoch()
        self._users_epoch = _Epoch()
        self._snapshot: _Cell[JobsSnapshot] = _Cell(self._jobs_epoch)
        self._views: OrderedDict[str, _Cell[CachedView]] = OrderedDict()
        self._texts: OrderedDict[str, _Cell[Any]] = OrderedDict()
        self._heads: OrderedDict[tuple[Any, ...], tuple[float, Head]] = OrderedDict()
        self._head_flights: dict[tuple[Any, ...], asyncio.Task[Head]] = {}
        self._wires: OrderedDict[str, ListedWire] = OrderedDict()
        self._wires_flight: asyncio.Task[Any] | None = None
        self._deep: OrderedDict[tuple[Any, ...], tuple[float, list[Row], bool]] = OrderedDict()
        self._deep_closes: Any = None  # the closes the kept deep pages were read with
        self._metrics: tuple[float, dict[str, Any]] | None = None
        self._metrics_flight: asyncio.Task[dict[str, Any]] | None = None
        self._accounts: OrderedDict[str, _Cell[Account | None]] = OrderedDict()
        self._sessions: OrderedDict[str, tuple[float, Session]] = OrderedDict()
        self._revoked: OrderedDict[str, _Cell[bool]] = OrderedDict()
        self.revocations = SessionRevocations(services.cstore)
        self._replicas: _Cell[dict[str, ReplicaBeat]] = _Cell(_Epoch())
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- jobs ------------------------------------------------------------------------
    async def listing(self, query: Query, *, admin: bool = False) -> bytes:
        """The JSON body of ``GET /api/tasks``: one page, ``{"jobs", "nextCursor"}``. Open
        jobs come from the open-jobs snapshot (live), the others from the listing's head
        (or, further down than it reaches, from one streamed read of the source). A job
        whose stored base does not read is listed as ``unreadable``, with why to admins."""
        snapshot = await self._jobs()
        if query.sort != "newest":
            return await self._sorted_listing(query, snapshot, admin=admin)
        opened = [
            (row, wire) for row, wire in snapshot.rows if query.admits(row) and query.below(row.key)
        ]
        need = query.limit + 1
        head = await self._head(query, snapshot)
        live = {**snapshot.entries, **snapshot.unreadable}  # listed from the snapshot
        below = [r for r in head.rows if query.below(r.key) and r.id not in live]
        more_below = False
        if len(below) < need and not head.complete:
            below, more_below = await self._deep_page(query, need + len(live), snapshot)
            below = [r for r in below if r.id not in live]
        considered = below[:need]
        wires = await self._listed_wires([r.id for r in considered])
        rows: list[tuple[Row, dict[str, Any]]] = list(opened)
        for row in considered:
            wire = wires.get(row.id)
            if wire is None:
                continue  # its base is gone
            status = wire.get("status")
            if query.statuses and status not in query.statuses:
                continue  # the summary the head was read from is behind the base
            rows.append((row, wire))
        rows.sort(key=lambda item: item[0].key, reverse=True)
        page = rows[: query.limit]
        more = len(rows) > query.limit or len(below) > len(considered) or more_below
        cursor = None
        if more:  # after the last row shown, or the last one looked at when none was shown
            last = page[-1][0].key if page else considered[-1].key
            cursor = listing.encode_cursor(last)
        shown = [
            wire if admin or not wire.get("unreadable") else _without_reason(wire)
            for _, wire in page
        ]
        return orjson.dumps({"jobs": shown, "nextCursor": cursor})

    async def _sorted_listing(self, query: Query, snapshot: JobsSnapshot, *, admin: bool) -> bytes:
        """A page in another order than newest first (``listing.sorted_page``): one
        streamed read of the source per page, the open jobs live from the snapshot."""
        live_wires = {row.id: (row, wire) for row, wire in snapshot.rows}
        live_ids = {*snapshot.entries, *snapshot.unreadable}
        rows, more = await asyncio.to_thread(
            listing.sorted_page,
            self.services,
            query,
            [row for row, _ in snapshot.rows],
            live_ids,
            query.limit,
        )
        wires = await self._listed_wires([r.id for r in rows if r.id not in live_wires])
        page: list[dict[str, Any]] = []
        for row in rows:
            wire = live_wires[row.id][1] if row.id in live_wires else wires.get(row.id)
            if wire is None or (query.statuses and wire.get("status") not in query.statuses):
                continue  # gone, or the summary it was sorted from is behind its base
            page.append(wire if admin or not wire.get("unreadable") else _without_reason(wire))
        cursor = listing.encode_cursor(listing.sort_key(rows[-1], query.sort)) if more else None
        return orjson.dumps({"jobs": page, "nextCursor": cursor})

    async def metrics(self) -> dict[str, Any]:
        """The fleet's metrics (``lifecycle.metrics``: one streamed pass over every job), read at
        most every ``METRICS_TTL_SECONDS`` however many pages and scrapers ask."""
        kept = self._metrics
        if kept is not None and time.monotonic() - kept[0] < METRICS_TTL_SECONDS:
            return kept[1]
        if self._metrics_flight is None:

            async def read() -> dict[str, Any]:
                started, epoch = time.monotonic(), self._jobs_epoch.value
                try:
                    found = await asyncio.to_thread(lifecycle.metrics, self.services)
                finally:
                    self._metrics_flight = None
                if epoch == self._jobs_epoch.value:  # no local write since the read began
                    self._metrics = (started, found)
                return found

            self._metrics_flight = asyncio.get_running_loop().create_task(read())
            self._tasks.add(self._metrics_flight)
            self._metrics_flight.add_done_callback(self._settled)
        return await asyncio.shield(self._metrics_flight)

    async def job_view(self, job_id: str) -> CachedView | None:
        """The job as ``lifecycle.load_job`` would answer it, or ``None`` when there is none."""
        snapshot = await self._jobs()
        read_at = math.inf
        if job_id in snapshot.raw:
            base, stored = snapshot.bases.get(job_id), snapshot.raw[job_id]
            # its base comes from the snapshot: the view is as old as the snapshot's read
            read_at = self._snapshot.at if self._snapshot.value is snapshot else -math.inf
        else:
            text = self._kept(self._texts, job_id, self._jobs_epoch, TEXTS_KEPT)
            stored = await self._get(text, partial(self.services.jobs.get_raw, job_id))
            if stored is None:
                return None
            base = self.services.jobs.parse_raw(job_id, stored)
        if base is None:
            return None
        cell = self._kept(self._views, job_id, self._jobs_epoch, VIEWS_KEPT)
        previous = cell.value if cell.value is not _NOTHING else None
        fetch = partial(load_view, self.services, self.details, base, stored, previous)
        return await self._get(cell, fetch, key=stored, final=_is_final, read_at=read_at)

    async def replicas(self) -> dict[str, ReplicaBeat]:
        """The replicas of ours that ever wrote a heartbeat (``datagen:replicas``): a job's
        other peers are the original app's. Fresh for the TTL."""
        return await self._get(self._replicas, self.services.replicas.all)

    async def open_views(self) -> list[JobView]:
        """The open jobs' views as last read (what a queued job's peers are busy with)."""
        return [entry.view for entry in (await self._jobs()).entries.values()]

    def jobs_changed(self, job_id: str | None = None) -> None:
        """This replica's web layer wrote a job (or tried to): nothing read before counts."""
        self._jobs_epoch.value += 1
        self._metrics = None
        if job_id is not None:
            self._views.pop(job_id, None)
            self._texts.pop(job_id, None)
            self._wires.pop(job_id, None)

    async def _jobs(self) -> JobsSnapshot:
        current = self._snapshot.value
        previous = current if current is not _NOTHING else None
        fetch = partial(load_snapshot, self.services, self.details, previous)
        return await self._get(self._snapshot, fetch, on_store=self._adopt)

    def _adopt(self, snapshot: JobsSnapshot, at: float, epoch: int) -> None:
        """The views a snapshot built serve ``job_view`` too, unless newer ones are kept."""
        for job_id, entry in snapshot.entries.items():
            cell = self._kept(self._views, job_id, self._jobs_epoch, VIEWS_KEPT)
            if at > cell.at:
                cell.value, cell.key, cell.at, cell.epoch = entry, entry.base_raw, at, epoch
                cell.final = entry.final

    async def _head(self, query: Query, snapshot: JobsSnapshot) -> Head:
        """The listing's head: built (read before answering) when none is kept or it is
        too old for the closes still kept; read again in the background when it is due or
        the original wrote jobs since; patched with the closes of ``snapshot``."""
        key = query.filters
        now = time.monotonic()
        kept = self._heads.get(key)
        stale = kept is not None and kept[1].built_mark != snapshot.mark  # foreign writes
        if kept is None or stale or now - kept[0] >= HEAD_MAX_AGE_SECONDS:
            await asyncio.shield(self._build_head(query, snapshot.mark))
            kept = self._heads[key]
        elif now - kept[0] >= HEAD_REFRESH_SECONDS:
            self._build_head(query, snapshot.mark)
        self._heads.move_to_end(key)
        head = kept[1]
        self._patch(head, query, snapshot)
        return head

    def _build_head(self, query: Query, mark: Any) -> asyncio.Task[Head]:
        key = query.filters
        flight = self._head_flights.get(key)
        if flight is not None:
            return flight

        async def build() -> Head:
            started = time.monotonic()
            try:
                head = await asyncio.to_thread(listing.build_head, self.services, query, mark)
            finally:
                self._head_flights.pop(key, None)
            self._heads[key] = (started, head)
            self._heads.move_to_end(key)
            while len(self._heads) > HEADS_KEPT:
                self._heads.popitem(last=False)
            return head

        task = self._head_flights[key] = asyncio.get_running_loop().create_task(build())
        self._tasks.add(task)
        task.add_done_callback(self._settled)
        return task

    @staticmethod
    def _patch(head: Head, query: Query, snapshot: JobsSnapshot) -> None:
        """Place in ``head`` every job closed since it was read (``datagen:closed-jobs``)."""
        for job_id, closed in snapshot.closed.items():
            if head.applied.get(job_id, _NOTHING) == closed.closed_at:
                continue
            head.applied[job_id] = closed.closed_at
            row = listing.closed_row(job_id, closed)
            unbounded = Query(owner=query.owner, statuses=query.statuses, text=query.text)
            if unbounded.admits(row):
                head.add(row)
        if len(head.applied) > len(snapshot.closed):
            head.applied = {k: v for k, v in head.applied.items() if k in snapshot.closed}

    async def _deep_page(
        self, query: Query, count: int, snapshot: JobsSnapshot
    ) -> tuple[list[Row], bool]:
        """Rows further down than the head reaches: one streamed read of the source, kept
        ``DEEP_TTL_SECONDS`` while no job closes."""
        if self._deep_closes is not snapshot.closed_raw:
            if self._deep_closes != snapshot.closed_raw:
                self._deep.clear()
            self._deep_closes = snapshot.closed_raw
        key = (*query.filters, query.cursor, count)
        kept = self._deep.get(key)
        now = time.monotonic()
        if kept is not None and now - kept[0] < DEEP_TTL_SECONDS:
            return kept[1], kept[2]
        rows, more = await asyncio.to_thread(listing.page_below, self.services, query, count)
        self._deep[key] = (now, rows, more)
        while len(self._deep) > DEEP_KEPT:
            self._deep.popitem(last=False)
        return rows, more

    async def _listed_wires(self, job_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """The listed bases of finished jobs: read now when not kept, read again in the
        background (one read at a time) when older than ``LIST_WIRE_TTL_SECONDS``."""
        missing = [job_id for job_id in job_ids if job_id not in self._wires]
        if missing:
            self._keep_wires(await asyncio.to_thread(read_wires, self.services, missing, {}))
        now = time.monotonic()
        stale = [
            job_id
            for job_id in job_ids
            if job_id in self._wires and now - self._wires[job_id].at >= LIST_WIRE_TTL_SECONDS
        ]
        if stale and self._wires_flight is None:
            kept = {job_id: self._wires[job_id] for job_id in stale}
            reread = self._reread(stale, kept)
            self._wires_flight = asyncio.get_running_loop().create_task(reread)
            self._tasks.add(self._wires_flight)
            self._wires_flight.add_done_callback(self._settled)
        found = {}
        for job_id in job_ids:
            listed = self._wires.get(job_id)
            if listed is not None:
                self._wires.move_to_end(job_id)
                found[job_id] = listed.wire
        return found

    async def _reread(self, job_ids: list[str], kept: dict[str, ListedWire]) -> None:
        try:
            self._keep_wires(await asyncio.to_thread(read_wires, self.services, job_ids, kept))
        finally:
            self._wires_flight = None

    def _keep_wires(self, read: dict[str, ListedWire]) -> None:
        for job_id, listed in read.items():
            self._wires[job_id] = listed
            self._wires.move_to_end(job_id)
        while len(self._wires) > WIRES_KEPT:
            self._wires.popitem(last=False)

    # -- users -----------------------------------------------------------------------
    def session(self, secret: str, token: str) -> Session | None:
        """The session a token carries, or ``None``. A decoded token is kept for the TTL,
        so an expired one may pass for that much longer (the expiry has 30 s of leeway)."""
        now = time.monotonic()
        hit = self._sessions.get(token)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        try:
            found = read_session(secret, token)
        except Unauthorized:
            self._sessions.pop(token, None)
            return None
        self._sessions[token] = (now, found)
        self._sessions.move_to_end(token)
        while len(self._sessions) > SESSIONS_KEPT:
            self._sessions.popitem(last=False)
        return found

    async def account(self, username: str) -> Account | None:
        """The account (``None``: none, or deleted), as stored at most a TTL ago."""
        cell = self._kept(self._accounts, username, self._users_epoch, ACCOUNTS_KEPT)
        return await self._get(cell, partial(self.accounts.get, username))

    async def revoked(self, digest: str) -> bool:
        """Was the token of this digest signed out (on any replica, read at most a TTL ago)?"""
        cell = self._kept(self._revoked, digest, self._users_epoch, REVOCATIONS_KEPT)
        return await self._get(cell, partial(self.revocations.is_revoked, digest))

    def users_changed(self) -> None:
        """This replica changed an account (deleted, new password, created) or signed a
        session out."""
        self._users_epoch.value += 1

    # -- machinery -------------------------------------------------------------------
    @staticmethod
    def _kept(
        cells: OrderedDict[str, _Cell[Any]], name: str, epochs: _Epoch, most: int
    ) -> _Cell[Any]:
        cell = cells.get(name)
        if cell is None:
            cell = cells[name] = _Cell(epochs)
            while len(cells) > most:
                cells.popitem(last=False)
        else:
            cells.move_to_end(name)
        return cell

    async def _get(
        self,
        cell: _Cell[T],
        fetch: Callable[[], T],
        *,
        key: Any = None,
        final: Callable[[T], bool] | None = None,
        on_store: Callable[[T, float, int], None] | None = None,
        read_at: float = math.inf,
    ) -> T:
        """``cell``'s value when usable (refreshed ahead in the background when half its
        TTL old), else the refresh's. ``read_at``: when the parts that ``fetch`` does not
        read itself were read (the value is no newer)."""
        now = time.monotonic()
        if cell.usable(now, self.ttl, key):
            if not cell.final and now - cell.at >= self.ttl * REFRESH_AHEAD:
                self._launch(cell, fetch, key, final, on_store, read_at)
            return cell.value
        return await asyncio.shield(self._launch(cell, fetch, key, final, on_store, read_at))

    def _launch(
        self,
        cell: _Cell[T],
        fetch: Callable[[], T],
        key: Any,
        final: Callable[[T], bool] | None,
        on_store: Callable[[T, float, int], None] | None,
        read_at: float,
    ) -> asyncio.Task[T]:
        """The refresh of ``cell`` for ``key`` in this epoch: the one in flight, or a new one."""
        epoch = cell.epochs.value
        flight = cell.flight
        if flight is not None and cell.flight_epoch == epoch and cell.flight_key == key:
            return flight
        task = asyncio.get_running_loop().create_task(
            self._refresh(cell, fetch, key, epoch, final, on_store, read_at)
        )
        cell.flight, cell.flight_epoch, cell.flight_key = task, epoch, key
        self._tasks.add(task)
        task.add_done_callback(self._settled)
        return task

    async def _refresh(
        self,
        cell: _Cell[T],
        fetch: Callable[[], T],
        key: Any,
        epoch: int,
        final: Callable[[T], bool] | None,
        on_store: Callable[[T, float, int], None] | None,
        read_at: float,
    ) -> T:
        started = min(time.monotonic(), read_at)
        try:
            value = await asyncio.to_thread(fetch)
        finally:
            if cell.flight is asyncio.current_task():
                cell.flight = None
        # kept only when no local write happened since the read began, and it is newer
        if epoch == cell.epochs.value and started > cell.at:
            cell.value, cell.key, cell.at, cell.epoch = value, key, started, epoch
            cell.final = final(value) if final is not None else False
            if on_store is not None:
                on_store(value, started, epoch)
        return value

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the requests waiting for it answer the error; a refresh ahead had none
            logger.info("a read of the store failed: %s", task.exception())

    async def close(self) -> None:
        """Stop the refreshes in flight (the app is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _without_reason(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name != "reason"}


def _is_final(entry: CachedView) -> bool:
    return entry.final
