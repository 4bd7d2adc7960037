"""Follow a job until it ends: its server-sent events, with polling as the fallback, and the
progress line on stderr (redrawn in place on a terminal, plain lines otherwise)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson

from datagems.client.api import EXIT_UNREACHABLE, ApiClient, ClientError
from datagems.client.progress import RateMeter, Snapshot, format_duration, progress_line

POLL_SECONDS = 1.0
# how long the server may stay away before the client gives up (the job keeps running on
# the fleet; the progress line says "server unreachable, retrying" all along)
UNREACHABLE_AFTER_SECONDS = 600.0
UNREACHABLE_NOTE_EVERY_SECONDS = 10.0
PLAIN_EVERY_SECONDS = 2.0
TTY_EVERY_SECONDS = 0.1


def terminal_columns(stream: TextIO, default: int = 80) -> int:
    """The width of the terminal ``stream`` draws on (``COLUMNS`` wins, as usual)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(stream.fileno()).columns or default
    except (AttributeError, ValueError, OSError):
        return shutil.get_terminal_size((default, 24)).columns


class ProgressDisplay:
    """Draws the progress line; on a TTY in place, else a plain line now and then."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        if tty is None:
            try:
                tty = self.stream.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.meter = RateMeter()
        self.last: Snapshot | None = None
        self._drawn_at = 0.0
        self._drawn: Snapshot | None = None
        self._line_open = False
        self._away_since: float | None = None
        self._away_noted = 0.0

    def update(self, snap: Snapshot, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.meter.add(snap.done, now)
        changed = self.last is None or snap != self.last
        status_changed = self.last is None or snap.status != self.last.status
        self.last = snap
        if self.tty:
            if status_changed or now - self._drawn_at >= TTY_EVERY_SECONDS:
                self._draw(snap, now)
        elif changed and (status_changed or now - self._drawn_at >= PLAIN_EVERY_SECONDS):
            self._draw(snap, now)

    def _draw(self, snap: Snapshot, now: float) -> None:
        rate = self.meter.rate()
        eta = self.meter.eta(snap.total - snap.done)
        if self.tty:
            columns = terminal_columns(self.stream)
            line = progress_line(snap, rate, eta, tty=True, columns=columns)
            self.stream.write("\r" + line + "\x1b[K")
            self._line_open = True
        else:
            self.stream.write(progress_line(snap, rate, eta, tty=False) + "\n")
        self.stream.flush()
        self._drawn_at = now
        self._drawn = snap

    def unreachable(self, away_seconds: float | None, now: float | None = None) -> None:
        """The server stopped answering ``away_seconds`` ago (``None``: it answers again).

        Shown at once and kept visible: in place on a terminal, else a line when it starts
        and every ``UNREACHABLE_NOTE_EVERY_SECONDS``; a line when the server is back."""
        now = time.monotonic() if now is None else now
        if away_seconds is None:
            if self._away_since is not None:
                away = format_duration(now - self._away_since)
                self.note(f"server reachable again after {away}; resuming")
                self._drawn_at = 0.0  # redraw the progress at the next update
            self._away_since = None
            return
        first = self._away_since is None
        if first:
            self._away_since = now - away_seconds
        text = f"server unreachable, retrying ({format_duration(away_seconds)})"
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self._line_open = True
            self.stream.flush()
        elif first or now - self._away_noted >= UNREACHABLE_NOTE_EVERY_SECONDS:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._away_noted = now

    def note(self, message: str) -> None:
        """A message on its own line (the progress line, if open, is ended first)."""
        self.end_line()
        self.stream.write(message + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """Draw the final state (always) and end the line."""
        if self.last is not None and (self.tty or self.last != self._drawn):
            self._draw(self.last, time.monotonic())
        self.end_line()

    def end_line(self) -> None:
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False


def follow_job(
    client: ApiClient,
    job_id: str,
    on_update: Callable[[dict[str, Any]], None],
    *,
    note: Callable[[str], None] = lambda _message: None,
    on_unreachable: Callable[[float | None], None] = lambda _seconds: None,
    poll_seconds: float = POLL_SECONDS,
    unreachable_after: float = UNREACHABLE_AFTER_SECONDS,
    use_events: bool = True,
    done: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Call ``on_update(payload)`` with each new view of the job until it has ended; returns
    the last view (``{job, peers, ...}``, read with ``GET /api/tasks/{id}``).

    Events first; when the stream cannot be used (not offered, a server error) it polls
    from then on; a dropped stream is reopened after one poll. ``ClientError`` for a
    refusal (401, 404...) or when the server stays unreachable for ``unreachable_after``;
    meanwhile ``on_unreachable(seconds)`` after each failed try, ``on_unreachable(None)``
    when the server answers again. ``done(payload)`` tells when to stop (default: the job
    has finished).
    """
    done = done or (lambda payload: Snapshot.of(payload).finished)
    last_contact = time.monotonic()
    away = False

    def reached() -> None:
        nonlocal last_contact, away
        last_contact = time.monotonic()
        if away:
            away = False
            on_unreachable(None)

    while True:
        if use_events:
            try:
                for event in client.events(job_id):
                    reached()
                    if event.event == "job":
                        payload = orjson.loads(event.data)
                        on_update(payload)
                        if done(payload):
                            break
                    elif event.event == "end":
                        break
            except ClientError as exc:
                if exc.status in (401, 403):
                    raise
                if exc.status is not None:
                    use_events = False
                    note(f"live events unavailable ({exc}); polling every {poll_seconds:g}s")
            except orjson.JSONDecodeError:
                use_events = False
                note("live events unreadable; polling instead")
        try:
            payload = client.get_job(job_id)
        except ClientError as exc:
            transient = exc.exit_code == EXIT_UNREACHABLE  # no answer, or a 5xx
            if not transient or time.monotonic() - last_contact > unreachable_after:
                raise
            away = True
            on_unreachable(time.monotonic() - last_contact)
        else:
            reached()
            on_update(payload)
            if done(payload):
                return payload
        time.sleep(poll_seconds)
