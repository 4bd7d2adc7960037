"""The open-jobs index: the jobs that can still need work, found without reading history.

``datagen:jobs`` keeps every job ever confirmed (the original's layout, kept complete for
it), so reading it costs in proportion to history. The poller and the web layer's read
cache read ``datagen:open-jobs`` instead (job id -> ``OpenJob``): every job whose stored
status is not final (``queued``, ``running``, or any status an original writer invents;
not ``succeeded``, ``failed`` or ``cancelled``). A final base is written only once every
range has its slice uploaded, caught up with the job's commands (``state.needs_finalizing``), so a
job with a dead peer's range unfinished, a retry or an extension pending, or a cancel not
yet acted on by every peer is open.

CStore has no compare-and-set, so who writes what, in which order, is the design:

- **open**: the writer of an opening transition adds the entry *before* it (a confirm in
  ``lifecycle.create_job``; a retry or an extension in ``jobs._reopen``, which adds it again
  after the new base). A crash in between leaves an entry too many, never a job missing.
- **close**: the writer of a final base records the close in ``datagen:closed-jobs`` (kept
  ``CLOSED_KEPT_SECONDS``, for the read caches' listings), removes the entry *after* the
  base (``lifecycle.write_back``), then reads the base again and puts the entry back if the
  job is open once more. A reopen racing a close thus either re-adds after the removal or
  wrote its base before that read: the job stays in the index either way.
- **repair**: every poll checks each entry against its job's base: the entry of a final
  job is closed (a crash after the final base; the original finished the job), the entry
  of a job whose base is still missing ``MISSING_GRACE_SECONDS`` after it was opened is
  dropped (a confirm that died before writing the job).
- **rebuild**: a streamed scan of ``datagen:jobs`` (memory flat in its size) adds every
  open job the index lacks and closes the entries of final jobs. It runs at start when
  ``datagen:open-jobs-meta`` is missing, of another version, older than
  ``DATAGEN_INDEX_RECONCILE_SECONDS`` or behind the original's mark; whenever the
  original's mark moves; and every ``DATAGEN_INDEX_RECONCILE_SECONDS`` as a backstop
  against what no order of writes covers (a broadcast a replicated CStore lost).

The original writes ``datagen:jobs`` and never this index. Its confirm, and each job
start, rewrites ``datagen:metrics`` with a new ``totalJobs`` / ``lastJobAt``
(``ts-1.1.3-capture`` README §4): that pair is the cheap change check, one ``get`` per
poll, that triggers a rebuild, so a job the original wrote is found within one poll.
DataGems never writes that key (its metrics are derived from the jobs).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from datagems.job import lifecycle
from datagems.models import (
    TERMINAL_STATUSES,
    ClosedJob,
    IndexMeta,
    JobBase,
    OpenJob,
    now_iso,
    parse_iso,
)
from datagems.services import Services
from datagems.store import keys
from datagems.store.base import decode_value

logger = logging.getLogger(__name__)

INDEX_VERSION = 1
MISSING_GRACE_SECONDS = 600.0
"""How long an entry may name a job whose base is not (yet) in ``datagen:jobs``: a confirm
writes the entry first and the base a moment later; one that died in between never will."""
CLOSED_KEPT_SECONDS = 1800.0
"""How long ``datagen:closed-jobs`` keeps a close: read caches rebuild a listing older than
a fraction of this (``web.cache``), so none misses a job that closed while it was kept."""


@dataclass(frozen=True)
class Peek:
    """What the index needs of a stored job base, read without the full model (so a base
    the models refuse is still indexed, and never stops the others from being)."""

    id: str
    owner: str
    title: str
    created_at: str | None
    status: str
    peers: tuple[str, ...]

    @property
    def final(self) -> bool:
        return self.status in TERMINAL_STATUSES


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def peek(job_id: str, stored: Any) -> Peek | None:
    """A stored job base (server value) as a ``Peek``; ``None`` when it is not a JSON
    object with a status (nothing could work such a job)."""
    value = decode_value(stored)
    if not isinstance(value, dict):
        return None
    status = _text(value.get("status"))
    if not status:
        return None
    peers = value.get("peers")
    return Peek(
        id=job_id,
        owner=_text(value.get("owner")) or "",
        title=_text(value.get("title")) or "",
        created_at=_text(value.get("createdAt")),
        status=status,
        peers=tuple(p for p in peers if isinstance(p, str)) if isinstance(peers, list) else (),
    )


def entry_of(job: JobBase | Peek) -> OpenJob:
    return OpenJob(
        owner=job.owner,
        title=job.title,
        created_at=job.created_at,
        peers=list(job.peers),
        opened_at=now_iso(),
    )


def open_job(services: Services, job: JobBase | Peek) -> None:
    """Add the job to the index (idempotent). Call it *before* the opening write."""
    services.index.put_open(job.id, entry_of(job))


def close_job(services: Services, job: JobBase | Peek) -> None:
    """Take a job whose final base is stored out of the index. Call it *after* that write.

    Records the close for the read caches first (they read the index, then the closes),
    removes the entry, then reads the job again: if it can still need work (reopened
    meanwhile, or its final base was derived before a retry or an extension that its
    peers have not caught up with), the entry goes back."""
    index = services.index
    index.put_closed(
        job.id,
        ClosedJob(
            owner=job.owner,
            title=job.title,
            created_at=job.created_at,
            status=job.status,
            closed_at=now_iso(),
        ),
    )
    index.drop_open(job.id)
    again = peek(job.id, services.jobs.get_raw(job.id))
    if again is None:
        return
    if not again.final or still_needs_work(services, job.id):
        index.put_open(job.id, entry_of(again))
        logger.info("job %s can still need work: kept in the open-jobs index", job.id)


def still_needs_work(services: Services, job_id: str) -> bool:
    """Is a job whose stored base is final still behind its commands (``derive``)?"""

    return lifecycle.still_open(services, job_id) is not None


def open_entries(services: Services) -> dict[str, OpenJob]:
    """The index: job id -> entry (an entry that does not parse is left out, logged)."""
    found = {}
    for job_id, stored in services.index.open_raw().items():
        entry = services.index.parse_open(job_id, stored)
        if entry is not None:
            found[job_id] = entry
    return found


def original_mark(services: Services) -> str | None:
    """What the original changes at every confirm and job start: ``totalJobs`` and
    ``lastJobAt`` of ``datagen:metrics`` (not its per-record counters). ``None``: no key."""
    return mark_of(services.cstore.get_raw(keys.METRICS))


def claim_mark(services: Services, written: Any) -> str | None:
    """A replica of ours rewrote ``datagen:metrics`` (``lifecycle.sync_metrics``) after checking
    that the original had not written since the index's last check: the mark of what it
    wrote becomes the index's, so no replica rebuilds the index for a write of ours."""
    mark = mark_of(written)
    meta = services.index.meta()
    if meta is not None and meta.original_mark != mark:
        meta.original_mark = mark
        services.index.put_meta(meta)
    return mark


def mark_of(stored: Any) -> str | None:
    """The mark of a stored ``datagen:metrics`` value (``original_mark``)."""
    if stored is None:
        return None
    value = decode_value(stored)
    if isinstance(value, dict):
        return orjson.dumps([value.get("totalJobs"), value.get("lastJobAt")]).decode()
    text = stored if isinstance(stored, str) else orjson.dumps(stored).decode()
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def age_seconds(stamp: str | None, now: datetime | None = None) -> float | None:
    moment = parse_iso(stamp)
    if moment is None:
        return None
    return ((now or datetime.now(UTC)) - moment).total_seconds()


def stale_because(meta: IndexMeta | None, mark: str | None, reconcile_seconds: float) -> str:
    """Why the index must be rebuilt from ``datagen:jobs`` now ("" when it need not)."""
    if meta is None:
        return "it has never been built"
    if meta.version != INDEX_VERSION:
        return f"it was built by version {meta.version} (this is {INDEX_VERSION})"
    if meta.original_mark != mark:
        return "the original DataGems wrote jobs since"
    age = age_seconds(meta.built_at)
    if age is None or age >= reconcile_seconds:
        return "its periodic check is due"
    return ""


def rebuild(services: Services, reason: str = "") -> IndexMeta:
    """Scan ``datagen:jobs`` (streamed) and bring the index in line with it; return and
    store the new meta. Only ever adds open jobs and closes final ones: an entry whose
    base the scan did not see is left to the poller's repair (a confirm in progress)."""
    mark = original_mark(services)  # before the scan: a write during it moves the mark again
    current = services.index.open_raw()
    unseen = set(current)
    to_open: list[Peek] = []
    to_close: list[Peek] = []
    scanned = unreadable = still_open = 0
    for job_id, stored in services.jobs.scan_raw():
        scanned += 1
        unseen.discard(job_id)
        found = peek(job_id, stored)
        if found is None:
            unreadable += 1
        elif not found.final:
            still_open += 1
            if job_id not in current:
                to_open.append(found)
        elif job_id in current:
            to_close.append(found)
    for found in to_open:
        open_job(services, found)
    for found in to_close:
        close_job(services, found)
    for job_id in unseen:  # entries of jobs with no base: a confirm in progress, or dead
        entry = services.index.parse_open(job_id, current[job_id])
        opened = age_seconds(entry.opened_at if entry else None)
        if opened is None or opened >= MISSING_GRACE_SECONDS:
            services.index.drop_open(job_id)
    meta = IndexMeta(
        version=INDEX_VERSION,
        built_at=now_iso(),
        built_by=services.settings.host_addr,
        original_mark=mark,
        jobs=scanned,
        open=still_open,
        unreadable=unreadable,
    )
    services.index.put_meta(meta)
    logger.info(
        "open-jobs index rebuilt (%s): %d jobs scanned, %d open (%d added, %d closed)%s",
        reason or "asked",
        scanned,
        still_open,
        len(to_open),
        len(to_close),
        f", {unreadable} not readable" if unreadable else "",
    )
    return meta


def closes_kept_seconds(services: Services) -> float:
    """How long a close is kept: ``CLOSED_KEPT_SECONDS``, or the per-user creation window
    when longer, so the jobs a user created in the window are the open ones plus the kept
    closes (``caps.check_window``) without reading history."""
    return max(CLOSED_KEPT_SECONDS, float(services.settings.task_window_seconds))


def closed_entries(services: Services) -> dict[str, ClosedJob]:
    """The kept closes: job id -> entry (read *after* the open entries, as a close is
    recorded before its open entry goes)."""
    found = {}
    for job_id, stored in services.index.closed_raw().items():
        entry = services.index.parse_closed(job_id, stored)
        if entry is not None:
            found[job_id] = entry
    return found


def forget_old_closes(services: Services) -> int:
    """Drop the closes kept longer than ``closes_kept_seconds``; returns how many."""
    dropped = 0
    now = datetime.now(UTC)
    kept = closes_kept_seconds(services)
    for job_id, stored in services.index.closed_raw().items():
        entry = services.index.parse_closed(job_id, stored)
        age = age_seconds(entry.closed_at if entry else None, now)
        if age is None or age >= kept:
            services.index.drop_closed(job_id)
            dropped += 1
    return dropped
