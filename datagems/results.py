"""The local result file of one (job, peer): the replica's truth about its records.

One JSON line per finished record, ``{"i", "ok", "data"}`` or ``{"i", "ok": false,
"error", "reason"}``, appended with one ``write`` on an ``O_APPEND`` descriptor, so a record
is on disk (in the OS) before it counts as done and a ``kill -9`` never loses it. A torn
last line (a crash mid-write) is cut off when the file is opened again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass
class ResumeState:
    """What the file says is done: ``ok[i]`` for every index written."""

    ok: dict[int, bool] = field(default_factory=dict)

    @property
    def ok_count(self) -> int:
        return sum(1 for value in self.ok.values() if value)

    @property
    def failed_count(self) -> int:
        return len(self.ok) - self.ok_count


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


class ResultFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None

    def resume(self, start: int, end: int) -> ResumeState:
        """Cut a torn tail, then read which indices of ``[start, end)`` are done."""
        state = ResumeState()
        if not self.path.exists():
            return state
        good_end = 0
        for offset, length, entry in _lines(self.path):
            good_end = offset + length
            index = entry["i"]
            if start <= index < end:
                # an ok result wins over a failed one for the same index
                state.ok[index] = state.ok.get(index, False) or bool(entry.get("ok"))
        if self.path.stat().st_size != good_end:
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
        return state

    def append(self, entry: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(self._fd, orjson.dumps(entry) + b"\n")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def write_slice(self, dest: Path, start: int, end: int) -> tuple[Path, list[dict[str, Any]]]:
        """Write the slice sorted by index, one line per index (ok wins), to ``dest``.

        Memory holds only (index, offset, length) per record. Returns the slice path and the
        failures as ``[{"index", "message"}]``.
        """
        chosen: dict[int, tuple[int, int, bool]] = {}
        if self.path.exists():
            for offset, length, entry in _lines(self.path):
                index, ok = entry["i"], bool(entry.get("ok"))
                if not start <= index < end:
                    continue
                previous = chosen.get(index)
                if previous is None or (ok and not previous[2]):
                    chosen[index] = (offset, length, ok)
        failures: list[dict[str, Any]] = []
        tmp = dest.with_suffix(".tmp")
        with (
            open(self.path if self.path.exists() else os.devnull, "rb") as source,
            open(tmp, "wb") as out,
        ):
            for index in sorted(chosen):
                offset, length, ok = chosen[index]
                source.seek(offset)
                line = source.read(length)
                out.write(line)
                if not ok:
                    entry = orjson.loads(line)
                    failures.append({"index": index, "message": str(entry.get("error", ""))})
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
        return dest, failures
