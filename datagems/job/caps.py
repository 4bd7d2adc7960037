"""Per-user caps on work, counted from the job records themselves.

- **Running jobs**: at most ``DATAGEN_MAX_RUNNING_JOBS_PER_USER`` queued or running jobs.
- **Active records**: the records still to make in the user's running jobs, plus the new
  work, at most ``DATAGEN_MAX_ACTIVE_RECORDS_PER_USER``.
- **Task creation**: at most ``DATAGEN_TASK_MAX_PER_WINDOW`` jobs created per user in any
  ``DATAGEN_TASK_RATE_WINDOW_SECONDS`` (the jobs' ``createdAt``): the open jobs plus the
  closes the open-jobs index keeps at least that long (``index.closes_kept_seconds``),
  so a confirm costs the user's recent jobs, not history.

There is no counter to get wrong: every count is read from the jobs (status and totals
derived from the peer states), plus the commands waiting in the inbox to reopen one. CStore
has no compare-and-set, so a check followed by a write lets concurrent requests all pass;
instead every admission **writes first and counts after** — a confirm writes its job's
base, a reopen its command — and counts the others, itself excluded, plus one. Of two
concurrent admissions, the later write's count sees the earlier one, so together they
never pass a cap. A draft confirmed twice is the same job (one id): it counts once.

The others are **admitted** (a job with peer states) or **pending** (a base whose confirm
is still counting, a reopen command not decided yet). Over a cap with the admitted alone
is a refusal (``RateLimited``, 429). Over it only with the pending is ``Contended``: the
admission withdraws and tries again a moment later (a confirm removes its base and backs
off at random; the command owner leaves the command for its next turn), so a burst of
concurrent confirms admits up to the cap instead of refusing them all.
"""

from __future__ import annotations

from datetime import UTC, datetime

from datagems.errors import RateLimited
from datagems.job import index, lifecycle
from datagems.models import JobBase, parse_iso
from datagems.services import Services

CAP_RETRY_AFTER_SECONDS = 30  # a running job may finish any time: ask again soon
ACTIVE = ("queued", "running")


class Contended(RateLimited):
    """Over a cap only when counting admissions still being decided: try again shortly."""


def _running(
    services: Services, owner: str, job_id: str | None
) -> tuple[list[JobBase], list[JobBase]]:
    """``owner``'s running jobs but ``job_id``: (admitted, pending). A pending job counts
    with the records it would add (a reopen: its failed or added records)."""
    # the open jobs only (the open-jobs index): a finished one counts only when a command
    # waiting in the inbox would reopen it, and is then read by itself
    listed = {j.id: j for j in lifecycle.open_jobs(services, owner) if j.id != job_id}
    admitted, pending = [], []
    for job in listed.values():
        if job.status not in ACTIVE:
            continue
        if job.status == "queued" and not services.peers.all(job.id):
            pending.append(job)  # its base is written, its confirm still counting
        else:
            admitted.append(job)
    reopened: set[str] = set()
    for command in services.inbox.all().values():
        if command.requested_by != owner or command.job_id in (job_id, *reopened):
            continue
        job = listed.get(command.job_id) or services.jobs.get(command.job_id)
        if job is None or job.owner != owner or job.status in ACTIVE:
            continue
        reopened.add(command.job_id)
        job = job.model_copy()
        job.total_generated = job.total_records - (
            command.additional if command.kind == "extend" else job.total_failed
        )
        pending.append(job)  # several commands reopen a job once
    return admitted, pending


def _check_running(services: Services, running: list[JobBase], new_records: int) -> None:
    settings = services.settings
    if len(running) + 1 > settings.max_running_jobs_per_user:
        raise RateLimited(
            f"you have {len(running)} jobs running, the most allowed per user "
            f"({settings.max_running_jobs_per_user}); wait for one to finish or cancel one",
            retry_after=CAP_RETRY_AFTER_SECONDS,
        )
    outstanding = sum(max(0, j.total_records - j.total_generated) for j in running)
    if outstanding + new_records > settings.max_active_records_per_user:
        room = max(0, settings.max_active_records_per_user - outstanding)
        raise RateLimited(
            f"your running jobs still have {outstanding} records to make; with "
            f"{new_records} more that is over the limit of "
            f"{settings.max_active_records_per_user} per user (room for {room} now)",
            retry_after=CAP_RETRY_AFTER_SECONDS,
        )


def check_running(
    services: Services, owner: str, *, new_records: int, job_id: str | None = None
) -> None:
    """``RateLimited`` unless ``owner`` may have one more running job with ``new_records``
    records to make; ``Contended`` when only admissions still being decided are in the
    way. ``job_id`` is the job being admitted (confirmed or reopened): it is not counted
    among the others, and its records to make are ``new_records``."""
    admitted, pending = _running(services, owner, job_id)
    _check_running(services, admitted, new_records)
    if pending:
        try:
            _check_running(services, admitted + pending, new_records)
        except RateLimited as exc:
            raise Contended(exc.message, retry_after=1) from None


def check_window(
    services: Services, owner: str, *, job_id: str | None = None, now: datetime | None = None
) -> None:
    """``RateLimited`` unless ``owner`` may create one more job now: the jobs it created in
    the window, ``job_id`` excluded, plus one (``Contended`` as for ``check_running``)."""
    settings = services.settings
    now = now or datetime.now(UTC)
    window = float(settings.task_window_seconds)
    admitted: list[float] = []
    pending = 0

    def in_window(created_at: str | None) -> datetime | None:
        stamp = parse_iso(created_at)
        if stamp is None or (now - stamp).total_seconds() >= window:
            return None
        return stamp

    # the open jobs first, then the closes: a close is recorded before its open entry goes
    opened = {j.id: j for j in lifecycle.open_jobs(services, owner) if j.id != job_id}
    for job in opened.values():
        stamp = in_window(job.created_at)
        if stamp is None:
            continue
        if job.status == "queued" and not services.peers.all(job.id):
            pending += 1
        else:
            admitted.append(stamp.timestamp())
    for closed_id, entry in index.closed_entries(services).items():
        if entry.owner != owner or closed_id == job_id or closed_id in opened:
            continue
        stamp = in_window(entry.created_at)
        if stamp is not None:
            admitted.append(stamp.timestamp())
    limit = settings.task_max_per_window
    if len(admitted) + 1 > limit:
        admitted.sort()
        # room comes back when enough of the oldest creations have left the window
        leaving = admitted[len(admitted) - limit]
        retry = RateLimited("", retry_after=max(1.0, leaving + window - now.timestamp()))
        raise RateLimited(
            f"too many new jobs: at most {limit} per "
            f"{settings.task_window_seconds} s per user; try again in {retry.retry_after} s",
            retry_after=retry.retry_after,
        )
    if len(admitted) + pending + 1 > limit:
        raise Contended(f"too many new jobs at once: at most {limit} per window", retry_after=1)
