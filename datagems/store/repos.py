"""Repositories: the only code that knows key names and JSON shapes.

Each one wraps a ``CStore`` (or ``R1FS``) and speaks the pydantic models of
``datagems.models``, which accept everything the original DataGems writes (the contract
tests read its whole recorded run). A stored value that still does not parse (a plain
string, a shape from an unknown writer) is skipped, so one bad field never breaks a
listing or blocks other jobs; it is logged at WARNING once per key and text (not once per
poll), and ``unreadable_reason`` says why, for the dashboard.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from datagems.models import (
    CancelRequest,
    ClosedJob,
    FleetMetrics,
    IndexMeta,
    JobBase,
    JobCommand,
    JobCommands,
    JobDetails,
    JobSummary,
    OpenJob,
    PeerState,
    RegisterMailFailure,
    ReplicaBeat,
    UserIndexEntry,
    UserSettings,
    WireModel,
)
from datagems.store import keys
from datagems.store.base import R1FS, CStore, decode_value

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def _problem(model: type[BaseModel], value: Any) -> tuple[BaseModel | None, str | None]:
    if not isinstance(value, dict):
        return None, "not a JSON object"
    try:
        return model.model_validate(value), None
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(part) for part in first.get("loc", ()))
        return None, f"{at}: {first.get('msg', 'bad shape')}" if at else first.get("msg", "")


@functools.lru_cache(maxsize=4096)
def _warn_once(where: str, reason: str, digest: str) -> None:
    """One warning per unreadable (key, text): a poll reading it again says nothing new."""
    logger.warning("unreadable %s (skipped until it changes): %s", where, reason)


def parse(model: type[M], value: Any, where: str) -> M | None:
    """A stored value as ``model``, or ``None`` (logged once) when it has another shape."""
    if value is None:
        return None
    parsed, reason = _problem(model, value)
    if reason is not None:
        digest = hashlib.blake2b(repr(value).encode(), digest_size=8).hexdigest()
        _warn_once(where, reason, digest)
        return None
    return parsed  # type: ignore[return-value]


def unreadable_reason(model: type[BaseModel], stored: Any) -> str | None:
    """Why a *server value* does not read as ``model`` (``None``: it does, or is absent)."""
    value = decode_value(stored)
    return None if value is None else _problem(model, value)[1]


def parse_stored(model: type[M], stored: Any, where: str) -> M | None:
    """A *server value* (the JSON text a ``*_raw`` read returns) as ``model``, or ``None``.

    With the raw readers below, a cache can keep the text next to the model and parse a
    field again only when its text changed."""
    return parse(model, decode_value(stored), where)


def _wire(model: WireModel) -> dict[str, Any]:
    return model.wire()


class JobsRepo:
    """``datagen:jobs``: job id -> job base."""

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def get(self, job_id: str) -> JobBase | None:
        return parse(JobBase, self.cstore.hget(keys.JOBS, job_id), f"job {job_id}")

    def put(self, job: JobBase) -> None:
        self.cstore.hset(keys.JOBS, job.id, _wire(job))

    def delete(self, job_id: str) -> None:
        self.cstore.hset(keys.JOBS, job_id, None)

    def all_raw(self) -> dict[str, Any]:
        """Job id -> stored text, unparsed (``parse_raw`` reads one)."""
        return self.cstore.hgetall_raw(keys.JOBS)

    def get_raw(self, job_id: str) -> Any:
        return self.cstore.hget_raw(keys.JOBS, job_id)

    def scan_raw(self) -> Iterator[tuple[str, Any]]:
        """(job id, stored text) for every job, streamed: memory flat in the hash's size."""
        return self.cstore.hscan_raw(keys.JOBS)

    @staticmethod
    def parse_raw(job_id: str, stored: Any) -> JobBase | None:
        return parse_stored(JobBase, stored, f"job {job_id}")

    def all(self) -> dict[str, JobBase]:
        jobs = {}
        for job_id, value in self.cstore.hgetall(keys.JOBS).items():
            job = parse(JobBase, value, f"job {job_id}")
            if job is not None:
                jobs[job_id] = job
        return jobs


class PeersRepo:
    """``datagen:job:{id}:peers``: peer id -> peer state (one writer per field)."""

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def all(self, job_id: str) -> dict[str, PeerState]:
        states = {}
        for peer_id, value in self.cstore.hgetall(keys.job_peers(job_id)).items():
            state = parse(PeerState, value, f"peer {peer_id} of job {job_id}")
            if state is not None:
                states[peer_id] = state
        return states

    def all_raw(self, job_id: str) -> dict[str, Any]:
        """Peer id -> stored text, unparsed (``parse_raw`` reads one)."""
        return self.cstore.hgetall_raw(keys.job_peers(job_id))

    @staticmethod
    def parse_raw(job_id: str, peer_id: str, stored: Any) -> PeerState | None:
        return parse_stored(PeerState, stored, f"peer {peer_id} of job {job_id}")

    def get(self, job_id: str, peer_id: str) -> PeerState | None:
        value = self.cstore.hget(keys.job_peers(job_id), peer_id)
        return parse(PeerState, value, f"peer {peer_id} of job {job_id}")

    def put(self, job_id: str, state: PeerState) -> None:
        self.cstore.hset(keys.job_peers(job_id), state.peer_id, _wire(state))

    def delete_all(self, job_id: str) -> None:
        hkey = keys.job_peers(job_id)
        for peer_id in self.cstore.hgetall_raw(hkey):
            self.cstore.hset(hkey, peer_id, None)


class DetailsRepo:
    """Job details in R1FS, addressed by ``jobDetailsCid``."""

    def __init__(self, r1fs: R1FS, secret: str | None = None) -> None:
        self.r1fs = r1fs
        self.secret = secret

    def put(self, details: JobDetails) -> str:
        return self.r1fs.add_json(
            _wire(details), filename=f"{details.id}_details.json", secret=self.secret
        )

    def get(self, cid: str) -> JobDetails:
        return JobDetails.model_validate(self.r1fs.get_json(cid, secret=self.secret))


class UserJobsRepo:
    """``datagen:user:{username}:jobs``: job id -> summary."""

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def put(self, owner: str, summary: JobSummary) -> None:
        self.cstore.hset(keys.user_jobs(owner), summary.id, _wire(summary))

    def delete(self, owner: str, job_id: str) -> None:
        self.cstore.hset(keys.user_jobs(owner), job_id, None)

    def ids(self, owner: str) -> list[str]:
        return list(self.cstore.hgetall_raw(keys.user_jobs(owner)))

    def all(self, owner: str) -> dict[str, JobSummary]:
        found = {}
        for job_id, value in self.cstore.hgetall(keys.user_jobs(owner)).items():
            summary = parse(JobSummary, value, f"job summary {job_id} of {owner}")
            if summary is not None:
                found[job_id] = summary
        return found


class UsersRepo:
    """``datagen:users`` (username -> index entry) and the e-mail index.

    The e-mail index (field = trimmed, lower-cased address) holds the username as **plain
    text**, as the original writes and reads it; earlier Python versions wrote it as JSON
    text (``"\\"pat\\""``). Both forms are read; ``repair_email_index`` rewrites the JSON
    ones as plain text (a replica does it once at start).
    """

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def get(self, username: str) -> UserIndexEntry | None:
        return parse(UserIndexEntry, self.cstore.hget(keys.USERS, username), f"user {username}")

    def put(self, entry: UserIndexEntry) -> None:
        self.cstore.hset(keys.USERS, entry.username, _wire(entry))
        if entry.email:
            self.index_email(entry.email, entry.username)

    def index_email(self, email: str, username: str) -> None:
        """Point ``email`` at ``username`` (plain text, like the original)."""
        self.cstore.hset_raw(keys.EMAIL_INDEX, normalize_email(email), username)

    def forget_email(self, email: str) -> None:
        self.cstore.hset_raw(keys.EMAIL_INDEX, normalize_email(email), None)

    def delete(self, username: str) -> None:
        entry = self.get(username)
        self.cstore.hset(keys.USERS, username, None)
        if entry and entry.email and self.username_for_email(entry.email) == username:
            self.forget_email(entry.email)

    def all(self) -> dict[str, UserIndexEntry]:
        found = {}
        for username, value in self.cstore.hgetall(keys.USERS).items():
            entry = parse(UserIndexEntry, value, f"user {username}")
            if entry is not None:
                found[username] = entry
        return found

    def username_for_email(self, email: str) -> str | None:
        return index_username(self.cstore.hget_raw(keys.EMAIL_INDEX, normalize_email(email)))

    def mail_failure(self, email: str) -> RegisterMailFailure | None:
        """The original's record of an undelivered credentials mail for ``email``."""
        stored = self.cstore.hget(keys.REGISTER_MAIL_FAILURES, normalize_email(email))
        return parse(RegisterMailFailure, stored, f"mail failure of {email}")

    def repair_email_index(self) -> int:
        """Rewrite every entry stored as JSON text as plain text; how many were rewritten."""
        repaired = 0
        for email, stored in self.cstore.hgetall_raw(keys.EMAIL_INDEX).items():
            username = index_username(stored)
            if username is None or stored == username:
                continue
            # read again just before writing: a newer write since the listing wins
            if self.cstore.hget_raw(keys.EMAIL_INDEX, email) != stored:
                continue
            self.cstore.hset_raw(keys.EMAIL_INDEX, email, username)
            repaired += 1
        if repaired:
            logger.info("e-mail index: %d entries rewritten as plain text", repaired)
        return repaired


def normalize_email(email: str) -> str:
    """The e-mail index's field: trimmed and lower-cased, as the original."""
    return email.strip().lower()


def index_username(stored: Any) -> str | None:
    """The username of an e-mail index value: plain text, or JSON text of a string (what
    earlier Python versions wrote). ``None`` for anything else."""
    if not isinstance(stored, str) or not stored:
        return None
    if stored.startswith('"'):
        decoded = decode_value(stored)
        return decoded if isinstance(decoded, str) and decoded else None
    return stored


class UserSettingsRepo:
    """``datagen:user:{username}:settings``: the user's inference profiles."""

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def get(self, username: str) -> UserSettings:
        value = self.cstore.get(keys.user_settings(username))
        return parse(UserSettings, value, f"settings of {username}") or UserSettings()

    def put(self, username: str, settings: UserSettings) -> None:
        self.cstore.set(keys.user_settings(username), _wire(settings))

    def delete(self, username: str) -> None:
        self.cstore.set(keys.user_settings(username), None)


class CancelsRepo:
    """``datagen:cancels`` (ours): job id -> cancel request, written by the web layer."""

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def request(self, request: CancelRequest) -> None:
        self.cstore.hset(keys.CANCELS, request.job_id, _wire(request))

    def get(self, job_id: str) -> CancelRequest | None:
        return parse(CancelRequest, self.cstore.hget(keys.CANCELS, job_id), f"cancel {job_id}")

    def get_raw(self, job_id: str) -> Any:
        return self.cstore.hget_raw(keys.CANCELS, job_id)

    def all_raw(self) -> dict[str, Any]:
        return self.cstore.hgetall_raw(keys.CANCELS)

    @staticmethod
    def parse_raw(job_id: str, stored: Any) -> CancelRequest | None:
        return parse_stored(CancelRequest, stored, f"cancel {job_id}")

    def all(self) -> dict[str, CancelRequest]:
        found = {}
        for job_id, value in self.cstore.hgetall(keys.CANCELS).items():
            request = parse(CancelRequest, value, f"cancel {job_id}")
            if request is not None:
                found[job_id] = request
        return found


class ReplicasRepo:
    """``datagen:replicas`` (ours): peer id -> heartbeat, written only by that replica."""

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def beat(self, beat: ReplicaBeat) -> None:
        self.cstore.hset(keys.REPLICAS, beat.peer_id, _wire(beat))

    def all(self) -> dict[str, ReplicaBeat]:
        found = {}
        for peer_id, value in self.cstore.hgetall(keys.REPLICAS).items():
            beat = parse(ReplicaBeat, value, f"replica {peer_id}")
            if beat is not None:
                found[peer_id] = beat
        return found


class CommandsRepo:
    """``datagen:job-commands`` (ours): job id -> retry round and extensions."""

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def get(self, job_id: str) -> JobCommands:
        value = self.cstore.hget(keys.JOB_COMMANDS, job_id)
        return parse(JobCommands, value, f"commands {job_id}") or JobCommands(job_id=job_id)

    def get_raw(self, job_id: str) -> Any:
        return self.cstore.hget_raw(keys.JOB_COMMANDS, job_id)

    def all_raw(self) -> dict[str, Any]:
        return self.cstore.hgetall_raw(keys.JOB_COMMANDS)

    @staticmethod
    def parse_raw(job_id: str, stored: Any) -> JobCommands:
        """As ``get``: the default (no command) when absent or unreadable."""
        found = parse_stored(JobCommands, stored, f"commands {job_id}")
        return found or JobCommands(job_id=job_id)

    def put(self, commands: JobCommands) -> None:
        self.cstore.hset(keys.JOB_COMMANDS, commands.job_id, _wire(commands))

    def all(self) -> dict[str, JobCommands]:
        found = {}
        for job_id, value in self.cstore.hgetall(keys.JOB_COMMANDS).items():
            commands = parse(JobCommands, value, f"commands {job_id}")
            if commands is not None:
                found[job_id] = commands
        return found


class JobIndexRepo:
    """The open-jobs index (ours, see ``datagems.job.index``): ``datagen:open-jobs`` (job id
    -> a job that can still need work), ``datagen:closed-jobs`` (job id -> closed lately)
    and ``datagen:open-jobs-meta`` (the last rebuild)."""

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def open_raw(self) -> dict[str, Any]:
        return self.cstore.hgetall_raw(keys.OPEN_JOBS)

    @staticmethod
    def parse_open(job_id: str, stored: Any) -> OpenJob | None:
        return parse_stored(OpenJob, stored, f"open-jobs entry {job_id}")

    def put_open(self, job_id: str, entry: OpenJob) -> None:
        self.cstore.hset(keys.OPEN_JOBS, job_id, _wire(entry))

    def drop_open(self, job_id: str) -> None:
        self.cstore.hset(keys.OPEN_JOBS, job_id, None)

    def closed_raw(self) -> dict[str, Any]:
        return self.cstore.hgetall_raw(keys.CLOSED_JOBS)

    @staticmethod
    def parse_closed(job_id: str, stored: Any) -> ClosedJob | None:
        return parse_stored(ClosedJob, stored, f"closed-jobs entry {job_id}")

    def put_closed(self, job_id: str, entry: ClosedJob) -> None:
        self.cstore.hset(keys.CLOSED_JOBS, job_id, _wire(entry))

    def drop_closed(self, job_id: str) -> None:
        self.cstore.hset(keys.CLOSED_JOBS, job_id, None)

    def meta(self) -> IndexMeta | None:
        return parse(IndexMeta, self.cstore.get(keys.OPEN_JOBS_META), "open-jobs meta")

    def put_meta(self, meta: IndexMeta) -> None:
        self.cstore.set(keys.OPEN_JOBS_META, _wire(meta))


class MetricsRepo:
    """``datagen:metrics``: the original's fleet metrics, one key it updates by
    read-modify-write. Ours are derived from the jobs (``jobs.metrics``); a replica rewrites
    this key from them when it differs, so the original's dashboard agrees too."""

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def get_raw(self) -> Any:
        return self.cstore.get_raw(keys.METRICS)

    def get(self) -> FleetMetrics | None:
        return parse(FleetMetrics, self.cstore.get(keys.METRICS), "metrics")

    def put(self, metrics: FleetMetrics) -> None:
        self.cstore.set(keys.METRICS, metrics.wire())


class InboxRepo:
    """``datagen:job-inbox`` (ours): command id -> a request to change a job. A field is
    written once by the replica that took the request and removed by the job's command
    owner once it has recorded its decision (``datagems.job.commands``)."""

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def put(self, command: JobCommand) -> None:
        self.cstore.hset(keys.JOB_INBOX, command.id, _wire(command))

    def remove(self, command_id: str) -> None:
        self.cstore.hset(keys.JOB_INBOX, command_id, None)

    def all(self) -> dict[str, JobCommand]:
        found = {}
        for command_id, value in self.cstore.hgetall(keys.JOB_INBOX).items():
            command = parse(JobCommand, value, f"command {command_id}")
            if command is not None:
                found[command_id] = command
        return found
