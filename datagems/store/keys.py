"""Every CStore key name DataGems reads or writes (see datagems-contract.md)."""

JOBS = "datagen:jobs"
USERS = "datagen:users"
EMAIL_INDEX = "datagen:user-email-index"
REGISTER_MAIL_FAILURES = "datagen:register-mail-failures"  # the original's, read only
METRICS = "datagen:metrics"
JOB_COMMANDS = "datagen:job-commands"  # ours: job id -> retry round and extensions
JOB_INBOX = "datagen:job-inbox"  # ours: command id -> a request to change a job
CANCELS = "datagen:cancels"  # ours: job id -> cancel request
REPLICAS = "datagen:replicas"  # ours: peer id -> replica heartbeat
DRAFTS_USED = "datagen:drafts-used"  # ours: draft token id -> job id (confirm once)
OPEN_JOBS = "datagen:open-jobs"  # ours: job id -> a job that can still need work
CLOSED_JOBS = "datagen:closed-jobs"  # ours: job id -> a job closed lately (kept a while)
OPEN_JOBS_META = "datagen:open-jobs-meta"  # ours: when the open-jobs index was last rebuilt
REVOKED_SESSIONS = "datagen:revoked-sessions"  # ours: signed-out token digest -> expiry


def job_peers(job_id: str) -> str:
    return f"datagen:job:{job_id}:peers"


def user_jobs(username: str) -> str:
    return f"datagen:user:{username}:jobs"


def user_settings(username: str) -> str:
    return f"datagen:user:{username}:settings"
