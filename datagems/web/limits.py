"""Per-user limits on starting work, as the web layer applies them (``datagems.job.caps``
counts them from the job records).

- **Task creation** (``POST /api/tasks/confirm``): at most ``DATAGEN_TASK_MAX_PER_WINDOW``
  new jobs per user in any ``DATAGEN_TASK_RATE_WINDOW_SECONDS``.
- **Running jobs**: at most ``DATAGEN_MAX_RUNNING_JOBS_PER_USER`` queued or running jobs.
- **Active records**: the records still to make in the user's running jobs, plus the new
  work, at most ``DATAGEN_MAX_ACTIVE_RECORDS_PER_USER``.

The caps apply to confirming a job and to what reopens one (retry failed records, extend:
the job's command owner checks them, ``datagems.job.commands``). Drafting a schema is not
counted (a user may redraft several times per job; the preview has its own limiter).
Admins are exempt when ``DATAGEN_ADMIN_LIMITS_EXEMPT`` is true (the default). Every
refusal is a 429 with ``Retry-After`` and a message saying which limit.

A confirm is checked twice: before anything is written (the usual refusal, cheap), and
again after its job's base is written (``admit``), counting the others: that second count
is what concurrent confirms on any replicas cannot all pass.
"""

from __future__ import annotations

import contextlib

from datagems.job import caps
from datagems.models import JobBase
from datagems.services import Services
from datagems.web.auth import Caller


def exempt(services: Services, who: Caller) -> bool:
    return who.is_admin and services.settings.admin_limits_exempt


def check_capacity(
    services: Services, who: Caller, *, new_records: int, job_id: str | None = None
) -> None:
    """429 unless the caller may start ``new_records`` more records of work (and one more
    job). ``job_id`` is a job being reopened: it is not counted twice. An early refusal,
    before anything is written: admissions still being decided do not refuse here."""
    if exempt(services, who):
        return
    with contextlib.suppress(caps.Contended):
        caps.check_running(services, who.username, new_records=new_records, job_id=job_id)


def check_creation(services: Services, who: Caller) -> None:
    """429 when the caller's creation window is full (before writing anything)."""
    if exempt(services, who):
        return
    with contextlib.suppress(caps.Contended):
        caps.check_window(services, who.username)


def admit(services: Services, who: Caller, job: JobBase) -> None:
    """The count after the write: 429 when ``job`` (its base written) is one too many,
    ``caps.Contended`` when only other confirms still counting are in the way."""
    if exempt(services, who):
        return
    caps.check_window(services, who.username, job_id=job.id)
    caps.check_running(services, who.username, new_records=job.total_records, job_id=job.id)
