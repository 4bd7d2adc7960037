"""Resample near-duplicates: call again, once, the later member of near-duplicate pairs.

A resample is a job command (``datagems.job.commands``, kind ``resample``) like a retry:
the replica that takes the request finds the pairs (the report's near-duplicates) and
writes the later members to the job inbox; the job's command owner, the only writer of
its command log, decides: of those records, the ones never resampled before, in index
order, up to the budget (the request's ``maxRecords``, at most
``DATAGEN_RESAMPLE_MAX_RECORDS``). An accepted resample opens a new retry round that
lists its records (``JobCommands.resamples``): every peer calls again, in that round,
exactly the listed records of its ranges, with the round's fresh call seed (per-record
variables are drawn per index, so they stay); it retries no failed record (those wait
for a retry round).

Exactly once: the owner never lists a record twice (two requests, on two replicas, at
once: the second finds them taken), and a peer marks the new line of a resampled record
(``"resampled": round``) in its result file before it counts, so a restarted or
taking-over replica does not call it again. A resample whose call fails keeps the record
as it was (an ok line is never replaced by a failure).
"""

from __future__ import annotations

from typing import Any

from datagems.models import JobCommands, Range, ResampleRound


def resample_rounds(commands: JobCommands | None) -> set[int]:
    return {r.round for r in commands.resamples} if commands else set()


def retry_round_of(commands: JobCommands | None) -> int:
    """The latest round that retries failed records (a resample round does not)."""
    if commands is None:
        return 0
    resampling = resample_rounds(commands)
    return max((r for r in range(1, commands.retry_round + 1) if r not in resampling), default=0)


def resampled(commands: JobCommands | None) -> set[int]:
    """Every record a resample round has listed."""
    return {i for r in commands.resamples for i in r.indices} if commands else set()


def due(commands: JobCommands | None, ranges: list[Range], done: set[int]) -> dict[int, int]:
    """The records of ``ranges`` listed by a resample round and not yet resampled here
    (``done``: marked in the result file), with their round."""
    found: dict[int, int] = {}
    if commands is None:
        return found
    for entry in commands.resamples:
        for index in entry.indices:
            if index in done or index in found:
                continue
            if any(r.start <= index < r.end for r in ranges):
                found[index] = entry.round
    return found


def choose(commands: JobCommands, candidates: list[int], total: int, budget: int) -> list[int]:
    """The owner's choice: candidates in range, never resampled, first ``budget`` by index."""
    taken = resampled(commands)
    fresh = sorted({i for i in candidates if 0 <= i < total and i not in taken})
    return fresh[: max(0, budget)]


def open_round(commands: JobCommands, indices: list[int], requested_at: str | None) -> int:
    """Write a resample round into the log (the owner only); returns its number."""
    commands.retry_round += 1
    commands.resamples.append(
        ResampleRound(round=commands.retry_round, indices=indices, requested_at=requested_at)
    )
    return commands.retry_round


def summary(commands: JobCommands | None) -> dict[str, Any]:
    """What the job page shows of the resamples asked so far."""
    if commands is None or not commands.resamples:
        return {"rounds": 0, "records": 0}
    return {
        "rounds": len(commands.resamples),
        "records": sum(len(r.indices) for r in commands.resamples),
        "last": commands.resamples[-1].wire(),
    }
