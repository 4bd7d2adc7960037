"""Deleting an account, as an admin chooses: kept (soft delete) or purged with its data.

- **Delete** (the default, the original's way): the auth record gets ``password: null``
  and the ``__datagemsDeleted*`` metadata; ``datagen:users``, the e-mail index, the jobs
  and the settings are left as they are. Nobody signs in as it again, its sessions end,
  and since its field stays in the auth hash its username is never given to anyone else
  (registration skips every name that has a record). Its address stays taken: registering
  it again answers 409 until an admin purges the account.
- **Purge**: the account's data goes too, **saved API keys first** (the settings key), then
  its jobs (a job still queued or running is cancelled first and stays listed, cancelled,
  until a later purge removes it), then its entries in ``datagen:users`` and the e-mail
  index, and last the personal metadata of the auth record, which is kept as a tombstone
  (``__datagemsPurged``) so the username is still never reused. Purging again finishes
  what a first purge left (cancelled jobs, or a step a store outage interrupted).

R1FS has no delete: the job details and result slices stay there, unreferenced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from datagems.accounts.users import Accounts, canonical_username
from datagems.errors import NotFound
from datagems.job import lifecycle
from datagems.models import TERMINAL_STATUSES
from datagems.services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Removed:
    username: str
    purged: bool
    jobs_removed: int = 0
    jobs_cancelled: int = 0


def delete_account(
    services: Services, accounts: Accounts, username: str, by: str, *, purge: bool = False
) -> Removed:
    """Soft-delete ``username`` (``purge``: with its data); ``NotFound`` when unknown."""
    name = canonical_username(username)
    account = accounts.get(name)
    if account is None:
        raise NotFound("account not found")
    if not purge:
        if not account.deleted:
            accounts.soft_delete(name, by)
        return Removed(name, purged=False)
    services.user_settings.delete(name)  # the saved API keys, before anything else
    removed = cancelled = 0
    owned = {job.id: job for job in services.jobs.all().values() if job.owner == name}
    for job_id in set(owned) | set(services.user_jobs.ids(name)):
        job = owned.get(job_id)
        if job is not None and job.status not in TERMINAL_STATUSES:
            lifecycle.request_cancel(services, job_id, by)
            cancelled += 1
            continue
        services.jobs.delete(job_id)
        services.peers.delete_all(job_id)
        services.user_jobs.delete(name, job_id)
        removed += 1
    entry = services.users.get(name)
    services.users.delete(name)
    email = (entry.email if entry else None) or account.metadata.get("email")
    if isinstance(email, str) and services.users.username_for_email(email) == name:
        services.users.forget_email(email)
    accounts.soft_delete(name, by, purge=True)
    logger.info(
        "account %s purged by %s: %d jobs removed, %d cancelled", name, by, removed, cancelled
    )
    return Removed(name, purged=True, jobs_removed=removed, jobs_cancelled=cancelled)
