"""Per-user caps on work, counted from the job records themselves.

- **Running jobs**: at most ``DATAGEN_MAX_RUNNING_JOBS_PER_USER`` queued or running jobs.
- **Active records**: the records still to make in the user's running jobs, plus the new
  work, at most ``DATAGEN_MAX_ACTIVE_RECORDS_PER_USER``.
- **Task creation**: at most ``DATAGEN_TASK_MAX_PER_WINDOW`` jobs created per user in any
  ``DATAGEN_TASK_RATE_WINDOW_SECONDS`` (the jobs' ``createdAt``).

There is no counter to get wrong: every count is read from the jobs (status and totals
derived from the peer states), plus the commands waiting in the inbox to reopen one. CStore
has no compare-and-set, so a check followed by a write lets concurrent requests all pass;
instead every admission **writes first and counts after** — a confirm writes its job, a
reopen its command — and counts the others, itself excluded, plus one. Of two concurrent
admissions, the later write's count sees the earlier one, so together they never pass a
cap (both may be refused; the user is told to try again). A draft confirmed twice is the
same job (one id), so it counts once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from datagems import jobs
from datagems.errors import RateLimited
from datagems.models import JobBase, parse_iso
from datagems.services import Services

CAP_RETRY_AFTER_SECONDS = 30  # a running job may finish any time: ask again soon
ACTIVE = ("queued", "running")


def _reopening(services: Services, owner: str, active: dict[str, JobBase]) -> list[JobBase]:
    """The owner's finished jobs with a command waiting to reopen them (each counts as a
    running job with its records to make until the command is decided)."""
    waiting = []
    finished = None
    for command in services.inbox.all().values():
        if command.requested_by != owner or command.job_id in active:
            continue
        if finished is None:
            finished = {j.id: j for j in jobs.list_jobs(services, owner)}
        job = finished.get(command.job_id)
        if job is None:
            continue
        job = job.model_copy()
        job.total_generated = job.total_records - (
            command.additional if command.kind == "extend" else job.total_failed
        )
        waiting.append(job)
    return waiting


def check_running(
    services: Services, owner: str, *, new_records: int, job_id: str | None = None
) -> None:
    """``RateLimited`` unless ``owner`` may have one more running job with ``new_records``
    records to make. ``job_id`` is the job being admitted (confirmed or reopened): it is
    not counted among the others, and its records to make are ``new_records``."""
    settings = services.settings
    listed = jobs.list_jobs(services, owner)
    active = {j.id: j for j in listed if j.status in ACTIVE}
    running = [j for j in active.values() if j.id != job_id]
    running += [j for j in _reopening(services, owner, active) if j.id != job_id]
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


def check_window(
    services: Services, owner: str, *, job_id: str | None = None, now: datetime | None = None
) -> None:
    """``RateLimited`` unless ``owner`` may create one more job now: the jobs it created in
    the window, ``job_id`` excluded, plus one."""
    settings = services.settings
    now = now or datetime.now(UTC)
    window = float(settings.task_window_seconds)
    created = []
    for job in services.jobs.all().values():
        if job.owner != owner or job.id == job_id:
            continue
        stamp = parse_iso(job.created_at)
        if stamp is not None and (now - stamp).total_seconds() < window:
            created.append(stamp.timestamp())
    if len(created) + 1 <= settings.task_max_per_window:
        return
    created.sort()
    # room comes back when enough of the oldest creations have left the window
    leaving = created[len(created) - settings.task_max_per_window]
    retry_after = max(1.0, leaving + window - now.timestamp())
    retry = RateLimited("", retry_after=retry_after).retry_after
    raise RateLimited(
        f"too many new jobs: at most {settings.task_max_per_window} per "
        f"{settings.task_window_seconds} s per user; try again in {retry} s",
        retry_after=retry,
    )
