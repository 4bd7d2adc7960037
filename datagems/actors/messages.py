"""Messages between actors: frozen pydantic models (events go up by ``tell``)."""

from __future__ import annotations

from typing import Any, Literal

import pykka
from pydantic import BaseModel, ConfigDict

from datagems.inference.pipeline import RecordOutcome
from datagems.models import PeerState, Range, Takeover


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class Tick(Message):
    """Time passed: flush, poll, retry — whatever the receiver does periodically."""


# -- supervisor ------------------------------------------------------------------------
class StartJob(Message):
    """Work a job's range: this peer's own (``owner`` None) or a dead peer's (takeover)."""

    job_id: str
    owner: str | None = None


class ApplyCommands(Message):
    """Time to decide the job commands waiting in the inbox for jobs this replica owns."""


class CancelJob(Message):
    """Stop the job's work: the cancel asked in retry round ``retry_round`` (a job actor of
    a later round, reopened after the job finished, ignores it)."""

    job_id: str
    retry_round: int = 0


class JobEnded(Message):
    job_id: str
    owner: str | None = None


class ChildFailed(Message):
    kind: Literal["job", "poller", "writer"]
    job_id: str | None = None
    owner: str | None = None
    error: str = ""


# -- job <- supervisor -----------------------------------------------------------------
class Drain(Message):
    """The replica is stopping: start no more records (those in flight may finish)."""


class WriterRestarted(Message):
    """The CStore writer died and this is its successor: tell it from now on, and open the
    range again (its counts re-derived from the local result file, the truth)."""

    writer: pykka.ActorRef[Any]


# -- job <- record ---------------------------------------------------------------------
# ``RecordOutcome`` (a record is finished: ok, or failed with a named reason) is the
# record pipeline's answer (``datagems.inference.pipeline``), told as it is.


class PaceChanged(Message):
    """The job's in-flight level or its reason changed (shown on the job page)."""

    job_id: str
    pace: dict[str, Any]


# -- writer <- job / record ------------------------------------------------------------
class JobOpened(Message):
    """A job actor took a range: this peer's own (``takeover`` None), or a dead peer's.

    ``state`` is this peer's own state (counts from the local file when it is the own
    range); a takeover carries its own progress in ``takeover``."""

    job_id: str
    state: PeerState
    takeover: Takeover | None = None


class RecordsStarted(Message):
    """The job actor started these records (first attempt: ``calling``)."""

    job_id: str
    owner: str
    indices: tuple[int, ...]


class RecordStateChanged(Message):
    """A record is being called again (``retrying``, after ``reason``)."""

    job_id: str
    owner: str
    i: int
    attempt: int
    state: str  # retrying
    reason: str | None = None


class Flush(Message):
    """Write this job's progress now (the writer tells itself, behind what is queued)."""

    job_id: str


class RecordDone(Message):
    """A record of ``owner``'s ranges finished. ``ok_count`` / ``failed_count`` are that
    range's counts after it, as the job actor counts them from its local file (absolute,
    never deltas: a message handled twice or a retried record can never count twice)."""

    job_id: str
    owner: str
    outcome: RecordOutcome
    ok_count: int
    failed_count: int
    duplicate: bool = False


class RangeFailed(Message):
    """The work of ``owner``'s range could not start (``error`` says why): ``count`` records
    (the first is ``first``) failed at once with ``reason``; the counts are the range's
    after them."""

    job_id: str
    owner: str
    first: int
    count: int
    reason: str
    error: str
    ok_count: int
    failed_count: int


class SliceUploaded(Message):
    job_id: str
    owner: str
    result_cid: str
    errors_cid: str | None = None
    cancelled: bool = False
    ranges: list[Range] = []
    extensions_done: int = 0
    retry_round: int = 0


class JobDropped(Message):
    """The job actor stopped without finishing (shutdown): flush and forget the range."""

    job_id: str
    owner: str
