"""The web layer's read cache: what the job routes, the live events and the session check
read from the store, kept for a fraction of a second and shared by every request.

Why: while a job runs, the replica's engine keeps its threads busy, and each store
round-trip and each ``asyncio.to_thread`` hop of a handler waits for the GIL behind them.
Reading the store once per ``READ_TTL_SECONDS`` for every request, instead of several
times per request, keeps ``GET /api/tasks`` and ``GET /api/tasks/{id}`` fast; a request
answered from here makes no store call and no thread hop at all.

What is kept:

- the jobs hash (``datagen:jobs``) as its stored text per job, each base parsed once per
  text; for every job not finished (stored status queued or running), its view (peer
  states, cancel request, commands, derived totals), built again only when one of those
  texts changed. Fresh for ``READ_TTL_SECONDS``.
- the view of a job that looked up once is finished (stored status terminal, derived
  status terminal, settled: every range has its slice uploaded) is kept as it is while
  the job's text in the jobs hash stays the same, however old: nothing but a retry or an
  extension changes such a job, and both rewrite that text. Any other view is fresh for
  ``READ_TTL_SECONDS``.
- accounts (existence and role, what the session check needs), decoded session tokens
  and whether a token was signed out: fresh for ``READ_TTL_SECONDS``. Sign-in never reads
  from here: a password is checked against the store every time.
- job details (R1FS, content-addressed: a CID's details never change), by CID.
- the JSON bodies built from those.

Consistency: every write this replica's web layer makes (confirm, cancel, retry, extend,
deleting an account, a new password) invalidates what it touches (``jobs_changed``,
``users_changed``), so a user sees their own writes at once. Writes by anyone else (another
replica, this replica's engine, the original DataGems on the same CStore) are seen at most
``READ_TTL_SECONDS`` later: a value counts as fresh for that long after its read *began*.
A job created on another replica can thus answer 404 here for that long. Once a value is
half that old a request starts its refresh in the background and is answered at once, so
a steady stream of requests rarely waits for the store; only one refresh of a value runs
at a time, and every request that needs it waits for that one.
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

from datagems import jobs
from datagems.accounts.tokens import Session, SessionRevocations, read_session
from datagems.accounts.users import Account, Accounts
from datagems.errors import DatagemsError, Unauthorized
from datagems.models import TERMINAL_STATUSES, JobBase, JobDetails, ReplicaBeat
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
DETAILS_KEPT = 256
ACCOUNTS_KEPT = 4096
SESSIONS_KEPT = 4096
REVOCATIONS_KEPT = 4096
_NOTHING: Any = object()


@dataclass(eq=False)
class CachedView:
    """One job's view with the stored texts it was built from (``None``: absent)."""

    view: jobs.JobView
    base_raw: Any
    peers_raw: dict[str, Any]
    cancel_raw: Any
    commands_raw: Any
    final: bool  # finished and settled: valid while ``base_raw`` is the stored text
    details: JobDetails | None = None  # None: the job has none, or they were not readable
    body: bytes | None = None  # the JSON of GET /api/tasks/{id}, set on the event loop


@dataclass(eq=False)
class JobsSnapshot:
    """The jobs hash as read once: texts, parsed bases, and what ``GET /api/tasks`` lists."""

    raw: dict[str, Any]
    bases: dict[str, JobBase]  # job id -> stored base (texts that do not parse left out)
    entries: dict[str, CachedView]  # views of the jobs not finished
    shown: dict[str, tuple[JobBase, dict[str, Any]]]  # job id -> listed job and its wire
    listed: tuple[tuple[str, dict[str, Any]], ...]  # (owner, wire), newest first
    cancels_raw: dict[str, Any] | None  # read with the jobs when one was not finished
    commands_raw: dict[str, Any] | None
    # (owner, admin) -> JSON of the list
    bodies: dict[tuple[str | None, bool], bytes] = field(default_factory=dict)
    unreadable: dict[str, dict[str, Any]] = field(default_factory=dict)  # job id -> its row


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
    derived again (``jobs.view_of``, which writes a finished base back), parsing only the
    texts that changed."""
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
    view = jobs.view_of(services, base, peers, cancel, commands)
    final = (
        base.status in TERMINAL_STATUSES
        and view.job.status in TERMINAL_STATUSES
        and jobs.settled(view.job, peers, commands)
    )
    found = details.of(view.job, previous)
    return CachedView(view, base_raw, dict(peers_raw), cancel_raw, commands_raw, final, found)


def load_view(
    services: Services,
    details: DetailsKept,
    base: JobBase,
    base_raw: Any,
    previous: CachedView | None,
    snapshot: JobsSnapshot,
) -> CachedView:
    """One job's view: its peer states read from the store, its cancel request and
    commands too unless ``snapshot`` read them with the jobs, its details from R1FS unless
    kept."""
    peers_raw = services.peers.all_raw(base.id)
    reads_cancel = jobs.reads_cancel(base)
    if snapshot.cancels_raw is not None and snapshot.commands_raw is not None:
        cancel_raw = snapshot.cancels_raw.get(base.id) if reads_cancel else None
        commands_raw = snapshot.commands_raw.get(base.id)
    else:
        cancel_raw = services.cancels.get_raw(base.id) if reads_cancel else None
        commands_raw = services.commands.get_raw(base.id)
    return build_view(
        services, details, base, base_raw, peers_raw, cancel_raw, commands_raw, previous
    )


def load_snapshot(
    services: Services, details: DetailsKept, previous: JobsSnapshot | None
) -> JobsSnapshot:
    """The jobs hash, and the view of every job not finished (as ``jobs.list_jobs`` sees
    them), reusing from ``previous`` whatever was built from the same texts."""
    raw = services.jobs.all_raw()
    bases: dict[str, JobBase] = {}
    unreadable: dict[str, dict[str, Any]] = {}
    for job_id, stored in raw.items():
        if previous is not None and previous.raw.get(job_id, _NOTHING) == stored:
            base = previous.bases.get(job_id)  # None: it did not parse then either
        else:
            base = services.jobs.parse_raw(job_id, stored)
        if base is not None:
            bases[job_id] = base
        elif stored is not None:
            same = previous is not None and previous.raw.get(job_id, _NOTHING) == stored
            kept = previous.unreadable.get(job_id) if same and previous is not None else None
            unreadable[job_id] = kept or unreadable_row(job_id, stored)
    entries: dict[str, CachedView] = {}
    cancels = commands = None
    unfinished = [base for base in bases.values() if base.status not in TERMINAL_STATUSES]
    if unfinished:
        cancels = services.cancels.all_raw()
        commands = services.commands.all_raw()
        for base in unfinished:
            entries[base.id] = build_view(
                services,
                details,
                base,
                raw[base.id],
                services.peers.all_raw(base.id),
                cancels.get(base.id),
                commands.get(base.id),
                previous.entries.get(base.id) if previous is not None else None,
            )
    shown: dict[str, tuple[JobBase, dict[str, Any]]] = {}
    rows = []
    for job_id, base in bases.items():
        job = entries[job_id].view.job if job_id in entries else base
        before = previous.shown.get(job_id) if previous is not None else None
        wire = before[1] if before is not None and before[0] is job else job.wire()
        shown[job_id] = (job, wire)
        rows.append((job.created_at or "", base.owner, wire))
    for row in unreadable.values():
        rows.append((row.get("createdAt") or "", row.get("owner"), row))
    rows.sort(key=lambda row: row[0], reverse=True)
    listed = tuple((owner, wire) for _, owner, wire in rows)
    return JobsSnapshot(
        raw, bases, entries, shown, listed, cancels, commands, unreadable=unreadable
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
        self._accounts: OrderedDict[str, _Cell[Account | None]] = OrderedDict()
        self._sessions: OrderedDict[str, tuple[float, Session]] = OrderedDict()
        self._revoked: OrderedDict[str, _Cell[bool]] = OrderedDict()
        self.revocations = SessionRevocations(services.cstore)
        self._replicas: _Cell[dict[str, ReplicaBeat]] = _Cell(_Epoch())
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- jobs ------------------------------------------------------------------------
    async def listing(self, owner: str | None, *, admin: bool = False) -> bytes:
        """The JSON body of ``GET /api/tasks``: ``owner``'s jobs (all for ``None``). A job
        whose stored base does not read is listed as ``unreadable``, with why to admins."""
        snapshot = await self._jobs()
        body = snapshot.bodies.get((owner, admin))
        if body is None:
            wires = [
                wire if admin or not wire.get("unreadable") else _without_reason(wire)
                for who, wire in snapshot.listed
                if owner is None or who == owner
            ]
            body = snapshot.bodies[(owner, admin)] = orjson.dumps({"jobs": wires})
        return body

    async def job_view(self, job_id: str) -> CachedView | None:
        """The job as ``jobs.load_job`` would answer it, or ``None`` when there is none."""
        snapshot = await self._jobs()
        base = snapshot.bases.get(job_id)
        if base is None:
            return None
        stored = snapshot.raw[job_id]
        cell = self._kept(self._views, job_id, self._jobs_epoch, VIEWS_KEPT)
        previous = cell.value if cell.value is not _NOTHING else None
        fetch = partial(load_view, self.services, self.details, base, stored, previous, snapshot)
        # parts may come from the snapshot: the view is as old as the snapshot's read
        read_at = self._snapshot.at if self._snapshot.value is snapshot else -math.inf
        return await self._get(cell, fetch, key=stored, final=_is_final, read_at=read_at)

    async def replicas(self) -> dict[str, ReplicaBeat]:
        """The replicas of ours that ever wrote a heartbeat (``datagen:replicas``): a job's
        other peers are the original app's. Fresh for the TTL."""
        return await self._get(self._replicas, self.services.replicas.all)

    def jobs_changed(self, job_id: str | None = None) -> None:
        """This replica's web layer wrote a job (or tried to): nothing read before counts."""
        self._jobs_epoch.value += 1
        if job_id is not None:
            self._views.pop(job_id, None)

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
