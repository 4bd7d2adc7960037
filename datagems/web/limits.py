"""Per-user limits on starting work: a creation window and caps on running work.

- **Task creation** (``POST /api/tasks/confirm``): at most ``DATAGEN_TASK_MAX_PER_WINDOW``
  new jobs per user in any ``DATAGEN_TASK_RATE_WINDOW_SECONDS``, counted with a
  ``WindowLimiter`` (scope ``tasks``): one field per (replica, user) in CStore, summed on
  read, so hits made through different replicas all count and none is lost.
- **Running jobs**: at most ``DATAGEN_MAX_RUNNING_JOBS_PER_USER`` queued or running jobs.
- **Active records**: the records still to make in the user's running jobs, plus the new
  work, at most ``DATAGEN_MAX_ACTIVE_RECORDS_PER_USER``.

The caps apply to confirming a job and to what reopens one (retry failed records, extend).
Drafting a schema is not counted (a user may redraft several times per job; the preview
has its own limiter). Admins are exempt when ``DATAGEN_ADMIN_LIMITS_EXEMPT`` is true (the
default). Every refusal is a 429 with ``Retry-After`` and a message saying which limit.

The caps read the jobs as every replica sees them (derived from the peer states); two
confirms racing on two replicas may both pass a cap by one job. The creation window is the
limit that holds across replicas.
"""

from __future__ import annotations

from datagems import jobs
from datagems.accounts.ratelimit import WindowLimiter
from datagems.errors import RateLimited
from datagems.services import Services
from datagems.web.auth import Caller

TASKS_SCOPE = "tasks"
CAP_RETRY_AFTER_SECONDS = 30  # a running job may finish any time: ask again soon
ACTIVE = ("queued", "running")


def exempt(services: Services, who: Caller) -> bool:
    return who.is_admin and services.settings.admin_limits_exempt


def task_limiter(services: Services) -> WindowLimiter:
    settings = services.settings
    return WindowLimiter(
        services.cstore,
        scope=TASKS_SCOPE,
        peer_id=settings.host_addr,
        window_seconds=settings.task_window_seconds,
        max_hits=settings.task_max_per_window,
    )


def check_capacity(
    services: Services, who: Caller, *, new_records: int, job_id: str | None = None
) -> None:
    """429 unless the caller may start ``new_records`` more records of work.

    ``job_id`` is the job being reopened (retry, extend): it is not counted twice, and its
    own outstanding records are part of ``new_records``.
    """
    if exempt(services, who):
        return
    settings = services.settings
    running = [
        job
        for job in jobs.open_jobs(services, who.username)
        if job.status in ACTIVE and job.id != job_id
    ]
    if len(running) + 1 > settings.max_running_jobs_per_user:
        raise RateLimited(
            f"you have {len(running)} jobs running, the most allowed per user "
            f"({settings.max_running_jobs_per_user}); wait for one to finish or cancel one",
            retry_after=CAP_RETRY_AFTER_SECONDS,
        )
    outstanding = sum(max(0, job.total_records - job.total_generated) for job in running)
    if outstanding + new_records > settings.max_active_records_per_user:
        room = max(0, settings.max_active_records_per_user - outstanding)
        raise RateLimited(
            f"your running jobs still have {outstanding} records to make; with "
            f"{new_records} more that is over the limit of "
            f"{settings.max_active_records_per_user} per user (room for {room} now)",
            retry_after=CAP_RETRY_AFTER_SECONDS,
        )


def count_creation(services: Services, who: Caller, limiter: WindowLimiter) -> None:
    """Count one new job in the caller's window; 429 when the window is full."""
    if exempt(services, who):
        return
    try:
        limiter.hit(who.username)
    except RateLimited as exc:
        settings = services.settings
        raise RateLimited(
            f"too many new jobs: at most {settings.task_max_per_window} per "
            f"{settings.task_window_seconds} s per user; try again in {exc.retry_after} s",
            retry_after=exc.retry_after,
        ) from None
