"""Progress of a job as the terminal shows it, and the exit code of its outcome.

Pure functions over the ``GET /api/tasks/{id}`` payload (``{job, peers, ...}``), so they are
tested without a server: ``Snapshot.of(payload)`` reads the counts, ``RateMeter`` turns
successive snapshots into records/s and an ETA, ``progress_line`` renders one line (with a
bar on a terminal), ``outcome_exit_code`` maps the finished job to 0 / 1 / 2.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from datagems.client.api import EXIT_JOB_FAILED, EXIT_OK, EXIT_SOME_FAILED

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
MIN_BAR, MAX_BAR = 5, 40


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class Snapshot:
    """The counts of a job at one moment."""

    status: str
    total: int
    ok: int
    failed: int
    in_flight: int

    @property
    def done(self) -> int:
        return self.ok + self.failed

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Snapshot:
        """From ``{job, peers}`` (or a bare job base, as ``GET /api/tasks`` lists them)."""
        job = payload.get("job") if isinstance(payload.get("job"), dict) else payload
        peers = [p for p in payload.get("peers") or [] if isinstance(p, dict)]
        if peers:
            ok = sum(_int(p.get("generatedOk")) for p in peers)
            failed = sum(_int(p.get("generatedFailed")) for p in peers)
        else:
            ok, failed = _int(job.get("totalOk")), _int(job.get("totalFailed"))
        in_flight = sum(len(p.get("inFlight") or []) for p in peers)
        status = str(job.get("status") or "queued")
        if status in TERMINAL:
            in_flight = 0
        return cls(status, _int(job.get("totalRecords")), ok, failed, in_flight)


class RateMeter:
    """Records per second over a sliding window, and the time left at that rate."""

    def __init__(self, window_seconds: float = 15.0) -> None:
        self.window = window_seconds
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, done: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.samples and done < self.samples[-1][1]:
            self.samples.clear()  # counts went back (another view of the job): start over
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()

    def rate(self) -> float | None:
        """Records per second over the window; ``None`` until two samples 0.5 s apart."""
        if len(self.samples) < 2:
            return None
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        if t1 - t0 < 0.5:
            return None
        return (d1 - d0) / (t1 - t0)

    def eta(self, remaining: int) -> float | None:
        if remaining <= 0:
            return 0.0
        rate = self.rate()
        if not rate:
            return None
        return remaining / rate


def format_duration(seconds: float | None) -> str:
    """``7s``, ``2m05s``, ``1h02m``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_rate(rate: float | None) -> str:
    if rate is None:
        return "? rec/s"
    if rate >= 10:
        return f"{rate:.0f} rec/s"
    return f"{rate:.1f} rec/s"


def bar(done: int, total: int, width: int) -> str:
    """``[#####.....]`` with ``width`` cells inside the brackets."""
    width = max(1, width)
    filled = width if total <= 0 else min(width, done * width // total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def progress_line(
    snap: Snapshot,
    rate: float | None,
    eta: float | None,
    *,
    tty: bool,
    columns: int = 80,
) -> str:
    """One line: done/total, ok, failed, in flight, records/s, ETA (and a bar on a TTY)."""
    counts = f"{snap.done}/{snap.total}"
    parts = [
        f"ok {snap.ok}",
        f"failed {snap.failed}",
        f"in flight {snap.in_flight}",
        format_rate(rate),
    ]
    if not snap.finished:
        parts.append("ETA " + format_duration(eta))
    if not tty:
        return f"{counts} {snap.status}: " + " · ".join(parts)
    text = f"{counts} {snap.status}  " + "  ".join(parts)
    percent = 100 if snap.total <= 0 else min(100, snap.done * 100 // snap.total)
    room = columns - 1 - len(text) - len(f" {percent:3d}% ") - 2
    if room >= MIN_BAR:
        return f"{bar(snap.done, snap.total, min(room, MAX_BAR))} {percent:3d}% {text}"
    return text[: max(10, columns - 1)]


def outcome_exit_code(snap: Snapshot) -> int:
    """0 every record ok; 1 the job finished with some records failed (or missing);
    2 the job failed (nothing ok) or was cancelled."""
    if snap.status in ("failed", "cancelled"):
        return EXIT_JOB_FAILED
    if snap.status != "succeeded":
        return EXIT_JOB_FAILED  # not finished: treated as not done
    if snap.failed > 0 or snap.ok < snap.total:
        return EXIT_SOME_FAILED
    return EXIT_OK


def summary_line(snap: Snapshot, job_id: str, elapsed: float | None) -> str:
    took = f" in {format_duration(elapsed)}" if elapsed is not None else ""
    return f"job {job_id} {snap.status}: {snap.ok}/{snap.total} ok, {snap.failed} failed{took}"


def failure_reasons(payload: dict[str, Any]) -> dict[str, int]:
    """Why records failed, summed over the job's peers (``{reason: count}``, most first)."""
    counts: dict[str, int] = {}
    for peer in payload.get("peers") or []:
        reasons = peer.get("failureReasons") if isinstance(peer, dict) else None
        for reason, count in (reasons or {}).items():
            counts[str(reason)] = counts.get(str(reason), 0) + _int(count)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def closing_lines(payload: dict[str, Any], job_url: str) -> list[str]:
    """What follows the summary line: why records failed (if any did) and where to look."""
    lines = []
    reasons = failure_reasons(payload)
    if reasons:
        lines.append("failures: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
    lines.append(f"view: {job_url}")
    return lines
