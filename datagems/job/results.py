"""The local result file of one (job, range owner): the replica's truth about its records.

One JSON line per finished record, ``{"i", "ok", "data"}`` or ``{"i", "ok": false,
"error", "reason"}`` (plus ``"round"`` for a retry round and ``"attempts"``), appended with
one ``write`` on an ``O_APPEND`` descriptor, so a record is on disk (in the OS) before it
counts as done and a ``kill -9`` never loses it. A torn last line (a crash mid-write) is
cut off when the file is opened again.
"""

from __future__ import annotations

import bisect
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from datagems.models import Range

HISTORY_KEPT = 5


@dataclass
class ResumeState:
    """What the file says: ``ok[i]`` for every index written (an ok result wins), and the
    latest retry round in which a failed index was tried."""

    ok: dict[int, bool] = field(default_factory=dict)
    failed_round: dict[int, int] = field(default_factory=dict)
    resampled: set[int] = field(default_factory=set)  # lines marked ``"resampled"``

    @property
    def ok_count(self) -> int:
        return sum(1 for value in self.ok.values() if value)

    @property
    def failed_count(self) -> int:
        return len(self.ok) - self.ok_count

    def to_retry(self, retry_round: int) -> list[int]:
        """Failed indices not yet tried in ``retry_round``."""
        return [
            i for i, ok in self.ok.items() if not ok and self.failed_round.get(i, 0) < retry_round
        ]


def _lines(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(offset, length, entry) of every complete, parseable line."""
    offset = 0
    with open(path, "rb") as source:
        for line in source:
            length = len(line)
            if line.endswith(b"\n"):
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    entry = None
                if isinstance(entry, dict) and isinstance(entry.get("i"), int):
                    yield offset, length, entry
            offset += length


class _IndexSlots:
    """The indices of some ranges, numbered 0..size-1 in index order (overlaps merged)."""

    def __init__(self, ranges: list[Range]) -> None:
        merged: list[list[int]] = []
        for start, end in sorted((r.start, r.end) for r in ranges if r.end > r.start):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [start for start, _ in merged]
        self._spans = merged
        self._bases: list[int] = []
        size = 0
        for start, end in merged:
            self._bases.append(size)
            size += end - start
        self.size = size

    def of(self, index: int) -> int | None:
        """The slot of ``index``, or None when no range holds it."""
        at = bisect.bisect_right(self._starts, index) - 1
        if at < 0 or index >= self._spans[at][1]:
            return None
        return self._bases[at] + index - self._starts[at]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for (start, end), base in zip(self._spans, self._bases, strict=True):
            for index in range(start, end):
                yield index, base + index - start


def _inside(ranges: list[Range]) -> Any:
    bounds = [(r.start, r.end) for r in ranges]
    return lambda index: any(start <= index < end for start, end in bounds)


class ResultFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def seed(self, chunks: Iterable[bytes]) -> None:
        """Start the file from an uploaded slice (a new host, or a taker's retry)."""
        tmp = self.path.with_suffix(".seed")
        with open(tmp, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def resume(self, ranges: list[Range]) -> ResumeState:
        """Cut a torn tail, then read which indices of ``ranges`` are done."""
        state = ResumeState()
        if not self.path.exists():
            return state
        inside = _inside(ranges)
        good_end = 0
        for offset, length, entry in _lines(self.path):
            good_end = offset + length
            index = entry["i"]
            if not inside(index):
                continue
            ok = bool(entry.get("ok"))
            state.ok[index] = state.ok.get(index, False) or ok
            if entry.get("resampled"):
                state.resampled.add(index)
            if not ok:
                tried = int(entry.get("round", 0) or 0)
                state.failed_round[index] = max(state.failed_round.get(index, 0), tried)
        if self.path.stat().st_size != good_end:
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
        return state

    def append(self, entry: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(self._fd, orjson.dumps(entry) + b"\n")

    def append_many(self, entries: list[dict[str, Any]]) -> None:
        """Several lines in one ``write`` (a torn tail is cut at the next resume)."""
        if not entries:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        data = memoryview(b"".join(orjson.dumps(entry) + b"\n" for entry in entries))
        while data:
            data = data[os.write(self._fd, data) :]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def write_slice(self, dest: Path, ranges: list[Range]) -> tuple[Path, list[dict[str, Any]]]:
        """Write the slice sorted by index, one line per index (the last ok line, else the
        latest failure: the export's rule), with earlier failures under ``history``.

        Memory holds 13 bytes per index of ``ranges`` (where its chosen line is) and the
        failures' history, whatever the size of the records. Returns the slice path and
        the failures as ``[{"index", "message"}]``.
        """
        slots = _IndexSlots(ranges)
        offsets = array("q", [-1]) * slots.size  # where the chosen line of each index is
        lengths = array("l", [0]) * slots.size
        oks = bytearray(slots.size)
        history: dict[int, list[dict[str, Any]]] = {}
        if self.path.exists():
            for offset, length, entry in _lines(self.path):
                index, ok = entry["i"], bool(entry.get("ok"))
                slot = slots.of(index)
                if slot is None:
                    continue
                if offsets[slot] >= 0 and oks[slot]:
                    if ok:  # two ok lines (a slice of the original): the last one wins,
                        offsets[slot], lengths[slot] = offset, length  # as in its export
                    continue  # a failure never replaces an ok result
                if offsets[slot] >= 0 or entry.get("history"):
                    past = history.setdefault(index, list(entry.get("history") or []))
                    if offsets[slot] >= 0:
                        past.append(self._failure_note(offsets[slot], lengths[slot]))
                offsets[slot], lengths[slot], oks[slot] = offset, length, ok
        failures: list[dict[str, Any]] = []
        tmp = dest.with_suffix(".tmp")
        source_path = self.path if self.path.exists() else os.devnull
        with open(source_path, "rb") as source, open(tmp, "wb") as out:
            for index, slot in slots:
                if offsets[slot] < 0:
                    continue
                source.seek(offsets[slot])
                line = source.read(lengths[slot])
                if index in history or not oks[slot]:
                    entry = orjson.loads(line)
                    if index in history:
                        entry["history"] = history[index][-HISTORY_KEPT:]
                        line = orjson.dumps(entry) + b"\n"
                    if not oks[slot]:
                        failures.append({"index": index, "message": str(entry.get("error", ""))})
                out.write(line)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
        return dest, failures

    def _failure_note(self, offset: int, length: int) -> dict[str, Any]:
        with open(self.path, "rb") as source:
            source.seek(offset)
            entry = orjson.loads(source.read(length))
        return {
            "reason": entry.get("reason"),
            "error": (entry.get("error") or "")[:200],
            "attempts": entry.get("attempts", 1),
            "round": entry.get("round", 0),
        }
