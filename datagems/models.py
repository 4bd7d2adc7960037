"""The JSON shapes of the DataGems contract, as pydantic models.

Field names are snake_case in Python and camelCase on the wire (``model_dump(by_alias=True)``).
Unknown fields written by the original app (or a newer replica) are kept on round trip
(``extra="allow"``); missing optional fields get their defaults. Timestamps are ISO 8601
UTC strings with milliseconds and ``Z`` (``now_iso()``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


def now_iso() -> str:
    """Now as ``2026-11-22T02:34:00.314Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(value: str | None) -> datetime | None:
    """Parse a contract timestamp; ``None`` for missing or malformed values."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


LABEL_MODE_NAMES = frozenset({"true", "1", "yes", "classification", "labeled", "labelled"})


def dataset_mode_flag(value: Any) -> bool:
    """``datasetMode`` as stored: a boolean, true for labelled records."""
    return bool(_dataset_mode(value))


def _dataset_mode(value: Any) -> Any:
    """``datasetMode`` as the original writes it, a boolean (true: labelled records); early
    versions of ours wrote a mode name (``"classification"``) or nothing."""
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() in LABEL_MODE_NAMES
    return value


def _millis(value: Any) -> Any:
    """A duration in whole milliseconds, as the original writes it (ours once wrote floats)."""
    if isinstance(value, float) and math.isfinite(value):
        return round(value)
    return value


DatasetMode = Annotated[bool, BeforeValidator(_dataset_mode)]
Millis = Annotated[int, BeforeValidator(_millis)]


class WireModel(BaseModel):
    """camelCase on the wire, unknown fields kept, built by field name or alias."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=False
    )

    def wire(self) -> dict[str, Any]:
        """The camelCase dict written to CStore / R1FS (``None`` fields dropped)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Range(WireModel):
    start: int
    end: int
    # an extension's range (records added to a job) is split over these peers like a new
    # job (absent: the job's peers): a peer of the original app never knows of one
    peers: list[str] | None = None

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


class JobBase(WireModel):
    """``datagen:jobs`` field value: a cache of the job, refreshed by any peer."""

    id: str
    owner: str
    title: str = ""
    status: str = "queued"
    total_records: int = 0
    dataset_mode: DatasetMode = False
    peers: list[str] = Field(default_factory=list)
    peer_count: int = 0
    total_generated: int = 0
    total_ok: int = 0
    total_failed: int = 0
    job_details_cid: str | None = None
    created_at: str | None = None
    schema_generated_at: str | None = None
    job_started_at: str | None = None
    job_finished_at: str | None = None
    schema_duration_ms: Millis = 0
    records_duration_ms: Millis | None = None
    schema_refreshes: int = 0
    updated_at: str | None = None
    error: str | None = None  # ours: why the job failed as a whole (derived)


class InFlightRecord(WireModel):
    """One record being worked on, as shown in the peer state (ours)."""

    i: int
    attempt: int = 1
    state: str = "calling"  # calling | retrying
    started_at: str | None = None
    reason: str | None = None  # why the last attempt failed, while retrying


class RecentRecord(WireModel):
    """A record that just finished, kept in the peer state for the dashboard (ours)."""

    i: int
    ok: bool
    data: Any = None  # the record, when small: the dashboard shows it before the upload
    attempts: int = 1
    reason: str | None = None
    message: str | None = None
    finished_at: str | None = None


class ErrorEntry(WireModel):
    index: int
    message: str


class Takeover(WireModel):
    """A dead peer's range finished by another peer, kept in the taker's state (ours)."""

    peer_id: str  # whose range it is
    range: Range
    ranges: list[Range] = Field(default_factory=list)
    extensions_done: int = 0
    retry_round: int = 0
    assigned: int = 0
    generated_ok: int = 0
    generated_failed: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    cancelled_at: str | None = None
    result_cid: str | None = None
    errors_cid: str | None = None
    seeded_from: str | None = None  # the owner's slice this one started from (its superset)
    start_error: str | None = None

    @property
    def done(self) -> int:
        return self.generated_ok + self.generated_failed


class ReplicaBeat(WireModel):
    """``datagen:replicas`` field value (ours): a replica's heartbeat, one writer each."""

    peer_id: str
    last_seen_at: str
    started_at: str | None = None


class PeerState(WireModel):
    """``datagen:job:{id}:peers`` field value, written only by that peer."""

    peer_id: str
    assigned: int = 0
    range: Range = Field(default_factory=lambda: Range(start=0, end=0))
    generated_ok: int = 0
    generated_failed: int = 0
    last_update_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    result_cid: str | None = None
    errors_cid: str | None = None
    errors: list[ErrorEntry] | None = None
    # ours
    in_flight: list[InFlightRecord] = Field(default_factory=list)
    recent: list[RecentRecord] = Field(default_factory=list)
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    retries: int = 0
    duplicates: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms_total: float = 0
    cancelled_at: str | None = None
    takeovers: dict[str, Takeover] = Field(default_factory=dict)
    # real servers (ours): calls given up on timeout, and the in-flight level with its
    # reason ({"level", "cap", "reason", "latencyRatio"}: it follows the server's latency)
    abandoned_calls: int = 0
    pace: dict[str, Any] | None = None
    # written by the peer that finished this range for its owner (the original app reads
    # only the owner's own state): that taker; never set by the owner itself
    completed_by: str | None = None
    completed_at: str | None = None  # when: the owner's own writes are the later stamps
    # job control (ours): every range this peer owns (``range`` is the first), and the
    # job commands it has caught up with when it uploaded ``resultCid``
    ranges: list[Range] = Field(default_factory=list)
    extensions_done: int = 0
    retry_round: int = 0
    # why the work of this peer's range could not start (its records failed with it)
    start_error: str | None = None

    @property
    def done(self) -> int:
        return self.generated_ok + self.generated_failed

    @property
    def complete(self) -> bool:
        return self.done >= self.assigned and bool(self.result_cid)


class InferenceSpec(WireModel):
    use_external_api: bool | None = None
    profile_id: str | None = None
    base_url: str | None = None
    path: str | None = None
    model: str | None = None
    parameters: dict[str, Any] | None = None


class JobDetails(WireModel):
    """Job details in R1FS (JSON; CID in ``jobDetailsCid``)."""

    id: str
    owner: str
    title: str = ""
    description: str = ""
    instructions: str = ""
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    inference: InferenceSpec = Field(default_factory=InferenceSpec)
    dataset_mode: DatasetMode = False
    total_records: int | None = None
    created_at: str | None = None
    schema_generated_at: str | None = None
    schema_duration_ms: Millis = 0
    schema_refreshes: int = 0
    meta: dict[str, Any] | None = None
    # near-duplicate threshold of this job (ours; absent: DATAGEN_NEAR_DUPLICATE_THRESHOLD)
    near_duplicate_threshold: float | None = None
    # The schema again, as JSON text: R1FS stores objects with sorted keys, and text keeps
    # the author's field order (the order of the prompt, the records and the CSV columns).
    # The original app reads ``schema`` and ignores this.
    schema_text: str | None = None
    # per-record variables and seed data (ours, ``datagems.quality``): the draws' seed
    # (absent: derived from the id), the declared variables, the seed file's reference.
    # The original app ignores them: such a job is split over DataGems replicas only, and
    # ``originalPeersLeftOut`` names the configured peers of the original it was kept from.
    seed: int | None = None
    variables: list[dict[str, Any]] | None = None
    seed_data: dict[str, Any] | None = None
    original_peers_left_out: list[str] | None = None

    @model_validator(mode="after")
    def _keep_field_order(self) -> JobDetails:
        ordered: Any = None
        if self.schema_text:
            try:
                ordered = orjson.loads(self.schema_text)
            except orjson.JSONDecodeError:
                ordered = None
        if isinstance(ordered, dict) and ordered == self.json_schema:
            self.json_schema = ordered
        else:  # none yet, or not the same schema: the object wins
            self.schema_text = orjson.dumps(self.json_schema).decode() if self.json_schema else None
        return self


class JobSummary(WireModel):
    """``datagen:user:{username}:jobs`` field value (the original's is ``id, title, status,
    createdAt, updatedAt``)."""

    id: str
    title: str = ""
    status: str = "queued"
    total_records: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class UserIndexEntry(WireModel):
    """``datagen:users`` field value (the original never writes ``jobCount``)."""

    username: str
    email: str | None = None
    name: str | None = None
    country: str | None = None
    created_at: str | None = None
    job_count: int | None = None


class RegisterMailFailure(WireModel):
    """``datagen:register-mail-failures`` field value (the original's; field = e-mail): a
    credentials mail not delivered yet. ``passwordEncrypted`` is the original's AES-GCM
    text; this app never writes such records (its "resend" mails a reset link)."""

    email: str
    username: str
    password_encrypted: str | None = None
    attempts: int = 0
    status: str = "pending"  # pending | sent | expired
    failed_at: str | None = None
    updated_at: str | None = None
    last_error_code: str | None = None


class InferenceProfile(WireModel):
    """A user's saved OpenAI-compatible endpoint."""

    id: str
    name: str = ""
    base_url: str = ""
    path: str | None = None  # absent: "/chat/completions" (the original leaves it out too)
    model: str | None = None
    api_key: str | None = None
    # what the provider charges, per million tokens (ours: the quality report's cost)
    price_in_per_million: float | None = None
    price_out_per_million: float | None = None
    # ours (issue 16): the record calls' defaults; a job's own inferenceParams win
    temperature: float | None = None
    max_tokens: int | None = None

    def record_parameters(self, given: dict[str, Any] | None) -> dict[str, Any] | None:
        """A job's ``inferenceParams`` over this profile's defaults (the job's own win,
        in either spelling of max tokens)."""
        merged: dict[str, Any] = {}
        if self.temperature is not None:
            merged["temperature"] = self.temperature
        if self.max_tokens is not None:
            merged["max_tokens"] = self.max_tokens
        given = dict(given or {})
        if "maxTokens" in given or "max_tokens" in given:
            merged.pop("max_tokens", None)
        merged.update(given)
        return merged or None


class UserSettings(WireModel):
    """``datagen:user:{username}:settings``."""

    profiles: list[InferenceProfile] = Field(default_factory=list)
    active_profile_id: str | None = None


class JobCommand(WireModel):
    """``datagen:job-inbox`` field value (ours): one request to change a job (retry its
    failed records, add records), under a unique id. Written once by the replica that took
    the request; decided and removed by the job's command owner (``datagems.job.commands``)."""

    id: str
    job_id: str
    kind: str  # "retry" | "extend" | "resample"
    additional: int = 0  # records to add (extend)
    indices: list[int] = Field(default_factory=list)  # resample: near-duplicates to call again
    max_records: int = 0  # resample: the request's budget (at most the setting's)
    requested_by: str
    exempt: bool = False  # the caller is exempt from the per-user caps (an admin)
    requested_at: str
    via: str | None = None  # the replica that took the request


class CommandDecision(WireModel):
    """The command owner's answer to one command, kept in the job's command log (ours):
    ``applied`` with what it changed, or refused with the HTTP status and message."""

    kind: str
    applied: bool
    status: int  # 202 applied; 400, 404, 409, 429 or 503 refused
    error: str | None = None
    retry_after: int | None = None
    retry_round: int | None = None
    records: int | None = None  # the failed records a retry round calls again
    total_records: int | None = None
    indices: list[int] | None = None  # the records a resample round calls again
    decided_at: str
    decided_by: str


class ResampleRound(WireModel):
    """A retry round that calls again ok records found near-duplicates (ours): only
    ``indices``, each once, with the round's fresh call seed; no failed record."""

    round: int
    indices: list[int] = Field(default_factory=list)
    requested_at: str | None = None


class JobCommands(WireModel):
    """``datagen:job-commands`` field value (ours): what the owner asked after confirming.

    ``retryRound`` n asks every peer to call again, once, each record of its ranges that
    ended failed before round n; ``extensions`` are appended index ranges, each split over
    the job's peers like a new job. Peers catch up and record how far in their state.
    Written only by the job's command owner, which records its decision on every command
    under the command's id (``decisions``): a command is applied once, in one order."""

    job_id: str
    retry_round: int = 0
    retry_requested_at: str | None = None
    extensions: list[Range] = Field(default_factory=list)
    # retry rounds that resample near-duplicates (``datagems.quality.resample``)
    resamples: list[ResampleRound] = Field(default_factory=list)
    updated_at: str | None = None
    decisions: dict[str, CommandDecision] = Field(default_factory=dict)
    owner: str | None = None  # the replica that wrote it last


class OpenJob(WireModel):
    """``datagen:open-jobs`` field value (ours): a job that can still need work (its stored
    status is not final), with what a listing shows before reading its base."""

    owner: str = ""
    title: str = ""
    created_at: str | None = None
    peers: list[str] = Field(default_factory=list)
    opened_at: str | None = None


class ClosedJob(WireModel):
    """``datagen:closed-jobs`` field value (ours): a job whose final base was written lately
    (kept ``datagems.job.index.CLOSED_KEPT_SECONDS``), so a read cache can place it in a listing."""

    owner: str = ""
    title: str = ""
    created_at: str | None = None
    status: str = ""
    closed_at: str | None = None


class IndexMeta(WireModel):
    """``datagen:open-jobs-meta`` (ours): the last rebuild of the open-jobs index."""

    version: int = 0
    built_at: str | None = None
    built_by: str = ""
    original_mark: str | None = None  # the original's metrics mark read before that scan
    jobs: int = 0
    open: int = 0
    unreadable: int = 0


class FleetMetrics(WireModel):
    """``datagen:metrics``: the original's fleet-wide counters (the contract's shape)."""

    total_jobs: int = 0
    total_records_requested: int = 0
    total_records_generated: int = 0
    active_jobs: int = 0
    failed_jobs: int = 0
    last_job_at: str | None = None

    def wire(self) -> dict[str, Any]:
        """As the original writes it: every field, ``lastJobAt`` null when there is none."""
        return self.model_dump(by_alias=True, mode="json")


class CancelRequest(WireModel):
    """``datagen:cancels`` field value (ours): a user asked to stop the job.

    It stops the retry round it was asked in (``retryRound``) and what was added to it, not
    a later round: a job that finished before the cancel reached its peers can still have
    its failed records retried."""

    job_id: str
    requested_by: str
    requested_at: str
    retry_round: int = 0


def split_ranges(total: int, peers: list[str]) -> list[tuple[str, Range]]:
    """Contiguous ranges in peer order: ``floor(N/P)`` each, the first ``N % P`` one more."""
    if not peers:
        raise ValueError("a job needs at least one peer")
    base, extra = divmod(total, len(peers))
    ranges: list[tuple[str, Range]] = []
    start = 0
    for position, peer in enumerate(peers):
        size = base + (1 if position < extra else 0)
        ranges.append((peer, Range(start=start, end=start + size)))
        start += size
    return ranges
